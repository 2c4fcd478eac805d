import type { Selectable } from 'kysely';
import { DatastoreError } from './errors.js';
import type { SqlContext } from './sql-context.js';
import type { FederationRelationshipsTable } from './tables.js';
import type { BundleEndpointProfile, FederationRelationship, FederationRelationshipInput } from './types.js';

const PROFILES: readonly BundleEndpointProfile[] = ['https_web', 'https_spiffe'];

function rowToRelationship(r: Selectable<FederationRelationshipsTable>): FederationRelationship {
  return {
    trustDomain: r.trust_domain,
    bundleEndpointUrl: r.bundle_endpoint_url,
    profile: r.profile as BundleEndpointProfile,
    endpointSpiffeId: r.endpoint_spiffe_id,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

function invalid(message: string): DatastoreError {
  return new DatastoreError('INVALID', `federation relationship ${message}`);
}

function normalize(input: FederationRelationshipInput): Omit<FederationRelationship, 'createdAt' | 'updatedAt'> {
  if (input === null || typeof input !== 'object') throw invalid('must be an object');
  const { trustDomain, bundleEndpointUrl, profile } = input;
  const endpointSpiffeId = input.endpointSpiffeId ?? '';
  if (typeof trustDomain !== 'string' || trustDomain === '') throw invalid('trustDomain must be a non-empty string');
  if (typeof bundleEndpointUrl !== 'string' || !URL.canParse(bundleEndpointUrl)) throw invalid(`bundleEndpointUrl must be a URL, got ${JSON.stringify(bundleEndpointUrl)}`);
  if (!PROFILES.includes(profile)) throw invalid(`profile must be one of ${PROFILES.join(', ')}, got ${String(profile)}`);
  if (typeof endpointSpiffeId !== 'string') throw invalid('endpointSpiffeId must be a string');
  if (profile === 'https_spiffe' && endpointSpiffeId === '') throw invalid('endpointSpiffeId is required with profile https_spiffe');
  return { trustDomain, bundleEndpointUrl, profile, endpointSpiffeId: profile === 'https_web' ? '' : endpointSpiffeId };
}

function notFound(td: string): DatastoreError {
  return new DatastoreError('NOT_FOUND', `no federation relationship with ${td}`, { key: td });
}

/** Stores a new relationship. */
export async function createFederationRelationship(ctx: SqlContext, input: FederationRelationshipInput): Promise<FederationRelationship> {
  const r = normalize(input);
  const now = ctx.nowSeconds();
  return ctx.write('creating a federation relationship', async (trx, log) => {
    const exists = await trx.selectFrom('federation_relationships').select('trust_domain').where('trust_domain', '=', r.trustDomain).executeTakeFirst();
    if (exists) throw new DatastoreError('ALREADY_EXISTS', `a federation relationship with ${r.trustDomain} already exists`, { key: r.trustDomain });
    await trx
      .insertInto('federation_relationships')
      .values({ trust_domain: r.trustDomain, bundle_endpoint_url: r.bundleEndpointUrl, profile: r.profile, endpoint_spiffe_id: r.endpointSpiffeId, created_at: now, updated_at: now })
      .execute();
    log.record('federation_relationship', r.trustDomain, 'create');
    return { ...r, createdAt: now, updatedAt: now };
  });
}

/** The relationship, or undefined. */
export async function getFederationRelationship(ctx: SqlContext, trustDomain: string): Promise<FederationRelationship | undefined> {
  return ctx.read('reading a federation relationship', async (db) => {
    const row = await db.selectFrom('federation_relationships').selectAll().where('trust_domain', '=', trustDomain).executeTakeFirst();
    return row && rowToRelationship(row);
  });
}

/** Every relationship by trust domain. */
export async function listFederationRelationships(ctx: SqlContext): Promise<FederationRelationship[]> {
  return ctx.read('listing federation relationships', async (db) =>
    (await db.selectFrom('federation_relationships').selectAll().orderBy('trust_domain').execute()).map(rowToRelationship),
  );
}

/** Changes the endpoint of a relationship. */
export async function updateFederationRelationship(
  ctx: SqlContext,
  trustDomain: string,
  changes: Partial<Omit<FederationRelationshipInput, 'trustDomain'>>,
): Promise<FederationRelationship> {
  if (changes === null || typeof changes !== 'object') throw invalid('changes must be an object');
  return ctx.write('updating a federation relationship', async (trx, log) => {
    const row = await ctx.forUpdate(trx.selectFrom('federation_relationships').selectAll().where('trust_domain', '=', trustDomain)).executeTakeFirst();
    if (!row) throw notFound(trustDomain);
    const current = rowToRelationship(row);
    const defined = Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined));
    const next = { ...normalize({ ...current, ...defined, trustDomain }), createdAt: current.createdAt, updatedAt: ctx.nowSeconds() };
    await trx
      .updateTable('federation_relationships')
      .set({ bundle_endpoint_url: next.bundleEndpointUrl, profile: next.profile, endpoint_spiffe_id: next.endpointSpiffeId, updated_at: next.updatedAt })
      .where('trust_domain', '=', trustDomain)
      .execute();
    log.record('federation_relationship', trustDomain, 'update');
    return next;
  });
}

/** Deletes a relationship (the trust domain's bundle stays; delete it separately). */
export async function deleteFederationRelationship(ctx: SqlContext, trustDomain: string): Promise<void> {
  await ctx.write('deleting a federation relationship', async (trx, log) => {
    const res = await trx.deleteFrom('federation_relationships').where('trust_domain', '=', trustDomain).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw notFound(trustDomain);
    log.record('federation_relationship', trustDomain, 'delete');
  });
}

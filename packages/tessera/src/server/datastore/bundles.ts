import type { Selectable } from 'kysely';
import { detachTrustDomain, federatingEntries } from './entries.js';
import { DatastoreError, isUniqueViolation } from './errors.js';
import type { SqlContext } from './sql-context.js';
import type { BundlesTable } from './tables.js';
import type { DeleteBundleMode, StoredBundle } from './types.js';

function rowToBundle(r: Selectable<BundlesTable>): StoredBundle {
  return { trustDomain: r.trust_domain, bundle: r.bundle, sequence: Number(r.sequence), updatedAt: Number(r.updated_at) };
}

function checkTrustDomain(td: unknown): string {
  if (typeof td !== 'string' || td === '') throw new DatastoreError('INVALID', 'trust domain must be a non-empty string');
  return td;
}

function conflict(td: string, expected: number, actual: number | undefined): DatastoreError {
  const now = actual === undefined ? 'there is none' : `it is at sequence ${actual}`;
  return new DatastoreError('CONFLICT', `bundle of ${td} was expected at sequence ${expected} but ${now}: read it again and retry`, { key: td });
}

/** Stores a bundle (see `BundleStore.setBundle`). */
export async function setBundle(ctx: SqlContext, trustDomain: string, json: string, expectedSequence: number | undefined): Promise<StoredBundle> {
  const td = checkTrustDomain(trustDomain);
  let parsed: unknown;
  try {
    parsed = typeof json === 'string' ? JSON.parse(json) : undefined;
  } catch {
    parsed = undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new DatastoreError('INVALID', `bundle of ${td} must be SPIFFE bundle JSON text (a JSON object)`, { key: td });
  }
  if (expectedSequence !== undefined && (!Number.isSafeInteger(expectedSequence) || expectedSequence < 0)) {
    throw new DatastoreError('INVALID', 'expectedSequence must be a non-negative whole number');
  }
  const now = ctx.nowSeconds();
  try {
    return await ctx.write('storing a bundle', async (trx, log) => {
      const current = await ctx.forUpdate(trx.selectFrom('bundles').select('sequence').where('trust_domain', '=', td)).executeTakeFirst();
      const sequence = current === undefined ? undefined : Number(current.sequence);
      if (expectedSequence !== undefined && (sequence ?? 0) !== expectedSequence) throw conflict(td, expectedSequence, sequence);
      const stored: StoredBundle = { trustDomain: td, bundle: json, sequence: (sequence ?? 0) + 1, updatedAt: now };
      if (sequence === undefined) {
        await trx.insertInto('bundles').values({ trust_domain: td, bundle: json, sequence: 1, updated_at: now }).execute();
      } else {
        await trx.updateTable('bundles').set({ bundle: json, sequence: stored.sequence, updated_at: now }).where('trust_domain', '=', td).execute();
      }
      log.record('bundle', td, sequence === undefined ? 'create' : 'update');
      return stored;
    });
  } catch (e) {
    // Two servers inserting the first bundle of a trust domain at once: the loser conflicts.
    const cause = (e as { cause?: unknown }).cause;
    if (e instanceof DatastoreError && e.code === 'ALREADY_EXISTS' && isUniqueViolation(cause)) throw conflict(td, expectedSequence ?? 0, 1);
    throw e;
  }
}

/** The bundle, or undefined. */
export async function getBundle(ctx: SqlContext, trustDomain: string): Promise<StoredBundle | undefined> {
  return ctx.read('reading a bundle', async (db) => {
    const row = await db.selectFrom('bundles').selectAll().where('trust_domain', '=', trustDomain).executeTakeFirst();
    return row && rowToBundle(row);
  });
}

/** Every bundle by trust domain. */
export async function listBundles(ctx: SqlContext): Promise<StoredBundle[]> {
  return ctx.read('listing bundles', async (db) => (await db.selectFrom('bundles').selectAll().orderBy('trust_domain').execute()).map(rowToBundle));
}

/** How many of the entries blocking a `restrict` deletion its error names. */
const NAMED_ENTRIES = 10;

/** Deletes a bundle, handling federating entries as `mode` says, in one transaction. */
export async function deleteBundle(ctx: SqlContext, trustDomain: string, mode: DeleteBundleMode = 'restrict'): Promise<void> {
  const td = checkTrustDomain(trustDomain);
  if (!['restrict', 'delete', 'dissociate'].includes(mode)) throw new DatastoreError('INVALID', `delete mode must be restrict, delete or dissociate, got ${String(mode)}`);
  await ctx.write('deleting a bundle', async (trx, log) => {
    const exists = await ctx.forUpdate(trx.selectFrom('bundles').select('trust_domain').where('trust_domain', '=', td)).executeTakeFirst();
    if (!exists) throw new DatastoreError('NOT_FOUND', `no bundle for trust domain ${td}`, { key: td });
    if (mode === 'restrict') {
      const n = await detachTrustDomain(trx, log, td, 'count');
      if (n > 0) {
        // Named, so the operator knows what to update or delete without another query.
        const named = await federatingEntries(trx, td, NAMED_ENTRIES);
        const list = named.map((e) => `${e.id} (${e.spiffeId})`).join(', ') + (n > named.length ? `, and ${n - named.length} more` : '');
        const verb = n === 1 ? 'entry federates' : 'entries federate';
        throw new DatastoreError('CONFLICT', `${n} ${verb} with ${td}: ${list}; delete or update them first, or delete with mode "dissociate" or "delete"`, { key: td });
      }
    } else {
      await detachTrustDomain(trx, log, td, mode);
    }
    await trx.deleteFrom('bundles').where('trust_domain', '=', td).execute();
    log.record('bundle', td, 'delete');
  });
}

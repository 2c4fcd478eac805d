import type { Expression, ExpressionBuilder, Selectable, SqlBool, Transaction } from 'kysely';
import { DatastoreError } from './errors.js';
import { readPageRequest, toPage } from './pagination.js';
import { canonicalSelectors } from './selectors.js';
import { setMatchCondition, type SetTable } from './set-match.js';
import type { SqlContext } from './sql-context.js';
import type { AttestedAgentsTable, Tables } from './tables.js';
import type { AgentFilter, AgentInput, AgentUpdate, AttestedAgent, Page, PageRequest, Selector } from './types.js';

const SELECTORS: SetTable = { table: 'agent_selectors', parentColumn: 'spiffe_id', columns: ['type', 'value'] };

function invalid(field: string, message: string): DatastoreError {
  return new DatastoreError('INVALID', `agent ${field} ${message}`);
}

function text(v: unknown, field: string, allowEmpty: boolean): string {
  if (typeof v !== 'string' || (!allowEmpty && v === '')) throw invalid(field, allowEmpty ? 'must be a string' : 'must be a non-empty string');
  return v;
}

function seconds(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(field, 'must be epoch seconds (a non-negative whole number)');
  return v;
}

function flag(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw invalid(field, 'must be a boolean');
  return v;
}

type AgentFields = Omit<AttestedAgent, 'createdAt' | 'updatedAt'>;

function normalizeAgent(a: AgentInput): AgentFields {
  if (a === null || typeof a !== 'object') throw invalid('', 'must be an object');
  return {
    spiffeId: text(a.spiffeId, 'spiffeId', false),
    attestationType: text(a.attestationType, 'attestationType', false),
    certSerial: text(a.certSerial, 'certSerial', true),
    certExpiresAt: seconds(a.certExpiresAt, 'certExpiresAt'),
    newCertSerial: text(a.newCertSerial ?? '', 'newCertSerial', true),
    newCertExpiresAt: seconds(a.newCertExpiresAt ?? 0, 'newCertExpiresAt'),
    banned: flag(a.banned ?? false, 'banned'),
    canReattest: flag(a.canReattest ?? false, 'canReattest'),
    selectors: canonicalSelectors(a.selectors ?? [], 'agent selectors', true),
  };
}

function rowToAgent(r: Selectable<AttestedAgentsTable>): AttestedAgent {
  return {
    spiffeId: r.spiffe_id,
    attestationType: r.attestation_type,
    certSerial: r.cert_serial,
    certExpiresAt: Number(r.cert_expires_at),
    newCertSerial: r.new_cert_serial,
    newCertExpiresAt: Number(r.new_cert_expires_at),
    banned: Boolean(r.banned),
    canReattest: Boolean(r.can_reattest),
    selectors: JSON.parse(r.selectors) as Selector[],
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

function columns(ctx: SqlContext, a: AttestedAgent) {
  return {
    attestation_type: a.attestationType,
    cert_serial: a.certSerial,
    cert_expires_at: a.certExpiresAt,
    new_cert_serial: a.newCertSerial,
    new_cert_expires_at: a.newCertExpiresAt,
    banned: ctx.bool(a.banned),
    can_reattest: ctx.bool(a.canReattest),
    selectors: JSON.stringify(a.selectors),
    updated_at: a.updatedAt,
  };
}

async function replaceSelectors(trx: Transaction<Tables>, spiffeId: string, selectors: readonly Selector[], existed: boolean): Promise<void> {
  if (existed) await trx.deleteFrom('agent_selectors').where('spiffe_id', '=', spiffeId).execute();
  if (selectors.length > 0) {
    await trx.insertInto('agent_selectors').values(selectors.map((s) => ({ spiffe_id: spiffeId, type: s.type, value: s.value }))).execute();
  }
}

function notFound(spiffeId: string): DatastoreError {
  return new DatastoreError('NOT_FOUND', `no attested agent ${spiffeId}`, { key: spiffeId });
}

/** Stores a newly attested agent. */
export async function createAgent(ctx: SqlContext, input: AgentInput): Promise<AttestedAgent> {
  const fields = normalizeAgent(input);
  const now = ctx.nowSeconds();
  const agent: AttestedAgent = { ...fields, createdAt: now, updatedAt: now };
  return ctx.write('creating an agent', async (trx, log) => {
    const exists = await trx.selectFrom('attested_agents').select('spiffe_id').where('spiffe_id', '=', agent.spiffeId).executeTakeFirst();
    if (exists) throw new DatastoreError('ALREADY_EXISTS', `agent ${agent.spiffeId} is already attested`, { key: agent.spiffeId });
    await trx.insertInto('attested_agents').values({ spiffe_id: agent.spiffeId, created_at: now, ...columns(ctx, agent) }).execute();
    await replaceSelectors(trx, agent.spiffeId, agent.selectors, false);
    log.record('agent', agent.spiffeId, 'create');
    return agent;
  });
}

/** The agent, or undefined. */
export async function getAgent(ctx: SqlContext, spiffeId: string): Promise<AttestedAgent | undefined> {
  return ctx.read('reading an agent', async (db) => {
    const row = await db.selectFrom('attested_agents').selectAll().where('spiffe_id', '=', spiffeId).executeTakeFirst();
    return row && rowToAgent(row);
  });
}

/** Applies `changes` (fields left undefined keep their value) to a stored agent. */
export async function updateAgent(ctx: SqlContext, spiffeId: string, changes: AgentUpdate, doing = 'updating an agent'): Promise<AttestedAgent> {
  text(spiffeId, 'spiffeId', false);
  if (changes === null || typeof changes !== 'object') throw invalid('changes', 'must be an object');
  return ctx.write(doing, async (trx, log) => {
    const row = await ctx.forUpdate(trx.selectFrom('attested_agents').selectAll().where('spiffe_id', '=', spiffeId)).executeTakeFirst();
    if (!row) throw notFound(spiffeId);
    const current = rowToAgent(row);
    const defined = Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined));
    const next: AttestedAgent = { ...normalizeAgent({ ...current, ...defined, spiffeId }), createdAt: current.createdAt, updatedAt: ctx.nowSeconds() };
    await trx.updateTable('attested_agents').set(columns(ctx, next)).where('spiffe_id', '=', spiffeId).execute();
    if (JSON.stringify(next.selectors) !== JSON.stringify(current.selectors)) await replaceSelectors(trx, spiffeId, next.selectors, true);
    log.record('agent', spiffeId, 'update');
    return next;
  });
}

/** Deletes and returns an agent. */
export async function deleteAgent(ctx: SqlContext, spiffeId: string): Promise<AttestedAgent> {
  return ctx.write('deleting an agent', async (trx, log) => {
    const row = await trx.deleteFrom('attested_agents').where('spiffe_id', '=', spiffeId).returningAll().executeTakeFirst();
    if (!row) throw notFound(spiffeId);
    log.record('agent', spiffeId, 'delete');
    return rowToAgent(row);
  });
}

function agentWhere(filter: AgentFilter | undefined): ((eb: ExpressionBuilder<Tables, 'attested_agents'>) => Expression<SqlBool>) | undefined {
  if (filter === undefined) return undefined;
  if (filter === null || typeof filter !== 'object') throw invalid('filter', 'must be an object');
  const f = filter;
  if (f.attestationType !== undefined) text(f.attestationType, 'filter.attestationType', true);
  if (f.banned !== undefined) flag(f.banned, 'filter.banned');
  if (f.canReattest !== undefined) flag(f.canReattest, 'filter.canReattest');
  if (f.expiresBefore !== undefined) seconds(f.expiresBefore, 'filter.expiresBefore');
  const bySelectors =
    f.selectors &&
    setMatchCondition(
      'attested_agents.spiffe_id',
      SELECTORS,
      canonicalSelectors(f.selectors.selectors, 'filter.selectors.selectors', false).map((s) => [s.type, s.value]),
      f.selectors.match,
      'filter.selectors',
    );
  return (eb) => {
    const conds: Expression<SqlBool>[] = bySelectors ? [bySelectors] : [];
    if (f.attestationType !== undefined) conds.push(eb('attested_agents.attestation_type', '=', f.attestationType));
    if (f.banned !== undefined) conds.push(eb('attested_agents.banned', '=', eb.lit(f.banned)));
    if (f.canReattest !== undefined) conds.push(eb('attested_agents.can_reattest', '=', eb.lit(f.canReattest)));
    if (f.expiresBefore !== undefined) conds.push(eb('attested_agents.cert_expires_at', '<', f.expiresBefore));
    return conds.length > 0 ? eb.and(conds) : eb.lit(true);
  };
}

/** Lists agents by SPIFFE ID. */
export async function listAgents(ctx: SqlContext, filter: AgentFilter | undefined, page: PageRequest | undefined): Promise<Page<AttestedAgent>> {
  const { limit, after } = readPageRequest(page);
  const where = agentWhere(filter);
  return ctx.read('listing agents', async (db) => {
    let q = db.selectFrom('attested_agents').selectAll();
    if (where) q = q.where(where);
    if (after !== undefined) q = q.where('attested_agents.spiffe_id', '>', after);
    q = q.orderBy('attested_agents.spiffe_id');
    if (limit !== undefined) q = q.limit(limit + 1);
    return toPage((await q.execute()).map(rowToAgent), limit, (a) => a.spiffeId);
  });
}

/** Counts agents matching `filter`. */
export async function countAgents(ctx: SqlContext, filter: AgentFilter | undefined): Promise<number> {
  const where = agentWhere(filter);
  return ctx.read('counting agents', async (db) => {
    let q = db.selectFrom('attested_agents').select((eb) => eb.fn.countAll().as('n'));
    if (where) q = q.where(where);
    return Number((await q.executeTakeFirstOrThrow()).n);
  });
}

import { createHash } from 'node:crypto';
import type { Expression, ExpressionBuilder, Insertable, Selectable, SqlBool, Transaction } from 'kysely';
import { DatastoreError } from './errors.js';
import { readPageRequest, toPage } from './pagination.js';
import { canonicalSelectors, canonicalStrings, selectorText } from './selectors.js';
import { setMatchCondition, type SetTable } from './set-match.js';
import { chunks, type ChangeLog, type SqlContext } from './sql-context.js';
import type { RegisteredEntriesTable, Tables } from './tables.js';
import type { EntryField, EntryFilter, EntryInput, Page, PageRequest, RegistrationEntry, Selector, UpdateEntryOptions } from './types.js';

type Entry = Omit<RegistrationEntry, 'id' | 'revisionNumber' | 'createdAt'>;
type EntryRow = Selectable<RegisteredEntriesTable>;

const FIELDS: readonly EntryField[] = ['spiffeId', 'parentId', 'selectors', 'x509SvidTtl', 'jwtSvidTtl', 'federatesWith', 'dnsNames', 'admin', 'downstream', 'hint', 'expiresAt'];
const SELECTORS: SetTable = { table: 'entry_selectors', parentColumn: 'entry_id', columns: ['type', 'value'] };
const FEDERATES_WITH: SetTable = { table: 'entry_federates_with', parentColumn: 'entry_id', columns: ['trust_domain'] };

function invalid(field: string, message: string): DatastoreError {
  return new DatastoreError('INVALID', `${field} ${message}`);
}

function nonEmpty(v: unknown, field: string): string {
  if (typeof v !== 'string' || v === '') throw invalid(field, 'must be a non-empty string');
  return v;
}

function whole(v: unknown, field: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(field, 'must be a non-negative whole number');
  return v;
}

function flag(v: unknown, field: string): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw invalid(field, 'must be a boolean');
  return v;
}

/** Structural checks and canonical form (what the datastore itself insists on). */
function normalizeEntry(input: EntryInput, at: string): Entry {
  if (input === null || typeof input !== 'object') throw invalid(at, 'must be an object');
  const hint = input.hint ?? '';
  if (typeof hint !== 'string') throw invalid(`${at}.hint`, 'must be a string');
  return {
    spiffeId: nonEmpty(input.spiffeId, `${at}.spiffeId`),
    parentId: nonEmpty(input.parentId, `${at}.parentId`),
    selectors: canonicalSelectors(input.selectors, `${at}.selectors`, false),
    x509SvidTtl: whole(input.x509SvidTtl, `${at}.x509SvidTtl`),
    jwtSvidTtl: whole(input.jwtSvidTtl, `${at}.jwtSvidTtl`),
    federatesWith: canonicalStrings(input.federatesWith, `${at}.federatesWith`, true),
    dnsNames: canonicalStrings(input.dnsNames, `${at}.dnsNames`, false),
    admin: flag(input.admin, `${at}.admin`),
    downstream: flag(input.downstream, `${at}.downstream`),
    hint,
    expiresAt: whole(input.expiresAt, `${at}.expiresAt`),
  };
}

/** The duplicate guard: one fixed-size column, whatever the lengths of IDs and selectors. */
function uniqueKey(e: Entry): string {
  return createHash('sha256').update(JSON.stringify([e.spiffeId, e.parentId, e.selectors.map(selectorText)])).digest('hex');
}

function duplicate(e: Pick<RegistrationEntry, 'spiffeId' | 'parentId'>, existingId: string, at: string): DatastoreError {
  return new DatastoreError(
    'ALREADY_EXISTS',
    `${at}: an entry with SPIFFE ID ${e.spiffeId}, parent ID ${e.parentId} and the same selectors already exists (${existingId})`,
    { key: existingId },
  );
}

function toRow(ctx: SqlContext, e: RegistrationEntry, key: string): Insertable<RegisteredEntriesTable> {
  return {
    id: e.id,
    spiffe_id: e.spiffeId,
    parent_id: e.parentId,
    unique_key: key,
    selectors: JSON.stringify(e.selectors),
    federates_with: JSON.stringify(e.federatesWith),
    dns_names: JSON.stringify(e.dnsNames),
    x509_svid_ttl: e.x509SvidTtl,
    jwt_svid_ttl: e.jwtSvidTtl,
    admin: ctx.bool(e.admin),
    downstream: ctx.bool(e.downstream),
    hint: e.hint,
    expires_at: e.expiresAt,
    revision_number: e.revisionNumber,
    created_at: e.createdAt,
  };
}

/** A stored row as an entry. */
export function rowToEntry(r: EntryRow): RegistrationEntry {
  return {
    id: r.id,
    spiffeId: r.spiffe_id,
    parentId: r.parent_id,
    selectors: JSON.parse(r.selectors) as Selector[],
    x509SvidTtl: Number(r.x509_svid_ttl),
    jwtSvidTtl: Number(r.jwt_svid_ttl),
    federatesWith: JSON.parse(r.federates_with) as string[],
    dnsNames: JSON.parse(r.dns_names) as string[],
    admin: Boolean(r.admin),
    downstream: Boolean(r.downstream),
    hint: r.hint,
    expiresAt: Number(r.expires_at),
    revisionNumber: Number(r.revision_number),
    createdAt: Number(r.created_at),
  };
}

async function insertSelectors(trx: Transaction<Tables>, entries: readonly Pick<RegistrationEntry, 'id' | 'selectors'>[]): Promise<void> {
  const rows = entries.flatMap((e) => e.selectors.map((s) => ({ entry_id: e.id, type: s.type, value: s.value })));
  for (const part of chunks(rows, 1000)) await trx.insertInto('entry_selectors').values(part).execute();
}

async function insertFederatesWith(trx: Transaction<Tables>, entries: readonly Pick<RegistrationEntry, 'id' | 'federatesWith'>[]): Promise<void> {
  const rows = entries.flatMap((e) => e.federatesWith.map((td) => ({ entry_id: e.id, trust_domain: td })));
  for (const part of chunks(rows, 1000)) await trx.insertInto('entry_federates_with').values(part).execute();
}

/**
 * Creates entries in one transaction: all or none.
 * @param batch whether errors name `entries[i]` (batch) or `entry`
 */
export async function createEntries(ctx: SqlContext, inputs: readonly EntryInput[], batch: boolean): Promise<RegistrationEntry[]> {
  if (!Array.isArray(inputs)) throw invalid('entries', 'must be a list');
  const at = (i: number) => (batch ? `entries[${i}]` : 'entry');
  const normalized = inputs.map((input, i) => normalizeEntry(input, at(i)));
  const keys = normalized.map(uniqueKey);
  const firstWithKey = new Map<string, number>();
  keys.forEach((k, i) => {
    const j = firstWithKey.get(k);
    if (j !== undefined) throw new DatastoreError('ALREADY_EXISTS', `${at(i)} duplicates entries[${j}] (same SPIFFE ID, parent ID and selectors)`);
    firstWithKey.set(k, i);
  });
  if (normalized.length === 0) return [];
  const createdAt = ctx.nowSeconds();
  const entries: RegistrationEntry[] = normalized.map((e) => ({ id: ctx.newId(), ...e, revisionNumber: 0, createdAt }));
  return ctx.write(batch ? 'creating entries' : 'creating an entry', async (trx, log) => {
    // Looked up first for a message naming the existing entry; the unique index still guards races.
    for (const part of chunks(keys, 500)) {
      const clash = await trx.selectFrom('registered_entries').select(['id', 'unique_key']).where('unique_key', 'in', part).orderBy('id').executeTakeFirst();
      if (clash) {
        const i = firstWithKey.get(clash.unique_key)!;
        throw duplicate(entries[i]!, clash.id, at(i));
      }
    }
    for (const part of chunks(entries.map((e, i) => toRow(ctx, e, keys[i]!)), 200)) {
      await trx.insertInto('registered_entries').values(part).execute();
    }
    await insertSelectors(trx, entries);
    await insertFederatesWith(trx, entries);
    for (const e of entries) log.record('entry', e.id, 'create');
    return entries;
  });
}

/** The entry with ID `id`, or undefined. */
export async function getEntry(ctx: SqlContext, id: string): Promise<RegistrationEntry | undefined> {
  if (typeof id !== 'string') throw invalid('id', 'must be a string');
  return ctx.read('reading an entry', async (db) => {
    const row = await db.selectFrom('registered_entries').selectAll().where('id', '=', id).executeTakeFirst();
    return row && rowToEntry(row);
  });
}

function sameList(a: readonly unknown[], b: readonly unknown[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Applies an update (see `EntryStore.updateEntry`). */
export async function updateEntry(ctx: SqlContext, id: string, changes: Partial<EntryInput>, options: UpdateEntryOptions = {}): Promise<RegistrationEntry> {
  nonEmpty(id, 'id');
  if (changes === null || typeof changes !== 'object') throw invalid('changes', 'must be an object');
  const fields = options.mask ?? FIELDS.filter((f) => changes[f] !== undefined);
  for (const f of fields) {
    if (!FIELDS.includes(f)) throw invalid('mask', `names an unknown field "${String(f)}" (known: ${FIELDS.join(', ')})`);
    if (changes[f] === undefined) throw invalid('mask', `names "${f}" but the changes have no value for it`);
  }
  const expected = options.expectedRevision;
  if (expected !== undefined && (!Number.isSafeInteger(expected) || expected < 0)) throw invalid('expectedRevision', 'must be a non-negative whole number');
  return ctx.write('updating an entry', async (trx, log) => {
    const row = await ctx.forUpdate(trx.selectFrom('registered_entries').selectAll().where('id', '=', id)).executeTakeFirst();
    if (!row) throw new DatastoreError('NOT_FOUND', `no entry with ID ${id}`, { key: id });
    const current = rowToEntry(row);
    if (expected !== undefined && current.revisionNumber !== expected) {
      throw new DatastoreError('CONFLICT', `entry ${id} is at revision ${current.revisionNumber}, not ${expected}: read it again and retry`, { key: id });
    }
    const patch: Partial<EntryInput> = {};
    for (const f of fields) Object.assign(patch, { [f]: changes[f] });
    const next = normalizeEntry({ ...current, ...patch }, 'entry');
    const key = uniqueKey(next);
    if (key !== row.unique_key) {
      const clash = await trx.selectFrom('registered_entries').select('id').where('unique_key', '=', key).executeTakeFirst();
      if (clash) throw duplicate(next, clash.id, 'entry');
    }
    const updated: RegistrationEntry = { id, ...next, revisionNumber: current.revisionNumber + 1, createdAt: current.createdAt };
    const { id: _id, created_at: _created, ...set } = toRow(ctx, updated, key);
    const res = await trx
      .updateTable('registered_entries')
      .set(set)
      .where('id', '=', id)
      .where('revision_number', '=', current.revisionNumber)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) throw new DatastoreError('CONFLICT', `entry ${id} changed concurrently: read it again and retry`, { key: id });
    if (!sameList(current.selectors, updated.selectors)) {
      await trx.deleteFrom('entry_selectors').where('entry_id', '=', id).execute();
      await insertSelectors(trx, [updated]);
    }
    if (!sameList(current.federatesWith, updated.federatesWith)) {
      await trx.deleteFrom('entry_federates_with').where('entry_id', '=', id).execute();
      await insertFederatesWith(trx, [updated]);
    }
    log.record('entry', id, 'update');
    return updated;
  });
}

/** Deletes and returns an entry (its selector and trust domain rows go with it: ON DELETE CASCADE). */
export async function deleteEntry(ctx: SqlContext, id: string): Promise<RegistrationEntry> {
  nonEmpty(id, 'id');
  return ctx.write('deleting an entry', async (trx, log) => {
    const row = await trx.deleteFrom('registered_entries').where('id', '=', id).returningAll().executeTakeFirst();
    if (!row) throw new DatastoreError('NOT_FOUND', `no entry with ID ${id}`, { key: id });
    log.record('entry', id, 'delete');
    return rowToEntry(row);
  });
}

/** A WHERE condition for `filter`, or undefined when it filters nothing. */
function entryWhere(filter: EntryFilter | undefined): ((eb: ExpressionBuilder<Tables, 'registered_entries'>) => Expression<SqlBool>) | undefined {
  if (filter === undefined) return undefined;
  if (filter === null || typeof filter !== 'object') throw invalid('filter', 'must be an object');
  const f = filter;
  for (const k of ['spiffeId', 'parentId', 'hint'] as const) {
    if (f[k] !== undefined && typeof f[k] !== 'string') throw invalid(`filter.${k}`, 'must be a string');
  }
  if (f.downstream !== undefined && typeof f.downstream !== 'boolean') throw invalid('filter.downstream', 'must be a boolean');
  const bySelectors = f.selectors && {
    match: f.selectors.match,
    elements: canonicalSelectors(f.selectors.selectors, 'filter.selectors.selectors', false).map((s) => [s.type, s.value]),
  };
  const byTrustDomains = f.federatesWith && {
    match: f.federatesWith.match,
    elements: canonicalStrings(f.federatesWith.trustDomains, 'filter.federatesWith.trustDomains', true).map((td) => [td]),
  };
  // Built eagerly so that a bad filter throws INVALID before any query runs.
  const raw = [
    bySelectors && setMatchCondition('registered_entries.id', SELECTORS, bySelectors.elements, bySelectors.match, 'filter.selectors'),
    byTrustDomains && setMatchCondition('registered_entries.id', FEDERATES_WITH, byTrustDomains.elements, byTrustDomains.match, 'filter.federatesWith'),
  ].filter((c) => c !== undefined);
  const hasColumns = f.spiffeId !== undefined || f.parentId !== undefined || f.hint !== undefined || f.downstream !== undefined;
  if (!hasColumns && raw.length === 0) return undefined;
  return (eb) => {
    const conds: Expression<SqlBool>[] = [...raw];
    if (f.spiffeId !== undefined) conds.push(eb('registered_entries.spiffe_id', '=', f.spiffeId));
    if (f.parentId !== undefined) conds.push(eb('registered_entries.parent_id', '=', f.parentId));
    if (f.hint !== undefined) conds.push(eb('registered_entries.hint', '=', f.hint));
    if (f.downstream !== undefined) conds.push(eb('registered_entries.downstream', '=', f.downstream ? eb.lit(true) : eb.lit(false)));
    return eb.and(conds);
  };
}

/** Lists entries (see `EntryStore.listEntries`). */
export async function listEntries(ctx: SqlContext, filter: EntryFilter | undefined, page: PageRequest | undefined): Promise<Page<RegistrationEntry>> {
  const { limit, after } = readPageRequest(page);
  const where = entryWhere(filter);
  return ctx.read('listing entries', async (db) => {
    let q = db.selectFrom('registered_entries').selectAll();
    if (where) q = q.where(where);
    if (after !== undefined) q = q.where('registered_entries.id', '>', after);
    q = q.orderBy('registered_entries.id');
    if (limit !== undefined) q = q.limit(limit + 1);
    const rows = await q.execute();
    return toPage(rows.map(rowToEntry), limit, (e) => e.id);
  });
}

/** Counts entries matching `filter`. */
export async function countEntries(ctx: SqlContext, filter: EntryFilter | undefined): Promise<number> {
  const where = entryWhere(filter);
  return ctx.read('counting entries', async (db) => {
    let q = db.selectFrom('registered_entries').select((eb) => eb.fn.countAll().as('n'));
    if (where) q = q.where(where);
    const row = await q.executeTakeFirstOrThrow();
    return Number(row.n);
  });
}

/** Every entry whose parent is in `parentIds`, by ID (uses the parent_id index). */
export async function listEntriesForParents(ctx: SqlContext, parentIds: readonly string[]): Promise<RegistrationEntry[]> {
  const ids = canonicalStrings(parentIds, 'parentIds', true);
  if (ids.length === 0) return [];
  return ctx.read('listing entries by parent', async (db) => {
    const out: RegistrationEntry[] = [];
    for (const part of chunks(ids, 500)) {
      const rows = await db.selectFrom('registered_entries').selectAll().where('parent_id', 'in', part).orderBy('id').execute();
      for (const r of rows) out.push(rowToEntry(r));
    }
    if (ids.length > 500) out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return out;
  });
}

/** The first `limit` entries (by ID) that federate with `trustDomain`: their IDs and SPIFFE IDs. */
export async function federatingEntries(trx: Transaction<Tables>, trustDomain: string, limit: number): Promise<{ id: string; spiffeId: string }[]> {
  const rows = await trx
    .selectFrom('entry_federates_with')
    .innerJoin('registered_entries', 'registered_entries.id', 'entry_federates_with.entry_id')
    .select(['registered_entries.id', 'registered_entries.spiffe_id'])
    .where('entry_federates_with.trust_domain', '=', trustDomain)
    .orderBy('registered_entries.id')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ id: r.id, spiffeId: r.spiffe_id }));
}

/**
 * Within a bundle deletion: deletes the entries that federate with
 * `trustDomain` (`delete`) or removes it from their lists (`dissociate`,
 * bumping their revision); returns how many entries were affected.
 */
export async function detachTrustDomain(
  trx: Transaction<Tables>,
  log: ChangeLog,
  trustDomain: string,
  mode: 'delete' | 'dissociate' | 'count',
): Promise<number> {
  const ids = (
    await trx.selectFrom('entry_federates_with').select('entry_id').where('trust_domain', '=', trustDomain).orderBy('entry_id').execute()
  ).map((r) => r.entry_id);
  if (mode === 'count' || ids.length === 0) return ids.length;
  for (const part of chunks(ids, 500)) {
    if (mode === 'delete') {
      await trx.deleteFrom('registered_entries').where('id', 'in', part).execute();
      for (const id of part) log.record('entry', id, 'delete');
      continue;
    }
    const rows = await trx.selectFrom('registered_entries').select(['id', 'federates_with', 'revision_number']).where('id', 'in', part).execute();
    for (const r of rows) {
      const list = (JSON.parse(r.federates_with) as string[]).filter((td) => td !== trustDomain);
      await trx
        .updateTable('registered_entries')
        .set({ federates_with: JSON.stringify(list), revision_number: Number(r.revision_number) + 1 })
        .where('id', '=', r.id)
        .execute();
      log.record('entry', r.id, 'update');
    }
    await trx.deleteFrom('entry_federates_with').where('trust_domain', '=', trustDomain).where('entry_id', 'in', part).execute();
  }
  return ids.length;
}

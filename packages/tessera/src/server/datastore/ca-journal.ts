import { DatastoreError } from './errors.js';
import type { SqlContext } from './sql-context.js';

/** The CA journal of server `serverId`, or undefined. */
export async function getCaJournal(ctx: SqlContext, serverId: string): Promise<string | undefined> {
  return ctx.read('reading a CA journal', async (db) => (await db.selectFrom('ca_journals').select('data').where('server_id', '=', serverId).executeTakeFirst())?.data);
}

/** Replaces (or creates) the CA journal of server `serverId`. Not a change-feed event: only its own server reads it. */
export async function setCaJournal(ctx: SqlContext, serverId: string, journal: string): Promise<void> {
  if (typeof serverId !== 'string' || serverId === '') throw new DatastoreError('INVALID', 'server ID must be a non-empty string');
  if (typeof journal !== 'string') throw new DatastoreError('INVALID', 'CA journal must be a string');
  const now = ctx.nowSeconds();
  await ctx.write('storing a CA journal', (trx) =>
    trx
      .insertInto('ca_journals')
      .values({ server_id: serverId, data: journal, updated_at: now })
      .onConflict((oc) => oc.column('server_id').doUpdateSet({ data: journal, updated_at: now }))
      .execute(),
  );
}

/** Every journal whose server ID starts with `prefix`, by server ID (HA: each replica's bundle contribution). */
export async function listCaJournals(ctx: SqlContext, prefix = ''): Promise<{ serverId: string; journal: string; updatedAt: number }[]> {
  return ctx.read('listing CA journals', async (db) => {
    const rows = await db.selectFrom('ca_journals').select(['server_id', 'data', 'updated_at']).orderBy('server_id').execute();
    return rows.filter((r) => r.server_id.startsWith(prefix)).map((r) => ({ serverId: r.server_id, journal: r.data, updatedAt: Number(r.updated_at) }));
  });
}

import type { Selectable } from 'kysely';
import { DatastoreError } from './errors.js';
import type { SqlContext } from './sql-context.js';
import type { JoinTokensTable } from './tables.js';
import type { JoinToken } from './types.js';

function rowToToken(r: Selectable<JoinTokensTable>): JoinToken {
  return r.spiffe_id === null || r.spiffe_id === ''
    ? { token: r.token, expiresAt: Number(r.expires_at) }
    : { token: r.token, expiresAt: Number(r.expires_at), spiffeId: r.spiffe_id };
}

function checkToken(token: unknown): string {
  if (typeof token !== 'string' || token === '') throw new DatastoreError('INVALID', 'join token must be a non-empty string');
  return token;
}

function checkNow(now: unknown): number {
  if (typeof now !== 'number' || !Number.isSafeInteger(now) || now < 0) throw new DatastoreError('INVALID', 'now must be epoch seconds');
  return now;
}

/** Stores a join token. */
export async function createJoinToken(ctx: SqlContext, t: JoinToken): Promise<JoinToken> {
  if (t === null || typeof t !== 'object') throw new DatastoreError('INVALID', 'join token must be an object');
  const token = checkToken(t.token);
  const expiresAt = t.expiresAt;
  if (!Number.isSafeInteger(expiresAt) || expiresAt < 0) throw new DatastoreError('INVALID', 'join token expiresAt must be epoch seconds');
  if (t.spiffeId !== undefined && (typeof t.spiffeId !== 'string' || t.spiffeId === '')) {
    throw new DatastoreError('INVALID', 'join token spiffeId must be a non-empty string when given');
  }
  const stored: JoinToken = t.spiffeId === undefined ? { token, expiresAt } : { token, expiresAt, spiffeId: t.spiffeId };
  return ctx.write('creating a join token', async (trx) => {
    const exists = await trx.selectFrom('join_tokens').select('token').where('token', '=', token).executeTakeFirst();
    // The token is a secret: the error does not echo it.
    if (exists) throw new DatastoreError('ALREADY_EXISTS', 'a join token with this value already exists');
    await trx.insertInto('join_tokens').values({ token, expires_at: expiresAt, spiffe_id: stored.spiffeId ?? null }).execute();
    return stored;
  });
}

/** The token, or undefined. */
export async function getJoinToken(ctx: SqlContext, token: string): Promise<JoinToken | undefined> {
  return ctx.read('reading a join token', async (db) => {
    const row = await db.selectFrom('join_tokens').selectAll().where('token', '=', token).executeTakeFirst();
    return row && rowToToken(row);
  });
}

/** Every token by expiry. */
export async function listJoinTokens(ctx: SqlContext): Promise<JoinToken[]> {
  return ctx.read('listing join tokens', async (db) =>
    (await db.selectFrom('join_tokens').selectAll().orderBy('expires_at').orderBy('token').execute()).map(rowToToken),
  );
}

/** Deletes a token. */
export async function deleteJoinToken(ctx: SqlContext, token: string): Promise<void> {
  checkToken(token);
  await ctx.write('deleting a join token', async (trx) => {
    const res = await trx.deleteFrom('join_tokens').where('token', '=', token).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw new DatastoreError('NOT_FOUND', 'no such join token');
  });
}

/**
 * Deletes and returns the token in one statement (`DELETE … RETURNING`): on
 * PostgreSQL a concurrent second DELETE waits for the first and then finds
 * no row; SQLite runs transactions one at a time. So exactly one caller wins.
 */
export async function consumeJoinToken(ctx: SqlContext, token: string, now: number): Promise<JoinToken> {
  checkToken(token);
  checkNow(now);
  const row = await ctx.write('consuming a join token', (trx) => trx.deleteFrom('join_tokens').where('token', '=', token).returningAll().executeTakeFirst());
  if (!row) throw new DatastoreError('NOT_FOUND', 'join token does not exist or has already been used');
  const t = rowToToken(row);
  if (t.expiresAt <= now) throw new DatastoreError('EXPIRED', `join token expired at ${new Date(t.expiresAt * 1000).toISOString()}`);
  return t;
}

/** Deletes tokens expired at `now`. */
export async function pruneJoinTokens(ctx: SqlContext, now: number): Promise<number> {
  checkNow(now);
  const res = await ctx.write('pruning join tokens', (trx) => trx.deleteFrom('join_tokens').where('expires_at', '<=', now).executeTakeFirst());
  return Number(res.numDeletedRows);
}

import { sql, type Kysely, type SelectQueryBuilder, type SqlBool, type Transaction } from 'kysely';
import { DatastoreError, toDatastoreError } from './errors.js';
import type { SqlDialect, Tables } from './tables.js';
import type { Change, ChangeKind } from './types.js';

/** The PostgreSQL NOTIFY channel on which commits are announced. */
export const CHANGES_CHANNEL = 'tessera_changes';

/**
 * Advisory lock taken just before a transaction appends to `changes`, and
 * held until it commits. Sequence values are handed out at insert time but
 * become visible at commit; without the lock a reader could see revision 11
 * commit before 10 and skip 10 forever. With it, revisions become visible in
 * order. It is the last thing a transaction does, so it is held only for the
 * commit itself.
 */
const CHANGE_LOCK = 0x7e55e7a2;

/** Mutations a transaction made, appended to `changes` before it commits. */
export class ChangeLog {
  readonly pending: { kind: ChangeKind; key: string; op: Change['op'] }[] = [];

  /** Notes one mutated row. */
  record(kind: ChangeKind, key: string, op: Change['op']): void {
    this.pending.push({ kind, key, op });
  }
}

/** Splits `items` into runs of at most `size` (statement parameter limits). */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * What every table module needs: the query builder, the dialect's few
 * differences, the injected clock and ID source, and `write`, which runs a
 * function in a transaction and appends the change log in that same
 * transaction.
 */
export class SqlContext {
  #closed = false;

  constructor(
    readonly db: Kysely<Tables>,
    readonly dialect: SqlDialect,
    /** Epoch milliseconds, like `Date.now`. */
    readonly clock: () => number,
    readonly newId: () => string,
    /** Called after a transaction that recorded changes commits. */
    private readonly afterCommit: () => void,
  ) {}

  /** The clock in whole epoch seconds. */
  nowSeconds(): number {
    return Math.floor(this.clock() / 1000);
  }

  /** A boolean as the dialect stores it. */
  bool(v: boolean): SqlBool {
    return this.dialect === 'postgres' ? v : v ? 1 : 0;
  }

  /** Adds `FOR UPDATE` where the dialect has it (SQLite transactions are already serial). */
  forUpdate<DB, TB extends keyof DB, O>(q: SelectQueryBuilder<DB, TB, O>): SelectQueryBuilder<DB, TB, O> {
    return this.dialect === 'postgres' ? q.forUpdate() : q;
  }

  /** Makes every later read or write fail with CLOSED. */
  markClosed(): void {
    this.#closed = true;
  }

  #assertOpen(): void {
    if (this.#closed) throw new DatastoreError('CLOSED', 'the datastore was closed');
  }

  /** Runs a read, mapping driver errors to DatastoreErrors. */
  async read<T>(doing: string, fn: (db: Kysely<Tables>) => Promise<T>): Promise<T> {
    this.#assertOpen();
    try {
      return await fn(this.db);
    } catch (e) {
      throw toDatastoreError(e, doing);
    }
  }

  /**
   * Runs `fn` in one transaction; the changes it records are appended to
   * the change log (and, on PostgreSQL, announced with NOTIFY) in the same
   * transaction, so a change is in the feed if and only if it committed.
   */
  async write<T>(doing: string, fn: (trx: Transaction<Tables>, log: ChangeLog) => Promise<T>): Promise<T> {
    this.#assertOpen();
    let changed = false;
    let result: T;
    try {
      result = await this.db.transaction().execute(async (trx) => {
        const log = new ChangeLog();
        const r = await fn(trx, log);
        if (log.pending.length > 0) {
          await this.#append(trx, log);
          changed = true;
        }
        return r;
      });
    } catch (e) {
      throw toDatastoreError(e, doing);
    }
    if (changed) this.afterCommit();
    return result;
  }

  async #append(trx: Transaction<Tables>, log: ChangeLog): Promise<void> {
    const at = this.nowSeconds();
    if (this.dialect === 'postgres') await sql`select pg_advisory_xact_lock(${sql.lit(CHANGE_LOCK)})`.execute(trx);
    for (const part of chunks(log.pending, 500)) {
      await trx.insertInto('changes').values(part.map((c) => ({ kind: c.kind, key: c.key, op: c.op, at }))).execute();
    }
    // Delivered by PostgreSQL only at commit; readers re-read `changes`, so the payload is informational.
    if (this.dialect === 'postgres') await sql`select pg_notify(${CHANGES_CHANNEL}, '')`.execute(trx);
  }
}

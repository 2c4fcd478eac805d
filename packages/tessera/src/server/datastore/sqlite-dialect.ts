import { setTimeout as sleep } from 'node:timers/promises';
import { CompiledQuery, SqliteDialect, SqliteDriver, type DatabaseConnection, type Driver, type SqliteDialectConfig } from 'kysely';

/**
 * How long one statement may wait, synchronously, for a lock held by another
 * connection (SQLite's `busy_timeout`). better-sqlite3 waits on the calling
 * thread, i.e. with the event loop blocked: kept tiny, and longer waits for
 * the write lock happen asynchronously in `beginTransaction` below.
 */
export const SYNC_BUSY_TIMEOUT_MS = 10;

function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/**
 * Kysely's SQLite driver, but write transactions start with `BEGIN
 * IMMEDIATE`: they take SQLite's write lock up front, so a transaction that
 * reads and then writes never fails when it upgrades its lock. When another
 * connection holds the lock (another process, or a second datastore on the
 * same file), BEGIN is retried with an asynchronous backoff for up to
 * `lockTimeoutMs`, so the event loop keeps running — and the holder, if it
 * is in this process, can finish.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  readonly #lockTimeoutMs: number;

  constructor(config: SqliteDialectConfig, lockTimeoutMs: number) {
    super(config);
    this.#lockTimeoutMs = lockTimeoutMs;
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    const deadline = performance.now() + this.#lockTimeoutMs;
    for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
      try {
        await connection.executeQuery(CompiledQuery.raw('begin immediate'));
        return;
      } catch (e) {
        if (!isBusy(e) || performance.now() >= deadline) throw e;
      }
      await sleep(delay);
    }
  }
}

/** {@link SqliteDialect} with `BEGIN IMMEDIATE` transactions that wait for the write lock without blocking. */
export class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  readonly #lockTimeoutMs: number;

  constructor(config: SqliteDialectConfig, lockTimeoutMs: number) {
    super(config);
    this.#config = config;
    this.#lockTimeoutMs = lockTimeoutMs;
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config, this.#lockTimeoutMs);
  }
}

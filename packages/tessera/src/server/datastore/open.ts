import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Datastore } from './datastore.js';
import { DatastoreError, describeError, toDatastoreError } from './errors.js';
import { migrate } from './migrations.js';
import { redactUrl, type DatastoreSpec } from './spec.js';
import { SqlDatastore, type SqlDatastoreOptions } from './sql-datastore.js';
import { ImmediateSqliteDialect, SYNC_BUSY_TIMEOUT_MS } from './sqlite-dialect.js';
import type { SqlDialect, Tables } from './tables.js';
import type { ChangeRetention } from './types.js';
import { uuidV7Source } from './uuid.js';

/** Options of {@link openDatastore}; every one has a default. */
export interface DatastoreOptions {
  /** Epoch milliseconds (default `Date.now`); timestamps are stored in whole seconds. */
  clock?: () => number;
  /** Entry ID source (default: time-ordered UUIDv7 from the clock). */
  newId?: () => string;
  /** Receives background failures: change-feed reads, LISTEN reconnections, pruning, listener exceptions (default: a process warning). */
  onError?: (err: unknown) => void;
  /** PostgreSQL: give up connecting after this long (ms, default 5000). */
  connectTimeoutMs?: number;
  /** PostgreSQL: pool size (default 10). */
  poolSize?: number;
  /** SQLite: wait this long (asynchronously) for the write lock held by another connection (ms, default 5000). */
  busyTimeoutMs?: number;
  /** Re-read the change log this often even without a signal (ms; default 1000 on PostgreSQL, off on SQLite, where every commit is local). */
  pollIntervalMs?: number;
  /** What `pruneChanges` keeps (defaults: 10000 changes, 1 hour). */
  retention?: ChangeRetention;
  /** How often to prune the change log and expired join tokens (ms, default 10 minutes; 0 = never). */
  pruneIntervalMs?: number;
}

/** int8 (BIGINT, COUNT) as a JS number: revisions and epoch seconds stay far below 2^53. */
const PG_TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

function sqliteDatabase(path: string): Database.Database {
  let database: Database.Database | undefined;
  try {
    const created = path !== ':memory:' && !existsSync(path);
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    database = new Database(path, { timeout: SYNC_BUSY_TIMEOUT_MS });
    // Join tokens are secrets: the file (and SQLite's -wal/-shm, which copy its mode) is for the server only.
    if (created) chmodSync(path, 0o600);
    // WAL + synchronous=FULL: a commit is on disk when it returns, so kill -9 or power loss loses no committed change.
    const mode = database.pragma('journal_mode = WAL', { simple: true });
    if (path !== ':memory:' && String(mode).toLowerCase() !== 'wal') throw new Error(`cannot switch to WAL journal mode (got ${String(mode)})`);
    database.pragma('synchronous = FULL');
    database.pragma('foreign_keys = ON');
    database.prepare('select count(*) from sqlite_master').get();
    return database;
  } catch (e) {
    database?.close();
    throw new DatastoreError('DATASTORE_UNREACHABLE', `cannot open SQLite database ${path}: ${describeError(e)}`, { cause: e });
  }
}

function postgresConfig(url: string, o: DatastoreOptions): pg.ClientConfig {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new DatastoreError('INVALID', 'the PostgreSQL URL is not a URL (expected postgres://user:password@host:5432/database)');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new DatastoreError('INVALID', `the PostgreSQL URL must start with postgres:// or postgresql://, got ${u.protocol}//`);
  }
  return {
    connectionString: url,
    connectionTimeoutMillis: o.connectTimeoutMs ?? 5000,
    keepAlive: true,
    application_name: 'tessera-server',
    types: PG_TYPES,
  };
}

async function postgresPool(url: string, config: pg.ClientConfig, o: DatastoreOptions, onError: (e: unknown) => void): Promise<pg.Pool> {
  const pool = new pg.Pool({ ...config, max: o.poolSize ?? 10 });
  // An idle client dying (server restart) must not crash the process; the next query reconnects.
  pool.on('error', onError);
  try {
    const client = await pool.connect();
    client.release();
    return pool;
  } catch (e) {
    await pool.end().catch(() => {});
    throw new DatastoreError('DATASTORE_UNREACHABLE', `cannot reach PostgreSQL at ${redactUrl(url)}: ${describeError(e)}`, { cause: e });
  }
}

/**
 * Opens (creating if needed) the datastore and brings its schema up to date.
 * @throws DatastoreError DATASTORE_UNREACHABLE (one-line message saying what
 * failed), SCHEMA_TOO_NEW, INVALID (malformed URL)
 * @example
 * ```ts
 * const ds = await openDatastore({ kind: 'postgres', url: 'postgres://tessera@db/tessera' });
 * try {
 *   await ds.createEntry({ spiffeId: 'spiffe://td/web', parentId: 'spiffe://td/agent/1', selectors: [{ type: 'unix', value: 'uid:1000' }] });
 * } finally {
 *   await ds.close();
 * }
 * ```
 */
export async function openDatastore(spec: DatastoreSpec, options: DatastoreOptions = {}): Promise<Datastore> {
  const clock = options.clock ?? Date.now;
  const onError = options.onError ?? ((e: unknown) => process.emitWarning(`datastore: ${describeError(e)}`, 'DatastoreWarning'));
  let db: Kysely<Tables>;
  let dialect: SqlDialect;
  let listen: pg.ClientConfig | undefined;
  if (spec.kind === 'sqlite') {
    if (typeof spec.path !== 'string' || spec.path === '') throw new DatastoreError('INVALID', 'the SQLite path must be a non-empty string');
    dialect = 'sqlite';
    db = new Kysely<Tables>({ dialect: new ImmediateSqliteDialect({ database: sqliteDatabase(spec.path) }, options.busyTimeoutMs ?? 5000) });
  } else if (spec.kind === 'postgres') {
    dialect = 'postgres';
    listen = postgresConfig(spec.url, options);
    db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool: await postgresPool(spec.url, listen, options, onError) }) });
  } else {
    throw new DatastoreError('INVALID', `unknown datastore kind ${String((spec as { kind?: unknown }).kind)}`);
  }
  let version: number;
  try {
    version = await migrate(db, dialect, Math.floor(clock() / 1000));
  } catch (e) {
    await db.destroy().catch(() => {});
    throw toDatastoreError(e, 'migrating the schema');
  }
  const sqlOptions: SqlDatastoreOptions = {
    clock,
    newId: options.newId ?? uuidV7Source(clock),
    onError,
    pollIntervalMs: options.pollIntervalMs ?? (dialect === 'postgres' ? 1000 : 0),
    retention: { keep: options.retention?.keep ?? 10_000, maxAgeSeconds: options.retention?.maxAgeSeconds ?? 3600 },
    pruneIntervalMs: options.pruneIntervalMs ?? 600_000,
    ...(listen ? { listen } : {}),
  };
  return new SqlDatastore(db, dialect, version, sqlOptions);
}

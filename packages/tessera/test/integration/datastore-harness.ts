/**
 * Runs the datastore's behavioural tests against both dialects: SQLite in a
 * temp dir and PostgreSQL in a throwaway cluster (test/helpers/postgres.ts),
 * one cluster per test file, one database per test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.js';
import { openDatastore, type Datastore, type DatastoreOptions, type DatastoreSpec } from '../../src/server/datastore/index.js';

/** One dialect under test. */
export interface Backend {
  readonly name: 'sqlite' | 'postgres';
  /** Starts what the dialect needs (a PostgreSQL cluster). */
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A new, empty database. */
  fresh(): Promise<DatastoreSpec>;
  /** Runs one raw SQL statement (no parameters) and returns its rows. */
  exec(spec: DatastoreSpec, text: string): Promise<Record<string, unknown>[]>;
}

class SqliteBackend implements Backend {
  readonly name = 'sqlite' as const;
  #dir = '';
  #n = 0;
  async setup(): Promise<void> {
    this.#dir = mkdtempSync(join(tmpdir(), 'tessera-ds-'));
  }
  async teardown(): Promise<void> {
    if (this.#dir) rmSync(this.#dir, { recursive: true, force: true });
  }
  async fresh(): Promise<DatastoreSpec> {
    return { kind: 'sqlite', path: join(this.#dir, `db${++this.#n}`, 'datastore.sqlite3') };
  }
  async exec(spec: DatastoreSpec, text: string): Promise<Record<string, unknown>[]> {
    if (spec.kind !== 'sqlite') throw new Error('not a SQLite spec');
    const db = new Database(spec.path);
    try {
      const stmt = db.prepare(text);
      return stmt.reader ? (stmt.all() as Record<string, unknown>[]) : (stmt.run(), []);
    } finally {
      db.close();
    }
  }
}

class PostgresBackend implements Backend {
  readonly name = 'postgres' as const;
  cluster: PostgresCluster | undefined;
  async setup(): Promise<void> {
    this.cluster = await startPostgres();
  }
  async teardown(): Promise<void> {
    await this.cluster?.stop();
  }
  async fresh(): Promise<DatastoreSpec> {
    if (!this.cluster) throw new Error('PostgreSQL cluster not started (setup failed?)');
    return { kind: 'postgres', url: await this.cluster.createDatabase() };
  }
  async exec(spec: DatastoreSpec, text: string): Promise<Record<string, unknown>[]> {
    if (spec.kind !== 'postgres' || !this.cluster) throw new Error('not a PostgreSQL spec');
    return (await this.cluster.exec(spec.url, text)).rows as Record<string, unknown>[];
  }
}

/** Both dialects, SQLite first. */
export function backends(): [Backend, PostgresBackend] {
  return [new SqliteBackend(), new PostgresBackend()];
}

/** A clock tests move by hand (epoch seconds). */
export class FakeClock {
  seconds: number;
  constructor(seconds = 1_900_000_000) {
    this.seconds = seconds;
  }
  /** For `DatastoreOptions.clock` (milliseconds). */
  readonly now = (): number => this.seconds * 1000;
}

/** Opens a datastore and closes it when the test ends. */
export async function openForTest(
  t: { after(fn: () => Promise<void> | void): void },
  spec: DatastoreSpec,
  options: DatastoreOptions = {},
): Promise<Datastore> {
  const ds = await openDatastore(spec, { pruneIntervalMs: 0, onError: () => {}, ...options });
  t.after(() => ds.close());
  return ds;
}

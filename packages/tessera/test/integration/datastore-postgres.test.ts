/**
 * What only PostgreSQL has: several server replicas on one database. Each
 * "replica" is its own Datastore (its own pool and LISTEN connection), as
 * separate server processes would be.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.js';
import { openForTest } from './datastore-harness.js';
import { DatastoreError, openDatastore, type Change, type ChangeEvent, type Datastore, type EntryInput } from '../../src/server/datastore/index.js';

function entry(n: number | string): EntryInput {
  return { spiffeId: `spiffe://td/w/${n}`, parentId: 'spiffe://td/agent/1', selectors: [{ type: 'unix', value: `uid:${n}` }] };
}

/** Resolves when `listener` has seen an entry change for `key` (rejects after 5 s). */
function changeFor(seen: Map<string, number>, waiters: Map<string, () => void>, key: string): Promise<number> {
  const at = seen.get(key);
  if (at !== undefined) return Promise.resolve(at);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no change for ${key} within 5 s`)), 5000);
    waiters.set(key, () => {
      clearTimeout(timer);
      resolve(seen.get(key)!);
    });
  });
}

function tracker(ds: Datastore, from: number) {
  const seen = new Map<string, number>();
  const waiters = new Map<string, () => void>();
  const events: ChangeEvent[] = [];
  const watch = ds.watch(from, (c) => {
    events.push(c);
    if (c.kind !== 'entry') return;
    seen.set(c.key, performance.now());
    waiters.get(c.key)?.();
  });
  return { events, wait: (key: string) => changeFor(seen, waiters, key), close: () => watch.close() };
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

describe('datastore on a shared PostgreSQL (server replicas)', () => {
  let pg: PostgresCluster;
  before(async () => {
    pg = await startPostgres();
  });
  after(() => pg?.stop());

  test('a change committed through replica A reaches a watcher on replica B within 1 s', async (t) => {
    const url = await pg.createDatabase();
    const a = await openForTest(t, { kind: 'postgres', url });
    // No safety poll on B: delivery must come from NOTIFY.
    const b = await openForTest(t, { kind: 'postgres', url }, { pollIntervalMs: 0 });
    t.diagnostic(`test cluster started in ${pg.startupMs.toFixed(0)} ms (initdb + pg_ctl start)`);
    const w = tracker(b, await b.currentRevision());
    t.after(() => w.close());
    // The LISTEN connection is up once B has caught up with a first change.
    await w.wait((await a.createEntry(entry('warm-up'))).id);
    const fromCall: number[] = [];
    const fromCommit: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t0 = performance.now();
      const e = await a.createEntry(entry(i));
      const committed = performance.now();
      const seenAt = await w.wait(e.id);
      fromCall.push(seenAt - t0);
      fromCommit.push(Math.max(0, seenAt - committed));
    }
    const fmt = (xs: number[]) => `median ${quantile(xs, 0.5).toFixed(1)} ms, p95 ${quantile(xs, 0.95).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms`;
    t.diagnostic(`A.createEntry() called → B's watcher: ${fmt(fromCall)}`);
    t.diagnostic(`A.createEntry() returned (committed) → B's watcher: ${fmt(fromCommit)}`);
    assert.ok(Math.max(...fromCall) < 1000, `every change within 1 s: ${fmt(fromCall)}`);
  });

  test('concurrent writers on two replicas: a third sees every change once, in revision order', async (t) => {
    const url = await pg.createDatabase();
    const a = await openForTest(t, { kind: 'postgres', url });
    const b = await openForTest(t, { kind: 'postgres', url });
    const c = await openForTest(t, { kind: 'postgres', url }, { pollIntervalMs: 0 });
    const w = tracker(c, await c.currentRevision());
    t.after(() => w.close());
    const made = (await Promise.all([
      ...Array.from({ length: 60 }, (_, i) => a.createEntry(entry(`a${i}`))),
      ...Array.from({ length: 60 }, (_, i) => b.createEntry(entry(`b${i}`))),
      ...Array.from({ length: 10 }, (_, i) => b.createEntries([entry(`batch${i}-1`), entry(`batch${i}-2`)])),
    ])).flat();
    await Promise.all(made.map((e) => w.wait(e.id)));
    const changes = w.events.filter((e): e is Change => e.kind === 'entry');
    assert.equal(changes.length, made.length, 'each change exactly once');
    assert.deepEqual(new Set(changes.map((e) => e.key)), new Set(made.map((e) => e.id)));
    const revs = changes.map((e) => e.revision);
    assert.ok(revs.every((r, i) => i === 0 || r > revs[i - 1]!), 'strictly increasing revisions');
    assert.equal(w.events.filter((e) => e.kind === 'resync').length, 0);
  });

  test('a watcher keeps receiving after its LISTEN connection is killed', async (t) => {
    const url = await pg.createDatabase();
    const a = await openForTest(t, { kind: 'postgres', url });
    const b = await openForTest(t, { kind: 'postgres', url }, { pollIntervalMs: 0 });
    const w = tracker(b, await b.currentRevision());
    t.after(() => w.close());
    await w.wait((await a.createEntry(entry('before'))).id);
    const killed = await pg.exec(url, "select pg_terminate_backend(pid) as ok from pg_stat_activity where datname = current_database() and query ilike 'LISTEN%'");
    assert.equal(killed.rowCount, 1, 'found the LISTEN connection');
    // Committed while B has no LISTEN connection: found by re-reading after reconnecting.
    const during = await a.createEntry(entry('during'));
    await w.wait(during.id);
    const later = await a.createEntry(entry('after'));
    await w.wait(later.id);
  });

  test('replicas starting at once on an empty database migrate it once', async (t) => {
    const url = await pg.createDatabase();
    const all = await Promise.all([1, 2, 3, 4].map(() => openDatastore({ kind: 'postgres', url }, { pruneIntervalMs: 0 })));
    t.after(() => Promise.all(all.map((d) => d.close())).then(() => {}));
    const rows = await pg.exec(url, 'select count(*)::int as n from schema_migrations');
    assert.equal(rows.rows[0].n, all[0]!.schemaVersion);
    await all[0]!.createEntry(entry(1));
    assert.equal(await all[3]!.countEntries(), 1);
  });

  test('an unreachable PostgreSQL is DATASTORE_UNREACHABLE with a one-line message, quickly', async (t) => {
    const cases: { name: string; url: string; re: RegExp; connectTimeoutMs?: number }[] = [
      { name: 'nothing listening', url: 'postgres://tessera:s3cret@127.0.0.1:1/tessera', re: /ECONNREFUSED/ },
      { name: 'no such database', url: pg.url.replace(/\/postgres$/, '/no_such_db'), re: /does not exist/ },
      { name: 'no such host', url: 'postgres://tessera@no-such-host.invalid/tessera', re: /ENOTFOUND|EAI_AGAIN/ },
    ];
    // A server that accepts and never answers: only the connect timeout ends the wait.
    const sockets = new Set<Socket>();
    const silent = createServer((s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    t.after(() => {
      for (const s of sockets) s.destroy();
      silent.close();
    });
    const port = (silent.address() as { port: number }).port;
    cases.push({ name: 'server never answers', url: `postgres://tessera@127.0.0.1:${port}/tessera`, re: /timeout/i, connectTimeoutMs: 1000 });
    for (const c of cases) {
      const t0 = performance.now();
      const err = await openDatastore({ kind: 'postgres', url: c.url }, { connectTimeoutMs: c.connectTimeoutMs ?? 5000 }).then(
        () => assert.fail(`${c.name}: opened`),
        (e: unknown) => e,
      );
      const ms = performance.now() - t0;
      assert.ok(err instanceof DatastoreError, `${c.name}: ${String(err)}`);
      assert.equal(err.code, 'DATASTORE_UNREACHABLE', c.name);
      assert.match(err.message, c.re, c.name);
      assert.match(err.message, /^cannot reach PostgreSQL at postgres:\/\//);
      assert.doesNotMatch(err.message, /\n/, 'one line');
      assert.doesNotMatch(err.message, /s3cret/, 'no password');
      assert.ok(ms < 4000, `${c.name}: took ${ms.toFixed(0)} ms`);
      t.diagnostic(`${c.name} (${ms.toFixed(0)} ms): ${err.message}`);
    }
    await assert.rejects(openDatastore({ kind: 'postgres', url: 'mysql://x' }), (e: unknown) => e instanceof DatastoreError && e.code === 'INVALID');
  });
});

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChangeFeed, type ChangeReader } from '../../src/server/datastore/change-feed.js';
import { DatastoreError, describeError, toDatastoreError } from '../../src/server/datastore/errors.js';
import { readPageRequest, toPage } from '../../src/server/datastore/pagination.js';
import { parseDatastoreSpec, redactUrl } from '../../src/server/datastore/spec.js';
import { uuidV7Source } from '../../src/server/datastore/uuid.js';
import type { Change, ChangeEvent, EntryInput, RegistrationEntry as StoredEntry } from '../../src/server/datastore/index.js';
import type { NormalizedEntryInput, RegistrationEntry } from '../../src/server/registration/index.js';

// Compile-time: entries flow between the registration layer and the datastore unchanged.
export const storedIsRegistrationEntry = (e: StoredEntry): RegistrationEntry => e;
export const registrationEntryIsStored = (e: RegistrationEntry): StoredEntry => e;
export const validatedInputIsEntryInput = (e: NormalizedEntryInput): EntryInput => e;

describe('uuidV7Source', () => {
  test('version 7 layout, time-ordered, strictly increasing within a millisecond', () => {
    const newId = uuidV7Source(() => 0x0190_a6f2_3b1c, () => new Uint8Array(8).fill(0xff));
    const a = newId();
    const b = newId();
    assert.match(a, /^0190a6f2-3b1c-7000-bfff-ffffffffffff$/);
    assert.match(b, /^0190a6f2-3b1c-7001-/);
    assert.ok(a < b);
  });
  test('counter overflow moves to the next millisecond rather than repeating', () => {
    const newId = uuidV7Source(() => 1000, () => new Uint8Array(8));
    let prev = '';
    for (let i = 0; i < 5000; i++) {
      const id = newId();
      assert.ok(id > prev, `${id} > ${prev}`);
      prev = id;
    }
    assert.match(prev, /^00000000-03e9-/, 'ms 1000 → 1001 after 4096 IDs');
  });
});

describe('page tokens', () => {
  test('round trip through toPage and readPageRequest', () => {
    const page = toPage(['a', 'b', 'c'], 2, (s) => s);
    assert.deepEqual(page.items, ['a', 'b']);
    assert.equal(readPageRequest({ pageSize: 2, pageToken: page.nextPageToken }).after, 'b');
    assert.deepEqual(toPage(['a', 'b'], 2, (s) => s), { items: ['a', 'b'] });
    assert.deepEqual(readPageRequest(undefined), { limit: undefined, after: undefined });
  });
  for (const bad of [{ pageSize: 0 }, { pageSize: 1.5 }, { pageSize: 10_001 }, { pageToken: 'xyz' }, { pageToken: Buffer.from('k1:').toString('base64url') }]) {
    test(`rejects ${JSON.stringify(bad)}`, () => {
      assert.throws(() => readPageRequest(bad), (e: unknown) => e instanceof DatastoreError && e.code === 'INVALID');
    });
  }
});

describe('parseDatastoreSpec', () => {
  test('default SQLite in the data dir, sqlite:<file>, postgres URLs', () => {
    assert.deepEqual(parseDatastoreSpec(undefined, '/var/lib/tessera'), { kind: 'sqlite', path: '/var/lib/tessera/datastore.sqlite3' });
    assert.deepEqual(parseDatastoreSpec('sqlite', '/d'), { kind: 'sqlite', path: '/d/datastore.sqlite3' });
    assert.deepEqual(parseDatastoreSpec('sqlite:other.db', '/d'), { kind: 'sqlite', path: '/d/other.db' });
    assert.deepEqual(parseDatastoreSpec('sqlite:/abs/x.db', '/d'), { kind: 'sqlite', path: '/abs/x.db' });
    assert.deepEqual(parseDatastoreSpec('postgres://u@h/db', '/d'), { kind: 'postgres', url: 'postgres://u@h/db' });
    assert.deepEqual(parseDatastoreSpec('postgresql://u@h/db', '/d'), { kind: 'postgres', url: 'postgresql://u@h/db' });
    assert.throws(() => parseDatastoreSpec('mysql://x', '/d'), (e: unknown) => e instanceof DatastoreError && e.code === 'INVALID' && /postgres:\/\//.test(e.message));
  });
  test('redactUrl hides the password', () => {
    assert.equal(redactUrl('postgres://u:secret@h:5432/db'), 'postgres://u:***@h:5432/db');
    assert.equal(redactUrl('postgres://u@h/db'), 'postgres://u@h/db');
  });
});

describe('driver errors', () => {
  test('connection failures, unique violations and the rest map to codes', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    assert.equal(toDatastoreError(refused, 'x').code, 'DATASTORE_UNREACHABLE');
    assert.equal(toDatastoreError(new AggregateError([refused, refused]), 'x').code, 'DATASTORE_UNREACHABLE');
    assert.equal(toDatastoreError(Object.assign(new Error('dup'), { code: '23505' }), 'x').code, 'ALREADY_EXISTS');
    assert.equal(toDatastoreError(Object.assign(new Error('dup'), { code: 'SQLITE_CONSTRAINT_UNIQUE' }), 'x').code, 'ALREADY_EXISTS');
    const other = toDatastoreError(new Error('syntax\nerror'), 'listing');
    assert.equal(other.code, 'INTERNAL');
    assert.equal(other.message, 'datastore failure while listing: syntax error');
    assert.ok(other.cause instanceof Error);
    assert.equal(describeError(new AggregateError([refused, refused])), 'connect ECONNREFUSED 127.0.0.1:5432');
  });
});

/** An in-memory change log. */
class FakeLog implements ChangeReader {
  rows: Change[] = [];
  floor = 0;
  reads = 0;
  concurrent = 0;
  maxConcurrent = 0;
  failNext = 0;
  add(n: number): void {
    for (let i = 0; i < n; i++) {
      const revision = (this.rows.at(-1)?.revision ?? this.floor) + 1;
      this.rows.push({ revision, kind: 'entry', key: `e${revision}`, op: 'create', at: 0 });
    }
  }
  prune(through: number): void {
    this.rows = this.rows.filter((r) => r.revision > through);
    this.floor = through;
  }
  async readChanges(after: number, limit: number): Promise<Change[]> {
    this.reads++;
    this.concurrent++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.concurrent);
    try {
      await Promise.resolve();
      if (this.failNext > 0) {
        this.failNext--;
        throw new Error('connection lost');
      }
      return this.rows.filter((r) => r.revision > after).slice(0, limit);
    } finally {
      this.concurrent--;
    }
  }
  async prunedThrough(): Promise<number> {
    return this.floor;
  }
}

function waitFor(events: ChangeEvent[], n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = () => (events.length >= n ? resolve() : Date.now() - started > 2000 ? reject(new Error(`got ${events.length} of ${n}`)) : setImmediate(check));
    check();
  });
}

describe('ChangeFeed', () => {
  const noErrors = (e: unknown) => assert.fail(String(e));

  test('each watcher gets every revision above its cursor once, in order; signals never overlap reads', async () => {
    const log = new FakeLog();
    const feed = new ChangeFeed(log, { pollIntervalMs: 0, retryMs: 1, onError: noErrors });
    log.add(1500);
    const a: ChangeEvent[] = [];
    const b: ChangeEvent[] = [];
    feed.watch(0, (e) => a.push(e));
    feed.watch(1400, (e) => b.push(e));
    for (let i = 0; i < 20; i++) feed.signal();
    await waitFor(a, 1500);
    log.add(10);
    for (let i = 0; i < 5; i++) feed.signal();
    await waitFor(a, 1510);
    await waitFor(b, 110);
    assert.deepEqual(a.map((e) => e.revision), Array.from({ length: 1510 }, (_, i) => i + 1));
    assert.deepEqual(b.map((e) => e.revision), Array.from({ length: 110 }, (_, i) => i + 1401));
    assert.equal(log.maxConcurrent, 1);
    feed.close();
  });

  test('a watcher behind the pruned part of the log gets a resync, then the rest', async () => {
    const log = new FakeLog();
    log.add(10);
    log.prune(6);
    const feed = new ChangeFeed(log, { pollIntervalMs: 0, retryMs: 1, onError: noErrors });
    const events: ChangeEvent[] = [];
    feed.watch(2, (e) => events.push(e));
    await waitFor(events, 5);
    assert.deepEqual(events.map((e) => `${e.kind}:${e.revision}`), ['resync:6', 'entry:7', 'entry:8', 'entry:9', 'entry:10']);
    const caughtUp: ChangeEvent[] = [];
    feed.watch(8, (e) => caughtUp.push(e));
    await waitFor(caughtUp, 2);
    assert.deepEqual(caughtUp.map((e) => e.revision), [9, 10], 'no resync for a watcher that is not behind');
    feed.close();
  });

  test('a failed read is reported and retried; nothing is lost', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const log = new FakeLog();
    const errors: unknown[] = [];
    const feed = new ChangeFeed(log, { pollIntervalMs: 0, retryMs: 500, onError: (e) => errors.push(e) });
    log.add(3);
    log.failNext = 1;
    const events: ChangeEvent[] = [];
    feed.watch(0, (e) => events.push(e));
    await new Promise((r) => setImmediate(r));
    assert.equal(events.length, 0);
    assert.equal(errors.length, 1);
    t.mock.timers.tick(500);
    await waitFor(events, 3);
    assert.deepEqual(events.map((e) => e.revision), [1, 2, 3]);
    feed.close();
  });

  test('closed watchers and feeds deliver nothing more', async () => {
    const log = new FakeLog();
    const feed = new ChangeFeed(log, { pollIntervalMs: 0, retryMs: 1, onError: noErrors });
    const events: ChangeEvent[] = [];
    const w = feed.watch(0, (e) => events.push(e));
    log.add(1);
    feed.signal();
    await waitFor(events, 1);
    w.close();
    log.add(1);
    feed.signal();
    await new Promise((r) => setImmediate(r));
    assert.equal(events.length, 1);
    feed.close();
    assert.doesNotThrow(() => feed.watch(0, () => assert.fail('closed')).close());
  });
});

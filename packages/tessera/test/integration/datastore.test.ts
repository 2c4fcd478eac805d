import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backends, FakeClock, openForTest } from './datastore-harness.js';
import {
  DatastoreError,
  SCHEMA_VERSION,
  openDatastore,
  type ChangeEvent,
  type Datastore,
  type DatastoreErrorCode,
  type EntryInput,
  type RegistrationEntry,
  type Selector,
} from '../../src/server/datastore/index.js';

function sel(s: string): Selector {
  const i = s.indexOf(':');
  return { type: s.slice(0, i), value: s.slice(i + 1) };
}

function entry(n: number | string, over: Partial<EntryInput> = {}): EntryInput {
  return { spiffeId: `spiffe://td/w/${n}`, parentId: 'spiffe://td/agent/1', selectors: [sel(`unix:uid:${n}`)], ...over };
}

async function rejectsWith(p: Promise<unknown>, code: DatastoreErrorCode, re?: RegExp): Promise<DatastoreError> {
  let caught: unknown;
  await assert.rejects(p, (e: unknown) => {
    caught = e;
    return e instanceof DatastoreError && e.code === code && (re === undefined || re.test(e.message));
  }, `expected DatastoreError ${code}${re ? ` matching ${re}` : ''}`);
  return caught as DatastoreError;
}

const ids = (es: readonly RegistrationEntry[]) => es.map((e) => e.id);

/** Resolves with the first `n` events a watcher receives (fails after 5 s). */
function collect(ds: Datastore, from: number, n: number): { events: Promise<ChangeEvent[]>; close(): void } {
  const got: ChangeEvent[] = [];
  let close = () => {};
  const events = new Promise<ChangeEvent[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`watcher got ${got.length} of ${n} events: ${JSON.stringify(got)}`)), 5000);
    const w = ds.watch(from, (e) => {
      got.push(e);
      if (got.length === n) {
        clearTimeout(timer);
        w.close();
        resolve(got);
      }
    });
    close = () => {
      clearTimeout(timer);
      w.close();
    };
  });
  return { events, close };
}

for (const backend of backends()) {
  describe(`datastore (${backend.name})`, () => {
    before(() => backend.setup());
    after(() => backend.teardown());

    async function fresh(t: { after(fn: () => Promise<void> | void): void }, clock = new FakeClock()): Promise<Datastore> {
      return openForTest(t, await backend.fresh(), { clock: clock.now });
    }

    describe('entries', () => {
      test('create, get, delete; selectors stored sorted and unique', async (t) => {
        const ds = await fresh(t);
        const e = await ds.createEntry(
          entry(1, { selectors: [sel('unix:uid:1'), sel('k8s:ns:a'), sel('unix:uid:1')], dnsNames: ['b.example', 'a.example'], federatesWith: ['z.org', 'y.org'], x509SvidTtl: 3600, admin: true, hint: 'web' }),
        );
        assert.match(e.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        assert.deepEqual(e.selectors, [sel('k8s:ns:a'), sel('unix:uid:1')]);
        assert.deepEqual(e.federatesWith, ['y.org', 'z.org']);
        assert.deepEqual(e.dnsNames, ['b.example', 'a.example'], 'DNS names keep their order (the first is the CN)');
        assert.equal(e.revisionNumber, 0);
        assert.equal(e.createdAt, 1_900_000_000);
        assert.equal(e.expiresAt, 0);
        assert.deepEqual(await ds.getEntry(e.id), e);
        assert.equal(await ds.getEntry('00000000-0000-7000-8000-000000000000'), undefined);
        assert.deepEqual(await ds.deleteEntry(e.id), e);
        assert.equal(await ds.getEntry(e.id), undefined);
        assert.deepEqual(await ds.listEntriesBySelectors([sel('k8s:ns:a')], 'any'), [], 'child rows went with the entry');
        await rejectsWith(ds.deleteEntry(e.id), 'NOT_FOUND');
      });

      test('an exact duplicate (same SPIFFE ID, parent and selector set) is ALREADY_EXISTS', async (t) => {
        const ds = await fresh(t);
        const e = await ds.createEntry(entry(1, { selectors: [sel('a:1'), sel('b:2')] }));
        const err = await rejectsWith(ds.createEntry(entry(1, { selectors: [sel('b:2'), sel('a:1')], hint: 'other fields do not matter' })), 'ALREADY_EXISTS', /already exists/);
        assert.equal(err.key, e.id);
        await ds.createEntry(entry(1, { selectors: [sel('a:1')] }));
        await ds.createEntry(entry(1, { selectors: [sel('a:1'), sel('b:2')], parentId: 'spiffe://td/agent/2' }));
        assert.equal(await ds.countEntries(), 3);
      });

      test('createEntries is all-or-nothing', async (t) => {
        const ds = await fresh(t);
        const existing = await ds.createEntry(entry(1));
        const rev = await ds.currentRevision();
        await rejectsWith(ds.createEntries([entry(2), entry(3), entry(1), entry(4)]), 'ALREADY_EXISTS', /entries\[2\].*already exists/);
        await rejectsWith(ds.createEntries([entry(2), entry(3), entry(2)]), 'ALREADY_EXISTS', /entries\[2\] duplicates entries\[0\]/);
        await rejectsWith(ds.createEntries([entry(2), entry(3, { spiffeId: '' })]), 'INVALID', /entries\[1\]\.spiffeId/);
        assert.deepEqual(ids((await ds.listEntries()).items), [existing.id], 'nothing of the failed batches was written');
        assert.equal(await ds.currentRevision(), rev, 'and nothing reached the change log');
        const made = await ds.createEntries([entry(2), entry(3), entry(4)]);
        assert.deepEqual(made.map((e) => e.spiffeId), ['spiffe://td/w/2', 'spiffe://td/w/3', 'spiffe://td/w/4']);
        assert.deepEqual(ids((await ds.listEntries()).items), [existing.id, ...ids(made)], 'IDs are in creation order');
        assert.deepEqual(await ds.createEntries([]), []);
      });

      test('structurally invalid rows are INVALID', async (t) => {
        const ds = await fresh(t);
        await rejectsWith(ds.createEntry(entry(1, { spiffeId: '' })), 'INVALID', /spiffeId/);
        await rejectsWith(ds.createEntry(entry(1, { parentId: undefined as unknown as string })), 'INVALID', /parentId/);
        await rejectsWith(ds.createEntry(entry(1, { selectors: [] })), 'INVALID', /at least one selector/);
        await rejectsWith(ds.createEntry(entry(1, { selectors: [{ type: 'unix', value: '' }] })), 'INVALID', /selectors\[0\]/);
        await rejectsWith(ds.createEntry(entry(1, { x509SvidTtl: -1 })), 'INVALID', /x509SvidTtl/);
        await rejectsWith(ds.createEntry(entry(1, { jwtSvidTtl: 1.5 })), 'INVALID', /jwtSvidTtl/);
        await rejectsWith(ds.createEntry(entry(1, { admin: 'yes' as unknown as boolean })), 'INVALID', /admin/);
        await rejectsWith(ds.createEntry(entry(1, { federatesWith: [''] })), 'INVALID', /federatesWith\[0\]/);
        assert.equal(await ds.countEntries(), 0);
        assert.equal((await ds.createEntry(entry(1, { expiresAt: null }))).expiresAt, 0, 'null expiry = never');
      });

      test('update: revision number, field mask, optimistic check, uniqueness', async (t) => {
        const clock = new FakeClock();
        const ds = await fresh(t, clock);
        const e = await ds.createEntry(entry(1, { hint: 'a', x509SvidTtl: 60 }));
        clock.seconds += 10;
        const u1 = await ds.updateEntry(e.id, { hint: 'b', selectors: [sel('unix:uid:9'), sel('k8s:ns:x')] });
        assert.equal(u1.revisionNumber, 1);
        assert.equal(u1.hint, 'b');
        assert.equal(u1.x509SvidTtl, 60, 'fields not given are kept');
        assert.equal(u1.createdAt, e.createdAt);
        assert.deepEqual(u1.selectors, [sel('k8s:ns:x'), sel('unix:uid:9')]);
        assert.deepEqual(ids(await ds.listEntriesBySelectors([sel('unix:uid:9')], 'superset')), [e.id], 'selector rows were replaced');
        assert.deepEqual(await ds.listEntriesBySelectors([sel('unix:uid:1')], 'any'), []);

        const u2 = await ds.updateEntry(e.id, { hint: 'c', x509SvidTtl: 5 }, { mask: ['x509SvidTtl'] });
        assert.equal(u2.hint, 'b', 'fields outside the mask are ignored');
        assert.equal(u2.x509SvidTtl, 5);
        assert.equal(u2.revisionNumber, 2);
        await rejectsWith(ds.updateEntry(e.id, { hint: 'd' }, { mask: ['dnsNames'] }), 'INVALID', /no value/);
        await rejectsWith(ds.updateEntry(e.id, { hint: 'd' }, { mask: ['bogus' as never] }), 'INVALID', /unknown field/);

        await rejectsWith(ds.updateEntry(e.id, { hint: 'stale' }, { expectedRevision: 1 }), 'CONFLICT', /revision 2/);
        const u3 = await ds.updateEntry(e.id, { hint: 'fresh' }, { expectedRevision: 2 });
        assert.equal(u3.revisionNumber, 3);
        assert.deepEqual(await ds.getEntry(e.id), u3);

        const other = await ds.createEntry(entry(2));
        await rejectsWith(ds.updateEntry(other.id, { spiffeId: u3.spiffeId, selectors: u3.selectors }), 'ALREADY_EXISTS');
        await rejectsWith(ds.updateEntry(other.id, { spiffeId: '' }), 'INVALID');
        assert.equal((await ds.getEntry(other.id))?.revisionNumber, 0, 'failed updates change nothing');
        await rejectsWith(ds.updateEntry('no-such-id', { hint: 'x' }), 'NOT_FOUND');
      });

      test('list filters: selector and trust-domain match modes, columns, count', async (t) => {
        const ds = await fresh(t);
        const [e1, e2, e3, e4] = await ds.createEntries([
          entry(1, { selectors: [sel('a:1')], federatesWith: ['x.org'], hint: 'h1' }),
          entry(2, { selectors: [sel('a:1'), sel('b:2')], federatesWith: ['x.org', 'y.org'], downstream: true }),
          entry(3, { selectors: [sel('a:1'), sel('b:2'), sel('c:3')], parentId: 'spiffe://td/agent/2' }),
          entry(4, { selectors: [sel('d:4')] }),
        ]);
        const q = [sel('b:2'), sel('a:1')];
        const by = async (selectors: Selector[], match: 'exact' | 'subset' | 'superset' | 'any') => ids(await ds.listEntriesBySelectors(selectors, match));
        assert.deepEqual(await by(q, 'exact'), ids([e2!]));
        assert.deepEqual(await by(q, 'subset'), ids([e1!, e2!]));
        assert.deepEqual(await by(q, 'superset'), ids([e2!, e3!]));
        assert.deepEqual(await by(q, 'any'), ids([e1!, e2!, e3!]));
        assert.deepEqual(await by([sel('a:1')], 'exact'), ids([e1!]));
        assert.deepEqual(await by([sel('a:1'), sel('b:2'), sel('c:3'), sel('d:4'), sel('z:9')], 'subset'), ids([e1!, e2!, e3!, e4!]));
        assert.deepEqual(await by([sel('z:9')], 'any'), []);

        const fw = async (trustDomains: string[], match: 'exact' | 'subset' | 'superset' | 'any') => ids((await ds.listEntries({ federatesWith: { trustDomains, match } })).items);
        assert.deepEqual(await fw(['x.org'], 'exact'), ids([e1!]));
        assert.deepEqual(await fw(['x.org'], 'superset'), ids([e1!, e2!]));
        assert.deepEqual(await fw(['y.org', 'z.org'], 'any'), ids([e2!]));
        assert.deepEqual(await fw(['x.org', 'y.org'], 'subset'), ids([e1!, e2!]), 'entries federating with nothing are not a subset match');

        assert.deepEqual(ids((await ds.listEntries({ spiffeId: 'spiffe://td/w/3' })).items), ids([e3!]));
        assert.deepEqual(ids((await ds.listEntries({ parentId: 'spiffe://td/agent/1' })).items), ids([e1!, e2!, e4!]));
        assert.deepEqual(ids((await ds.listEntries({ hint: 'h1' })).items), ids([e1!]));
        assert.deepEqual(ids((await ds.listEntries({ downstream: true })).items), ids([e2!]));
        assert.deepEqual(ids((await ds.listEntries({ parentId: 'spiffe://td/agent/1', selectors: { selectors: [sel('a:1')], match: 'superset' } })).items), ids([e1!, e2!]));
        assert.equal(await ds.countEntries({ selectors: { selectors: q, match: 'any' } }), 3);
        assert.equal(await ds.countEntries({ downstream: false }), 3);
        await rejectsWith(ds.listEntries({ selectors: { selectors: [], match: 'any' } }), 'INVALID');
        await rejectsWith(ds.listEntries({ selectors: { selectors: q, match: 'most' as never } }), 'INVALID', /match must be/);
        assert.deepEqual(ids(await ds.listEntriesForParents(['spiffe://td/agent/2', 'spiffe://td/agent/9'])), ids([e3!]));
        assert.deepEqual(ids(await ds.listEntriesForParents(['spiffe://td/agent/1', 'spiffe://td/agent/2'])), ids([e1!, e2!, e3!, e4!]));
        assert.deepEqual(await ds.listEntriesForParents([]), []);
      });

      test('pagination walks every entry once, in ID order', async (t) => {
        const ds = await fresh(t);
        const made = await ds.createEntries([1, 2, 3, 4, 5, 6, 7].map((n) => entry(n)));
        const seen: string[] = [];
        let token: string | undefined;
        let pages = 0;
        do {
          const page = await ds.listEntries(undefined, { pageSize: 3, pageToken: token });
          seen.push(...ids(page.items));
          token = page.nextPageToken;
          pages++;
        } while (token);
        assert.deepEqual(seen, ids(made));
        assert.equal(pages, 3);
        const exact = await ds.listEntries({ parentId: 'spiffe://td/agent/1' }, { pageSize: 7 });
        assert.equal(exact.items.length, 7);
        assert.equal(exact.nextPageToken, undefined, 'no token when nothing follows');
        await rejectsWith(ds.listEntries(undefined, { pageSize: 0 }), 'INVALID', /page size/);
        await rejectsWith(ds.listEntries(undefined, { pageToken: 'garbage' }), 'INVALID', /page token/);
      });
    });

    describe('agents', () => {
      test('create, get, update, ban, list with filters and pages, count, delete', async (t) => {
        const clock = new FakeClock();
        const ds = await fresh(t, clock);
        const a = await ds.createAgent({
          spiffeId: 'spiffe://td/tessera/agent/join_token/a',
          attestationType: 'join_token',
          certSerial: '01',
          certExpiresAt: 1_900_003_600,
          selectors: [sel('join_token:a')],
        });
        assert.deepEqual(a, {
          spiffeId: 'spiffe://td/tessera/agent/join_token/a',
          attestationType: 'join_token',
          certSerial: '01',
          certExpiresAt: 1_900_003_600,
          newCertSerial: '',
          newCertExpiresAt: 0,
          banned: false,
          canReattest: false,
          selectors: [sel('join_token:a')],
          createdAt: 1_900_000_000,
          updatedAt: 1_900_000_000,
        });
        assert.deepEqual(await ds.getAgent(a.spiffeId), a);
        await rejectsWith(ds.createAgent({ ...a }), 'ALREADY_EXISTS');
        const b = await ds.createAgent({ spiffeId: 'spiffe://td/tessera/agent/x509pop/b', attestationType: 'x509pop', certSerial: '02', certExpiresAt: 1_900_000_100, canReattest: true, selectors: [sel('x509pop:subject:cn:b'), sel('x509pop:ca:fp:1')] });
        await ds.createAgent({ spiffeId: 'spiffe://td/tessera/agent/x509pop/c', attestationType: 'x509pop', certSerial: '03', certExpiresAt: 1_900_009_000, selectors: [sel('x509pop:ca:fp:1')] });

        clock.seconds += 30;
        const renewing = await ds.updateAgent(a.spiffeId, { newCertSerial: '04', newCertExpiresAt: 1_900_007_200 });
        assert.equal(renewing.certSerial, '01', 'both serials are kept during renewal');
        assert.equal(renewing.newCertSerial, '04');
        assert.equal(renewing.updatedAt, 1_900_000_030);
        const renewed = await ds.updateAgent(a.spiffeId, { certSerial: '04', certExpiresAt: 1_900_007_200, newCertSerial: '', newCertExpiresAt: 0, selectors: [sel('join_token:a'), sel('region:eu')] });
        assert.deepEqual(await ds.getAgent(a.spiffeId), renewed);
        await rejectsWith(ds.updateAgent('spiffe://td/nope', { certSerial: '1' }), 'NOT_FOUND');
        await rejectsWith(ds.updateAgent(a.spiffeId, { certExpiresAt: -1 }), 'INVALID');

        const banned = await ds.banAgent(b.spiffeId);
        assert.equal(banned.banned, true);
        assert.equal(banned.certSerial, '');
        assert.deepEqual((await ds.listAgents({ banned: true })).items.map((x) => x.spiffeId), [b.spiffeId]);
        assert.equal(await ds.countAgents({ banned: false }), 2);
        assert.equal(await ds.countAgents({ attestationType: 'x509pop' }), 2);
        assert.equal(await ds.countAgents({ canReattest: true }), 1);
        assert.deepEqual((await ds.listAgents({ expiresBefore: 1_900_005_000 })).items.map((x) => x.spiffeId), [b.spiffeId]);
        assert.deepEqual(
          (await ds.listAgents({ selectors: { selectors: [sel('x509pop:ca:fp:1')], match: 'superset' } })).items.map((x) => x.spiffeId),
          ['spiffe://td/tessera/agent/x509pop/b', 'spiffe://td/tessera/agent/x509pop/c'],
        );
        assert.deepEqual((await ds.listAgents({ selectors: { selectors: [sel('region:eu')], match: 'any' } })).items.map((x) => x.spiffeId), [a.spiffeId]);
        const p1 = await ds.listAgents(undefined, { pageSize: 2 });
        const p2 = await ds.listAgents(undefined, { pageSize: 2, pageToken: p1.nextPageToken });
        assert.deepEqual([...p1.items, ...p2.items].map((x) => x.spiffeId), [a.spiffeId, b.spiffeId, 'spiffe://td/tessera/agent/x509pop/c']);
        assert.equal(p2.nextPageToken, undefined);

        assert.deepEqual(await ds.deleteAgent(a.spiffeId), renewed);
        assert.equal(await ds.getAgent(a.spiffeId), undefined);
        await rejectsWith(ds.deleteAgent(a.spiffeId), 'NOT_FOUND');
        assert.equal(await ds.countAgents({ selectors: { selectors: [sel('region:eu')], match: 'any' } }), 0, 'selector rows went with the agent');
        await rejectsWith(ds.createAgent({ spiffeId: '', attestationType: 'x', certSerial: '', certExpiresAt: 0 }), 'INVALID', /spiffeId/);
      });
    });

    describe('join tokens', () => {
      test('create, list, one-time consumption, expiry with an injected now, prune', async (t) => {
        const ds = await fresh(t);
        await ds.createJoinToken({ token: 'tok-1', expiresAt: 1_900_000_600 });
        await ds.createJoinToken({ token: 'tok-2', expiresAt: 1_900_000_060, spiffeId: 'spiffe://td/node/2' });
        await ds.createJoinToken({ token: 'tok-3', expiresAt: 1_900_000_010 });
        await rejectsWith(ds.createJoinToken({ token: 'tok-1', expiresAt: 1 }), 'ALREADY_EXISTS');
        assert.deepEqual((await ds.listJoinTokens()).map((x) => x.token), ['tok-3', 'tok-2', 'tok-1']);
        assert.deepEqual(await ds.getJoinToken('tok-2'), { token: 'tok-2', expiresAt: 1_900_000_060, spiffeId: 'spiffe://td/node/2' });

        assert.deepEqual(await ds.consumeJoinToken('tok-1', 1_900_000_000), { token: 'tok-1', expiresAt: 1_900_000_600 });
        await rejectsWith(ds.consumeJoinToken('tok-1', 1_900_000_000), 'NOT_FOUND', /already been used/);
        await rejectsWith(ds.consumeJoinToken('tok-2', 1_900_000_060), 'EXPIRED', /expired/);
        assert.equal(await ds.getJoinToken('tok-2'), undefined, 'an expired token is consumed too');
        await rejectsWith(ds.consumeJoinToken('tok-9'), 'NOT_FOUND');

        await ds.createJoinToken({ token: 'tok-4', expiresAt: 1_900_000_100 });
        assert.equal(await ds.pruneJoinTokens(1_900_000_050), 1, 'only tok-3 had expired');
        assert.deepEqual((await ds.listJoinTokens()).map((x) => x.token), ['tok-4']);
        await ds.deleteJoinToken('tok-4');
        await rejectsWith(ds.deleteJoinToken('tok-4'), 'NOT_FOUND');
      });

      test('two concurrent consumptions, on two datastore instances: exactly one wins', async (t) => {
        const spec = await backend.fresh();
        const a = await openForTest(t, spec);
        const b = await openForTest(t, spec);
        for (let i = 0; i < 10; i++) {
          await a.createJoinToken({ token: `race-${i}`, expiresAt: 4_000_000_000 });
          const results = await Promise.allSettled([a.consumeJoinToken(`race-${i}`), b.consumeJoinToken(`race-${i}`), a.consumeJoinToken(`race-${i}`)]);
          const won = results.filter((r) => r.status === 'fulfilled');
          const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
          assert.equal(won.length, 1, `round ${i}: ${JSON.stringify(results)}`);
          assert.ok(lost.every((r) => r.reason instanceof DatastoreError && r.reason.code === 'NOT_FOUND'));
        }
      });
    });

    describe('bundles', () => {
      const json = (n: number) => JSON.stringify({ keys: [], spiffe_sequence: n });

      test('set/get/list with sequence numbers and optimistic concurrency', async (t) => {
        const ds = await fresh(t);
        const b1 = await ds.setBundle('td', json(1));
        assert.deepEqual(b1, { trustDomain: 'td', bundle: json(1), sequence: 1, updatedAt: 1_900_000_000 });
        const b2 = await ds.setBundle('td', json(2), 1);
        assert.equal(b2.sequence, 2);
        await rejectsWith(ds.setBundle('td', json(3), 1), 'CONFLICT', /sequence 1.*at sequence 2/);
        await rejectsWith(ds.setBundle('td', json(3), 0), 'CONFLICT');
        await rejectsWith(ds.setBundle('other.org', json(1), 5), 'CONFLICT', /there is none/);
        await ds.setBundle('other.org', json(1), 0);
        await rejectsWith(ds.setBundle('other.org', json(1), 0), 'CONFLICT');
        assert.equal((await ds.setBundle('td', json(4))).sequence, 3, 'without an expected sequence, setBundle just increments');
        await rejectsWith(ds.setBundle('td', 'not json'), 'INVALID');
        await rejectsWith(ds.setBundle('td', '[1]'), 'INVALID');
        assert.equal((await ds.getBundle('td'))?.bundle, json(4));
        assert.deepEqual((await ds.listBundles()).map((b) => [b.trustDomain, b.sequence]), [['other.org', 1], ['td', 3]]);
        assert.equal(await ds.getBundle('nope.org'), undefined);
      });

      test('concurrent setBundle with the same expected sequence: one wins', async (t) => {
        const spec = await backend.fresh();
        const a = await openForTest(t, spec);
        const b = await openForTest(t, spec);
        await a.setBundle('td', json(1));
        const results = await Promise.allSettled([a.setBundle('td', json(2), 1), b.setBundle('td', json(3), 1)]);
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results));
        assert.equal((await a.getBundle('td'))?.sequence, 2);
      });

      test('delete: restrict, dissociate, delete (SPIRE modes)', async (t) => {
        const ds = await fresh(t);
        await ds.setBundle('x.org', json(1));
        await ds.setBundle('y.org', json(1));
        await ds.setBundle('z.org', json(1));
        const [e1, e2] = await ds.createEntries([entry(1, { federatesWith: ['x.org', 'y.org'] }), entry(2, { federatesWith: ['y.org'] })]);
        await rejectsWith(ds.deleteBundle('x.org'), 'CONFLICT', new RegExp(`^1 entry federates with x\\.org: ${e1!.id} \\(${e1!.spiffeId}\\);`));
        assert.equal((await ds.getBundle('x.org'))?.sequence, 1, 'restrict deleted nothing');
        await ds.deleteBundle('x.org', 'dissociate');
        const after1 = await ds.getEntry(e1!.id);
        assert.deepEqual(after1?.federatesWith, ['y.org']);
        assert.equal(after1?.revisionNumber, 1);
        assert.deepEqual(await ds.listEntries({ federatesWith: { trustDomains: ['x.org'], match: 'any' } }), { items: [] });
        await ds.deleteBundle('y.org', 'delete');
        assert.equal(await ds.getEntry(e1!.id), undefined);
        assert.equal(await ds.getEntry(e2!.id), undefined);
        await ds.deleteBundle('z.org');
        await rejectsWith(ds.deleteBundle('z.org'), 'NOT_FOUND');
        assert.deepEqual(await ds.listBundles(), []);
      });
    });

    describe('federation relationships and CA journals', () => {
      test('federation relationship CRUD', async (t) => {
        const clock = new FakeClock();
        const ds = await fresh(t, clock);
        const r = await ds.createFederationRelationship({ trustDomain: 'other.org', bundleEndpointUrl: 'https://other.org:8443', profile: 'https_spiffe', endpointSpiffeId: 'spiffe://other.org/spire/server' });
        assert.deepEqual(await ds.getFederationRelationship('other.org'), r);
        await rejectsWith(ds.createFederationRelationship({ ...r }), 'ALREADY_EXISTS');
        await rejectsWith(ds.createFederationRelationship({ trustDomain: 'b.org', bundleEndpointUrl: 'https://b.org', profile: 'https_spiffe' }), 'INVALID', /endpointSpiffeId/);
        await rejectsWith(ds.createFederationRelationship({ trustDomain: 'b.org', bundleEndpointUrl: 'not a url', profile: 'https_web' }), 'INVALID', /URL/);
        await rejectsWith(ds.createFederationRelationship({ trustDomain: 'b.org', bundleEndpointUrl: 'https://b.org', profile: 'ftp' as never }), 'INVALID', /profile/);
        await ds.createFederationRelationship({ trustDomain: 'b.org', bundleEndpointUrl: 'https://b.org/bundle', profile: 'https_web' });
        clock.seconds += 5;
        const u = await ds.updateFederationRelationship('other.org', { profile: 'https_web', bundleEndpointUrl: 'https://other.org/bundle' });
        assert.equal(u.endpointSpiffeId, '');
        assert.equal(u.updatedAt, r.createdAt + 5);
        assert.deepEqual((await ds.listFederationRelationships()).map((x) => x.trustDomain), ['b.org', 'other.org']);
        await rejectsWith(ds.updateFederationRelationship('nope.org', { profile: 'https_web' }), 'NOT_FOUND');
        await ds.deleteFederationRelationship('other.org');
        await rejectsWith(ds.deleteFederationRelationship('other.org'), 'NOT_FOUND');
        assert.equal(await ds.getFederationRelationship('other.org'), undefined);
      });

      test('CA journal per server', async (t) => {
        const ds = await fresh(t);
        assert.equal(await ds.getCaJournal('server-a'), undefined);
        await ds.setCaJournal('server-a', '{"x509":[1]}');
        await ds.setCaJournal('server-b', '{"x509":[2]}');
        await ds.setCaJournal('server-a', '{"x509":[1,3]}');
        assert.equal(await ds.getCaJournal('server-a'), '{"x509":[1,3]}');
        assert.equal(await ds.getCaJournal('server-b'), '{"x509":[2]}');
      });
    });

    describe('change feed', () => {
      test('a watcher receives every committed mutation, in order, with increasing revisions', async (t) => {
        const ds = await fresh(t);
        const start = await ds.currentRevision();
        const w = collect(ds, start, 8);
        const e = await ds.createEntry(entry(1));
        await ds.updateEntry(e.id, { hint: 'x' });
        await ds.createAgent({ spiffeId: 'spiffe://td/agent/a', attestationType: 'join_token', certSerial: '1', certExpiresAt: 1 });
        await ds.setBundle('td', '{"keys":[]}');
        await rejectsWith(ds.createEntry(entry(1)), 'ALREADY_EXISTS');
        await ds.createJoinToken({ token: 't', expiresAt: 1 });
        await ds.createFederationRelationship({ trustDomain: 'o.org', bundleEndpointUrl: 'https://o.org', profile: 'https_web' });
        await ds.banAgent('spiffe://td/agent/a');
        await ds.deleteEntry(e.id);
        await ds.deleteFederationRelationship('o.org');
        const events = await w.events;
        assert.deepEqual(
          events.map((c) => (c.kind === 'resync' ? 'resync' : `${c.kind}:${c.op}:${c.key}`)),
          [
            `entry:create:${e.id}`,
            `entry:update:${e.id}`,
            'agent:create:spiffe://td/agent/a',
            'bundle:create:td',
            'federation_relationship:create:o.org',
            'agent:update:spiffe://td/agent/a',
            `entry:delete:${e.id}`,
            'federation_relationship:delete:o.org',
          ],
        );
        const revisions = events.map((c) => c.revision);
        assert.ok(revisions.every((r, i) => r > start && (i === 0 || r > revisions[i - 1]!)), `increasing: ${revisions}`);
        assert.equal(await ds.currentRevision(), revisions[revisions.length - 1]);

        const later = collect(ds, revisions[5]!, 2);
        assert.deepEqual((await later.events).map((c) => c.revision), revisions.slice(6), 'watching from a revision delivers only what follows');
      });

      test('pruning keeps the newest changes; a watcher that missed pruned ones is told to resync', async (t) => {
        const clock = new FakeClock();
        const ds = await fresh(t, clock);
        await ds.createEntries([1, 2, 3, 4, 5].map((n) => entry(n)));
        assert.equal(await ds.pruneChanges({ keep: 2, maxAgeSeconds: 60 }), 0, 'nothing is older than an hour');
        clock.seconds += 61;
        assert.equal(await ds.pruneChanges({ keep: 2, maxAgeSeconds: 60 }), 3);
        const w = collect(ds, 0, 3);
        const events = await w.events;
        assert.deepEqual(events[0], { kind: 'resync', revision: 3 });
        assert.deepEqual(events.slice(1).map((c) => c.revision), [4, 5]);
        assert.equal(await ds.currentRevision(), 5, 'pruning never loses the current revision');
      });

      test('a listener that throws does not stop the others', async (t) => {
        const errors: unknown[] = [];
        const ds = await openForTest(t, await backend.fresh(), { onError: (e) => errors.push(e) });
        ds.watch(0, () => {
          throw new Error('listener bug');
        });
        const w = collect(ds, 0, 2);
        await ds.createEntries([entry(1), entry(2)]);
        assert.equal((await w.events).length, 2);
        assert.ok(errors.some((e) => e instanceof Error && e.message === 'listener bug'));
      });
    });

    describe('migrations', () => {
      test('opening twice is idempotent and keeps the data', async (t) => {
        const spec = await backend.fresh();
        const first = await openDatastore(spec, { pruneIntervalMs: 0 });
        assert.equal(first.schemaVersion, SCHEMA_VERSION);
        const e = await first.createEntry(entry(1));
        await first.close();
        const second = await openForTest(t, spec);
        assert.equal(second.schemaVersion, SCHEMA_VERSION);
        assert.deepEqual(await second.getEntry(e.id), e);
        const rows = await backend.exec(spec, 'select version, name from schema_migrations order by version');
        assert.deepEqual(rows.map((r) => Number(r.version)), Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
        await rejectsWith(first.getEntry(e.id), 'CLOSED');
      });

      test('refuses a schema newer than the code knows', async (t) => {
        const spec = await backend.fresh();
        await (await openDatastore(spec, { pruneIntervalMs: 0 })).close();
        await backend.exec(spec, `insert into schema_migrations (version, name, applied_at) values (${SCHEMA_VERSION + 1}, 'from the future', 0)`);
        const err = await rejectsWith(openDatastore(spec), 'SCHEMA_TOO_NEW', new RegExp(`version ${SCHEMA_VERSION + 1} .*up to ${SCHEMA_VERSION}`));
        assert.doesNotMatch(err.message, /\n/);
        t.diagnostic(err.message);
      });
    });

    if (backend.name === 'sqlite') {
      describe('SQLite file', () => {
        test('created private, in WAL mode; an unusable path or a non-database is DATASTORE_UNREACHABLE', async (t) => {
          const dir = mkdtempSync(join(tmpdir(), 'tessera-ds-file-'));
          t.after(() => rmSync(dir, { recursive: true, force: true }));
          const path = join(dir, 'nested', 'datastore.sqlite3');
          await (await openDatastore({ kind: 'sqlite', path }, { pruneIntervalMs: 0 })).close();
          assert.equal(statSync(path).mode & 0o777, 0o600, 'join tokens are secrets');
          const [mode] = await backend.exec({ kind: 'sqlite', path }, 'pragma journal_mode');
          assert.equal(mode?.journal_mode, 'wal');
          const garbage = join(dir, 'garbage.sqlite3');
          writeFileSync(garbage, 'this is not a database file, and it is long enough to have a header.'.repeat(20));
          for (const [bad, re] of [[garbage, /not a database/], ['/dev/null/x/datastore.sqlite3', /ENOTDIR|not a directory/]] as const) {
            const err = await rejectsWith(openDatastore({ kind: 'sqlite', path: bad }), 'DATASTORE_UNREACHABLE', re);
            assert.match(err.message, /^cannot open SQLite database /);
            assert.doesNotMatch(err.message, /\n/);
          }
        });
      });
    }
  });
}

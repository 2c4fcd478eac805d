/**
 * 10,000 entries: what an agent's sync and workload attestation query cost.
 * Reports timings; asserts results, and only generous time bounds.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backends, openForTest } from './datastore-harness.js';
import type { EntryInput } from '../../src/server/datastore/index.js';

const PARENTS = 100;
const PER_PARENT = 100;
const BATCH = 500;

function input(i: number): EntryInput {
  const p = i % PARENTS;
  return {
    spiffeId: `spiffe://td/ns/ns${i % 37}/sa/sa${i}`,
    parentId: `spiffe://td/tessera/agent/x509pop/node-${p}`,
    selectors: [
      { type: 'k8s', value: `ns:ns${i % 37}` },
      { type: 'k8s', value: `sa:sa${i}` },
      { type: 'unix', value: `uid:${1000 + (i % 50)}` },
    ],
    federatesWith: i % 10 === 0 ? ['partner.org'] : [],
  };
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await fn();
  return [r, performance.now() - t0];
}

for (const backend of backends()) {
  describe(`datastore with 10,000 entries (${backend.name})`, () => {
    before(() => backend.setup());
    after(() => backend.teardown());

    test('create in batches, then list by parent, by selectors, all, paginated', async (t) => {
      const ds = await openForTest(t, await backend.fresh());
      const all = Array.from({ length: PARENTS * PER_PARENT }, (_, i) => input(i));
      const [, createMs] = await timed(async () => {
        for (let i = 0; i < all.length; i += BATCH) await ds.createEntries(all.slice(i, i + BATCH));
      });
      assert.equal(await ds.countEntries(), PARENTS * PER_PARENT);

      const parent = 'spiffe://td/tessera/agent/x509pop/node-42';
      await ds.listEntriesForParents([parent]); // warm the statement cache
      const [mine, parentMs] = await timed(() => ds.listEntriesForParents([parent]));
      assert.equal(mine.length, PER_PARENT);
      assert.ok(mine.every((e) => e.parentId === parent));
      const [aliases, threeParentsMs] = await timed(() => ds.listEntriesForParents([parent, 'spiffe://td/tessera/agent/x509pop/node-7', 'spiffe://td/tessera/server']));
      assert.equal(aliases.length, 2 * PER_PARENT);

      // Workload attestation: the entries whose selectors are all among the workload's.
      const workload = [
        { type: 'k8s', value: 'ns:ns5' },
        { type: 'k8s', value: 'sa:sa42' },
        { type: 'unix', value: 'uid:1042' },
        { type: 'k8s', value: 'pod-name:x' },
      ];
      const [matched, subsetMs] = await timed(() => ds.listEntriesBySelectors(workload, 'subset'));
      assert.deepEqual(matched.map((e) => e.spiffeId), ['spiffe://td/ns/ns5/sa/sa42']);

      const [everything, allMs] = await timed(() => ds.listEntries());
      assert.equal(everything.items.length, PARENTS * PER_PARENT);
      const [pages, pagedMs] = await timed(async () => {
        let n = 0;
        let token: string | undefined;
        do {
          const p = await ds.listEntries(undefined, { pageSize: 1000, pageToken: token });
          n += p.items.length;
          token = p.nextPageToken;
        } while (token);
        return n;
      });
      assert.equal(pages, PARENTS * PER_PARENT);
      const [federated, fedMs] = await timed(() => ds.countEntries({ federatesWith: { trustDomains: ['partner.org'], match: 'any' } }));
      assert.equal(federated, 1000);

      const report = {
        'create 10,000 (batches of 500)': createMs,
        'listEntriesForParents(1 parent → 100)': parentMs,
        'listEntriesForParents(3 parents → 200)': threeParentsMs,
        'listEntriesBySelectors(4 selectors, subset → 1)': subsetMs,
        'listEntries() all 10,000': allMs,
        'listEntries() in 10 pages of 1,000': pagedMs,
        'countEntries(federatesWith any)': fedMs,
      };
      for (const [k, v] of Object.entries(report)) t.diagnostic(`${backend.name}: ${k}: ${v.toFixed(1)} ms`);
      // Generous bounds: an index missing turns milliseconds into seconds.
      assert.ok(parentMs < 500, `listEntriesForParents took ${parentMs} ms`);
      assert.ok(subsetMs < 500, `listEntriesBySelectors took ${subsetMs} ms`);
    });
  });
}

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { TrustDomain } from '@tessera/spiffe/id';
import {
  EntryIndex,
  RegistrationError,
  matchWorkloadEntries,
  parseSelector,
  serverId,
  validateEntryInput,
  type RegistrationEntry,
  type EntryInput,
} from '../../src/server/registration/index.js';

const td = TrustDomain.parse('cluster.local');

function rejects(input: Partial<EntryInput>, field: string, re: RegExp): void {
  const base: EntryInput = { spiffeId: 'spiffe://cluster.local/ns/backend/sa/default', parentId: 'spiffe://cluster.local/tessera/agent/join_token/abc', selectors: [parseSelector('k8s:ns:backend')] };
  assert.throws(
    () => validateEntryInput({ ...base, ...input } as EntryInput, td),
    (e: unknown) => e instanceof RegistrationError && e.code === 'INVALID_ARGUMENT' && e.field === field && re.test(e.message),
    `${field} ${re}`,
  );
}

describe('selectors', () => {
  test('SPIRE type:value form, the type is up to the first colon', () => {
    assert.deepEqual(parseSelector('unix:uid:1000'), { type: 'unix', value: 'uid:1000' });
    assert.deepEqual(parseSelector('k8s:pod-label:app:web'), { type: 'k8s', value: 'pod-label:app:web' });
    assert.deepEqual(parseSelector('k8s:sa:default'), { type: 'k8s', value: 'sa:default' });
  });
  for (const bad of ['', 'unix', ':uid:1', 'unix:', 'UNIX:uid:1', 'un ix:uid:1', 'unix:uid\n1']) {
    test(`rejects ${JSON.stringify(bad)}`, () => assert.throws(() => parseSelector(bad), (e: unknown) => e instanceof RegistrationError && e.code === 'INVALID_ARGUMENT'));
  }
});

describe('entry validation', () => {
  test('normalizes a valid entry: selectors sorted and unique, defaults filled', () => {
    const e = validateEntryInput(
      {
        spiffeId: 'spiffe://cluster.local/ns/backend/sa/default',
        parentId: 'spiffe://cluster.local/tessera/agent/join_token/abc',
        selectors: [parseSelector('k8s:sa:default'), parseSelector('k8s:ns:backend'), parseSelector('k8s:sa:default')],
        federatesWith: ['spiffe://other.org', 'b.org'],
        dnsNames: ['Web.Backend.svc', '*.example.com'],
      },
      td,
    );
    assert.deepEqual(e.selectors.map((s) => `${s.type}:${s.value}`), ['k8s:ns:backend', 'k8s:sa:default']);
    assert.deepEqual(e.federatesWith, ['b.org', 'other.org']);
    assert.deepEqual(e.dnsNames, ['web.backend.svc', '*.example.com']);
    assert.equal(e.x509SvidTtl, 0);
    assert.equal(e.admin, false);
  });
  test('rejects IDs outside the trust domain, root IDs, self-parenting', () => {
    rejects({ spiffeId: 'spiffe://other.org/x' }, 'spiffeId', /not in trust domain "cluster.local"/);
    rejects({ spiffeId: 'spiffe://cluster.local' }, 'spiffeId', /must have a path/);
    rejects({ spiffeId: 'spiffe://cluster.local/a//b' }, 'spiffeId', /empty segments/);
    rejects({ parentId: '' }, 'parentId', /is required/);
    rejects({ parentId: 'spiffe://cluster.local/ns/backend/sa/default' }, 'parentId', /own parent/);
  });
  test('rejects bad selectors, TTLs, trust domains, DNS names, hints', () => {
    rejects({ selectors: [] }, 'selectors', /at least one selector/);
    rejects({ selectors: [{ type: 'k8s', value: '' }] }, 'selectors[0]', /empty value/);
    rejects({ x509SvidTtl: -1 }, 'x509SvidTtl', /non-negative/);
    rejects({ jwtSvidTtl: 1.5 }, 'jwtSvidTtl', /whole number/);
    rejects({ x509SvidTtl: 400 * 24 * 3600 }, 'x509SvidTtl', /at most/);
    rejects({ federatesWith: ['cluster.local'] }, 'federatesWith[0]', /own trust domain/);
    rejects({ federatesWith: ['Bad.Org'] }, 'federatesWith[0]', /trust domain characters/);
    rejects({ dnsNames: ['-bad-.example'] }, 'dnsNames[0]', /not a valid DNS name/);
    rejects({ hint: 'x'.repeat(2000) }, 'hint', /at most 1024/);
    rejects({ expiresAt: -5 }, 'expiresAt', /epoch seconds/);
  });
});

let n = 0;
function entry(spiffeId: string, parentId: string, selectors: string[], extra: Partial<RegistrationEntry> = {}): RegistrationEntry {
  return {
    id: `e${++n}`,
    spiffeId,
    parentId,
    selectors: selectors.map((s) => parseSelector(s)),
    x509SvidTtl: 0,
    jwtSvidTtl: 0,
    federatesWith: [],
    dnsNames: [],
    admin: false,
    downstream: false,
    hint: '',
    expiresAt: 0,
    revisionNumber: 0,
    createdAt: 0,
    ...extra,
  };
}

describe('agent entitlement (SPIRE semantics)', () => {
  const agent1 = 'spiffe://cluster.local/tessera/agent/x509pop/node-1';
  const agent2 = 'spiffe://cluster.local/tessera/agent/x509pop/node-2';
  const srv = serverId('cluster.local');
  const alias = entry('spiffe://cluster.local/node/workers', srv, ['x509pop:subject:ou:workers']);
  const direct = entry('spiffe://cluster.local/ns/a/sa/x', agent1, ['unix:uid:1000']);
  const viaAlias = entry('spiffe://cluster.local/ns/backend/sa/default', alias.spiffeId, ['k8s:ns:backend', 'k8s:sa:default']);
  const nested = entry('spiffe://cluster.local/ns/backend/sa/nested', viaAlias.spiffeId, ['unix:uid:1'], { downstream: true });
  const other = entry('spiffe://cluster.local/ns/b/sa/y', agent2, ['unix:uid:1000']);
  const expired = entry('spiffe://cluster.local/ns/a/sa/old', agent1, ['unix:uid:1'], { expiresAt: 100 });
  const index = new EntryIndex([alias, direct, viaAlias, nested, other, expired]);

  test('direct children, node aliases matched by node selectors, and their descendants', () => {
    const got = index.entitledEntries({ spiffeId: agent1, selectors: [parseSelector('x509pop:subject:ou:workers'), parseSelector('x509pop:subject:cn:node-1')] }, 'cluster.local', 200);
    assert.deepEqual(got.map((e) => e.spiffeId).sort(), [alias.spiffeId, direct.spiffeId, nested.spiffeId, viaAlias.spiffeId].sort());
  });
  test('an agent whose node selectors do not match the alias gets only its own entries', () => {
    const got = index.entitledEntries({ spiffeId: agent2, selectors: [parseSelector('x509pop:subject:ou:other')] }, 'cluster.local', 200);
    assert.deepEqual(got.map((e) => e.spiffeId), [other.spiffeId]);
  });
  test('expired entries are left out; an unexpired one with the same parent is kept', () => {
    const before = index.entitledEntries({ spiffeId: agent1, selectors: [] }, 'cluster.local', 50).map((e) => e.id);
    const after = index.entitledEntries({ spiffeId: agent1, selectors: [] }, 'cluster.local', 100).map((e) => e.id);
    assert.ok(before.includes(expired.id));
    assert.ok(!after.includes(expired.id));
    assert.ok(after.includes(direct.id));
  });
  test('index updates: removing the alias removes its subtree; cycles terminate', () => {
    const idx = new EntryIndex([alias, viaAlias, nested]);
    const agent = { spiffeId: agent1, selectors: [parseSelector('x509pop:subject:ou:workers')] };
    assert.equal(idx.entitledEntries(agent, 'cluster.local', 0).length, 3);
    idx.remove(alias.id);
    assert.equal(idx.entitledEntries(agent, 'cluster.local', 0).length, 0);
    const a = entry('spiffe://cluster.local/a', agent1, ['unix:uid:1']);
    const b = entry('spiffe://cluster.local/b', 'spiffe://cluster.local/a', ['unix:uid:1']);
    const c = entry('spiffe://cluster.local/a', 'spiffe://cluster.local/b', ['unix:uid:2']);
    const cyc = new EntryIndex([a, b, c]);
    assert.equal(cyc.entitledEntries(agent, 'cluster.local', 0).length, 3);
  });
  test('10,000 entries over 100 agents: one agent\'s entitlement only touches its own', () => {
    const big = new EntryIndex();
    for (let i = 0; i < 10_000; i++) big.upsert(entry(`spiffe://cluster.local/w/${i}`, `spiffe://cluster.local/tessera/agent/join_token/${i % 100}`, [`unix:uid:${i}`]));
    const got = big.entitledEntries({ spiffeId: 'spiffe://cluster.local/tessera/agent/join_token/7', selectors: [] }, 'cluster.local', 0);
    assert.equal(got.length, 100);
    assert.ok(got.every((e) => e.parentId.endsWith('/7')));
  });
});

describe('workload matching (subset)', () => {
  test('an entry matches when all its selectors are among the workload\'s', () => {
    const e1 = entry('spiffe://cluster.local/a', 'spiffe://cluster.local/p', ['k8s:ns:backend', 'k8s:sa:default']);
    const e2 = entry('spiffe://cluster.local/b', 'spiffe://cluster.local/p', ['k8s:ns:backend', 'k8s:sa:admin']);
    const got = matchWorkloadEntries([e1, e2], ['k8s:ns:backend', 'k8s:sa:default', 'k8s:pod-name:web-1'].map((s) => parseSelector(s)));
    assert.deepEqual(got.map((e) => e.spiffeId), ['spiffe://cluster.local/a']);
    assert.deepEqual(matchWorkloadEntries([e1], [parseSelector('k8s:ns:backend')]), []);
  });
});

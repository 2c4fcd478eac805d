import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Code, ConnectError, createClient, type Interceptor } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { TrustDomain } from '@tessera/spiffe/id';
import { JwtSvid } from '@tessera/spiffe/svid';
import { TestCa, createJwtSvid } from '@tessera/spiffe/testing';
import { SECURITY_HEADER, WorkloadApiClient, WorkloadApiError, X509Source, workloadApiWire as wire } from '@tessera/spiffe/workload-api';

import { InMemoryIdentityCache, startWorkloadApi, type WorkloadApiServer } from '../../src/agent/workload-api/index.js';
import { peerCredentials } from '../../src/agent/workload-attestors/index.js';
import { startUidAttestedWorkloadApi, trustBundleOf } from '../helpers/workload-api.js';
import type { Selector } from '../../src/server/registration/index.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-wlapi-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ca = new TestCa({ trustDomain: 'example.org' });
const fedCa = new TestCa({ trustDomain: 'other.org' });
const uid = process.getuid?.() ?? 0;
const mine: Selector[] = [{ type: 'unix', value: `uid:${uid}` }];


function svidFor(id: string, federatesWith: string[] = []): { spiffeId: string; certificates: Buffer[]; privateKey: import('node:crypto').KeyObject; hint: string; federatesWith: string[] } {
  const s = ca.createX509Svid(id);
  return { spiffeId: id, certificates: [...s.certificates], privateKey: s.privateKey, hint: 'internal', federatesWith };
}

interface Fixture {
  cache: InMemoryIdentityCache;
  server: WorkloadApiServer;
  path: string;
  /** Selectors the next attestation returns (by the real peer's uid). */
  selectorsByUid: Map<number, Selector[]>;
  attestedPids: number[];
}

let n = 0;
async function fixture(): Promise<Fixture> {
  const path = join(dir, `agent-${++n}.sock`);
  const cache = new InMemoryIdentityCache({ bundle: trustBundleOf(ca), jwtSigner: { key: ca.jwtKey, keyId: ca.jwtKeyId } });
  cache.setFederatedBundle('other.org', trustBundleOf(fedCa));
  const selectorsByUid = new Map<number, Selector[]>([[uid, mine]]);
  const attestedPids: number[] = [];
  const server = await startUidAttestedWorkloadApi(path, cache, (peerUid, pid) => {
    attestedPids.push(pid);
    return selectorsByUid.get(peerUid) ?? [];
  });
  after(() => server.close());
  return { cache, server, path, selectorsByUid, attestedPids };
}

/** A raw gRPC client of the Workload API; `header: false` leaves out the security header. */
function rawClient(path: string, header = true): { client: ReturnType<typeof createClient<typeof wire.SpiffeWorkloadAPI>>; close: () => void } {
  const sessions = new Http2SessionManager('http://localhost', undefined, { createConnection: () => connect(path) });
  const h: Interceptor = (next) => (req) => {
    req.header.set(SECURITY_HEADER, 'true');
    return next(req);
  };
  const transport = createGrpcTransport({ baseUrl: 'http://localhost', sessionManager: sessions, interceptors: header ? [h] : [] });
  return { client: createClient(wire.SpiffeWorkloadAPI, transport), close: () => sessions.abort() };
}

async function codeOf(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  const ce = ConnectError.from(e);
  assert.ok(e !== undefined, 'expected a failure');
  return { code: ce.code, message: ce.rawMessage };
}

test('FetchX509SVID: exactly the wire fields; socket mode 0777; federated bundles', async () => {
  const f = await fixture();
  assert.equal(statSync(f.path).mode & 0o777, 0o777);
  const web = svidFor('spiffe://example.org/web', ['spiffe://other.org']);
  f.cache.setEntry('e1', { selectors: mine, svid: web });
  const raw = rawClient(f.path);
  after(() => raw.close());
  const ac = new AbortController();
  const it = raw.client.fetchX509SVID({}, { signal: ac.signal })[Symbol.asyncIterator]();
  const first = (await it.next()).value as wire.X509SVIDResponse;
  ac.abort();
  assert.equal(first.svids.length, 1);
  const s = first.svids[0]!;
  assert.equal(s.spiffeId, 'spiffe://example.org/web');
  assert.equal(s.hint, 'internal');
  assert.deepEqual(Buffer.from(s.x509Svid), Buffer.concat(web.certificates));
  assert.deepEqual(Buffer.from(s.x509SvidKey), web.privateKey.export({ type: 'pkcs8', format: 'der' }));
  assert.deepEqual(Buffer.from(s.bundle), ca.root.certificate);
  assert.deepEqual(Object.keys(first.federatedBundles), ['spiffe://other.org']);
  assert.deepEqual(Buffer.from(first.federatedBundles['spiffe://other.org']!), fedCa.root.certificate);
  assert.deepEqual(first.crl, []);
  assert.ok(f.attestedPids.includes(process.pid), 'the caller was identified by SO_PEERCRED as this process');

  // The library's strict client parses it.
  const client = new WorkloadApiClient({ address: `unix://${f.path}` });
  after(() => client.close());
  const ctx = await client.fetchX509Context();
  assert.equal(ctx.svids[0]!.id.toString(), 'spiffe://example.org/web');
  assert.equal(ctx.svids[0]!.hint, 'internal');
  assert.ok(ctx.bundles.has(TrustDomain.parse('other.org')));
  assert.ok(ctx.bundles.has(TrustDomain.parse('example.org')));
  const xb = await client.fetchX509Bundles();
  assert.ok(xb.has(TrustDomain.parse('example.org')) && xb.has(TrustDomain.parse('other.org')));
  const jb = await client.fetchJwtBundles();
  assert.ok(jb.get(TrustDomain.parse('example.org'))!.hasJwtAuthority(ca.jwtKeyId));
  assert.ok(jb.get(TrustDomain.parse('other.org'))!.hasJwtAuthority(fedCa.jwtKeyId));
});

test('no security header → InvalidArgument; no identity → PermissionDenied "no identity issued"', async () => {
  const f = await fixture();
  f.cache.setEntry('e1', { selectors: mine, svid: svidFor('spiffe://example.org/web') });
  const bare = rawClient(f.path, false);
  after(() => bare.close());
  const r1 = await codeOf(bare.client.fetchJWTSVID({ audience: ['a'] }));
  assert.deepEqual(r1, { code: Code.InvalidArgument, message: 'security header missing from request' });
  const r2 = await codeOf((async () => {
    for await (const m of bare.client.fetchX509SVID({})) return m;
  })());
  assert.deepEqual(r2, { code: Code.InvalidArgument, message: 'security header missing from request' });

  f.selectorsByUid.set(uid, [{ type: 'unix', value: 'uid:999999' }]);
  const raw = rawClient(f.path);
  after(() => raw.close());
  for (const call of [
    () => raw.client.fetchX509SVID({}),
    () => raw.client.fetchX509Bundles({}),
    () => raw.client.fetchJWTBundles({}),
  ]) {
    const r = await codeOf((async () => {
      for await (const m of call()) return m;
    })());
    assert.deepEqual(r, { code: Code.PermissionDenied, message: 'no identity issued' });
  }
  assert.deepEqual(await codeOf(raw.client.fetchJWTSVID({ audience: ['a'] })), { code: Code.PermissionDenied, message: 'no identity issued' });
  const client = new WorkloadApiClient({ address: `unix://${f.path}` });
  after(() => client.close());
  await assert.rejects(client.fetchX509Svid(), WorkloadApiError);
});

test('attestation failure → Unavailable', async () => {
  const path = join(dir, 'fail.sock');
  const cache = new InMemoryIdentityCache({ bundle: trustBundleOf(ca) });
  const server = await startWorkloadApi({ socketPath: path, cache, peer: peerCredentials, attest: () => Promise.reject(new Error('proc gone')) });
  after(() => server.close());
  const raw = rawClient(path);
  after(() => raw.close());
  assert.equal((await codeOf(raw.client.fetchJWTSVID({ audience: ['a'] }))).code, Code.Unavailable);
});

test('rotation reaches an open stream within ms and X509Source swaps; removal → PermissionDenied', async () => {
  const f = await fixture();
  f.cache.setEntry('e1', { selectors: mine, svid: svidFor('spiffe://example.org/web') });
  const source = await X509Source.create({ address: `unix://${f.path}`, timeoutMs: 5000 });
  after(() => source.close());
  const raw = rawClient(f.path);
  after(() => raw.close());
  const it = raw.client.fetchX509SVID({})[Symbol.asyncIterator]();
  const first = (await it.next()).value as wire.X509SVIDResponse;
  const before = source.getX509Svid().certificates[0]!;

  // An unrelated change (another workload's entry) sends nothing to this caller.
  f.cache.setEntry('other', { selectors: [{ type: 'unix', value: 'uid:4242' }], svid: svidFor('spiffe://example.org/other') });

  const rotated = svidFor('spiffe://example.org/web');
  const updated = once(source, 'update');
  const t0 = performance.now();
  f.cache.setEntry('e1', { selectors: mine, svid: rotated });
  const second = (await it.next()).value as wire.X509SVIDResponse;
  const ms = performance.now() - t0;
  assert.ok(ms < 200, `update took ${ms} ms`);
  assert.notDeepEqual(Buffer.from(second.svids[0]!.x509Svid), Buffer.from(first.svids[0]!.x509Svid));
  assert.deepEqual(Buffer.from(second.svids[0]!.x509Svid), Buffer.concat(rotated.certificates));
  await updated;
  assert.deepEqual(source.getX509Svid().certificates[0], rotated.certificates[0]);
  assert.notDeepEqual(source.getX509Svid().certificates[0], before);

  f.cache.removeEntry('e1');
  const err = await it.next().then(() => undefined, (e: unknown) => ConnectError.from(e));
  assert.ok(err instanceof ConnectError);
  assert.equal(err.code, Code.PermissionDenied);
  assert.equal(err.rawMessage, 'no identity issued');
});

test('JWT: fetch per identity, filter, empty audience, validate valid/invalid', async () => {
  const f = await fixture();
  f.cache.setEntry('e1', { selectors: mine, svid: svidFor('spiffe://example.org/web') });
  f.cache.setEntry('e2', { selectors: mine, svid: svidFor('spiffe://example.org/db') });
  const raw = rawClient(f.path);
  after(() => raw.close());
  const all = await raw.client.fetchJWTSVID({ audience: ['spiffe://example.org/api'] });
  assert.deepEqual(all.svids.map((s) => s.spiffeId), ['spiffe://example.org/web', 'spiffe://example.org/db']);
  for (const s of all.svids) {
    const v = JwtSvid.parseAndValidate(s.svid, ca.jwtBundle(), 'spiffe://example.org/api');
    assert.equal(v.id.toString(), s.spiffeId);
  }
  assert.equal((await codeOf(raw.client.fetchJWTSVID({ audience: [] }))).code, Code.InvalidArgument);
  assert.equal((await codeOf(raw.client.fetchJWTSVID({ audience: ['a'], spiffeId: 'spiffe://example.org/nope' }))).code, Code.PermissionDenied);

  const client = new WorkloadApiClient({ address: `unix://${f.path}` });
  after(() => client.close());
  const one = await client.fetchJwtSvid({ audience: 'spiffe://example.org/api', spiffeId: 'spiffe://example.org/db' });
  assert.equal(one.id.toString(), 'spiffe://example.org/db');
  const validated = await client.validateJwtSvid(one.marshal(), 'spiffe://example.org/api');
  assert.equal(validated.id.toString(), 'spiffe://example.org/db');

  const direct = await raw.client.validateJWTSVID({ svid: one.marshal(), audience: 'spiffe://example.org/api' });
  assert.equal(direct.spiffeId, 'spiffe://example.org/db');
  assert.equal(direct.claims?.['sub'], 'spiffe://example.org/db');

  // A federated trust domain's token validates too.
  const fedToken = createJwtSvid(fedCa, 'spiffe://other.org/x', 'spiffe://example.org/api');
  assert.equal((await raw.client.validateJWTSVID({ svid: fedToken, audience: 'spiffe://example.org/api' })).spiffeId, 'spiffe://other.org/x');

  for (const [svid, audience] of [
    [one.marshal(), 'spiffe://example.org/wrong'],
    ['not.a.jwt', 'a'],
    [createJwtSvid(new TestCa({ trustDomain: 'example.org' }), 'spiffe://example.org/x', 'a'), 'a'],
    ['', 'a'],
    [one.marshal(), ''],
  ] as const) {
    const r = await codeOf(raw.client.validateJWTSVID({ svid, audience }));
    assert.equal(r.code, Code.InvalidArgument, `${svid.slice(0, 10)} ${audience}: ${r.message}`);
    assert.ok(r.message.length > 0);
  }
  await assert.rejects(client.validateJwtSvid('garbage', 'a'));
});

test('garbage bytes and 200 idle connections do not affect another caller; close() is clean', async () => {
  const f = await fixture();
  f.cache.setEntry('e1', { selectors: mine, svid: svidFor('spiffe://example.org/web') });
  const idle = [];
  for (let i = 0; i < 200; i++) {
    const s = connect(f.path);
    s.on('error', () => undefined);
    idle.push(s);
  }
  await Promise.all(idle.map((s) => once(s, 'connect')));
  const bad = connect(f.path);
  bad.on('error', () => undefined);
  await once(bad, 'connect');
  bad.write(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x08\x00\xff\xff\xff\xff garbage'));
  bad.resume();
  const half = connect(f.path);
  half.on('error', () => undefined);
  await once(half, 'connect');
  half.write(Buffer.from('\x16\x03\x01 definitely not http2'));
  half.resume();

  const client = new WorkloadApiClient({ address: `unix://${f.path}` });
  after(() => client.close());
  const t0 = performance.now();
  const svid = await client.fetchX509Svid();
  assert.equal(svid.id.toString(), 'spiffe://example.org/web');
  assert.ok(performance.now() - t0 < 2000);
  const jwt = await client.fetchJwtSvid({ audience: 'x' });
  assert.equal(jwt.id.toString(), 'spiffe://example.org/web');

  // An open stream ends when the server closes.
  const raw = rawClient(f.path);
  const it = raw.client.fetchX509SVID({})[Symbol.asyncIterator]();
  await it.next();
  await f.server.close();
  const end = await it.next().then((r) => r.done, () => 'error');
  assert.ok(end === true || end === 'error');
  raw.close();
  for (const s of idle) s.destroy();
  bad.destroy();
  half.destroy();
  assert.throws(() => statSync(f.path), /ENOENT/);
});

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { X509Svid, verifyX509Svid, JwtSvid } from '@tessera/spiffe/svid';
import { X509Bundle, JwtBundle } from '@tessera/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@tessera/spiffe/id';
import { authorizeId, connectTls } from '@tessera/spiffe/tls';
import { buildCertificateRequest } from '@tessera/spiffe/x509';
import { EntryAdmin, AgentAdmin, BundleAdmin, SvidAdmin, ServerHealth } from '../../src/gen/tessera/v1/admin_pb.js';
import { EntrySchema, SelectorSchema } from '../../src/gen/tessera/v1/types_pb.js';
import { unixSocketTransport } from '../../src/grpc/unix-client.js';
import { loadServerConfig } from '../../src/server/config.js';
import { startServer, ServerStartError } from '../../src/server/server.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-server-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } };
const td = TrustDomain.parse('cluster.local');

function config(dataDir: string, extra: Record<string, unknown> = {}) {
  return loadServerConfig({ flags: { trustDomain: 'cluster.local', dataDir, healthPort: 0, bindPort: 0, bindAddress: '127.0.0.1', ...extra } });
}

test('server run: Admin API for entries, tokens, bundle and minting; health; restart keeps the CA', async () => {
  const dataDir = join(dir, 'a');
  const srv = await startServer(config(dataDir), { logger: silent, tickSeconds: 0, healthAddress: '127.0.0.1' });
  let closed = false;
  after(async () => {
    if (!closed) await srv.close();
  });
  assert.equal(statSync(dataDir).mode & 0o777, 0o700);
  const t = unixSocketTransport(srv.socketPath);
  const entries = createClient(EntryAdmin, t);

  const sel = (type: string, value: string) => create(SelectorSchema, { type, value });
  const created = await entries.batchCreateEntry({
    entries: [
      create(EntrySchema, { spiffeId: 'spiffe://cluster.local/ns/backend/sa/default', parentId: 'spiffe://cluster.local/tessera/agent/join_token/x', selectors: [sel('k8s', 'ns:backend'), sel('k8s', 'sa:default')] }),
      create(EntrySchema, { spiffeId: 'spiffe://cluster.local/ns/backend/sa/default', parentId: 'spiffe://cluster.local/tessera/agent/join_token/x', selectors: [sel('k8s', 'sa:default'), sel('k8s', 'ns:backend')] }),
      create(EntrySchema, { spiffeId: 'spiffe://other.org/x', parentId: 'spiffe://cluster.local/p', selectors: [sel('unix', 'uid:1')] }),
    ],
  });
  assert.equal(created.results[0]!.status!.code, 0);
  assert.equal(created.results[1]!.status!.code, Code.AlreadyExists, 'exact duplicate (same selector set) → AlreadyExists');
  assert.equal(created.results[2]!.status!.code, Code.InvalidArgument);
  assert.match(created.results[2]!.status!.message, /not in trust domain "cluster.local"/);
  assert.equal((await entries.countEntries({})).count, 1n);

  const token = await createClient(AgentAdmin, t).createJoinToken({ agentAlias: 'spiffe://cluster.local/node/worker' });
  assert.match(token.value, /^[0-9a-f-]{36}$/);
  const aliases = await entries.listEntries({ filter: { byParentId: 'spiffe://cluster.local/tessera/server' } });
  assert.deepEqual(aliases.entries.map((e) => [e.spiffeId, e.selectors.map((s) => `${s.type}:${s.value}`)]), [['spiffe://cluster.local/node/worker', [`join_token:${token.value}`]]]);

  // The bundle, and SVIDs minted from a CSR that verify against it with the library's strict rules.
  const bundle = await createClient(BundleAdmin, t).getBundle({});
  assert.equal(bundle.trustDomain, 'cluster.local');
  assert.equal(bundle.x509Authorities.length, 1);
  const x509Bundle = new X509Bundle(td, bundle.x509Authorities);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const csr = buildCertificateRequest(privateKey, { uris: ['spiffe://cluster.local/ns/backend/sa/default'] });
  const svids = createClient(SvidAdmin, t);
  const minted = await svids.mintX509Svid({ spiffeId: 'spiffe://cluster.local/ns/backend/sa/default', csr, ttl: 600 });
  const svid = X509Svid.fromParts(minted.certificates, privateKey);
  assert.equal(verifyX509Svid(svid.certificates, x509Bundle).id.toString(), 'spiffe://cluster.local/ns/backend/sa/default');
  const lifetime = svid.expiresAt.getTime() - svid.issuedAt.getTime();
  assert.ok(lifetime >= 600_000 && lifetime <= 611_000, `TTL ${lifetime}`);
  const err = await svids.mintX509Svid({ spiffeId: 'spiffe://cluster.local/x', csr: Buffer.from('garbage') }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof ConnectError && err.code === Code.InvalidArgument, String(err));
  const jwt = await svids.mintJwtSvid({ spiffeId: 'spiffe://cluster.local/web', audience: ['db'] });
  const jwtBundle = new JwtBundle(td, bundle.jwtAuthorities.map((k) => [k.keyId, createPublicKey({ key: Buffer.from(k.publicKey), format: 'der', type: 'spki' })] as const));
  assert.equal(JwtSvid.parseAndValidate(jwt.token, jwtBundle, 'db').id.toString(), 'spiffe://cluster.local/web');

  // The Agent API listens over TLS with the server's own SVID, verifiable with the bundle.
  assert.ok(srv.agentApi.port > 0);
  const tlsSocket = await connectTls({ bundle: x509Bundle, authorize: authorizeId(SpiffeId.parse('spiffe://cluster.local/tessera/server')) }, { host: '127.0.0.1', port: srv.agentApi.port, ALPNProtocols: ['h2'] });
  assert.equal(tlsSocket.alpnProtocol, 'h2');
  tlsSocket.destroy();

  // Health over gRPC and HTTP; metrics.
  assert.deepEqual({ ...(await createClient(ServerHealth, t).check({})) }, { $typeName: 'tessera.v1.HealthResponse', ready: true, datastore: 'ok', ca: 'ok' });
  const base = `http://127.0.0.1:${srv.healthPort}`;
  assert.equal((await fetch(`${base}/live`)).status, 200);
  const ready = await fetch(`${base}/ready`);
  assert.equal(ready.status, 200);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /^tessera_server_entries 2$/m);
  assert.match(metrics, /^tessera_server_svid_signings_total\{kind="x509",api="admin"\} 1$/m);
  assert.match(metrics, /^tessera_server_api_calls_total\{api="admin",method="BatchCreateEntry",code="ok"\} 1$/m);

  // Restart: same CA, same bundle, same entries.
  await srv.close();
  closed = true;
  const again = await startServer(config(dataDir), { logger: silent, tickSeconds: 0 });
  after(() => again.close());
  const bundle2 = await createClient(BundleAdmin, unixSocketTransport(again.socketPath)).getBundle({});
  assert.deepEqual(bundle2.x509Authorities.map((b) => Buffer.from(b).toString('hex')), bundle.x509Authorities.map((b) => Buffer.from(b).toString('hex')));
  assert.equal((await createClient(EntryAdmin, unixSocketTransport(again.socketPath)).countEntries({})).count, 2n);
});

test('start-up failures are one-line errors: unreachable PostgreSQL, socket in use', async () => {
  const err = await startServer(config(join(dir, 'b'), { datastore: 'postgres://tessera@127.0.0.1:1/tessera' }), { logger: silent, tickSeconds: 0 }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof ServerStartError, String(err));
  assert.match(err.message, /^cannot open the datastore: .*127\.0\.0\.1:1/);
  assert.ok(!err.message.includes('\n'));

  const first = await startServer(config(join(dir, 'c')), { logger: silent, tickSeconds: 0 });
  after(() => first.close());
  const second = await startServer(config(join(dir, 'd'), { socketPath: first.socketPath }), { logger: silent, tickSeconds: 0 }).then(() => undefined, (e: unknown) => e);
  assert.ok(second instanceof ServerStartError);
  assert.match(second.message, /cannot serve the Admin API on .*already serving/);
});

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { create } from '@bufbuild/protobuf';
import { buildCertificateRequest } from '@tessera/spiffe/x509';
import { EntryAdmin, SvidAdmin } from '../../src/gen/tessera/v1/admin_pb.js';
import { EntrySchema, SelectorSchema } from '../../src/gen/tessera/v1/types_pb.js';
import { unixSocketTransport } from '../../src/grpc/unix-client.js';
import { loadServerConfig } from '../../src/server/config.js';
import { startServer } from '../../src/server/server.js';

const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } };
const pem = (der: Uint8Array): string => new X509Certificate(der).toString();

test('the Admin API over TCP: only callers with the SVID of an admin entry; others are refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-radmin-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const srv = await startServer(loadServerConfig({ flags: { trustDomain: 'cluster.local', dataDir: dir, healthPort: 0, bindPort: 0, bindAddress: '127.0.0.1' } }), { logger: silent, tickSeconds: 0 });
  after(() => srv.close());
  const local = unixSocketTransport(srv.socketPath);
  const roots = srv.ca.bundle().x509Authorities().map(pem);

  const mint = async (id: string): Promise<{ certs: Uint8Array[]; key: KeyObject }> => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const r = await createClient(SvidAdmin, local).mintX509Svid({ spiffeId: id, csr: buildCertificateRequest(key, { uris: [id] }) });
    return { certs: r.certificates, key };
  };
  const remote = (creds?: { certs: Uint8Array[]; key: KeyObject }) =>
    createClient(
      EntryAdmin,
      createGrpcTransport({
        baseUrl: `https://127.0.0.1:${srv.agentApi.port}`,
        nodeOptions: {
          ca: roots,
          // The server's SVID has no DNS name; its chain is still verified against the bundle.
          checkServerIdentity: () => undefined,
          ...(creds ? { cert: creds.certs.map(pem).join(''), key: creds.key.export({ type: 'pkcs8', format: 'pem' }) } : {}),
        },
      }),
    );

  await createClient(EntryAdmin, local).batchCreateEntry({
    entries: [create(EntrySchema, { spiffeId: 'spiffe://cluster.local/ops/admin', parentId: 'spiffe://cluster.local/tessera/server', selectors: [create(SelectorSchema, { type: 'unix', value: 'uid:0' })], admin: true })],
  });
  const admin = await mint('spiffe://cluster.local/ops/admin');
  assert.equal((await remote(admin).countEntries({})).count, 1n);

  const plain = await mint('spiffe://cluster.local/ops/not-admin');
  const denied = await remote(plain).countEntries({}).then(() => undefined, (e: unknown) => e);
  assert.ok(denied instanceof ConnectError && denied.code === Code.PermissionDenied, String(denied));
  assert.match(denied.rawMessage, /is not an admin/);

  const anonymous = await remote().countEntries({}).then(() => undefined, (e: unknown) => e);
  assert.ok(anonymous instanceof ConnectError && anonymous.code === Code.Unauthenticated, String(anonymous));
});

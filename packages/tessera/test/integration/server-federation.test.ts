import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@connectrpc/connect';
import { FederationAdmin, BundleAdmin } from '../../src/gen/tessera/v1/admin_pb.js';
import { unixSocketTransport } from '../../src/grpc/unix-client.js';
import { loadServerConfig } from '../../src/server/config.js';
import { startServer } from '../../src/server/server.js';
import { freePort } from '../helpers/processes.js';

const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } };

test('two daemons federate through the Admin API: https_spiffe bundle endpoints, bootstrap bundles, refresh', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-fed-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const start = async (td: string) =>
    startServer(loadServerConfig({ flags: { trustDomain: td, dataDir: join(dir, td), healthPort: 0, bindPort: 0, bindAddress: '127.0.0.1', bundleEndpointPort: await freePort() } }), { logger: silent, tickSeconds: 0 });
  const a = await start('a.test');
  after(() => a.close());
  const b = await start('b.test');
  after(() => b.close());
  assert.ok(a.federation.bundleEndpointPort > 0);

  for (const [self, peer] of [[a, b], [b, a]] as const) {
    const fed = createClient(FederationAdmin, unixSocketTransport(self.socketPath));
    const peerTd = peer.config.trustDomain.name;
    await fed.createFederationRelationship({
      trustDomain: peerTd,
      bundleEndpointUrl: `https://127.0.0.1:${peer.federation.bundleEndpointPort}`,
      profile: 'https_spiffe',
      endpointSpiffeId: `spiffe://${peerTd}/tessera/server`,
      trustDomainBundle: peer.ca.bundle().marshal(),
    });
    const refreshed = await fed.refreshBundle({ trustDomain: peerTd });
    assert.equal(refreshed.trustDomain, peerTd);
    const stored = await createClient(BundleAdmin, unixSocketTransport(self.socketPath)).getFederatedBundle({ trustDomain: peerTd });
    assert.deepEqual(
      stored.x509Authorities.map((d) => Buffer.from(d).toString('hex')),
      peer.ca.bundle().x509Authorities().map((d) => d.toString('hex')),
    );
  }
  const list = await createClient(FederationAdmin, unixSocketTransport(a.socketPath)).listFederationRelationships({});
  assert.deepEqual(list.relationships.map((r) => r.trustDomain), ['b.test']);
});

// HA from the agent's side: two servers on one PostgreSQL, an agent given
// both addresses. When the server it talks to dies, the agent fails over to
// the other, keeps serving workloads meanwhile, and gets new entries and
// SVIDs through the survivor.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createClient } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { WorkloadApiClient, exponentialBackoff, type X509Context } from '@tessera/spiffe/workload-api';
import { AgentAdmin, BundleAdmin, EntryAdmin } from '../../src/gen/tessera/v1/admin_pb.js';
import { EntrySchema, SelectorSchema } from '../../src/gen/tessera/v1/types_pb.js';
import { unixSocketTransport } from '../../src/grpc/unix-client.js';
import { loadServerConfig } from '../../src/server/config.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { loadAgentConfig } from '../../src/agent/config.js';
import { startAgent } from '../../src/agent/agent.js';
import { startPostgres } from '../helpers/postgres.js';

const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } };
const uid = process.getuid!();

async function createEntry(srv: RunningServer, spiffeId: string, parentId: string): Promise<void> {
  const res = await createClient(EntryAdmin, unixSocketTransport(srv.socketPath)).batchCreateEntry({
    entries: [create(EntrySchema, { spiffeId, parentId, selectors: [create(SelectorSchema, { type: 'unix', value: `uid:${uid}` })] })],
  });
  assert.equal(res.results[0]!.status!.code, 0, res.results[0]!.status!.message);
}

test('agent failover: the server it syncs with dies → it moves to the other address, workloads keep their SVIDs, new entries arrive through the survivor', async () => {
  const pg = await startPostgres();
  after(() => pg.stop());
  const dir = mkdtempSync(join(tmpdir(), 'tessera-failover-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = (name: string) => loadServerConfig({ flags: { trustDomain: 'cluster.local', dataDir: join(dir, name), healthPort: 0, bindPort: 0, bindAddress: '127.0.0.1', datastore: pg.url } });
  const a = await startServer(cfg('a'), { logger: silent, tickSeconds: 0 });
  let aClosed = false;
  after(() => (aClosed ? undefined : a.close()));
  const b = await startServer(cfg('b'), { logger: silent, tickSeconds: 0 });
  after(() => b.close());
  await a.tick(); // publishes the union bundle (both CAs)

  const published = await createClient(BundleAdmin, unixSocketTransport(a.socketPath)).getBundle({});
  assert.equal(published.x509Authorities.length, 2);
  const bundleFile = join(dir, 'bootstrap.pem');
  writeFileSync(bundleFile, published.x509Authorities.map((d) => new X509Certificate(d).toString()).join(''));
  const token = (await createClient(AgentAdmin, unixSocketTransport(a.socketPath)).createJoinToken({})).value;

  const agent = await startAgent(
    loadAgentConfig({
      flags: {
        trustDomain: 'cluster.local',
        serverAddress: `127.0.0.1:${a.agentApi.port},127.0.0.1:${b.agentApi.port}`,
        dataDir: join(dir, 'agent'),
        socketPath: join(dir, 'agent.sock'),
        adminSocketPath: join(dir, 'agent-admin.sock'),
        trustBundle: bundleFile,
        joinToken: token,
      },
    }),
    { logger: silent, reconnect: { initialMs: 20, maxMs: 100 } },
  );
  after(() => agent.close());
  await createEntry(a, 'spiffe://cluster.local/before', agent.spiffeId);
  await agent.ready();

  const client = new WorkloadApiClient({ address: `unix://${agent.socketPath}`, backoff: exponentialBackoff({ initialMs: 20, maxMs: 100 }) });
  const seen: X509Context[] = [];
  const ac = new AbortController();
  after(() => ac.abort());
  void client.watchX509Context({ onX509ContextUpdate: (c) => seen.push(c) }, ac.signal).catch(() => undefined);
  const ids = (): string[] => (seen.at(-1)?.svids ?? []).map((s) => s.id.toString()).sort();
  const waitFor = async (cond: () => boolean, ms: number, what: string): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (have ${ids().join(', ')})`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await waitFor(() => ids().includes('spiffe://cluster.local/before'), 3000, 'the first SVID');

  // A dies. The cached SVID is still served; the agent moves to B.
  await a.close();
  aClosed = true;
  const fresh = await new WorkloadApiClient({ address: `unix://${agent.socketPath}` }).fetchX509Context();
  assert.deepEqual(fresh.svids.map((s) => s.id.toString()), ['spiffe://cluster.local/before']);
  await createEntry(b, 'spiffe://cluster.local/after-failover', agent.spiffeId);
  await waitFor(() => ids().includes('spiffe://cluster.local/after-failover'), 5000, 'the entry created through B, signed by B');
  assert.ok(agent.connected, 'synced with B');
  // The new SVID was issued by B's CA (A is gone).
  const leaf = new X509Certificate(seen.at(-1)!.svids.find((s) => s.id.toString().endsWith('after-failover'))!.certificates[0]!);
  assert.equal(leaf.issuer, new X509Certificate(b.ca.bundle().x509Authorities()[0]!).subject);
});

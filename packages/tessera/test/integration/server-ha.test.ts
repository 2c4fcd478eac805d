import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { EntryAdmin, BundleAdmin, AgentAdmin } from '../../src/gen/tessera/v1/admin_pb.js';
import { joinTokenAgentId } from '../../src/server/api/agent-admin.js';
import { agentClient, attestJoinToken, SyncStream } from '../../bench/agent-client.js';
import { EntrySchema, SelectorSchema } from '../../src/gen/tessera/v1/types_pb.js';
import { unixSocketTransport } from '../../src/grpc/unix-client.js';
import { loadServerConfig } from '../../src/server/config.js';
import { startServer } from '../../src/server/server.js';
import { startPostgres } from '../helpers/postgres.js';

const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } };

test('HA: two servers on one PostgreSQL both serve, share a bundle with both CAs, and see each other\'s entries at once', async () => {
  const pg = await startPostgres();
  after(() => pg.stop());
  const dir = mkdtempSync(join(tmpdir(), 'tessera-ha-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = (name: string) => loadServerConfig({ flags: { trustDomain: 'cluster.local', dataDir: join(dir, name), healthPort: 0, bindPort: 0, bindAddress: '127.0.0.1', datastore: pg.url } });
  const a = await startServer(cfg('a'), { logger: silent, tickSeconds: 0 });
  after(() => a.close());
  const b = await startServer(cfg('b'), { logger: silent, tickSeconds: 0 });
  after(() => b.close());
  // A publishes again on its next tick, now seeing B's contribution too.
  await a.tick();

  const rootsA = a.ca.bundle().x509Authorities().map((d) => d.toString('hex'));
  const rootsB = b.ca.bundle().x509Authorities().map((d) => d.toString('hex'));
  assert.notDeepEqual(rootsA, rootsB, 'each replica keeps its own CA key');
  for (const srv of [a, b]) {
    const published = await createClient(BundleAdmin, unixSocketTransport(srv.socketPath)).getBundle({});
    const roots = published.x509Authorities.map((d) => Buffer.from(d).toString('hex')).sort();
    assert.deepEqual(roots, [...rootsA, ...rootsB].sort(), 'the shared bundle holds both CAs');
    assert.equal(published.jwtAuthorities.length, 2);
  }

  // An agent attested and syncing on B (with a join token made through A)
  // receives an entry created through A within 1 s.
  const token = await createClient(AgentAdmin, unixSocketTransport(a.socketPath)).createJoinToken({});
  const target = { trustDomain: a.config.trustDomain, host: '127.0.0.1', port: b.agentApi.port, roots: b.ca.bundle().x509Authorities() };
  const agent = await attestJoinToken(target, token.value);
  const stream = new SyncStream(agentClient(target, agent));
  after(() => stream.close());
  await stream.waitFor(() => stream.updates.length > 0, 5000, 'the first Sync snapshot');
  const agentId = joinTokenAgentId(a.config.trustDomain, token.value);
  const t0 = performance.now();
  const viaA = await createClient(EntryAdmin, unixSocketTransport(a.socketPath)).batchCreateEntry({
    entries: [create(EntrySchema, { spiffeId: 'spiffe://cluster.local/ns/ha/sa/pushed', parentId: agentId, selectors: [create(SelectorSchema, { type: 'unix', value: 'uid:7' })] })],
  });
  const pushedId = viaA.results[0]!.entry!.id;
  await stream.waitFor(() => stream.entryIds.has(pushedId), 1000, 'the entry created through the other replica');
  const agentLatency = stream.arrivals.get(pushedId)! - t0;
  assert.ok(agentLatency < 1000, `pushed to the agent on the other replica in ${agentLatency.toFixed(1)} ms`);

  // B watches the change feed (as its Agent API does); an entry created through A arrives within 1 s.
  const from = await b.datastore.currentRevision();
  const seen = new Promise<number>((resolve) => {
    const t0 = performance.now();
    const w = b.datastore.watch(from, (ev) => {
      if (ev.kind === 'entry') {
        w.close();
        resolve(performance.now() - t0);
      }
    });
  });
  const res = await createClient(EntryAdmin, unixSocketTransport(a.socketPath)).batchCreateEntry({
    entries: [create(EntrySchema, { spiffeId: 'spiffe://cluster.local/ns/a/sa/x', parentId: 'spiffe://cluster.local/tessera/agent/join_token/t', selectors: [create(SelectorSchema, { type: 'unix', value: 'uid:1' })] })],
  });
  assert.equal(res.results[0]!.status!.code, 0);
  const latency = await seen;
  assert.ok(latency < 1000, `change reached the other replica in ${latency.toFixed(1)} ms`);
  assert.equal((await createClient(EntryAdmin, unixSocketTransport(b.socketPath)).countEntries({})).count, 2n);
});

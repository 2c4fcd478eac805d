// The agent daemon in-process against a real server (real TLS on 127.0.0.1,
// SQLite), with workloads calling its Workload API socket through the
// library's client: node attestation, persisted identity, entries pushed to
// workloads, removal, JWT, rotation with an injected clock, server down and
// back, start-up errors.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createClient } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { WorkloadApiClient, exponentialBackoff, type X509Context } from '@tessera/spiffe/workload-api';
import { TestCa } from '@tessera/spiffe/testing';
import { Certificate } from '@tessera/spiffe/x509';
import { AgentAdmin, EntryAdmin } from '../../src/gen/tessera/v1/admin_pb.js';
import { EntrySchema, SelectorSchema } from '../../src/gen/tessera/v1/types_pb.js';
import { unixSocketTransport } from '../../src/grpc/unix-client.js';
import { loadServerConfig } from '../../src/server/config.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { loadAgentConfig, type AgentConfig } from '../../src/agent/config.js';
import { startAgent, type RunningAgent } from '../../src/agent/agent.js';
import { AgentError } from '../../src/agent/errors.js';

const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } };
const uid = process.getuid!();

const dir = mkdtempSync(join(tmpdir(), 'tessera-agentd-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function serverConfig(name: string, port = 0) {
  return loadServerConfig({ flags: { trustDomain: 'cluster.local', dataDir: join(dir, name), healthPort: 0, bindPort: port, bindAddress: '127.0.0.1' } });
}

function agentConfig(name: string, server: { agentApi: { port: number } } | string, extra: Record<string, unknown> = {}): AgentConfig {
  const bundleFile = join(dir, `${name}-bootstrap.pem`);
  return loadAgentConfig({
    flags: {
      trustDomain: 'cluster.local',
      serverAddress: typeof server === 'string' ? server : `127.0.0.1:${server.agentApi.port}`,
      dataDir: join(dir, name),
      socketPath: join(dir, `${name}.sock`),
      adminSocketPath: join(dir, `${name}-admin.sock`),
      ...(existsSync(bundleFile) ? { trustBundle: bundleFile } : {}),
      ...extra,
    },
  });
}

function writeBootstrap(name: string, srv: RunningServer): void {
  writeFileSync(join(dir, `${name}-bootstrap.pem`), srv.ca.bundle().x509Authorities().map((d) => new X509Certificate(d).toString()).join(''));
}

async function token(srv: RunningServer): Promise<string> {
  return (await createClient(AgentAdmin, unixSocketTransport(srv.socketPath)).createJoinToken({})).value;
}

async function createEntry(srv: RunningServer, spiffeId: string, parentId: string, selectors: [string, string][], extra: { x509SvidTtl?: number } = {}): Promise<string> {
  const res = await createClient(EntryAdmin, unixSocketTransport(srv.socketPath)).batchCreateEntry({
    entries: [create(EntrySchema, { spiffeId, parentId, selectors: selectors.map(([type, value]) => create(SelectorSchema, { type, value })), ...extra })],
  });
  assert.equal(res.results[0]!.status!.code, 0, res.results[0]!.status!.message);
  return res.results[0]!.entry!.id;
}

async function deleteEntry(srv: RunningServer, id: string): Promise<void> {
  await createClient(EntryAdmin, unixSocketTransport(srv.socketPath)).batchDeleteEntry({ ids: [id] });
}

/** Watches X.509 contexts through the library client; keeps the latest and every error. */
function watch(socketPath: string) {
  const client = new WorkloadApiClient({ address: `unix://${socketPath}`, backoff: exponentialBackoff({ initialMs: 20, maxMs: 100 }) });
  const seen: X509Context[] = [];
  const errors: Error[] = [];
  let wake: (() => void) | undefined;
  const ac = new AbortController();
  void client.watchX509Context(
    {
      onX509ContextUpdate: (c) => {
        seen.push(c);
        wake?.();
      },
      onX509ContextWatchError: (e) => {
        errors.push(e);
        wake?.();
      },
    },
    ac.signal,
  ).catch(() => undefined);
  return {
    seen,
    errors,
    async until(cond: () => boolean, ms: number, what: string): Promise<void> {
      const deadline = Date.now() + ms;
      while (!cond()) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}; errors: ${errors.map((e) => e.message).join('; ')}`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, Math.min(left, 200));
          wake = () => {
            clearTimeout(t);
            r();
          };
        });
      }
    },
    close: () => ac.abort(),
    client,
  };
}

const leafOf = (c: X509Context | undefined): Certificate => new Certificate(c!.svids[0]!.certificates[0]!);
const ids = (c: X509Context | undefined): string[] => (c ? c.svids.map((s) => s.id.toString()).sort() : []);

test('agent: join_token attestation, persisted identity, entries pushed to a waiting workload, removal → PermissionDenied, JWT, restart keeps the identity', async () => {
  const srv = await startServer(serverConfig('s1'), { logger: silent, tickSeconds: 0 });
  after(() => srv.close());
  writeBootstrap('a1', srv);
  const tok = await token(srv);
  let agent: RunningAgent = await startAgent(agentConfig('a1', srv, { joinToken: tok }), { logger: silent, healthAddress: '127.0.0.1' });
  assert.equal(agent.spiffeId, `spiffe://cluster.local/tessera/agent/join_token/${tok}`);
  await agent.ready();
  // Persisted: chain, key (0600), bundle.
  assert.equal(statSync(join(dir, 'a1', 'agent-key.pem')).mode & 0o777, 0o600);
  assert.ok(existsSync(join(dir, 'a1', 'agent-svid.pem')) && existsSync(join(dir, 'a1', 'bundle.json')));

  // A workload waiting on the socket (no identity yet: PermissionDenied, retried by the client).
  const w = watch(agent.socketPath);
  after(() => w.close());
  await w.until(() => w.errors.some((e) => /no identity issued/.test(e.message)), 3000, 'PermissionDenied before any entry');
  const t0 = performance.now();
  const entryId = await createEntry(srv, 'spiffe://cluster.local/ns/backend/sa/default', agent.spiffeId, [['unix', `uid:${uid}`]]);
  await w.until(() => ids(w.seen.at(-1)).includes('spiffe://cluster.local/ns/backend/sa/default'), 3000, 'the SVID of the new entry');
  const latency = performance.now() - t0;
  assert.ok(latency < 1000, `entry create → workload has its SVID in ${latency.toFixed(0)} ms`);
  const got = leafOf(w.seen.at(-1));
  assert.ok(got.subjectAltNames.uris.includes('spiffe://cluster.local/ns/backend/sa/default'));

  // A second entry for the same workload is pushed on the open stream.
  const second = await createEntry(srv, 'spiffe://cluster.local/ns/backend/sa/other', agent.spiffeId, [['unix', `uid:${uid}`]]);
  await w.until(() => ids(w.seen.at(-1)).length === 2, 3000, 'both SVIDs');

  // JWT-SVID through the agent (minted by the server, cached per audience).
  const jwt1 = await w.client.fetchJwtSvid({ audience: ['aud-1'], spiffeId: 'spiffe://cluster.local/ns/backend/sa/default' });
  const jwt2 = await w.client.fetchJwtSvid({ audience: ['aud-1'], spiffeId: 'spiffe://cluster.local/ns/backend/sa/default' });
  assert.equal(jwt1.marshal(), jwt2.marshal(), 'cached per (identity, audience)');
  const valid = await w.client.validateJwtSvid(jwt1.marshal(), 'aud-1');
  assert.equal(valid.id.toString(), 'spiffe://cluster.local/ns/backend/sa/default');

  // Removal: one entry goes → the stream carries only the other; both go → PermissionDenied.
  await deleteEntry(srv, second);
  await w.until(() => ids(w.seen.at(-1)).length === 1, 3000, 'the removal of one SVID');
  const errorsBefore = w.errors.length;
  await deleteEntry(srv, entryId);
  await w.until(() => w.errors.slice(errorsBefore).some((e) => /no identity issued/.test(e.message)), 3000, 'PermissionDenied after the last entry went');

  // Health and metrics over HTTP.
  const base = `http://127.0.0.1:${agent.healthPort}`;
  assert.equal((await fetch(`${base}/live`)).status, 200);
  const ready = await fetch(`${base}/ready`);
  assert.equal(ready.status, 200);
  assert.equal(((await ready.json()) as { synced: boolean }).synced, true);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /^tessera_agent_x509_svids 0$/m, 'both entries were deleted');
  assert.match(metrics, /^tessera_agent_server_connected 1$/m);

  // Restart without a token: same identity, from the data directory.
  await agent.close();
  agent = await startAgent(agentConfig('a1', srv), { logger: silent });
  after(() => agent.close());
  assert.equal(agent.spiffeId, `spiffe://cluster.local/tessera/agent/join_token/${tok}`);
  await agent.ready();
  assert.ok(agent.connected);
});

test('agent: rotation at ½ TTL ± 10 % with an injected clock, and the agent SVID renewed at half-life', async () => {
  let clock = Date.now();
  const now = () => new Date(clock);
  const srv = await startServer(serverConfig('s2'), { logger: silent, tickSeconds: 0, now });
  after(() => srv.close());
  writeBootstrap('a2', srv);
  const agent = await startAgent(agentConfig('a2', srv, { joinToken: await token(srv) }), { logger: silent, now, timers: false, random: () => 1 });
  after(() => agent.close());
  await createEntry(srv, 'spiffe://cluster.local/rot', agent.spiffeId, [['unix', `uid:${uid}`]], { x509SvidTtl: 3600 });
  const w = watch(agent.socketPath);
  after(() => w.close());
  await w.until(() => ids(w.seen.at(-1)).length === 1, 3000, 'the first SVID');
  const first = leafOf(w.seen.at(-1));
  // The lifetime counts from receipt (the clock stood still so far), not from the backdated notBefore.
  const start = Math.max(first.notBefore.getTime(), clock);
  const life = first.notAfter.getTime() - start;

  // random() = 1 → rotate at 60 % of the lifetime: nothing at 59 %.
  clock = start + life * 0.59;
  await agent.tick();
  assert.equal(leafOf(w.seen.at(-1)).serial.toString('hex'), first.serial.toString('hex'), 'no rotation before 60 %');
  clock = start + life * 0.6 + 1000;
  const agentSerial = new X509Certificate(agent.svid().certificates[0]!).serialNumber;
  await agent.tick();
  await w.until(() => leafOf(w.seen.at(-1)).serial.toString('hex') !== first.serial.toString('hex'), 3000, 'the rotated SVID');
  const rotated = w.seen.at(-1)!.svids[0]!;
  assert.equal(rotated.id.toString(), 'spiffe://cluster.local/rot');
  assert.notEqual(rotated.privateKey.export({ format: 'jwk' }).d, w.seen[0]!.svids[0]!.privateKey.export({ format: 'jwk' }).d, 'a new key for the new SVID');
  // The agent SVID (1 h) was past 60 % too: renewed, persisted, and it still syncs.
  assert.notEqual(new X509Certificate(agent.svid().certificates[0]!).serialNumber, agentSerial, 'agent SVID renewed');
  await createEntry(srv, 'spiffe://cluster.local/after-renewal', agent.spiffeId, [['unix', `uid:${uid}`]]);
  await agent.tick();
  await w.until(() => ids(w.seen.at(-1)).length === 2, 5000, 'an entry synced over the renewed agent SVID');
});

test('agent: server down → workloads keep their SVIDs; the agent reconnects and resyncs when it returns', async () => {
  let srv = await startServer(serverConfig('s3'), { logger: silent, tickSeconds: 0 });
  const port = srv.agentApi.port;
  writeBootstrap('a3', srv);
  const agent = await startAgent(agentConfig('a3', srv, { joinToken: await token(srv) }), { logger: silent, reconnect: { initialMs: 50, maxMs: 200 } });
  after(() => agent.close());
  await createEntry(srv, 'spiffe://cluster.local/survivor', agent.spiffeId, [['unix', `uid:${uid}`]]);
  await agent.ready();
  const w = watch(agent.socketPath);
  after(() => w.close());
  await w.until(() => ids(w.seen.at(-1)).length === 1, 3000, 'the SVID');
  await srv.close();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(agent.connected, false, 'the agent noticed');
  // A new caller still gets the cached SVID.
  const fetched = await new WorkloadApiClient({ address: `unix://${agent.socketPath}` }).fetchX509Context();
  assert.deepEqual(ids(fetched), ['spiffe://cluster.local/survivor']);
  // The server returns on the same port and data directory.
  srv = await startServer(serverConfig('s3', port), { logger: silent, tickSeconds: 0 });
  after(() => srv.close());
  await createEntry(srv, 'spiffe://cluster.local/after-outage', agent.spiffeId, [['unix', `uid:${uid}`]]);
  await w.until(() => ids(w.seen.at(-1)).length === 2, 5000, 'the entry created after the server came back');
  assert.ok(agent.connected);
});

test('agent: start-up errors are typed and clear (bad token, unreachable server, untrusted server, nothing to attest with)', async () => {
  const srv = await startServer(serverConfig('s4'), { logger: silent, tickSeconds: 0 });
  after(() => srv.close());
  writeBootstrap('bad-token', srv);
  await assert.rejects(startAgent(agentConfig('bad-token', srv, { joinToken: 'not-a-token' }), { logger: silent }), (e: unknown) => e instanceof AgentError && e.code === 'AGENT_ATTESTATION_FAILED' && /join token/i.test(e.message));
  writeBootstrap('unreachable', srv);
  await assert.rejects(startAgent(agentConfig('unreachable', '127.0.0.1:1', { joinToken: await token(srv) }), { logger: silent }), (e: unknown) => e instanceof AgentError && e.code === 'AGENT_SERVER_UNREACHABLE');
  // A bootstrap bundle of another CA: the server's SVID does not verify.
  writeFileSync(join(dir, 'untrusted-bootstrap.pem'), new X509Certificate(new TestCa({ trustDomain: 'cluster.local' }).certificate).toString());
  await assert.rejects(startAgent(agentConfig('untrusted', srv, { joinToken: await token(srv) }), { logger: silent }), (e: unknown) => e instanceof AgentError && e.code === 'AGENT_SERVER_UNTRUSTED');
  await assert.rejects(startAgent(agentConfig('none', srv), { logger: silent }), (e: unknown) => e instanceof AgentError && e.code === 'AGENT_NOT_ATTESTED');
  // A used token can't attest a second agent.
  const t = await token(srv);
  writeBootstrap('once-a', srv);
  writeBootstrap('once-b', srv);
  const a = await startAgent(agentConfig('once-a', srv, { joinToken: t }), { logger: silent });
  await a.close();
  await assert.rejects(startAgent(agentConfig('once-b', srv, { joinToken: t }), { logger: silent }), (e: unknown) => e instanceof AgentError && e.code === 'AGENT_ATTESTATION_FAILED');
});

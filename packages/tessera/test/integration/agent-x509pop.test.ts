// The agent daemon attesting its node with x509pop against an in-process
// server (real TLS on 127.0.0.1, SQLite): the agent ID derived from the node
// certificate, a node alias entry selected by the certificate's CN carrying a
// workload entry to a workload on the agent's Workload API socket, and the
// start-up errors of an untrusted node CA and a missing key file.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createClient } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { TrustDomain } from '@tessera/spiffe/id';
import { X509Bundle } from '@tessera/spiffe/bundle';
import { verifyX509Svid } from '@tessera/spiffe/svid';
import { WorkloadApiClient } from '@tessera/spiffe/workload-api';
import { TestCa, type TestX509Fixture } from '@tessera/spiffe/testing';
import { Certificate } from '@tessera/spiffe/x509';
import { EntryAdmin } from '../../src/gen/tessera/v1/admin_pb.js';
import { EntrySchema, SelectorSchema } from '../../src/gen/tessera/v1/types_pb.js';
import { unixSocketTransport } from '../../src/grpc/unix-client.js';
import { loadServerConfig } from '../../src/server/config.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { x509popAgentId } from '../../src/server/attestation/index.js';
import { loadAgentConfig, type AgentConfig } from '../../src/agent/config.js';
import { startAgent } from '../../src/agent/agent.js';
import { AgentError } from '../../src/agent/errors.js';

const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } };
const uid = process.getuid!();
const td = TrustDomain.parse('td');

const dir = mkdtempSync(join(tmpdir(), 'tessera-x509pop-'));
const pem = (der: Uint8Array): string => new X509Certificate(der).toString();
const nodeCa = new TestCa({ trustDomain: 'nodes.test' });
let srv: RunningServer;

before(async () => {
  const caFile = join(dir, 'x509pop-ca.pem');
  writeFileSync(caFile, pem(nodeCa.certificate));
  srv = await startServer(loadServerConfig({ flags: { trustDomain: 'td', dataDir: join(dir, 'server'), healthPort: 0, bindPort: 0, bindAddress: '127.0.0.1', x509popCaFile: caFile } }), { logger: silent, tickSeconds: 0 });
  writeFileSync(join(dir, 'bootstrap.pem'), srv.ca.bundle().x509Authorities().map(pem).join(''));
});
after(async () => {
  await srv?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Writes a node certificate chain and key as the files an operator would provision. */
function nodeFiles(name: string, node: TestX509Fixture): { cert: string; key: string } {
  const cert = join(dir, `${name}-node.pem`);
  const key = join(dir, `${name}-node-key.pem`);
  writeFileSync(cert, node.certificates.map(pem).join(''));
  writeFileSync(key, node.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return { cert, key };
}

function agentConfig(name: string, files: { cert: string; key: string }): AgentConfig {
  return loadAgentConfig({
    flags: {
      trustDomain: 'td',
      serverAddress: `127.0.0.1:${srv.agentApi.port}`,
      dataDir: join(dir, name),
      socketPath: join(dir, `${name}.sock`),
      adminSocketPath: join(dir, `${name}-admin.sock`),
      trustBundle: join(dir, 'bootstrap.pem'),
      x509popCertFile: files.cert,
      x509popKeyFile: files.key,
    },
  });
}

async function createEntry(spiffeId: string, parentId: string, selectors: [string, string][]): Promise<string> {
  const res = await createClient(EntryAdmin, unixSocketTransport(srv.socketPath)).batchCreateEntry({
    entries: [create(EntrySchema, { spiffeId, parentId, selectors: selectors.map(([type, value]) => create(SelectorSchema, { type, value })) })],
  });
  assert.equal(res.results[0]!.status!.code, 0, res.results[0]!.status!.message);
  return res.results[0]!.entry!.id;
}

test('x509pop: the agent attests with its node certificate; a node alias selected by the CN carries a workload entry to the Workload API', async () => {
  const node = nodeCa.createCertificate(undefined, { subjectCommonName: 'node-1' });
  // Node alias for CN node-1 (parented to the server) and a workload under it; the same for a CN this node does not have.
  await createEntry('spiffe://td/nodes/cn/node-1', 'spiffe://td/tessera/server', [['x509pop', 'subject:cn:node-1']]);
  await createEntry('spiffe://td/ns/web/sa/frontend', 'spiffe://td/nodes/cn/node-1', [['unix', `uid:${uid}`]]);
  await createEntry('spiffe://td/nodes/cn/node-2', 'spiffe://td/tessera/server', [['x509pop', 'subject:cn:node-2']]);
  await createEntry('spiffe://td/ns/web/sa/elsewhere', 'spiffe://td/nodes/cn/node-2', [['unix', `uid:${uid}`]]);

  const files = nodeFiles('n1', node);
  const agent = await startAgent(agentConfig('n1', files), { logger: silent });
  after(() => agent.close());
  const expectedId = x509popAgentId(td, node.certificates[0]!);
  assert.match(expectedId, /^spiffe:\/\/td\/tessera\/agent\/x509pop\/[0-9a-f]{40}$/);
  assert.equal(agent.spiffeId, expectedId);
  assert.deepEqual(new Certificate(agent.svid().certificates[0]!).subjectAltNames.uris, [expectedId]);
  await agent.ready();
  assert.ok(agent.connected);

  const ctx = await new WorkloadApiClient({ address: `unix://${agent.socketPath}` }).fetchX509Context();
  assert.deepEqual(
    ctx.svids.map((s) => s.id.toString()),
    ['spiffe://td/ns/web/sa/frontend'],
    'the workload under the matching alias, not the alias itself nor the workload under the other CN',
  );
  // The SVID verifies against the server CA's roots (what peers of the workload hold).
  const verified = verifyX509Svid(ctx.svids[0]!.certificates, new X509Bundle(td, srv.ca.bundle().x509Authorities()));
  assert.equal(verified.id.toString(), 'spiffe://td/ns/web/sa/frontend');
  await agent.close();

  // The node certificate is durable evidence: the same node attests again (fresh data directory) as the same agent.
  const again = await startAgent(agentConfig('n1-again', files), { logger: silent });
  after(() => again.close());
  assert.equal(again.spiffeId, expectedId);
  await again.close();
});

test('x509pop: a node certificate from a CA the server does not trust → AGENT_ATTESTATION_FAILED', async () => {
  const stranger = new TestCa({ trustDomain: 'nodes.test' }).createCertificate(undefined, { subjectCommonName: 'node-1' });
  await assert.rejects(
    startAgent(agentConfig('untrusted', nodeFiles('untrusted', stranger)), { logger: silent }),
    (e: unknown) => e instanceof AgentError && e.code === 'AGENT_ATTESTATION_FAILED' && /x509pop/.test(e.message),
  );
});

test('x509pop: a missing node key file → AGENT_BOOTSTRAP_INVALID naming the file; a key of another certificate → AGENT_ATTESTATION_FAILED', async () => {
  const node = nodeCa.createCertificate(undefined, { subjectCommonName: 'node-3' });
  const files = nodeFiles('nokey', node);
  const missing = join(dir, 'does-not-exist-key.pem');
  await assert.rejects(
    startAgent(agentConfig('nokey', { cert: files.cert, key: missing }), { logger: silent }),
    (e: unknown) => e instanceof AgentError && e.code === 'AGENT_BOOTSTRAP_INVALID' && e.message.includes(missing),
  );
  // A key that is not the certificate's: the proof of possession fails at the server.
  const other = nodeFiles('wrongkey-other', nodeCa.createCertificate(undefined, { subjectCommonName: 'node-4' }));
  await assert.rejects(
    startAgent(agentConfig('wrongkey', { cert: files.cert, key: other.key }), { logger: silent }),
    (e: unknown) => e instanceof AgentError && e.code === 'AGENT_ATTESTATION_FAILED' && /proof of possession/.test(e.message),
  );
});

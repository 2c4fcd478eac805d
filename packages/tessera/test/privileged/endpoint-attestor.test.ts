// The endpoint attestor against the real kernel: two network namespaces
// made here, processes started inside them, endpoints registered through the
// agent's admin socket with the real CLI commands, and attestation of those
// pids. Root only; every namespace, process, socket and directory made here
// is removed in `after`, whatever happened.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { EndpointRegistry, endpointAttestor, combineAttestors, type EndpointChange } from '../../src/agent/endpoints/index.js';
import { startAgentAdmin } from '../../src/agent/api/admin-socket.js';
import { unixAttestor } from '../../src/agent/workload-attestors/unix-attestor.js';
import { EndpointAdmin } from '../../src/gen/tessera/v1/agent_admin_pb.js';
import { unixSocketTransport } from '../../src/grpc/unix-client.js';
import type { UnixGrpcServer } from '../../src/grpc/unix-server.js';
import { runCommandTree, type CliIo, type CommandGroup } from '../../src/cli/command.js';
import { agentEndpointCommands } from '../../src/cli/commands/agent-endpoint.js';

const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'SKIPPED: needs root (creates network namespaces with `ip netns add`)';

const tag = `${process.pid}-${randomBytes(3).toString('hex')}`;
const NS_WEB = `tsr-ep-${tag}-w`;
const NS_DB = `tsr-ep-${tag}-d`;
const createdNamespaces: string[] = [];
const children: ChildProcess[] = [];
let dir = '';
let socketPath = '';
let registry: EndpointRegistry;
let admin: UnixGrpcServer | undefined;
const changes: EndpointChange[] = [];

const ROOT: CommandGroup = { name: 'tessera', summary: 'test root', commands: [{ name: 'agent', summary: 'agent', commands: [agentEndpointCommands] }] };

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, now: () => new Date() };
  const code = await runCommandTree(ROOT, ['agent', 'endpoint', ...args, '-socketPath', socketPath], io);
  return { code, out, err };
}

/** Starts `argv` and resolves once it printed "ready" (i.e. it is inside its namespace), with its pid. */
async function startReady(argv: string[]): Promise<number> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  let seen = '';
  child.stdout!.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${argv.join(' ')} exited with ${code} before it was ready`)));
    child.stdout!.on('data', (d: string) => {
      seen += d;
      if (seen.includes('ready')) resolve();
    });
  });
  assert.ok(child.pid !== undefined);
  return child.pid;
}

/** A process inside network namespace `ns`; `ip netns exec` execs into sh, which execs into sleep: one pid throughout. */
const startInNamespace = (ns: string) => startReady(['ip', 'netns', 'exec', ns, 'sh', '-c', 'echo ready; exec sleep 60']);

before(async () => {
  if (!isRoot) return;
  for (const ns of [NS_WEB, NS_DB]) {
    execFileSync('ip', ['netns', 'add', ns]);
    createdNamespaces.push(ns);
  }
  dir = mkdtempSync(join(tmpdir(), 'tessera-endpoint-priv-'));
  socketPath = join(dir, 'admin', 'admin.sock');
  registry = new EndpointRegistry({ dir: join(dir, 'endpoints') });
  registry.onChange((c) => changes.push(c));
  admin = await startAgentAdmin({ socketPath, registry });
});

after(async () => {
  // Only what this file started, by pid.
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await once(c, 'exit').catch(() => undefined);
    }
  }
  await admin?.close().catch(() => undefined);
  for (const ns of createdNamespaces) {
    try {
      execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

test('endpoint attestation in real network namespaces, registered over the admin socket with the CLI', { skip }, async () => {
  assert.equal(statSync(socketPath).mode & 0o777, 0o600, 'the admin socket is root only');
  const web = await cli('add', '-name', 'web-0', '-namespace', 'backend', '-serviceAccount', 'default', '-label', 'app=web', '-netns', NS_WEB, '-ip', '10.99.0.2', '-hostInterface', 'veth-web0');
  assert.equal(web.code, 0, web.err);
  assert.match(web.out, /Endpoint\s+: backend\/web-0/);
  const db = await cli('add', '-name', 'db', '-namespace', 'data', '-serviceAccount', 'postgres', '-netns', `/var/run/netns/${NS_DB}`, '-output', 'json');
  assert.equal(db.code, 0, db.err);
  const dbJson = JSON.parse(db.out) as { netns_ino: string; service_account: string };
  assert.equal(dbJson.service_account, 'postgres');
  assert.equal(BigInt(dbJson.netns_ino), statSync(`/var/run/netns/${NS_DB}`, { bigint: true }).ino);

  const listed = await cli('list', '-output', 'json');
  assert.equal(listed.code, 0, listed.err);
  assert.deepEqual((JSON.parse(listed.out) as { endpoints: { namespace: string; name: string }[] }).endpoints.map((e) => `${e.namespace}/${e.name}`), ['backend/web-0', 'data/db'], 'sorted by namespace, then name');

  const inWeb = await startInNamespace(NS_WEB);
  const inDb = await startInNamespace(NS_DB);
  const onHost = await startReady(['sh', '-c', 'echo ready; exec sleep 60']);
  const attestor = endpointAttestor({ registry, nodeName: 'node-1' });
  const values = async (pid: number) => (await attestor.attest(pid)).map((s) => `${s.type}:${s.value}`);

  assert.deepEqual(await values(inWeb), ['k8s:ns:backend', 'k8s:sa:default', 'k8s:pod-name:web-0', 'k8s:pod-label:app:web', 'k8s:node-name:node-1']);
  assert.deepEqual(await values(inDb), ['k8s:ns:data', 'k8s:sa:postgres', 'k8s:pod-name:db', 'k8s:node-name:node-1']);
  assert.deepEqual(await values(onHost), [], 'a host process has no endpoint');
  assert.deepEqual(await values(process.pid), []);

  // Combined with the unix attestor: both views, for the same pid.
  const both = await combineAttestors([unixAttestor({ discoverWorkloadPath: false }), attestor]).attest(inWeb);
  assert.ok(both.some((s) => s.type === 'unix' && s.value === 'uid:0'));
  assert.ok(both.some((s) => s.type === 'k8s' && s.value === 'ns:backend'));

  // An agent restart: a new registry over the same directory attests the same way.
  const restarted = endpointAttestor({ registry: new EndpointRegistry({ dir: join(dir, 'endpoints') }), nodeName: 'node-1' });
  assert.deepEqual((await restarted.attest(inDb)).map((s) => s.value)[0], 'ns:data');

  // Removal: the process keeps running but loses the endpoint's selectors.
  const removed = await cli('remove', '-name', 'web-0', '-namespace', 'backend');
  assert.equal(removed.code, 0, removed.err);
  assert.match(removed.out, /Removed endpoint backend\/web-0/);
  assert.deepEqual(await values(inWeb), []);
  assert.deepEqual(await values(inDb), ['k8s:ns:data', 'k8s:sa:postgres', 'k8s:pod-name:db', 'k8s:node-name:node-1']);
  assert.deepEqual(changes.map((c) => `${c.kind} ${c.endpoint.name}`), ['added web-0', 'added db', 'removed web-0']);

  // A process that exited: an attestation error, never someone else's selectors.
  const dead = children.at(-1)!;
  dead.kill('SIGKILL');
  await once(dead, 'exit');
  await assert.rejects(attestor.attest(onHost), (e: unknown) => (e as { code?: string }).code === 'WORKLOAD_PROCESS_GONE');
});

test('admin socket: bad requests get their gRPC status and a reason; the server keeps serving', { skip }, async () => {
  const client = createClient(EndpointAdmin, unixSocketTransport(socketPath, { timeoutMs: 10_000 }));
  const status = async (p: Promise<unknown>, code: Code, re: RegExp) => {
    await assert.rejects(p, (e: unknown) => e instanceof ConnectError && e.code === code && re.test(e.rawMessage));
  };
  const ep = { name: 'web-1', namespace: 'backend', netnsPath: `/var/run/netns/${NS_WEB}` };
  await status(client.addEndpoint({}), Code.InvalidArgument, /endpoint is required/);
  await status(client.addEndpoint({ endpoint: { ...ep, namespace: 'Back_End' } }), Code.InvalidArgument, /invalid namespace: "Back_End"/);
  await status(client.addEndpoint({ endpoint: { ...ep, labels: { 'a b': 'c' } } }), Code.InvalidArgument, /invalid labels\["a b"\]/);
  await status(client.addEndpoint({ endpoint: { ...ep, netnsPath: 'relative/ns' } }), Code.InvalidArgument, /absolute path/);
  await status(client.addEndpoint({ endpoint: { ...ep, ip: '300.1.1.1' } }), Code.InvalidArgument, /invalid ip/);
  await status(client.addEndpoint({ endpoint: { ...ep, netnsPath: `/var/run/netns/${NS_WEB}-missing` } }), Code.FailedPrecondition, /cannot read network namespace/);
  await status(client.addEndpoint({ endpoint: { ...ep, netnsPath: '/etc/hostname' } }), Code.FailedPrecondition, /not a namespace file/);
  await status(client.addEndpoint({ endpoint: { ...ep, netnsPath: '/proc/self/ns/net' } }), Code.FailedPrecondition, /agent's own network namespace/);
  await status(client.addEndpoint({ endpoint: { ...ep, name: 'db', namespace: 'data' } }), Code.AlreadyExists, /data\/db is already registered/);
  await status(client.addEndpoint({ endpoint: { ...ep, netnsPath: `/var/run/netns/${NS_DB}` } }), Code.AlreadyExists, /already registered as endpoint data\/db/);
  await status(client.removeEndpoint({ namespace: 'backend', name: 'nope' }), Code.NotFound, /no endpoint backend\/nope/);
  await status(client.removeEndpoint({ namespace: '', name: '' }), Code.InvalidArgument, /required/);

  // The CLI says the same in one line, with exit code 1.
  const refused = await cli('add', '-name', 'db', '-namespace', 'data', '-netns', NS_DB);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /^cannot add endpoint data\/db: endpoint data\/db is already registered.*\(AlreadyExists\)\n$/);

  // Still serving, and nothing refused was registered.
  const listed = await client.listEndpoints({});
  assert.deepEqual(listed.endpoints.map((e) => `${e.namespace}/${e.name}`), ['data/db']);
  const added = await client.addEndpoint({ endpoint: ep });
  assert.equal(added.endpoint?.serviceAccount, 'default');
  assert.equal((await client.listEndpoints({ namespace: 'backend' })).endpoints.length, 1);
});

test('CLI: a missing agent socket is one clear line, exit 1', { skip }, async () => {
  let err = '';
  const io: CliIo = { stdout: { write: () => true }, stderr: { write: (s: string) => (err += s) }, now: () => new Date() };
  const code = await runCommandTree(ROOT, ['agent', 'endpoint', 'list', '-socketPath', join(dir, 'nothing.sock')], io);
  assert.equal(code, 1);
  assert.match(err, /^cannot connect to the agent at .*nothing\.sock: no socket at this path/);
});

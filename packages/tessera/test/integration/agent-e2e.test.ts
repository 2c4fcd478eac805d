// End to end with real processes only: `tessera server run`, `tessera agent
// run`, workloads running as other users (runuser) calling the agent through
// `tessera agent api fetch`, the seed's echo services rotating under traffic,
// the server killed and restarted, the agent restarted, and abuse of the
// Workload API socket. Multi-user parts need root (CI is root); without it
// they are skipped and say so.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { TestCa } from '@tessera/spiffe/testing';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { unixSocketTransport } from '../../src/grpc/unix-client.js';
import { once } from 'node:events';
import { WorkloadApiClient, workloadApiWire } from '@tessera/spiffe/workload-api';
import { REPO_ROOT, freePort, startProcess, startServerProcess, stopAll, tessera, type Proc } from '../helpers/processes.js';

const ROOT = process.getuid?.() === 0;
const NOT_ROOT = 'SKIPPED: not running as root — workloads as other users (runuser) need root';
const dir = mkdtempSync(join(tmpdir(), 'tessera-e2e-'));
chmodSync(dir, 0o755); // other users reach the agent socket below it
after(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

const serverData = join(dir, 'server');
const agentSock = join(dir, 'agent', 'public', 'api.sock');
let server: { proc: Proc; port: number; socket: string };
let agent: Proc;
let agentId = '';

const srv = (...args: string[]) => tessera(['server', ...args, '-socketPath', server.socket]);
const fetchAs = (user: string | undefined, ...extra: string[]) => tessera(['agent', 'api', 'fetch', 'x509', '-socketPath', agentSock, ...extra], user ? { user } : {});

function startAgentProcess(extra: readonly string[]): Proc {
  return startProcess(process.execPath, [
    join(REPO_ROOT, 'packages/tessera/bin/tessera.js'), 'agent', 'run',
    '-trustDomain', 'cluster.local',
    '-serverAddress', `127.0.0.1:${server.port}`,
    '-dataDir', join(dir, 'agent-data'),
    '-socketPath', agentSock,
    '-adminSocketPath', join(dir, 'agent', 'admin.sock'),
    '-logLevel', 'warn',
    ...extra,
  ]);
}

async function entry(spiffeId: string, selector: string, ...extra: string[]): Promise<string> {
  const r = await srv('entry', 'create', '-spiffeID', spiffeId, '-parentID', agentId, '-selector', selector, ...extra);
  assert.equal(r.code, 0, r.stderr);
  return /Entry ID\s*:\s*(\S+)/.exec(r.stdout)![1]!;
}

async function eventually<T>(f: () => Promise<T>, ok: (v: T) => boolean, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  let last: T = await f();
  while (!ok(last)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
    last = await f();
  }
  return last;
}

before(async () => {
  server = await startServerProcess(serverData);
  const token = /Token: (\S+)/.exec((await srv('token', 'generate')).stdout)![1]!;
  const bundle = await srv('bundle', 'show');
  assert.equal(bundle.code, 0, bundle.stderr);
  writeFileSync(join(dir, 'bootstrap.pem'), bundle.stdout);
  agent = startAgentProcess(['-trustBundle', join(dir, 'bootstrap.pem'), '-joinToken', token]);
  agentId = (await agent.waitFor(/tessera agent: (spiffe:\/\/\S+),/))[1]!;
});

test('e2e: workloads as different users get the SVID of their uid entry; a user without one gets PermissionDenied', { skip: ROOT ? false : NOT_ROOT }, async () => {
  await entry('spiffe://cluster.local/user/nobody', 'unix:uid:65534');
  await entry('spiffe://cluster.local/user/daemon', 'unix:user:daemon');
  const nobody = await eventually(() => fetchAs('nobody'), (r) => r.code === 0, 5000, 'nobody to get an SVID');
  assert.match(nobody.stdout, /SPIFFE ID:\s+spiffe:\/\/cluster\.local\/user\/nobody\n/);
  assert.doesNotMatch(nobody.stdout, /user\/daemon/);
  const daemon = await fetchAs('daemon');
  assert.equal(daemon.code, 0, daemon.stderr);
  assert.match(daemon.stdout, /SPIFFE ID:\s+spiffe:\/\/cluster\.local\/user\/daemon\n/);
  const bin = await fetchAs('bin', '-timeout', '1s');
  assert.notEqual(bin.code, 0);
  assert.match(bin.stderr + bin.stdout, /no identity issued/);
});

test('e2e: interop — files from `fetch x509 -write` verify with openssl; openssl s_server and curl do mTLS with them', { skip: ROOT ? false : NOT_ROOT }, async () => {
  // bin (uid 2) serves as "localhost" (a DNS SAN, so curl's hostname check passes); daemon is the client.
  await entry('spiffe://cluster.local/interop/server', 'unix:uid:2', '-dns', 'localhost');
  const files = (user: string, uid: number): string => {
    const d = join(dir, `svids-${user}`);
    mkdirSync(d);
    chownSync(d, uid, uid);
    return d;
  };
  const srvDir = files('bin', 2);
  const cliDir = files('daemon', 1);
  await eventually(() => fetchAs('bin', '-write', srvDir), (x) => x.code === 0, 5000, 'fetch -write as bin');
  const c = await fetchAs('daemon', '-write', cliDir);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(statSync(join(srvDir, 'svid.0.key')).mode & 0o777, 0o600);
  assert.equal(statSync(join(srvDir, 'svid.0.key')).uid, 2, 'written by the workload itself');

  const verify = startProcess('openssl', ['verify', '-CAfile', join(srvDir, 'bundle.0.pem'), join(srvDir, 'svid.0.pem')]);
  assert.equal(await verify.exited(), 0, verify.output());

  const port = await freePort();
  const sServer = startProcess('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', join(srvDir, 'svid.0.pem'), '-key', join(srvDir, 'svid.0.key'), '-CAfile', join(srvDir, 'bundle.0.pem'), '-Verify', '1', '-verify_return_error', '-www']);
  await sServer.waitFor(/ACCEPT/);
  const curl = (cacert: string) => startProcess('curl', ['-sS', '--max-time', '10', '--resolve', `localhost:${port}:127.0.0.1`, '--cacert', cacert, '--cert', join(cliDir, 'svid.0.pem'), '--key', join(cliDir, 'svid.0.key'), `https://localhost:${port}/`]);
  const ok = curl(join(cliDir, 'bundle.0.pem'));
  assert.equal(await ok.exited(), 0, ok.output());
  assert.match(ok.output(), /Client certificate/, 's_server saw the client SVID');
  // Against another CA, curl refuses the server.
  const otherCa = join(dir, 'other-ca.pem');
  writeFileSync(otherCa, new X509Certificate(new TestCa({ trustDomain: 'cluster.local' }).certificate).toString());
  const bad = curl(otherCa);
  assert.notEqual(await bad.exited(), 0, 'curl rejects a server outside its CA file');
  await sServer.stop();
});

test('e2e: the seed\'s echo-server and echo-client (as two users) talk mTLS through SVID rotations with zero failed requests', { skip: ROOT ? false : NOT_ROOT }, async () => {
  const serverBin = join(REPO_ROOT, 'examples/dist/echo-server/main.js');
  const clientBin = join(REPO_ROOT, 'examples/dist/echo-client/main.js');
  assert.ok(existsSync(serverBin) && existsSync(clientBin), 'examples are built (scripts/setup.sh)');
  // 4 s SVIDs: a rotation about every 2 s on each side.
  // games (uid 5) and man (uid 6) have no other entries: each holds exactly its echo identity.
  await entry('spiffe://cluster.local/ns/echo/sa/echo-server', 'unix:uid:5', '-x509SVIDTTL', '4');
  await entry('spiffe://cluster.local/ns/echo/sa/echo-client', 'unix:uid:6', '-x509SVIDTTL', '4');
  const env = { ...process.env, SPIFFE_ENDPOINT_SOCKET: `unix://${agentSock}` };
  const echoServer = startProcess('runuser', ['-u', 'games', '--', 'env', `SPIFFE_ENDPOINT_SOCKET=unix://${agentSock}`, 'LISTEN_ADDRESS=127.0.0.1:0', process.execPath, serverBin], { env });
  const port = (await echoServer.waitFor(/^(\d+)$/m, 15_000))[1]!;
  const client = startProcess('runuser', ['-u', 'man', '--', 'env', `SPIFFE_ENDPOINT_SOCKET=unix://${agentSock}`, `SERVER_ADDRESS=127.0.0.1:${port}`, 'EXPECTED_SERVER_ID=spiffe://cluster.local/ns/echo/sa/echo-server', 'INTERVAL_MS=30', 'REQUESTS=120', process.execPath, clientBin], { env });
  const code = await client.exited();
  const out = client.output();
  assert.equal(code, 0, `echo-client failed:\n${out.split('\n').filter((l) => /Error|failed/.test(l)).slice(0, 10).join('\n')}`);
  assert.match(out, /120 requests, 0 failed/);
  assert.match(out, /Hello, spiffe:\/\/cluster\.local\/ns\/echo\/sa\/echo-client/);
  // Rotation happened under traffic on both sides: several distinct certificates seen.
  const clientCerts = new Set([...echoServer.output().matchAll(/certificate ([0-9A-F]+)\)/g)].map((m) => m[1]));
  const serverCerts = new Set([...out.matchAll(/server certificate ([0-9A-F]+)\)/g)].map((m) => m[1]));
  assert.ok(clientCerts.size >= 2, `the server saw ${clientCerts.size} client certificates`);
  assert.ok(serverCerts.size >= 2, `the client saw ${serverCerts.size} server certificates`);
  await echoServer.stop();
});

test('e2e: bad input on the Workload API socket (garbage, half-open, 1,000 idle connections, no header) does not crash the agent or affect others', async () => {
  const me = process.getuid!();
  await entry(`spiffe://cluster.local/user/${me}`, `unix:uid:${me}`);
  // 1,000 idle connections, opened in waves of 100 (the listen backlog is finite).
  const conns: Socket[] = [];
  for (let wave = 0; wave < 10; wave++) {
    conns.push(
      ...(await Promise.all(
        Array.from({ length: 100 }, async () => {
          const s = connect(agentSock);
          await once(s, 'connect');
          return s;
        }),
      )),
    );
  }
  try {
    const garbage = connect(agentSock);
    await once(garbage, 'connect');
    garbage.write(Buffer.alloc(64 * 1024, 0xab));
    const half = connect(agentSock);
    await once(half, 'connect');
    half.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'); // preface, then nothing
    half.end();
    // A gRPC call without the security header: InvalidArgument.
    const raw = createClient(workloadApiWire.SpiffeWorkloadAPI, unixSocketTransport(agentSock));
    await assert.rejects(
      (async () => {
        for await (const m of raw.fetchX509SVID({})) void m;
      })(),
      (e: unknown) => ConnectError.from(e).code === Code.InvalidArgument && /security header/.test(ConnectError.from(e).rawMessage),
    );
    const client = new WorkloadApiClient({ address: `unix://${agentSock}` });
    const ctx = await eventually(() => client.fetchX509Context().then((c) => c.svids.map((s) => s.id.toString()), (e: Error) => [e.message]), (ids) => ids.includes(`spiffe://cluster.local/user/${me}`), 5000, 'a normal caller served during the abuse');
    assert.ok(ctx.length >= 1);
    garbage.destroy();
  } finally {
    for (const c of conns) c.destroy();
  }
  assert.equal(agent.child.exitCode, null, 'the agent is still running');
  const health = await tessera(['agent', 'healthcheck', '-socketPath', agentSock]);
  assert.equal(health.code, 0, health.stderr);
});

test('e2e: server killed → workloads keep their SVIDs; server back → agent resyncs; agent restarted → same identity without a token', async () => {
  const me = process.getuid!();
  await entry(`spiffe://cluster.local/outage/${me}`, `unix:uid:${me}`);
  await eventually(() => fetchAs(undefined), (r) => r.stdout.includes(`outage/${me}`), 5000, 'the outage entry');
  await server.proc.stop('SIGKILL');
  const during = await fetchAs(undefined);
  assert.equal(during.code, 0, during.stderr);
  assert.match(during.stdout, new RegExp(`outage/${me}`));

  // Same data directory and port: the agent's retries find it again.
  server = await startServerProcess(serverData, { port: server.port });
  await entry(`spiffe://cluster.local/after-outage/${me}`, `unix:uid:${me}`);
  await eventually(() => fetchAs(undefined), (r) => r.stdout.includes(`after-outage/${me}`), 15_000, 'an entry created after the server came back');

  await agent.stop('SIGTERM');
  agent = startAgentProcess([]);
  const again = (await agent.waitFor(/tessera agent: (spiffe:\/\/\S+),/))[1]!;
  assert.equal(again, agentId, 'the restarted agent kept its identity');
  await eventually(() => fetchAs(undefined), (r) => r.stdout.includes(`after-outage/${me}`), 10_000, 'SVIDs after the agent restart');
});

test('e2e: `tessera agent run` start-up failures are one line and exit 1 (bad token, unreachable server, untrusted server, bad config)', async () => {
  const run = (name: string, ...extra: string[]) =>
    tessera(['agent', 'run', '-trustDomain', 'cluster.local', '-dataDir', join(dir, name), '-socketPath', join(dir, `${name}.sock`), '-adminSocketPath', join(dir, `${name}-admin.sock`), ...extra]);
  const oneLine = (r: { stderr: string }) => r.stderr.split('\n').filter((l) => l.trim() !== '');
  const badToken = await run('bad-token', '-serverAddress', `127.0.0.1:${server.port}`, '-trustBundle', join(dir, 'bootstrap.pem'), '-joinToken', 'no-such-token');
  assert.equal(badToken.code, 1);
  assert.equal(oneLine(badToken).length, 1, badToken.stderr);
  assert.match(badToken.stderr, /refused/);
  assert.doesNotMatch(badToken.stderr, /\n\s+at /, 'no stack trace');
  const unreachable = await run('unreachable', '-serverAddress', '127.0.0.1:1', '-trustBundle', join(dir, 'bootstrap.pem'), '-joinToken', 'x');
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.stderr, /no server answered/);
  writeFileSync(join(dir, 'other-root.pem'), new X509Certificate(new TestCa({ trustDomain: 'cluster.local' }).certificate).toString());
  const untrusted = await run('untrusted', '-serverAddress', `127.0.0.1:${server.port}`, '-trustBundle', join(dir, 'other-root.pem'), '-joinToken', 'x');
  assert.equal(untrusted.code, 1);
  assert.match(untrusted.stderr, /not trusted/);
  const badConfig = await run('bad-config', '-serverAddress', 'no:pe');
  assert.equal(badConfig.code, 1);
  assert.match(badConfig.stderr, /invalid configuration: .*serverAddress: "no:pe" is not host:port/);
});

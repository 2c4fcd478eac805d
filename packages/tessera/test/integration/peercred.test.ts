// SO_PEERCRED and the unix workload attestor against real processes: a Unix
// socket server in this process, clients spawned as other users with runuser.
// Needs root (to switch users and to read other users' /proc/<pid>/exe);
// without it every test here SKIPs with a message.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, closeSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getPeerCred, socketFd, available, addonPath } from '@tessera/peercred';
import { WorkloadAttestationError, peerCredentials, unixAttestor } from '../../src/agent/workload-attestors/index.js';

const isRoot = process.getuid?.() === 0;
const NOT_ROOT = 'not running as root: cannot spawn clients as other users (runuser) — SO_PEERCRED multi-user tests SKIPPED';
if (!isRoot) console.warn(`[peercred.test] WARNING: ${NOT_ROOT}`);

const dir = mkdtempSync(join(tmpdir(), 'tessera-peercred-'));
chmodSync(dir, 0o755); // let `nobody` reach the socket
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A Unix-socket server whose connections are handed to the test, with the path world-connectable. */
async function listen(): Promise<{ path: string; server: Server; next: () => Promise<Socket> }> {
  const path = join(dir, `s${++n}.sock`);
  const queue: Socket[] = [];
  const waiters: ((s: Socket) => void)[] = [];
  const server = createServer((s) => {
    const w = waiters.shift();
    if (w) w(s);
    else queue.push(s);
  });
  server.listen(path);
  await once(server, 'listening');
  chmodSync(path, 0o777);
  after(() => server.close());
  return {
    path,
    server,
    next: () => {
      const s = queue.shift();
      return s ? Promise.resolve(s) : new Promise((resolve) => waiters.push(resolve));
    },
  };
}

/**
 * A client process that connects, writes its own pid/uid/gid as JSON and
 * stays connected until the server ends the connection.
 */
function spawnClient(path: string, user?: string): ChildProcess {
  const code = `const s=require('net').connect(${JSON.stringify(path)},()=>s.write(JSON.stringify({pid:process.pid,uid:process.getuid(),gid:process.getgid()})));s.on('end',()=>s.end());s.on('error',()=>process.exit(3));`;
  const argv = ['-e', code];
  const child = user ? spawn('runuser', ['-u', user, '--', process.execPath, ...argv], { stdio: 'inherit' }) : spawn(process.execPath, argv, { stdio: 'inherit' });
  after(() => child.kill('SIGKILL'));
  return child;
}

async function selfReport(s: Socket): Promise<{ pid: number; uid: number; gid: number }> {
  // Not `for await`: leaving that loop destroys the socket, and the client would exit.
  let text = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      text += String(chunk);
      try {
        const report = JSON.parse(text) as { pid: number; uid: number; gid: number };
        s.off('data', onData);
        resolve(report);
      } catch {
        // partial JSON: keep reading
      }
    };
    s.on('data', onData);
    s.once('end', () => reject(new Error(`client closed before reporting (got ${JSON.stringify(text)})`)));
  });
}

test('the addon is built and loaded', () => {
  assert.equal(available, true, 'native/peercred is not built: run `npm ci` at the repository root');
  assert.match(addonPath ?? '', /build\/Release\/peercred\.node$/);
});

test('getPeerCred: errors carry errno codes', () => {
  assert.throws(() => getPeerCred(987654), (e: NodeJS.ErrnoException) => e.code === 'EBADF' && e.errno === -9 && e.syscall === 'getsockopt(SO_PEERCRED)');
  const fd = openSync(join(dir, 'not-a-socket'), 'w');
  try {
    assert.throws(() => getPeerCred(fd), { code: 'ENOTSOCK', errno: -88 });
  } finally {
    closeSync(fd);
  }
  assert.throws(() => getPeerCred(-1), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => getPeerCred('3' as unknown as number), { code: 'ERR_INVALID_ARG_TYPE' });
});

test('getPeerCred: a client in this process is this process', async () => {
  const { path, next } = await listen();
  const c = connect(path);
  const s = await next();
  assert.deepEqual(getPeerCred(socketFd(s)), { pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() });
  assert.deepEqual(peerCredentials(s), { pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() });
  c.destroy();
  s.destroy();
  await once(s, 'close');
  assert.throws(() => peerCredentials(s), (e) => e instanceof WorkloadAttestationError && e.code === 'WORKLOAD_PEERCRED_FAILED');
});

for (const user of ['nobody', 'root', 'postgres']) {
  test(`getPeerCred: a client spawned as ${user}`, { skip: !isRoot && NOT_ROOT }, async (t) => {
    let expectedUid: number;
    try {
      expectedUid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
    } catch {
      t.skip(`no user ${user} on this system`);
      return;
    }
    const { path, next } = await listen();
    const child = spawnClient(path, user);
    const s = await next();
    const cred = getPeerCred(socketFd(s));
    const reported = await selfReport(s);
    assert.deepEqual(cred, reported);
    assert.equal(cred.uid, expectedUid);
    // runuser forks (PAM session): the peer is runuser's child, or runuser itself if it exec'd.
    const ppid = Number(readFileSync(`/proc/${cred.pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
    assert.ok(cred.pid === child.pid || ppid === child.pid, `peer pid ${cred.pid} (parent ${ppid}) is not runuser ${child.pid} or its child`);
    s.end();
    await once(child, 'exit');
  });
}

test('unix attestor: selectors of a client running as nobody', { skip: !isRoot && NOT_ROOT }, async () => {
  const { path, next } = await listen();
  const child = spawnClient(path, 'nobody');
  const s = await next();
  const cred = peerCredentials(s);
  const reported = await selfReport(s);
  assert.equal(cred.pid, reported.pid);

  const selectors = await unixAttestor().attest(cred.pid);
  const values = selectors.map((x) => {
    assert.equal(x.type, 'unix');
    return x.value;
  });
  const exe = realpathSync(process.execPath);
  const sha = createHash('sha256').update(readFileSync(exe)).digest('hex');
  const groups = execFileSync('runuser', ['-u', 'nobody', '--', 'id', '-G'], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
  const nobodyGid = Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).trim());
  const expected = [
    'uid:65534',
    'user:nobody',
    `gid:${nobodyGid}`,
    ...(nobodyGid === 65534 ? ['group:nogroup'] : []),
    ...groups.map((g) => `supplementary_gid:${g}`),
    `path:${exe}`,
    `sha256:${sha}`,
  ];
  for (const v of expected) assert.ok(values.includes(v), `missing unix:${v} in ${JSON.stringify(values)}`);
  const supplementary = values.filter((v) => v.startsWith('supplementary_gid:')).map((v) => Number(v.split(':')[1]));
  assert.deepEqual(supplementary.sort(), groups.sort());
  assert.ok(!values.some((v) => v.startsWith('user:') && v !== 'user:nobody'));
  s.end();
  await once(child, 'exit');
});

test('unix attestor: a caller that exited before attestation → WORKLOAD_PROCESS_GONE', async () => {
  const { path, next } = await listen();
  // Connect, then exit at once; the server only attests after the process is reaped.
  const child = spawn(process.execPath, ['-e', `require('net').connect(${JSON.stringify(path)},()=>process.exit(0))`], { stdio: 'inherit' });
  const s = await next();
  const cred = peerCredentials(s);
  assert.equal(cred.pid, child.pid);
  if (child.exitCode === null) await once(child, 'exit');
  await assert.rejects(unixAttestor().attest(cred.pid), (e) => e instanceof WorkloadAttestationError && e.code === 'WORKLOAD_PROCESS_GONE' && /no longer exists/.test(e.message));
  s.destroy();
});

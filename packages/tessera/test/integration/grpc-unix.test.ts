import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { ServerHealth, EntryAdmin } from '../../src/gen/tessera/v1/admin_pb.js';
import { serveGrpcOnUnixSocket } from '../../src/grpc/unix-server.js';
import { unixSocketTransport } from '../../src/grpc/unix-client.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-grpc-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('gRPC over a Unix socket: a call, bad bytes, and an oversize request', async () => {
  const path = join(dir, 'a.sock');
  let calls = 0;
  const srv = await serveGrpcOnUnixSocket(path, (r) => {
    r.service(ServerHealth, { check: () => ({ ready: true, datastore: 'ok', ca: `calls ${++calls}` }) });
    r.service(EntryAdmin, { getEntry: (req) => ({ id: req.id }) });
  });
  after(() => srv.close());
  assert.equal(statSync(path).mode & 0o777, 0o770);
  const client = createClient(ServerHealth, unixSocketTransport(path));
  assert.deepEqual({ ...(await client.check({})) }, { $typeName: 'tessera.v1.HealthResponse', ready: true, datastore: 'ok', ca: 'calls 1' });

  // Garbage on the socket: the server survives and keeps answering others.
  const raw = connect(path);
  await once(raw, 'connect');
  raw.write(Buffer.from('GET / HTTP/1.1\r\n\r\n\x00\xff garbage'));
  raw.on('error', () => undefined);
  raw.resume();
  await once(raw, 'close');
  assert.equal((await client.check({})).ca, 'calls 2');

  // An oversize request is refused with RESOURCE_EXHAUSTED, not a crash.
  const entries = createClient(EntryAdmin, unixSocketTransport(path));
  const err = await entries.getEntry({ id: 'x'.repeat(5 * 1024 * 1024) }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof ConnectError, String(err));
  assert.equal(err.code, Code.ResourceExhausted);
  assert.equal((await client.check({})).ca, 'calls 3');
});

test('close() finishes while idle clients (no HTTP/2 yet) are connected', async () => {
  const path = join(dir, 'idle.sock');
  const srv = await serveGrpcOnUnixSocket(path, (r) => r.service(ServerHealth, { check: () => ({ ready: true }) }));
  const idle = await Promise.all(
    Array.from({ length: 20 }, async () => {
      const s = connect(path);
      s.on('error', () => undefined);
      await once(s, 'connect');
      return s;
    }),
  );
  await srv.close();
  assert.ok(!existsSync(path));
  for (const s of idle) s.destroy();
});

test('a stale socket file is replaced; a live one is refused; a regular file is refused', async () => {
  // A crashed server leaves its socket file behind: bind one and detach it without unlinking.
  const stale = join(dir, 'stale.sock');
  const { execFileSync } = await import('node:child_process');
  assert.throws(
    () => execFileSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`], { stdio: 'ignore' }),
    (e: unknown) => (e as { signal?: string }).signal === 'SIGKILL',
  );
  assert.ok(existsSync(stale), 'the killed process left its socket file');
  const srv = await serveGrpcOnUnixSocket(stale, (r) => r.service(ServerHealth, { check: () => ({ ready: true }) }));
  assert.equal((await createClient(ServerHealth, unixSocketTransport(stale)).check({})).ready, true);
  await srv.close();
  assert.ok(!existsSync(stale), 'close() removes the socket file');

  const live = createServer().listen(join(dir, 'live.sock'));
  await once(live, 'listening');
  after(() => live.close());
  await assert.rejects(serveGrpcOnUnixSocket(join(dir, 'live.sock'), () => undefined), /already serving/);
  writeFileSync(join(dir, 'file.sock'), 'x');
  await assert.rejects(serveGrpcOnUnixSocket(join(dir, 'file.sock'), () => undefined), /is not a socket/);
});

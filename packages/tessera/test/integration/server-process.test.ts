import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createClient } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import Database from 'better-sqlite3';
import { EntryAdmin } from '../../src/gen/tessera/v1/admin_pb.js';
import { EntrySchema, SelectorSchema } from '../../src/gen/tessera/v1/types_pb.js';
import { unixSocketTransport } from '../../src/grpc/unix-client.js';
import { startServerProcess, stopAll, TESSERA_BIN } from '../helpers/processes.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-proc-'));
const children: ChildProcess[] = [];
after(async () => {
  await stopAll();
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('the real `tessera server run` process: kill -9 during writes loses no acknowledged entry; SIGTERM stops cleanly', async () => {
  const dataDir = join(dir, 'data');
  const socket = join(dataDir, 'server.sock');
  const first = (await startServerProcess(dataDir)).proc.child;

  const entries = createClient(EntryAdmin, unixSocketTransport(socket, { timeoutMs: 5000 }));
  const acked: string[] = [];
  let killed = false;
  const writer = async (w: number): Promise<void> => {
    for (let i = 0; !killed; i++) {
      const r = await entries
        .batchCreateEntry({
          entries: [create(EntrySchema, { spiffeId: `spiffe://cluster.local/w${w}/e${i}`, parentId: 'spiffe://cluster.local/tessera/agent/join_token/t', selectors: [create(SelectorSchema, { type: 'unix', value: `uid:${i}` })] })],
        })
        .catch(() => undefined);
      if (!r) return;
      if (r.results[0]?.status?.code === 0) acked.push(r.results[0].entry!.id);
      if (acked.length >= 120 && !killed) {
        killed = true;
        first.kill('SIGKILL');
      }
    }
  };
  await Promise.all([writer(1), writer(2), writer(3), writer(4)]);
  await once(first, 'exit').catch(() => undefined);
  assert.ok(acked.length >= 120);

  const db = new Database(join(dataDir, 'datastore.sqlite3'), { readonly: true });
  assert.equal((db.pragma('integrity_check', { simple: true }) as string), 'ok');
  db.close();

  const second = (await startServerProcess(dataDir)).proc.child;
  const ids = new Set<string>();
  let token = '';
  do {
    const page = await entries.listEntries({ pageSize: 500, pageToken: token });
    for (const e of page.entries) ids.add(e.id);
    token = page.nextPageToken;
  } while (token);
  const lost = acked.filter((id) => !ids.has(id));
  assert.deepEqual(lost, [], `${lost.length} acknowledged entries lost of ${acked.length}`);

  second.kill('SIGTERM');
  const [code] = (await once(second, 'exit')) as [number | null];
  assert.equal(code, 0, 'SIGTERM → clean exit 0');
  assert.ok(!existsSync(socket), 'the socket is removed on shutdown');
});

test('`tessera server run` with a bad config exits 1 with one line, no stack trace', async () => {
  const child = spawn(process.execPath, [TESSERA_BIN, 'server', 'run', '-trustDomain', 'Bad.Domain'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  assert.equal(code, 1);
  assert.match(err, /invalid configuration: flags: trustDomain: trust domain characters are limited/);
  assert.ok(!/\n\s+at /.test(err), 'no stack trace');
});

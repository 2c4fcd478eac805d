import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const demo = join(dirname(fileURLToPath(import.meta.url)), '../../src/demo/main.js');

test('the quick-start demo (scripts/demo.sh) runs end to end and reports success', async () => {
  const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) =>
    execFile(process.execPath, [demo], { timeout: 60_000 }, (err, so) => resolve({ code: err ? 1 : 0, stdout: so })),
  );
  assert.equal(code, 0, stdout);
  assert.match(stdout, /Entry ID {9}: [0-9a-f-]{36}/);
  assert.match(stdout, /client: server answered "Hello, spiffe:\/\/cluster.local\/ns\/frontend\/sa\/default"/);
  assert.match(stdout, /server: rejected during the handshake: client spiffe:\/\/cluster.local\/ns\/frontend\/sa\/impostor is not authorized/);
  assert.match(stdout, /demo finished: everything behaved as expected/);
});

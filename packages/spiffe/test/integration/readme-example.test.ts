import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { TestCa } from '../../src/testing/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../../../../..');

test('the README\'s mTLS echo example runs as written and prints the client\'s SPIFFE ID', async () => {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  const m = /<!-- readme-example:start -->\s*```ts\n([\s\S]*?)```\s*<!-- readme-example:end -->/.exec(readme);
  assert.ok(m, 'README example block not found');
  const code = m[1]!;
  // The snippet is plain JavaScript apart from its fence; the port is made free for the test.
  const ca = new TestCa({ trustDomain: 'example.org' });
  const dir = mkdtempSync(join(tmpdir(), 'tessera-readme-'));
  // The script lives beside the package so that '@tessera/spiffe' resolves through the workspace.
  const script = join(repo, 'packages/spiffe/dist', `readme-example-${process.pid}.mjs`);
  try {
    for (const [name, id] of [['server', 'spiffe://example.org/server'], ['client', 'spiffe://example.org/client']] as const) {
      const m2 = ca.createX509Svid(id).marshal();
      writeFileSync(join(dir, `${name}.pem`), m2.certificates);
      writeFileSync(join(dir, `${name}.key`), m2.privateKey);
    }
    writeFileSync(join(dir, 'bundle.pem'), ca.x509Bundle().marshal());
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    writeFileSync(script, code.replaceAll('8443', String(port)));
    const { stdout, stderr, code: exit } = await new Promise<{ stdout: string; stderr: string; code: number }>((res) => {
      execFile(process.execPath, [script], { cwd: dir, timeout: 20_000 }, (err, so, se) => res({ stdout: so, stderr: se, code: err ? 1 : 0 }));
    });
    assert.equal(exit, 0, stderr);
    assert.equal(stdout.trim(), 'Hello, spiffe://example.org/client');
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(script, { force: true });
  }
});

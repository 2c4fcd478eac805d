// Workloads in network namespaces get identities by what their namespace is
// registered as (the endpoint attestor), with the seed's selectors
// (k8s:ns:backend, k8s:sa:default) and no Kubernetes: real server and agent
// processes, a real network namespace, the CLI as the workload. Root only.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startProcess, startServerProcess, stopAll, tessera, TESSERA_BIN } from '../helpers/processes.js';

const ROOT = process.getuid?.() === 0;
const NOT_ROOT = 'SKIPPED: needs root (creates network namespaces and runs the agent admin socket) — run the suite as root, as CI does';

test('endpoint attestation end to end: a process in a registered network namespace gets the SVID of the k8s:ns/k8s:sa entry; others and removed endpoints get PermissionDenied', { skip: ROOT ? false : NOT_ROOT }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-ep-e2e-'));
  const ns = `tsr-e2e-${process.pid}-${randomBytes(3).toString('hex')}`;
  after(async () => {
    await stopAll();
    try {
      execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
    } catch {
      // not created
    }
    rmSync(dir, { recursive: true, force: true });
  });
  execFileSync('ip', ['netns', 'add', ns]);

  const server = await startServerProcess(join(dir, 'server'));
  const srv = (...args: string[]) => tessera(['server', ...args, '-socketPath', server.socket]);
  const token = /Token: (\S+)/.exec((await srv('token', 'generate')).stdout)![1]!;
  writeFileSync(join(dir, 'bootstrap.pem'), (await srv('bundle', 'show')).stdout);
  const sock = join(dir, 'agent.sock');
  const admin = join(dir, 'admin.sock');
  const agent = startProcess(process.execPath, [TESSERA_BIN, 'agent', 'run', '-trustDomain', 'cluster.local', '-serverAddress', `127.0.0.1:${server.port}`, '-dataDir', join(dir, 'agent'), '-socketPath', sock, '-adminSocketPath', admin, '-trustBundle', join(dir, 'bootstrap.pem'), '-joinToken', token, '-nodeName', 'node-a', '-logLevel', 'warn']);
  const agentId = (await agent.waitFor(/tessera agent: (spiffe:\/\/\S+),/))[1]!;

  // The seed's entry, verbatim apart from the binary name and the parent.
  const created = await srv('entry', 'create', '-spiffeID', 'spiffe://cluster.local/ns/backend/sa/default', '-parentID', agentId, '-selector', 'k8s:ns:backend', '-selector', 'k8s:sa:default');
  assert.equal(created.code, 0, created.stderr);
  const add = await tessera(['agent', 'endpoint', 'add', '-name', 'web-0', '-namespace', 'backend', '-serviceAccount', 'default', '-label', 'app=web', '-netns', ns, '-socketPath', admin]);
  assert.equal(add.code, 0, add.stderr);
  const list = await tessera(['agent', 'endpoint', 'list', '-socketPath', admin]);
  assert.match(list.stdout, /web-0/);

  const inside = await runIn(ns, [TESSERA_BIN, 'agent', 'api', 'fetch', 'x509', '-socketPath', sock, '-timeout', '5s']);
  assert.equal(inside.code, 0, inside.out);
  assert.match(inside.out, /SPIFFE ID:\s+spiffe:\/\/cluster\.local\/ns\/backend\/sa\/default\n/);
  // The same user in the host namespace has no such identity.
  const outside = await tessera(['agent', 'api', 'fetch', 'x509', '-socketPath', sock, '-timeout', '1s']);
  assert.notEqual(outside.code, 0);
  assert.match(outside.stderr + outside.stdout, /no identity issued/);

  // A pod-label entry narrows further: only app=web endpoints match.
  const labelled = await srv('entry', 'create', '-spiffeID', 'spiffe://cluster.local/ns/backend/web', '-parentID', agentId, '-selector', 'k8s:ns:backend', '-selector', 'k8s:pod-label:app:web', '-selector', 'k8s:node-name:node-a');
  assert.equal(labelled.code, 0, labelled.stderr);
  const both = await runIn(ns, [TESSERA_BIN, 'agent', 'api', 'fetch', 'x509', '-socketPath', sock, '-timeout', '5s'], (o) => o.includes('ns/backend/web'));
  assert.match(both.out, /ns\/backend\/web/);
  assert.match(both.out, /ns\/backend\/sa\/default/);

  // Removing the endpoint takes the identities away.
  const rm = await tessera(['agent', 'endpoint', 'remove', '-name', 'web-0', '-namespace', 'backend', '-socketPath', admin]);
  assert.equal(rm.code, 0, rm.stderr);
  const gone = await runIn(ns, [TESSERA_BIN, 'agent', 'api', 'fetch', 'x509', '-socketPath', sock, '-timeout', '1s'], (o) => /no identity issued/.test(o));
  assert.notEqual(gone.code, 0);
  assert.match(gone.out, /no identity issued/);
});

/** Runs `node args` inside network namespace `ns`; retries until `until(output)` (default: exit 0) or 5 s. */
async function runIn(ns: string, args: string[], until?: (out: string) => boolean): Promise<{ code: number | string; out: string }> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const p = startProcess('ip', ['netns', 'exec', ns, process.execPath, ...args]);
    const code = await p.exited();
    const out = p.output();
    const done = until ? until(out) : code === 0;
    if (done || Date.now() > deadline) return { code, out };
    await new Promise((r) => setTimeout(r, 100));
  }
}

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const demo = join(dirname(fileURLToPath(import.meta.url)), '../../src/demo/main.js');

test('the quick-start demo (scripts/demo.sh): server + agent + Workload API + mTLS echo + JWT, end to end, and it cleans up', async () => {
  // The demo's own temporary directory goes under this one, which must be empty afterwards.
  const tmp = mkdtempSync(join(tmpdir(), 'tessera-demo-test-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) =>
    execFile(process.execPath, [demo], { timeout: 60_000, env: { ...process.env, TMPDIR: tmp } }, (err, so) => resolve({ code: err ? 1 : 0, stdout: so })),
  );
  assert.equal(code, 0, stdout);
  const agentId = /agent: attested as (spiffe:\/\/cluster\.local\/tessera\/agent\/join_token\/[0-9a-f-]{36});/.exec(stdout)?.[1];
  assert.ok(agentId, stdout);
  // The seed's entry, verbatim, parented to the agent; two for the demo's uid.
  assert.match(stdout, new RegExp(`\\$ tessera server entry create -socketPath \\S+ -spiffeID spiffe://cluster.local/ns/backend/sa/default -parentID ${agentId} -selector k8s:ns:backend -selector k8s:sa:default\\nEntry ID {9}: [0-9a-f-]{36}\\n`));
  const uid = process.getuid?.() ?? 0;
  for (const name of ['echo-server', 'echo-client']) {
    assert.match(stdout, new RegExp(`-spiffeID spiffe://cluster.local/ns/echo/sa/${name} -parentID ${agentId} -selector unix:uid:${uid}\\n`));
  }
  // What the agent hands this process over the Workload API: both echo SVIDs, not the seed's.
  const fetched = /\$ tessera agent api fetch x509 -socketPath \S+\n([\s\S]*?)\n\$ /.exec(stdout)?.[1] ?? '';
  assert.match(fetched, /^Received 2 svids after \d+ms\n/);
  assert.match(fetched, /SPIFFE ID:\t\tspiffe:\/\/cluster\.local\/ns\/echo\/sa\/echo-server\n/);
  assert.match(fetched, /SPIFFE ID:\t\tspiffe:\/\/cluster\.local\/ns\/echo\/sa\/echo-client\n/);
  assert.doesNotMatch(fetched, /ns\/backend/);
  assert.match(stdout, /private key matches the leaf certificate/);
  // mTLS with X509Source, authorized by SPIFFE ID both ways; both impostors turned away.
  assert.match(stdout, /echo-client: connected to spiffe:\/\/cluster\.local\/ns\/echo\/sa\/echo-server\n/);
  assert.match(stdout, /echo-client: server answered "Hello, spiffe:\/\/cluster\.local\/ns\/echo\/sa\/echo-client"\n/);
  assert.match(stdout, /refused the server: server spiffe:\/\/cluster\.local\/ns\/echo\/sa\/echo-server is not authorized/);
  assert.match(stdout, /echo-server: rejected during the handshake: client spiffe:\/\/cluster\.local\/ns\/echo\/sa\/echo-server is not authorized/);
  // JWT-SVID through the agent: valid for its audience, not for another.
  assert.match(stdout, /token\(spiffe:\/\/cluster\.local\/ns\/echo\/sa\/echo-client\):\n\teyJ/);
  assert.match(stdout, /SVID is valid\.\nSPIFFE ID : spiffe:\/\/cluster\.local\/ns\/echo\/sa\/echo-client\nClaims {4}: \{[^\n]*"aud":\["demo"\]/);
  assert.match(stdout, /SVID is not valid: /);
  assert.match(stdout, /\n== demo finished: everything behaved as expected \(\d+ checks\)\n$/);
  assert.doesNotMatch(stdout, /FAILED|WRONG/);
  assert.deepEqual(readdirSync(tmp), [], 'the demo removed its temporary directory');
});

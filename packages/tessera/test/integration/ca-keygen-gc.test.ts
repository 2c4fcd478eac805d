/**
 * Regression test for a Node 20 hang the CA benchmark ran into: an EC or RSA
 * JWK export of a key object from `generateKeyPairSync` (or of a public key
 * derived from one) holds the key's lock while allocating, and the garbage
 * collection that finalizes the key's generation job takes the same lock
 * (`~KeyPairGenConfig`) on the same thread: the process hangs forever. The
 * CA exports JWKs of its JWT keys on every bundle marshal and journal write,
 * and `encodeSubjectPublicKeyInfo` takes caller keys that may be fresh.
 *
 * Child processes run with V8's `--gc-interval=50` (a collection every 50
 * allocations); each fresh key is used 50 times after a varying number of
 * allocations, so that for some offset a collection that finalizes the
 * generation job lands inside a use. The control (a plain JWK export) hangs on Node 20;
 * the CA's paths must finish.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PACKAGE_DIR = fileURLToPath(new URL('../../..', import.meta.url));
const CA_INDEX = new URL('../../src/server/ca/index.js', import.meta.url).href;

/**
 * Shared by every child: `sweep(make, use)` calls `use(make())` 50 times for
 * 300 allocation offsets (fewer did not always reproduce the hang) — synchronously: an `await` between generation and
 * use shifts the collections enough to hide the hang. `sweepAsync` is for
 * asynchronous key sources.
 */
const PRELUDE = `
  import { generateKeyPairSync, createPublicKey } from 'node:crypto';
  const sink = [];
  const pad = (n) => { for (let x = 0; x < n; x++) sink[x & 63] = { x }; };
  function sweep(make, use) {
    for (let off = 0; off < 300; off++) {
      const key = make();
      pad(off);
      for (let j = 0; j < 50; j++) use(key);
    }
  }
  async function sweepAsync(make, use) {
    for (let off = 0; off < 300; off++) {
      const key = await make();
      pad(off);
      for (let j = 0; j < 50; j++) use(key);
    }
  }
`;

interface Run {
  readonly finished: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs an ES module script under `--gc-interval=50`; `finished` is false when it had to be killed. */
function runStressed(body: string, timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--gc-interval=50', '--input-type=module', '-e', PRELUDE + body],
      { cwd: PACKAGE_DIR, timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => resolve({ finished: err === null || (err as { killed?: boolean }).killed !== true, stdout, stderr }),
    );
  });
}

const p256 = "() => generateKeyPairSync('ec', { namedCurve: 'P-256' })";

describe('Node 20 JWK-export hang (generateKeyPairSync + GC)', () => {
  // The hang is a race with the garbage collector: it happens often, not
  // always, so the control only reports what it saw and never fails.
  test(
    'control (diagnostic only): do JWK exports of fresh EC keys still hang this Node?',
    { skip: !process.version.startsWith('v20.') && 'the hang was observed on Node 20' },
    async (t) => {
      const run = await runStressed(`sweep(${p256}, (p) => createPublicKey(p.privateKey).export({ format: 'jwk' })); console.log('finished');`, 5_000);
      t.diagnostic(run.finished ? 'the control finished this time (the hang is intermittent)' : 'the control hung and was killed: the workarounds in csr.ts and key-manager.ts are still needed');
    },
  );

  test('encodeSubjectPublicKeyInfo and buildCertificateRequest on fresh keys of every type never hang', async () => {
    const run = await runStressed(
      `import { buildCertificateRequest, encodeSubjectPublicKeyInfo as spki } from '@tessera/spiffe/x509';
       sweep(${p256}, (p) => spki(p.privateKey));
       sweep(${p256}, (p) => spki(p.publicKey));
       sweep(() => generateKeyPairSync('ec', { namedCurve: 'P-384' }), (p) => spki(p.privateKey));
       sweep(() => generateKeyPairSync('ed25519'), (p) => { spki(p.privateKey); spki(p.publicKey); });
       sweep(${p256}, (p) => buildCertificateRequest(p.privateKey, { uris: ['spiffe://example.org/w'] }));
       // RSA-1024 only to keep generation quick; the encoding path is the same for every size.
       sweep(() => generateKeyPairSync('rsa', { modulusLength: 1024 }), (p) => { spki(p.privateKey); spki(p.publicKey); });
       console.log('finished');`,
      120_000,
    );
    assert.ok(run.finished, `hung (killed after 120 s)\n${run.stderr}`);
    assert.match(run.stdout, /finished/, run.stderr);
  });

  test('CA keys from the key manager, rotation and bundle marshalling never hang', async () => {
    const run = await runStressed(
      `import { MemoryCaJournal, MemoryKeyManager, ServerCa } from ${JSON.stringify(CA_INDEX)};
       const km = new MemoryKeyManager();
       let n = 0;
       await sweepAsync(() => km.generateKey('k' + n++, 'ec-p256'), (k) => { k.export({ format: 'jwk' }); createPublicKey(k).export({ format: 'jwk' }); });
       let t = Date.parse('2031-01-01T00:00:00Z');
       const ca = await ServerCa.open({ trustDomain: 'example.org', keyManager: new MemoryKeyManager(), journal: new MemoryCaJournal(), now: () => new Date(t) });
       for (let k = 0; k < 4; k++) {
         t = ca.nextRotationAt().getTime();
         await ca.tick();
         for (let j = 0; j < 30; j++) ca.bundle().marshal();
       }
       console.log('finished');`,
      120_000,
    );
    assert.ok(run.finished, `hung (killed after 120 s)\n${run.stderr}`);
    assert.match(run.stdout, /finished/, run.stderr);
  });
});

/**
 * Regression test for a Node 20 deadlock the CA benchmark ran into: a JWK
 * export of a key object returned by `generateKeyPair[Sync]` holds the key's
 * lock while allocating, and a garbage collection that finalizes the key's
 * generation job takes the same lock (`~KeyPairGenConfig`) on the same
 * thread — the process hangs forever. The CA exports JWKs of its JWT keys on
 * every bundle marshal and journal write, and `encodeSubjectPublicKeyInfo`
 * used to export JWKs of caller keys.
 *
 * Child processes run with V8's `--gc-interval=50` (a collection every 50
 * allocations), which makes the hang deterministic: the control (a plain
 * generated key exported as JWK) hangs on its first key; the CA's paths must
 * finish.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PACKAGE_DIR = fileURLToPath(new URL('../../..', import.meta.url));
const CA_INDEX = new URL('../../src/server/ca/index.js', import.meta.url).href;

interface Run {
  readonly finished: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs an ES module script under `--gc-interval=50`; `finished` is false when it had to be killed. */
function runStressed(script: string, timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--gc-interval=50', '--input-type=module', '-e', script],
      { cwd: PACKAGE_DIR, timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => resolve({ finished: err === null || (err as { killed?: boolean }).killed !== true, stdout, stderr }),
    );
  });
}

describe('Node 20 JWK-export deadlock (generateKeyPair + GC)', () => {
  test(
    'control: a key straight from generateKeyPairSync, exported as JWK, hangs the process on Node 20',
    { skip: !process.version.startsWith('v20.') && 'the hang was observed on Node 20 only' },
    async () => {
      const run = await runStressed(
        `import { generateKeyPairSync } from 'node:crypto';
         for (let i = 0; i < 200; i++) {
           const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
           for (let j = 0; j < 50; j++) key.export({ format: 'jwk' });
         }
         console.log('finished');`,
        8000,
      );
      assert.equal(
        run.finished,
        false,
        'the control finished: this Node no longer deadlocks, so the key laundering in key-manager.ts and the export choices in csr.ts could be simplified',
      );
    },
  );

  test('the CA\'s keys and SPKI encoding never hang: key managers, encodeSubjectPublicKeyInfo, CSRs, rotation and bundle marshalling', async () => {
    const run = await runStressed(
      `import { generateKeyPairSync, createPublicKey } from 'node:crypto';
       import { buildCertificateRequest, encodeSubjectPublicKeyInfo } from '@tessera/spiffe/x509';
       import { MemoryCaJournal, MemoryKeyManager, ServerCa } from ${JSON.stringify(CA_INDEX)};
       const km = new MemoryKeyManager();
       for (let i = 0; i < 40; i++) {
         const key = await km.generateKey('k' + i, i % 2 ? 'ec-p384' : 'ec-p256');
         for (let j = 0; j < 50; j++) { key.export({ format: 'jwk' }); createPublicKey(key).export({ format: 'jwk' }); }
         const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
         for (let j = 0; j < 50; j++) { encodeSubjectPublicKeyInfo(pair.privateKey); encodeSubjectPublicKeyInfo(pair.publicKey); }
         buildCertificateRequest(pair.privateKey, { uris: ['spiffe://example.org/w'] });
         if (i % 10 === 0) {
           const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
           for (let j = 0; j < 20; j++) { encodeSubjectPublicKeyInfo(rsa.publicKey); encodeSubjectPublicKeyInfo(rsa.privateKey); }
         }
         await km.deleteKey('k' + i);
       }
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
    assert.ok(run.finished, `the stressed CA paths hung (killed after 120 s)\n${run.stderr}`);
    assert.match(run.stdout, /finished/, run.stderr);
  });
});

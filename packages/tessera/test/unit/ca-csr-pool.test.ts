/**
 * CSR checks on worker threads (`csr-verify-pool.ts`) and the CA's batch
 * signing on top of them: a batch mixing good requests with every kind of
 * refused one gets, request by request, exactly what one-by-one signing
 * gives (same certificate content, same error code and message); workers
 * stop on close; a worker that fails to start or dies mid-batch is logged
 * and its CSRs are checked on the main thread, with no request lost.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomFill, type KeyObject } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { verifyX509Svid } from '@tessera/spiffe/svid';
import { buildCertificateRequest, Certificate } from '@tessera/spiffe/x509';
import { checkCsrInline, CsrVerifyPool, MAX_CRASHES, type CsrCheck } from '../../src/server/ca/csr-verify-pool.js';
import { CSR_POOL_MIN_BATCH, MemoryCaJournal, MemoryKeyManager, ServerCa, type ServerCaOptions, type SignedX509Svid, type X509SvidRequest } from '../../src/server/ca/index.js';

const T0 = Date.parse('2031-03-01T12:00:00.250Z');
const TD = 'example.org';
const WEB = 'spiffe://example.org/ns/prod/sa/web';

const p256 = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;

/** Worker scripts that fail, named after their defect. */
const scripts = mkdtempSync(join(tmpdir(), 'tessera-csr-pool-'));
after(() => rmSync(scripts, { recursive: true, force: true }));
function script(name: string, source: string): URL {
  const path = join(scripts, name);
  writeFileSync(path, source);
  return pathToFileURL(path);
}
const throwsAtStart = script('throws-at-start.mjs', "throw new Error('worker boom');\n");
const exitsOnFirstChunk = script('exits-on-first-chunk.mjs', "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', () => process.exit(3));\n");

/** CSRs of every kind a CA meets, good ones first and last. */
function mixedCsrs(): Uint8Array[] {
  const key = p256();
  const forged = Buffer.from(buildCertificateRequest(key, { uris: [WEB] }));
  forged[forged.length - 3]! ^= 0xff;
  const truncated = buildCertificateRequest(p256(), { uris: [WEB] }).subarray(0, 60);
  const p521 = buildCertificateRequest(generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey, { uris: [WEB] });
  const rsa1024 = buildCertificateRequest(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey);
  const bad = [Buffer.from('garbage'), forged, truncated, p521, rsa1024, buildCertificateRequest(p256(), { uris: ['spiffe://example.org/admin'] })];
  const good = (): Uint8Array[] => [
    buildCertificateRequest(p256(), { uris: [WEB] }),
    buildCertificateRequest(p256()),
    buildCertificateRequest(generateKeyPairSync('ed25519').privateKey, { uris: [WEB] }),
    buildCertificateRequest(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, { dnsNames: ['hint.example'] }),
    new Uint8Array(buildCertificateRequest(p256(), { uris: [WEB] })), // not a Buffer
  ];
  return [...good(), ...bad, ...good(), ...bad, ...good()];
}

/** The same outcome: both refused with the same class, code and message, or both with the same spki and names. */
function assertSameCheck(a: CsrCheck, b: CsrCheck, what: string): void {
  assert.equal(a.ok, b.ok, what);
  if (!a.ok && !b.ok) {
    const ea = a.error as Error & { code?: string };
    const eb = b.error as Error & { code?: string };
    assert.equal(ea.constructor, eb.constructor, what);
    assert.equal(ea.code, eb.code, what);
    assert.equal(ea.message, eb.message, what);
  } else if (a.ok && b.ok) {
    assert.ok(a.spki.equals(b.spki), what);
    assert.deepEqual(a.uris, b.uris, what);
  }
}

/** The same outcome, certificates compared without their serial and signature. */
function assertSameSigning(batch: PromiseSettledResult<SignedX509Svid>, single: PromiseSettledResult<SignedX509Svid>, what: string): void {
  assert.equal(batch.status, single.status, `${what}: ${batch.status === 'rejected' ? String(batch.reason) : 'signed'} vs ${single.status === 'rejected' ? String(single.reason) : 'signed'}`);
  if (batch.status === 'rejected' && single.status === 'rejected') {
    const a = batch.reason as Error & { code?: string };
    const b = single.reason as Error & { code?: string };
    assert.equal(a.constructor, b.constructor, what);
    assert.equal(a.code, b.code, what);
    assert.equal(a.message, b.message, what);
  } else if (batch.status === 'fulfilled' && single.status === 'fulfilled') {
    const [la, lb] = [new Certificate(batch.value.certificates[0]!), new Certificate(single.value.certificates[0]!)];
    for (const k of ['subjectRaw', 'issuerRaw', 'notBefore', 'notAfter', 'spki', 'extensions'] as const) assert.deepEqual(la[k], lb[k], `${what}: ${k}`);
    assert.deepEqual(batch.value.certificates.slice(1), single.value.certificates.slice(1), what);
    assert.deepEqual(batch.value.expiresAt, single.value.expiresAt, what);
  }
}

async function openCa(extra: Partial<ServerCaOptions> = {}): Promise<ServerCa> {
  return ServerCa.open({ trustDomain: TD, keyManager: new MemoryKeyManager(), journal: new MemoryCaJournal(), now: () => new Date(T0), ...extra });
}

/** Requests around the CSRs: each refusal the CA makes before looking at a CSR, and public-key requests, mixed in. */
function mixedRequests(): X509SvidRequest[] {
  const reqs: X509SvidRequest[] = mixedCsrs().map((csr, i) => ({ spiffeId: WEB, csr, ...(i % 3 === 0 ? { dnsNames: ['web.example'], ttlSeconds: 600 } : {}) }));
  reqs.splice(3, 0, { spiffeId: 'spiffe://other.org/web', csr: buildCertificateRequest(p256()) });
  reqs.splice(7, 0, { spiffeId: WEB, publicKey: p256() });
  reqs.splice(9, 0, { spiffeId: WEB, csr: buildCertificateRequest(p256()), dnsNames: ['bad name'] });
  reqs.splice(11, 0, { spiffeId: WEB, csr: 'abc' as unknown as Uint8Array });
  reqs.push({ spiffeId: WEB }, null as unknown as X509SvidRequest);
  return reqs;
}

// libuv's thread pool starts on first use: start it now, so thread counts below see only the workers come and go.
before(() => new Promise<void>((resolve, reject) => randomFill(Buffer.alloc(8), (e) => (e ? reject(e) : resolve()))));

/** Threads of this process (Linux); undefined elsewhere. */
function osThreads(): number | undefined {
  try {
    return readdirSync('/proc/self/task').length;
  } catch {
    return undefined;
  }
}

describe('CsrVerifyPool', () => {
  test('worker results equal the main thread checks, for good and refused CSRs alike', async () => {
    const csrs = mixedCsrs();
    const pool = new CsrVerifyPool({ size: 2, shareWithCaller: false });
    try {
      const got: CsrCheck[] = [];
      let calls = 0;
      await pool.verify(csrs, (i, check) => {
        calls++;
        got[i] = check;
      });
      assert.equal(calls, csrs.length, 'one result per CSR');
      assert.equal(pool.threads, 2);
      csrs.forEach((c, i) => assertSameCheck(got[i]!, checkCsrInline(c), `CSR ${i}`));
      assert.equal(got.filter((c) => c.ok).length, 17, 'the good CSRs, and those asking for another ID (the CA refuses them, not the check)');
      await pool.verify([], () => assert.fail('no CSR, no result'));
    } finally {
      await pool.close();
    }
  });

  test('close stops the threads; later batches are checked on the calling thread', async () => {
    const before = osThreads();
    const pool = new CsrVerifyPool({ size: 2 });
    const csrs = mixedCsrs();
    await pool.verify(csrs, () => undefined);
    assert.equal(pool.threads, 2);
    if (before !== undefined) assert.ok(osThreads()! >= before + 2, 'two worker threads run');
    await pool.close();
    assert.equal(pool.threads, 0);
    assert.equal(pool.available, false);
    if (before !== undefined) assert.equal(osThreads(), before, 'no thread left behind');
    const got: CsrCheck[] = [];
    await pool.verify(csrs, (i, c) => (got[i] = c));
    csrs.forEach((c, i) => assertSameCheck(got[i]!, checkCsrInline(c), `CSR ${i}`));
    assert.equal(pool.threads, 0, 'a closed pool starts no worker');
    await pool.close();
  });

  test('a worker that exits mid-batch: its chunks are checked here, it is reported, and after MAX_CRASHES no worker starts again', async () => {
    const reports: string[] = [];
    const pool = new CsrVerifyPool({ size: 1, script: exitsOnFirstChunk, shareWithCaller: false, onWorkerError: (m, e) => reports.push(`${m}: ${e.message}`) });
    try {
      const csrs = mixedCsrs();
      for (let round = 1; round <= MAX_CRASHES + 1; round++) {
        const got: CsrCheck[] = [];
        await pool.verify(csrs, (i, c) => (got[i] = c));
        csrs.forEach((c, i) => assertSameCheck(got[i]!, checkCsrInline(c), `round ${round}, CSR ${i}`));
        assert.equal(reports.length, Math.min(round, MAX_CRASHES), `round ${round}`);
      }
      assert.match(reports[0]!, /worker failed; its CSRs are checked on the main thread: .*exited with code 3/);
      assert.match(reports.at(-1)!, /failed 3 times; checking CSRs on the main thread from now on/);
      assert.equal(pool.available, false);
      assert.equal(pool.threads, 0);
    } finally {
      await pool.close();
    }
  });

  test('options are checked', () => {
    for (const size of [0, -1, 1.5, Number.NaN]) assert.throws(() => new CsrVerifyPool({ size }), /at least one worker/);
  });
});

describe('ServerCa.signX509SvidBatch', () => {
  test('a mixed batch: every result is what signX509Svid gives for the same request', async () => {
    const ca = await openCa({ csrVerifyWorkers: 1 });
    try {
      const reqs = mixedRequests();
      assert.ok(reqs.length >= CSR_POOL_MIN_BATCH);
      const batch = await ca.signX509SvidBatch(reqs);
      const singles = await Promise.allSettled(reqs.map((r) => ca.signX509Svid(r)));
      assert.equal(batch.length, reqs.length);
      reqs.forEach((_, i) => assertSameSigning(batch[i]!, singles[i]!, `request ${i}`));
      for (const r of batch) if (r.status === 'fulfilled') verifyX509Svid(r.value.certificates, ca.bundle(), { time: new Date(T0) });
      const signed = batch.filter((r) => r.status === 'fulfilled').length;
      assert.equal(signed, 16, 'the good CSRs and the public key');
      // Small batches take the one-by-one path; the results are the same.
      const small = reqs.slice(0, CSR_POOL_MIN_BATCH - 1);
      (await ca.signX509SvidBatch(small)).forEach((r, i) => assertSameSigning(r, singles[i]!, `small batch, request ${i}`));
      await assert.rejects(ca.signX509SvidBatch('x' as unknown as X509SvidRequest[]), /an array of X509-SVID requests is required/);
    } finally {
      await ca.close();
    }
  });

  test('csrVerifyWorkers: 0 signs batches without workers; invalid values are CA_INVALID_CONFIG', async () => {
    const before = osThreads();
    const ca = await openCa({ csrVerifyWorkers: 0 });
    const reqs = mixedRequests();
    const batch = await ca.signX509SvidBatch(reqs);
    if (before !== undefined) assert.equal(osThreads(), before, 'no worker thread');
    const singles = await Promise.allSettled(reqs.map((r) => ca.signX509Svid(r)));
    reqs.forEach((_, i) => assertSameSigning(batch[i]!, singles[i]!, `request ${i}`));
    await ca.close();
    for (const csrVerifyWorkers of [-1, 1.5, 65, Number.NaN]) {
      await assert.rejects(openCa({ csrVerifyWorkers }), (e: Error & { code?: string }) => e.code === 'CA_INVALID_CONFIG' && /"csrVerifyWorkers"/.test(e.message));
    }
  });

  test('close stops the workers; the CA still signs batches afterwards', async () => {
    const before = osThreads();
    const ca = await openCa({ csrVerifyWorkers: 2 });
    const reqs = mixedRequests();
    await ca.signX509SvidBatch(reqs);
    if (before !== undefined) assert.ok(osThreads()! >= before + 2, 'the workers started on the first batch');
    await ca.close();
    if (before !== undefined) assert.equal(osThreads(), before, 'no thread left behind');
    const after = await ca.signX509SvidBatch(reqs);
    assert.equal(after.filter((r) => r.status === 'fulfilled').length, 16);
    if (before !== undefined) assert.equal(osThreads(), before, 'a closed CA starts no worker');
    await ca.close();
  });

  test('a worker that cannot start: logged, and the batch is signed on the main thread with the same results', async () => {
    const warnings: { msg: string; fields: Record<string, unknown> | undefined }[] = [];
    const ca = await openCa({ csrVerifyWorkers: 1, csrVerifyWorkerScript: throwsAtStart, logger: { warn: (msg, fields) => warnings.push({ msg, fields }) } });
    try {
      const reqs = mixedRequests();
      const singles = await Promise.allSettled(reqs.map((r) => ca.signX509Svid(r)));
      for (let round = 1; round <= MAX_CRASHES + 1; round++) {
        const batch = await ca.signX509SvidBatch(reqs);
        reqs.forEach((_, i) => assertSameSigning(batch[i]!, singles[i]!, `round ${round}, request ${i}`));
      }
      assert.equal(warnings.length, MAX_CRASHES, `one per failed start, then none: ${warnings.map((w) => w.msg).join('; ')}`);
      assert.match(warnings[0]!.msg, /CSR verification worker failed/);
      assert.match((warnings[0]!.fields?.['error'] as Error).message, /worker boom/);
    } finally {
      await ca.close();
    }
  });
});

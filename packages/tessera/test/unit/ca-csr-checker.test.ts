/**
 * The CA's CSR checks (`csr-checker.ts`) and batch signing on top of them:
 * with the native ECDSA verifier — inline and on the thread pool — every CSR
 * of a batch mixing good requests with every kind of refused one gets
 * exactly what node:crypto's verification gives (same error class, code and
 * message; same key and names); `signX509SvidBatch` gives request by request
 * what `signX509Svid` gives; a verifier that fails (the fakes here, named as
 * such) hands its CSRs to node:crypto, losing none.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import * as nativeEcdsa from '@tessera/ecdsa-verify';
import { verifyX509Svid } from '@tessera/spiffe/svid';
import { buildCertificateRequest, Certificate, parseUnverifiedCertificateRequest } from '@tessera/spiffe/x509';
import { CsrChecker, type CsrCheck, type EcdsaVerifier } from '../../src/server/ca/csr-checker.js';
import { MemoryCaJournal, MemoryKeyManager, ServerCa, type ServerCaOptions, type SignedX509Svid, type X509SvidRequest } from '../../src/server/ca/index.js';

const T0 = Date.parse('2031-03-01T12:00:00.250Z');
const TD = 'example.org';
const WEB = 'spiffe://example.org/ns/prod/sa/web';

const p256 = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const p384 = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;

// --- DER, to build CSRs with chosen signatures ---
const len = (n: number): Buffer => (n < 0x80 ? Buffer.of(n) : n < 0x100 ? Buffer.of(0x81, n) : Buffer.of(0x82, n >> 8, n & 0xff));
const tlv = (tag: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.of(tag), len(body.length), body]);
};
const ALG = {
  ecdsaSha256: Buffer.from('300a06082a8648ce3d040302', 'hex'),
  ecdsaSha384: Buffer.from('300a06082a8648ce3d040303', 'hex'),
  ecdsaSha512: Buffer.from('300a06082a8648ce3d040304', 'hex'),
};

/** A CSR for `key`'s public half, signed over its info with `hash`, its signature passed through `edit`. */
function csrSignedWith(key: KeyObject, alg: keyof typeof ALG, edit: (sig: Buffer) => Buffer = (s) => s): Buffer {
  const info = parseUnverifiedCertificateRequest(buildCertificateRequest(key, { uris: [WEB] })).proof.signedData;
  const hash = alg === 'ecdsaSha256' ? 'sha256' : alg === 'ecdsaSha384' ? 'sha384' : 'sha512';
  const sig = edit(sign(hash, info, key));
  return tlv(0x30, info, ALG[alg], tlv(0x03, Buffer.of(0), sig));
}

/** The DER signature with its r INTEGER given a superfluous leading zero octet. */
function padR(sig: Buffer): Buffer {
  const rLen = sig[3]!;
  const r = sig.subarray(4, 4 + rLen);
  const rest = sig.subarray(4 + rLen);
  return tlv(0x30, tlv(0x02, Buffer.of(0), r), rest);
}

/** The same signature with s replaced by n − s (the "high-S" twin: valid for ECDSA, accepted by OpenSSL and Go). */
function highS(sig: Buffer, order: bigint): Buffer {
  const rLen = sig[3]!;
  const rTlv = sig.subarray(2, 4 + rLen);
  const sBytes = sig.subarray(4 + rLen + 2);
  let hex = (order - BigInt('0x' + sBytes.toString('hex'))).toString(16);
  if (hex.length % 2) hex = '0' + hex;
  let s = Buffer.from(hex, 'hex');
  if (s[0]! & 0x80) s = Buffer.concat([Buffer.of(0), s]);
  return tlv(0x30, rTlv, tlv(0x02, s));
}
const N256 = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

/** A CSR whose EC point was moved off the curve (its signature is then wrong too). */
function offCurve(): Buffer {
  const csr = Buffer.from(buildCertificateRequest(p256(), { uris: [WEB] }));
  const u = parseUnverifiedCertificateRequest(csr);
  const at = csr.indexOf(u.proof.publicKeyBits) + 64;
  csr[at]! ^= 0x01;
  return csr;
}

/** CSRs of every kind a CA meets, good ones first and last. */
function mixedCsrs(): Uint8Array[] {
  const key = p256();
  const forged = Buffer.from(buildCertificateRequest(key, { uris: [WEB] }));
  forged[forged.length - 3]! ^= 0xff;
  const truncated = buildCertificateRequest(p256(), { uris: [WEB] }).subarray(0, 60);
  const p521 = buildCertificateRequest(generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey, { uris: [WEB] });
  const rsa1024 = buildCertificateRequest(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey);
  const bad = (): Uint8Array[] => [
    Buffer.from('garbage'),
    forged,
    truncated,
    p521,
    rsa1024,
    buildCertificateRequest(p256(), { uris: ['spiffe://example.org/admin'] }),
    offCurve(),
    csrSignedWith(p256(), 'ecdsaSha256', padR),
    csrSignedWith(p256(), 'ecdsaSha384', (s) => s.subarray(0, s.length - 1)),
    csrSignedWith(p384(), 'ecdsaSha384', (s) => Buffer.concat([s, Buffer.of(0)])),
  ];
  const good = (): Uint8Array[] => [
    buildCertificateRequest(p256(), { uris: [WEB] }),
    buildCertificateRequest(p256()),
    buildCertificateRequest(generateKeyPairSync('ed25519').privateKey, { uris: [WEB] }),
    buildCertificateRequest(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, { uris: [WEB] }),
    buildCertificateRequest(p384(), { dnsNames: ['hint.example'] }),
    new Uint8Array(buildCertificateRequest(p256(), { uris: [WEB] })), // not a Buffer
    csrSignedWith(p256(), 'ecdsaSha512'),
    csrSignedWith(p384(), 'ecdsaSha256'),
    csrSignedWith(p256(), 'ecdsaSha256', (s) => highS(s, N256)),
  ];
  return [...good(), ...bad(), ...good(), ...bad(), ...good()];
}
const GOOD_PER_GROUP = 9;

async function checkAll(checker: CsrChecker, csrs: readonly Uint8Array[]): Promise<CsrCheck[]> {
  const out = new Array<CsrCheck>(csrs.length);
  let calls = 0;
  await checker.checkBatch(csrs, (i, c) => {
    assert.equal(out[i], undefined, `index ${i} reported once`);
    out[i] = c;
    calls++;
  });
  assert.equal(calls, csrs.length, 'one report per CSR');
  return out;
}

/**
 * The same outcome: both refused with the same class, code and message (a
 * point off the curve: same class and code; the message names the key either
 * way), or both accepted with the same key and names.
 */
function assertSameCheck(a: CsrCheck, b: CsrCheck, what: string): void {
  assert.equal(a.ok, b.ok, `${what}: ${a.ok ? 'accepted' : String(a.error)} vs ${b.ok ? 'accepted' : String(b.error)}`);
  if (!a.ok && !b.ok) {
    const ea = a.error as Error & { code?: string };
    const eb = b.error as Error & { code?: string };
    assert.equal(ea.constructor, eb.constructor, what);
    assert.equal(ea.code, eb.code, what);
    if (ea.code === 'ERR_KEY_INVALID' && /curve|refused/.test(ea.message)) assert.match(eb.message, /certificate request key/, what);
    else assert.equal(ea.message, eb.message, what);
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

/** A fake verifier whose every answer is ERROR (as when OpenSSL runs out of memory). */
const fakeErroringVerifier: EcdsaVerifier = {
  verifyEcdsa: (checks) => new Uint8Array(checks.length).fill(nativeEcdsa.ERROR),
  verifyEcdsaAsync: async (checks) => new Uint8Array(checks.length).fill(nativeEcdsa.ERROR),
};
/** A fake verifier that throws, even where a promise is expected. */
const fakeSyncThrowingVerifier: EcdsaVerifier = {
  verifyEcdsa: () => {
    throw new Error('fake verifier: boom');
  },
  verifyEcdsaAsync: () => {
    throw new Error('fake verifier: boom');
  },
};
/** A fake verifier that throws and rejects. */
const fakeThrowingVerifier: EcdsaVerifier = {
  verifyEcdsa: () => {
    throw new Error('fake verifier: boom');
  },
  verifyEcdsaAsync: () => Promise.reject(new Error('fake verifier: boom')),
};

describe('CsrChecker', () => {
  test('uses the native verifier by default (the addon is built by npm ci)', () => {
    assert.equal(new CsrChecker({ inline: false }).native, true, nativeEcdsa.loadError?.message);
    assert.equal(new CsrChecker({ inline: true, ecdsa: null }).native, false);
    for (const parallelism of [0, -1, 1.5, Number.NaN]) assert.throws(() => new CsrChecker({ inline: false, parallelism }), RangeError);
  });

  test('native verification, inline and on the thread pool, gives what node:crypto gives for every CSR of a mixed batch', async () => {
    const csrs = mixedCsrs();
    const reference = await checkAll(new CsrChecker({ inline: true, ecdsa: null }), csrs);
    // The CSRs asking for another ID are well-formed: the CA, not the checker, refuses them.
    assert.equal(reference.filter((c) => c.ok).length, 3 * GOOD_PER_GROUP + 2, 'the good CSRs pass, the bad ones do not');
    for (const [name, checker] of [
      ['native inline', new CsrChecker({ inline: true })],
      ['native thread pool', new CsrChecker({ inline: false })],
      ['native thread pool, one lane', new CsrChecker({ inline: false, parallelism: 1 })],
      ['native thread pool, 7 lanes', new CsrChecker({ inline: false, parallelism: 7 })],
      ['node:crypto thread pool', new CsrChecker({ inline: false, ecdsa: null })],
    ] as const) {
      const got = await checkAll(checker, csrs);
      csrs.forEach((_, i) => assertSameCheck(got[i]!, reference[i]!, `${name}, CSR ${i}`));
      // one at a time too
      for (const i of [0, GOOD_PER_GROUP + 1, GOOD_PER_GROUP + 6]) assertSameCheck(await checker.check(csrs[i]!), reference[i]!, `${name}, single CSR ${i}`);
    }
  });

  test('a point off the curve is ERR_KEY_INVALID and a non-canonical signature ERR_CERTIFICATE_INVALID, natively', async () => {
    const checker = new CsrChecker({ inline: false });
    const bad = await checker.check(offCurve());
    assert.ok(!bad.ok && (bad.error as { code?: string }).code === 'ERR_KEY_INVALID', String(!bad.ok && bad.error));
    assert.match(String(!bad.ok && bad.error), /EC point is not on its curve/);
    const padded = await checker.check(csrSignedWith(p256(), 'ecdsaSha256', padR));
    assert.ok(!padded.ok && (padded.error as { code?: string }).code === 'ERR_CERTIFICATE_INVALID');
    assert.match(String(!padded.ok && padded.error), /signature does not verify/);
  });

  test('a verifier that answers ERROR or fails: node:crypto decides, with the same results and none lost', async () => {
    const csrs = mixedCsrs();
    const reference = await checkAll(new CsrChecker({ inline: true, ecdsa: null }), csrs);
    for (const ecdsa of [fakeErroringVerifier, fakeThrowingVerifier, fakeSyncThrowingVerifier]) {
      for (const inline of [true, false]) {
        const got = await checkAll(new CsrChecker({ inline, ecdsa }), csrs);
        csrs.forEach((_, i) => assertSameCheck(got[i]!, reference[i]!, `inline ${inline}, CSR ${i}`));
      }
    }
  });

  test('500 CSRs with forgeries at random places: exactly the forgeries are refused, in two batches at once', async () => {
    const keys = Array.from({ length: 50 }, p256);
    const csrs = Array.from({ length: 500 }, (_, i) => Buffer.from(buildCertificateRequest(keys[i % 50]!, { uris: [WEB] })));
    const forgedAt = new Set(Array.from({ length: 25 }, () => Math.floor(Math.random() * 500)));
    for (const i of forgedAt) csrs[i]![csrs[i]!.length - 4]! ^= 0x10;
    const checker = new CsrChecker({ inline: false });
    const [a, b] = await Promise.all([checkAll(checker, csrs), checkAll(checker, [...csrs].reverse())]);
    a.forEach((c, i) => assert.equal(c.ok, !forgedAt.has(i), `CSR ${i}`));
    b.reverse().forEach((c, i) => assert.equal(c.ok, !forgedAt.has(i), `reversed, CSR ${i}`));
  });
});

describe('ServerCa.signX509SvidBatch', () => {
  test('a mixed batch: every result is what signX509Svid gives for the same request, with and without the addon', async () => {
    for (const extra of [{}, { csrVerification: 'inline' as const }, { csrEcdsaVerifier: null }]) {
      const ca = await openCa(extra);
      const reqs = mixedRequests();
      const batch = await ca.signX509SvidBatch(reqs);
      const singles = await Promise.allSettled(reqs.map((r) => ca.signX509Svid(r)));
      assert.equal(batch.length, reqs.length);
      reqs.forEach((_, i) => assertSameSigning(batch[i]!, singles[i]!, `${JSON.stringify(extra)}: request ${i}`));
      for (const r of batch) if (r.status === 'fulfilled') verifyX509Svid(r.value.certificates, ca.bundle(), { time: new Date(T0) });
      assert.equal(batch.filter((r) => r.status === 'fulfilled').length, 3 * GOOD_PER_GROUP + 1, 'the good CSRs and the public key');
      assert.deepEqual(await ca.signX509SvidBatch([]), []);
      await assert.rejects(ca.signX509SvidBatch('x' as unknown as X509SvidRequest[]), /an array of X509-SVID requests is required/);
    }
  });
});

/**
 * The verification caches (src/internal/x509/verify-cache.ts) must never
 * change a verdict: every test warms the caches with a successful
 * verification, then checks that what must fail still fails, with the same
 * reason as an uncached verification of fresh certificates.
 */
import { describe, test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { TestCa, X509_SVID_DEFECTS } from '../../src/testing/index.js';
import { generateKey } from '../../src/testing/keys.js';
import { verifyX509Svid, type VerifiedX509Svid } from '../../src/svid/index.js';
import { verifyParsed } from '../../src/svid/x509-verify.js';
import { X509Bundle, X509BundleSet, type X509BundleSource } from '../../src/bundle/index.js';
import { isSpiffeError } from '../../src/errors/index.js';
import { Certificate, KeyUsage } from '../../src/internal/x509/certificate.js';
import { basicConstraintsExt, buildCertificate, encodeName, keyUsageExt, nameConstraintsExt, subjectAltNameExt } from '../../src/internal/x509/builder.js';
import { LruCache } from '../../src/internal/lru-cache.js';
import { clearVerifyCaches, parseCertificateCached, verifyCacheStats } from '../../src/internal/x509/verify-cache.js';

const now = new Date('2026-06-01T12:00:00Z');
const at = (seconds: number): Date => new Date(now.getTime() + seconds * 1000);
const ca = new TestCa({ trustDomain: 'example.org', now: () => now });
const bundle = ca.x509Bundle();
/** Valid from now-60 s to now+600 s. */
const inter = ca.createIntermediate({ ttlSeconds: 600 });
const ID = 'spiffe://example.org/web';
/** Valid from now-1 h to now+2 h: outlives the intermediate on both sides. */
const leafOptions = { notBefore: at(-3600), notAfter: at(7200) };
const [leafDer, interDer] = inter.createX509Svid(ID, leafOptions).certificates as [Buffer, Buffer];

/** The outcome of `fn`: `'ok'` and the chains found, or `code: message`. */
function outcome(fn: () => VerifiedX509Svid): { verdict: string; chains?: string[][] } {
  try {
    const r = fn();
    return { verdict: 'ok', chains: r.verifiedChains.map((c) => c.map((d) => d.toString('hex'))) };
  } catch (e) {
    assert.ok(isSpiffeError(e), `expected a typed error, got ${String(e)}`);
    return { verdict: `${e.code}: ${e.message}` };
  }
}

/**
 * Cached verification, twice (so the second runs with whatever the first
 * cached), each asserted equal, chains included, to an uncached verification
 * of freshly parsed certificates. Returns the verdict.
 */
function verify(chain: readonly Uint8Array[], source: X509BundleSource, time: Date): string {
  const fresh = outcome(() => verifyParsed(chain.map((d) => new Certificate(d)), source, { time }));
  for (const run of ['first', 'second']) {
    const cached = outcome(() => verifyX509Svid(chain, source, { time }));
    assert.deepEqual(cached, fresh, `the ${run} cached verification disagrees with an uncached one`);
  }
  return fresh.verdict;
}

/** A CA certificate named like `like` (same subject and issuer) but with a new key, signed by `signer` (default: itself). */
function impostor(like: Buffer, signer?: TestCa): Buffer {
  const c = new Certificate(like);
  const key = generateKey('ec-p256');
  return buildCertificate({
    issuer: c.issuerRaw,
    subject: c.subjectRaw,
    notBefore: c.notBefore,
    notAfter: c.notAfter,
    publicKey: createPublicKey(key),
    signingKey: signer?.key ?? key,
    extensions: [basicConstraintsExt(true), keyUsageExt(KeyUsage.keyCertSign), subjectAltNameExt({ uris: ['spiffe://example.org'] })],
  });
}

/** Flips one bit of a copy of `der` at `index` (negative: from the end). */
function flip(der: Buffer, index: number): Buffer {
  const copy = Buffer.from(der);
  const i = index < 0 ? copy.length + index : index;
  copy[i]! ^= 0x01;
  return copy;
}

/** Warms both caches and checks they were hit. */
function warm(): void {
  assert.equal(verify([leafDer, interDer], bundle, now), 'ok');
  const before = verifyCacheStats();
  assert.equal(verifyX509Svid([leafDer, interDer], bundle, { time: now }).id.toString(), ID);
  const after = verifyCacheStats();
  // Only CA certificates are cached: the leaf is parsed and checked every time.
  assert.equal(after.certificateHits, before.certificateHits + 1, 'the intermediate should come from the certificate cache');
  assert.equal(after.signatureHits, before.signatureHits + 1, "the intermediate's signature check should come from the signature cache");
}

describe('X509-SVID verification caches never change a verdict', () => {
  beforeEach(() => clearVerifyCaches());

  test('a cached intermediate is still checked for validity at every verification time', () => {
    warm();
    assert.match(verify([leafDer, interDer], bundle, at(1200)), /^ERR_X509SVID_UNTRUSTED: .*intermediate certificate has expired/);
    assert.match(verify([leafDer, interDer], bundle, at(-120)), /^ERR_X509SVID_UNTRUSTED: .*intermediate certificate is not yet valid/);
    assert.match(verify([leafDer, interDer], bundle, at(7300)), /^ERR_X509SVID_UNTRUSTED: .*leaf certificate has expired/);
    assert.match(verify([leafDer, interDer], bundle, at(-7200)), /^ERR_X509SVID_UNTRUSTED: .*leaf certificate is not yet valid/);
    // Failures are not remembered either.
    assert.equal(verify([leafDer, interDer], bundle, now), 'ok');
  });

  test('a cached signature check does not vouch for an issuer with the same name but another key', () => {
    warm();
    // A root named like the real one: the intermediate's cached check must not carry over.
    const fakeRoot = new X509Bundle(ca.trustDomain, [impostor(ca.certificate)]);
    assert.match(verify([leafDer, interDer], fakeRoot, now), /^ERR_X509SVID_UNTRUSTED: .*certificate signed by unknown authority: signature does not verify/);
    // An intermediate named like the real one and validly signed by the root: the leaf's cached check must not carry over.
    const fakeInter = impostor(interDer, ca);
    assert.match(verify([leafDer, fakeInter], bundle, now), /^ERR_X509SVID_UNTRUSTED: .*intermediate does not sign its child: signature does not verify/);
    // With both sent, only the real intermediate makes a chain.
    const r = verifyX509Svid([leafDer, fakeInter, interDer], bundle, { time: now });
    assert.equal(r.verifiedChains.length, 1);
    assert.ok(r.verifiedChains[0]![1]!.equals(interDer));
  });

  test("a hit needs the issuer's key itself, not only its SPKI bytes, to be the one verified before", () => {
    warm();
    // A root whose key was read before its bytes were overwritten with the real root's SPKI: its bytes
    // now match the cache entry, but the key an uncached check would use is the impostor's.
    const fake = new Certificate(impostor(ca.certificate));
    void fake.publicKey;
    const real = new Certificate(ca.certificate);
    assert.equal(fake.spki.length, real.spki.length);
    real.spki.copy(fake.spki);
    assert.ok(fake.spki.equals(real.spki));
    assert.match(verify([leafDer, interDer], new X509Bundle(ca.trustDomain, [fake]), now), /^ERR_X509SVID_UNTRUSTED: .*signature does not verify/);
  });

  test('a chain is only trusted through the bundle of the leaf trust domain, cached or not', () => {
    warm();
    const other = new TestCa({ trustDomain: 'other.org', now: () => now });
    assert.match(verify([leafDer, interDer], other.x509Bundle(), now), /^ERR_X509SVID_UNTRUSTED: could not get X509 bundle/);
    assert.match(verify([leafDer, interDer], new X509BundleSet(other.x509Bundle(), new X509Bundle(ca.trustDomain, [other.certificate])), now), /^ERR_X509SVID_UNTRUSTED: /);
    assert.match(verify([leafDer, interDer], new X509Bundle(ca.trustDomain, []), now), /^ERR_X509SVID_UNTRUSTED: .*signed by unknown authority/);
  });

  test('a tampered byte in a certificate verified before is rejected', () => {
    warm();
    assert.match(verify([flip(leafDer, -1), interDer], bundle, now), /^ERR_X509SVID_UNTRUSTED: .*intermediate does not sign its child/);
    assert.match(verify([leafDer, flip(interDer, -1)], bundle, now), /^ERR_X509SVID_UNTRUSTED: .*certificate signed by unknown authority/);
    // Inside the to-be-signed part: the leaf's SPIFFE ID, …/web → …/veb (still a valid ID).
    const pos = leafDer.indexOf(Buffer.from('example.org/web'));
    assert.ok(pos > 0);
    const renamed = flip(leafDer, pos + 'example.org/'.length);
    assert.match(verify([renamed, interDer], bundle, now), /^ERR_X509SVID_UNTRUSTED: .*intermediate does not sign its child/);
    assert.equal(verify([leafDer, interDer], bundle, now), 'ok');
  });

  test("changing the caller's buffers or the returned chains afterwards does not reach the cache", () => {
    const leaf = Buffer.from(leafDer);
    const r = verifyX509Svid([leaf, interDer], bundle, { time: now });
    for (const der of r.verifiedChains.flat()) {
      assert.notEqual(der, leaf);
      assert.notEqual(der, interDer);
      der.fill(0);
    }
    assert.equal(verify([leafDer, interDer], bundle, now), 'ok');
    leaf[leaf.length - 1]! ^= 0x01;
    assert.match(verify([leaf, interDer], bundle, now), /^ERR_X509SVID_UNTRUSTED: /);
    leaf[leaf.length - 1]! ^= 0x01;
    assert.equal(verify([leaf, interDer], bundle, now), 'ok');
    const interBuf = Buffer.from(interDer);
    assert.equal(verify([leafDer, interBuf], bundle, now), 'ok');
    interBuf[interBuf.length - 1]! ^= 0x01;
    assert.match(verify([leafDer, interBuf], bundle, now), /^ERR_X509SVID_UNTRUSTED: .*certificate signed by unknown authority/);
    interBuf[interBuf.length - 1]! ^= 0x01;
    assert.equal(verify([leafDer, interBuf], bundle, now), 'ok');
  });

  test('leaves are not cached', () => {
    assert.notEqual(parseCertificateCached(leafDer), parseCertificateCached(leafDer));
    assert.equal(verifyCacheStats().certificates, 0);
  });

  test('cached certificates are private copies and frozen', () => {
    const der = Buffer.from(interDer);
    const c = parseCertificateCached(der);
    assert.notEqual(c.der, der);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.subjectAltNames.uris) && Object.isFrozen(c.extensions) && Object.isFrozen(c.basicConstraints));
    der.fill(0);
    assert.ok(c.der.equals(interDer));
    assert.equal(parseCertificateCached(interDer), c);
    assert.throws(() => parseCertificateCached(der), (e: unknown) => isSpiffeError(e, 'ERR_CERTIFICATE_INVALID'));
  });

  test('an intermediate sent twice gives the same chains as without the cache', () => {
    for (let i = 0; i < 2; i++) {
      assert.equal(verify([leafDer, interDer, interDer], bundle, now), 'ok');
      assert.equal(verifyX509Svid([leafDer, interDer, interDer], bundle, { time: now }).verifiedChains.length, 2);
    }
    // The leaf sent again as an extra certificate is simply not an issuer of anything.
    assert.equal(verify([leafDer, leafDer, interDer], bundle, now), 'ok');
  });

  test('a self-issued CA sent twice gives the same chains as without the cache', () => {
    // X is self-issued and self-signed with the key of a bundle root of the same name, so it can follow itself.
    const name = encodeName([{ oid: '2.5.4.10', value: 'self' }]);
    const k = generateKey('ec-p256');
    const validity = { notBefore: at(-60), notAfter: at(3600) };
    const ca2 = (): Buffer => buildCertificate({ issuer: name, subject: name, ...validity, publicKey: createPublicKey(k), signingKey: k, extensions: [basicConstraintsExt(true), keyUsageExt(KeyUsage.keyCertSign)] });
    const x = ca2();
    const leaf = buildCertificate({ issuer: name, subject: encodeName([{ oid: '2.5.4.10', value: 'leaf' }]), ...validity, publicKey: createPublicKey(generateKey('ec-p256')), signingKey: k,
      extensions: [basicConstraintsExt(false), keyUsageExt(KeyUsage.digitalSignature, true), subjectAltNameExt({ uris: ['spiffe://example.org/x'] })] });
    const roots = new X509Bundle(ca.trustDomain, [ca2()]);
    assert.equal(verify([leaf, x, x], roots, now), 'ok');
    assert.equal(verifyX509Svid([leaf, x, x], roots, { time: now }).verifiedChains.length, 5);
  });

  test('every spec §2 defect gets the same verdict, cold and warm, as without the cache', () => {
    for (const defect of X509_SVID_DEFECTS) {
      const f = ca.createBrokenX509Svid(defect);
      const set = new X509BundleSet(ca.x509Bundle());
      for (const b of f.extraBundles) set.add(b);
      const cold = verify(f.certificates, set, now);
      assert.equal(verify(f.certificates, set, now), cold, defect);
    }
  });

  test('cached signature checks count against the 100-check limit', () => {
    // A leaf and 6 self-issued CAs sharing one name and key, so that each signs every other (see robustness tests).
    const name = encodeName([{ oid: '2.5.4.10', value: 'loop' }]);
    const signer = generateKey('ec-p256');
    const validity = { notBefore: at(-60), notAfter: at(3600) };
    const loops = Array.from({ length: 6 }, () =>
      buildCertificate({ issuer: name, subject: name, ...validity, publicKey: createPublicKey(signer), signingKey: signer, extensions: [basicConstraintsExt(true), keyUsageExt(KeyUsage.keyCertSign)] }));
    const leaf = buildCertificate({ issuer: name, subject: encodeName([{ oid: '2.5.4.10', value: 'leaf' }]), ...validity, publicKey: createPublicKey(generateKey('ec-p256')), signingKey: signer,
      extensions: [basicConstraintsExt(false), keyUsageExt(KeyUsage.digitalSignature), subjectAltNameExt({ uris: ['spiffe://example.org/x'] })] });
    // 20 bundle roots with that name and key too, whose name constraints exclude the leaf: every root
    // signature check succeeds (and is cached), so only counting cached checks stops the search at 100.
    const roots = Array.from({ length: 20 }, () =>
      buildCertificate({ issuer: name, subject: name, ...validity, publicKey: createPublicKey(signer), signingKey: signer,
        extensions: [basicConstraintsExt(true), keyUsageExt(KeyUsage.keyCertSign), nameConstraintsExt({ permittedUris: [], excludedUris: ['example.org'] })] }));
    const rootBundle = new X509Bundle(ca.trustDomain, roots);
    const cold = verify([leaf, ...loops], rootBundle, now);
    assert.match(cold, /^ERR_X509SVID_UNTRUSTED: .*too many signature checks/);
    const before = verifyCacheStats().signatureHits;
    assert.equal(verify([leaf, ...loops], rootBundle, now), cold);
    assert.ok(verifyCacheStats().signatureHits > before, 'the warm run should have used the signature cache');
    // Without the roots the search stops at 1000 partial chains instead, warm or cold.
    const noRoot = verify([leaf, ...loops], bundle, now);
    assert.match(noRoot, /too many candidate chains/);
    assert.equal(verify([leaf, ...loops], bundle, now), noRoot);
  });

  test('the caches stay bounded and correct when filled past their bound', () => {
    const { maxEntries } = verifyCacheStats();
    const chains = Array.from({ length: maxEntries + 44 }, () => ca.createIntermediate({ ttlSeconds: 600 }).createX509Svid(ID, leafOptions).certificates as [Buffer, Buffer]);
    for (const c of chains) assert.equal(verifyX509Svid(c, bundle, { time: now }).id.toString(), ID);
    const s = verifyCacheStats();
    assert.equal(s.certificates, maxEntries);
    assert.equal(s.signatures, maxEntries);
    // Evicted (the first) and cached (the last) entries alike.
    for (const [l, i] of [chains[0]!, chains[1]!, chains[chains.length - 1]!]) {
      assert.equal(verify([l, i], bundle, now), 'ok');
      assert.match(verify([l, i], bundle, at(1200)), /intermediate certificate has expired/);
      assert.match(verify([l, i], bundle, at(-120)), /intermediate certificate is not yet valid/);
      assert.match(verify([flip(l, -1), i], bundle, now), /intermediate does not sign its child/);
      assert.match(verify([l, flip(i, -1)], bundle, now), /certificate signed by unknown authority/);
      assert.match(verify([l, i], new X509Bundle(ca.trustDomain, [impostor(ca.certificate)]), now), /certificate signed by unknown authority/);
      assert.match(verify([l, impostor(i, ca)], bundle, now), /intermediate does not sign its child/);
    }
    assert.match(verify([chains[0]![0], chains[1]![1]], bundle, now), /certificate signed by unknown authority/);
  });
});

describe('LruCache', () => {
  test('evicts the least recently used entry', () => {
    const c = new LruCache<string, number>(2);
    c.set('a', 1);
    c.set('b', 2);
    assert.equal(c.get('a'), 1);
    c.set('c', 3);
    assert.equal(c.size, 2);
    assert.equal(c.get('b'), undefined);
    assert.equal(c.get('a'), 1);
    assert.equal(c.get('c'), 3);
    c.set('a', 4);
    c.set('d', 5);
    assert.equal(c.get('c'), undefined);
    assert.equal(c.get('a'), 4);
    assert.throws(() => new LruCache(0), RangeError);
  });
});

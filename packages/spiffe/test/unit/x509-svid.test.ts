import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { TestCa, X509_SVID_DEFECTS, type X509SvidDefect, type TestKeyType } from '../../src/testing/index.js';
import { X509Svid, verifyX509Svid } from '../../src/svid/index.js';
import { X509Bundle, X509BundleSet } from '../../src/bundle/index.js';
import { SpiffeId } from '../../src/id/index.js';
import { isSpiffeError, X509SvidError } from '../../src/errors/index.js';
import { KeyUsage } from '../../src/internal/x509/certificate.js';

const now = new Date('2026-06-01T12:00:00Z');
const clock = (): Date => now;
const ca = new TestCa({ trustDomain: 'example.org', now: clock });

/**
 * Expected outcome of every spec §2 defect, for parse-with-key (what the
 * Workload API client does to every SVID) and for chain verification (what a
 * TLS peer does). `null` = accepted.
 */
const EXPECTED: Record<X509SvidDefect, { parse: RegExp | null; verify: RegExp | null }> = {
  'leaf-ca-true': { parse: /^leaf certificate must not have CA flag set to true$/, verify: /^leaf certificate must not have CA flag set to true$/ },
  'leaf-key-cert-sign': { parse: /must not have 'keyCertSign' set as key usage/, verify: /must not have 'keyCertSign' set as key usage/ },
  'leaf-crl-sign': { parse: /must not have 'cRLSign' set as key usage/, verify: /must not have 'cRLSign' set as key usage/ },
  'leaf-no-digital-signature': { parse: /must have 'digitalSignature' set as key usage/, verify: /must have 'digitalSignature' set as key usage/ },
  'leaf-no-key-usage': { parse: /must have a key usage extension/, verify: /must have a key usage extension/ },
  'leaf-key-usage-not-critical': { parse: /key usage extension must be critical/, verify: /key usage extension must be critical/ },
  'no-uri-san': { parse: /^certificate contains no URI SAN$/, verify: /^certificate contains no URI SAN$/ },
  'two-uri-sans': { parse: /^certificate contains more than one URI SAN$/, verify: /^certificate contains more than one URI SAN$/ },
  'https-uri': { parse: /scheme is missing or invalid/, verify: /scheme is missing or invalid/ },
  'uppercase-trust-domain': { parse: /trust domain characters are limited/, verify: /trust domain characters are limited/ },
  'root-path-id': { parse: /must have a non-root path/, verify: /must have a non-root path/ },
  expired: { parse: null, verify: /leaf certificate has expired/ },
  'not-yet-valid': { parse: null, verify: /leaf certificate is not yet valid/ },
  'signed-by-other-trust-domain': { parse: null, verify: /certificate signed by unknown authority/ },
  'unknown-trust-domain': { parse: null, verify: /no X.509 bundle found for trust domain "unknown-example.org"/ },
  'intermediate-not-sent': { parse: null, verify: /certificate signed by unknown authority/ },
  'intermediate-ca-false': { parse: /signing certificate must have CA flag set to true/, verify: /intermediate certificate is not a CA/ },
  'intermediate-no-key-cert-sign': { parse: /signing certificate must have 'keyCertSign'/, verify: /intermediate certificate must have 'keyCertSign'/ },
  'root-pathlen-zero-with-intermediate': { parse: null, verify: /path length constraint \(0\) exceeded/ },
  'name-constraint-excludes-trust-domain': { parse: null, verify: /is excluded by a name constraint/ },
  'peer-presents-ca': { parse: /must have a non-root path/, verify: /must have a non-root path/ },
  'key-mismatch': { parse: /^private key does not match certificate public key$/, verify: null },
  'unknown-critical-extension': { parse: null, verify: /unhandled critical extension 1\.3\.6\.1\.4\.1\.99999\.1/ },
};

function outcome(fn: () => unknown): Error | null {
  try {
    fn();
    return null;
  } catch (e) {
    return e as Error;
  }
}

describe('X509-SVID edge cases of spec §2, minted by the test CA', () => {
  for (const defect of X509_SVID_DEFECTS) {
    test(defect, () => {
      const f = ca.createBrokenX509Svid(defect);
      // The defect's own bundle (if any) replaces the CA's bundle for its trust domain; the others are trusted too.
      const set = new X509BundleSet(ca.x509Bundle());
      for (const b of f.extraBundles) set.add(b);
      const exp = EXPECTED[defect];
      const p = outcome(() => X509Svid.fromParts(f.certificates, f.privateKey));
      const v = outcome(() => verifyX509Svid(f.certificates, set, { time: now }));
      if (exp.parse === null) assert.equal(p, null, `parse should accept: ${p?.message}`);
      else {
        assert.ok(p instanceof X509SvidError, `parse should reject with X509SvidError, got ${String(p)}`);
        assert.equal(p.code, 'ERR_X509SVID_INVALID');
        assert.match(p.message, exp.parse);
      }
      if (exp.verify === null) assert.equal(v, null, `verify should accept: ${v?.message}`);
      else {
        assert.ok(isSpiffeError(v), `verify should reject with a typed error, got ${String(v)}`);
        assert.match(v.message, exp.verify);
      }
    });
  }

  test('every defect has an expectation', () => {
    assert.deepEqual(Object.keys(EXPECTED).sort(), [...X509_SVID_DEFECTS].sort());
  });
});

describe('valid X509-SVIDs', () => {
  for (const keyType of ['ec-p256', 'ec-p384', 'rsa-2048', 'ed25519'] as TestKeyType[]) {
    test(`${keyType} leaf under an ${keyType} CA parses and verifies`, () => {
      const c = new TestCa({ trustDomain: 'example.org', keyType, now: clock });
      const svid = c.createX509Svid('spiffe://example.org/web', { keyType });
      assert.equal(svid.id.toString(), 'spiffe://example.org/web');
      const r = verifyX509Svid(svid.certificates, c.x509Bundle(), { time: now });
      assert.equal(r.id.toString(), 'spiffe://example.org/web');
      assert.equal(r.verifiedChains.length, 1);
      assert.equal(r.verifiedChains[0]!.length, 2);
      assert.ok(r.verifiedChains[0]![1]!.equals(c.certificate));
    });
  }

  test('two intermediates: chain is leaf → i2 → i1 → root and OpenSSL agrees', () => {
    const i1 = ca.createIntermediate();
    const i2 = i1.createIntermediate();
    const svid = i2.createX509Svid('spiffe://example.org/deep');
    assert.equal(svid.certificates.length, 3);
    const r = verifyX509Svid(svid.certificates, ca.x509Bundle(), { time: now });
    assert.equal(r.verifiedChains[0]!.length, 4);
    // Independent check of each signature with OpenSSL through node:crypto.
    const chain = r.verifiedChains[0]!.map((d) => new X509Certificate(d));
    for (let i = 0; i < chain.length - 1; i++) assert.ok(chain[i]!.verify(chain[i + 1]!.publicKey), `link ${i}`);
  });

  test('intermediates sent out of order are still chained', () => {
    const i1 = ca.createIntermediate();
    const i2 = i1.createIntermediate();
    const svid = i2.createX509Svid('spiffe://example.org/deep');
    const [leaf, a, b] = svid.certificates;
    assert.equal(verifyX509Svid([leaf!, b!, a!], ca.x509Bundle(), { time: now }).id.toString(), 'spiffe://example.org/deep');
  });

  test('path length constraint 1 allows exactly one intermediate', () => {
    const root = new TestCa({ trustDomain: 'example.org', pathLen: 1, now: clock });
    const one = root.createIntermediate().createX509Svid('spiffe://example.org/a');
    assert.ok(verifyX509Svid(one.certificates, root.x509Bundle(), { time: now }));
    const two = root.createIntermediate().createIntermediate().createX509Svid('spiffe://example.org/a');
    assert.throws(() => verifyX509Svid(two.certificates, root.x509Bundle(), { time: now }), /path length constraint \(1\) exceeded/);
  });

  test('a URI name constraint permitting the trust domain accepts; permitting another rejects', () => {
    const ok = new TestCa({ trustDomain: 'example.org', permittedUris: ['example.org'], now: clock });
    assert.ok(verifyX509Svid(ok.createX509Svid('spiffe://example.org/a').certificates, ok.x509Bundle(), { time: now }));
    const dotted = new TestCa({ trustDomain: 'example.org', permittedUris: ['.org'], now: clock });
    assert.ok(verifyX509Svid(dotted.createX509Svid('spiffe://example.org/a').certificates, dotted.x509Bundle(), { time: now }));
    const other = new TestCa({ trustDomain: 'example.org', permittedUris: ['other.org'], now: clock });
    assert.throws(() => verifyX509Svid(other.createX509Svid('spiffe://example.org/a').certificates, other.x509Bundle(), { time: now }), /not permitted by a name constraint/);
  });

  test('validity is checked at the injected time, for the leaf and the CA', () => {
    const svid = ca.createX509Svid('spiffe://example.org/t', { ttlSeconds: 60 });
    assert.ok(verifyX509Svid(svid.certificates, ca.x509Bundle(), { time: new Date(now.getTime() + 59_000) }));
    assert.throws(() => verifyX509Svid(svid.certificates, ca.x509Bundle(), { time: new Date(now.getTime() + 61_000) }), /leaf certificate has expired/);
    const shortCa = new TestCa({ trustDomain: 'example.org', ttlSeconds: 30, now: clock });
    const s2 = shortCa.createX509Svid('spiffe://example.org/t', { ttlSeconds: 3600 });
    assert.throws(() => verifyX509Svid(s2.certificates, shortCa.x509Bundle(), { time: new Date(now.getTime() + 120_000) }), /root certificate has expired/);
  });

  test('a bundle that trusts many roots still uses only the leaf trust domain\'s', () => {
    const a = new TestCa({ trustDomain: 'a.org', now: clock });
    const b = new TestCa({ trustDomain: 'b.org', now: clock });
    // b's root is placed in the bundle *for a.org*: now it signs a.org IDs legitimately.
    const mixed = new X509Bundle(a.trustDomain, [a.certificate, b.certificate]);
    assert.ok(verifyX509Svid(b.createX509Svid('spiffe://a.org/x').certificates, mixed, { time: now }));
    // but a.org's bundle never vouches for b.org IDs.
    assert.throws(() => verifyX509Svid(a.createX509Svid('spiffe://b.org/x').certificates, new X509BundleSet(a.x509Bundle(), new X509Bundle(b.trustDomain, [])), { time: now }), /signed by unknown authority/);
  });

  test('PEM and Workload API (DER) forms round-trip', () => {
    const svid = ca.createIntermediate().createX509Svid('spiffe://example.org/rt');
    const pem = svid.marshal();
    const fromPem = X509Svid.parse(pem.certificates, pem.privateKey);
    assert.equal(fromPem.id.toString(), svid.id.toString());
    assert.deepEqual(fromPem.certificates, svid.certificates);
    const raw = svid.marshalRaw();
    const fromRaw = X509Svid.parseRaw(raw.certificates, raw.privateKey, 'internal');
    assert.deepEqual(fromRaw.certificates, svid.certificates);
    assert.equal(fromRaw.hint, 'internal');
    assert.equal(fromRaw.expiresAt.getTime(), svid.expiresAt.getTime());
  });

  test('issued leaves carry what spec §2 and the test CA promise', () => {
    const svid = ca.createX509Svid('spiffe://example.org/check');
    const leaf = svid.parsedCertificates()[0]!;
    assert.equal(leaf.isCa, false);
    assert.equal(leaf.keyUsage?.critical, true);
    assert.ok(leaf.hasKeyUsage(KeyUsage.digitalSignature));
    assert.deepEqual(leaf.extKeyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.deepEqual(leaf.subjectAltNames.uris, ['spiffe://example.org/check']);
    assert.equal(leaf.serial.length <= 20 && leaf.serial.length >= 15, true, 'random 128-bit serial');
    // OpenSSL reads the same SAN and serial.
    const x = new X509Certificate(svid.certificates[0]!);
    assert.equal(x.subjectAltName, 'URI:spiffe://example.org/check');
    assert.equal(BigInt('0x' + x.serialNumber), BigInt('0x' + leaf.serialHex));
  });

  test('CA subjects are unique (serial in the Subject)', () => {
    const a = new TestCa({ trustDomain: 'example.org' });
    const b = new TestCa({ trustDomain: 'example.org' });
    assert.notEqual(new X509Certificate(a.certificate).subject, new X509Certificate(b.certificate).subject);
  });
});

describe('X509-SVID input errors', () => {
  test('garbage PEM, no certificates, non-certificate block, bad key', () => {
    const svid = ca.createX509Svid('spiffe://example.org/x').marshal();
    const cases: [() => unknown, RegExp][] = [
      [() => X509Svid.parse('', svid.privateKey), /no certificates found/],
      [() => X509Svid.parse('-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n', svid.privateKey), /not valid base64/],
      [() => X509Svid.parse(svid.privateKey, svid.privateKey), /non-CERTIFICATE PEM block/],
      [() => X509Svid.parse(svid.certificates, 'not a key'), /cannot parse private key/],
      [() => X509Svid.parseRaw(Buffer.from([0x30, 0x82, 0xff]), Buffer.alloc(3)), /cannot parse certificate/],
      [() => X509Svid.parseRaw(Buffer.alloc(0), Buffer.alloc(3)), /no certificates found/],
    ];
    for (const [fn, re] of cases) {
      const e = outcome(fn);
      assert.ok(e instanceof X509SvidError, String(e));
      assert.equal(e.code, 'ERR_X509SVID_INVALID');
      assert.match(e.message, re);
    }
  });

  test('verification of an empty chain or garbage is a typed error', () => {
    assert.throws(() => verifyX509Svid([], ca.x509Bundle()), (e: unknown) => isSpiffeError(e, 'ERR_X509SVID_INVALID'));
    assert.throws(() => verifyX509Svid([Buffer.from('hello')], ca.x509Bundle()), (e: unknown) => isSpiffeError(e, 'ERR_X509SVID_INVALID'));
  });

  test('IDs are parsed strictly from the URI SAN', () => {
    const svid = ca.createX509Svid(SpiffeId.fromSegments('example.org', 'ns', 'backend', 'sa', 'default'));
    assert.equal(svid.id.path, '/ns/backend/sa/default');
  });
});

import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCa, generateKey } from '../../src/testing/index.js';
import { TrustDomain } from '../../src/id/index.js';
import { JwtBundle, SpiffeBundle, X509Bundle } from '../../src/bundle/index.js';
import { exportPublicJwk } from '../../src/bundle/jwk.js';
import { Certificate } from '../../src/internal/x509/certificate.js';

const td = TrustDomain.parse('example.org');
const other = TrustDomain.parse('other.org');
const ca = new TestCa({ trustDomain: td });
const ca2 = new TestCa({ trustDomain: td });
const rsaCa = new TestCa({ trustDomain: td, keyType: 'rsa-2048' });
const edCa = new TestCa({ trustDomain: td, keyType: 'ed25519' });
const rsaJwtKey = createPublicKey(generateKey('rsa-2048'));
const leaf = ca.createX509Svid('spiffe://example.org/workload').certificates[0]!;
const dir = mkdtempSync(join(tmpdir(), 'spiffe-bundle-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const invalid = (message?: RegExp) => ({ name: 'BundleError', code: 'ERR_BUNDLE_INVALID', ...(message ? { message } : {}) });

/** A well-formed x509-svid JWK for `der`, as go-spiffe emits it. */
function x509Key(der: Buffer): Record<string, unknown> {
  return { ...exportPublicJwk(new Certificate(der).publicKey), use: 'x509-svid', x5c: [der.toString('base64')] };
}

/** A well-formed jwt-svid JWK. */
function jwtKey(kid = ca.jwtKeyId): Record<string, unknown> {
  return { ...exportPublicJwk(ca.jwtKey), kid, use: 'jwt-svid' };
}

function parseKeys(...keys: unknown[]): SpiffeBundle {
  return SpiffeBundle.parse(td, JSON.stringify({ keys }));
}

function full(): SpiffeBundle {
  return new SpiffeBundle(td, {
    x509Authorities: [ca.certificate, rsaCa.certificate],
    jwtAuthorities: [[ca.jwtKeyId, createPublicKey(ca.jwtKey)], ['rsa', rsaJwtKey]],
    sequenceNumber: 7,
    refreshHintSeconds: 300,
  });
}

describe('SpiffeBundle marshal', () => {
  test('emits the §4 document shape with full key parameters matching x5c', () => {
    const doc = JSON.parse(full().marshal()) as { keys: Record<string, unknown>[]; spiffe_sequence: number; spiffe_refresh_hint: number };
    assert.deepEqual(Object.keys(doc), ['keys', 'spiffe_sequence', 'spiffe_refresh_hint']);
    assert.equal(doc.spiffe_sequence, 7);
    assert.equal(doc.spiffe_refresh_hint, 300);
    assert.equal(doc.keys.length, 4);
    const [ec, rsa, jwt] = doc.keys;
    assert.deepEqual(Object.keys(ec!), ['kty', 'crv', 'x', 'y', 'use', 'x5c']);
    assert.deepEqual(ec, x509Key(ca.certificate));
    assert.deepEqual(Object.keys(rsa!), ['kty', 'n', 'e', 'use', 'x5c']);
    assert.deepEqual(rsa!['x5c'], [rsaCa.certificate.toString('base64')]);
    assert.deepEqual(jwt, jwtKey());
  });

  test('omits absent sequence number and refresh hint', () => {
    assert.equal(new SpiffeBundle(td).marshal(), '{"keys":[]}');
  });

  test('marshal → parse round trips exactly (EC, RSA, Ed25519)', () => {
    const b = full();
    b.addX509Authority(edCa.certificate);
    const json = b.marshal();
    const parsed = SpiffeBundle.parse(td, json);
    assert.ok(parsed.equals(b));
    assert.equal(parsed.marshal(), json);
    assert.deepEqual(parsed.x509Authorities(), [ca.certificate, rsaCa.certificate, edCa.certificate]);
    assert.deepEqual([...parsed.jwtAuthorities().keys()], [ca.jwtKeyId, 'rsa']);
    assert.equal(parsed.sequenceNumber, 7);
    assert.equal(parsed.refreshHintSeconds, 300);
  });

  test('parses bytes the same as text', () => {
    assert.ok(SpiffeBundle.parse(td, Buffer.from(full().marshal())).equals(full()));
  });
});

describe('SpiffeBundle parse: document', () => {
  test('empty keys is legal and trusts nothing', () => {
    const b = SpiffeBundle.parse(td, '{"keys":[]}');
    assert.ok(b.isEmpty());
    assert.equal(b.sequenceNumber, undefined);
    assert.equal(b.refreshHintSeconds, undefined);
  });

  test('missing or non-array keys is rejected', () => {
    assert.throws(() => SpiffeBundle.parse(td, '{}'), invalid(/"keys" is missing/));
    assert.throws(() => SpiffeBundle.parse(td, '{"keys":null}'), invalid(/"keys" is missing/));
    assert.throws(() => SpiffeBundle.parse(td, '{"keys":{}}'), invalid(/not an array/));
  });

  test('garbage is rejected', () => {
    assert.throws(() => SpiffeBundle.parse(td, 'garbage'), invalid(/invalid JSON/));
    assert.throws(() => SpiffeBundle.parse(td, '[]'), invalid(/not a JSON object/));
    assert.throws(() => SpiffeBundle.parse(td, 'null'), invalid(/not a JSON object/));
    assert.throws(() => parseKeys('k'), invalid(/key 0: not a JSON object/));
  });

  test('valid sequence numbers and refresh hints are kept', () => {
    const b = SpiffeBundle.parse(td, '{"keys":[],"spiffe_sequence":0,"spiffe_refresh_hint":0}');
    assert.equal(b.sequenceNumber, 0);
    assert.equal(b.refreshHintSeconds, 0);
    const max = SpiffeBundle.parse(td, `{"keys":[],"spiffe_sequence":${Number.MAX_SAFE_INTEGER}}`);
    assert.equal(max.sequenceNumber, Number.MAX_SAFE_INTEGER);
  });

  for (const bad of ['-1', '1.5', '"1"', 'null', 'true', '9007199254740992', '1e400', '{}']) {
    test(`spiffe_sequence ${bad} is rejected`, () => {
      assert.throws(() => SpiffeBundle.parse(td, `{"keys":[],"spiffe_sequence":${bad}}`), invalid(/"spiffe_sequence" must be a non-negative integer/));
    });
    test(`spiffe_refresh_hint ${bad} is rejected`, () => {
      assert.throws(() => SpiffeBundle.parse(td, `{"keys":[],"spiffe_refresh_hint":${bad}}`), invalid(/"spiffe_refresh_hint" must be a non-negative integer/));
    });
  }
});

describe('SpiffeBundle parse: keys (§4, go-spiffe strictness)', () => {
  test('missing kty is rejected', () => {
    const k = x509Key(ca.certificate);
    delete k['kty'];
    assert.throws(() => parseKeys(jwtKey(), k), invalid(/key 1: missing key type \("kty"\)/));
  });

  test('missing use is rejected', () => {
    const k = jwtKey();
    delete k['use'];
    assert.throws(() => parseKeys(k), invalid(/key 0: missing key use \("use"\)/));
  });

  test('unknown use is ignored, other keys kept', () => {
    const b = parseKeys({ ...jwtKey('enc-key'), use: 'enc' }, x509Key(ca.certificate));
    assert.deepEqual(b.x509Authorities(), [ca.certificate]);
    assert.equal(b.jwtAuthorities().size, 0);
  });

  test('unknown kty rejects the whole set, even with an unknown use', () => {
    assert.throws(() => parseKeys(x509Key(ca.certificate), { kty: 'oct', k: 'AAAA', kid: 'k', use: 'jwt-svid' }), invalid(/key 1: unsupported key type "oct"/));
    assert.throws(() => parseKeys({ kty: 'XYZ', use: 'something-else' }), invalid(/key 0: unsupported key type "XYZ"/));
  });

  test('x509-svid with no x5c is rejected', () => {
    const k = x509Key(ca.certificate);
    delete k['x5c'];
    assert.throws(() => parseKeys(k), invalid(/key 0: .*"x5c"/));
  });

  test('x509-svid with zero certificates is rejected', () => {
    assert.throws(() => parseKeys({ ...x509Key(ca.certificate), x5c: [] }), invalid(/key 0: .*exactly one certificate.*got 0/));
  });

  test('x509-svid with two certificates is rejected', () => {
    const k = x509Key(ca.certificate);
    k['x5c'] = [ca.certificate.toString('base64'), ca2.certificate.toString('base64')];
    assert.throws(() => parseKeys(k), invalid(/key 0: .*exactly one certificate.*got 2/));
  });

  test('x5c that is not standard base64 is rejected', () => {
    const url = ca.certificate.toString('base64url');
    assert.notEqual(url, ca.certificate.toString('base64'));
    assert.throws(() => parseKeys({ ...x509Key(ca.certificate), x5c: [url] }), invalid(/key 0: .*not standard base64/));
    assert.throws(() => parseKeys({ ...x509Key(ca.certificate), x5c: ['not base64!'] }), invalid(/not standard base64/));
    assert.throws(() => parseKeys({ ...x509Key(ca.certificate), x5c: [42] }), invalid(/not standard base64/));
  });

  test('x5c that is base64 but not a certificate is rejected', () => {
    assert.throws(() => parseKeys({ ...x509Key(ca.certificate), x5c: ['AAAA'] }), invalid(/key 0: malformed certificate/));
  });

  test('x5c holding a non-CA certificate is rejected', () => {
    assert.throws(() => parseKeys(x509Key(leaf)), invalid(/key 0: certificate is not a CA certificate/));
  });

  test('key parameters that do not match x5c are rejected', () => {
    const k = { ...x509Key(ca2.certificate), x5c: [ca.certificate.toString('base64')] };
    assert.throws(() => parseKeys(k), invalid(/key 0: key parameters do not match/));
    const wrongType = { ...x509Key(rsaCa.certificate), x5c: [ca.certificate.toString('base64')] };
    assert.throws(() => parseKeys(wrongType), invalid(/key 0: key parameters do not match/));
  });

  test('missing key parameters are rejected', () => {
    const der = ca.certificate.toString('base64');
    assert.throws(() => parseKeys({ kty: 'EC', use: 'x509-svid', x5c: [der] }), invalid(/key 0: x509-svid key parameters are missing/));
    const k = x509Key(ca.certificate);
    delete k['y'];
    assert.throws(() => parseKeys(k), invalid(/key 0: x509-svid key parameters are missing/));
    const r = x509Key(rsaCa.certificate);
    delete r['n'];
    assert.throws(() => parseKeys(r), invalid(/key 0: x509-svid key parameters are missing/));
  });

  test('x509-svid with a kid is rejected', () => {
    assert.throws(() => parseKeys({ ...x509Key(ca.certificate), kid: 'k' }), invalid(/key 0: .*must not have a key ID/));
  });

  test('a repeated x509 authority is kept once', () => {
    assert.equal(parseKeys(x509Key(ca.certificate), x509Key(ca.certificate)).x509Authorities().length, 1);
  });

  test('jwt-svid without kid is rejected', () => {
    const k = jwtKey();
    delete k['kid'];
    assert.throws(() => parseKeys(x509Key(ca.certificate), k), invalid(/key 1: .*key ID \("kid"\)/));
    assert.throws(() => parseKeys(jwtKey('')), invalid(/key 0: .*non-empty key ID/));
  });

  test('duplicate kid is rejected', () => {
    assert.throws(() => parseKeys(jwtKey('a'), jwtKey('b'), jwtKey('a')), invalid(/key 2: duplicate key ID "a"/));
  });

  test('jwt-svid with bad parameters or private material is rejected', () => {
    const k = jwtKey();
    delete k['x'];
    assert.throws(() => parseKeys(k), invalid(/key 0 .*"x" and "y"/));
    const priv = { ...(ca.jwtKey.export({ format: 'jwk' }) as Record<string, unknown>), kid: 'p', use: 'jwt-svid' };
    assert.throws(() => parseKeys(priv), invalid(/private key material/));
  });
});

describe('SpiffeBundle load', () => {
  test('reads a bundle file', () => {
    const p = join(dir, 'bundle.json');
    writeFileSync(p, full().marshal());
    assert.ok(SpiffeBundle.load(td, p).equals(full()));
  });

  test('a missing file is ERR_BUNDLE_INVALID naming the path', () => {
    assert.throws(() => SpiffeBundle.load(td, join(dir, 'absent.json')), invalid(/absent\.json/));
  });
});

describe('SpiffeBundle content', () => {
  test('x509 add/has/remove; add ignores duplicates', () => {
    const b = new SpiffeBundle(td);
    b.addX509Authority(ca.certificate);
    b.addX509Authority(new Certificate(ca.certificate));
    assert.equal(b.x509Authorities().length, 1);
    assert.ok(b.hasX509Authority(ca.certificate));
    assert.ok(!b.hasX509Authority(ca2.certificate));
    b.removeX509Authority(ca.certificate);
    assert.ok(b.isEmpty());
  });

  test('x509 add rejects a non-CA or malformed certificate', () => {
    const b = new SpiffeBundle(td);
    assert.throws(() => b.addX509Authority(leaf), invalid(/not a CA certificate/));
    assert.throws(() => b.addX509Authority(Buffer.from('nope')), invalid(/malformed certificate/));
    assert.ok(b.isEmpty());
  });

  test('jwt add/has/find/remove; private keys reduced to public', () => {
    const b = new SpiffeBundle(td);
    b.addJwtAuthority('k', ca.jwtKey);
    assert.ok(b.hasJwtAuthority('k'));
    assert.equal(b.findJwtAuthority('k')?.type, 'public');
    assert.ok(b.findJwtAuthority('k')?.equals(createPublicKey(ca.jwtKey)));
    assert.throws(() => b.addJwtAuthority('', ca.jwtKey), invalid(/must not be empty/));
    b.removeJwtAuthority('k');
    assert.ok(!b.hasJwtAuthority('k'));
    assert.ok(b.isEmpty());
  });

  test('jwtAuthorities returns a copy', () => {
    const b = full();
    b.jwtAuthorities().clear();
    assert.equal(b.jwtAuthorities().size, 2);
  });

  test('setters validate and clear', () => {
    const b = new SpiffeBundle(td);
    b.setSequenceNumber(3);
    b.setRefreshHintSeconds(60);
    assert.equal(b.sequenceNumber, 3);
    assert.equal(b.refreshHintSeconds, 60);
    assert.equal(b.marshal(), '{"keys":[],"spiffe_sequence":3,"spiffe_refresh_hint":60}');
    for (const bad of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      assert.throws(() => b.setSequenceNumber(bad), invalid(/sequence number must be a non-negative integer/));
      assert.throws(() => b.setRefreshHintSeconds(bad), invalid(/refresh hint must be a non-negative integer/));
    }
    assert.throws(() => b.setSequenceNumber(1n as unknown as number), invalid(/got bigint 1/));
    assert.throws(() => new SpiffeBundle(td, { sequenceNumber: -5 }), invalid());
    assert.equal(b.sequenceNumber, 3);
    b.setSequenceNumber(undefined);
    b.setRefreshHintSeconds(undefined);
    assert.equal(b.marshal(), '{"keys":[]}');
  });

  test('equals compares trust domain, authorities and metadata', () => {
    const a = full();
    assert.ok(a.equals(full()));
    const reordered = new SpiffeBundle(td, { x509Authorities: [rsaCa.certificate, ca.certificate], jwtAuthorities: a.jwtAuthorities(), sequenceNumber: 7, refreshHintSeconds: 300 });
    assert.ok(a.equals(reordered));
    const variants: ((b: SpiffeBundle) => void)[] = [
      (b) => b.setSequenceNumber(8),
      (b) => b.setSequenceNumber(undefined),
      (b) => b.setRefreshHintSeconds(301),
      (b) => b.removeX509Authority(ca.certificate),
      (b) => b.addX509Authority(ca2.certificate),
      (b) => b.removeJwtAuthority('rsa'),
      (b) => b.addJwtAuthority('rsa', ca.jwtKey),
    ];
    for (const change of variants) {
      const c = a.clone();
      change(c);
      assert.ok(!a.equals(c), change.toString());
    }
    assert.ok(!a.equals(SpiffeBundle.parse(other, a.marshal())));
  });

  test('clone is independent', () => {
    const a = full();
    const c = a.clone();
    assert.ok(c.equals(a));
    c.addX509Authority(ca2.certificate);
    c.addJwtAuthority('new', ca.jwtKey);
    c.setSequenceNumber(99);
    assert.equal(a.x509Authorities().length, 2);
    assert.ok(!a.hasJwtAuthority('new'));
    assert.equal(a.sequenceNumber, 7);
  });
});

describe('SpiffeBundle conversions', () => {
  test('fromX509Bundle and x509Bundle', () => {
    const x = new X509Bundle(td, [ca.certificate, rsaCa.certificate]);
    const s = SpiffeBundle.fromX509Bundle(x);
    assert.ok(s.trustDomain.equals(td));
    assert.deepEqual(s.x509Authorities(), x.x509Authorities());
    assert.equal(s.jwtAuthorities().size, 0);
    assert.ok(s.x509Bundle().equals(x));
  });

  test('fromX509Bundle rejects a non-CA authority', () => {
    assert.throws(() => SpiffeBundle.fromX509Bundle(new X509Bundle(td, [leaf])), invalid(/not a CA certificate/));
  });

  test('fromJwtBundle and jwtBundle', () => {
    const j = ca.jwtBundle();
    const s = SpiffeBundle.fromJwtBundle(j);
    assert.equal(s.x509Authorities().length, 0);
    assert.ok(s.jwtBundle().equals(j));
  });

  test('x509Bundle and jwtBundle are copies', () => {
    const s = full();
    s.x509Bundle().addX509Authority(ca2.certificate);
    s.jwtBundle().removeJwtAuthority('rsa');
    assert.ok(s.equals(full()));
  });
});

describe('SpiffeBundle as a source', () => {
  const own = TrustDomain.parse('example.org');

  test('serves all three kinds for its own trust domain', () => {
    const s = full();
    assert.equal(s.getSpiffeBundleForTrustDomain(own), s);
    assert.ok(s.getX509BundleForTrustDomain(own).equals(new X509Bundle(td, [ca.certificate, rsaCa.certificate])));
    assert.ok(s.getJwtBundleForTrustDomain(own).equals(new JwtBundle(td, s.jwtAuthorities())));
  });

  test('throws ERR_BUNDLE_NOT_FOUND for another trust domain', () => {
    const s = full();
    const notFound = (kind: string) => ({ name: 'BundleError', code: 'ERR_BUNDLE_NOT_FOUND', message: `no ${kind} bundle found for trust domain "other.org"` });
    assert.throws(() => s.getSpiffeBundleForTrustDomain(other), notFound('SPIFFE'));
    assert.throws(() => s.getX509BundleForTrustDomain(other), notFound('X.509'));
    assert.throws(() => s.getJwtBundleForTrustDomain(other), notFound('JWT'));
  });
});

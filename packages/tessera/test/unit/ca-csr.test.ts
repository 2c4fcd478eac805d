/**
 * PKCS#10 requests as the server CA receives them (RFC 2986), through the
 * library's public issuer surface (`@tessera/spiffe/x509`): valid requests
 * of every accepted key type parse and carry their names; garbage, forged
 * signatures, unsupported keys and oversize input are refused with typed
 * errors; random corruption never escapes as anything but a typed error.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { EncodingError, isSpiffeError } from '@tessera/spiffe/errors';
import {
  buildCertificateRequest,
  encodeName,
  encodeSubjectPublicKeyInfo,
  MAX_CERTIFICATE_REQUEST_BYTES,
  OID,
  parseCertificateRequest,
  parseCertificateRequestAsync,
  parseSubjectPublicKeyInfo,
  parseUnverifiedCertificateRequest,
} from '@tessera/spiffe/x509';
import { TestCa } from '@tessera/spiffe/testing';

// ---- a minimal DER writer, to craft requests the builder refuses to make
function tlv(tag: number, ...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), body]);
}
const seq = (...p: Uint8Array[]): Buffer => tlv(0x30, ...p);
const oidDer = (dotted: string): Buffer => {
  const a = dotted.split('.').map(Number);
  const out: number[] = [];
  const push = (v: number): void => {
    const t = [v & 0x7f];
    for (v = Math.floor(v / 128); v > 0; v = Math.floor(v / 128)) t.unshift((v & 0x7f) | 0x80);
    out.push(...t);
  };
  push(a[0]! * 40 + a[1]!);
  a.slice(2).forEach(push);
  return tlv(0x06, Buffer.from(out));
};
const ECDSA_SHA256 = seq(oidDer(OID.ecdsaWithSha256));

/** Signs `info` with `key` into a CertificationRequest, like a client would. */
function wrap(info: Buffer, key: KeyObject, alg = ECDSA_SHA256, hash: string | null = 'sha256'): Buffer {
  return seq(info, alg, tlv(0x03, Buffer.from([0]), sign(hash, info, key)));
}

function ecKey(curve = 'P-256'): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: curve }).privateKey;
}

function rejects(der: Uint8Array, code: 'ERR_CERTIFICATE_INVALID' | 'ERR_KEY_INVALID', re: RegExp): void {
  assert.throws(
    () => parseCertificateRequest(der),
    (e: unknown) => e instanceof EncodingError && e.code === code && re.test(e.message),
    `${code} ${re}`,
  );
}

describe('valid requests', () => {
  const cases: [string, () => KeyObject, string, number][] = [
    ['EC P-256', () => ecKey('P-256'), 'ec-p256', 256],
    ['EC P-384', () => ecKey('P-384'), 'ec-p384', 384],
    ['RSA 2048', () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, 'rsa', 2048],
    ['Ed25519', () => generateKeyPairSync('ed25519').privateKey, 'ed25519', 256],
  ];
  for (const [name, make, keyType, bits] of cases) {
    test(`${name}: names, key and signature algorithm come back; the SPKI is the canonical one`, async () => {
      const key = make();
      const der = buildCertificateRequest(key, { uris: ['spiffe://example.org/web'], dnsNames: ['web.example.org'], ipAddresses: ['10.1.2.3'] });
      for (const req of [parseCertificateRequest(der), await parseCertificateRequestAsync(der)]) {
        assert.deepEqual(req.uris, ['spiffe://example.org/web']);
        assert.deepEqual(req.dnsNames, ['web.example.org']);
        assert.deepEqual(req.ipAddresses, ['10.1.2.3']);
        assert.equal(req.subjectPublicKey.keyType, keyType);
        assert.equal(req.subjectPublicKey.keyBits, bits);
        assert.ok(req.subjectPublicKey.publicKey.equals(createPublicKey(key)));
        // What OpenSSL itself would encode: the CA copies these bytes into certificates verbatim.
        assert.deepEqual(req.subjectPublicKey.spki, createPublicKey(key).export({ type: 'spki', format: 'der' }));
        assert.deepEqual(encodeSubjectPublicKeyInfo(key), req.subjectPublicKey.spki);
      }
    });
  }

  test('a request with no names and a subject parses with empty name lists', () => {
    const subject = encodeName([{ oid: OID.commonName, value: 'ignored' }]);
    const req = parseCertificateRequest(buildCertificateRequest(ecKey(), {}, subject));
    assert.deepEqual([req.uris, req.dnsNames, req.ipAddresses], [[], [], []]);
    assert.deepEqual(req.subjectRaw, subject);
    assert.equal(req.signatureAlgorithm, OID.ecdsaWithSha256);
  });

  test('unknown attributes and a SHA-384 signature are accepted', () => {
    const key = ecKey();
    const challenge = seq(oidDer('1.2.840.113549.1.9.7'), tlv(0x31, tlv(0x0c, Buffer.from('secret'))));
    const info = seq(tlv(0x02, Buffer.from([0])), seq(), encodeSubjectPublicKeyInfo(key), tlv(0xa0, challenge));
    const req = parseCertificateRequest(wrap(info, key, seq(oidDer(OID.ecdsaWithSha384)), 'sha384'));
    assert.equal(req.signatureAlgorithm, OID.ecdsaWithSha384);
  });
});

describe('refused requests', () => {
  test('garbage, empty input, truncation, trailing data and a certificate are malformed', () => {
    const good = buildCertificateRequest(ecKey(), { uris: ['spiffe://example.org/web'] });
    rejects(Buffer.alloc(0), 'ERR_CERTIFICATE_INVALID', /^malformed certificate request: /);
    rejects(randomBytes(200), 'ERR_CERTIFICATE_INVALID', /^malformed certificate request: /);
    rejects(good.subarray(0, good.length - 1), 'ERR_CERTIFICATE_INVALID', /^malformed certificate request: /);
    rejects(Buffer.concat([good, Buffer.from([0])]), 'ERR_CERTIFICATE_INVALID', /trailing data/);
    const cert = new TestCa({ trustDomain: 'example.org' }).certificate;
    rejects(cert, 'ERR_CERTIFICATE_INVALID', /^malformed certificate request: /);
  });

  test('a flipped signature byte fails proof of possession', async () => {
    const good = buildCertificateRequest(ecKey(), { uris: ['spiffe://example.org/web'] });
    const bad = Buffer.from(good);
    bad[bad.length - 5]! ^= 0x01;
    rejects(bad, 'ERR_CERTIFICATE_INVALID', /signature does not verify/);
    await assert.rejects(parseCertificateRequestAsync(bad), (e: unknown) => isSpiffeError(e, 'ERR_CERTIFICATE_INVALID') && /signature does not verify/.test(e.message));
  });

  test('a request re-pointed at another ID (signed data changed) fails proof of possession', () => {
    const good = buildCertificateRequest(ecKey(), { uris: ['spiffe://example.org/web'] });
    const at = good.indexOf(Buffer.from('/web'));
    const bad = Buffer.from(good);
    bad.write('/db!', at, 'latin1');
    rejects(bad, 'ERR_CERTIFICATE_INVALID', /signature does not verify/);
  });

  test('a key signed by another key (no proof of possession) is refused', () => {
    const info = seq(tlv(0x02, Buffer.from([0])), seq(), encodeSubjectPublicKeyInfo(ecKey()), tlv(0xa0));
    rejects(wrap(info, ecKey()), 'ERR_CERTIFICATE_INVALID', /signature does not verify/);
  });

  test('SHA-1 and mismatched signature algorithms are refused', () => {
    const key = ecKey();
    const info = seq(tlv(0x02, Buffer.from([0])), seq(), encodeSubjectPublicKeyInfo(key), tlv(0xa0));
    rejects(wrap(info, key, seq(oidDer('1.2.840.10045.4.1')), 'sha1'), 'ERR_CERTIFICATE_INVALID', /signature algorithm 1\.2\.840\.10045\.4\.1 is not supported/);
    rejects(wrap(info, key, seq(oidDer(OID.sha256WithRsa), tlv(0x05))), 'ERR_CERTIFICATE_INVALID', /not supported for a ec-p256 key/);
  });

  test('version 1 and missing attributes are malformed', () => {
    const key = ecKey();
    const spki = encodeSubjectPublicKeyInfo(key);
    rejects(wrap(seq(tlv(0x02, Buffer.from([1])), seq(), spki, tlv(0xa0)), key), 'ERR_CERTIFICATE_INVALID', /unsupported version/);
    rejects(wrap(seq(tlv(0x02, Buffer.from([0])), seq(), spki), key), 'ERR_CERTIFICATE_INVALID', /attributes \[0\]/);
  });

  test('two extensionRequest attributes and duplicate extensions are malformed', () => {
    const key = ecKey();
    const spki = encodeSubjectPublicKeyInfo(key);
    const san = seq(oidDer(OID.subjectAltName), tlv(0x04, seq(tlv(0x86, Buffer.from('spiffe://example.org/a')))));
    const extReq = (...exts: Buffer[]): Buffer => seq(oidDer('1.2.840.113549.1.9.14'), tlv(0x31, seq(...exts)));
    rejects(wrap(seq(tlv(0x02, Buffer.from([0])), seq(), spki, tlv(0xa0, extReq(san), extReq(san))), key), 'ERR_CERTIFICATE_INVALID', /more than one extensionRequest/);
    rejects(wrap(seq(tlv(0x02, Buffer.from([0])), seq(), spki, tlv(0xa0, extReq(san, san))), key), 'ERR_CERTIFICATE_INVALID', /duplicate extension/);
  });

  test('unsupported keys: RSA 1024, P-521, secp256k1, RSA-PSS keys → ERR_KEY_INVALID', () => {
    rejects(buildCertificateRequest(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey), 'ERR_KEY_INVALID', /RSA key of 1024 bits/);
    rejects(buildCertificateRequest(ecKey('P-521')), 'ERR_KEY_INVALID', /EC curve P-521/);
    const k1 = ecKey('secp256k1');
    const k1Spki = createPublicKey(k1).export({ type: 'spki', format: 'der' }) as Buffer;
    rejects(wrap(seq(tlv(0x02, Buffer.from([0])), seq(), k1Spki, tlv(0xa0)), k1), 'ERR_KEY_INVALID', /EC curve 1\.3\.132\.0\.10/);
    const pss = generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).privateKey;
    const pssSpki = createPublicKey(pss).export({ type: 'spki', format: 'der' }) as Buffer;
    rejects(wrap(seq(tlv(0x02, Buffer.from([0])), seq(), pssSpki, tlv(0xa0)), pss, seq(oidDer(OID.sha256WithRsa), tlv(0x05))), 'ERR_KEY_INVALID', /public key algorithm 1\.2\.840\.113549\.1\.1\.10/);
  });

  test('a compressed EC point and a point off the curve → ERR_KEY_INVALID', () => {
    const key = ecKey();
    const spki = encodeSubjectPublicKeyInfo(key);
    const point = spki.subarray(spki.length - 65);
    const compressed = Buffer.concat([Buffer.from([0x02 | (point[64]! & 1)]), point.subarray(1, 33)]);
    const alg = spki.subarray(2, 2 + 2 + spki[3]!);
    const cSpki = seq(alg, tlv(0x03, Buffer.from([0]), compressed));
    rejects(wrap(seq(tlv(0x02, Buffer.from([0])), seq(), cSpki, tlv(0xa0)), key), 'ERR_KEY_INVALID', /compressed EC points/);
    const off = Buffer.from(spki);
    off[off.length - 1]! ^= 0x01;
    assert.throws(() => parseSubjectPublicKeyInfo(off), (e: unknown) => isSpiffeError(e, 'ERR_KEY_INVALID') && /OpenSSL refused/.test(e.message));
  });

  test(`input over ${MAX_CERTIFICATE_REQUEST_BYTES} bytes is refused before parsing`, () => {
    const key = ecKey();
    const big = seq(tlv(0x02, Buffer.from([0])), seq(), encodeSubjectPublicKeyInfo(key), tlv(0xa0, seq(oidDer('1.2.3.4'), tlv(0x31, tlv(0x04, Buffer.alloc(70_000))))));
    rejects(wrap(big, key), 'ERR_CERTIFICATE_INVALID', /larger than the 65536-byte limit/);
  });

  test('parseSubjectPublicKeyInfo: RSA without NULL parameters and an even exponent are refused', () => {
    // A public key derived from the private one: JWK-exporting generateKeyPairSync's own publicKey can deadlock Node 20 (docs/ca.md).
    const rsa = createPublicKey(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
    const good = rsa.export({ type: 'spki', format: 'der' }) as Buffer;
    assert.equal(parseSubjectPublicKeyInfo(good).keyType, 'rsa');
    const noNull = seq(seq(oidDer(OID.rsaEncryption)), good.subarray(good.indexOf(Buffer.from([0x03, 0x82]))));
    assert.throws(() => parseSubjectPublicKeyInfo(noNull), (e: unknown) => isSpiffeError(e, 'ERR_KEY_INVALID') && /NULL/.test(e.message));
    const jwk = rsa.export({ format: 'jwk' });
    const n = Buffer.from(jwk.n!, 'base64url');
    const evenE = seq(seq(oidDer(OID.rsaEncryption), tlv(0x05)), tlv(0x03, Buffer.from([0]), seq(tlv(0x02, Buffer.from([0]), n), tlv(0x02, Buffer.from([0x01, 0x00, 0x00])))));
    assert.throws(() => parseSubjectPublicKeyInfo(evenE), (e: unknown) => isSpiffeError(e, 'ERR_KEY_INVALID') && /exponent/.test(e.message));
  });
});

test('random corruption of valid requests only ever yields typed errors or a verified request', () => {
  const keys = [ecKey(), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, generateKeyPairSync('ed25519').privateKey];
  let parsed = 0;
  for (let i = 0; i < 1500; i++) {
    const key = keys[i % keys.length]!;
    const der = Buffer.from(buildCertificateRequest(key, { uris: ['spiffe://example.org/w'], dnsNames: ['w.example.org'] }));
    const flips = 1 + (i % 3);
    for (let f = 0; f < flips; f++) der[Math.floor(Math.random() * der.length)] = Math.floor(Math.random() * 256);
    try {
      const req = parseCertificateRequest(der);
      // Only flips outside the signed data and the signature (e.g. none at all) may leave a valid request.
      assert.ok(req.subjectPublicKey.publicKey.equals(createPublicKey(key)));
      parsed++;
    } catch (e) {
      assert.ok(e instanceof EncodingError, `unexpected ${(e as Error).name}: ${(e as Error).message}`);
      assert.ok(e.code === 'ERR_CERTIFICATE_INVALID' || e.code === 'ERR_KEY_INVALID');
    }
  }
  assert.ok(parsed < 1500 * 0.2, `${parsed} corrupted requests parsed`);
});

describe('parseUnverifiedCertificateRequest (for issuers that verify proof of possession themselves)', () => {
  test('proof holds exactly what the signature covers; verify() and accept("valid") give what parseCertificateRequest gives', async () => {
    const key = ecKey();
    const csr = buildCertificateRequest(key, { uris: ['spiffe://example.org/web'] });
    const u = parseUnverifiedCertificateRequest(csr);
    const p = u.proof;
    assert.equal(p.keyType, 'ec-p256');
    assert.equal(p.hash, 'sha256');
    assert.ok(p.publicKeyBits.equals(encodeSubjectPublicKeyInfo(key).subarray(-65)));
    const ecdsaWithSha256 = Buffer.from('300a06082a8648ce3d040302', 'hex');
    assert.ok(tlv(0x30, p.signedData, ecdsaWithSha256, tlv(0x03, Buffer.from([0]), p.signature)).equals(csr), 'info ‖ algorithm ‖ signature is the whole request');
    const full = parseCertificateRequest(csr);
    for (const r of [u.verify(), await u.verifyAsync(), u.accept('valid')]) {
      assert.ok(r.subjectPublicKey.spki.equals(full.subjectPublicKey.spki));
      assert.deepEqual(r.uris, full.uris);
      assert.ok(r.subjectPublicKey.publicKey.equals(createPublicKey(key)), 'the key is imported when asked for');
    }
  });

  test('accept() gives the errors parseCertificateRequest gives; verify() catches a forgery; an unknown verdict is a TypeError', async () => {
    const csr = Buffer.from(buildCertificateRequest(ecKey()));
    const u = parseUnverifiedCertificateRequest(csr);
    assert.throws(() => u.accept('bad-signature'), (e: unknown) => isSpiffeError(e, 'ERR_CERTIFICATE_INVALID') && /signature does not verify/.test(e.message));
    assert.throws(() => u.accept('bad-key'), (e: unknown) => isSpiffeError(e, 'ERR_KEY_INVALID') && /not on its curve/.test(e.message));
    assert.throws(() => u.accept('maybe' as 'valid'), TypeError);
    csr[csr.length - 2]! ^= 0x40;
    const forged = parseUnverifiedCertificateRequest(csr);
    assert.throws(() => forged.verify(), /signature does not verify/);
    await assert.rejects(forged.verifyAsync(), /signature does not verify/);
  });

  test('a point off the curve parses unverified; verify() and the key refuse it (ERR_KEY_INVALID)', async () => {
    const key = ecKey();
    const csr = Buffer.from(buildCertificateRequest(key));
    const at = csr.indexOf(encodeSubjectPublicKeyInfo(key).subarray(-65)) + 64;
    csr[at]! ^= 0x01;
    const u = parseUnverifiedCertificateRequest(csr);
    const keyInvalid = (e: unknown): boolean => isSpiffeError(e, 'ERR_KEY_INVALID') && /OpenSSL refused the key/.test(e.message);
    assert.throws(() => u.verify(), keyInvalid);
    await assert.rejects(u.verifyAsync(), keyInvalid);
    assert.throws(() => parseCertificateRequest(csr), keyInvalid);
    // Had a verifier wrongly said "valid", the key still cannot be used.
    assert.throws(() => u.accept('valid').subjectPublicKey.publicKey, keyInvalid);
  });
});

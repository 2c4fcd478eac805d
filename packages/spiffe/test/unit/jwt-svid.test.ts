import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { constants, createHmac, createPublicKey, generateKeyPairSync, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { JwtSvid, signJwtSvid, type JwtSvidAlgorithm } from '../../src/svid/jwt-svid.js';
import { JwtBundle } from '../../src/bundle/jwt-bundle.js';
import type { JwtBundleSource } from '../../src/bundle/source.js';
import { SpiffeId, TrustDomain } from '../../src/id/index.js';
import { JwtSvidError, OptionsError, SourceError, type ErrorCode } from '../../src/errors/index.js';
import { TestCa } from '../../src/testing/test-ca.js';
import {
  createBrokenJwtSvid,
  createJwtSvid,
  JWT_SVID_DEFECTS,
  JWT_SVID_TEST_AUDIENCE,
  type JwtSvidDefect,
} from '../../src/testing/jwt-fixtures.js';

// A fixed clock: nothing here depends on the real time.
const T0 = new Date('2030-01-01T00:00:00Z');
const T0S = T0.getTime() / 1000;
const AUD = 'spiffe://example.org/api';
const td = TrustDomain.parse('example.org');
const workload = SpiffeId.parse('spiffe://example.org/web');
const ca = new TestCa({ trustDomain: td, now: () => new Date(T0) });
const bundle = ca.jwtBundle();

const ec = (namedCurve: string): KeyObject => generateKeyPairSync('ec', { namedCurve }).privateKey;
const p256 = ec('P-256');
const p384 = ec('P-384');
const p521 = ec('P-521');
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

// ------------------------------------------------------------------------
// An encoder independent of the library, to craft tokens it would refuse to sign.

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

type Signer = (input: Buffer) => Buffer;
const es = (key: KeyObject, hash = 'sha256'): Signer => (input) => cryptoSign(hash, input, { key, dsaEncoding: 'ieee-p1363' });
const caSigner = es(ca.jwtKey);

function craft(header: unknown, payload: unknown, sign: Signer = caSigner): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${sign(Buffer.from(input)).toString('base64url')}`;
}

const goodHeader = (): Record<string, unknown> => ({ alg: 'ES256', kid: ca.jwtKeyId, typ: 'JWT' });
const goodClaims = (): Record<string, unknown> => ({ sub: workload.toString(), aud: [AUD], exp: T0S + 300, iat: T0S });

function validate(token: string, options: { time?: Date; leewaySeconds?: number } = {}, source: JwtBundleSource = bundle): JwtSvid {
  return JwtSvid.parseAndValidate(token, source, AUD, { time: T0, ...options });
}

function rejects(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof (code === 'ERR_INVALID_OPTIONS' ? OptionsError : JwtSvidError), `expected a typed error, got ${String(e)}`);
    assert.equal((e as JwtSvidError).code, code, (e as Error).message);
    if (message) assert.match((e as Error).message, message);
    return true;
  });
}

function parts(token: string): { header: Record<string, unknown>; claims: Record<string, unknown>; input: Buffer; signature: Buffer } {
  const [h, p, s] = token.split('.') as [string, string, string];
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>,
    claims: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>,
    input: Buffer.from(`${h}.${p}`),
    signature: Buffer.from(s, 'base64url'),
  };
}

// ------------------------------------------------------------------------

describe('JwtSvid round trip (JWT-SVID §2–§4)', () => {
  it('signs with the test CA key and validates against its bundle', () => {
    const token = signJwtSvid({ id: workload, audience: [AUD], key: ca.jwtKey, keyId: ca.jwtKeyId, issuedAt: T0, expiresAt: new Date(T0.getTime() + 300_000) });
    const svid = validate(token);
    assert.equal(svid.id.toString(), workload.toString());
    assert.deepEqual(svid.audience, [AUD]);
    assert.equal(svid.expiresAt.getTime(), T0.getTime() + 300_000);
    assert.equal(svid.issuedAt?.getTime(), T0.getTime());
    assert.deepEqual(svid.claims, { sub: workload.toString(), aud: [AUD], exp: T0S + 300, iat: T0S });
    assert.equal(svid.token, token);
    assert.equal(svid.marshal(), token);
    assert.equal(svid.hint, '');
    assert.ok(Object.isFrozen(svid.claims) && Object.isFrozen(svid.claims['aud']) && Object.isFrozen(svid.audience));
  });

  const cases: [JwtSvidAlgorithm, KeyObject][] = [
    ['ES256', p256], ['ES384', p384], ['ES512', p521],
    ['RS256', rsa], ['RS384', rsa], ['RS512', rsa],
    ['PS256', rsa], ['PS384', rsa], ['PS512', rsa],
  ];
  for (const [alg, key] of cases) {
    it(`round trips ${alg}`, () => {
      const b = new JwtBundle(td, [['k-' + alg, createPublicKey(key)]]);
      const token = signJwtSvid({ id: workload, audience: [AUD], key, keyId: 'k-' + alg, alg, issuedAt: T0, expiresAt: new Date(T0.getTime() + 60_000) });
      assert.equal(parts(token).header['alg'], alg);
      const svid = validate(token, {}, b);
      assert.equal(svid.id.toString(), workload.toString());
      // The same token under another key of the same type must not verify.
      const other = alg.startsWith('ES') ? ec(alg === 'ES256' ? 'P-256' : alg === 'ES384' ? 'P-384' : 'P-521') : generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
      rejects(() => validate(token, {}, new JwtBundle(td, [['k-' + alg, createPublicKey(other)]])), 'ERR_JWTSVID_UNTRUSTED', /signature does not verify/);
    });
  }

  it('picks the algorithm from the key', () => {
    const expected: [KeyObject, string][] = [[p256, 'ES256'], [p384, 'ES384'], [p521, 'ES512'], [rsa, 'RS256']];
    for (const [key, alg] of expected) {
      const token = signJwtSvid({ id: workload, audience: [AUD], key, keyId: 'k', issuedAt: T0, expiresAt: new Date(T0.getTime() + 60_000) });
      assert.equal(parts(token).header['alg'], alg);
    }
  });

  it('carries extra claims and the hint', () => {
    const token = createJwtSvid(ca, workload, AUD, { extraClaims: { foo: 'bar', n: [1, 2] } });
    const svid = JwtSvid.parseAndValidate(token, bundle, AUD, { time: T0, hint: 'internal' });
    assert.equal(svid.claims['foo'], 'bar');
    assert.deepEqual(svid.claims['n'], [1, 2]);
    assert.equal(svid.hint, 'internal');
  });

  it('accepts a token naming several audiences when any one is expected', () => {
    const token = createJwtSvid(ca, workload, ['a', 'b', 'c']);
    assert.deepEqual(JwtSvid.parseAndValidate(token, bundle, 'b', { time: T0 }).audience, ['a', 'b', 'c']);
    assert.ok(JwtSvid.parseAndValidate(token, bundle, ['x', 'c'], { time: T0 }));
    rejects(() => JwtSvid.parseAndValidate(token, bundle, ['x', 'y'], { time: T0 }), 'ERR_JWTSVID_AUDIENCE', /expected audience in \["x","y"\]/);
  });

  it('accepts "aud" as a single string and reports it as a list', () => {
    const svid = validate(craft(goodHeader(), { ...goodClaims(), aud: AUD }));
    assert.deepEqual(svid.audience, [AUD]);
  });

  it('accepts typ "JOSE" and a missing typ', () => {
    assert.ok(validate(craft({ ...goodHeader(), typ: 'JOSE' }, goodClaims())));
    assert.ok(validate(craft({ alg: 'ES256', kid: ca.jwtKeyId }, goodClaims())));
  });

  it('accepts a token without iat', () => {
    const { iat: _iat, ...claims } = goodClaims();
    assert.equal(validate(craft(goodHeader(), claims)).issuedAt, undefined);
  });
});

describe('tokens signJwtSvid produces, checked without the library', () => {
  it('ES256: exact header, integer claims, P1363 signature that node:crypto verifies', () => {
    const token = signJwtSvid({
      id: workload, audience: [AUD, 'other'], key: ca.jwtKey, keyId: ca.jwtKeyId,
      issuedAt: new Date(T0.getTime() + 999), expiresAt: new Date(T0.getTime() + 300_999),
    });
    const [h] = token.split('.') as [string];
    assert.equal(Buffer.from(h, 'base64url').toString(), JSON.stringify({ alg: 'ES256', kid: ca.jwtKeyId, typ: 'JWT' }));
    const p = parts(token);
    // Seconds, rounded down.
    assert.deepEqual(p.claims, { sub: workload.toString(), aud: [AUD, 'other'], exp: T0S + 300, iat: T0S });
    assert.match(token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    assert.equal(p.signature.length, 64);
    assert.ok(cryptoVerify('sha256', p.input, { key: createPublicKey(ca.jwtKey), dsaEncoding: 'ieee-p1363' }, p.signature));
  });

  it('RS256 is PKCS#1 v1.5 and PS256 is PSS with a 32-byte salt', () => {
    const pub = createPublicKey(rsa);
    const base = { id: workload, audience: [AUD], key: rsa, keyId: 'k', issuedAt: T0, expiresAt: new Date(T0.getTime() + 60_000) };
    const rs = parts(signJwtSvid({ ...base, alg: 'RS256' }));
    assert.ok(cryptoVerify('sha256', rs.input, { key: pub, padding: constants.RSA_PKCS1_PADDING }, rs.signature));
    const ps = parts(signJwtSvid({ ...base, alg: 'PS256' }));
    assert.ok(cryptoVerify('sha256', ps.input, { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, ps.signature));
    assert.ok(!cryptoVerify('sha256', ps.input, { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 0 }, ps.signature));
  });

  it('ES384/ES512 signatures are raw r||s of the curve size', () => {
    for (const [alg, key, hash, len] of [['ES384', p384, 'sha384', 96], ['ES512', p521, 'sha512', 132]] as const) {
      const p = parts(signJwtSvid({ id: workload, audience: [AUD], key, keyId: 'k', alg, issuedAt: T0, expiresAt: new Date(T0.getTime() + 60_000) }));
      assert.equal(p.signature.length, len);
      assert.ok(cryptoVerify(hash, p.input, { key: createPublicKey(key), dsaEncoding: 'ieee-p1363' }, p.signature));
    }
  });
});

describe('broken JWT-SVIDs (jwt-fixtures)', () => {
  // Expected outcomes written here, not taken from the fixture module, so a
  // fixture and the validator cannot drift into agreeing on a mistake.
  const expected: Record<JwtSvidDefect, [ErrorCode, RegExp, 'insecure-accepts' | 'insecure-rejects']> = {
    'alg-none': ['ERR_JWTSVID_INVALID', /unsupported token signature algorithm "none"/, 'insecure-rejects'],
    'alg-hs256': ['ERR_JWTSVID_INVALID', /unsupported token signature algorithm "HS256"/, 'insecure-rejects'],
    'alg-eddsa': ['ERR_JWTSVID_INVALID', /unsupported token signature algorithm "EdDSA"/, 'insecure-rejects'],
    'missing-kid': ['ERR_JWTSVID_INVALID', /missing key id/, 'insecure-accepts'],
    'unknown-kid': ['ERR_JWTSVID_UNTRUSTED', /no JWT authority ".*-unknown" found for trust domain "example.org"/, 'insecure-accepts'],
    'bad-typ': ['ERR_JWTSVID_INVALID', /header type "at\+jwt"/, 'insecure-rejects'],
    'extra-header': ['ERR_JWTSVID_INVALID', /unsupported parameter "jku"/, 'insecure-rejects'],
    'missing-sub': ['ERR_JWTSVID_INVALID', /missing subject claim/, 'insecure-rejects'],
    'invalid-sub': ['ERR_JWTSVID_INVALID', /invalid subject claim: scheme is missing or invalid/, 'insecure-rejects'],
    'missing-aud': ['ERR_JWTSVID_INVALID', /missing audience claim/, 'insecure-rejects'],
    'empty-aud': ['ERR_JWTSVID_INVALID', /"aud" is empty/, 'insecure-rejects'],
    'wrong-aud': ['ERR_JWTSVID_AUDIENCE', /expected audience in/, 'insecure-rejects'],
    'missing-exp': ['ERR_JWTSVID_INVALID', /missing exp claim/, 'insecure-rejects'],
    expired: ['ERR_JWTSVID_EXPIRED', /token has expired/, 'insecure-rejects'],
    'not-before-future': ['ERR_JWTSVID_INVALID', /not valid yet/, 'insecure-rejects'],
    'bad-signature': ['ERR_JWTSVID_UNTRUSTED', /signature does not verify/, 'insecure-accepts'],
    'signed-by-other-key': ['ERR_JWTSVID_UNTRUSTED', /signature does not verify/, 'insecure-accepts'],
    'other-trust-domain': ['ERR_JWTSVID_UNTRUSTED', /no bundle found for trust domain "other-example.org"/, 'insecure-accepts'],
    'two-part-token': ['ERR_JWTSVID_INVALID', /exactly three/, 'insecure-rejects'],
    'json-not-object': ['ERR_JWTSVID_INVALID', /payload is not a JSON object/, 'insecure-rejects'],
  };

  it('JWT_SVID_DEFECTS lists every defect once', () => {
    assert.deepEqual([...JWT_SVID_DEFECTS].sort(), Object.keys(expected).sort());
  });

  it('the undamaged fixture token validates', () => {
    assert.ok(JwtSvid.parseAndValidate(createJwtSvid(ca, `spiffe://${td.name}/workload`, JWT_SVID_TEST_AUDIENCE), bundle, JWT_SVID_TEST_AUDIENCE, { time: T0 }));
  });

  for (const defect of JWT_SVID_DEFECTS) {
    const [code, message, insecure] = expected[defect];
    it(`${defect}: parseAndValidate rejects with ${code}`, () => {
      const token = createBrokenJwtSvid(ca, defect);
      rejects(() => JwtSvid.parseAndValidate(token, bundle, JWT_SVID_TEST_AUDIENCE, { time: T0 }), code, message);
      // Leeway does not rescue any of them (expired is 10 minutes past).
      rejects(() => JwtSvid.parseAndValidate(token, bundle, JWT_SVID_TEST_AUDIENCE, { time: T0, leewaySeconds: 60 }), code, message);
    });
    it(`${defect}: parseInsecure ${insecure === 'insecure-accepts' ? 'accepts (no signature check)' : `rejects with ${code}`}`, () => {
      const token = createBrokenJwtSvid(ca, defect);
      if (insecure === 'insecure-accepts') {
        assert.equal(JwtSvid.parseInsecure(token, JWT_SVID_TEST_AUDIENCE, { time: T0 }).token, token);
      } else {
        rejects(() => JwtSvid.parseInsecure(token, JWT_SVID_TEST_AUDIENCE, { time: T0 }), code, message);
      }
    });
  }

  it('alg-hs256 really is HMAC keyed with the public key (so the rejection is meaningful)', () => {
    const token = createBrokenJwtSvid(ca, 'alg-hs256');
    const p = parts(token);
    const secret = createPublicKey(ca.jwtKey).export({ type: 'spki', format: 'pem' });
    assert.deepEqual(p.signature, createHmac('sha256', secret).update(p.input).digest());
  });

  it('wrong-aud honours a custom audience', () => {
    const token = createBrokenJwtSvid(ca, 'wrong-aud', { audience: 'custom' });
    rejects(() => JwtSvid.parseAndValidate(token, bundle, 'custom', { time: T0 }), 'ERR_JWTSVID_AUDIENCE');
    assert.ok(JwtSvid.parseAndValidate(token, bundle, 'custom-wrong', { time: T0 }));
  });
});

describe('expected audience is required (JWT-SVID §3.2, Appendix A)', () => {
  const token = createJwtSvid(ca, workload, AUD);
  const bad: unknown[] = [[], '', [''], [AUD, ''], [42], undefined, null, {}];
  for (const aud of bad) {
    it(`refuses ${JSON.stringify(aud) ?? 'undefined'}`, () => {
      rejects(() => JwtSvid.parseAndValidate(token, bundle, aud as string[], { time: T0 }), 'ERR_INVALID_OPTIONS', /expected audience is required/);
      rejects(() => JwtSvid.parseInsecure(token, aud as string[], { time: T0 }), 'ERR_INVALID_OPTIONS', /expected audience is required/);
    });
  }
  it('checks options before looking at the token', () => {
    rejects(() => JwtSvid.parseAndValidate('garbage', bundle, [], { time: T0 }), 'ERR_INVALID_OPTIONS');
  });
});

describe('time (injected clock, no sleeping)', () => {
  const token = createJwtSvid(ca, workload, AUD, { ttlSeconds: 300 });
  const at = (s: number): Date => new Date(T0.getTime() + s * 1000);

  it('is valid from issue to just before exp, expired from exp on', () => {
    assert.ok(validate(token, { time: at(0) }));
    assert.ok(validate(token, { time: at(299.999) }));
    rejects(() => validate(token, { time: at(300) }), 'ERR_JWTSVID_EXPIRED');
    rejects(() => validate(token, { time: at(301) }), 'ERR_JWTSVID_EXPIRED', /token has expired: "exp" is 2030-01-01T00:05:00.000Z/);
  });

  it('leeway extends exp by exactly that many seconds', () => {
    assert.ok(validate(token, { time: at(301), leewaySeconds: 60 }));
    assert.ok(validate(token, { time: at(359), leewaySeconds: 60 }));
    rejects(() => validate(token, { time: at(360), leewaySeconds: 60 }), 'ERR_JWTSVID_EXPIRED');
  });

  it('nbf in the future is refused, within leeway accepted', () => {
    const t = craft(goodHeader(), { ...goodClaims(), nbf: T0S + 100 });
    rejects(() => validate(t, { time: at(99) }), 'ERR_JWTSVID_INVALID', /not valid yet/);
    assert.ok(validate(t, { time: at(100) }));
    assert.ok(validate(t, { time: at(50), leewaySeconds: 50 }));
  });

  it('parseInsecure checks expiry too', () => {
    assert.ok(JwtSvid.parseInsecure(token, AUD, { time: at(0) }));
    rejects(() => JwtSvid.parseInsecure(token, AUD, { time: at(301) }), 'ERR_JWTSVID_EXPIRED');
  });

  it('uses the real clock when no time is given', () => {
    // Issued in 2030 by the fixed-clock CA: not expired now; and a token that
    // expired in 2000 is expired now.
    assert.ok(JwtSvid.parseAndValidate(token, bundle, AUD));
    rejects(() => JwtSvid.parseAndValidate(craft(goodHeader(), { ...goodClaims(), exp: 946684800 }), bundle, AUD), 'ERR_JWTSVID_EXPIRED');
  });

  it('refuses invalid time options', () => {
    rejects(() => validate(token, { time: new Date(NaN) }), 'ERR_INVALID_OPTIONS', /"time"/);
    rejects(() => validate(token, { leewaySeconds: -1 }), 'ERR_INVALID_OPTIONS', /leewaySeconds/);
    rejects(() => validate(token, { leewaySeconds: Infinity }), 'ERR_INVALID_OPTIONS', /leewaySeconds/);
  });
});

describe('parseInsecure', () => {
  it('returns the SVID of a token signed by a key nobody trusts', () => {
    const key = ec('P-256');
    const token = signJwtSvid({ id: workload, audience: [AUD], key, keyId: 'nobody', issuedAt: T0, expiresAt: new Date(T0.getTime() + 60_000) });
    rejects(() => validate(token), 'ERR_JWTSVID_UNTRUSTED', /no JWT authority "nobody"/);
    const svid = JwtSvid.parseInsecure(token, AUD, { time: T0, hint: 'h' });
    assert.equal(svid.id.toString(), workload.toString());
    assert.deepEqual(svid.audience, [AUD]);
    assert.equal(svid.expiresAt.getTime(), T0.getTime() + 60_000);
    assert.equal(svid.hint, 'h');
  });

  it('still checks the audience and the algorithm', () => {
    const token = createJwtSvid(ca, workload, AUD);
    rejects(() => JwtSvid.parseInsecure(token, 'other', { time: T0 }), 'ERR_JWTSVID_AUDIENCE');
    rejects(() => JwtSvid.parseInsecure(craft({ alg: 'RS1' }, goodClaims()), AUD, { time: T0 }), 'ERR_JWTSVID_INVALID', /algorithm "RS1"/);
  });
});

describe('structure (JWT-SVID §5.1) and header (JWT-SVID §2)', () => {
  const good = craft(goodHeader(), goodClaims());
  const [gh, gp, gs] = good.split('.') as [string, string, string];

  it('the reference token is valid (so each rejection below is about its one change)', () => {
    assert.ok(validate(good));
  });

  const malformed: [string, string, RegExp][] = [
    ['empty string', '', /exactly three/],
    ['four parts', `${good}.${gs}`, /exactly three/],
    ['JWS JSON serialization', JSON.stringify({ protected: gh, payload: gp, signature: gs }), /exactly three/],
    ['padding', `${gh}.${gp}.${gs}=`, /not unpadded base64url/],
    ['standard base64 alphabet', `${gh}.${gp}.+${gs.slice(1)}`, /not unpadded base64url/],
    ['whitespace', `${gh}.${gp} .${gs}`, /not unpadded base64url/],
    ['impossible base64 length (4n+1 characters)', `${gh}.${gp}.${gs.slice(0, gs.length - (gs.length % 4))}A`, /not unpadded base64url/],
    ['empty signature', `${gh}.${gp}.`, /signature is empty/],
    ['header is not JSON', `${b64('{"alg":')}.${gp}.${gs}`, /header is not valid UTF-8 JSON/],
    ['header is a JSON array', `${b64(['ES256'])}.${gp}.${gs}`, /header is not a JSON object/],
    ['header has a BOM', `${b64('\uFEFF' + JSON.stringify(goodHeader()))}.${gp}.${gs}`, /header is not valid UTF-8 JSON/],
    ['header is not UTF-8', `${Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')}.${gp}.${gs}`, /not valid UTF-8 JSON/],
    ['payload is a JSON string', `${gh}.${b64(JSON.stringify('x'))}.${gs}`, /payload is not a JSON object/],
    ['payload is null', `${gh}.${b64('null')}.${gs}`, /payload is not a JSON object/],
  ];
  for (const [name, token, message] of malformed) {
    it(`rejects ${name}`, () => {
      rejects(() => validate(token), 'ERR_JWTSVID_INVALID', message);
      rejects(() => JwtSvid.parseInsecure(token, AUD, { time: T0 }), 'ERR_JWTSVID_INVALID', message);
    });
  }

  it('rejects non-canonical base64url (non-zero trailing bits)', () => {
    // A 64-byte signature encodes to 86 chars; the last char carries 4 unused bits.
    assert.equal(gs.length % 4, 2);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(gs.at(-1)!);
    const twin = gs.slice(0, -1) + alphabet[last | 1];
    assert.deepEqual(Buffer.from(twin, 'base64url'), Buffer.from(gs, 'base64url'), 'Node decodes both spellings alike');
    rejects(() => validate(`${gh}.${gp}.${twin}`), 'ERR_JWTSVID_INVALID', /not canonical/);
  });

  it('rejects tokens over 64 KiB before decoding, accepts large ones under', () => {
    const big = craft(goodHeader(), { ...goodClaims(), pad: 'x'.repeat(40_000) });
    assert.ok(big.length < 65_536);
    assert.ok(validate(big));
    const huge = craft(goodHeader(), { ...goodClaims(), pad: 'x'.repeat(50_000) });
    assert.ok(huge.length > 65_536);
    rejects(() => validate(huge), 'ERR_JWTSVID_INVALID', /longer than 65536/);
  });

  it('rejects a token that is not a string', () => {
    rejects(() => validate(42 as unknown as string), 'ERR_JWTSVID_INVALID', /must be a string/);
  });

  for (const name of ['crit', 'jku', 'jwk', 'x5u', 'x5c', 'cty', 'b64']) {
    it(`rejects header parameter "${name}"`, () => {
      rejects(() => validate(craft({ ...goodHeader(), [name]: name === 'crit' ? ['exp'] : 'x' }, goodClaims())), 'ERR_JWTSVID_INVALID', new RegExp(`unsupported parameter "${name}"`));
    });
  }

  for (const alg of ['none', 'None', 'HS256', 'HS384', 'HS512', 'EdDSA', 'ES256K', 'es256', 'RS1', '__proto__', 'constructor', '']) {
    it(`rejects alg ${JSON.stringify(alg)}`, () => {
      rejects(() => validate(craft({ ...goodHeader(), alg }, goodClaims())), 'ERR_JWTSVID_INVALID', /unsupported token signature algorithm/);
    });
  }

  it('rejects a missing or non-string alg', () => {
    rejects(() => validate(craft({ kid: ca.jwtKeyId }, goodClaims())), 'ERR_JWTSVID_INVALID', /missing the "alg"/);
    rejects(() => validate(craft({ ...goodHeader(), alg: ['ES256'] }, goodClaims())), 'ERR_JWTSVID_INVALID', /missing the "alg"/);
  });

  for (const typ of ['jwt', 'JWS', '', null, 1]) {
    it(`rejects typ ${JSON.stringify(typ)}`, () => {
      rejects(() => validate(craft({ ...goodHeader(), typ }, goodClaims())), 'ERR_JWTSVID_INVALID', /header type/);
    });
  }

  it('rejects an empty or non-string kid', () => {
    rejects(() => validate(craft({ ...goodHeader(), kid: '' }, goodClaims())), 'ERR_JWTSVID_INVALID', /missing key id/);
    rejects(() => validate(craft({ ...goodHeader(), kid: 7 }, goodClaims())), 'ERR_JWTSVID_INVALID', /must be a string/);
    rejects(() => JwtSvid.parseInsecure(craft({ ...goodHeader(), kid: 7 }, goodClaims()), AUD, { time: T0 }), 'ERR_JWTSVID_INVALID', /must be a string/);
  });
});

describe('signature and key (JWT-SVID §2.1, §4)', () => {
  const withKey = (key: KeyObject): JwtBundle => new JwtBundle(td, [[ca.jwtKeyId, createPublicKey(key)]]);

  it('rejects a DER-encoded ECDSA signature', () => {
    const t = craft(goodHeader(), goodClaims(), (input) => cryptoSign('sha256', input, { key: ca.jwtKey, dsaEncoding: 'der' }));
    rejects(() => validate(t), 'ERR_JWTSVID_UNTRUSTED', /signature does not verify/);
  });

  it('rejects an alg whose curve does not match the authority (ES384 header, P-256 key)', () => {
    const t = craft({ ...goodHeader(), alg: 'ES384' }, goodClaims(), es(ca.jwtKey, 'sha384'));
    rejects(() => validate(t), 'ERR_JWTSVID_UNTRUSTED', /ES384 needs an EC P-384 key, not an EC P-256 key/);
  });

  it('rejects ES256 with a P-384 authority', () => {
    const t = craft(goodHeader(), goodClaims(), es(p384));
    rejects(() => validate(t, {}, withKey(p384)), 'ERR_JWTSVID_UNTRUSTED', /ES256 needs an EC P-256 key/);
  });

  it('rejects RS256 with an EC authority, and ES256 with an RSA authority', () => {
    const rs = craft({ ...goodHeader(), alg: 'RS256' }, goodClaims(), (input) => cryptoSign('sha256', input, rsa));
    rejects(() => validate(rs), 'ERR_JWTSVID_UNTRUSTED', /RS256 needs an RSA key/);
    assert.ok(validate(rs, {}, withKey(rsa)), 'the same token verifies with the right key type');
    rejects(() => validate(craft(goodHeader(), goodClaims()), {}, withKey(rsa)), 'ERR_JWTSVID_UNTRUSTED', /ES256 needs an EC P-256 key/);
  });

  it('rejects PS256 with a salt length other than the hash length', () => {
    const pss = (saltLength: number): Signer => (input) => cryptoSign('sha256', input, { key: rsa, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength });
    const b = withKey(rsa);
    assert.ok(validate(craft({ ...goodHeader(), alg: 'PS256' }, goodClaims(), pss(32)), {}, b));
    rejects(() => validate(craft({ ...goodHeader(), alg: 'PS256' }, goodClaims(), pss(0)), {}, b), 'ERR_JWTSVID_UNTRUSTED');
    rejects(() => validate(craft({ ...goodHeader(), alg: 'PS256' }, goodClaims(), pss(64)), {}, b), 'ERR_JWTSVID_UNTRUSTED');
  });

  it('rejects RS256 signed as PS256 and vice versa', () => {
    const b = withKey(rsa);
    rejects(() => validate(craft({ ...goodHeader(), alg: 'PS256' }, goodClaims(), (i) => cryptoSign('sha256', i, rsa)), {}, b), 'ERR_JWTSVID_UNTRUSTED');
    const pss: Signer = (i) => cryptoSign('sha256', i, { key: rsa, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    rejects(() => validate(craft({ ...goodHeader(), alg: 'RS256' }, goodClaims(), pss), {}, b), 'ERR_JWTSVID_UNTRUSTED');
  });

  it('rejects a truncated RSA signature', () => {
    const t = craft({ ...goodHeader(), alg: 'RS256' }, goodClaims(), (i) => cryptoSign('sha256', i, rsa).subarray(1));
    rejects(() => validate(t, {}, withKey(rsa)), 'ERR_JWTSVID_UNTRUSTED', /signature does not verify/);
  });

  it('rejects a signature over different claims (payload swapped)', () => {
    const [h, , s] = craft(goodHeader(), goodClaims()).split('.') as [string, string, string];
    const forged = `${h}.${b64({ ...goodClaims(), sub: 'spiffe://example.org/admin' })}.${s}`;
    rejects(() => validate(forged), 'ERR_JWTSVID_UNTRUSTED', /signature does not verify/);
  });

  it('uses the bundle of the sub trust domain only', () => {
    // Signed by a key that *is* trusted, but for another trust domain.
    const other = new TestCa({ trustDomain: 'other.org', now: () => new Date(T0) });
    const t = createJwtSvid(other, 'spiffe://example.org/web', AUD);
    const both: JwtBundleSource = {
      getJwtBundleForTrustDomain: (d) => (d.name === 'other.org' ? other.jwtBundle() : new JwtBundle(td, [...bundle.jwtAuthorities(), [other.jwtKeyId, createPublicKey(p256)]])),
    };
    rejects(() => validate(t, {}, both), 'ERR_JWTSVID_UNTRUSTED', /signature does not verify/);
  });

  it('reports a failing bundle source as untrusted, keeping the cause', () => {
    const cause = new SourceError('source closed');
    const failing: JwtBundleSource = { getJwtBundleForTrustDomain: () => { throw cause; } };
    assert.throws(() => validate(createJwtSvid(ca, workload, AUD), {}, failing), (e: unknown) => {
      assert.ok(e instanceof JwtSvidError);
      assert.equal(e.code, 'ERR_JWTSVID_UNTRUSTED');
      assert.match(e.message, /no bundle found for trust domain "example.org": source closed/);
      assert.equal(e.cause, cause);
      return true;
    });
  });

  it('refuses a missing bundle source', () => {
    rejects(() => JwtSvid.parseAndValidate(createJwtSvid(ca, workload, AUD), undefined as unknown as JwtBundleSource, AUD), 'ERR_INVALID_OPTIONS', /bundle source/);
  });

  it('does not look at claims before the signature: a forged token with bad claims is untrusted, not invalid', () => {
    const forged = craft(goodHeader(), { sub: workload.toString(), aud: 5 }, es(ec('P-256')));
    rejects(() => validate(forged), 'ERR_JWTSVID_UNTRUSTED');
    // ...while parseInsecure, which has no signature to check, reports the claim.
    rejects(() => JwtSvid.parseInsecure(forged, AUD, { time: T0 }), 'ERR_JWTSVID_INVALID', /invalid audience claim/);
  });
});

describe('claims (JWT-SVID §3; RFC 7519 §4.1)', () => {
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['sub not a string', { sub: 5 }, /"sub" must be a string/],
    ['sub empty', { sub: '' }, /missing subject claim/],
    ['sub uppercase scheme', { sub: 'SPIFFE://example.org/web' }, /scheme is missing or invalid/],
    ['sub with query', { sub: 'spiffe://example.org/web?x=1' }, /path segment characters/],
    ['aud a number', { aud: 5 }, /invalid audience claim/],
    ['aud an object', { aud: { 0: AUD } }, /invalid audience claim/],
    ['aud with a number', { aud: [AUD, 5] }, /every "aud" value/],
    ['aud with an empty string', { aud: [AUD, ''] }, /every "aud" value/],
    ['aud an empty string', { aud: '' }, /every "aud" value/],
    ['aud null', { aud: null }, /invalid audience claim/],
    ['exp a string', { exp: String(T0S + 300) }, /invalid exp claim/],
    ['exp null', { exp: null }, /invalid exp claim/],
    ['exp beyond Date range', { exp: 1e300 }, /invalid exp claim/],
    ['nbf a string', { nbf: '0' }, /invalid nbf claim/],
    ['iat a string', { iat: String(T0S) }, /invalid iat claim/],
    ['iat null', { iat: null }, /invalid iat claim/],
  ];
  for (const [name, change, message] of bad) {
    it(`rejects ${name}`, () => {
      rejects(() => validate(craft(goodHeader(), { ...goodClaims(), ...change })), 'ERR_JWTSVID_INVALID', message);
    });
  }

  it('accepts a non-integer exp (NumericDate may be fractional)', () => {
    assert.equal(validate(craft(goodHeader(), { ...goodClaims(), exp: T0S + 10.5 })).expiresAt.getTime(), T0.getTime() + 10_500);
  });

  it('accepts a root SPIFFE ID as sub and keeps unknown claims', () => {
    const svid = validate(craft(goodHeader(), { ...goodClaims(), sub: 'spiffe://example.org', x: { y: 1 } }));
    assert.equal(svid.id.toString(), 'spiffe://example.org');
    assert.deepEqual(svid.claims['x'], { y: 1 });
  });

  it('treats a "__proto__" claim as data', () => {
    const input = `${b64(goodHeader())}.${b64(`{"sub":"${workload.toString()}","aud":["${AUD}"],"exp":${T0S + 60},"__proto__":{"polluted":1}}`)}`;
    const t = `${input}.${caSigner(Buffer.from(input)).toString('base64url')}`;
    const svid = validate(t);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    assert.deepEqual(Object.getOwnPropertyDescriptor(svid.claims, '__proto__')?.value, { polluted: 1 });
  });
});

describe('signJwtSvid options', () => {
  const base = { id: workload, audience: [AUD], key: ca.jwtKey, keyId: 'k', issuedAt: T0, expiresAt: new Date(T0.getTime() + 60_000) };
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['empty audience', { audience: [] }, /"audience" must list at least one/],
    ['audience a string', { audience: AUD }, /"audience" must list at least one/],
    ['empty audience entry', { audience: [AUD, ''] }, /non-empty string/],
    ['id a string', { id: workload.toString() }, /"id" must be a SpiffeId/],
    ['empty keyId', { keyId: '' }, /"keyId"/],
    ['public key', { key: createPublicKey(ca.jwtKey) }, /must be a private KeyObject/],
    ['key not a KeyObject', { key: 'pem' }, /must be a private KeyObject/],
    ['alg not fitting the curve', { alg: 'ES384' }, /ES384 needs an EC P-384 key/],
    ['RSA alg for an EC key', { alg: 'RS256' }, /RS256 needs an RSA key/],
    ['EC alg for an RSA key', { key: rsa, alg: 'ES256' }, /ES256 needs an EC P-256 key/],
    ['HS256', { alg: 'HS256' }, /unsupported "alg" "HS256"/],
    ['none', { alg: 'none' }, /unsupported "alg" "none"/],
    ['Ed25519 key', { key: generateKeyPairSync('ed25519').privateKey }, /type "ed25519" cannot sign JWT-SVIDs/],
    ['secp256k1 key', { key: ec('secp256k1') }, /cannot sign JWT-SVIDs; use P-256/],
    ['RSA 1024', { key: generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey }, /at least 2048 bits/],
    ['invalid expiresAt', { expiresAt: new Date(NaN) }, /"expiresAt" must be a valid Date/],
    ['expiresAt a number', { expiresAt: T0.getTime() + 60_000 }, /"expiresAt" must be a valid Date/],
    ['invalid issuedAt', { issuedAt: new Date(NaN) }, /"issuedAt" must be a valid Date/],
    ['expiresAt == issuedAt', { expiresAt: T0 }, /at least one second after/],
    ['expiresAt within the same second', { expiresAt: new Date(T0.getTime() + 999) }, /at least one second after/],
    ['extraClaims overriding sub', { extraClaims: { sub: 'spiffe://example.org/admin' } }, /cannot set "sub"/],
    ['extraClaims overriding aud', { extraClaims: { aud: 'x' } }, /cannot set "aud"/],
    ['extraClaims overriding exp', { extraClaims: { exp: 1 } }, /cannot set "exp"/],
    ['extraClaims an array', { extraClaims: [] }, /must be an object/],
    ['extraClaims not JSON', { extraClaims: { n: 1n } }, /cannot be serialised as JSON/],
    ['a token over 64 KiB', { extraClaims: { pad: 'x'.repeat(50_000) } }, /longer than 65536/],
  ];
  for (const [name, change, message] of bad) {
    it(`refuses ${name}`, () => {
      rejects(() => signJwtSvid({ ...base, ...change } as Parameters<typeof signJwtSvid>[0]), 'ERR_INVALID_OPTIONS', message);
    });
  }
  it('refuses missing options', () => {
    rejects(() => signJwtSvid(undefined as unknown as Parameters<typeof signJwtSvid>[0]), 'ERR_INVALID_OPTIONS', /options are required/);
  });
  it('accepts the base options (so each refusal above is about its one change)', () => {
    assert.ok(validate(signJwtSvid({ ...base, keyId: ca.jwtKeyId })));
  });
  it('defaults iat to the current time', () => {
    const before = Math.floor(Date.now() / 1000);
    const { issuedAt: _i, ...rest } = base;
    const claims = parts(signJwtSvid({ ...rest, expiresAt: new Date(Date.now() + 60_000) })).claims;
    assert.ok(typeof claims['iat'] === 'number' && claims['iat'] >= before && claims['iat'] <= Math.floor(Date.now() / 1000));
  });
});

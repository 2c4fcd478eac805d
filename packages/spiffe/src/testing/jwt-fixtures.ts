/**
 * JWT-SVID fixtures for tests: valid tokens from a {@link TestCa}'s JWT key
 * and tokens carrying exactly one defect each, named after it (JWT-SVID §2–§5,
 * spec/spiffe.md §3).
 * @module
 */
import { createHmac, createPublicKey, sign as cryptoSign } from 'node:crypto';
import { SpiffeId } from '../id/index.js';
import { signJwtSvid, type JwtSvidAlgorithm } from '../svid/jwt-svid.js';
import { generateKey } from './keys.js';
import type { TestCa } from './test-ca.js';

/**
 * The audience (JWT-SVID §3.2) {@link createBrokenJwtSvid} uses unless told otherwise.
 * @example
 * ```ts
 * JwtSvid.parseAndValidate(createBrokenJwtSvid(ca, 'expired'), ca.jwtBundle(), JWT_SVID_TEST_AUDIENCE);
 * ```
 */
export const JWT_SVID_TEST_AUDIENCE = 'spiffe://example.org/test-audience';

/**
 * Options of {@link createJwtSvid} (JWT-SVID §2.1, §3.3).
 * @example `createJwtSvid(ca, id, aud, { ttlSeconds: 60 })`
 */
export interface TestJwtSvidOptions {
  /** Lifetime in seconds from `ca.now()`; default 300 (SPIRE's JWT-SVID TTL). */
  readonly ttlSeconds?: number;
  /** Further claims. */
  readonly extraClaims?: Readonly<Record<string, unknown>>;
  /** Signature algorithm; must fit `ca.jwtKey` (EC P-256), so only `ES256` works. */
  readonly alg?: JwtSvidAlgorithm;
}

/**
 * Every JWT-SVID defect {@link createBrokenJwtSvid} can mint, one per rule a
 * validator must enforce: header (JWT-SVID §2), claims (§3), signature and key
 * (§4), compact serialization (§5.1); spec/spiffe.md §3.
 * @example `const defect: JwtSvidDefect = 'alg-hs256';`
 */
export type JwtSvidDefect =
  | 'alg-none'
  | 'alg-hs256'
  | 'alg-eddsa'
  | 'missing-kid'
  | 'unknown-kid'
  | 'bad-typ'
  | 'extra-header'
  | 'missing-sub'
  | 'invalid-sub'
  | 'missing-aud'
  | 'empty-aud'
  | 'wrong-aud'
  | 'missing-exp'
  | 'expired'
  | 'not-before-future'
  | 'bad-signature'
  | 'signed-by-other-key'
  | 'other-trust-domain'
  | 'two-part-token'
  | 'json-not-object';

/**
 * All {@link JwtSvidDefect}s (JWT-SVID §2–§5), for table-driven tests.
 * @example
 * ```ts
 * for (const defect of JWT_SVID_DEFECTS) it(defect, () => assert.throws(() => validate(createBrokenJwtSvid(ca, defect))));
 * ```
 */
export const JWT_SVID_DEFECTS: readonly JwtSvidDefect[] = Object.freeze([
  'alg-none', 'alg-hs256', 'alg-eddsa', 'missing-kid', 'unknown-kid', 'bad-typ', 'extra-header', 'missing-sub',
  'invalid-sub', 'missing-aud', 'empty-aud', 'wrong-aud', 'missing-exp', 'expired', 'not-before-future',
  'bad-signature', 'signed-by-other-key', 'other-trust-domain', 'two-part-token', 'json-not-object',
] as const);

/**
 * Options of {@link createBrokenJwtSvid} (JWT-SVID §3.2).
 * @example `createBrokenJwtSvid(ca, 'wrong-aud', { audience: 'reports' })`
 */
export interface BrokenJwtSvidOptions {
  /** The audience the token is meant for (and, for `wrong-aud`, is not); default {@link JWT_SVID_TEST_AUDIENCE}. */
  readonly audience?: string;
}

/**
 * A valid JWT-SVID (JWT-SVID §2–§5) for `id`, signed with the CA's JWT key (`ca.jwtKey`,
 * `ca.jwtKeyId`), issued at `ca.now()`. Validate it with `ca.jwtBundle()`.
 *
 * @example
 * ```ts
 * const ca = new TestCa({ trustDomain: 'example.org' });
 * const token = createJwtSvid(ca, 'spiffe://example.org/web', 'spiffe://example.org/api');
 * JwtSvid.parseAndValidate(token, ca.jwtBundle(), 'spiffe://example.org/api', { time: ca.now() });
 * ```
 */
export function createJwtSvid(
  ca: TestCa,
  id: SpiffeId | string,
  audience: readonly string[] | string,
  options: TestJwtSvidOptions = {},
): string {
  const now = ca.now();
  return signJwtSvid({
    id: typeof id === 'string' ? SpiffeId.parse(id) : id,
    audience: typeof audience === 'string' ? [audience] : audience,
    key: ca.jwtKey,
    keyId: ca.jwtKeyId,
    issuedAt: now,
    expiresAt: new Date(now.getTime() + (options.ttlSeconds ?? 300) * 1000),
    ...(options.alg === undefined ? {} : { alg: options.alg }),
    ...(options.extraClaims === undefined ? {} : { extraClaims: options.extraClaims }),
  });
}

/**
 * A JWT-SVID for `spiffe://<ca trust domain>/workload` carrying exactly one
 * {@link JwtSvidDefect} (JWT-SVID §2–§5); everything else about it is valid at `ca.now()` for
 * the audience in `options` when checked against `ca.jwtBundle()`.
 *
 * The tokens are built by hand, not with `signJwtSvid` (which refuses most
 * of these defects), so they also serve as an independent encoder.
 *
 * @example
 * ```ts
 * for (const defect of JWT_SVID_DEFECTS) {
 *   assert.throws(() => JwtSvid.parseAndValidate(createBrokenJwtSvid(ca, defect), ca.jwtBundle(), JWT_SVID_TEST_AUDIENCE));
 * }
 * ```
 */
export function createBrokenJwtSvid(ca: TestCa, defect: JwtSvidDefect, options: BrokenJwtSvidOptions = {}): string {
  const audience = options.audience ?? JWT_SVID_TEST_AUDIENCE;
  const td = ca.trustDomain.name;
  const iat = Math.floor(ca.now().getTime() / 1000);
  const header = { alg: 'ES256', kid: ca.jwtKeyId, typ: 'JWT' };
  const claims = { sub: `spiffe://${td}/workload`, aud: [audience], exp: iat + 300, iat };
  const es256 = (input: Buffer): Buffer => cryptoSign('sha256', input, { key: ca.jwtKey, dsaEncoding: 'ieee-p1363' });
  const withoutKey = <T extends object>(o: T, name: keyof T): Partial<T> => {
    const copy: Partial<T> = { ...o };
    delete copy[name];
    return copy;
  };

  switch (defect) {
    case 'alg-none':
      return encodeJwt({ ...header, alg: 'none' }, claims, () => Buffer.alloc(0));
    case 'alg-hs256': {
      // The classic key-confusion attack: HMAC keyed with the authority's public key, which the attacker knows.
      const secret = createPublicKey(ca.jwtKey).export({ type: 'spki', format: 'pem' });
      return encodeJwt({ ...header, alg: 'HS256' }, claims, (input) => createHmac('sha256', secret).update(input).digest());
    }
    case 'alg-eddsa': {
      const key = generateKey('ed25519');
      return encodeJwt({ ...header, alg: 'EdDSA' }, claims, (input) => cryptoSign(null, input, key));
    }
    case 'missing-kid':
      return encodeJwt(withoutKey(header, 'kid'), claims, es256);
    case 'unknown-kid':
      return encodeJwt({ ...header, kid: `${ca.jwtKeyId}-unknown` }, claims, es256);
    case 'bad-typ':
      return encodeJwt({ ...header, typ: 'at+jwt' }, claims, es256);
    case 'extra-header':
      return encodeJwt({ ...header, jku: 'https://attacker.example/jwks.json' }, claims, es256);
    case 'missing-sub':
      return encodeJwt(header, withoutKey(claims, 'sub'), es256);
    case 'invalid-sub':
      return encodeJwt(header, { ...claims, sub: `https://${td}/workload` }, es256);
    case 'missing-aud':
      return encodeJwt(header, withoutKey(claims, 'aud'), es256);
    case 'empty-aud':
      return encodeJwt(header, { ...claims, aud: [] }, es256);
    case 'wrong-aud':
      return encodeJwt(header, { ...claims, aud: [`${audience}-wrong`] }, es256);
    case 'missing-exp':
      return encodeJwt(header, withoutKey(claims, 'exp'), es256);
    case 'expired':
      // Ten minutes past expiry: outside any reasonable leeway.
      return encodeJwt(header, { ...claims, iat: iat - 900, exp: iat - 600 }, es256);
    case 'not-before-future':
      return encodeJwt(header, { ...claims, nbf: iat + 3600, exp: iat + 7200 }, es256);
    case 'bad-signature': {
      const [h, p, s] = encodeJwt(header, claims, es256).split('.') as [string, string, string];
      const sig = Buffer.from(s, 'base64url');
      sig[0]! ^= 0x01;
      return `${h}.${p}.${sig.toString('base64url')}`;
    }
    case 'signed-by-other-key': {
      const other = generateKey('ec-p256');
      return encodeJwt(header, claims, (input) => cryptoSign('sha256', input, { key: other, dsaEncoding: 'ieee-p1363' }));
    }
    case 'other-trust-domain':
      return encodeJwt(header, { ...claims, sub: `spiffe://other-${td}/workload` }, es256);
    case 'two-part-token':
      return encodeJwt(header, claims, es256).split('.').slice(0, 2).join('.');
    case 'json-not-object':
      return encodeJwt(header, [claims], es256);
  }
}

/** `base64url(JSON(header)) . base64url(JSON(payload)) . base64url(signature)` (RFC 7515 §7.1). */
function encodeJwt(header: object, payload: unknown, sign: (signingInput: Buffer) => Buffer): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${sign(Buffer.from(input, 'latin1')).toString('base64url')}`;
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

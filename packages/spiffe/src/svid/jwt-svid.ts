/**
 * JWT-SVIDs (JWT-SVID §2–§5 and Appendix A; spec/spiffe.md §3): parsing,
 * validation against a JWT bundle source, and signing.
 *
 * Modelled on go-spiffe v2's `svid/jwtsvid`, implemented with `node:crypto`
 * only. Everything here is synchronous: no step waits on I/O.
 *
 * @module
 */
import { constants, KeyObject, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import { JwtSvidError, OptionsError } from '../errors/index.js';
import { SpiffeId, type TrustDomain } from '../id/index.js';
import type { JwtBundleSource } from '../bundle/source.js';

/**
 * The JWS algorithms a JWT-SVID may be signed with (JWT-SVID §2.1): RSA
 * PKCS#1 v1.5, ECDSA (IEEE P1363 `r||s` signatures) and RSA-PSS (salt length
 * equal to the hash length). `none`, HMAC (`HS*`) and `EdDSA` are refused.
 * @example `signJwtSvid({ ...options, alg: 'PS256' })`
 */
export type JwtSvidAlgorithm = 'RS256' | 'RS384' | 'RS512' | 'ES256' | 'ES384' | 'ES512' | 'PS256' | 'PS384' | 'PS512';

/**
 * Options of {@link JwtSvid.parseAndValidate} and {@link JwtSvid.parseInsecure}
 * (JWT-SVID §3.3, §4; RFC 7519 §4.1.4–4.1.5).
 * @example `JwtSvid.parseAndValidate(token, bundles, 'reports', { leewaySeconds: 60 })`
 */
export interface JwtSvidValidationOptions {
  /** The time to validate `exp` and `nbf` against; default: the current time. */
  readonly time?: Date;
  /**
   * Clock skew tolerated on `exp` and `nbf`, in seconds; default `0`: a token
   * is refused from its `exp` second on. go-spiffe inherits go-jose's 60 s
   * default leeway; pass `60` for the same behaviour.
   */
  readonly leewaySeconds?: number;
  /** Operator hint to attach to the SVID (Workload API `JWTSVID.hint`); default `''`. */
  readonly hint?: string;
}

/**
 * Options of {@link signJwtSvid} (JWT-SVID §2–§3).
 * @example `{ id, audience: ['reports'], key, keyId: 'k1', expiresAt: new Date(Date.now() + 300_000) }`
 */
export interface JwtSvidSignOptions {
  /** The SPIFFE ID to put in `sub`. */
  readonly id: SpiffeId;
  /** The audiences to put in `aud`: at least one, each non-empty. */
  readonly audience: readonly string[];
  /** The private signing key: EC P-256/P-384/P-521 or RSA (at least 2048 bits). */
  readonly key: KeyObject;
  /** The key ID (`kid`) under which the key is published in the JWT bundle. */
  readonly keyId: string;
  /** Expiry (`exp`), rounded down to the second. */
  readonly expiresAt: Date;
  /** Issue time (`iat`), rounded down to the second; default: the current time. */
  readonly issuedAt?: Date;
  /** Signature algorithm; default from the key: P-256 → ES256, P-384 → ES384, P-521 → ES512, RSA → RS256, RSA-PSS → PS256. */
  readonly alg?: JwtSvidAlgorithm;
  /** Further claims to add. `sub`, `aud`, `exp` and `iat` cannot be overridden. */
  readonly extraClaims?: Readonly<Record<string, unknown>>;
}

/** Tokens longer than this are refused before any decoding. */
const MAX_TOKEN_LENGTH = 64 * 1024;

/** Latest time a JavaScript `Date` can hold, in milliseconds. */
const MAX_DATE_MS = 8.64e15;

type Hash = 'sha256' | 'sha384' | 'sha512';

interface AlgorithmSpec {
  readonly family: 'RS' | 'ES' | 'PS';
  readonly hash: Hash;
  /** ES only: the curve as Node names it, and the P1363 signature length. */
  readonly curve?: string;
  readonly signatureLength?: number;
}

// A Map, not an object literal, so a header `alg` of "__proto__" or
// "constructor" cannot reach Object.prototype.
const ALGORITHMS: ReadonlyMap<string, AlgorithmSpec> = new Map<JwtSvidAlgorithm, AlgorithmSpec>([
  ['RS256', { family: 'RS', hash: 'sha256' }],
  ['RS384', { family: 'RS', hash: 'sha384' }],
  ['RS512', { family: 'RS', hash: 'sha512' }],
  ['ES256', { family: 'ES', hash: 'sha256', curve: 'prime256v1', signatureLength: 64 }],
  ['ES384', { family: 'ES', hash: 'sha384', curve: 'secp384r1', signatureLength: 96 }],
  ['ES512', { family: 'ES', hash: 'sha512', curve: 'secp521r1', signatureLength: 132 }],
  ['PS256', { family: 'PS', hash: 'sha256' }],
  ['PS384', { family: 'PS', hash: 'sha384' }],
  ['PS512', { family: 'PS', hash: 'sha512' }],
]);

const HASH_LENGTH: Record<Hash, number> = { sha256: 32, sha384: 48, sha512: 64 };

const CURVE_ALGORITHM: ReadonlyMap<string, JwtSvidAlgorithm> = new Map([
  ['prime256v1', 'ES256'],
  ['secp384r1', 'ES384'],
  ['secp521r1', 'ES512'],
]);

const ALLOWED_HEADER_PARAMETERS = new Set(['alg', 'kid', 'typ']);
const RESERVED_CLAIMS = new Set(['sub', 'aud', 'exp', 'iat']);
const BASE64URL = /^[A-Za-z0-9_-]*$/;
// fatal: reject invalid UTF-8 instead of replacing it; ignoreBOM: keep a BOM
// so JSON.parse refuses it.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * A validated (or, from {@link JwtSvid.parseInsecure}, parsed) JWT-SVID
 * (JWT-SVID §2–§5): the token and the claims a workload acts on. Mirrors
 * go-spiffe's `jwtsvid.SVID`.
 *
 * @example
 * ```ts
 * const svid = JwtSvid.parseAndValidate(token, bundleSource, 'spiffe://example.org/api');
 * svid.id.toString(); // "spiffe://example.org/web"
 * svid.expiresAt;     // Date of the `exp` claim
 * ```
 */
export class JwtSvid {
  /** The SPIFFE ID of the `sub` claim. */
  readonly id: SpiffeId;
  /** The `aud` claim, always as a list (frozen). */
  readonly audience: readonly string[];
  /** The `exp` claim. */
  readonly expiresAt: Date;
  /** The `iat` claim, when the token carries one. */
  readonly issuedAt: Date | undefined;
  /** Every claim of the token, as decoded from its payload (deeply frozen). */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The token in JWS compact serialization. */
  readonly token: string;
  /** Operator hint from the Workload API (`JWTSVID.hint`), or `''`. */
  readonly hint: string;

  private constructor(token: string, id: SpiffeId, claims: ValidatedClaims, hint: string) {
    this.token = token;
    this.id = id;
    this.audience = claims.audience;
    this.expiresAt = claims.expiresAt;
    this.issuedAt = claims.issuedAt;
    this.claims = claims.all;
    this.hint = hint;
  }

  /**
   * Parses a JWT-SVID and validates it as go-spiffe's
   * `jwtsvid.ParseAndValidate` does (JWT-SVID §2–§5 and Appendix A,
   * spec/spiffe.md §3):
   *
   * - JWS compact serialization (§5.1) of at most 64 KiB: three unpadded, canonical
   *   base64url parts;
   * - a header with only `alg`, `kid` and `typ` (§2); `alg` one of
   *   {@link JwtSvidAlgorithm} (§2.1); `typ`, if present, `JWT` or `JOSE`
   *   (§2.3); `kid` required (optional in §2.2, but go-spiffe and Tessera
   *   need it to pick the key);
   * - `sub` a SPIFFE ID (§3.1); the key is the authority `kid` of the JWT bundle of
   *   `sub`'s trust domain, of the type and curve `alg` names, and the
   *   signature must verify with it (§4);
   * - then, and only then, the claims: `aud` (a string or a non-empty list of
   *   strings) holding at least one of `audience` (§3.2); `exp` a number and not
   *   reached (§3.3); `nbf` and `iat`, when present, numbers; `nbf` reached.
   *
   * `iat` is not compared with the clock: the issuer's clock may run slightly
   * ahead, and `exp` already bounds the token's life.
   *
   * @param audience The audiences this validator accepts: the token must name
   *   at least one. Required, so that no token is ever accepted for any audience.
   * @throws {@link OptionsError} `ERR_INVALID_OPTIONS` when `audience` is empty,
   *   holds an empty string, or other options are invalid.
   * @throws {@link JwtSvidError} `ERR_JWTSVID_INVALID` (malformed or not a
   *   JWT-SVID, or `nbf` not reached), `ERR_JWTSVID_UNTRUSTED` (no bundle, no authority for `kid`,
   *   key does not fit `alg`, bad signature), `ERR_JWTSVID_EXPIRED` or
   *   `ERR_JWTSVID_AUDIENCE`.
   * @example
   * ```ts
   * const svid = JwtSvid.parseAndValidate(token, ca.jwtBundle(), ['spiffe://example.org/api']);
   * ```
   */
  static parseAndValidate(
    token: string,
    bundleSource: JwtBundleSource,
    audience: readonly string[] | string,
    options: JwtSvidValidationOptions = {},
  ): JwtSvid {
    const expected = expectedAudience(audience);
    const opts = validationOptions(options);
    if (bundleSource === null || typeof bundleSource !== 'object' || typeof bundleSource.getJwtBundleForTrustDomain !== 'function') {
      throw new OptionsError('a JWT bundle source (an object with getJwtBundleForTrustDomain) is required to validate a JWT-SVID');
    }
    const parsed = parseToken(token, true);
    const key = findAuthority(bundleSource, parsed.id.trustDomain, parsed.kid);
    verifySignature(parsed, key);
    return new JwtSvid(token, parsed.id, validateClaims(parsed.claims, expected, opts), opts.hint);
  }

  /**
   * Parses a JWT-SVID **without verifying its signature**, as go-spiffe's
   * `jwtsvid.ParseInsecure` does: for tokens that come straight from the
   * Workload API, which validated them already. Everything else
   * {@link JwtSvid.parseAndValidate} checks still applies, except that `kid`
   * may be absent (go-spiffe needs it only to find the key).
   *
   * Never use this on a token received from a peer.
   *
   * @throws {@link OptionsError} `ERR_INVALID_OPTIONS` when `audience` is empty.
   * @throws {@link JwtSvidError} `ERR_JWTSVID_INVALID`, `ERR_JWTSVID_EXPIRED` or `ERR_JWTSVID_AUDIENCE`.
   * @example
   * ```ts
   * const svid = JwtSvid.parseInsecure(tokenFromWorkloadApi, 'spiffe://example.org/api');
   * ```
   */
  static parseInsecure(token: string, audience: readonly string[] | string, options: JwtSvidValidationOptions = {}): JwtSvid {
    const expected = expectedAudience(audience);
    const opts = validationOptions(options);
    const parsed = parseToken(token, false);
    return new JwtSvid(token, parsed.id, validateClaims(parsed.claims, expected, opts), opts.hint);
  }

  /** The token in JWS compact serialization (go-spiffe's `SVID.Marshal`). */
  marshal(): string {
    return this.token;
  }
}

/**
 * Signs a JWT-SVID (JWT-SVID §2–§4, serialized per §5.1): header `{"alg","kid","typ":"JWT"}` and
 * claims `sub`, `aud` (always a list), `exp` and `iat` in whole seconds,
 * followed by `extraClaims`. The issuing side of {@link JwtSvid.parseAndValidate}.
 *
 * @returns the token in JWS compact serialization.
 * @throws {@link OptionsError} `ERR_INVALID_OPTIONS` when an option is
 *   missing or invalid: empty audience, a key that is not private or cannot
 *   sign JWT-SVIDs, an `alg` that does not fit the key, `expiresAt` not after
 *   `issuedAt`, an extra claim overriding a registered one.
 * @example
 * ```ts
 * const token = signJwtSvid({
 *   id: SpiffeId.parse('spiffe://example.org/web'),
 *   audience: ['spiffe://example.org/api'],
 *   key, keyId: 'k1',
 *   expiresAt: new Date(Date.now() + 300_000),
 * });
 * ```
 */
export function signJwtSvid(options: JwtSvidSignOptions): string {
  if (options === null || typeof options !== 'object') throw new OptionsError('signJwtSvid: options are required');
  const { id, audience, key, keyId, expiresAt, extraClaims } = options;
  if (!(id instanceof SpiffeId)) throw new OptionsError('signJwtSvid: "id" must be a SpiffeId');
  if (!Array.isArray(audience) || audience.length === 0) {
    throw new OptionsError('signJwtSvid: "audience" must list at least one audience (JWT-SVID §3.2: "aud" is required)');
  }
  for (const a of audience as unknown[]) {
    if (typeof a !== 'string' || a.length === 0) throw new OptionsError('signJwtSvid: every "audience" entry must be a non-empty string');
  }
  if (typeof keyId !== 'string' || keyId.length === 0) throw new OptionsError('signJwtSvid: "keyId" must be a non-empty string');
  if (!(key instanceof KeyObject) || key.type !== 'private') throw new OptionsError('signJwtSvid: "key" must be a private KeyObject');
  const alg = options.alg ?? defaultAlgorithm(key);
  const spec = ALGORITHMS.get(alg);
  if (spec === undefined) throw new OptionsError(`signJwtSvid: unsupported "alg" ${quote(alg)}; use one of ${[...ALGORITHMS.keys()].join(', ')}`);
  const misfit = keyMisfit(key, alg, spec);
  if (misfit !== undefined) throw new OptionsError(`signJwtSvid: ${misfit}`);
  if (key.asymmetricKeyType !== 'ec' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
    throw new OptionsError('signJwtSvid: RSA keys must be at least 2048 bits');
  }
  if (!isValidDate(expiresAt)) throw new OptionsError('signJwtSvid: "expiresAt" must be a valid Date');
  const issuedAt = options.issuedAt ?? new Date();
  if (!isValidDate(issuedAt)) throw new OptionsError('signJwtSvid: "issuedAt" must be a valid Date');
  const exp = Math.floor(expiresAt.getTime() / 1000);
  const iat = Math.floor(issuedAt.getTime() / 1000);
  if (exp <= iat) throw new OptionsError('signJwtSvid: "expiresAt" must be at least one second after "issuedAt"');
  if (extraClaims !== undefined && (extraClaims === null || typeof extraClaims !== 'object' || Array.isArray(extraClaims))) {
    throw new OptionsError('signJwtSvid: "extraClaims" must be an object');
  }
  if (extraClaims !== undefined) {
    for (const name of Object.keys(extraClaims)) {
      if (RESERVED_CLAIMS.has(name)) throw new OptionsError(`signJwtSvid: "extraClaims" cannot set "${name}"; use the dedicated option`);
    }
  }

  let payloadJson: string;
  try {
    payloadJson = JSON.stringify({ sub: id.toString(), aud: audience, exp, iat, ...extraClaims });
  } catch (e) {
    throw new OptionsError(`signJwtSvid: "extraClaims" cannot be serialised as JSON: ${(e as Error).message}`);
  }
  const signingInput =
    Buffer.from(JSON.stringify({ alg, kid: keyId, typ: 'JWT' })).toString('base64url') + '.' + Buffer.from(payloadJson).toString('base64url');
  const signature = signWith(spec, key, Buffer.from(signingInput, 'latin1'));
  const token = signingInput + '.' + signature.toString('base64url');
  // Validators (this library's included) refuse tokens over 64 KiB; fail here rather than hand out an unusable SVID.
  if (token.length > MAX_TOKEN_LENGTH) throw new OptionsError(`signJwtSvid: the token would be longer than ${MAX_TOKEN_LENGTH} characters; shrink "extraClaims"`);
  return token;
}

// ---------------------------------------------------------------- parsing

interface ParsedToken {
  readonly alg: string;
  readonly spec: AlgorithmSpec;
  readonly kid: string;
  readonly id: SpiffeId;
  readonly claims: Record<string, unknown>;
  readonly signingInput: Buffer;
  readonly signature: Buffer;
}

interface ValidatedClaims {
  readonly audience: readonly string[];
  readonly expiresAt: Date;
  readonly issuedAt: Date | undefined;
  readonly all: Readonly<Record<string, unknown>>;
}

interface NormalizedOptions {
  readonly nowMs: number;
  readonly leewayMs: number;
  readonly hint: string;
}

function invalid(message: string, cause?: unknown): JwtSvidError {
  return new JwtSvidError('ERR_JWTSVID_INVALID', message, cause === undefined ? undefined : { cause });
}

function untrusted(message: string, cause?: unknown): JwtSvidError {
  return new JwtSvidError('ERR_JWTSVID_UNTRUSTED', message, cause === undefined ? undefined : { cause });
}

/**
 * Structure (JWT-SVID §5.1), header (§2) and `sub` (§3.1): everything needed to find
 * the key, and nothing more is trusted before the signature is checked.
 */
function parseToken(token: string, requireKid: boolean): ParsedToken {
  if (typeof token !== 'string') throw invalid('unable to parse JWT token: token must be a string');
  if (token.length > MAX_TOKEN_LENGTH) throw invalid(`unable to parse JWT token: token is longer than ${MAX_TOKEN_LENGTH} characters`);
  const first = token.indexOf('.');
  const second = first < 0 ? -1 : token.indexOf('.', first + 1);
  if (second < 0 || token.indexOf('.', second + 1) >= 0) {
    throw invalid('unable to parse JWT token: expected JWS compact serialization of exactly three dot-separated parts (JWT-SVID §5.1)');
  }
  const header = decodeJsonObject(token.slice(0, first), 'header');
  for (const name of Object.keys(header)) {
    if (!ALLOWED_HEADER_PARAMETERS.has(name)) {
      throw invalid(`token header has unsupported parameter ${quote(name)}; only "alg", "kid" and "typ" are allowed (JWT-SVID §2)`);
    }
  }
  const alg = header['alg'];
  if (typeof alg !== 'string') throw invalid('token header is missing the "alg" parameter');
  const spec = ALGORITHMS.get(alg);
  if (spec === undefined) {
    throw invalid(`unsupported token signature algorithm ${quote(alg)}; JWT-SVIDs use ${[...ALGORITHMS.keys()].join(', ')} (JWT-SVID §2.1)`);
  }
  if ('typ' in header && header['typ'] !== 'JWT' && header['typ'] !== 'JOSE') {
    throw invalid(`token header type ${quote(header['typ'])} is not "JWT" or "JOSE" (JWT-SVID §2.3)`);
  }
  const kid = header['kid'];
  if (kid !== undefined && typeof kid !== 'string') throw invalid('token header key ID ("kid") must be a string');
  // JWT-SVID §2.2 makes `kid` optional; go-spiffe needs it to choose the authority, and so does Tessera.
  if (requireKid && (kid === undefined || kid.length === 0)) throw invalid('token header missing key id ("kid")');

  const claims = decodeJsonObject(token.slice(first + 1, second), 'payload');
  const sub = claims['sub'];
  if (sub === undefined || sub === '') throw invalid('token missing subject claim ("sub")');
  if (typeof sub !== 'string') throw invalid('token has an invalid subject claim: "sub" must be a string');
  let id: SpiffeId;
  try {
    id = SpiffeId.parse(sub);
  } catch (e) {
    throw invalid(`token has an invalid subject claim: ${(e as Error).message}`, e);
  }

  const signature = decodeBase64Url(token.slice(second + 1), 'signature');
  if (signature.length === 0) throw invalid('unable to parse JWT token: signature is empty');
  return { alg, spec, kid: kid ?? '', id, claims, signingInput: Buffer.from(token.slice(0, second), 'latin1'), signature };
}

/** Strict base64url (RFC 7515 §2): URL alphabet, no padding, canonical trailing bits. */
function decodeBase64Url(part: string, what: string): Buffer {
  if (!BASE64URL.test(part) || part.length % 4 === 1) throw invalid(`unable to parse JWT token: ${what} is not unpadded base64url`);
  const bytes = Buffer.from(part, 'base64url');
  // Node ignores non-zero trailing bits; refuse them so one token has one spelling.
  if (bytes.toString('base64url') !== part) throw invalid(`unable to parse JWT token: ${what} is not canonical base64url`);
  return bytes;
}

function decodeJsonObject(part: string, what: 'header' | 'payload'): Record<string, unknown> {
  const bytes = decodeBase64Url(part, what);
  let value: unknown;
  try {
    value = JSON.parse(UTF8.decode(bytes));
  } catch (e) {
    throw invalid(`unable to parse JWT token: ${what} is not valid UTF-8 JSON`, e);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(`unable to parse JWT token: ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

// ---------------------------------------------------------- verification

/** The authority `kid` of the JWT bundle of `td` (JWT-SVID §4; spec/spiffe.md §3). */
function findAuthority(source: JwtBundleSource, td: TrustDomain, kid: string): KeyObject {
  let key: KeyObject | undefined;
  try {
    key = source.getJwtBundleForTrustDomain(td).findJwtAuthority(kid);
  } catch (e) {
    throw untrusted(`no bundle found for trust domain ${quote(td.name)}: ${(e as Error)?.message ?? String(e)}`, e);
  }
  if (key === undefined) throw untrusted(`no JWT authority ${quote(kid)} found for trust domain ${quote(td.name)}`);
  return key;
}

function verifySignature(parsed: ParsedToken, key: KeyObject): void {
  const misfit = keyMisfit(key, parsed.alg, parsed.spec);
  if (misfit !== undefined) throw untrusted(`JWT authority ${quote(parsed.kid)} cannot verify the token: ${misfit}`);
  const { spec, signature } = parsed;
  // Lengths are fixed by the key; checking them first keeps the crypto call
  // from ever seeing DER-encoded or truncated signatures.
  const expectedLength = spec.family === 'ES' ? spec.signatureLength : Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
  let ok = false;
  if (signature.length === expectedLength) {
    try {
      ok = cryptoVerify(spec.hash, parsed.signingInput, { key, ...signatureParams(spec) }, signature);
    } catch {
      ok = false;
    }
  }
  if (!ok) throw untrusted(`token signature does not verify with JWT authority ${quote(parsed.kid)} of trust domain ${quote(parsed.id.trustDomain.name)}`);
}

/** Why `key` cannot sign or verify `alg`, or `undefined` if it can (JWT-SVID §2.1; RFC 7518 §3.3–3.5). */
function keyMisfit(key: KeyObject, alg: string, spec: AlgorithmSpec): string | undefined {
  const type = key.asymmetricKeyType;
  switch (spec.family) {
    case 'ES': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (type !== 'ec' || curve !== spec.curve) return `${alg} needs an EC ${curveName(spec.curve)} key, not ${describeKey(key)}`;
      return undefined;
    }
    case 'RS':
      return type === 'rsa' ? undefined : `${alg} needs an RSA key, not ${describeKey(key)}`;
    case 'PS': {
      if (type === 'rsa') return undefined;
      if (type !== 'rsa-pss') return `${alg} needs an RSA key, not ${describeKey(key)}`;
      // An RSA-PSS key may be restricted to one hash and a minimum salt length.
      const d = key.asymmetricKeyDetails;
      if ((d?.hashAlgorithm !== undefined && d.hashAlgorithm !== spec.hash) || (d?.mgf1HashAlgorithm !== undefined && d.mgf1HashAlgorithm !== spec.hash)) {
        return `${alg} needs SHA-${spec.hash.slice(3)}, but the RSA-PSS key is restricted to ${d.hashAlgorithm ?? d.mgf1HashAlgorithm}`;
      }
      if (d?.saltLength !== undefined && d.saltLength > HASH_LENGTH[spec.hash]) return `the RSA-PSS key requires a salt longer than ${alg} uses`;
      return undefined;
    }
  }
}

function signatureParams(spec: AlgorithmSpec): { dsaEncoding?: 'ieee-p1363'; padding?: number; saltLength?: number } {
  switch (spec.family) {
    case 'ES':
      return { dsaEncoding: 'ieee-p1363' };
    case 'RS':
      return { padding: constants.RSA_PKCS1_PADDING };
    case 'PS':
      // SALTLEN_DIGEST: salt length = hash length on signing, and exactly that on verification (RFC 7518 §3.5).
      return { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST };
  }
}

function signWith(spec: AlgorithmSpec, key: KeyObject, input: Buffer): Buffer {
  try {
    return cryptoSign(spec.hash, input, { key, ...signatureParams(spec) });
  } catch (e) {
    throw new OptionsError(`signJwtSvid: the key cannot sign: ${(e as Error).message}`);
  }
}

function defaultAlgorithm(key: KeyObject): JwtSvidAlgorithm {
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const alg = CURVE_ALGORITHM.get(key.asymmetricKeyDetails?.namedCurve ?? '');
      if (alg === undefined) throw new OptionsError(`signJwtSvid: ${describeKey(key)} cannot sign JWT-SVIDs; use P-256, P-384 or P-521`);
      return alg;
    }
    case 'rsa':
      return 'RS256';
    case 'rsa-pss':
      return 'PS256';
    default:
      throw new OptionsError(`signJwtSvid: ${describeKey(key)} cannot sign JWT-SVIDs; use an EC (P-256, P-384, P-521) or RSA key`);
  }
}

// ---------------------------------------------------------------- claims

/** `aud`, `exp`, `nbf`, `iat` (JWT-SVID §3.2–§3.3; RFC 7519 §4.1), after the signature. */
function validateClaims(claims: Record<string, unknown>, expected: readonly string[], opts: NormalizedOptions): ValidatedClaims {
  const aud = claims['aud'];
  let audience: string[];
  if (aud === undefined) throw invalid('token missing audience claim ("aud") (JWT-SVID §3.2)');
  if (typeof aud === 'string') audience = [aud];
  else if (Array.isArray(aud)) audience = aud as string[];
  else throw invalid('token has an invalid audience claim: "aud" must be a string or a list of strings');
  if (audience.length === 0) throw invalid('token has an invalid audience claim: "aud" is empty');
  if (!audience.every((a) => typeof a === 'string' && a.length > 0)) {
    throw invalid('token has an invalid audience claim: every "aud" value must be a non-empty string');
  }

  if (claims['exp'] === undefined) throw invalid('token missing exp claim');
  const expMs = numericDate(claims, 'exp');
  const nbfMs = 'nbf' in claims ? numericDate(claims, 'nbf') : undefined;
  const iatMs = 'iat' in claims ? numericDate(claims, 'iat') : undefined;

  if (!audience.some((a) => expected.includes(a))) {
    throw new JwtSvidError('ERR_JWTSVID_AUDIENCE', `expected audience in ${JSON.stringify(expected)} (audience=${truncate(JSON.stringify(audience))})`);
  }
  if (nbfMs !== undefined && opts.nowMs + opts.leewayMs < nbfMs) {
    throw invalid(`token is not valid yet: "nbf" is ${new Date(nbfMs).toISOString()}, now is ${new Date(opts.nowMs).toISOString()}`);
  }
  // RFC 7519 §4.1.4: the current time must be before "exp".
  if (opts.nowMs - opts.leewayMs >= expMs) {
    throw new JwtSvidError('ERR_JWTSVID_EXPIRED', `token has expired: "exp" is ${new Date(expMs).toISOString()}, now is ${new Date(opts.nowMs).toISOString()}`);
  }
  return {
    audience: Object.freeze(audience.slice()),
    expiresAt: new Date(expMs),
    issuedAt: iatMs === undefined ? undefined : new Date(iatMs),
    all: deepFreeze(claims),
  };
}

/** A NumericDate claim (RFC 7519 §2) in milliseconds. */
function numericDate(claims: Record<string, unknown>, name: 'exp' | 'nbf' | 'iat'): number {
  const v = claims[name];
  if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v * 1000) > MAX_DATE_MS) {
    throw invalid(`token has an invalid ${name} claim: must be a number of seconds since the epoch`);
  }
  return v * 1000;
}

/** Freezes a parsed JSON value; iterative, since claims may nest deeper than the call stack. */
function deepFreeze<T>(value: T): T {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
      Object.freeze(v);
      for (const child of Object.values(v)) stack.push(child);
    }
  }
  return value;
}

// --------------------------------------------------------------- options

function expectedAudience(audience: readonly string[] | string): readonly string[] {
  const list: unknown[] = typeof audience === 'string' ? [audience] : Array.isArray(audience) ? audience : [];
  if (list.length === 0 || !list.every((a) => typeof a === 'string' && a.length > 0)) {
    throw new OptionsError(
      'an expected audience is required to validate a JWT-SVID: pass one or more non-empty audience strings (JWT-SVID §3.2, Appendix A)',
    );
  }
  return list as string[];
}

function validationOptions(options: JwtSvidValidationOptions): NormalizedOptions {
  if (options === null || typeof options !== 'object') throw new OptionsError('JWT-SVID validation options must be an object');
  const { time, leewaySeconds = 0, hint = '' } = options;
  if (time !== undefined && !isValidDate(time)) throw new OptionsError('"time" must be a valid Date');
  if (typeof leewaySeconds !== 'number' || !Number.isFinite(leewaySeconds) || leewaySeconds < 0) {
    throw new OptionsError('"leewaySeconds" must be a finite number of seconds, zero or more');
  }
  if (typeof hint !== 'string') throw new OptionsError('"hint" must be a string');
  return { nowMs: (time ?? new Date()).getTime(), leewayMs: leewaySeconds * 1000, hint };
}

// --------------------------------------------------------------- helpers

function isValidDate(d: unknown): d is Date {
  return d instanceof Date && !Number.isNaN(d.getTime());
}

function curveName(nodeCurve: string | undefined): string {
  switch (nodeCurve) {
    case 'prime256v1':
      return 'P-256';
    case 'secp384r1':
      return 'P-384';
    case 'secp521r1':
      return 'P-521';
    default:
      return nodeCurve ?? 'unknown curve';
  }
}

function describeKey(key: KeyObject): string {
  const type = key.asymmetricKeyType ?? key.type;
  return type === 'ec' ? `an EC ${curveName(key.asymmetricKeyDetails?.namedCurve)} key` : `a key of type "${type}"`;
}

/** JSON-quotes a value taken from a token, shortened so messages stay readable. */
function quote(value: unknown): string {
  return truncate(JSON.stringify(value) ?? String(value));
}

function truncate(s: string): string {
  return s.length > 200 ? s.slice(0, 200) + '…' : s;
}

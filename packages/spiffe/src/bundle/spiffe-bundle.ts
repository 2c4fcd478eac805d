import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { BundleError, EncodingError } from '../errors/index.js';
import type { TrustDomain } from '../id/index.js';
import { Certificate } from '../internal/x509/certificate.js';
import { exportPublicJwk, importPublicJwk } from './jwk.js';
import { JwtBundle } from './jwt-bundle.js';
import type { JwtBundleSource, SpiffeBundleSource, X509BundleSource } from './source.js';
import { X509Bundle } from './x509-bundle.js';

const X509_SVID_USE = 'x509-svid';
const JWT_SVID_USE = 'jwt-svid';
/** Key types `importPublicJwk` understands; any other `kty` rejects the whole set, as go-jose (and so go-spiffe) does. */
const KNOWN_KTY = new Set(['EC', 'RSA', 'OKP']);
/** Standard (not URL-safe) base64 with padding, as RFC 7517 §4.7 requires for `x5c`. */
const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Initial content of a {@link SpiffeBundle} (SPIFFE Trust Domain and Bundle §4). */
export interface SpiffeBundleInit {
  /** CA certificates (DER or parsed); each must be a CA certificate. */
  readonly x509Authorities?: Iterable<Uint8Array | Certificate>;
  /** JWT authorities by key ID. */
  readonly jwtAuthorities?: Iterable<[string, KeyObject]>;
  /** `spiffe_sequence`: a non-negative safe integer. */
  readonly sequenceNumber?: number;
  /** `spiffe_refresh_hint` in seconds: a non-negative safe integer. */
  readonly refreshHintSeconds?: number;
}

/**
 * A SPIFFE bundle: the X.509 and JWT authorities of one trust domain plus
 * the `spiffe_sequence` and `spiffe_refresh_hint` metadata, exchanged as a
 * JWK Set (SPIFFE Trust Domain and Bundle §4; spec/spiffe.md §4). The trust
 * domain name travels alongside the document, not inside it. Mirrors
 * go-spiffe's `spiffebundle.Bundle` and implements {@link X509BundleSource},
 * {@link JwtBundleSource} and {@link SpiffeBundleSource}.
 *
 * Parsing is as strict as go-spiffe: an unknown `kty`, an `x5c` that is not
 * exactly one CA certificate, or key parameters that do not match the
 * certificate reject the whole document. Keys with an unknown `use` are
 * ignored.
 *
 * @example
 * ```ts
 * const td = TrustDomain.parse('example.org');
 * const bundle = SpiffeBundle.parse(td, await fetchFederationBundle());
 * bundle.sequenceNumber; // e.g. 42
 * const x509 = bundle.getX509BundleForTrustDomain(td);
 * ```
 */
export class SpiffeBundle implements X509BundleSource, JwtBundleSource, SpiffeBundleSource {
  /** The trust domain whose authorities this bundle holds. */
  readonly trustDomain: TrustDomain;
  #x509: Certificate[] = [];
  #jwt = new Map<string, KeyObject>();
  #sequenceNumber: number | undefined;
  #refreshHintSeconds: number | undefined;

  /**
   * Creates a bundle, empty unless `init` gives content.
   * @throws {@link BundleError} `ERR_BUNDLE_INVALID` on a non-CA certificate, an unsupported key or bad metadata.
   */
  constructor(trustDomain: TrustDomain, init: SpiffeBundleInit = {}) {
    this.trustDomain = trustDomain;
    for (const a of init.x509Authorities ?? []) this.addX509Authority(a);
    for (const [kid, key] of init.jwtAuthorities ?? []) this.addJwtAuthority(kid, key);
    this.setSequenceNumber(init.sequenceNumber);
    this.setRefreshHintSeconds(init.refreshHintSeconds);
  }

  /**
   * Parses a SPIFFE bundle document (SPIFFE Trust Domain and Bundle §4).
   *
   * @example
   * ```ts
   * SpiffeBundle.parse(TrustDomain.parse('example.org'), '{"keys":[],"spiffe_sequence":1}');
   * ```
   * @throws {@link BundleError} `ERR_BUNDLE_INVALID`, naming the offending key index and the defect.
   */
  static parse(td: TrustDomain, json: string | Uint8Array): SpiffeBundle {
    let doc: unknown;
    try {
      doc = JSON.parse(typeof json === 'string' ? json : Buffer.from(json).toString('utf8'));
    } catch (e) {
      throw invalid(`cannot parse SPIFFE bundle: invalid JSON: ${(e as Error).message}`, e);
    }
    if (!isObject(doc)) throw invalid('cannot parse SPIFFE bundle: document is not a JSON object');
    const keys = doc['keys'];
    // "keys" MUST be present (§4.1.3); an empty array is legal and trusts nothing.
    if (!Array.isArray(keys)) throw invalid('cannot parse SPIFFE bundle: "keys" is missing or not an array');
    const bundle = new SpiffeBundle(td);
    if ('spiffe_sequence' in doc) bundle.#sequenceNumber = checkUint(doc['spiffe_sequence'], '"spiffe_sequence"', 'cannot parse SPIFFE bundle: ');
    if ('spiffe_refresh_hint' in doc) {
      bundle.#refreshHintSeconds = checkUint(doc['spiffe_refresh_hint'], '"spiffe_refresh_hint"', 'cannot parse SPIFFE bundle: ');
    }
    keys.forEach((k: unknown, i) => SpiffeBundle.#parseKey(bundle, k, i));
    return bundle;
  }

  /**
   * Reads and parses a SPIFFE bundle file.
   *
   * @example
   * ```ts
   * SpiffeBundle.load(TrustDomain.parse('example.org'), '/etc/tessera/federated/example.org.json');
   * ```
   * @throws {@link BundleError} `ERR_BUNDLE_INVALID` when the file cannot be read or parsed.
   */
  static load(td: TrustDomain, path: string): SpiffeBundle {
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch (e) {
      throw new BundleError('ERR_BUNDLE_INVALID', `cannot read SPIFFE bundle file "${path}": ${(e as Error).message}`, { cause: e });
    }
    return SpiffeBundle.parse(td, data);
  }

  /**
   * A SPIFFE bundle holding the authorities of an X.509 bundle.
   *
   * @example
   * ```ts
   * const bundle = SpiffeBundle.fromX509Bundle(X509Bundle.load(td, 'bundle.pem'));
   * ```
   * @throws {@link BundleError} `ERR_BUNDLE_INVALID` when an authority is not a CA certificate.
   */
  static fromX509Bundle(bundle: X509Bundle): SpiffeBundle {
    return new SpiffeBundle(bundle.trustDomain, { x509Authorities: bundle.certificates() });
  }

  /**
   * A SPIFFE bundle holding the authorities of a JWT bundle.
   *
   * @example
   * ```ts
   * const bundle = SpiffeBundle.fromJwtBundle(JwtBundle.load(td, 'jwks.json'));
   * ```
   */
  static fromJwtBundle(bundle: JwtBundle): SpiffeBundle {
    return new SpiffeBundle(bundle.trustDomain, { jwtAuthorities: bundle.jwtAuthorities() });
  }

  /**
   * `spiffe_sequence`, or `undefined` when absent (§4).
   * @example
   * ```ts
   * if ((fetched.sequenceNumber ?? 0) > (current.sequenceNumber ?? 0)) current = fetched;
   * ```
   */
  get sequenceNumber(): number | undefined {
    return this.#sequenceNumber;
  }

  /**
   * `spiffe_refresh_hint` in seconds, or `undefined` when absent (§4).
   * @example
   * ```ts
   * const nextPollMs = (bundle.refreshHintSeconds ?? 300) * 1000;
   * ```
   */
  get refreshHintSeconds(): number | undefined {
    return this.#refreshHintSeconds;
  }

  /**
   * Sets `spiffe_sequence`; `undefined` removes it. Producers increase it on every content change (§4).
   * @example
   * ```ts
   * bundle.setSequenceNumber((bundle.sequenceNumber ?? 0) + 1);
   * ```
   * @throws {@link BundleError} `ERR_BUNDLE_INVALID` unless a non-negative safe integer.
   */
  setSequenceNumber(n: number | undefined): void {
    this.#sequenceNumber = n === undefined ? undefined : checkUint(n, 'sequence number', '');
  }

  /**
   * Sets `spiffe_refresh_hint` in seconds; `undefined` removes it (§4).
   * @example
   * ```ts
   * bundle.setRefreshHintSeconds(300);
   * ```
   * @throws {@link BundleError} `ERR_BUNDLE_INVALID` unless a non-negative safe integer.
   */
  setRefreshHintSeconds(seconds: number | undefined): void {
    this.#refreshHintSeconds = seconds === undefined ? undefined : checkUint(seconds, 'refresh hint', '');
  }

  /**
   * The X.509 authorities as DER buffers, in insertion order.
   * @example
   * ```ts
   * bundle.x509Authorities().length;
   * ```
   */
  x509Authorities(): Buffer[] {
    return this.#x509.map((c) => c.der);
  }

  /** @internal The parsed X.509 authorities. */
  certificates(): readonly Certificate[] {
    return this.#x509;
  }

  /**
   * Adds a CA certificate unless an identical one is present.
   * Only CA certificates are accepted, so that whatever this bundle holds
   * survives {@link SpiffeBundle.marshal} and {@link SpiffeBundle.parse}.
   * @example
   * ```ts
   * bundle.addX509Authority(caCertDer);
   * ```
   * @throws {@link BundleError} `ERR_BUNDLE_INVALID` on a malformed or non-CA certificate or an unsupported key.
   */
  addX509Authority(cert: Uint8Array | Certificate): void {
    const c = toAuthority(cert, 'invalid X.509 authority');
    if (!this.#x509.some((a) => a.der.equals(c.der))) this.#x509.push(c);
  }

  /**
   * Removes an X.509 authority (by DER equality); absent ones are ignored.
   * @example
   * ```ts
   * bundle.removeX509Authority(retiredCaDer);
   * ```
   */
  removeX509Authority(der: Uint8Array): void {
    const b = Buffer.from(der);
    this.#x509 = this.#x509.filter((a) => !a.der.equals(b));
  }

  /**
   * Whether the bundle holds this X.509 authority (by DER equality).
   * @example
   * ```ts
   * bundle.hasX509Authority(caCertDer);
   * ```
   */
  hasX509Authority(der: Uint8Array): boolean {
    const b = Buffer.from(der);
    return this.#x509.some((a) => a.der.equals(b));
  }

  /**
   * A copy of the key-ID → public-key map of JWT authorities.
   * @example
   * ```ts
   * [...bundle.jwtAuthorities().keys()];
   * ```
   */
  jwtAuthorities(): Map<string, KeyObject> {
    return new Map(this.#jwt);
  }

  /**
   * The JWT authority with key ID `kid`, if any.
   * @example
   * ```ts
   * const key = bundle.findJwtAuthority(header.kid);
   * ```
   */
  findJwtAuthority(kid: string): KeyObject | undefined {
    return this.#jwt.get(kid);
  }

  /**
   * Adds or replaces the JWT authority with key ID `kid`; a private key is reduced to its public half.
   * @example
   * ```ts
   * bundle.addJwtAuthority('k1', publicKey);
   * ```
   * @throws {@link BundleError} `ERR_BUNDLE_INVALID` on an empty key ID or an unsupported key.
   */
  addJwtAuthority(kid: string, key: KeyObject): void {
    if (typeof kid !== 'string' || kid.length === 0) throw new BundleError('ERR_BUNDLE_INVALID', 'JWT authority key ID must not be empty');
    let k: KeyObject | string;
    try {
      k = importPublicJwk(exportPublicJwk(key));
    } catch (e) {
      throw new BundleError('ERR_BUNDLE_INVALID', `unsupported JWT authority "${kid}": ${(e as Error).message}`, { cause: e });
    }
    if (typeof k === 'string') throw new BundleError('ERR_BUNDLE_INVALID', `unsupported JWT authority "${kid}": ${k}`);
    this.#jwt.set(kid, k);
  }

  /**
   * Removes the JWT authority with key ID `kid`; absent ones are ignored.
   * @example
   * ```ts
   * bundle.removeJwtAuthority('k1');
   * ```
   */
  removeJwtAuthority(kid: string): void {
    this.#jwt.delete(kid);
  }

  /**
   * Whether the bundle holds a JWT authority with key ID `kid`.
   * @example
   * ```ts
   * bundle.hasJwtAuthority('k1');
   * ```
   */
  hasJwtAuthority(kid: string): boolean {
    return this.#jwt.has(kid);
  }

  /**
   * Whether the bundle holds no authority of either kind (everything untrusted, §4).
   * @example
   * ```ts
   * if (bundle.isEmpty()) log.warn('federated bundle trusts nothing');
   * ```
   */
  isEmpty(): boolean {
    return this.#x509.length === 0 && this.#jwt.size === 0;
  }

  /**
   * The X.509 part as an {@link X509Bundle} (a copy).
   * @example
   * ```ts
   * const x509 = spiffeBundle.x509Bundle();
   * ```
   */
  x509Bundle(): X509Bundle {
    return new X509Bundle(this.trustDomain, this.#x509);
  }

  /**
   * The JWT part as a {@link JwtBundle} (a copy).
   * @example
   * ```ts
   * const jwt = spiffeBundle.jwtBundle();
   * ```
   */
  jwtBundle(): JwtBundle {
    return new JwtBundle(this.trustDomain, this.#jwt);
  }

  /**
   * Whether both bundles have the same trust domain, authorities (X.509 in
   * any order), sequence number and refresh hint.
   * @example
   * ```ts
   * if (!fetched.equals(current)) publish(fetched);
   * ```
   */
  equals(other: SpiffeBundle): boolean {
    if (!other.trustDomain.equals(this.trustDomain)) return false;
    if (other.#sequenceNumber !== this.#sequenceNumber || other.#refreshHintSeconds !== this.#refreshHintSeconds) return false;
    if (other.#x509.length !== this.#x509.length || other.#jwt.size !== this.#jwt.size) return false;
    if (!this.#x509.every((a) => other.#x509.some((b) => a.der.equals(b.der)))) return false;
    for (const [kid, key] of this.#jwt) {
      const o = other.#jwt.get(kid);
      if (o === undefined || !o.equals(key)) return false;
    }
    return true;
  }

  /**
   * An independent copy.
   * @example
   * ```ts
   * const next = bundle.clone();
   * next.setSequenceNumber((bundle.sequenceNumber ?? 0) + 1);
   * ```
   */
  clone(): SpiffeBundle {
    const c = new SpiffeBundle(this.trustDomain);
    c.#x509 = [...this.#x509];
    c.#jwt = new Map(this.#jwt);
    c.#sequenceNumber = this.#sequenceNumber;
    c.#refreshHintSeconds = this.#refreshHintSeconds;
    return c;
  }

  /**
   * The bundle as a SPIFFE bundle document (§4): X.509 authorities first,
   * each with full public-key parameters matching its `x5c` (go-spiffe
   * rejects anything else), then JWT authorities with their `kid`.
   * @example
   * ```ts
   * writeFileSync('example.org.json', bundle.marshal());
   * ```
   */
  marshal(): string {
    const keys: Record<string, unknown>[] = [
      ...this.#x509.map((c) => ({ ...exportPublicJwk(c.publicKey), use: X509_SVID_USE, x5c: [c.der.toString('base64')] })),
      ...[...this.#jwt].map(([kid, key]) => ({ ...exportPublicJwk(key), kid, use: JWT_SVID_USE })),
    ];
    const doc: Record<string, unknown> = { keys };
    if (this.#sequenceNumber !== undefined) doc['spiffe_sequence'] = this.#sequenceNumber;
    if (this.#refreshHintSeconds !== undefined) doc['spiffe_refresh_hint'] = this.#refreshHintSeconds;
    return JSON.stringify(doc);
  }

  /**
   * The X.509 part for this bundle's own trust domain.
   * @example
   * ```ts
   * bundle.getX509BundleForTrustDomain(td).x509Authorities();
   * ```
   * @throws {@link BundleError} `ERR_BUNDLE_NOT_FOUND` for any other trust domain.
   */
  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle {
    if (!td.equals(this.trustDomain)) throw new BundleError('ERR_BUNDLE_NOT_FOUND', `no X.509 bundle found for trust domain "${td.name}"`);
    return this.x509Bundle();
  }

  /**
   * The JWT part for this bundle's own trust domain.
   * @example
   * ```ts
   * bundle.getJwtBundleForTrustDomain(td).findJwtAuthority(kid);
   * ```
   * @throws {@link BundleError} `ERR_BUNDLE_NOT_FOUND` for any other trust domain.
   */
  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle {
    if (!td.equals(this.trustDomain)) throw new BundleError('ERR_BUNDLE_NOT_FOUND', `no JWT bundle found for trust domain "${td.name}"`);
    return this.jwtBundle();
  }

  /**
   * This bundle, for its own trust domain.
   * @example
   * ```ts
   * bundle.getSpiffeBundleForTrustDomain(td) === bundle; // true
   * ```
   * @throws {@link BundleError} `ERR_BUNDLE_NOT_FOUND` for any other trust domain.
   */
  getSpiffeBundleForTrustDomain(td: TrustDomain): SpiffeBundle {
    if (!td.equals(this.trustDomain)) throw new BundleError('ERR_BUNDLE_NOT_FOUND', `no SPIFFE bundle found for trust domain "${td.name}"`);
    return this;
  }

  /** Validates key `i` of a bundle document and adds it (§4, with go-spiffe's strictness). */
  static #parseKey(bundle: SpiffeBundle, k: unknown, i: number): void {
    const where = `cannot parse SPIFFE bundle: key ${i}`;
    if (!isObject(k)) throw invalid(`${where}: not a JSON object`);
    const kty = k['kty'];
    if (typeof kty !== 'string' || kty.length === 0) throw invalid(`${where}: missing key type ("kty")`);
    if (!KNOWN_KTY.has(kty)) throw invalid(`${where}: unsupported key type "${kty}"`);
    const use = k['use'];
    if (typeof use !== 'string' || use.length === 0) throw invalid(`${where}: missing key use ("use")`);
    switch (use) {
      case X509_SVID_USE: {
        if ('kid' in k) throw invalid(`${where}: an x509-svid key must not have a key ID ("kid")`);
        const x5c = k['x5c'];
        if (!Array.isArray(x5c)) throw invalid(`${where}: an x509-svid key needs "x5c" holding exactly one certificate`);
        if (x5c.length !== 1) throw invalid(`${where}: an x509-svid key needs exactly one certificate in "x5c", got ${x5c.length}`);
        const b64: unknown = x5c[0];
        if (typeof b64 !== 'string' || b64.length === 0 || !STD_BASE64.test(b64)) {
          throw invalid(`${where}: the "x5c" certificate is not standard base64`);
        }
        const cert = toAuthority(Buffer.from(b64, 'base64'), where);
        // go-jose rejects a JWK whose parameters are absent or differ from x5c; so do we, so that what we accept go-spiffe accepts too.
        const declared = importPublicJwk(k);
        if (typeof declared === 'string') throw invalid(`${where}: x509-svid key parameters are missing or invalid: ${declared}`);
        if (!declared.equals(cert.publicKey)) throw invalid(`${where}: key parameters do not match the public key of the "x5c" certificate`);
        if (!bundle.#x509.some((a) => a.der.equals(cert.der))) bundle.#x509.push(cert);
        return;
      }
      case JWT_SVID_USE: {
        const kid = k['kid'];
        if (typeof kid !== 'string' || kid.length === 0) throw invalid(`${where}: a jwt-svid key needs a non-empty key ID ("kid")`);
        const key = importPublicJwk(k);
        if (typeof key === 'string') throw invalid(`${where} ("${kid}"): ${key}`);
        if (bundle.#jwt.has(kid)) throw invalid(`${where}: duplicate key ID "${kid}"`);
        bundle.#jwt.set(kid, key);
        return;
      }
      default:
        // Consumers ignore keys whose use they do not know (§4).
        return;
    }
  }
}

/**
 * Parses and checks one X.509 authority: a well-formed CA certificate whose
 * key can be written as a JWK (otherwise marshal could not emit it).
 * @param where message prefix naming the authority.
 */
function toAuthority(cert: Uint8Array | Certificate, where: string): Certificate {
  let c: Certificate;
  let key: KeyObject;
  try {
    c = cert instanceof Certificate ? cert : new Certificate(cert);
    key = c.publicKey;
  } catch (e) {
    if (e instanceof EncodingError) throw invalid(`${where}: ${e.message}`, e);
    throw e;
  }
  if (!c.isCa) throw invalid(`${where}: certificate is not a CA certificate`);
  let reason: string | undefined;
  try {
    const k = importPublicJwk(exportPublicJwk(key));
    if (typeof k === 'string') reason = k;
  } catch (e) {
    reason = (e as Error).message;
  }
  if (reason !== undefined) throw invalid(`${where}: unsupported certificate public key: ${reason}`);
  return c;
}

function checkUint(v: unknown, what: string, prefix: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    const got = typeof v === 'number' || typeof v === 'bigint' ? `${typeof v} ${String(v)}` : (JSON.stringify(v) ?? typeof v);
    throw invalid(`${prefix}${what} must be a non-negative integer no larger than 2^53-1, got ${got}`);
  }
  return v === 0 ? 0 : v; // normalise -0
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function invalid(message: string, cause?: unknown): BundleError {
  return new BundleError('ERR_BUNDLE_INVALID', message, cause === undefined ? undefined : { cause });
}

import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { BundleError } from '../errors/index.js';
import type { TrustDomain } from '../id/index.js';
import { exportPublicJwk, importPublicJwk } from './jwk.js';
import type { JwtBundleSource } from './source.js';

/**
 * The JWT authorities (public keys by key ID) of one trust domain, used to
 * validate JWT-SVIDs (JWT-SVID §6, SPIFFE Trust Domain and Bundle §4).
 * Implements {@link JwtBundleSource}.
 *
 * @example
 * ```ts
 * const bundle = JwtBundle.parse(td, '{"keys":[{"kty":"EC","kid":"k1",...}]}');
 * bundle.findJwtAuthority('k1');
 * ```
 */
export class JwtBundle implements JwtBundleSource {
  readonly trustDomain: TrustDomain;
  #authorities = new Map<string, KeyObject>();

  constructor(trustDomain: TrustDomain, authorities?: Iterable<[string, KeyObject]>) {
    this.trustDomain = trustDomain;
    if (authorities) for (const [kid, key] of authorities) this.addJwtAuthority(kid, key);
  }

  /**
   * Parses a JWK Set (`{"keys":[...]}`); every key needs a `kid`.
   * @throws {@link BundleError} `ERR_BUNDLE_INVALID`
   */
  static parse(td: TrustDomain, jwks: string | Uint8Array): JwtBundle {
    let doc: unknown;
    try {
      doc = JSON.parse(typeof jwks === 'string' ? jwks : Buffer.from(jwks).toString('utf8'));
    } catch (e) {
      throw new BundleError('ERR_BUNDLE_INVALID', `cannot parse JWT bundle: invalid JSON: ${(e as Error).message}`, { cause: e });
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new BundleError('ERR_BUNDLE_INVALID', 'cannot parse JWT bundle: not a JSON object');
    const keys = (doc as Record<string, unknown>)['keys'];
    if (!Array.isArray(keys)) throw new BundleError('ERR_BUNDLE_INVALID', 'cannot parse JWT bundle: "keys" must be an array');
    const bundle = new JwtBundle(td);
    keys.forEach((k: unknown, i) => {
      if (typeof k !== 'object' || k === null || Array.isArray(k)) throw new BundleError('ERR_BUNDLE_INVALID', `cannot parse JWT bundle: key ${i} is not an object`);
      const jwk = k as Record<string, unknown>;
      const kid = jwk['kid'];
      if (typeof kid !== 'string' || kid.length === 0) throw new BundleError('ERR_BUNDLE_INVALID', `cannot parse JWT bundle: key ${i} is missing its key ID ("kid")`);
      const key = importPublicJwk(jwk);
      if (typeof key === 'string') throw new BundleError('ERR_BUNDLE_INVALID', `cannot parse JWT bundle: key ${i} (${kid}): ${key}`);
      if (bundle.#authorities.has(kid)) throw new BundleError('ERR_BUNDLE_INVALID', `cannot parse JWT bundle: duplicate key ID "${kid}"`);
      bundle.#authorities.set(kid, key);
    });
    return bundle;
  }

  /** Reads a JWKS file. @throws {@link BundleError} */
  static load(td: TrustDomain, path: string): JwtBundle {
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch (e) {
      throw new BundleError('ERR_BUNDLE_INVALID', `cannot read JWT bundle file "${path}": ${(e as Error).message}`, { cause: e });
    }
    return JwtBundle.parse(td, data);
  }

  /** A copy of the key-ID → public-key map. */
  jwtAuthorities(): Map<string, KeyObject> {
    return new Map(this.#authorities);
  }

  /** The public key with key ID `kid`, if any. */
  findJwtAuthority(kid: string): KeyObject | undefined {
    return this.#authorities.get(kid);
  }

  hasJwtAuthority(kid: string): boolean {
    return this.#authorities.has(kid);
  }

  /** Adds or replaces the authority with key ID `kid`. */
  addJwtAuthority(kid: string, key: KeyObject): void {
    if (typeof kid !== 'string' || kid.length === 0) throw new BundleError('ERR_BUNDLE_INVALID', 'JWT authority key ID must not be empty');
    this.#authorities.set(kid, key.type === 'public' ? key : importKeyPublic(key));
  }

  removeJwtAuthority(kid: string): void {
    this.#authorities.delete(kid);
  }

  isEmpty(): boolean {
    return this.#authorities.size === 0;
  }

  equals(other: JwtBundle): boolean {
    if (!other.trustDomain.equals(this.trustDomain) || other.#authorities.size !== this.#authorities.size) return false;
    for (const [kid, key] of this.#authorities) {
      const o = other.#authorities.get(kid);
      if (o === undefined || !o.equals(key)) return false;
    }
    return true;
  }

  clone(): JwtBundle {
    return new JwtBundle(this.trustDomain, this.#authorities);
  }

  /** The bundle as a JWK Set JSON string, `kid` and `use: "jwt-svid"` on every key. */
  marshal(): string {
    return JSON.stringify({ keys: [...this.#authorities].map(([kid, key]) => ({ ...exportPublicJwk(key), kid, use: 'jwt-svid' })) });
  }

  /** Returns this bundle for its own trust domain. @throws {@link BundleError} for any other. */
  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle {
    if (!td.equals(this.trustDomain)) throw new BundleError('ERR_BUNDLE_NOT_FOUND', `no JWT bundle found for trust domain "${td.name}"`);
    return this;
  }
}

function importKeyPublic(key: KeyObject): KeyObject {
  const jwk = exportPublicJwk(key);
  const k = importPublicJwk(jwk);
  if (typeof k === 'string') throw new BundleError('ERR_BUNDLE_INVALID', `unsupported JWT authority: ${k}`);
  return k;
}

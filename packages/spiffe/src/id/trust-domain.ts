import { SpiffeIdError } from '../errors/index.js';
import { ERR_MISSING_TD, ERR_SCHEME, ERR_TD_CHARS, ERR_TD_TOO_LONG, isTrustDomainChar, ERR_EMPTY } from './charset.js';
import { SpiffeId } from './spiffe-id.js';

const SCHEME = 'spiffe://';
const MAX_TD_BYTES = 255;

/**
 * Returns the reason `name` is not a valid trust domain name, or `undefined`.
 * Trust domain names are ASCII, so characters equal bytes. SPIFFE-ID §2.1.
 * @internal
 */
export function trustDomainNameError(name: string, from = 0, to = name.length): string | undefined {
  if (to === from) return ERR_MISSING_TD;
  for (let i = from; i < to; i++) {
    if (!isTrustDomainChar(name.charCodeAt(i))) return ERR_TD_CHARS;
  }
  if (to - from > MAX_TD_BYTES) return ERR_TD_TOO_LONG;
  return undefined;
}

const cache = new Map<string, TrustDomain>();

/**
 * A SPIFFE trust domain (SPIFFE-ID §2.1): a lowercase name of
 * `[a-z0-9._-]`, at most 255 bytes.
 *
 * Instances are interned: equal trust domains are the same object, so `===`
 * works, though {@link TrustDomain.equals} is clearer.
 *
 * @example
 * ```ts
 * const td = TrustDomain.parse('example.org');
 * td.idString(); // "spiffe://example.org"
 * TrustDomain.parse('spiffe://example.org/web').name; // "example.org"
 * ```
 */
export class TrustDomain {
  /** The trust domain name, e.g. `example.org`. */
  readonly name: string;

  private constructor(name: string) {
    this.name = name;
  }

  /** @internal Trusted constructor for names that are already validated. */
  static fromValidatedName(name: string): TrustDomain {
    let td = cache.get(name);
    if (td === undefined) {
      td = new TrustDomain(name);
      if (cache.size < 10_000) cache.set(name, td);
    }
    return td;
  }

  /**
   * Parses a trust domain from a bare name (`example.org`) or from a SPIFFE ID
   * (`spiffe://example.org/path`), taking the ID's trust domain.
   * @throws {@link SpiffeIdError} `ERR_TRUST_DOMAIN_INVALID` or, for an ID, `ERR_SPIFFEID_INVALID`.
   */
  static parse(nameOrId: string): TrustDomain {
    if (typeof nameOrId !== 'string' || nameOrId.length === 0) {
      throw new SpiffeIdError('trust domain is missing', 'ERR_TRUST_DOMAIN_INVALID');
    }
    if (nameOrId.includes(':/')) return SpiffeId.parse(nameOrId).trustDomain;
    const err = trustDomainNameError(nameOrId);
    if (err !== undefined) throw new SpiffeIdError(err, 'ERR_TRUST_DOMAIN_INVALID');
    return TrustDomain.fromValidatedName(nameOrId);
  }

  /**
   * Parses a trust domain ID (`spiffe://example.org`, no path), as used for
   * the keys of the Workload API's bundle maps.
   * @throws {@link SpiffeIdError} if `id` is not a SPIFFE ID or has a path.
   */
  static fromIdString(id: string): TrustDomain {
    if (typeof id !== 'string' || id.length === 0) throw new SpiffeIdError(ERR_EMPTY);
    if (!id.startsWith(SCHEME)) throw new SpiffeIdError(ERR_SCHEME);
    const parsed = SpiffeId.parse(id);
    if (parsed.path !== '') throw new SpiffeIdError(`trust domain ID "${id}" must not have a path`);
    return parsed.trustDomain;
  }

  /** The trust domain's SPIFFE ID string, `spiffe://<name>`. */
  idString(): string {
    return SCHEME + this.name;
  }

  /** The trust domain's SPIFFE ID (root path). */
  id(): SpiffeId {
    return SpiffeId.fromPath(this, '');
  }

  /** Whether `other` names the same trust domain. */
  equals(other: TrustDomain): boolean {
    return other.name === this.name;
  }

  /** Orders trust domains by name. */
  compare(other: TrustDomain): number {
    return this.name < other.name ? -1 : this.name > other.name ? 1 : 0;
  }

  /** The bare trust domain name. */
  toString(): string {
    return this.name;
  }

  /** Serialises as the bare name. */
  toJSON(): string {
    return this.name;
  }
}

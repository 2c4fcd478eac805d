import { SpiffeIdError } from '../errors/index.js';
import { ERR_EMPTY, ERR_SCHEME } from './charset.js';
import { pathError, validatePathSegment } from './path.js';
import { TrustDomain, trustDomainNameError } from './trust-domain.js';

const SCHEME = 'spiffe://';

/**
 * A SPIFFE ID (SPIFFE-ID §2): `spiffe://<trust-domain><path>`.
 *
 * Parsing is exactly as strict as go-spiffe v2: lowercase scheme, trust domain
 * of `[a-z0-9._-]` (at most 255 bytes, which go-spiffe does not check), path
 * segments of `[a-zA-Z0-9._-]` without empty, `.` or `..` segments or a
 * trailing slash, and no query, fragment, port or userinfo.
 *
 * @example
 * ```ts
 * const id = SpiffeId.parse('spiffe://example.org/ns/backend/sa/default');
 * id.trustDomain.name; // "example.org"
 * id.path;             // "/ns/backend/sa/default"
 * ```
 */
export class SpiffeId {
  /** The trust domain the ID belongs to. */
  readonly trustDomain: TrustDomain;
  /** The path, `''` for the trust domain's root ID, otherwise starting with `/`. */
  readonly path: string;
  #string: string | undefined;

  private constructor(td: TrustDomain, path: string, str?: string) {
    this.trustDomain = td;
    this.path = path;
    this.#string = str;
  }

  /**
   * Parses and validates a SPIFFE ID string.
   * @throws {@link SpiffeIdError} `ERR_SPIFFEID_INVALID` with go-spiffe's error text.
   */
  static parse(id: string): SpiffeId {
    if (typeof id !== 'string' || id.length === 0) throw new SpiffeIdError(ERR_EMPTY);
    if (!id.startsWith(SCHEME)) throw new SpiffeIdError(ERR_SCHEME);
    const tdStart = SCHEME.length;
    let tdEnd = id.indexOf('/', tdStart);
    if (tdEnd < 0) tdEnd = id.length;
    const tdErr = trustDomainNameError(id, tdStart, tdEnd);
    if (tdErr !== undefined) throw new SpiffeIdError(tdErr);
    const pErr = pathError(id, tdEnd);
    if (pErr !== undefined) throw new SpiffeIdError(pErr);
    return new SpiffeId(TrustDomain.fromValidatedName(id.slice(tdStart, tdEnd)), id.slice(tdEnd), id);
  }

  /**
   * Builds an ID from a trust domain and a path (`''` or starting with `/`).
   * @throws {@link SpiffeIdError} if the path is invalid.
   */
  static fromPath(td: TrustDomain | string, path: string): SpiffeId {
    const trustDomain = typeof td === 'string' ? TrustDomain.parse(td) : td;
    const err = pathError(path);
    if (err !== undefined) throw new SpiffeIdError(err);
    return new SpiffeId(trustDomain, path);
  }

  /**
   * Builds an ID from path segments, each validated on its own.
   * @example `SpiffeId.fromSegments(td, 'ns', 'backend')` → `spiffe://td/ns/backend`
   */
  static fromSegments(td: TrustDomain | string, ...segments: string[]): SpiffeId {
    const trustDomain = typeof td === 'string' ? TrustDomain.parse(td) : td;
    for (const s of segments) validatePathSegment(s);
    return new SpiffeId(trustDomain, segments.length === 0 ? '' : '/' + segments.join('/'));
  }

  /** Whether the ID belongs to `td`. */
  memberOf(td: TrustDomain): boolean {
    return this.trustDomain.name === td.name;
  }

  /** Whether this is a trust domain's root ID (empty path). */
  isRoot(): boolean {
    return this.path === '';
  }

  /** Whether `other` is the same ID (case-sensitive path comparison). */
  equals(other: SpiffeId): boolean {
    return other.trustDomain.name === this.trustDomain.name && other.path === this.path;
  }

  /** A copy of this ID with `segments` appended to its path. */
  append(...segments: string[]): SpiffeId {
    for (const s of segments) validatePathSegment(s);
    return new SpiffeId(this.trustDomain, this.path + (segments.length ? '/' + segments.join('/') : ''));
  }

  /** The ID as a URI string. */
  toString(): string {
    return (this.#string ??= SCHEME + this.trustDomain.name + this.path);
  }

  /** Serialises as the URI string. */
  toJSON(): string {
    return this.toString();
  }
}

import { BundleError } from '../errors/index.js';
import type { TrustDomain } from '../id/index.js';
import type { JwtBundle } from './jwt-bundle.js';
import type { JwtBundleSource, SpiffeBundleSource, X509BundleSource } from './source.js';
import type { SpiffeBundle } from './spiffe-bundle.js';
import type { X509Bundle } from './x509-bundle.js';

/**
 * Bundles of several trust domains, at most one per trust domain (the
 * shared core of go-spiffe's `x509bundle.Set`, `jwtbundle.Set` and
 * `spiffebundle.Set`; SPIFFE Trust Domain and Bundle §4, Federation §5).
 * Use one of the concrete sets; this base is exported only so their
 * declarations can name it.
 * @internal
 */
export abstract class BundleSet<B extends { readonly trustDomain: TrustDomain }> {
  readonly #bundles = new Map<string, B>();

  constructor(bundles: Iterable<B>) {
    for (const b of bundles) this.add(b);
  }

  /** Adds `bundle`, replacing any bundle of the same trust domain. */
  add(bundle: B): void {
    this.#bundles.set(bundle.trustDomain.name, bundle);
  }

  /** Removes the bundle of `td`, if any. */
  remove(td: TrustDomain): void {
    this.#bundles.delete(td.name);
  }

  /** Whether the set holds a bundle for `td`. */
  has(td: TrustDomain): boolean {
    return this.#bundles.has(td.name);
  }

  /** The bundle of `td`, or `undefined`. */
  get(td: TrustDomain): B | undefined {
    return this.#bundles.get(td.name);
  }

  /** Every bundle, sorted by trust domain name. */
  bundles(): B[] {
    return [...this.#bundles.values()].sort((a, b) => a.trustDomain.compare(b.trustDomain));
  }

  /** The number of bundles (trust domains) in the set. */
  len(): number {
    return this.#bundles.size;
  }

  /** The bundle of `td`, or a `ERR_BUNDLE_NOT_FOUND` naming `kind`. */
  protected require(td: TrustDomain, kind: string): B {
    const b = this.#bundles.get(td.name);
    if (b === undefined) throw new BundleError('ERR_BUNDLE_NOT_FOUND', `no ${kind} bundle found for trust domain "${td.name}"`);
    return b;
  }
}

/**
 * X.509 bundles of several trust domains: the trust store of a workload
 * that accepts SVIDs of federated trust domains (SPIFFE Trust Domain and
 * Bundle §4, X509-SVID §6). go-spiffe's `x509bundle.Set`.
 *
 * @example
 * ```ts
 * const set = new X509BundleSet(ownBundle, partnerBundle);
 * const server = createTlsServer({ svid, bundle: set, authorize: authorizeMemberOf(partnerTd) });
 * ```
 */
export class X509BundleSet extends BundleSet<X509Bundle> implements X509BundleSource {
  /**
   * Creates a set; a later bundle replaces an earlier one of the same trust domain.
   * @example
   * ```ts
   * new X509BundleSet(X509Bundle.load(td, 'bundle.pem'));
   * ```
   */
  constructor(...bundles: X509Bundle[]) {
    super(bundles);
  }

  /**
   * The X.509 bundle of `td`.
   * @example
   * ```ts
   * set.getX509BundleForTrustDomain(peerId.trustDomain);
   * ```
   * @throws {@link BundleError} `ERR_BUNDLE_NOT_FOUND` when the set has none.
   */
  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle {
    return this.require(td, 'X.509');
  }
}

/**
 * JWT bundles of several trust domains, for validating JWT-SVIDs of
 * federated trust domains (JWT-SVID §6, SPIFFE Trust Domain and Bundle §4).
 * go-spiffe's `jwtbundle.Set`.
 *
 * @example
 * ```ts
 * const set = new JwtBundleSet(ownJwtBundle, partnerJwtBundle);
 * set.getJwtBundleForTrustDomain(td).findJwtAuthority(kid);
 * ```
 */
export class JwtBundleSet extends BundleSet<JwtBundle> implements JwtBundleSource {
  /**
   * Creates a set; a later bundle replaces an earlier one of the same trust domain.
   * @example
   * ```ts
   * new JwtBundleSet(JwtBundle.load(td, 'jwks.json'));
   * ```
   */
  constructor(...bundles: JwtBundle[]) {
    super(bundles);
  }

  /**
   * The JWT bundle of `td`.
   * @example
   * ```ts
   * set.getJwtBundleForTrustDomain(td);
   * ```
   * @throws {@link BundleError} `ERR_BUNDLE_NOT_FOUND` when the set has none.
   */
  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle {
    return this.require(td, 'JWT');
  }
}

/**
 * SPIFFE bundles of several trust domains, e.g. everything learnt through
 * federation (SPIFFE Trust Domain and Bundle §4, Federation §5).
 * go-spiffe's `spiffebundle.Set`. Serves X.509 and JWT lookups too, by
 * converting the matching SPIFFE bundle.
 *
 * @example
 * ```ts
 * const set = new SpiffeBundleSet(SpiffeBundle.load(partnerTd, 'partner.json'));
 * verifyX509Svid(peerChain, set); // accepted wherever an X509BundleSource is
 * ```
 */
export class SpiffeBundleSet extends BundleSet<SpiffeBundle> implements X509BundleSource, JwtBundleSource, SpiffeBundleSource {
  /**
   * Creates a set; a later bundle replaces an earlier one of the same trust domain.
   * @example
   * ```ts
   * new SpiffeBundleSet(bundleA, bundleB);
   * ```
   */
  constructor(...bundles: SpiffeBundle[]) {
    super(bundles);
  }

  /**
   * The SPIFFE bundle of `td`.
   * @example
   * ```ts
   * set.getSpiffeBundleForTrustDomain(td).sequenceNumber;
   * ```
   * @throws {@link BundleError} `ERR_BUNDLE_NOT_FOUND` when the set has none.
   */
  getSpiffeBundleForTrustDomain(td: TrustDomain): SpiffeBundle {
    return this.require(td, 'SPIFFE');
  }

  /**
   * The X.509 part of the SPIFFE bundle of `td` (a copy).
   * @example
   * ```ts
   * set.getX509BundleForTrustDomain(td).x509Authorities();
   * ```
   * @throws {@link BundleError} `ERR_BUNDLE_NOT_FOUND` when the set has none.
   */
  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle {
    return this.require(td, 'X.509').x509Bundle();
  }

  /**
   * The JWT part of the SPIFFE bundle of `td` (a copy).
   * @example
   * ```ts
   * set.getJwtBundleForTrustDomain(td).findJwtAuthority(kid);
   * ```
   * @throws {@link BundleError} `ERR_BUNDLE_NOT_FOUND` when the set has none.
   */
  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle {
    return this.require(td, 'JWT').jwtBundle();
  }
}

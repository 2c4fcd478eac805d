import type { TrustDomain } from '../id/index.js';
import type { X509Bundle } from './x509-bundle.js';
import type { JwtBundle } from './jwt-bundle.js';
import type { SpiffeBundle } from './spiffe-bundle.js';

/**
 * Anything that can hand out the X.509 bundle of a trust domain: a static
 * {@link X509Bundle}, an {@link X509BundleSet}, a SPIFFE bundle, or the live
 * Workload API source. Mirrors go-spiffe's `x509bundle.Source`.
 */
export interface X509BundleSource {
  /**
   * Returns the X.509 bundle for `td`.
   * @throws {@link BundleError} `ERR_BUNDLE_NOT_FOUND` when the source has none.
   */
  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle;
}

/** Anything that can hand out the JWT bundle of a trust domain (go-spiffe's `jwtbundle.Source`). */
export interface JwtBundleSource {
  /** @throws {@link BundleError} `ERR_BUNDLE_NOT_FOUND` when the source has none. */
  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle;
}

/** Anything that can hand out the SPIFFE bundle of a trust domain (go-spiffe's `spiffebundle.Source`). */
export interface SpiffeBundleSource {
  /** @throws {@link BundleError} `ERR_BUNDLE_NOT_FOUND` when the source has none. */
  getSpiffeBundleForTrustDomain(td: TrustDomain): SpiffeBundle;
}

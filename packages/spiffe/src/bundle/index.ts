/**
 * Trust bundles (SPIFFE Trust Domain and Bundle §4): X.509 bundles, JWT
 * bundles, SPIFFE bundles (the JWK Set exchanged by federation), sets of
 * them across trust domains, and the small source interfaces that TLS and
 * SVID verification accept.
 * @module
 */
export { X509Bundle } from './x509-bundle.js';
export { JwtBundle } from './jwt-bundle.js';
export { SpiffeBundle, type SpiffeBundleInit } from './spiffe-bundle.js';
export { X509BundleSet, JwtBundleSet, SpiffeBundleSet } from './bundle-set.js';
export type { X509BundleSource, JwtBundleSource, SpiffeBundleSource } from './source.js';

/**
 * SPIFFE Federation for the server (spec/spiffe.md §5): the bundle endpoint
 * that serves our bundle, and the refresher that keeps the bundles of
 * federated trust domains current. See docs/federation.md.
 * @module
 */
export { startFederation, BUNDLE_ENDPOINT_ID_PATH, DEFAULT_FEDERATION_TICK_SECONDS, type FederationDeps, type RunningFederation } from './start-federation.js';
export type { BundleEndpointConfig } from './bundle-endpoint.js';
export type { RelationshipRefreshStatus } from './refresher.js';
export { FederationError, isFederationError, type FederationErrorCode } from './errors.js';
export {
  validateRelationship,
  parseFederatedTrustDomain,
  parseBootstrapBundle,
  bundleEndpointUrlProblem,
  BUNDLE_ENDPOINT_PROFILES,
  type RelationshipInput,
  type ValidRelationship,
} from './relationship.js';
export { refreshIntervalSeconds, retryDelaySeconds, DEFAULT_REFRESH_SECONDS, MIN_REFRESH_SECONDS, MAX_REFRESH_SECONDS } from './refresh-policy.js';

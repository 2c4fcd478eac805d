/**
 * The agent's SPIFFE Workload API endpoint (spec/workload-api.md).
 */
export {
  InMemoryIdentityCache,
  type CachedSvid,
  type IdentityCache,
  type InMemoryEntry,
  type InMemoryIdentityCacheOptions,
  type MintedJwtSvid,
  type TrustBundle,
} from './identity-cache.js';
export { startWorkloadApi, type WorkloadApiOptions, type WorkloadApiServer } from './server.js';

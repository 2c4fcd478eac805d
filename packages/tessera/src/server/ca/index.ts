/**
 * The tessera server's certificate authority: X.509 CA and JWT keys with
 * SPIRE's rotation schedule, persistence, bundle publication and SVID
 * signing. See docs/ca.md.
 * @module
 */
export {
  ServerCa,
  CA_DEFAULTS,
  type ServerCaOptions,
  type X509SvidRequest,
  type SignedX509Svid,
  type JwtSvidRequest,
  type SignedJwtSvid,
  type TickReport,
  type AuthorityKind,
  type CaStatus,
  type SlotsStatus,
  type AuthorityStatus,
} from './server-ca.js';
export { CaError, isCaError, type CaErrorCode } from './errors.js';
export { DiskKeyManager, MemoryKeyManager, CA_KEY_TYPES, type KeyManager, type CaKeyType } from './key-manager.js';
export { FileCaJournal, MemoryCaJournal, type CaJournal } from './journal.js';
export {
  mergeBundleContributions,
  marshalBundleContribution,
  parseBundleContribution,
  type BundleContribution,
  type JwtAuthorityContribution,
  type MergeOptions,
  type MergedBundle,
} from './bundle.js';
export { loadUpstreamAuthority, checkUpstreamAuthority, type UpstreamAuthority, type UpstreamFiles, type CheckedUpstream } from './upstream.js';
export { mintCaCertificate, X509SvidSigner, BACKDATE_SECONDS, type CaSubject, type X509Authority, type LeafParams, type MintCaOptions } from './x509-ca.js';
export { planRotation, preparationTime, activationTime, nextRotationTime, type Lifetime, type Slots, type RotationPlan } from './rotation.js';
export type { JwtAuthority } from './state.js';

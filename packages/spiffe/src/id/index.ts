/**
 * SPIFFE IDs and trust domains (SPIFFE-ID §2) and matchers over them.
 * @module
 */
export { SpiffeId } from './spiffe-id.js';
export { TrustDomain } from './trust-domain.js';
export { validatePath, validatePathSegment } from './path.js';
export { matchAny, matchId, matchOneOf, matchMemberOf, type Matcher } from './match.js';

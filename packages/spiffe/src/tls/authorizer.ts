import type { Matcher, SpiffeId, TrustDomain } from '../id/index.js';
import { matchAny, matchId, matchMemberOf, matchOneOf } from '../id/index.js';

/**
 * Decides whether a verified TLS peer may talk to us: return to accept,
 * throw (preferably an `AuthorizationError`) to reject. Runs after the peer's
 * X509-SVID chain has been verified (X509-SVID §5), before any application
 * data is exchanged. Any function of this shape works, like go-spiffe's
 * `tlsconfig.Authorizer`.
 */
export type Authorizer = (id: SpiffeId, verifiedChains: readonly (readonly Buffer[])[]) => void;

/** Turns an ID matcher into an authorizer. */
export function adaptMatcher(matcher: Matcher): Authorizer {
  return (id) => matcher(id);
}

/** Accepts any peer with a valid SVID of a trusted trust domain. */
export function authorizeAny(): Authorizer {
  return adaptMatcher(matchAny());
}

/** Accepts exactly the peer `id`. */
export function authorizeId(id: SpiffeId): Authorizer {
  return adaptMatcher(matchId(id));
}

/** Accepts any of `ids`. */
export function authorizeOneOf(...ids: SpiffeId[]): Authorizer {
  return adaptMatcher(matchOneOf(...ids));
}

/** Accepts any peer of trust domain `td`. */
export function authorizeMemberOf(td: TrustDomain): Authorizer {
  return adaptMatcher(matchMemberOf(td));
}

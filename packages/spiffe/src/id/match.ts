import { AuthorizationError } from '../errors/index.js';
import type { SpiffeId } from './spiffe-id.js';
import type { TrustDomain } from './trust-domain.js';

/**
 * Decides whether a SPIFFE ID is acceptable: returns normally to accept and
 * throws (preferably an {@link AuthorizationError}) to refuse. Any function of
 * this shape is a matcher, as in go-spiffe's `spiffeid.Matcher`.
 */
export type Matcher = (id: SpiffeId) => void;

/** A matcher that accepts every ID. */
export function matchAny(): Matcher {
  return () => undefined;
}

/** A matcher that accepts exactly `expected`. */
export function matchId(expected: SpiffeId): Matcher {
  return (id) => {
    if (!id.equals(expected)) throw new AuthorizationError(`unexpected ID "${id.toString()}"`);
  };
}

/** A matcher that accepts any of `expected`. */
export function matchOneOf(...expected: SpiffeId[]): Matcher {
  const set = new Set(expected.map((e) => e.toString()));
  return (id) => {
    if (!set.has(id.toString())) throw new AuthorizationError(`unexpected ID "${id.toString()}"`);
  };
}

/** A matcher that accepts any ID of trust domain `td`. */
export function matchMemberOf(td: TrustDomain): Matcher {
  return (id) => {
    if (!id.memberOf(td)) throw new AuthorizationError(`unexpected trust domain "${id.trustDomain.name}"`);
  };
}

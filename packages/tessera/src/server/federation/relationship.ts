/**
 * Federation relationships as operators write them, and their validation
 * (SPIFFE Federation; spec/spiffe.md §5). Shared by the Admin API and the
 * CLI, so a bad URL is refused with the same words before and after the
 * socket. The computation (fetching, ordering, storing) is in `refresher.ts`.
 */
import { SpiffeBundle, X509Bundle } from '@tessera/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@tessera/spiffe/id';
import type { BundleEndpointProfile } from '../datastore/index.js';
import { FederationError } from './errors.js';

/** The two bundle endpoint profiles of SPIFFE Federation §5. */
export const BUNDLE_ENDPOINT_PROFILES: readonly BundleEndpointProfile[] = ['https_web', 'https_spiffe'];

/** A relationship as given by an operator (Admin API message, CLI flags); every field unchecked. */
export interface RelationshipInput {
  readonly trustDomain: string;
  readonly bundleEndpointUrl: string;
  readonly profile: string;
  /** Required for `https_spiffe`; must be absent or empty for `https_web`. */
  readonly endpointSpiffeId?: string;
  /** Bootstrap bundle (SPIFFE bundle JSON, or PEM certificates) of `trustDomain`; optional. */
  readonly trustDomainBundle?: string;
}

/** A relationship that passed {@link validateRelationship}. */
export interface ValidRelationship {
  readonly trustDomain: TrustDomain;
  /** The URL as given (already checked: https, a host, no credentials, no fragment). */
  readonly bundleEndpointUrl: string;
  readonly profile: BundleEndpointProfile;
  /** `https_spiffe` only. */
  readonly endpointSpiffeId: SpiffeId | undefined;
  readonly bootstrapBundle: SpiffeBundle | undefined;
}

/**
 * A trust domain given as a bare name (`example.org`) or as its ID
 * (`spiffe://example.org`, SPIRE's `-id` spelling); an ID with a path is refused.
 * @throws {@link FederationError} `FEDERATION_INVALID_RELATIONSHIP`
 * @example
 * ```ts
 * parseFederatedTrustDomain('spiffe://partner.example').name; // "partner.example"
 * ```
 */
export function parseFederatedTrustDomain(value: string): TrustDomain {
  try {
    if (typeof value === 'string' && value.startsWith('spiffe://')) return TrustDomain.fromIdString(value);
    return TrustDomain.parse(value);
  } catch (e) {
    throw invalid(`trust domain ${JSON.stringify(value)} is invalid: ${(e as Error).message}`);
  }
}

/** Why `url` cannot be a bundle endpoint URL, or undefined (SPIFFE Federation §5: bundle endpoints are HTTPS). */
export function bundleEndpointUrlProblem(url: string): string | undefined {
  if (typeof url !== 'string' || url === '') return 'bundle endpoint URL is required';
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `bundle endpoint URL ${JSON.stringify(url)} is not a valid URL`;
  }
  if (u.protocol !== 'https:') return `bundle endpoint URL ${JSON.stringify(url)} must use https (got ${u.protocol.slice(0, -1)})`;
  if (u.hostname === '') return `bundle endpoint URL ${JSON.stringify(url)} has no host`;
  if (u.username !== '' || u.password !== '') return `bundle endpoint URL ${JSON.stringify(url)} must not contain credentials`;
  if (u.hash !== '') return `bundle endpoint URL ${JSON.stringify(url)} must not have a fragment`;
  return undefined;
}

/**
 * A bootstrap bundle: SPIFFE bundle JSON, or PEM CA certificates (SPIRE's
 * `-trustDomainBundleFormat pem`), parsed strictly for `td`. A bundle with no
 * authority would authenticate nothing, so it is refused.
 * @throws {@link FederationError} `FEDERATION_INVALID_RELATIONSHIP`
 */
export function parseBootstrapBundle(td: TrustDomain, text: string): SpiffeBundle {
  let b: SpiffeBundle;
  try {
    b = text.trimStart().startsWith('-----BEGIN') ? SpiffeBundle.fromX509Bundle(X509Bundle.parse(td, text)) : SpiffeBundle.parse(td, text);
  } catch (e) {
    throw invalid(`trust domain bundle of "${td.name}" is invalid: ${(e as Error).message}`);
  }
  if (b.isEmpty()) throw invalid(`trust domain bundle of "${td.name}" holds no authority`);
  return b;
}

/**
 * Checks every field and reports every problem at once (joined with `; `).
 * @param own - the server's own trust domain, which cannot be federated with; omit where unknown (the CLI).
 * @throws {@link FederationError} `FEDERATION_INVALID_RELATIONSHIP`
 * @example
 * ```ts
 * validateRelationship({ trustDomain: 'b.test', bundleEndpointUrl: 'https://b.test:8443', profile: 'https_spiffe', endpointSpiffeId: 'spiffe://b.test/tessera/server' }, ownTd);
 * ```
 */
export function validateRelationship(input: RelationshipInput, own?: TrustDomain): ValidRelationship {
  const problems: string[] = [];
  let td: TrustDomain | undefined;
  if (typeof input.trustDomain !== 'string' || input.trustDomain === '') {
    problems.push('trust domain is required');
  } else {
    try {
      td = parseFederatedTrustDomain(input.trustDomain);
      if (own !== undefined && td.equals(own)) problems.push(`"${td.name}" is the server's own trust domain; federate with other trust domains only`);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  const urlProblem = bundleEndpointUrlProblem(input.bundleEndpointUrl);
  if (urlProblem !== undefined) problems.push(urlProblem);

  const profile = input.profile as BundleEndpointProfile;
  const endpointId = input.endpointSpiffeId ?? '';
  let endpointSpiffeId: SpiffeId | undefined;
  if (typeof input.profile !== 'string' || input.profile === '') {
    problems.push(`bundle endpoint profile is required (${BUNDLE_ENDPOINT_PROFILES.join(' or ')})`);
  } else if (!BUNDLE_ENDPOINT_PROFILES.includes(profile)) {
    problems.push(`bundle endpoint profile ${JSON.stringify(input.profile)} is unknown: use ${BUNDLE_ENDPOINT_PROFILES.join(' or ')}`);
  } else if (profile === 'https_spiffe') {
    if (endpointId === '') {
      problems.push('endpoint SPIFFE ID is required with profile https_spiffe (the ID the bundle endpoint presents, e.g. spiffe://<trust domain>/tessera/server)');
    } else {
      try {
        endpointSpiffeId = SpiffeId.parse(endpointId);
        // An X509-SVID never carries a root ID (X509-SVID §2), so such an endpoint could never be authenticated.
        if (endpointSpiffeId.isRoot()) problems.push(`endpoint SPIFFE ID "${endpointId}" must have a path: an X509-SVID never carries a trust domain's root ID`);
      } catch (e) {
        problems.push(`endpoint SPIFFE ID ${JSON.stringify(endpointId)} is invalid: ${(e as Error).message}`);
      }
    }
  } else if (endpointId !== '') {
    problems.push('endpoint SPIFFE ID is only used with profile https_spiffe; https_web endpoints are authenticated by their Web PKI certificate');
  }

  let bootstrapBundle: SpiffeBundle | undefined;
  if (input.trustDomainBundle !== undefined && input.trustDomainBundle !== '' && td !== undefined) {
    try {
      bootstrapBundle = parseBootstrapBundle(td, input.trustDomainBundle);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  if (problems.length > 0 || td === undefined) throw invalid(problems.join('; '));
  return { trustDomain: td, bundleEndpointUrl: input.bundleEndpointUrl, profile, endpointSpiffeId, bootstrapBundle };
}

function invalid(message: string): FederationError {
  return new FederationError('FEDERATION_INVALID_RELATIONSHIP', message);
}

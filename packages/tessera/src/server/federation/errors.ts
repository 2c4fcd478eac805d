/**
 * Typed errors of federation (spec/spiffe.md §5). `code` is stable; match on
 * it, never on the message. The Admin API maps them in `api/federation-admin.ts`;
 * docs/federation.md lists them with what to do.
 */
export type FederationErrorCode =
  /** No federation relationship with the trust domain asked for. */
  | 'FEDERATION_NOT_FOUND'
  /** A relationship's fields are invalid (trust domain, URL, profile, endpoint SPIFFE ID, bootstrap bundle). */
  | 'FEDERATION_INVALID_RELATIONSHIP'
  /** The bundle endpoint could not be reached or answered with something other than 200 (connection, timeout, HTTP status, size). */
  | 'FEDERATION_FETCH_FAILED'
  /** The bundle endpoint failed authentication: Web PKI (`https_web`) or its X509-SVID / SPIFFE ID (`https_spiffe`). */
  | 'FEDERATION_ENDPOINT_REJECTED'
  /** There is no bundle to authenticate an `https_spiffe` endpoint with (bootstrap bundle missing). */
  | 'FEDERATION_NO_TRUST_BUNDLE'
  /** The endpoint served a document that is not a valid SPIFFE bundle (Trust Domain and Bundle §4). */
  | 'FEDERATION_BUNDLE_INVALID'
  /** The endpoint served a bundle whose `spiffe_sequence` is not above the stored one: not applied. */
  | 'FEDERATION_BUNDLE_STALE'
  /** The bundle endpoint's own configuration is unusable (serving certificate files, port). */
  | 'FEDERATION_INVALID_CONFIG';

/**
 * An error of federation, with a stable {@link FederationErrorCode}.
 * @example
 * ```ts
 * try {
 *   await federation.refreshNow('partner.example');
 * } catch (e) {
 *   if (isFederationError(e, 'FEDERATION_BUNDLE_STALE')) log.warn(e.message);
 * }
 * ```
 */
export class FederationError extends Error {
  readonly code: FederationErrorCode;

  constructor(code: FederationErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FederationError';
    this.code = code;
  }
}

/** Whether `e` is a {@link FederationError}, optionally with the given code. */
export function isFederationError(e: unknown, code?: FederationErrorCode): e is FederationError {
  return e instanceof FederationError && (code === undefined || e.code === code);
}

/**
 * Typed errors of the server CA. `code` is stable; match on it, never on the
 * message. The Agent API maps `CA_INVALID_REQUEST` to gRPC INVALID_ARGUMENT
 * and `CA_NOT_READY` to UNAVAILABLE; the rest are operator problems that stop
 * the server with the message.
 */
export type CaErrorCode =
  /** No active authority can sign (before the first `tick()`, or every authority expired). */
  | 'CA_NOT_READY'
  /** A signing request is invalid: bad SPIFFE ID, TTL, DNS name, key, or CSR. */
  | 'CA_INVALID_REQUEST'
  /** The upstream CA (cert, key, bundle files) is unusable; the message says why. */
  | 'CA_UPSTREAM_INVALID'
  /** The CA's options are invalid. */
  | 'CA_INVALID_CONFIG'
  /** A key could not be generated, stored, read or deleted by the key manager. */
  | 'CA_KEY_UNAVAILABLE'
  /** The CA journal is unreadable or belongs to another trust domain. */
  | 'CA_JOURNAL_INVALID'
  /** Bundle contributions disagree (one JWT key ID with two different keys). */
  | 'CA_BUNDLE_CONFLICT';

/** An error of the server CA, with a stable {@link CaErrorCode}. */
export class CaError extends Error {
  readonly code: CaErrorCode;

  constructor(code: CaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CaError';
    this.code = code;
  }
}

/** Whether `e` is a {@link CaError}, optionally with the given code. */
export function isCaError(e: unknown, code?: CaErrorCode): e is CaError {
  return e instanceof CaError && (code === undefined || e.code === code);
}

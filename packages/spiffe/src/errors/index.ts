/**
 * Typed errors of `@tessera/spiffe`.
 *
 * Every error a user of the library can meet is a {@link SpiffeError} with a
 * stable {@link ErrorCode}; the message says what is wrong. Match on `code`,
 * never on the message text.
 *
 * @module
 */

/** Every stable error code the library uses. */
export type ErrorCode =
  /** A SPIFFE ID is malformed (SPIFFE-ID §2). */
  | 'ERR_SPIFFEID_INVALID'
  /** A trust domain name is malformed (SPIFFE-ID §2.1). */
  | 'ERR_TRUST_DOMAIN_INVALID'
  /** A SPIFFE ID did not satisfy a matcher or an authorizer. */
  | 'ERR_ID_NOT_AUTHORIZED'
  /** PEM text could not be decoded. */
  | 'ERR_PEM_INVALID'
  /** A DER certificate could not be parsed. */
  | 'ERR_CERTIFICATE_INVALID'
  /** A private or public key could not be parsed or is not supported. */
  | 'ERR_KEY_INVALID'
  /** A trust bundle (PEM, DER or JWKS) is malformed (SPIFFE Trust Domain and Bundle §4). */
  | 'ERR_BUNDLE_INVALID'
  /** No bundle is available for the trust domain asked for. */
  | 'ERR_BUNDLE_NOT_FOUND'
  /** An X509-SVID violates the X509-SVID specification (parse). */
  | 'ERR_X509SVID_INVALID'
  /** An X509-SVID could not be verified against the trust bundle. */
  | 'ERR_X509SVID_UNTRUSTED'
  /** A JWT-SVID is malformed or violates the JWT-SVID specification. */
  | 'ERR_JWTSVID_INVALID'
  /** A JWT-SVID's signature does not verify against the trust bundle. */
  | 'ERR_JWTSVID_UNTRUSTED'
  /** A JWT-SVID has expired. */
  | 'ERR_JWTSVID_EXPIRED'
  /** A JWT-SVID does not carry the expected audience. */
  | 'ERR_JWTSVID_AUDIENCE'
  /** A TLS peer was rejected during the handshake. */
  | 'ERR_TLS_PEER_REJECTED'
  /** Options passed to a constructor or function are invalid. */
  | 'ERR_INVALID_OPTIONS'
  /** A source (SVID or bundle) has been closed or cannot serve. */
  | 'ERR_SOURCE_UNAVAILABLE';

/** Options accepted by every error constructor. */
export interface SpiffeErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
}

/** Base class of every error thrown by `@tessera/spiffe`. */
export class SpiffeError extends Error {
  /** Stable, machine-readable code. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: SpiffeErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/** A SPIFFE ID or trust domain failed validation (SPIFFE-ID §2). */
export class SpiffeIdError extends SpiffeError {
  constructor(message: string, code: 'ERR_SPIFFEID_INVALID' | 'ERR_TRUST_DOMAIN_INVALID' = 'ERR_SPIFFEID_INVALID') {
    super(code, message);
  }
}

/** A SPIFFE ID was refused by a matcher or authorizer. */
export class AuthorizationError extends SpiffeError {
  constructor(message: string) {
    super('ERR_ID_NOT_AUTHORIZED', message);
  }
}

/** PEM, DER or key material could not be decoded. */
export class EncodingError extends SpiffeError {
  constructor(code: 'ERR_PEM_INVALID' | 'ERR_CERTIFICATE_INVALID' | 'ERR_KEY_INVALID', message: string, options?: SpiffeErrorOptions) {
    super(code, message, options);
  }
}

/** A trust bundle is malformed or missing. */
export class BundleError extends SpiffeError {
  constructor(code: 'ERR_BUNDLE_INVALID' | 'ERR_BUNDLE_NOT_FOUND', message: string, options?: SpiffeErrorOptions) {
    super(code, message, options);
  }
}

/** An X509-SVID failed parsing (`ERR_X509SVID_INVALID`) or verification (`ERR_X509SVID_UNTRUSTED`). */
export class X509SvidError extends SpiffeError {
  constructor(code: 'ERR_X509SVID_INVALID' | 'ERR_X509SVID_UNTRUSTED', message: string, options?: SpiffeErrorOptions) {
    super(code, message, options);
  }
}

/** A JWT-SVID failed parsing or validation. */
export class JwtSvidError extends SpiffeError {
  constructor(
    code: 'ERR_JWTSVID_INVALID' | 'ERR_JWTSVID_UNTRUSTED' | 'ERR_JWTSVID_EXPIRED' | 'ERR_JWTSVID_AUDIENCE',
    message: string,
    options?: SpiffeErrorOptions,
  ) {
    super(code, message, options);
  }
}

/** A TLS peer was rejected while the handshake was being completed. */
export class TlsPeerError extends SpiffeError {
  constructor(message: string, options?: SpiffeErrorOptions) {
    super('ERR_TLS_PEER_REJECTED', message, options);
  }
}

/** Options given to a constructor or function are invalid. */
export class OptionsError extends SpiffeError {
  constructor(message: string) {
    super('ERR_INVALID_OPTIONS', message);
  }
}

/** A source was used after `close()` or cannot provide what was asked. */
export class SourceError extends SpiffeError {
  constructor(message: string, options?: SpiffeErrorOptions) {
    super('ERR_SOURCE_UNAVAILABLE', message, options);
  }
}

/** Whether `e` is a {@link SpiffeError}, optionally with the given code. */
export function isSpiffeError(e: unknown, code?: ErrorCode): e is SpiffeError {
  return e instanceof SpiffeError && (code === undefined || e.code === code);
}

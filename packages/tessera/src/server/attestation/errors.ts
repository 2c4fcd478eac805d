/**
 * Typed errors of node attestation. `code` is stable; the Agent API maps
 * `ATTESTATION_DENIED` to gRPC PERMISSION_DENIED and `ATTESTATION_INVALID`
 * to INVALID_ARGUMENT, with the message as the reason.
 */
export type AttestationErrorCode =
  /** The evidence is well-formed but does not admit the node: unknown, used or expired join token; untrusted node certificate; wrong proof of possession; banned agent. */
  | 'ATTESTATION_DENIED'
  /** The evidence is malformed: unknown attestor, unparsable payload, unsupported key. */
  | 'ATTESTATION_INVALID';

/** A node attestation failure, with a stable {@link AttestationErrorCode}. */
export class AttestationError extends Error {
  readonly code: AttestationErrorCode;

  constructor(code: AttestationErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AttestationError';
    this.code = code;
  }
}

export const denied = (message: string, cause?: unknown): AttestationError => new AttestationError('ATTESTATION_DENIED', message, { cause });
export const malformed = (message: string, cause?: unknown): AttestationError => new AttestationError('ATTESTATION_INVALID', message, { cause });

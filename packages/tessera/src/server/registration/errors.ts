/**
 * Typed errors of the registration layer. `code` is stable; the gRPC layer
 * maps INVALID_ARGUMENT / ALREADY_EXISTS / NOT_FOUND / PERMISSION_DENIED to
 * the status codes of the same name.
 */
export type RegistrationErrorCode = 'INVALID_ARGUMENT' | 'ALREADY_EXISTS' | 'NOT_FOUND' | 'PERMISSION_DENIED';

export class RegistrationError extends Error {
  readonly code: RegistrationErrorCode;
  /** The field at fault, when there is one (e.g. `selectors[1]`). */
  readonly field: string | undefined;

  constructor(code: RegistrationErrorCode, message: string, field?: string) {
    super(message);
    this.name = 'RegistrationError';
    this.code = code;
    this.field = field;
  }
}

/** Shorthand for an INVALID_ARGUMENT error about `field`. */
export function invalid(field: string, message: string): RegistrationError {
  return new RegistrationError('INVALID_ARGUMENT', `invalid ${field}: ${message}`, field);
}

/**
 * Typed errors of workload attestation (identifying the caller of the
 * Workload API, spec/workload-api.md "caller identification"). `code` is
 * stable; the Workload API maps every code to gRPC PERMISSION_DENIED except
 * `WORKLOAD_ATTESTOR_UNAVAILABLE` (UNAVAILABLE: a deployment problem, not the caller's).
 */
export type WorkloadAttestationErrorCode =
  /** The SO_PEERCRED addon is not built or not loadable: rebuild `@tessera/peercred` (`npm ci` at the repository root). */
  | 'WORKLOAD_ATTESTOR_UNAVAILABLE'
  /** The socket's peer credentials could not be read (closed socket, not a Unix socket, no fd). */
  | 'WORKLOAD_PEERCRED_FAILED'
  /** The caller's process is gone (no /proc/<pid>): it exited before or during attestation. */
  | 'WORKLOAD_PROCESS_GONE'
  /** The caller's pid now names a different process (start time changed): the pid was reused. */
  | 'WORKLOAD_PID_REUSED'
  /** /proc or the executable could not be read or parsed for a process that still exists. */
  | 'WORKLOAD_INSPECTION_FAILED';

/** A workload attestation failure, with a stable {@link WorkloadAttestationErrorCode}. */
export class WorkloadAttestationError extends Error {
  readonly code: WorkloadAttestationErrorCode;

  constructor(code: WorkloadAttestationErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WorkloadAttestationError';
    this.code = code;
  }
}

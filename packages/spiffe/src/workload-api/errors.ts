import { Code, ConnectError } from '@connectrpc/connect';
import { SourceError, isSpiffeError } from '../errors/index.js';

/**
 * A Workload API call failed with a gRPC status (or the transport failed).
 * Its code is `ERR_SOURCE_UNAVAILABLE`; `grpcCode` and `grpcStatus` carry the
 * status the agent answered, e.g. `PermissionDenied` "no identity issued".
 *
 * @example
 * ```ts
 * try { await client.fetchX509Svid(); } catch (e) {
 *   if (e instanceof WorkloadApiError && e.grpcStatus === 'PermissionDenied') { ... }
 * }
 * ```
 */
export class WorkloadApiError extends SourceError {
  /** The gRPC status code (`@connectrpc/connect`'s `Code`). */
  readonly grpcCode: Code;
  /** The gRPC status name, e.g. `'PermissionDenied'`. */
  readonly grpcStatus: string;

  constructor(method: string, cause: ConnectError) {
    super(`Workload API ${method} failed: ${Code[cause.code]}: ${cause.rawMessage}`, { cause });
    this.grpcCode = cause.code;
    this.grpcStatus = Code[cause.code] ?? 'Unknown';
  }
}

/** @internal Wraps whatever a call threw; library errors (parse failures) pass through unchanged. */
export function wrapRpcError(method: string, e: unknown): Error {
  if (isSpiffeError(e)) return e;
  return new WorkloadApiError(method, ConnectError.from(e));
}

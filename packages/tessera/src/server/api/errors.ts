import { Code, ConnectError } from '@connectrpc/connect';
import { DatastoreError } from '../datastore/index.js';
import { RegistrationError } from '../registration/index.js';

/** gRPC status of an error the API layer meets (SPIRE's mapping of datastore and validation errors). */
export function statusOf(e: unknown): { code: Code; message: string } {
  if (e instanceof ConnectError) return { code: e.code, message: e.rawMessage };
  if (e instanceof RegistrationError) {
    const code = { INVALID_ARGUMENT: Code.InvalidArgument, ALREADY_EXISTS: Code.AlreadyExists, NOT_FOUND: Code.NotFound, PERMISSION_DENIED: Code.PermissionDenied }[e.code];
    return { code, message: e.message };
  }
  if (e instanceof DatastoreError) {
    const map: Record<string, Code> = {
      ALREADY_EXISTS: Code.AlreadyExists,
      NOT_FOUND: Code.NotFound,
      EXPIRED: Code.NotFound,
      CONFLICT: Code.Aborted,
      INVALID: Code.InvalidArgument,
      DATASTORE_UNREACHABLE: Code.Unavailable,
      CLOSED: Code.Unavailable,
    };
    return { code: map[e.code] ?? Code.Internal, message: e.message };
  }
  return { code: Code.Internal, message: 'internal error' };
}

/** Rethrows any error as a ConnectError with the mapped status. */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  const s = statusOf(e);
  return new ConnectError(s.message, s.code, undefined, undefined, e);
}

/** Runs `f`, rethrowing whatever it throws as a ConnectError with the mapped status. */
export async function withConnectErrors<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw toConnectError(e);
  }
}

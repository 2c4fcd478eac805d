import { Code, ConnectError } from '@connectrpc/connect';
import { isCaError } from '../ca/index.js';
import { statusOf } from '../api/errors.js';
import { AttestationError } from '../attestation/index.js';
import type { Logger } from '../../observe/logger.js';

export const invalidArgument = (message: string): ConnectError => new ConnectError(message, Code.InvalidArgument);
export const permissionDenied = (message: string): ConnectError => new ConnectError(message, Code.PermissionDenied);

/**
 * The gRPC status of any failure in the Agent API: attestation and CA
 * request errors keep their reason (INVALID_ARGUMENT / PERMISSION_DENIED),
 * datastore errors follow the Admin API's mapping, anything unexpected is
 * logged and becomes INTERNAL without internals in the message.
 */
export function agentApiError(e: unknown, log: Logger | undefined, method: string): ConnectError {
  if (e instanceof ConnectError) return e;
  if (e instanceof AttestationError) return new ConnectError(e.message, e.code === 'ATTESTATION_DENIED' ? Code.PermissionDenied : Code.InvalidArgument);
  if (isCaError(e)) return new ConnectError(e.message, e.code === 'CA_INVALID_REQUEST' ? Code.InvalidArgument : Code.Unavailable);
  const s = statusOf(e);
  if (s.code === Code.Internal) log?.error('agent API call failed', { method, error: e as Error });
  return new ConnectError(s.message, s.code);
}

import { connect as netConnect } from 'node:net';
import type { Transport } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';

/**
 * A gRPC transport to a server on a Unix socket (HTTP/2 cleartext). The URL
 * authority is a placeholder: every connection goes to `path`.
 */
export function unixSocketTransport(path: string, options: { timeoutMs?: number } = {}): Transport {
  return createGrpcTransport({
    baseUrl: 'http://localhost',
    nodeOptions: { createConnection: () => netConnect(path) },
    ...(options.timeoutMs ? { defaultTimeoutMs: options.timeoutMs } : {}),
  });
}

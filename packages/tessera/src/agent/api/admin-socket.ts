/**
 * The agent's admin socket: a Unix socket, mode 0600 (root only, as a CNI
 * plugin calling it runs), serving EndpointAdmin and whatever other admin
 * services the agent adds. Separate from the Workload API socket, which
 * every workload may reach.
 */
import type { ConnectRouter } from '@connectrpc/connect';
import { serveGrpcOnUnixSocket, type UnixGrpcServer } from '../../grpc/unix-server.js';
import type { Logger } from '../../observe/logger.js';
import type { EndpointRegistry } from '../endpoints/index.js';
import { registerEndpointAdmin } from './endpoint-admin.js';

export interface AgentAdminOptions {
  /** Where to listen; the directory is created. A stale socket is replaced, a live one is an error. */
  readonly socketPath: string;
  readonly registry: EndpointRegistry;
  readonly logger?: Logger;
  /** Adds further admin services to the same socket. */
  readonly register?: (router: ConnectRouter) => void;
}

/**
 * Starts serving the agent's admin API. `close()` on the result stops it and removes the socket.
 * @throws TypeError for bad options; Error if another process serves on the path.
 * @example
 * ```ts
 * const admin = await startAgentAdmin({ socketPath: '/tmp/tessera-agent/admin.sock', registry, logger });
 * // …
 * await admin.close();
 * ```
 */
export async function startAgentAdmin(options: AgentAdminOptions): Promise<UnixGrpcServer> {
  if (options === null || typeof options !== 'object') throw new TypeError('startAgentAdmin: options are required');
  if (typeof options.socketPath !== 'string' || options.socketPath === '') throw new TypeError('startAgentAdmin: socketPath must be a non-empty path');
  if (options.registry === null || typeof options.registry !== 'object') throw new TypeError('startAgentAdmin: registry is required');
  if (options.register !== undefined && typeof options.register !== 'function') throw new TypeError('startAgentAdmin: register must be a function');
  const { registry, register } = options;
  const server = await serveGrpcOnUnixSocket(
    options.socketPath,
    (router) => {
      registerEndpointAdmin(router, registry);
      register?.(router);
    },
    { mode: 0o600 },
  );
  options.logger?.info('agent admin API listening', { socketPath: server.path });
  return server;
}

import * as http2 from 'node:http2';
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { connect as netConnect, type Socket } from 'node:net';
import type { ConnectRouter, Interceptor } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';

/** Limits applied to every gRPC server Tessera runs. */
export const GRPC_LIMITS = {
  /** Largest request message accepted (bytes). */
  readMaxBytes: 4 * 1024 * 1024,
  /** Largest response message sent (bytes). */
  writeMaxBytes: 64 * 1024 * 1024,
} as const;

const CLOSE_GRACE_MS = 500;

/** A running gRPC server on a Unix socket. */
export interface UnixGrpcServer {
  readonly path: string;
  readonly server: http2.Http2Server;
  /** Stops accepting, ends open streams, removes the socket file. */
  close(): Promise<void>;
}

/** Whether something answers on the Unix socket at `path`. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Serves ConnectRPC routes with the gRPC protocol over HTTP/2 cleartext on a
 * Unix socket (how the Admin API and the Workload API are reached). A stale
 * socket file left by a crashed process is replaced; a live one is an error.
 * The socket's mode is set to `mode` (default 0o770: owner and group).
 */
export async function serveGrpcOnUnixSocket(
  path: string,
  routes: (router: ConnectRouter) => void,
  options: {
    mode?: number;
    contextValues?: Parameters<typeof connectNodeAdapter>[0]['contextValues'];
    interceptors?: Interceptor[];
    /** Compress responses only from this size on (connect's default 1 KiB); compressed requests are accepted regardless. */
    compressMinBytes?: number;
  } = {},
): Promise<UnixGrpcServer> {
  mkdirSync(dirname(path), { recursive: true });
  try {
    if (lstatSync(path).isSocket()) {
      if (await socketAnswers(path)) throw new Error(`another process is already serving on ${path}`);
      unlinkSync(path);
    } else {
      throw new Error(`${path} exists and is not a socket`);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const handler = connectNodeAdapter({
    routes,
    grpc: true,
    grpcWeb: false,
    connect: false,
    readMaxBytes: GRPC_LIMITS.readMaxBytes,
    writeMaxBytes: GRPC_LIMITS.writeMaxBytes,
    ...(options.contextValues ? { contextValues: options.contextValues } : {}),
    ...(options.interceptors ? { interceptors: options.interceptors } : {}),
    ...(options.compressMinBytes !== undefined ? { compressMinBytes: options.compressMinBytes } : {}),
  });
  const server = http2.createServer({ maxSessionMemory: 64 }, handler);
  // A broken client must never take the server down.
  server.on('sessionError', () => undefined);
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, options.mode ?? 0o770);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  // Connections that never spoke HTTP/2 have no session; track them too, so
  // close() cannot wait forever on an idle client.
  const sockets = new Set<Socket>();
  server.on('connection', (sock: Socket) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
  });
  return {
    path,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          try {
            unlinkSync(path);
          } catch {
            // already gone
          }
          resolve();
        });
        for (const s of sessions) s.close();
        // Streams that do not finish (a peer still sending) are cut after a grace period.
        setTimeout(() => {
          for (const s of sessions) s.destroy();
          for (const sock of sockets) sock.destroy();
        }, CLOSE_GRACE_MS).unref();
      }),
  };
}

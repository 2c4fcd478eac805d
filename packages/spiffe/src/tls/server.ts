import * as tls from 'node:tls';
import * as https from 'node:https';
import * as http2 from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { X509Svid } from '../svid/x509-svid.js';
import { OptionsError } from '../errors/index.js';
import { checkConfig, type SpiffeTlsConfig, type TlsMode } from './config.js';
import { MIN_TLS_VERSION, SECURE_OPTIONS, tlsMaterial } from './material.js';
import { verifyTlsPeer } from './peer.js';

function serverMode(config: SpiffeTlsConfig): TlsMode {
  if (config === null || typeof config !== 'object') throw new OptionsError('server: a config object is required');
  const peer = config.bundle !== undefined || config.authorize !== undefined;
  return peer ? 'mtls-server' : 'tls-server';
}

/**
 * `node:tls` server options for a SPIFFE server: the current SVID as
 * certificate, a client certificate requested in mTLS mode (when the config
 * has `bundle` and `authorize`), and Node's own chain verification off, since
 * the peer is verified by SPIFFE rules (X509-SVID §5) instead.
 *
 * Options alone cannot verify the client: pass the server through
 * {@link secureServer} (the `create*Server` helpers do it for you).
 */
export function serverOptions(config: SpiffeTlsConfig): tls.TlsOptions {
  const mode = serverMode(config);
  const c = checkConfig(config, mode);
  return {
    ...tlsMaterial(c.svid!.getX509Svid()),
    requestCert: mode === 'mtls-server',
    rejectUnauthorized: false,
    minVersion: MIN_TLS_VERSION,
    secureOptions: SECURE_OPTIONS,
  };
}

const SECURED = Symbol('tessera.spiffe.secured');

/**
 * Makes a `tls.Server` (or `https.Server`, `http2.Http2SecureServer`) a SPIFFE
 * server:
 * - every new connection gets the source's current SVID (rotation without restart);
 * - in mTLS mode, the client's X509-SVID is verified against the bundle of its
 *   trust domain and authorized right after the handshake, before the
 *   connection is handed to the server: a rejected client is destroyed, its
 *   request handler never runs, and the server emits `tlsClientError` with a
 *   `TlsPeerError` (`ERR_TLS_PEER_REJECTED`).
 *
 * @returns the same server.
 */
export function secureServer<S extends tls.Server>(server: S, config: SpiffeTlsConfig): S {
  const mode = serverMode(config);
  const c = checkConfig(config, mode);
  const s = server as S & { [SECURED]?: boolean };
  if (s[SECURED]) throw new OptionsError('secureServer: server is already secured');
  s[SECURED] = true;
  const base = { minVersion: MIN_TLS_VERSION, secureOptions: SECURE_OPTIONS } as const;
  let current: X509Svid | undefined;

  // The TLS socket of a new connection is built from the server's shared
  // context in its own 'connection' listener; refresh the context just before.
  server.prependListener('connection', (raw: Socket) => {
    try {
      const svid = c.svid!.getX509Svid();
      if (svid !== current) {
        server.setSecureContext({ ...base, ...tlsMaterial(svid) });
        current = svid;
      }
    } catch (e) {
      raw.destroy();
      server.emit('tlsClientError', e, raw);
    }
  });

  if (mode === 'mtls-server') {
    // https and http2 register their connection handlers in their
    // constructors; intercepting the event is the one place that runs before
    // all of them, so a rejected client never reaches a request handler.
    const emit = server.emit as (this: S, event: string | symbol, ...args: unknown[]) => boolean;
    server.emit = function (this: S, event: string | symbol, ...args: unknown[]): boolean {
      if (event === 'secureConnection') {
        const socket = args[0] as tls.TLSSocket;
        try {
          verifyTlsPeer(socket, c.bundle!, c.authorize!, c.clock(), 'client');
        } catch (e) {
          socket.destroy();
          emit.call(this, 'tlsClientError', e, socket);
          return false;
        }
      }
      return emit.call(this, event, ...args);
    } as S['emit'];
  }
  return server;
}

/** A `node:tls` server secured by {@link secureServer}. */
export function createTlsServer(config: SpiffeTlsConfig, listener?: (socket: tls.TLSSocket) => void, options: tls.TlsOptions = {}): tls.Server {
  return secureServer(tls.createServer({ ...options, ...serverOptions(config) }, listener), config);
}

/** A `node:https` server secured by {@link secureServer}. Read the client's ID with `peerId(req)`. */
export function createHttpsServer(
  config: SpiffeTlsConfig,
  handler?: (req: IncomingMessage, res: ServerResponse) => void,
  options: https.ServerOptions = {},
): https.Server {
  const server = handler ? https.createServer({ ...options, ...serverOptions(config) }, handler) : https.createServer({ ...options, ...serverOptions(config) });
  return secureServer(server, config);
}

/** A `node:http2` secure server secured by {@link secureServer}. Read the client's ID with `peerId(stream)`. */
export function createHttp2Server(
  config: SpiffeTlsConfig,
  handler?: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  options: http2.SecureServerOptions = {},
): http2.Http2SecureServer {
  const opts = { ...options, ...serverOptions(config) };
  return secureServer(handler ? http2.createSecureServer(opts, handler) : http2.createSecureServer(opts), config);
}

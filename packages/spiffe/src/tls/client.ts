import * as tls from 'node:tls';
import * as https from 'node:https';
import * as http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { checkConfig, type SpiffeTlsConfig } from './config.js';
import { clientContext } from './material.js';
import { verifyTlsPeer } from './peer.js';

function clientMode(config: SpiffeTlsConfig): 'mtls-client' | 'tls-client' {
  return config !== null && typeof config === 'object' && config.svid !== undefined ? 'mtls-client' : 'tls-client';
}

/**
 * `node:tls` connect options for a SPIFFE client: our current SVID (mTLS mode,
 * when the config has `svid`), no hostname verification and Node's chain
 * verification off, since the server is verified by SPIFFE rules
 * (X509-SVID §5) instead. Use {@link connectTls} (or the agents below), which
 * verify and authorize the server before handing out the socket.
 */
export function clientOptions(config: SpiffeTlsConfig): tls.ConnectionOptions {
  const c = checkConfig(config, clientMode(config));
  return {
    secureContext: clientContext(c.svid?.getX509Svid()),
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
  };
}

/**
 * Connects, completes the handshake, verifies the server's X509-SVID against
 * the bundle of its trust domain and runs the authorizer, then resolves with
 * the socket. A rejected server is disconnected before a single byte of
 * application data is written; the promise rejects with a `TlsPeerError`
 * (`ERR_TLS_PEER_REJECTED`).
 *
 * @example
 * ```ts
 * const socket = await connectTls({ svid, bundle, authorize: authorizeId(serverId) }, { host: '127.0.0.1', port: 8443 });
 * ```
 */
export function connectTls(config: SpiffeTlsConfig, options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  const c = checkConfig(config, clientMode(config));
  return new Promise((resolve, reject) => {
    let socket: tls.TLSSocket;
    try {
      socket = tls.connect({ ...options, ...clientOptions(config) });
    } catch (e) {
      reject(e);
      return;
    }
    const onError = (e: Error): void => reject(e);
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      try {
        verifyTlsPeer(socket, c.bundle!, c.authorize!, c.clock(), 'server');
      } catch (e) {
        socket.off('error', onError);
        socket.on('error', () => undefined);
        socket.destroy();
        reject(e);
        return;
      }
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/**
 * An `https.Agent` whose connections are SPIFFE-verified by {@link connectTls}
 * before the request is written. TLS session caching is off.
 *
 * @example
 * ```ts
 * https.get('https://127.0.0.1:8443/', { agent: httpsAgent(config) }, onResponse);
 * ```
 */
export function httpsAgent(config: SpiffeTlsConfig, agentOptions: https.AgentOptions = {}): https.Agent {
  checkConfig(config, clientMode(config));
  class SpiffeHttpsAgent extends https.Agent {
    // Returning nothing and calling back later makes the agent wait for the
    // verified socket before it writes the request.
    override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): Duplex | undefined {
      const port = typeof options.port === 'string' ? Number(options.port) : (options.port ?? 443);
      connectTls(config, { host: options.host ?? 'localhost', port, ALPNProtocols: ['http/1.1'], ...(options.servername ? { servername: options.servername } : {}) }).then(
        (s) => callback?.(null, s),
        (e: Error) => callback?.(e, undefined as unknown as Duplex),
      );
      return undefined;
    }
  }
  return new SpiffeHttpsAgent({ ...agentOptions, maxCachedSessions: 0 });
}

/**
 * Opens an HTTP/2 session to `authority` (e.g. `https://127.0.0.1:8443`) over
 * a connection verified by {@link connectTls}.
 */
export async function connectHttp2(authority: string | URL, config: SpiffeTlsConfig, options: http2.ClientSessionOptions = {}): Promise<http2.ClientHttp2Session> {
  const url = typeof authority === 'string' ? new URL(authority) : authority;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const socket = await connectTls(config, { host, port: Number(url.port || 443), ALPNProtocols: ['h2'] });
  if (socket.alpnProtocol !== 'h2') {
    socket.destroy();
    throw new Error(`server at ${url.host} did not negotiate HTTP/2 (ALPN: ${String(socket.alpnProtocol)})`);
  }
  return http2.connect(url, { ...options, createConnection: () => socket });
}

/** What undici passes to a custom connector. */
export interface UndiciConnectOptions {
  readonly hostname: string;
  readonly host?: string;
  readonly protocol: string;
  readonly port: string;
  readonly servername?: string | null;
}

/**
 * A connector for undici (`new Agent({ connect: undiciConnector(config) })`),
 * so `fetch`/`request` through that dispatcher use SPIFFE-verified
 * connections. No dependency on undici itself.
 */
export function undiciConnector(config: SpiffeTlsConfig): (opts: UndiciConnectOptions, callback: (err: Error | null, socket: Duplex | null) => void) => void {
  checkConfig(config, clientMode(config));
  return (opts, callback) => {
    const host = opts.hostname.startsWith('[') ? opts.hostname.slice(1, -1) : opts.hostname;
    const port = Number(opts.port) || 443;
    connectTls(config, { host, port, ALPNProtocols: ['http/1.1'], ...(opts.servername ? { servername: opts.servername } : {}) }).then(
      (s) => callback(null, s),
      (e: Error) => callback(e, null),
    );
  };
}

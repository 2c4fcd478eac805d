import type { TLSSocket } from 'node:tls';
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest, ServerHttp2Stream, ClientHttp2Session, ServerHttp2Session } from 'node:http2';
import type { SpiffeId } from '../id/index.js';
import type { X509BundleSource } from '../bundle/source.js';
import { SpiffeError, TlsPeerError } from '../errors/index.js';
import { verifyX509Svid } from '../svid/x509-verify.js';
import type { Authorizer } from './authorizer.js';

// A symbol property rather than a WeakMap: HTTP/2 exposes sockets through a
// Proxy, which forwards property reads but has its own identity.
const PEER_ID = Symbol('tessera.spiffe.peerId');

/**
 * The peer's certificates as it sent them, leaf first (DER). Node exposes the
 * intermediates only through the detailed certificate object, which costs
 * ~0.7 ms to build (the leaf alone ~35 µs), so callers try the leaf first.
 * `getPeerX509Certificate()` is avoided: in Node 20 it works once per socket
 * and hides the issuer chain from later calls.
 */
export function peerChain(socket: TLSSocket, withIntermediates: boolean): Buffer[] {
  if (!withIntermediates) {
    const leaf = socket.getPeerCertificate(false) as { raw?: Buffer } | undefined;
    return leaf?.raw ? [leaf.raw] : [];
  }
  const out: Buffer[] = [];
  const seen = new Set<object>();
  let c = socket.getPeerCertificate(true) as { raw?: Buffer; issuerCertificate?: unknown } | undefined;
  while (c && c.raw && !seen.has(c) && out.length < 10) {
    seen.add(c);
    out.push(c.raw);
    c = c.issuerCertificate as typeof c;
  }
  return out;
}

/**
 * Verifies the peer of a completed TLS handshake (X509-SVID §5) and runs the
 * authorizer. On success the peer's ID is remembered for {@link peerId}.
 * @throws {@link TlsPeerError} `ERR_TLS_PEER_REJECTED` with the reason.
 * @internal
 */
export function verifyTlsPeer(socket: TLSSocket, bundle: X509BundleSource, authorize: Authorizer, now: Date, role: 'client' | 'server'): SpiffeId {
  const leafOnly = peerChain(socket, false);
  if (leafOnly.length === 0) throw new TlsPeerError(`${role} did not present a certificate`);
  let result;
  try {
    result = verifyX509Svid(leafOnly, bundle, { time: now });
  } catch (first) {
    // Retry with the intermediates the peer sent, if any.
    const full = peerChain(socket, true);
    if (full.length <= 1) throw wrap(first, role);
    try {
      result = verifyX509Svid(full, bundle, { time: now });
    } catch (e) {
      throw wrap(e, role);
    }
  }
  try {
    authorize(result.id, result.verifiedChains);
  } catch (e) {
    throw new TlsPeerError(`${role} ${result.id.toString()} is not authorized: ${(e as Error).message}`, { cause: e });
  }
  (socket as unknown as Record<symbol, SpiffeId>)[PEER_ID] = result.id;
  return result.id;
}

function wrap(e: unknown, role: string): TlsPeerError {
  if (e instanceof SpiffeError) return new TlsPeerError(`${role} certificate rejected: ${e.message}`, { cause: e });
  return new TlsPeerError(`${role} certificate rejected: ${String(e)}`, { cause: e });
}

type HasPeer = TLSSocket | IncomingMessage | Http2ServerRequest | ServerHttp2Stream | ServerHttp2Session | ClientHttp2Session;

/**
 * The verified SPIFFE ID of the peer of a connection made or accepted by this
 * module's helpers: pass the TLS socket, an HTTP(S) request, an HTTP/2 request,
 * stream or session. `undefined` if the connection was not verified by SPIFFE.
 *
 * @example
 * ```ts
 * const server = createHttpsServer(config, (req, res) => res.end(`Hello, ${peerId(req)}`));
 * ```
 */
export function peerId(from: HasPeer): SpiffeId | undefined {
  const socket = socketOf(from);
  return socket ? (socket as Record<symbol, SpiffeId | undefined>)[PEER_ID] : undefined;
}

function socketOf(from: HasPeer): object | undefined {
  const f = from as unknown as Record<string, unknown>;
  if (typeof f['getPeerX509Certificate'] === 'function') return from;
  if (f['session'] && typeof f['session'] === 'object') return (f['session'] as { socket?: object }).socket;
  if (f['stream'] && typeof f['stream'] === 'object') return socketOf(f['stream'] as HasPeer);
  if (f['socket'] && typeof f['socket'] === 'object') return f['socket'] as object;
  return undefined;
}

import { X509Certificate } from 'node:crypto';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import type { TrustDomain } from '@tessera/spiffe/id';
import { X509Bundle } from '@tessera/spiffe/bundle';
import { verifyX509Svid } from '@tessera/spiffe/svid';
import { AgentApi } from '../../gen/tessera/v1/agent_pb.js';
import type { ServerAddress } from '../config.js';
import type { AgentSvid } from './identity-store.js';

/** Marks the error a server that fails SPIFFE verification produces. */
const UNTRUSTED = 'server not trusted';

/** Options of {@link ServerConnection}. */
export interface ServerConnectionOptions {
  readonly trustDomain: TrustDomain;
  /** Tried in order; {@link ServerConnection.failover} moves to the next (and wraps). */
  readonly addresses: readonly ServerAddress[];
  /** The trust domain's X.509 authorities (DER) that vouch for the server; empty = insecure bootstrap (nothing verified). */
  readonly roots: () => readonly Uint8Array[];
  /** The agent SVID to present (none before attestation). */
  readonly svid: () => AgentSvid | undefined;
  /** Deadline of unary calls. Default 10 s. */
  readonly timeoutMs?: number;
}

const pem = (der: Uint8Array): string => new X509Certificate(der).toString();

/**
 * The agent's link to the server's Agent API (gRPC over HTTP/2 + TLS): the
 * server is verified as an X509-SVID of `spiffe://<td>/tessera/server` under
 * the current bundle (OpenSSL checks the chain to the roots, then the
 * library's strict SVID verification and the exact ID), the agent SVID is
 * the client certificate. One HTTP/2 connection per (address, SVID, bundle):
 * {@link invalidate} after a renewal or a bundle change, {@link failover} when
 * the server stops answering.
 */
export class ServerConnection {
  readonly #o: ServerConnectionOptions;
  readonly #serverId: string;
  #index = 0;
  #client: Client<typeof AgentApi> | undefined;
  #session: Http2SessionManager | undefined;
  /** Connections replaced by a newer one; streams on them may still run. They close when idle, or on {@link close}. */
  readonly #retired = new Set<Http2SessionManager>();

  constructor(options: ServerConnectionOptions) {
    if (options.addresses.length === 0) throw new TypeError('ServerConnection: at least one server address is required');
    this.#o = options;
    this.#serverId = `${options.trustDomain.idString()}/tessera/server`;
  }

  /** The address calls go to now. */
  get address(): ServerAddress {
    return this.#o.addresses[this.#index]!;
  }

  /** `host:port` of {@link address}. */
  get addressString(): string {
    const a = this.address;
    return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
  }

  /** The Agent API client (created on first use after a change). */
  client(): Client<typeof AgentApi> {
    this.#client ??= this.#create();
    return this.#client;
  }

  /**
   * Runs one call on the current client; when it fails because the server
   * is unreachable, moves to the next address (for the next call) and rethrows.
   */
  async call<T>(fn: (client: Client<typeof AgentApi>) => Promise<T>): Promise<T> {
    try {
      return await fn(this.client());
    } catch (e) {
      if (isServerUnavailable(e)) this.failover();
      throw e;
    }
  }

  /** Drops the connection so the next call uses the current SVID and bundle. */
  invalidate(): void {
    this.#retire();
  }

  /** Closes every connection (ends open streams). */
  close(): void {
    this.#retire();
    for (const s of this.#retired) s.abort();
    this.#retired.clear();
  }

  #retire(): void {
    if (this.#session !== undefined) this.#retired.add(this.#session);
    for (const s of this.#retired) if (s.state() === 'closed' || s.state() === 'error') this.#retired.delete(s);
    this.#session = undefined;
    this.#client = undefined;
  }

  /** Moves to the next server address (wrapping), dropping the connection. Returns the new address. */
  failover(): string {
    this.#index = (this.#index + 1) % this.#o.addresses.length;
    // The old server is gone (or misbehaving): don't keep its connection.
    this.#session?.abort();
    this.#session = undefined;
    this.#client = undefined;
    return this.addressString;
  }

  #create(): Client<typeof AgentApi> {
    const a = this.address;
    const roots = this.#o.roots();
    const svid = this.#o.svid();
    const td = this.#o.trustDomain;
    const expected = this.#serverId;
    const tlsOptions =
      roots.length === 0
        ? { rejectUnauthorized: false }
        : {
            ca: roots.map(pem),
            checkServerIdentity: (_host: string, cert: { raw: Buffer }): Error | undefined => {
              try {
                const { id } = verifyX509Svid([cert.raw], new X509Bundle(td, roots));
                return id.toString() === expected ? undefined : new Error(`${UNTRUSTED}: it presented ${id.toString()}, expected ${expected}`);
              } catch (e) {
                return new Error(`${UNTRUSTED}: ${(e as Error).message}`);
              }
            },
          };
    const baseUrl = `https://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
    this.#session = new Http2SessionManager(
      baseUrl,
      // Notice a server that vanished without closing the connection (Sync is long-lived).
      { pingIntervalMs: 15_000, pingTimeoutMs: 10_000, idleConnectionTimeoutMs: 60_000 },
      { ...tlsOptions, ...(svid ? { cert: svid.certificates.map(pem).join(''), key: svid.key.export({ type: 'pkcs8', format: 'pem' }) } : {}) },
    );
    return createClient(AgentApi, createGrpcTransport({ baseUrl, defaultTimeoutMs: this.#o.timeoutMs ?? 10_000, sessionManager: this.#session }));
  }
}

/** Whether a failed call failed because the server could not be verified (wrong CA, wrong ID). */
export function isUntrustedServer(e: unknown): boolean {
  for (let c: unknown = e, i = 0; c !== undefined && c !== null && i < 8; c = (c as { cause?: unknown }).cause, i++) {
    const msg = c instanceof Error ? c.message : String(c);
    const code = (c as { code?: unknown }).code;
    if (msg.includes(UNTRUSTED)) return true;
    if (typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) return true;
  }
  return false;
}

/** Whether a failed call means "this server is not reachable now" (try later or another server). */
export function isServerUnavailable(e: unknown): boolean {
  if (isUntrustedServer(e)) return false;
  const ce = ConnectError.from(e);
  return ce.code === Code.Unavailable || ce.code === Code.DeadlineExceeded || ce.code === Code.Canceled || ce.code === Code.Unknown || ce.code === Code.Internal;
}

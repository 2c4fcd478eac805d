import * as net from 'node:net';
import { Code, ConnectError, createClient, type Client, type Interceptor } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { OptionsError, SourceError } from '../errors/index.js';
import type { SpiffeId } from '../id/index.js';
import type { JwtBundleSet, X509BundleSet } from '../bundle/bundle-set.js';
import { JwtSvid } from '../svid/jwt-svid.js';
import type { X509Svid } from '../svid/x509-svid.js';
import { parseWorkloadEndpoint, type WorkloadEndpoint } from './address.js';
import { exponentialBackoff, realSleep, type BackoffStrategy, type Sleep } from './backoff.js';
import { wrapRpcError } from './errors.js';
import { parseJwtBundles, parseJwtSvids, parseX509Bundles, parseX509Context, parseX509Svids, type X509Context } from './parse.js';
import { SpiffeWorkloadAPI } from './gen/workload/workload_pb.js';

/** The metadata every Workload API request carries (Workload API §4.1); the agent refuses calls without it. */
export const SECURITY_HEADER = 'workload.spiffe.io';

/** Options of {@link WorkloadApiClient}. */
export interface WorkloadApiClientOptions {
  /** `unix:///path` or `tcp://IP:port`; default `SPIFFE_ENDPOINT_SOCKET`. */
  readonly address?: string;
  /** Retry timing of watches; default exponential 1 s … 30 s. */
  readonly backoff?: BackoffStrategy;
  /** How watches wait between retries; default real timers (tests inject their own). */
  readonly sleep?: Sleep;
}

/** Parameters of {@link WorkloadApiClient.fetchJwtSvid}. */
export interface JwtSvidParams {
  /** The audience(s) the token is for; at least one, none empty. */
  readonly audience: string | readonly string[];
  /** Ask for the SVID of this identity only (when the workload has several). */
  readonly spiffeId?: SpiffeId | string;
}

/** Receives the X.509 context stream (go-spiffe's `X509ContextWatcher`). */
export interface X509ContextWatcher {
  onX509ContextUpdate(context: X509Context): void;
  /** A failed stream (it will be retried unless InvalidArgument) or a rejected, malformed update. */
  onX509ContextWatchError?(error: Error): void;
}

/** Receives the JWT bundle stream (go-spiffe's `JWTBundleWatcher`). */
export interface JwtBundleWatcher {
  onJwtBundlesUpdate(bundles: JwtBundleSet): void;
  onJwtBundlesWatchError?(error: Error): void;
}

/** Receives the X.509 bundle stream (go-spiffe's `X509BundleWatcher`). */
export interface X509BundleWatcher {
  onX509BundlesUpdate(bundles: X509BundleSet): void;
  onX509BundlesWatchError?(error: Error): void;
}

type WorkloadClient = Client<typeof SpiffeWorkloadAPI>;

/**
 * A client of the SPIFFE Workload API (go-spiffe's `workloadapi.Client`):
 * gRPC over the agent's Unix socket (or loopback TCP), every response parsed
 * with the library's strict parsers.
 *
 * Fetches fail with the library's typed errors: parse failures as the
 * parser throws them (`ERR_X509SVID_INVALID`, `ERR_BUNDLE_INVALID`, …),
 * gRPC failures as {@link WorkloadApiError} (`ERR_SOURCE_UNAVAILABLE`).
 * Watches retry with backoff until cancelled or answered InvalidArgument.
 *
 * @example
 * ```ts
 * const client = new WorkloadApiClient({ address: 'unix:///run/spire/agent.sock' });
 * const svid = await client.fetchX509Svid();
 * client.close();
 * ```
 */
export class WorkloadApiClient {
  /** The parsed endpoint this client talks to. */
  readonly endpoint: WorkloadEndpoint;
  readonly #client: WorkloadClient;
  readonly #sessions: Http2SessionManager;
  readonly #sockets = new Set<net.Socket>();
  readonly #backoff: BackoffStrategy;
  readonly #sleep: Sleep;
  readonly #closed = new AbortController();

  constructor(options: WorkloadApiClientOptions = {}) {
    if (options === null || typeof options !== 'object') throw new OptionsError('WorkloadApiClient: options must be an object');
    if (options.backoff !== undefined && typeof options.backoff !== 'function') throw new OptionsError('WorkloadApiClient: "backoff" must be a function returning a Backoff');
    if (options.sleep !== undefined && typeof options.sleep !== 'function') throw new OptionsError('WorkloadApiClient: "sleep" must be a function');
    this.endpoint = parseWorkloadEndpoint(options.address);
    this.#backoff = options.backoff ?? exponentialBackoff();
    this.#sleep = options.sleep ?? realSleep;
    const ep = this.endpoint;
    const baseUrl =
      ep.network === 'unix' ? 'http://localhost' : `http://${ep.host.includes(':') ? `[${ep.host}]` : ep.host}:${ep.port}`;
    // Our own sockets: close() must end them even when no HTTP/2 session came up (a silent or
    // non-HTTP/2 peer), and a protocol error on a session being torn down must not go unhandled.
    const connect = (): net.Socket => {
      const socket = ep.network === 'unix' ? net.connect(ep.path) : net.connect({ host: ep.host, port: ep.port });
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
      return socket;
    };
    this.#sessions = new Http2SessionManager(baseUrl, undefined, {
      createConnection: () => connect(),
    });
    const securityHeader: Interceptor = (next) => (req) => {
      req.header.set(SECURITY_HEADER, 'true');
      return next(req);
    };
    const transport = createGrpcTransport({ baseUrl, sessionManager: this.#sessions, interceptors: [securityHeader] });
    this.#client = createClient(SpiffeWorkloadAPI, transport);
  }

  /** The default (first) X509-SVID. @throws {@link WorkloadApiError}, {@link X509SvidError} */
  async fetchX509Svid(signal?: AbortSignal): Promise<X509Svid> {
    const resp = await this.#first('FetchX509SVID', (s) => this.#client.fetchX509SVID({}, { signal: s }), signal);
    return parseX509Svids(resp, true)[0]!;
  }

  /** Every X509-SVID of the workload (duplicate hints dropped, first kept). */
  async fetchX509Svids(signal?: AbortSignal): Promise<X509Svid[]> {
    const resp = await this.#first('FetchX509SVID', (s) => this.#client.fetchX509SVID({}, { signal: s }), signal);
    return parseX509Svids(resp, false);
  }

  /** SVIDs and bundles from one X509SVIDResponse. */
  async fetchX509Context(signal?: AbortSignal): Promise<X509Context> {
    const resp = await this.#first('FetchX509SVID', (s) => this.#client.fetchX509SVID({}, { signal: s }), signal);
    return parseX509Context(resp);
  }

  /** The X.509 bundles, keyed by trust domain. @throws {@link WorkloadApiError}, {@link BundleError} */
  async fetchX509Bundles(signal?: AbortSignal): Promise<X509BundleSet> {
    const resp = await this.#first('FetchX509Bundles', (s) => this.#client.fetchX509Bundles({}, { signal: s }), signal);
    return parseX509Bundles(resp);
  }

  /** The JWT bundles, keyed by trust domain. */
  async fetchJwtBundles(signal?: AbortSignal): Promise<JwtBundleSet> {
    const resp = await this.#first('FetchJWTBundles', (s) => this.#client.fetchJWTBundles({}, { signal: s }), signal);
    return parseJwtBundles(resp);
  }

  /** A JWT-SVID for `audience` (the first, or the one of `spiffeId`). Parsed with {@link JwtSvid.parseInsecure}: the agent signed it. */
  async fetchJwtSvid(params: JwtSvidParams, signal?: AbortSignal): Promise<JwtSvid> {
    return (await this.#fetchJwtSvids(params, true, signal))[0]!;
  }

  /** One JWT-SVID per identity of the workload. */
  async fetchJwtSvids(params: JwtSvidParams, signal?: AbortSignal): Promise<JwtSvid[]> {
    return this.#fetchJwtSvids(params, false, signal);
  }

  async #fetchJwtSvids(params: JwtSvidParams, firstOnly: boolean, signal?: AbortSignal): Promise<JwtSvid[]> {
    if (params === null || typeof params !== 'object') throw new OptionsError('fetchJwtSvid: params with an "audience" are required');
    const audience = typeof params.audience === 'string' ? [params.audience] : [...(params.audience ?? [])];
    if (audience.length === 0 || audience.some((a) => typeof a !== 'string' || a === '')) {
      throw new OptionsError('fetchJwtSvid: "audience" must be a non-empty string or list of non-empty strings');
    }
    const spiffeId = params.spiffeId === undefined ? '' : params.spiffeId.toString();
    const resp = await this.#unary('FetchJWTSVID', (s) => this.#client.fetchJWTSVID({ audience, spiffeId }, { signal: s }), signal);
    return parseJwtSvids(resp, audience, firstOnly);
  }

  /**
   * Asks the agent to validate `token` for `audience`; when it agrees, the
   * token is validated again locally with {@link JwtSvid.parseAndValidate}
   * against the JWT bundles fetched from the agent, so the result never rests
   * on the response body alone.
   * @throws {@link WorkloadApiError} (InvalidArgument with the agent's reason), {@link JwtSvidError}
   */
  async validateJwtSvid(token: string, audience: string, signal?: AbortSignal): Promise<JwtSvid> {
    if (typeof token !== 'string' || token === '') throw new OptionsError('validateJwtSvid: "token" must be a non-empty string');
    if (typeof audience !== 'string' || audience === '') throw new OptionsError('validateJwtSvid: "audience" must be a non-empty string');
    await this.#unary('ValidateJWTSVID', (s) => this.#client.validateJWTSVID({ audience, svid: token }, { signal: s }), signal);
    const bundles = await this.fetchJwtBundles(signal);
    return JwtSvid.parseAndValidate(token, bundles, audience);
  }

  /**
   * Watches the X.509 context until `signal` aborts or the client closes
   * (then it resolves). Malformed updates go to the watcher's error callback
   * and are skipped; failed streams are retried with backoff, except
   * InvalidArgument, which rejects.
   */
  watchX509Context(watcher: X509ContextWatcher, signal?: AbortSignal): Promise<void> {
    if (watcher === null || typeof watcher !== 'object' || typeof watcher.onX509ContextUpdate !== 'function') {
      throw new OptionsError('watchX509Context: watcher must have onX509ContextUpdate');
    }
    return this.#watch(
      'FetchX509SVID',
      (s) => this.#client.fetchX509SVID({}, { signal: s }),
      parseX509Context,
      (v) => watcher.onX509ContextUpdate(v),
      (e) => watcher.onX509ContextWatchError?.(e),
      signal,
    );
  }

  /** Watches the JWT bundles; same rules as {@link WorkloadApiClient.watchX509Context}. */
  watchJwtBundles(watcher: JwtBundleWatcher, signal?: AbortSignal): Promise<void> {
    if (watcher === null || typeof watcher !== 'object' || typeof watcher.onJwtBundlesUpdate !== 'function') {
      throw new OptionsError('watchJwtBundles: watcher must have onJwtBundlesUpdate');
    }
    return this.#watch(
      'FetchJWTBundles',
      (s) => this.#client.fetchJWTBundles({}, { signal: s }),
      parseJwtBundles,
      (v) => watcher.onJwtBundlesUpdate(v),
      (e) => watcher.onJwtBundlesWatchError?.(e),
      signal,
    );
  }

  /** Watches the X.509 bundles; same rules as {@link WorkloadApiClient.watchX509Context}. */
  watchX509Bundles(watcher: X509BundleWatcher, signal?: AbortSignal): Promise<void> {
    if (watcher === null || typeof watcher !== 'object' || typeof watcher.onX509BundlesUpdate !== 'function') {
      throw new OptionsError('watchX509Bundles: watcher must have onX509BundlesUpdate');
    }
    return this.#watch(
      'FetchX509Bundles',
      (s) => this.#client.fetchX509Bundles({}, { signal: s }),
      parseX509Bundles,
      (v) => watcher.onX509BundlesUpdate(v),
      (e) => watcher.onX509BundlesWatchError?.(e),
      signal,
    );
  }

  /** Whether {@link WorkloadApiClient.close} was called. */
  get closed(): boolean {
    return this.#closed.signal.aborted;
  }

  /** Cancels every call and watch and closes the connection. Idempotent. */
  close(): void {
    if (this.#closed.signal.aborted) return;
    this.#closed.abort(new SourceError('the Workload API client is closed'));
    // The connection is ended through its socket, so connect-node's listeners are still on the
    // HTTP/2 session when it goes: its own abort() takes them off first, and a late protocol error
    // from a peer that doesn't speak HTTP/2 would then be unhandled and end the process.
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
  }

  #signal(signal: AbortSignal | undefined): AbortSignal {
    if (this.#closed.signal.aborted) throw new SourceError('the Workload API client is closed');
    return signal ? AbortSignal.any([signal, this.#closed.signal]) : this.#closed.signal;
  }

  async #unary<T>(method: string, call: (s: AbortSignal) => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    const s = this.#signal(signal);
    try {
      return await call(s);
    } catch (e) {
      throw wrapRpcError(method, e);
    }
  }

  /** The first message of a stream, then the stream is cancelled (go-spiffe's fetch calls). */
  async #first<T>(method: string, open: (s: AbortSignal) => AsyncIterable<T>, signal: AbortSignal | undefined): Promise<T> {
    const done = new AbortController();
    const s = AbortSignal.any([this.#signal(signal), done.signal]);
    try {
      for await (const msg of open(s)) return msg;
      throw new ConnectError('the stream ended without a message', Code.Unavailable);
    } catch (e) {
      throw wrapRpcError(method, e);
    } finally {
      done.abort();
    }
  }

  async #watch<M, T>(
    method: string,
    open: (s: AbortSignal) => AsyncIterable<M>,
    parse: (m: M) => T,
    onUpdate: (v: T) => void,
    onError: (e: Error) => void,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const s = this.#signal(signal);
    const backoff = this.#backoff();
    while (!s.aborted) {
      let failure: unknown;
      try {
        for await (const msg of open(s)) {
          backoff.reset();
          let value: T;
          try {
            value = parse(msg);
          } catch (e) {
            // go-spiffe logs and skips a malformed update; the stream stays up.
            onError(e as Error);
            continue;
          }
          try {
            onUpdate(value);
          } catch (e) {
            // A throwing watcher must not tear down the stream (and trigger a backoff).
            onError(e as Error);
          }
        }
        failure = new ConnectError('the stream ended', Code.Unavailable);
      } catch (e) {
        failure = e;
      }
      if (s.aborted) return;
      const err = ConnectError.from(failure);
      const wrapped = wrapRpcError(method, err);
      onError(wrapped);
      if (err.code === Code.Canceled) return;
      if (err.code === Code.InvalidArgument) throw wrapped;
      await this.#sleep(backoff.next(), s);
    }
  }
}

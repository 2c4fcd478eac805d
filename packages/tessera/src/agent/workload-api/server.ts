import type { KeyObject } from 'node:crypto';
import type { Socket } from 'node:net';
import { Code, ConnectError, createContextKey, createContextValues, type HandlerContext } from '@connectrpc/connect';
import { create, toBinary, type JsonObject } from '@bufbuild/protobuf';
import { TrustDomain } from '@tessera/spiffe/id';
import { JwtBundle, JwtBundleSet } from '@tessera/spiffe/bundle';
import { JwtSvid } from '@tessera/spiffe/svid';
import { SECURITY_HEADER, workloadApiWire as wire } from '@tessera/spiffe/workload-api';

import type { Selector } from '../../server/registration/index.js';
import type { Logger } from '../../observe/logger.js';
import { serveGrpcOnUnixSocket } from '../../grpc/unix-server.js';
import type { PeerCredentials } from '../workload-attestors/index.js';
import type { CachedSvid, IdentityCache, TrustBundle } from './identity-cache.js';

/** Options of {@link startWorkloadApi}. */
export interface WorkloadApiOptions {
  /** Absolute path of the Unix socket to serve on (created with mode 0777). */
  readonly socketPath: string;
  readonly cache: IdentityCache;
  /** Selectors of the process `pid` (e.g. `unixAttestor().attest`). */
  readonly attest: (pid: number) => Promise<Selector[]>;
  /** The caller of a connection (e.g. `peerCredentials`, SO_PEERCRED). */
  readonly peer: (socket: Socket) => PeerCredentials;
  readonly logger?: Pick<Logger, 'debug' | 'warn'>;
}

/** A running Workload API endpoint. */
export interface WorkloadApiServer {
  readonly socketPath: string;
  /** Ends open streams, stops listening, removes the socket file. */
  close(): Promise<void>;
}

const kSocket = createContextKey<Socket | undefined>(undefined);
const NO_IDENTITY = 'no identity issued';
/** How long close() lets connections end by themselves before cutting them. */
const CLOSE_GRACE_MS = 1000;

interface Caller {
  readonly pid: number;
  readonly selectors: Selector[];
}

const tdId = (td: string): string => (td.startsWith('spiffe://') ? td : `spiffe://${td}`);
const tdName = (td: string): string => (td.startsWith('spiffe://') ? td.slice('spiffe://'.length) : td);
const concat = (ders: readonly Buffer[]): Buffer => Buffer.concat(ders.map((d) => Buffer.from(d)));

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.length === b.length && Buffer.compare(a, b) === 0;
}

/** JWKS JSON with every key lacking a `kid` removed (go-spiffe rejects such keys). */
function jwksWithKids(jwks: string): string {
  try {
    const doc = JSON.parse(jwks) as { keys?: unknown };
    const keys = Array.isArray(doc.keys) ? doc.keys.filter((k) => k !== null && typeof k === 'object' && typeof (k as { kid?: unknown }).kid === 'string' && (k as { kid: string }).kid !== '') : [];
    return JSON.stringify({ ...doc, keys });
  } catch {
    return JSON.stringify({ keys: [] });
  }
}

/**
 * Waits for cache changes; a change that happened while nobody waited is not lost.
 * Ends when the call's `signal` aborts or {@link end} is called (server closing: a
 * method call rather than AbortSignal.any, which cost more per call than this class).
 */
class ChangeSignal {
  #dirty = false;
  #ended = false;
  #wake: (() => void) | undefined;
  readonly #unsubscribe: () => void;

  constructor(
    cache: IdentityCache,
    private readonly signal: AbortSignal,
  ) {
    this.#unsubscribe = cache.onChange(() => {
      this.#dirty = true;
      this.#wake?.();
    });
    signal.addEventListener('abort', this.#onAbort);
  }

  readonly #onAbort = (): void => this.#wake?.();

  get #aborted(): boolean {
    return this.#ended || this.signal.aborted;
  }

  /** Ends the wait for good, as if the call had been cancelled. */
  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  /** Resolves true on a change, false once the call is cancelled. */
  async next(): Promise<boolean> {
    if (!this.#dirty && !this.#aborted) {
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
    if (this.#aborted) return false;
    this.#dirty = false;
    return true;
  }

  dispose(): void {
    this.#unsubscribe();
    this.signal.removeEventListener('abort', this.#onAbort);
    this.#wake?.();
  }
}

/**
 * Serves the SPIFFE Workload API (spec/workload-api.md) on a Unix socket:
 * callers are identified by SO_PEERCRED and attested, then served the
 * identities the cache holds for their selectors. Streams send the full
 * state at once and again whenever the caller's view changes.
 */
export async function startWorkloadApi(options: WorkloadApiOptions): Promise<WorkloadApiServer> {
  const { cache, attest, peer, logger } = options;
  const closing = new AbortController();
  /** The open streams' change signals, ended by close(). */
  const watching = new Set<ChangeSignal>();

  function checkHeader(ctx: HandlerContext): void {
    if (ctx.requestHeader.get(SECURITY_HEADER) !== 'true') throw new ConnectError('security header missing from request', Code.InvalidArgument);
  }

  async function attestPid(pid: number): Promise<Selector[]> {
    try {
      return await attest(pid);
    } catch (e) {
      logger?.warn('workload attestation failed', { pid, error: e instanceof Error ? e.message : String(e) });
      throw new ConnectError(`workload attestation failed: ${e instanceof Error ? e.message : String(e)}`, Code.Unavailable);
    }
  }

  // After a cache change every open stream re-attests its caller; the streams of one process
  // share one attestation per change (1,000 streams of 4 processes: 4 attestations, not 1,000).
  const reattested = new Map<number, Promise<Selector[]>>();
  const unsubscribeReattest = cache.onChange(() => reattested.clear());
  function reattest(pid: number): Promise<Selector[]> {
    let p = reattested.get(pid);
    if (p === undefined) {
      p = attestPid(pid);
      reattested.set(pid, p);
      p.catch(() => reattested.delete(pid));
    }
    return p;
  }

  async function identify(ctx: HandlerContext): Promise<Caller> {
    const socket = ctx.values.get(kSocket);
    let pid: number;
    try {
      if (socket === undefined) throw new Error('no connection');
      pid = peer(socket).pid;
    } catch (e) {
      logger?.warn('cannot identify the Workload API caller', { error: e instanceof Error ? e.message : String(e) });
      throw new ConnectError(`cannot identify the caller: ${e instanceof Error ? e.message : String(e)}`, Code.Unavailable);
    }
    return { pid, selectors: await attestPid(pid) };
  }

  function svidsOf(selectors: readonly Selector[]): readonly CachedSvid[] {
    const { svids } = cache.identitiesFor(selectors);
    if (svids.length === 0) throw new ConnectError(NO_IDENTITY, Code.PermissionDenied);
    return svids;
  }

  /** The federated bundles the caller's identities federate with (never the own trust domain), sorted. */
  function federatedFor(svids: readonly CachedSvid[], own: TrustBundle): TrustBundle[] {
    const wanted = new Set(svids.flatMap((s) => s.federatesWith.map(tdName)));
    wanted.delete(tdName(own.trustDomain));
    const all = cache.federatedBundles();
    const out: TrustBundle[] = [];
    for (const [td, b] of [...all].sort(([a], [c]) => (a < c ? -1 : a > c ? 1 : 0))) if (wanted.has(tdName(td))) out.push({ ...b, trustDomain: tdName(td) });
    return out;
  }

  // PKCS#8 DER of each SVID key, exported once: every stream re-sends it on every cache change.
  const keyDer = new WeakMap<KeyObject, Buffer>();
  function pkcs8(key: KeyObject): Buffer {
    let der = keyDer.get(key);
    if (der === undefined) {
      der = key.export({ type: 'pkcs8', format: 'der' });
      keyDer.set(key, der);
    }
    return der;
  }

  function x509SvidResponse(svids: readonly CachedSvid[]): wire.X509SVIDResponse {
    const own = cache.bundle();
    const ownDer = concat(own.x509Authorities);
    const federated: Record<string, Uint8Array> = {};
    for (const b of federatedFor(svids, own)) federated[tdId(b.trustDomain)] = concat(b.x509Authorities);
    return create(wire.X509SVIDResponseSchema, {
      svids: svids.map((s) => ({
        spiffeId: s.spiffeId,
        x509Svid: concat(s.certificates),
        x509SvidKey: pkcs8(s.privateKey),
        bundle: ownDer,
        hint: s.hint,
      })),
      federatedBundles: federated,
    });
  }

  function x509BundlesResponse(svids: readonly CachedSvid[]): wire.X509BundlesResponse {
    const own = cache.bundle();
    const bundles: Record<string, Uint8Array> = { [tdId(own.trustDomain)]: concat(own.x509Authorities) };
    for (const b of federatedFor(svids, own)) bundles[tdId(b.trustDomain)] = concat(b.x509Authorities);
    return create(wire.X509BundlesResponseSchema, { bundles });
  }

  function jwtBundlesResponse(svids: readonly CachedSvid[]): wire.JWTBundlesResponse {
    const own = cache.bundle();
    const bundles: Record<string, Uint8Array> = { [tdId(own.trustDomain)]: Buffer.from(jwksWithKids(own.jwks)) };
    for (const b of federatedFor(svids, own)) bundles[tdId(b.trustDomain)] = Buffer.from(jwksWithKids(b.jwks));
    return create(wire.JWTBundlesResponseSchema, { bundles });
  }

  // A response depends only on the caller's SVIDs and the bundles, so callers with the same
  // SVIDs get the same message: it is built and encoded once per cache change, not on every
  // call (the encoding is what a stream compares to skip unchanged updates). Keyed by the
  // identity of the CachedSvid objects, which the caches replace rather than mutate; cleared on
  // every change (bundles change only with one). The caller is still attested on every call.
  type Response = wire.X509SVIDResponse | wire.X509BundlesResponse | wire.JWTBundlesResponse;
  const RESPONSES_KEPT = 256;
  const svidIds = new WeakMap<CachedSvid, number>();
  let nextSvidId = 0;
  const responses = new Map<string, { readonly own: TrustBundle; readonly msg: Response; readonly bytes: Uint8Array }>();
  const unsubscribeResponses = cache.onChange(() => responses.clear());
  function response<T extends Response>(kind: string, schema: Parameters<typeof toBinary>[0], build: (svids: readonly CachedSvid[]) => T, svids: readonly CachedSvid[]): { msg: T; bytes: Uint8Array } {
    let key = kind;
    for (const s of svids) {
      let id = svidIds.get(s);
      if (id === undefined) svidIds.set(s, (id = nextSvidId++));
      key += `,${id}`;
    }
    const own = cache.bundle();
    const hit = responses.get(key);
    if (hit !== undefined && hit.own === own) return hit as { own: TrustBundle; msg: T; bytes: Uint8Array };
    const msg = build(svids);
    const made = { own, msg, bytes: toBinary(schema, msg) };
    if (responses.size >= RESPONSES_KEPT) responses.clear();
    responses.set(key, made);
    return made;
  }

  /** A full-state stream: the first message at once, then one per change of the caller's view. */
  async function* watch<T extends Response>(
    ctx: HandlerContext,
    schema: Parameters<typeof toBinary>[0],
    build: (svids: readonly CachedSvid[]) => T,
  ): AsyncGenerator<T> {
    checkHeader(ctx);
    const caller = await identify(ctx);
    // Ends when the caller cancels or the server closes.
    const changes = new ChangeSignal(cache, ctx.signal);
    if (closing.signal.aborted) changes.end();
    watching.add(changes);
    try {
      let selectors = caller.selectors;
      let last: Uint8Array | undefined;
      for (;;) {
        const { msg, bytes } = response(schema.typeName, schema, build, svidsOf(selectors));
        if (last !== bytes && !sameBytes(last, bytes)) {
          last = bytes;
          yield msg;
        }
        if (!(await changes.next())) return;
        // The caller's entries may have changed with the cache: re-attest it.
        selectors = await reattest(caller.pid);
      }
    } finally {
      watching.delete(changes);
      changes.dispose();
    }
  }

  function guardStream<T>(name: string, gen: () => AsyncGenerator<T>): () => AsyncGenerator<T> {
    return async function* () {
      try {
        yield* gen();
      } catch (e) {
        throw toConnectError(name, e);
      }
    };
  }

  function toConnectError(method: string, e: unknown): ConnectError {
    if (e instanceof ConnectError) return e;
    logger?.warn('Workload API call failed', { method, error: e instanceof Error ? e.message : String(e) });
    return new ConnectError('internal error', Code.Internal);
  }

  async function fetchJwtSvid(req: wire.JWTSVIDRequest, ctx: HandlerContext): Promise<wire.JWTSVIDResponse> {
    checkHeader(ctx);
    if (req.audience.length === 0 || req.audience.some((a) => a === '')) {
      throw new ConnectError('audience must be specified', Code.InvalidArgument);
    }
    const caller = await identify(ctx);
    let svids = svidsOf(caller.selectors);
    if (req.spiffeId !== '') {
      svids = svids.filter((s) => s.spiffeId === req.spiffeId);
      if (svids.length === 0) throw new ConnectError(`no identity issued for ${JSON.stringify(req.spiffeId)}`, Code.PermissionDenied);
    }
    const seen = new Set<string>();
    const out: { spiffeId: string; svid: string; hint: string }[] = [];
    for (const s of svids) {
      if (seen.has(s.spiffeId)) continue;
      seen.add(s.spiffeId);
      let minted;
      try {
        minted = await cache.fetchJwtSvid(s.spiffeId, req.audience);
      } catch (e) {
        logger?.warn('cannot mint a JWT-SVID', { spiffeId: s.spiffeId, error: e instanceof Error ? e.message : String(e) });
        throw new ConnectError('cannot mint a JWT-SVID', Code.Unavailable);
      }
      out.push({ spiffeId: s.spiffeId, svid: minted.token, hint: s.hint });
    }
    return create(wire.JWTSVIDResponseSchema, { svids: out });
  }

  async function validateJwtSvid(req: wire.ValidateJWTSVIDRequest, ctx: HandlerContext): Promise<wire.ValidateJWTSVIDResponse> {
    checkHeader(ctx);
    if (req.audience === '') throw new ConnectError('audience must be specified', Code.InvalidArgument);
    if (req.svid === '') throw new ConnectError('svid must be specified', Code.InvalidArgument);
    // Verifiers need no identity of their own, but the caller must still be identifiable.
    await identify(ctx);
    const set = new JwtBundleSet();
    const own = cache.bundle();
    for (const b of [own, ...[...cache.federatedBundles()].map(([td, fb]) => ({ ...fb, trustDomain: td }))]) {
      try {
        set.add(JwtBundle.parse(TrustDomain.parse(tdName(b.trustDomain)), jwksWithKids(b.jwks)));
      } catch (e) {
        logger?.warn('unusable JWT bundle skipped', { trustDomain: b.trustDomain, error: e instanceof Error ? e.message : String(e) });
      }
    }
    let svid: JwtSvid;
    try {
      svid = JwtSvid.parseAndValidate(req.svid, set, req.audience);
    } catch (e) {
      throw new ConnectError(e instanceof Error ? e.message : String(e), Code.InvalidArgument);
    }
    return create(wire.ValidateJWTSVIDResponseSchema, { spiffeId: svid.id.toString(), claims: svid.claims as JsonObject });
  }

  const server = await serveGrpcOnUnixSocket(
    options.socketPath,
    (router) => {
      router.service(wire.SpiffeWorkloadAPI, {
        fetchX509SVID: (_req, ctx) => guardStream('FetchX509SVID', () => watch(ctx, wire.X509SVIDResponseSchema, x509SvidResponse))(),
        fetchX509Bundles: (_req, ctx) => guardStream('FetchX509Bundles', () => watch(ctx, wire.X509BundlesResponseSchema, x509BundlesResponse))(),
        fetchJWTBundles: (_req, ctx) => guardStream('FetchJWTBundles', () => watch(ctx, wire.JWTBundlesResponseSchema, jwtBundlesResponse))(),
        fetchJWTSVID: async (req, ctx) => {
          try {
            return await fetchJwtSvid(req, ctx);
          } catch (e) {
            throw toConnectError('FetchJWTSVID', e);
          }
        },
        validateJWTSVID: async (req, ctx) => {
          try {
            return await validateJwtSvid(req, ctx);
          } catch (e) {
            throw toConnectError('ValidateJWTSVID', e);
          }
        },
      });
    },
    {
      mode: 0o777,
      // No response compression: on a local socket gzip only costs CPU (every SVID message is
      // over connect's 1 KiB threshold, and certificates and keys hardly compress). Compressed
      // requests are still accepted.
      compressMinBytes: Number.MAX_SAFE_INTEGER,
      contextValues: (req) => createContextValues().set(kSocket, req.socket as Socket | undefined),
    },
  );
  // Every accepted connection, so close() can cut those that never speak HTTP/2
  // (they would otherwise keep the server open forever).
  const connections = new Set<Socket>();
  server.server.on('connection', (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  });
  let closed: Promise<void> | undefined;
  return {
    socketPath: server.path,
    close: () => {
      closed ??= (async () => {
        closing.abort();
        for (const w of watching) w.end();
        unsubscribeReattest();
        unsubscribeResponses();
        const done = server.close();
        const timer = setTimeout(() => {
          for (const c of connections) c.destroy();
        }, CLOSE_GRACE_MS);
        try {
          await done;
        } finally {
          clearTimeout(timer);
        }
      })();
      return closed;
    },
  };
}

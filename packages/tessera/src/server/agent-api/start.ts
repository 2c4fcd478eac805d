import * as http2 from 'node:http2';
import { constants } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { X509Svid } from '@tessera/spiffe/svid';
import type { TrustDomain } from '@tessera/spiffe/id';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { Code, ConnectError, type ConnectRouter, type Interceptor } from '@connectrpc/connect';
import { AgentApi } from '../../gen/tessera/v1/agent_pb.js';
import type { Datastore } from '../datastore/index.js';
import type { ServerCa } from '../ca/index.js';
import { JoinTokenAttestor, X509PopAttestor, type NodeAttestor } from '../attestation/index.js';
import type { Logger } from '../../observe/logger.js';
import type { MetricsRegistry } from '../../observe/metrics.js';
import { AgentAuthenticator, peerContextValues } from './authenticate.js';
import { ServerSvid } from './server-svid.js';
import { SyncHub } from './sync-hub.js';
import { agentApiService, DEFAULT_LIMITS, type AgentApiLimits } from './service.js';

/** What the Agent API needs from the daemon (see server.ts for how each is made). */
export interface AgentApiDeps {
  /** Admin API routes also served on this port, to callers `isAdmin` accepts (SPIRE's admin SVIDs). */
  readonly adminRoutes?: (router: ConnectRouter) => void;
  /** Whether the verified caller ID may use the admin routes. */
  readonly isAdmin?: (spiffeId: string) => Promise<boolean>;
  readonly trustDomain: TrustDomain;
  readonly datastore: Datastore;
  readonly ca: ServerCa;
  /** Listen address (config `bindAddress`, default 0.0.0.0). */
  readonly bindAddress: string;
  /** Listen port (config `bindPort`, default 8081); 0 = any free port. */
  readonly bindPort: number;
  /** Agent SVID lifetime (config `agentSvidTtl`); default 3600. */
  readonly agentSvidTtlSeconds?: number;
  /** PEM CA bundle for x509pop node certificates (config `x509popCaFile`); x509pop is disabled without it. */
  readonly x509popCaFile?: string | undefined;
  /** Clock (validity checks, join-token expiry, rotation); default real time. */
  readonly now?: () => Date;
  readonly logger?: Logger;
  readonly metrics?: MetricsRegistry;
  /** Replaces the built-in node attestors (join_token, and x509pop when configured). */
  readonly nodeAttestors?: readonly NodeAttestor[];
  /** Request limits; defaults in `DEFAULT_LIMITS`. */
  readonly limits?: Partial<AgentApiLimits & { maxRequestBytes: number }>;
  /** How often the server SVID is checked for rotation (ms, default 10000). */
  readonly svidCheckIntervalMs?: number;
  /** Most entries per Sync message (default 1000). */
  readonly entriesPerSyncMessage?: number;
}

/** A running Agent API. */
export interface AgentApiServer {
  /** The port actually bound. */
  readonly port: number;
  /** The SVID presented to agents now. */
  serverSvid(): X509Svid;
  /** The datastore change-feed revision the entitlement view (Sync, signing) reflects. */
  syncRevision(): number;
  /** Re-issues the server SVID now (the timer does it at half-life) and serves it on new connections. */
  rotateServerSvid(): Promise<void>;
  /** Ends Sync streams (UNAVAILABLE), stops accepting, closes connections. */
  close(): Promise<void>;
}

const MAX_REQUEST_BYTES = 1024 * 1024;
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
const CLOSE_GRACE_MS = 500;

/**
 * Starts the Agent API: gRPC over TLS (HTTP/2) on `bindAddress:bindPort`.
 * The server presents an X509-SVID for `spiffe://<td>/tessera/server` from
 * its own CA and asks for (but does not require) a client certificate:
 * AttestAgent is open to any client, every other call authenticates the agent
 * by its SVID. See docs/agent-api.md.
 * @throws Error when the port cannot be bound or the x509pop CA bundle is unusable.
 */
export async function startAgentApi(deps: AgentApiDeps): Promise<AgentApiServer> {
  const td = deps.trustDomain;
  const now = deps.now ?? (() => new Date());
  const log = deps.logger?.child({ component: 'agent-api' });
  const limits: AgentApiLimits = { ...DEFAULT_LIMITS, ...stripUndefined(deps.limits ?? {}) };

  const attestors = new Map<string, NodeAttestor>();
  if (deps.nodeAttestors) {
    for (const a of deps.nodeAttestors) attestors.set(a.type, a);
  } else {
    attestors.set('join_token', new JoinTokenAttestor(deps.datastore, td, now));
    if (deps.x509popCaFile) attestors.set('x509pop', X509PopAttestor.fromCaFile(deps.x509popCaFile, { trustDomain: td, now }));
  }

  const svid = await ServerSvid.issue(deps.ca, now);
  const hub = await SyncHub.open({
    trustDomain: td,
    datastore: deps.datastore,
    ca: deps.ca,
    now,
    logger: log,
    ...(deps.entriesPerSyncMessage ? { entriesPerMessage: deps.entriesPerSyncMessage } : {}),
  });
  const auth = new AgentAuthenticator(td, deps.datastore, () => hub.x509Authorities(), now);

  const interceptors: Interceptor[] = [];
  const metrics = deps.metrics;
  if (metrics) {
    const count = (method: string, code: string): void => metrics.inc('tessera_server_api_calls_total', 'API calls by method and status', { api: 'agent', method, code });
    interceptors.push((next) => async (req) => {
      try {
        const res = await next(req);
        count(req.method.name, 'ok');
        return res;
      } catch (e) {
        count(req.method.name, String((e as { code?: unknown }).code ?? 'unknown'));
        throw e;
      }
    });
  }
  // SPIRE serves its admin APIs on the same TCP port to callers holding an
  // admin SVID (the SVID of an entry flagged admin). Everything but the Agent
  // API is checked here; the Agent API authenticates per RPC.
  if (deps.adminRoutes && deps.isAdmin) {
    const isAdmin = deps.isAdmin;
    interceptors.push((next) => async (req) => {
      if (req.service.typeName !== AgentApi.typeName) {
        const caller = auth.callerId(req.contextValues);
        if (!(await isAdmin(caller))) throw new ConnectError(`"${caller}" is not an admin: only SVIDs of entries created with -admin may call ${req.service.typeName} remotely`, Code.PermissionDenied);
      }
      return next(req);
    });
  }
  const handler = connectNodeAdapter({
    routes: (r) => {
      deps.adminRoutes?.(r);
      r.service(
        AgentApi,
        agentApiService({
          trustDomain: td,
          datastore: deps.datastore,
          ca: deps.ca,
          hub,
          auth,
          attestors,
          agentSvidTtlSeconds: deps.agentSvidTtlSeconds ?? 3600,
          limits,
          logger: log,
          metrics,
        }),
      );
    },
    grpc: true,
    grpcWeb: false,
    connect: false,
    readMaxBytes: deps.limits?.maxRequestBytes ?? MAX_REQUEST_BYTES,
    writeMaxBytes: MAX_RESPONSE_BYTES,
    contextValues: peerContextValues,
    interceptors,
  });

  const material = (s: X509Svid) => {
    const m = s.marshal();
    // No session tickets: a resumed session carries no client certificate.
    return { cert: m.certificates, key: m.privateKey, minVersion: 'TLSv1.2' as const, secureOptions: constants.SSL_OP_NO_TICKET };
  };
  const server = http2.createSecureServer(
    {
      ...material(svid.getX509Svid()),
      // Ask for the agent SVID, but let clients without one through: AttestAgent
      // is for nodes that have none yet. Chains are verified per call by SPIFFE
      // rules (AgentAuthenticator), not by OpenSSL.
      requestCert: true,
      rejectUnauthorized: false,
      allowHTTP1: false,
      handshakeTimeout: 10_000,
      maxSessionMemory: 32,
      settings: { maxConcurrentStreams: 256 },
    },
    handler,
  );
  // A broken client must never take the server down.
  server.on('sessionError', () => undefined);
  server.on('tlsClientError', () => undefined);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(deps.bindPort, deps.bindAddress, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((e: unknown) => {
    hub.close();
    throw new Error(`cannot serve the Agent API on ${deps.bindAddress}:${deps.bindPort}: ${(e as Error).message}`, { cause: e });
  });
  server.on('error', (e) => log?.error('agent API server error', { error: e }));

  let rotating: Promise<void> | undefined;
  const rotate = (): Promise<void> =>
    (rotating ??= svid
      .rotate()
      .then((s) => {
        // New connections get the new SVID; open ones keep theirs until they reconnect.
        server.setSecureContext(material(s));
        log?.info('server SVID rotated', { expiresAt: s.expiresAt.toISOString() });
      })
      .finally(() => (rotating = undefined)));
  const timer = setInterval(() => {
    if (svid.due()) rotate().catch((e: unknown) => log?.error('server SVID rotation failed', { error: e as Error }));
  }, deps.svidCheckIntervalMs ?? 10_000);
  timer.unref();

  const port = (server.address() as AddressInfo).port;
  log?.info('Agent API listening', { address: deps.bindAddress, port, attestors: [...attestors.keys()] });
  let closing: Promise<void> | undefined;
  return {
    port,
    serverSvid: () => svid.getX509Svid(),
    syncRevision: () => hub.revision,
    rotateServerSvid: rotate,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        clearInterval(timer);
        hub.close();
        server.close(() => resolve());
        for (const s of sessions) s.close();
        // Streams that do not finish (a peer still sending) are cut after a grace period.
        setTimeout(() => {
          for (const s of sessions) s.destroy();
        }, CLOSE_GRACE_MS).unref();
      })),
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EntryAdmin, AgentAdmin, BundleAdmin, SvidAdmin, ServerHealth, FederationAdmin } from '../gen/tessera/v1/admin_pb.js';
import { startFederation, type RunningFederation } from './federation/index.js';
import { federationAdmin } from './api/federation-admin.js';
import { startAgentApi, type AgentApiServer } from './agent-api/index.js';
import type { ConnectRouter } from '@connectrpc/connect';
import { serveGrpcOnUnixSocket, type UnixGrpcServer } from '../grpc/unix-server.js';
import { createLogger, type Logger } from '../observe/logger.js';
import { MetricsRegistry } from '../observe/metrics.js';
import { serveHealthHttp } from '../observe/health-http.js';
import { SpiffeBundle } from '@tessera/spiffe/bundle';
import { DatastoreError, openDatastore, type Datastore } from './datastore/index.js';
import { DiskKeyManager, ServerCa, loadUpstreamAuthority, marshalBundleContribution, mergeBundleContributions, parseBundleContribution } from './ca/index.js';
import type { ServerConfig } from './config.js';
import { entryAdmin } from './api/entry-admin.js';
import { agentAdmin } from './api/agent-admin.js';
import { bundleAdmin } from './api/bundle-admin.js';
import { svidAdmin } from './api/svid-admin.js';

/** Key prefix under which replicas store their bundle contributions. */
const CONTRIBUTION_PREFIX = 'bundle-contribution/';

/** A running `tessera server`. */
export interface RunningServer {
  readonly config: ServerConfig;
  readonly datastore: Datastore;
  readonly ca: ServerCa;
  readonly metrics: MetricsRegistry;
  /** The Admin API socket. */
  readonly socketPath: string;
  /** The health/metrics HTTP port actually bound (0 when disabled). */
  readonly healthPort: number;
  /** The Agent API (attestation, renewal, push sync, signing) over mTLS. */
  readonly agentApi: AgentApiServer;
  /** Federation: the bundle endpoint and the relationships' refresher. */
  readonly federation: RunningFederation;
  /** Readiness: datastore reachable and CA able to sign. */
  health(): Promise<{ ready: boolean; datastore: string; ca: string }>;
  /** Runs one CA rotation step now (the scheduler does it every `tickSeconds`). */
  tick(): Promise<void>;
  /** Stops the APIs, the scheduler and the datastore. */
  close(): Promise<void>;
}

export interface StartServerOptions {
  readonly now?: () => Date;
  readonly logger?: Logger;
  /** How often the CA rotation scheduler runs; default 10 s. 0 disables it (tests tick by hand). */
  readonly tickSeconds?: number;
  /** Bind address of the health/metrics HTTP server; default 127.0.0.1. */
  readonly healthAddress?: string;
}

/** A failure to start, with a one-line message for the operator. */
export class ServerStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ServerStartError';
  }
}

/** This server instance's stable ID (its CA journal and keys are its own, also when replicas share a database). */
function serverInstanceId(dataDir: string): string {
  const p = join(dataDir, 'server-id');
  if (existsSync(p)) return readFileSync(p, 'utf8').trim();
  const id = randomUUID();
  writeFileSync(p, id + '\n', { mode: 0o600 });
  return id;
}

/**
 * Starts the trust domain's server: datastore (migrated), CA (loaded or
 * created, rotation scheduled), the Admin API on the local Unix socket and
 * health/metrics over HTTP.
 * @throws ServerStartError with a one-line reason (unreachable database, bad upstream CA, socket in use, …).
 */
export async function startServer(config: ServerConfig, options: StartServerOptions = {}): Promise<RunningServer> {
  const now = options.now ?? (() => new Date());
  const log = options.logger ?? createLogger({ level: config.logLevel });
  const metrics = new MetricsRegistry();
  const cleanups: (() => Promise<void> | void)[] = [];
  const fail = async (msg: string, cause: unknown): Promise<never> => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
    throw new ServerStartError(`${msg}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  };

  try {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    chmodSync(config.dataDir, 0o700);
  } catch (e) {
    return fail(`cannot use data directory "${config.dataDir}"`, e);
  }
  const instanceId = serverInstanceId(config.dataDir);

  let ds: Datastore;
  try {
    ds = await openDatastore(config.datastore, { clock: () => now().getTime(), onError: (e) => log.warn('datastore', { error: e as Error }) });
  } catch (e) {
    return fail('cannot open the datastore', e);
  }
  cleanups.push(() => ds.close());

  let ca: ServerCa;
  try {
    const upstream = config.upstream ? await loadUpstreamAuthority(config.upstream) : undefined;
    ca = await ServerCa.open({
      trustDomain: config.trustDomain,
      keyManager: new DiskKeyManager(join(config.dataDir, 'keys')),
      journal: { load: () => ds.getCaJournal(instanceId), save: (j) => ds.setCaJournal(instanceId, j) },
      now,
      caKeyType: config.caKeyType,
      caTtlSeconds: config.caTtlSeconds,
      x509SvidTtlSeconds: config.defaultX509SvidTtlSeconds,
      jwtSvidTtlSeconds: config.defaultJwtSvidTtlSeconds,
      ...(upstream ? { upstream } : {}),
    });
  } catch (e) {
    return fail('cannot start the CA', e);
  }
  for (const w of ca.warnings) log.warn('CA journal repaired', { detail: w });

  // The trust domain's bundle is published in the datastore, where agents and
  // federation read it. Replicas sharing a database each keep their own CA
  // keys: each stores its contribution, and the published bundle is the union
  // (sequence bumped only when the content changes). Concurrent publishers
  // are serialized by the bundle's optimistic sequence check.
  const contributionKey = `${CONTRIBUTION_PREFIX}${instanceId}`;
  let lastContribution = '';
  const publishBundle = async (): Promise<void> => {
    const contribution = marshalBundleContribution(ca.bundleContribution());
    if (contribution !== lastContribution) {
      await ds.setCaJournal(contributionKey, contribution);
      lastContribution = contribution;
    }
    for (let attempt = 0; ; attempt++) {
      const contributions = [];
      for (const row of await ds.listCaJournals(CONTRIBUTION_PREFIX)) {
        try {
          contributions.push(parseBundleContribution(row.journal));
        } catch (e) {
          log.warn('ignoring a malformed bundle contribution', { server: row.serverId, error: e as Error });
        }
      }
      const stored = await ds.getBundle(config.trustDomain.name);
      const previous = stored ? SpiffeBundle.parse(config.trustDomain, stored.bundle) : undefined;
      const merged = mergeBundleContributions(config.trustDomain, contributions, {
        ...(previous ? { previous } : {}),
        now: now(),
        refreshHintSeconds: ca.bundle().refreshHintSeconds ?? 300,
      });
      if (stored && !merged.changed) return;
      try {
        await ds.setBundle(config.trustDomain.name, merged.bundle.marshal(), stored?.sequence ?? 0);
        return;
      } catch (e) {
        if (!(e instanceof DatastoreError && e.code === 'CONFLICT') || attempt >= 5) throw e;
      }
    }
  };
  try {
    await publishBundle();
  } catch (e) {
    return fail('cannot publish the trust bundle', e);
  }

  const tick = async (): Promise<void> => {
    const r = await ca.tick();
    for (const e of r.errors) log.error('CA rotation step failed', { error: e });
    if (r.prepared.length) log.info('CA prepared next authorities', { kinds: r.prepared });
    if (r.activated.length) log.info('CA activated authorities', { kinds: r.activated });
    if (r.bundleChanged) log.info('CA authorities changed', { sequence: r.bundleSequence });
    // Every tick, also to pick up other replicas' contributions.
    await publishBundle();
  };
  const tickSeconds = options.tickSeconds ?? 10;
  let ticking: Promise<void> = Promise.resolve();
  const timer = tickSeconds > 0 ? setInterval(() => (ticking = tick().catch((e: unknown) => log.error('CA scheduler', { error: e as Error }))), tickSeconds * 1000) : undefined;
  timer?.unref();
  cleanups.push(async () => {
    if (timer) clearInterval(timer);
    await ticking;
  });

  const health = async (): Promise<{ ready: boolean; datastore: string; ca: string }> => {
    let datastore = 'ok';
    const t0 = performance.now();
    try {
      await ds.currentRevision();
    } catch (e) {
      datastore = `unreachable: ${(e as Error).message}`;
    }
    metrics.observe('tessera_server_datastore_latency_seconds', 'Latency of datastore health probes', (performance.now() - t0) / 1000);
    const s = ca.status();
    const caState = s.x509.current && s.x509.current.notAfter > now() ? 'ok' : 'no active X.509 authority';
    return { ready: datastore === 'ok' && caState === 'ok', datastore, ca: caState };
  };

  metrics.gaugeFn('tessera_server_entries', 'Registration entries', () => ds.countEntries());
  metrics.gaugeFn('tessera_server_agents', 'Attested agents', () => ds.countAgents());
  metrics.gaugeFn('tessera_server_bundle_sequence', 'spiffe_sequence of the published trust bundle', async () => {
    const stored = await ds.getBundle(config.trustDomain.name);
    return stored ? (SpiffeBundle.parse(config.trustDomain, stored.bundle).sequenceNumber ?? 0) : 0;
  });
  metrics.gaugeFn('tessera_server_ca_authority_expiry_seconds', 'Seconds until the CA authorities expire, by kind and slot', async () => {
    const s = ca.status();
    const rows: [Record<string, string>, number][] = [];
    for (const kind of ['x509', 'jwt'] as const) {
      for (const slot of ['current', 'next'] as const) {
        const a = s[kind][slot];
        if (a) rows.push([{ kind, slot }, Math.round((a.notAfter.getTime() - now().getTime()) / 1000)]);
      }
    }
    return rows;
  });

  let federation: RunningFederation;
  try {
    federation = await startFederation({
      datastore: ds,
      ca,
      logger: log.child({ module: 'federation' }),
      metrics,
      now,
      ...(options.tickSeconds === 0 ? { tickSeconds: 0 } : {}),
      ...(config.bundleEndpointPort > 0
        ? {
            bundleEndpoint:
              config.bundleEndpointProfile === 'https_web'
                ? { profile: 'https_web' as const, address: config.bindAddress, port: config.bundleEndpointPort, certFile: config.bundleEndpointCertFile!, keyFile: config.bundleEndpointKeyFile! }
                : { profile: 'https_spiffe' as const, address: config.bindAddress, port: config.bundleEndpointPort },
          }
        : {}),
    });
  } catch (e) {
    return fail('cannot start federation', e);
  }
  cleanups.push(() => federation.close());

  const adminRoutes = (r: ConnectRouter): void => {
    r.service(EntryAdmin, entryAdmin(ds, config.trustDomain));
    r.service(AgentAdmin, agentAdmin(ds, { trustDomain: config.trustDomain, joinTokenTtlSeconds: config.joinTokenTtlSeconds, now }));
    r.service(BundleAdmin, bundleAdmin(ds, ca));
    r.service(SvidAdmin, svidAdmin(ca, (kind) => metrics.inc('tessera_server_svid_signings_total', 'SVIDs signed', { kind, api: 'admin' })));
    r.service(ServerHealth, { check: () => health() });
    r.service(FederationAdmin, federationAdmin(ds, config.trustDomain, federation));
  };

  let agentApi: AgentApiServer;
  try {
    agentApi = await startAgentApi({
      trustDomain: config.trustDomain,
      datastore: ds,
      ca,
      bindAddress: config.bindAddress,
      bindPort: config.bindPort,
      agentSvidTtlSeconds: config.agentSvidTtlSeconds,
      x509popCaFile: config.x509popCaFile,
      now,
      logger: log.child({ module: 'agent-api' }),
      metrics,
      adminRoutes,
      // Remote Admin API callers must hold the SVID of an entry flagged admin (SPIRE's admin SVIDs).
      isAdmin: async (id) => (await ds.listEntries({ spiffeId: id })).items.some((e) => e.admin),
    });
  } catch (e) {
    return fail(`cannot serve the Agent API on ${config.bindAddress}:${config.bindPort}`, e);
  }
  cleanups.push(() => agentApi.close());

  let admin: UnixGrpcServer;
  try {
    admin = await serveGrpcOnUnixSocket(
      config.socketPath,
      adminRoutes,
      {
        interceptors: [
          (next) => async (req) => {
            try {
              const res = await next(req);
              metrics.inc('tessera_server_api_calls_total', 'API calls by method and status', { api: 'admin', method: req.method.name, code: 'ok' });
              return res;
            } catch (e) {
              metrics.inc('tessera_server_api_calls_total', 'API calls by method and status', { api: 'admin', method: req.method.name, code: String((e as { code?: unknown }).code ?? 'unknown') });
              throw e;
            }
          },
        ],
      },
    );
  } catch (e) {
    return fail(`cannot serve the Admin API on ${config.socketPath}`, e);
  }
  cleanups.push(() => admin.close());

  let healthPort = 0;
  if (config.healthPort > 0 || options.healthAddress !== undefined) {
    try {
      const h = await serveHealthHttp({ port: config.healthPort, ...(options.healthAddress !== undefined ? { address: options.healthAddress } : {}), ready: health, metrics });
      healthPort = h.port;
      cleanups.push(() => h.close());
    } catch (e) {
      return fail(`cannot serve health checks on port ${config.healthPort}`, e);
    }
  }

  log.info('server started', { trustDomain: config.trustDomain.name, socketPath: config.socketPath, datastore: config.datastore.kind, healthPort });
  let closed = false;
  return {
    config,
    datastore: ds,
    ca,
    metrics,
    socketPath: config.socketPath,
    healthPort,
    agentApi,
    federation,
    health,
    tick,
    async close() {
      if (closed) return;
      closed = true;
      for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
      log.info('server stopped');
    },
  };
}

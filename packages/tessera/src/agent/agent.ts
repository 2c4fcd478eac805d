import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Code, ConnectError } from '@connectrpc/connect';
import { SpiffeBundle, X509Bundle } from '@tessera/spiffe/bundle';
import { buildCertificateRequest } from '@tessera/spiffe/x509';
import type { Logger } from '../observe/logger.js';
import type { AgentConfig } from './config.js';
import { AgentError } from './errors.js';
import { attestNode } from './node/attest.js';
import { newWorkloadKey } from './svid/workload-keys.js';
import { agentSvidFrom, IdentityStore, type AgentSvid } from './node/identity-store.js';
import { ServerConnection } from './node/server-connection.js';
import { realSleep, SyncLoop, type Sleep } from './node/sync-loop.js';
import { rotationTime } from './svid/rotation.js';
import { SvidManager, type SigningResult, type SvidSigner } from './svid/svid-manager.js';
import { startWorkloadApi, type WorkloadApiServer } from './workload-api/index.js';
import { peerCredentials, unixAttestor, type WorkloadAttestor } from './workload-attestors/index.js';
import { combineAttestors, endpointAttestor, EndpointRegistry } from './endpoints/index.js';
import { startAgentAdmin } from './api/admin-socket.js';
import type { UnixGrpcServer } from '../grpc/unix-server.js';
import { MetricsRegistry } from '../observe/metrics.js';
import { serveHealthHttp, type HealthHttp } from '../observe/health-http.js';

/** Options of {@link startAgent} (what config files don't set). */
export interface AgentOptions {
  readonly now?: () => Date;
  /** Rotation jitter source, [0, 1). */
  readonly random?: () => number;
  readonly logger?: Logger;
  /**
   * Run the rotation scheduler on timers (default true). Tests with an
   * injected clock pass false and call {@link RunningAgent.tick}.
   */
  readonly timers?: boolean;
  /** Workload attestors (default: unix + endpoint). Their selectors are combined. */
  readonly attestors?: readonly WorkloadAttestor[];
  /** Serve /live, /ready, /metrics on this address even when `config.healthPort` is 0 (then on any free port). */
  readonly healthAddress?: string;
  /** Reconnect backoff of the Sync stream (default 500 ms → 30 s) and its sleep (injected in tests). */
  readonly reconnect?: { readonly initialMs?: number; readonly maxMs?: number; readonly sleep?: Sleep };
}

/** A running agent. */
export interface RunningAgent {
  readonly config: AgentConfig;
  /** The agent's SPIFFE ID (`spiffe://td/tessera/agent/<attestor>/<id>`). */
  readonly spiffeId: string;
  readonly manager: SvidManager;
  readonly socketPath: string;
  readonly adminSocketPath: string;
  /** Endpoints registered on the admin socket (the endpoint attestor's source). */
  readonly endpoints: EndpointRegistry;
  /** Whether the Sync stream to a server is up. */
  readonly connected: boolean;
  /** The health/metrics HTTP port bound (0 when disabled). */
  readonly healthPort: number;
  readonly metrics: MetricsRegistry;
  /** Ready: synced with a server at least once, and the agent SVID is valid. */
  health(): Promise<{ ready: boolean; synced: boolean; connected: boolean; agentSvidExpiresAt: string }>;
  /** The current agent SVID. */
  svid(): AgentSvid;
  /** Resolves once the first full sync arrived and its SVIDs were signed (or `timeoutMs` passed: rejects). */
  ready(timeoutMs?: number): Promise<void>;
  /** Does due work now: workload SVID signing/rotation and agent SVID renewal. */
  tick(): Promise<void>;
  close(): Promise<void>;
}

/** A bundle's X.509 authorities (DER): what the server's certificate must chain to. */
const rootsOf = (b: SpiffeBundle): Buffer[] => b.certificates().map((c) => c.der);

async function bootstrapRoots(config: AgentConfig, persisted: SpiffeBundle | undefined): Promise<readonly Uint8Array[]> {
  if (config.trustBundle !== undefined) {
    try {
      const b = config.trustBundle.format === 'spiffe' ? SpiffeBundle.load(config.trustDomain, config.trustBundle.path) : SpiffeBundle.fromX509Bundle(X509Bundle.load(config.trustDomain, config.trustBundle.path));
      const roots = rootsOf(b);
      if (roots.length === 0) throw new Error('no X.509 authority in it');
      return roots;
    } catch (e) {
      throw new AgentError('AGENT_BOOTSTRAP_INVALID', `trust bundle ${config.trustBundle.path}: ${(e as Error).message}`, { cause: e });
    }
  }
  if (persisted !== undefined) return rootsOf(persisted);
  if (config.insecureBootstrap) return [];
  throw new AgentError('AGENT_BOOTSTRAP_INVALID', 'no way to verify the server at first start: give -trustBundle <file> (or -insecureBootstrap for testing)');
}

/**
 * Starts `tessera agent`: restores or performs node attestation, keeps the
 * server's push stream open (failing over between server addresses), keeps
 * workload SVIDs signed and rotated, renews its own SVID at half-life, and
 * serves the SPIFFE Workload API on `config.socketPath`.
 *
 * @throws AgentError on start-up failures (bad token, unreachable or untrusted server at first start, unreadable state).
 */
export async function startAgent(config: AgentConfig, options: AgentOptions = {}): Promise<RunningAgent> {
  const now = options.now ?? (() => new Date());
  const random = options.random ?? Math.random;
  const log = options.logger;
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const store = new IdentityStore(config.dataDir, config.trustDomain);
  const persisted = await store.load();

  let bundle: SpiffeBundle | undefined = persisted?.bundle;
  let svid: AgentSvid | undefined = persisted !== undefined && persisted.svid.notAfter.getTime() > now().getTime() ? persisted.svid : undefined;
  if (svid === undefined && config.attestation === undefined) {
    throw new AgentError('AGENT_NOT_ATTESTED', persisted ? `the persisted agent SVID expired at ${persisted.svid.notAfter.toISOString()} and no join token or x509pop is configured` : 'no persisted agent SVID in the data directory: give -joinToken (or x509pop files) for node attestation');
  }
  // Before the first bundle is known (first start): the bootstrap roots; from then on the
  // trust domain's current bundle, as the manager holds it.
  const bootstrap = svid !== undefined ? [] : await bootstrapRoots(config, bundle);
  const conn: ServerConnection = new ServerConnection({
    trustDomain: config.trustDomain,
    addresses: config.serverAddresses,
    roots: () => {
      const own = manager.ownBundle;
      return own !== undefined ? rootsOf(own) : bootstrap;
    },
    svid: () => svid,
  });
  const signer: SvidSigner = {
    signX509: (requests) =>
      conn.call(async (c) => {
        const res = await c.batchNewX509Svid({ params: requests.map((r) => ({ entryId: r.entryId, csr: r.csr })) });
        return res.results.map((r, i): SigningResult => (r.status === undefined || r.status.code === 0 ? { entryId: r.entryId || requests[i]!.entryId, ok: true, certificates: r.svid } : { entryId: r.entryId || requests[i]!.entryId, ok: false, reason: `${Code[r.status.code] ?? r.status.code}: ${r.status.message}` }));
      }),
    mintJwt: (entryId, audience) =>
      conn.call(async (c) => {
        const r = await c.newJwtSvid({ entryId, audience: [...audience] });
        return { token: r.token, expiresAt: new Date(Number(r.expiresAt) * 1000) };
      }),
  };
  const manager = new SvidManager({ trustDomain: config.trustDomain, signer, keyType: config.workloadKeyType, now, random, ...(log ? { logger: log } : {}) });

  if (svid === undefined) {
    let r;
    try {
      r = await attestNode(conn, config.attestation!, config.serverAddresses.length);
    } catch (e) {
      conn.close();
      throw e;
    }
    if (!r.svid.spiffeId.startsWith(`${config.trustDomain.idString()}/`)) throw new AgentError('AGENT_ATTESTATION_FAILED', `the server issued ${r.svid.spiffeId}, outside trust domain ${config.trustDomain.name}`);
    svid = r.svid;
    bundle = r.bundle;
    await store.saveBundle(bundle);
    await store.saveSvid(svid);
    conn.invalidate();
    log?.info('node attested', { spiffeId: svid.spiffeId, type: config.attestation?.type, reattested: r.reattested, server: conn.addressString });
  } else {
    log?.info('agent SVID restored from the data directory', { spiffeId: svid.spiffeId, expiresAt: svid.notAfter.toISOString() });
  }
  const agentId = svid.spiffeId;
  manager.setBundle(bundle!);

  const closed = new AbortController();
  let wake = new AbortController();
  const kick = (): void => wake.abort();
  let synced!: () => void;
  const firstSync = new Promise<void>((r) => (synced = r));

  const sync = new SyncLoop({
    conn,
    ...(log ? { logger: log } : {}),
    ...(options.reconnect?.initialMs !== undefined ? { backoffInitialMs: options.reconnect.initialMs } : {}),
    ...(options.reconnect?.maxMs !== undefined ? { backoffMaxMs: options.reconnect.maxMs } : {}),
    ...(options.reconnect?.sleep ? { sleep: options.reconnect.sleep } : {}),
    onUpdate: async (u) => {
      const before = manager.ownBundle;
      manager.apply(u);
      const after = manager.ownBundle;
      if (after !== undefined && before !== undefined && !after.equals(before)) {
        conn.invalidate(); // the server is verified with the new bundle from now on
        await store.saveBundle(after).catch((e: unknown) => log?.warn('cannot persist the trust bundle', { error: (e as Error).message }));
      }
      if (u.full) {
        if (options.timers === false) await manager.tick();
        synced();
      }
      kick();
    },
  });

  // Agent SVID renewal at half-life (± jitter), retried with backoff.
  // From arrival when it was just issued (the server backdates notBefore); a restored one only has notBefore.
  const attestedNow = persisted?.svid !== svid;
  let agentRotateAt = rotationTime(new Date(attestedNow ? Math.max(svid.notBefore.getTime(), now().getTime()) : svid.notBefore.getTime()), svid.notAfter, random);
  let renewRetryMs = 0;
  const renewAgent = async (): Promise<void> => {
    if (now().getTime() < agentRotateAt.getTime()) return;
    try {
      const key = await newWorkloadKey('ec-p256');
      const res = await conn.call((c) => c.renewAgent({ csr: buildCertificateRequest(key, {}) }));
      const next = agentSvidFrom(res.svid, key);
      if (next.spiffeId !== agentId) throw new Error(`renewal returned ${next.spiffeId}`);
      await store.saveSvid(next);
      svid = next;
      agentRotateAt = rotationTime(new Date(Math.max(next.notBefore.getTime(), now().getTime())), next.notAfter, random);
      renewRetryMs = 0;
      conn.invalidate();
      sync.restart();
      log?.info('agent SVID renewed', { spiffeId: agentId, expiresAt: next.notAfter.toISOString() });
    } catch (e) {
      const ce = ConnectError.from(e);
      renewRetryMs = renewRetryMs === 0 ? 1000 : Math.min(renewRetryMs * 2, 30_000);
      agentRotateAt = new Date(now().getTime() + renewRetryMs);
      log?.warn('cannot renew the agent SVID', { error: ce.rawMessage, retryInMs: renewRetryMs });
    }
  };

  const tick = async (): Promise<void> => {
    await manager.tick();
    await renewAgent();
  };

  let endpoints: EndpointRegistry;
  try {
    endpoints = new EndpointRegistry({ dir: join(config.dataDir, 'endpoints'), now });
  } catch (e) {
    conn.close();
    throw new AgentError('AGENT_STATE_INVALID', `registered endpoints: ${(e as Error).message}`, { cause: e });
  }
  // Registering or removing an endpoint changes what its workloads' selectors are.
  const unsubscribeEndpoints = endpoints.onChange(() => manager.refresh());

  let workloadApi: WorkloadApiServer | undefined;
  let admin: UnixGrpcServer | undefined;
  try {
    await mkdir(dirname(config.socketPath), { recursive: true, mode: 0o755 });
    const attestor = combineAttestors(options.attestors ?? [unixAttestor(), endpointAttestor({ registry: endpoints, nodeName: config.nodeName })]);
    workloadApi = await startWorkloadApi({
      socketPath: config.socketPath,
      cache: manager,
      peer: peerCredentials,
      attest: (pid) => attestor.attest(pid),
      ...(log ? { logger: log } : {}),
    });
    admin = await startAgentAdmin({ socketPath: config.adminSocketPath, registry: endpoints, ...(log ? { logger: log } : {}) });
  } catch (e) {
    conn.close();
    await workloadApi?.close();
    throw new AgentError('AGENT_SOCKET_FAILED', `cannot serve the Workload API on ${config.socketPath} and the admin API on ${config.adminSocketPath}: ${(e as Error).message}`, { cause: e });
  }
  const api = workloadApi;
  const adminServer = admin;

  const metrics = new MetricsRegistry();
  metrics.gaugeFn('tessera_agent_entries', 'Registration entries the agent is entitled to', () => Promise.resolve(manager.counts.entries));
  metrics.gaugeFn('tessera_agent_x509_svids', 'Workload X509-SVIDs held', () => Promise.resolve(manager.counts.svids));
  metrics.gaugeFn('tessera_agent_jwt_svids', 'JWT-SVIDs cached', () => Promise.resolve(manager.counts.jwtSvids));
  metrics.gaugeFn('tessera_agent_server_connected', '1 while the push stream to a server is up', () => Promise.resolve(sync.connected ? 1 : 0));
  metrics.gaugeFn('tessera_agent_svid_expiry_seconds', 'Unix time the agent SVID expires', () => Promise.resolve(Math.floor(svid!.notAfter.getTime() / 1000)));
  metrics.gaugeFn('tessera_agent_endpoints', 'Endpoints registered on the admin socket', () => Promise.resolve(endpoints.list().length));
  const health = (): Promise<{ ready: boolean; synced: boolean; connected: boolean; agentSvidExpiresAt: string }> => {
    const valid = svid!.notAfter.getTime() > now().getTime();
    return Promise.resolve({ ready: manager.synced && valid, synced: manager.synced, connected: sync.connected, agentSvidExpiresAt: svid!.notAfter.toISOString() });
  };
  let healthHttp: HealthHttp | undefined;
  if (config.healthPort > 0 || options.healthAddress !== undefined) {
    try {
      healthHttp = await serveHealthHttp({ port: config.healthPort, ...(options.healthAddress !== undefined ? { address: options.healthAddress } : {}), ready: health, metrics });
    } catch (e) {
      conn.close();
      await Promise.all([api.close(), adminServer.close()]);
      throw new AgentError('AGENT_SOCKET_FAILED', `cannot serve health checks on port ${config.healthPort}: ${(e as Error).message}`, { cause: e });
    }
  }

  sync.start();
  const scheduler =
    options.timers === false
      ? Promise.resolve()
      : (async () => {
          while (!closed.signal.aborted) {
            if (wake.signal.aborted) wake = new AbortController();
            await tick();
            if (wake.signal.aborted) continue; // kicked while ticking
            const next = Math.min(manager.nextWakeAt()?.getTime() ?? Infinity, agentRotateAt.getTime());
            const delay = Math.min(Math.max(next - now().getTime(), 5), 60_000);
            await realSleep(delay, AbortSignal.any([closed.signal, wake.signal]));
          }
        })();

  return {
    config,
    spiffeId: agentId,
    manager,
    socketPath: api.socketPath,
    adminSocketPath: adminServer.path,
    endpoints,
    healthPort: healthHttp?.port ?? 0,
    metrics,
    health,
    get connected() {
      return sync.connected;
    },
    svid: () => svid!,
    async ready(timeoutMs = 10_000) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`agent not synced with a server after ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([firstSync, timeout]);
        await manager.tick();
      } finally {
        clearTimeout(timer);
      }
    },
    tick,
    async close() {
      closed.abort();
      await sync.close();
      await scheduler;
      conn.close();
      unsubscribeEndpoints();
      await Promise.all([api.close(), adminServer.close(), healthHttp?.close()]);
    },
  };
}

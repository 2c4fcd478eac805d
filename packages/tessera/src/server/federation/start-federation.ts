/**
 * The federation module of the server daemon: the bundle endpoint (our
 * bundle, served to other trust domains) and the refresher (their bundles,
 * fetched into our datastore), with their dependencies, config, scheduler
 * and lifecycle declared in one place. Depends on the datastore (bundles,
 * relationships, change feed), the CA (bundle, SVID signing), a logger,
 * metrics and a clock.
 */
import { readFileSync } from 'node:fs';
import { SpiffeId } from '@tessera/spiffe/id';
import type { Logger } from '../../observe/logger.js';
import type { MetricsRegistry } from '../../observe/metrics.js';
import type { Datastore, StoredBundle, Watch } from '../datastore/index.js';
import type { ServerCa } from '../ca/index.js';
import { BundleEndpoint, type BundleEndpointConfig } from './bundle-endpoint.js';
import { FederationError } from './errors.js';
import { BundleRefresher, type RelationshipRefreshStatus } from './refresher.js';

/** Path of the SPIFFE ID the `https_spiffe` bundle endpoint presents, under our trust domain. */
export const BUNDLE_ENDPOINT_ID_PATH = '/tessera/server';
/** Default period of the federation scheduler (it only looks at in-memory deadlines unless something is due). */
export const DEFAULT_FEDERATION_TICK_SECONDS = 1;

/** What {@link startFederation} needs. */
export interface FederationDeps {
  readonly datastore: Datastore;
  readonly ca: Pick<ServerCa, 'trustDomain' | 'bundle' | 'signX509Svid'>;
  readonly logger: Logger;
  readonly metrics?: MetricsRegistry;
  /** Clock for SVID rotation, refresh schedules and certificate checks; default real time. */
  readonly now?: () => Date;
  /** Serve our bundle to other trust domains; absent: no endpoint (relationships are still refreshed). */
  readonly bundleEndpoint?: BundleEndpointConfig;
  /** Scheduler period in seconds; default 1. 0 disables it: call `tick()` yourself (tests). */
  readonly tickSeconds?: number;
  /** Test-only: a PEM file of CA certificates trusted for `https_web` endpoints *instead of* Node's Web PKI roots. */
  readonly webCaFile?: string;
  /** Deadline of one bundle fetch in ms; default 10 000. */
  readonly fetchTimeoutMs?: number;
}

/** The running federation module. */
export interface RunningFederation {
  /** Port of the bundle endpoint (0 when it is not served). */
  readonly bundleEndpointPort: number;
  /**
   * Fetches the bundle of a federated trust domain now and returns what is stored afterwards.
   * @throws {@link FederationError} (see `BundleRefresher.refreshNow`).
   */
  refreshNow(trustDomain: string): Promise<StoredBundle>;
  /** One scheduler step: endpoint upkeep (SVID rotation, certificate reload), then every due refresh. */
  tick(): Promise<void>;
  /** Refresh state of every relationship. */
  status(): RelationshipRefreshStatus[];
  /** Relationships changed on this server (the Admin API calls it; the change feed covers every replica too). */
  invalidate(): void;
  /** Stops the scheduler, the endpoint and the change-feed watch; waits for running fetches. */
  close(): Promise<void>;
}

function checkDeps(deps: FederationDeps): void {
  const bad = (m: string): never => {
    throw new FederationError('FEDERATION_INVALID_CONFIG', `startFederation: ${m}`);
  };
  if (deps === null || typeof deps !== 'object') bad('deps are required');
  if (!deps.datastore || !deps.ca || !deps.logger) bad('"datastore", "ca" and "logger" are required');
  const t = deps.tickSeconds;
  if (t !== undefined && (typeof t !== 'number' || !Number.isFinite(t) || t < 0)) bad(`"tickSeconds" must be a non-negative number, got ${String(t)}`);
  const e = deps.bundleEndpoint;
  if (e !== undefined) {
    if (!Number.isInteger(e.port) || e.port < 0 || e.port > 65535) bad(`"bundleEndpoint.port" must be a port number (0 picks a free one), got ${String(e.port)}`);
    const profile = e.profile ?? 'https_spiffe';
    if (profile !== 'https_spiffe' && profile !== 'https_web') bad(`"bundleEndpoint.profile" must be https_spiffe or https_web, got ${JSON.stringify(profile)}`);
    if (e.profile === 'https_web' && (!e.certFile || !e.keyFile)) bad('"bundleEndpoint.certFile" and "bundleEndpoint.keyFile" are required with profile https_web');
  }
}

/**
 * Starts federation for the server: watches the change feed, serves the
 * bundle endpoint when configured and refreshes federated bundles on
 * schedule.
 * @throws {@link FederationError} `FEDERATION_INVALID_CONFIG` (options, certificate files, port in use), or the CA's error when the endpoint SVID cannot be minted.
 * @example
 * ```ts
 * const federation = await startFederation({ datastore, ca, logger, metrics, now, bundleEndpoint: { port: 8443 } });
 * router.service(FederationAdmin, federationAdmin(datastore, ca.trustDomain, federation));
 * ```
 */
export async function startFederation(deps: FederationDeps): Promise<RunningFederation> {
  checkDeps(deps);
  const now = deps.now ?? (() => new Date());
  const ds = deps.datastore;
  const own = deps.ca.trustDomain;
  const log = deps.logger.child({ module: 'federation' });
  let webCa: Buffer | undefined;
  if (deps.webCaFile !== undefined) {
    try {
      webCa = readFileSync(deps.webCaFile);
    } catch (e) {
      throw new FederationError('FEDERATION_INVALID_CONFIG', `cannot read the https_web CA file "${deps.webCaFile}": ${(e as Error).message}`, { cause: e });
    }
  }

  const refresher = new BundleRefresher({
    datastore: ds,
    trustDomain: own,
    ownBundle: () => deps.ca.bundle(),
    logger: log,
    now,
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    ...(webCa ? { webCa } : {}),
    ...(deps.fetchTimeoutMs !== undefined ? { fetchTimeoutMs: deps.fetchTimeoutMs } : {}),
  });

  const endpoint = deps.bundleEndpoint
    ? await BundleEndpoint.start(deps.bundleEndpoint, {
        // The datastore copy is what agents and other replicas see; the CA's own is the fallback before the first publication.
        loadDocument: async () => (await ds.getBundle(own.name))?.bundle ?? deps.ca.bundle().marshal(),
        ca: deps.ca,
        endpointSpiffeId: SpiffeId.fromPath(own, BUNDLE_ENDPOINT_ID_PATH),
        logger: log,
        now,
        ...(deps.metrics ? { metrics: deps.metrics } : {}),
      })
    : undefined;

  let watch: Watch;
  try {
    watch = ds.watch(await ds.currentRevision(), (ev) => {
      if (ev.kind === 'resync') {
        refresher.invalidate();
        endpoint?.invalidate();
      } else if (ev.kind === 'federation_relationship') {
        refresher.invalidate();
      } else if (ev.kind === 'bundle' && ev.key === own.name) {
        endpoint?.invalidate();
      }
    });
  } catch (e) {
    await endpoint?.close();
    throw e;
  }

  const tick = async (): Promise<void> => {
    await endpoint?.tick();
    await refresher.tick();
  };
  const tickSeconds = deps.tickSeconds ?? DEFAULT_FEDERATION_TICK_SECONDS;
  // Each tick only starts what is due; a slow endpoint does not hold back the next tick (fetches of one trust domain never overlap).
  const timer = tickSeconds > 0 ? setInterval(() => void tick().catch((e: unknown) => log.error('federation scheduler', { error: e as Error })), tickSeconds * 1000) : undefined;
  timer?.unref();
  // First refresh of every relationship right away rather than one period late.
  if (timer) void tick().catch((e: unknown) => log.error('federation scheduler', { error: e as Error }));

  let closed = false;
  return {
    bundleEndpointPort: endpoint?.port ?? 0,
    refreshNow: (td) => refresher.refreshNow(td),
    tick,
    status: () => refresher.status(),
    invalidate: () => refresher.invalidate(),
    async close() {
      if (closed) return;
      closed = true;
      if (timer) clearInterval(timer);
      watch.close();
      await refresher.close();
      await endpoint?.close();
    },
  };
}

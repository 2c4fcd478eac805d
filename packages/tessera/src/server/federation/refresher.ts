/**
 * Keeps federated bundles current (SPIFFE Federation §5; spec/spiffe.md §5):
 * for each federation relationship, fetch the bundle from its endpoint,
 * accept it only if it parses strictly as *that* trust domain's bundle and
 * its `spiffe_sequence` is newer than the stored one, and store it under
 * that trust domain. The datastore's change feed then carries it to agents.
 *
 * Per relationship, a small state machine:
 *
 *   due ──fetch──▶ ok      → next = now + clamp(refresh hint)   (failures = 0)
 *                ▶ failed  → next = now + backoff(failures + 1)
 *
 * A relationship is due when first seen, when it is changed (new URL or
 * profile), and when its `next` time has passed. Fetches of one trust domain
 * never overlap; different trust domains are fetched concurrently. No timers
 * here: `startFederation` calls {@link BundleRefresher.tick} (tests call it
 * with an injected clock).
 */
import { SpiffeBundle } from '@tessera/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@tessera/spiffe/id';
import type { Logger } from '../../observe/logger.js';
import type { MetricsRegistry } from '../../observe/metrics.js';
import { DatastoreError, type Datastore, type FederationRelationship, type StoredBundle } from '../datastore/index.js';
import { FederationError, isFederationError } from './errors.js';
import { fetchBundleDocument, type BundleEndpointTarget } from './fetch-bundle.js';
import { refreshIntervalSeconds, retryDelaySeconds } from './refresh-policy.js';

/** What the refresher needs from the server. */
export interface RefresherDeps {
  readonly datastore: Pick<Datastore, 'getBundle' | 'setBundle' | 'getFederationRelationship' | 'listFederationRelationships'>;
  /** Our trust domain: never federated with. */
  readonly trustDomain: TrustDomain;
  /** Our current bundle, for `https_spiffe` endpoints whose ID is in our own trust domain. */
  readonly ownBundle: () => SpiffeBundle;
  readonly logger: Logger;
  readonly metrics?: MetricsRegistry;
  readonly now: () => Date;
  /** `https_web`: CA certificates (PEM) trusted instead of Node's Web PKI roots. For tests. */
  readonly webCa?: string | Buffer;
  /** Deadline of one fetch; default 10 s. */
  readonly fetchTimeoutMs?: number;
}

/** The refresh state of one relationship, for health displays and tests. */
export interface RelationshipRefreshStatus {
  readonly trustDomain: string;
  readonly nextRefreshAt: Date;
  readonly consecutiveFailures: number;
  readonly lastError: string | undefined;
  readonly lastSuccessAt: Date | undefined;
}

interface RefreshState {
  nextAt: number;
  failures: number;
  lastError: string | undefined;
  lastSuccessAt: number | undefined;
  inFlight: Promise<StoredBundle> | undefined;
  /** The relationship's fields when last seen; a change makes it due at once. Undefined until the list is read. */
  seen: string | undefined;
}

/** What makes a relationship a different one to fetch from. */
function fingerprint(r: FederationRelationship): string {
  return JSON.stringify([r.bundleEndpointUrl, r.profile, r.endpointSpiffeId, r.updatedAt]);
}

/** Whether `fetched` may replace `current` (ordering by `spiffe_sequence`, Trust Domain and Bundle §4). */
type Decision = { kind: 'apply' } | { kind: 'unchanged' } | { kind: 'stale'; reason: string };

function decide(current: SpiffeBundle | undefined, fetched: SpiffeBundle): Decision {
  if (current === undefined) return { kind: 'apply' };
  if (current.equals(fetched)) return { kind: 'unchanged' };
  const cs = current.sequenceNumber;
  const fs = fetched.sequenceNumber;
  // Without both sequence numbers there is no order to keep; a changed document is newer.
  if (cs === undefined || fs === undefined) return { kind: 'apply' };
  if (fs > cs) return { kind: 'apply' };
  if (fs < cs) return { kind: 'stale', reason: `its spiffe_sequence ${fs} is lower than the stored ${cs}` };
  return { kind: 'stale', reason: `its content changed but its spiffe_sequence stayed at ${fs}` };
}

/** Fetches, checks and stores federated bundles (see the module description). */
export class BundleRefresher {
  readonly #deps: RefresherDeps;
  readonly #states = new Map<string, RefreshState>();
  #listDirty = true;
  #loading: Promise<void> | undefined;
  #closed = false;
  readonly #shutdown = new AbortController();

  constructor(deps: RefresherDeps) {
    this.#deps = deps;
  }

  /**
   * Relationships may have changed (change feed, or this server's Admin
   * API): reload them at the next tick. New and changed ones are refreshed
   * then; repeated or late notifications cost one list read and no fetch.
   */
  invalidate(): void {
    this.#listDirty = true;
  }

  /**
   * Starts every due refresh and resolves when they have finished (failures
   * are logged and scheduled for retry, never thrown).
   */
  async tick(): Promise<void> {
    if (this.#closed) return;
    await this.#syncRelationships();
    const now = this.#deps.now().getTime();
    const due: string[] = [];
    for (const [td, s] of this.#states) if (s.inFlight === undefined && s.nextAt <= now) due.push(td);
    await Promise.all(due.map((td) => this.#start(td).catch(() => undefined)));
  }

  /**
   * Fetches the bundle of `trustDomain` now (after any fetch already running
   * for it) and returns what is stored afterwards.
   * @throws {@link FederationError}: `FEDERATION_NOT_FOUND`, `FEDERATION_FETCH_FAILED`,
   * `FEDERATION_ENDPOINT_REJECTED`, `FEDERATION_NO_TRUST_BUNDLE`, `FEDERATION_BUNDLE_INVALID`,
   * `FEDERATION_BUNDLE_STALE`; or a `DatastoreError`.
   */
  async refreshNow(trustDomain: string): Promise<StoredBundle> {
    if (this.#closed) throw new FederationError('FEDERATION_FETCH_FAILED', 'federation is shutting down');
    const running = this.#states.get(trustDomain)?.inFlight;
    if (running) await running.catch(() => undefined);
    return this.#start(trustDomain);
  }

  /** The refresh state of every known relationship. */
  status(): RelationshipRefreshStatus[] {
    return [...this.#states].map(([trustDomain, s]) => ({
      trustDomain,
      nextRefreshAt: new Date(s.nextAt),
      consecutiveFailures: s.failures,
      lastError: s.lastError,
      lastSuccessAt: s.lastSuccessAt === undefined ? undefined : new Date(s.lastSuccessAt),
    }));
  }

  /** Starts no more fetches; aborts running ones and waits for them to settle. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#shutdown.abort();
    await Promise.all([...this.#states.values()].map((s) => s.inFlight?.catch(() => undefined)));
  }

  /** Reloads the relationship list if it changed; new ones are due at once, deleted ones forgotten. */
  #syncRelationships(): Promise<void> {
    if (!this.#listDirty) return Promise.resolve();
    this.#loading ??= (async () => {
      this.#listDirty = false;
      try {
        const rels = await this.#deps.datastore.listFederationRelationships();
        const names = new Set(rels.map((r) => r.trustDomain));
        for (const td of this.#states.keys()) if (!names.has(td)) this.#states.delete(td);
        for (const r of rels) {
          const s = this.#states.get(r.trustDomain);
          const seen = fingerprint(r);
          if (s === undefined) {
            this.#states.set(r.trustDomain, { ...this.#newState(), seen });
          } else {
            // Changed since last seen (new URL, profile or endpoint ID): fetch at once from the new place.
            if (s.seen !== undefined && s.seen !== seen) s.nextAt = this.#deps.now().getTime();
            s.seen = seen;
          }
        }
      } catch (e) {
        this.#listDirty = true;
        this.#deps.logger.warn('cannot list federation relationships; retrying at the next tick', { error: e as Error });
      }
    })().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  #newState(): RefreshState {
    return { nextAt: this.#deps.now().getTime(), failures: 0, lastError: undefined, lastSuccessAt: undefined, inFlight: undefined, seen: undefined };
  }

  /** Runs one refresh of `td` and records its outcome in the schedule. */
  #start(td: string): Promise<StoredBundle> {
    let s = this.#states.get(td);
    if (s === undefined) {
      s = this.#newState();
      this.#states.set(td, s);
    }
    const state = s;
    const run = this.#refresh(td).then(
      ({ stored, hint }) => {
        state.failures = 0;
        state.lastError = undefined;
        state.lastSuccessAt = this.#deps.now().getTime();
        state.nextAt = state.lastSuccessAt + refreshIntervalSeconds(hint) * 1000;
        return stored;
      },
      (e: unknown) => {
        if (isFederationError(e, 'FEDERATION_NOT_FOUND')) {
          this.#states.delete(td);
          throw e;
        }
        state.failures++;
        state.lastError = (e as Error).message;
        const retry = retryDelaySeconds(state.failures);
        state.nextAt = this.#deps.now().getTime() + retry * 1000;
        this.#count(td, isFederationError(e) ? e.code : 'error');
        this.#deps.logger.warn('federated bundle refresh failed', { trustDomain: td, error: e as Error, consecutiveFailures: state.failures, retryInSeconds: retry });
        throw e;
      },
    );
    state.inFlight = run;
    const settle = (): void => {
      if (state.inFlight === run) state.inFlight = undefined;
    };
    run.then(settle, settle);
    return run;
  }

  #count(td: string, result: string): void {
    this.#deps.metrics?.inc('tessera_server_federation_refreshes_total', 'Federated bundle refreshes by trust domain and result', { trust_domain: td, result });
  }

  async #refresh(tdName: string): Promise<{ stored: StoredBundle; hint: number | undefined }> {
    const rel = await this.#deps.datastore.getFederationRelationship(tdName);
    if (rel === undefined) throw new FederationError('FEDERATION_NOT_FOUND', `there is no federation relationship with trust domain "${tdName}"`);
    const td = TrustDomain.parse(rel.trustDomain);
    if (td.equals(this.#deps.trustDomain)) {
      throw new FederationError('FEDERATION_INVALID_RELATIONSHIP', `"${td.name}" is this server's own trust domain; its bundle comes from the CA, not from a bundle endpoint`);
    }
    const target = await this.#target(rel);
    const body = await fetchBundleDocument(target, {
      now: this.#deps.now,
      signal: this.#shutdown.signal,
      ...(this.#deps.webCa !== undefined ? { webCa: this.#deps.webCa } : {}),
      ...(this.#deps.fetchTimeoutMs !== undefined ? { timeoutMs: this.#deps.fetchTimeoutMs } : {}),
    });
    let fetched: SpiffeBundle;
    try {
      // Parsed as the relationship's trust domain and nothing else: what an endpoint serves is stored under that name only.
      fetched = SpiffeBundle.parse(td, body);
    } catch (e) {
      throw new FederationError('FEDERATION_BUNDLE_INVALID', `bundle endpoint ${rel.bundleEndpointUrl} of "${td.name}" served an invalid SPIFFE bundle: ${(e as Error).message}`, {
        cause: e,
      });
    }
    if (fetched.isEmpty()) this.#deps.logger.warn('federated bundle holds no authority: nothing of this trust domain is trusted now', { trustDomain: td.name });
    return { stored: await this.#apply(td, fetched, rel.bundleEndpointUrl), hint: fetched.refreshHintSeconds };
  }

  /** How to reach and authenticate the relationship's endpoint. */
  async #target(rel: FederationRelationship): Promise<BundleEndpointTarget> {
    if (rel.profile === 'https_web') return { url: rel.bundleEndpointUrl, profile: 'https_web' };
    const endpointSpiffeId = SpiffeId.parse(rel.endpointSpiffeId);
    const endpointTd = endpointSpiffeId.trustDomain;
    // The endpoint's SVID is verified with the bundle of its own trust domain only (X509-SVID §5): for the
    // usual self-hosted endpoint that is the stored bundle of the federated trust domain, bootstrapped by the operator.
    let endpointBundle: SpiffeBundle;
    if (endpointTd.equals(this.#deps.trustDomain)) {
      endpointBundle = this.#deps.ownBundle();
    } else {
      const stored = await this.#deps.datastore.getBundle(endpointTd.name);
      if (stored === undefined) {
        throw new FederationError(
          'FEDERATION_NO_TRUST_BUNDLE',
          `no bundle of "${endpointTd.name}" to authenticate the bundle endpoint ${endpointSpiffeId.toString()}: give the bootstrap bundle when creating the relationship (-trustDomainBundlePath) or set it with 'tessera server bundle set -id ${endpointTd.idString()}'`,
        );
      }
      try {
        endpointBundle = SpiffeBundle.parse(endpointTd, stored.bundle);
      } catch (e) {
        throw new FederationError('FEDERATION_NO_TRUST_BUNDLE', `the stored bundle of "${endpointTd.name}" is unusable: ${(e as Error).message}`, { cause: e });
      }
    }
    return { url: rel.bundleEndpointUrl, profile: 'https_spiffe', endpointSpiffeId, endpointBundle };
  }

  /** Stores `fetched` if it is newer than the stored bundle (compare-and-set, so replicas sharing a database agree). */
  async #apply(td: TrustDomain, fetched: SpiffeBundle, url: string): Promise<StoredBundle> {
    const ds = this.#deps.datastore;
    for (let attempt = 0; ; attempt++) {
      const stored = await ds.getBundle(td.name);
      let current: SpiffeBundle | undefined;
      if (stored !== undefined) {
        try {
          current = SpiffeBundle.parse(td, stored.bundle);
        } catch (e) {
          this.#deps.logger.warn('stored federated bundle is unparseable; replacing it', { trustDomain: td.name, error: e as Error });
        }
      }
      const d = decide(current, fetched);
      if (d.kind === 'unchanged' && stored !== undefined) {
        this.#count(td.name, 'unchanged');
        this.#deps.logger.debug('federated bundle unchanged', { trustDomain: td.name, sequence: fetched.sequenceNumber });
        return stored;
      }
      if (d.kind === 'stale') {
        // Logged (with the reason) and retried by #start like any failed refresh.
        throw new FederationError('FEDERATION_BUNDLE_STALE', `bundle endpoint ${url} of "${td.name}" served a bundle that is not newer than the stored one (${d.reason}); kept the stored bundle`);
      }
      try {
        const next = await ds.setBundle(td.name, fetched.marshal(), stored?.sequence ?? 0);
        this.#count(td.name, 'updated');
        this.#deps.logger.info('federated bundle updated', { trustDomain: td.name, sequence: fetched.sequenceNumber, previousSequence: current?.sequenceNumber });
        return next;
      } catch (e) {
        // Another replica (or an operator) stored a bundle meanwhile: decide again against it.
        if (e instanceof DatastoreError && e.code === 'CONFLICT' && attempt < 3) continue;
        throw e;
      }
    }
  }
}

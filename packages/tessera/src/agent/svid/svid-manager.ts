import type { KeyObject } from 'node:crypto';
import type { TrustDomain } from '@tessera/spiffe/id';
import type { SpiffeBundle } from '@tessera/spiffe/bundle';
import { buildCertificateRequest, Certificate } from '@tessera/spiffe/x509';
import type { Entry } from '../../gen/tessera/v1/types_pb.js';
import type { Logger } from '../../observe/logger.js';
import type { Selector } from '../../server/registration/index.js';
import { selectorsSubsetOf } from '../../server/registration/index.js';
import type { CachedSvid, IdentityCache, MintedJwtSvid, TrustBundle } from '../workload-api/identity-cache.js';
import { rotationTime } from './rotation.js';
import { newWorkloadKey, type WorkloadKeyType } from './workload-keys.js';

/** One signing request: a CSR for an entry. */
export interface SigningRequest {
  readonly entryId: string;
  readonly csr: Uint8Array;
}

/** One signing result, in request order. */
export type SigningResult = { readonly entryId: string; readonly ok: true; readonly certificates: readonly Uint8Array[] } | { readonly entryId: string; readonly ok: false; readonly reason: string };

/** What the manager needs from the server (the Agent API in the daemon, a fake in unit tests). */
export interface SvidSigner {
  /** BatchNewX509Svid. Rejects when the server can't be reached (the manager retries with backoff). */
  signX509(requests: readonly SigningRequest[]): Promise<SigningResult[]>;
  /** NewJwtSvid for an entry. */
  mintJwt(entryId: string, audience: readonly string[]): Promise<MintedJwtSvid>;
}

/** A state change from the server's push stream (one assembled Sync update). */
export interface EntitlementUpdate {
  /** A full update replaces everything; a delta upserts and removes. */
  readonly full: boolean;
  readonly upsertedEntries: readonly Entry[];
  readonly removedEntryIds: readonly string[];
  readonly upsertedBundles: readonly SpiffeBundle[];
  readonly removedBundles: readonly string[];
}

/** Options of {@link SvidManager}. */
export interface SvidManagerOptions {
  readonly trustDomain: TrustDomain;
  readonly signer: SvidSigner;
  readonly keyType?: WorkloadKeyType;
  readonly now?: () => Date;
  /** In [0, 1): where in the ½ TTL ± 10 % window each SVID rotates. */
  readonly random?: () => number;
  readonly logger?: Pick<Logger, 'debug' | 'info' | 'warn'>;
  /** CSRs per BatchNewX509Svid call. Default 500. */
  readonly batchSize?: number;
  /** Retry delays after a failed signing round: initial, doubling up to max. Default 1 s → 30 s. */
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  /** JWT-SVIDs kept at most (oldest dropped first). Default 10,000. */
  readonly maxJwtSvids?: number;
}

interface Held {
  readonly svid: CachedSvid;
  readonly notAfter: Date;
  readonly rotateAt: Date;
  /** What the SVID was issued for: a change of it needs a new SVID. */
  readonly issuedFor: string;
}

interface CachedJwt {
  readonly minted: MintedJwtSvid;
  readonly refreshAt: number;
}

/** The parts of an entry that go into its X509-SVID. */
const issuedFor = (e: Entry): string => JSON.stringify([e.spiffeId, e.x509SvidTtl, [...e.dnsNames].sort()]);
const tdName = (td: string): string => (td.startsWith('spiffe://') ? td.slice('spiffe://'.length) : td);

function toTrustBundle(b: SpiffeBundle): TrustBundle {
  return Object.freeze({ trustDomain: b.trustDomain.name, x509Authorities: Object.freeze(b.certificates().map((c) => c.der)), jwks: b.jwtBundle().marshal() });
}

/**
 * The agent's identity cache (SPIRE's agent cache + SVID manager): the
 * entries the server pushes, an X509-SVID per entry with a key made here
 * (only the CSR goes to the server, in batches), rotation at ½ TTL ± 10 %,
 * JWT-SVIDs cached per (SPIFFE ID, audience) and re-minted once half their
 * lifetime has passed, and the bundles. The Workload API reads it through
 * {@link IdentityCache}. When the server is down, what is held keeps being
 * served until it expires; signing is retried with backoff.
 *
 * Time moves only through `now()`; {@link tick} does due work and
 * {@link nextWakeAt} says when to call it next (the daemon arms a timer).
 */
export class SvidManager implements IdentityCache {
  readonly #o: SvidManagerOptions;
  readonly #now: () => Date;
  readonly #random: () => number;
  readonly #entries = new Map<string, Entry>();
  readonly #svids = new Map<string, Held>();
  readonly #bundles = new Map<string, { bundle: SpiffeBundle; view: TrustBundle }>();
  readonly #jwt = new Map<string, CachedJwt>();
  readonly #jwtInFlight = new Map<string, Promise<MintedJwtSvid>>();
  readonly #listeners = new Set<() => void>();
  #signing: Promise<void> | undefined;
  #retryAt = 0;
  #retryDelay = 0;
  #synced = false;
  readonly #serverId: string;

  constructor(options: SvidManagerOptions) {
    if (options.batchSize !== undefined && !(Number.isSafeInteger(options.batchSize) && options.batchSize > 0)) throw new TypeError('SvidManager: batchSize must be a positive integer');
    this.#o = options;
    this.#now = options.now ?? (() => new Date());
    this.#random = options.random ?? Math.random;
    this.#serverId = `${options.trustDomain.idString()}/tessera/server`;
  }

  /** Entries that get X509-SVIDs: not node alias entries (parented to the server), and with selectors to match. */
  #isWorkload(e: Entry): boolean {
    return e.parentId !== this.#serverId && e.selectors.length > 0;
  }

  /** Whether a full update has been applied (the agent knows its entitlement). */
  get synced(): boolean {
    return this.#synced;
  }

  /** Number of entries / of SVIDs held. */
  get counts(): { entries: number; svids: number; jwtSvids: number } {
    return { entries: this.#entries.size, svids: this.#svids.size, jwtSvids: this.#jwt.size };
  }

  /** The own trust domain's bundle as a library object, if known. */
  get ownBundle(): SpiffeBundle | undefined {
    return this.#bundles.get(this.#o.trustDomain.name)?.bundle;
  }

  /** Sets a bundle (the persisted or attested one at start). */
  setBundle(bundle: SpiffeBundle): void {
    this.#bundles.set(bundle.trustDomain.name, { bundle, view: toTrustBundle(bundle) });
    this.#changed();
  }

  /**
   * Applies one update of the push stream. Entries whose SVID content
   * changed (ID, TTL, DNS names) or that are new get SVIDs on the next
   * {@link tick}; removed entries' SVIDs and JWT-SVIDs are dropped at once.
   */
  apply(update: EntitlementUpdate): void {
    let visible = false;
    const removed = new Set(update.removedEntryIds);
    if (update.full) {
      const keep = new Set(update.upsertedEntries.map((e) => e.id));
      for (const id of this.#entries.keys()) if (!keep.has(id)) removed.add(id);
    }
    for (const id of removed) {
      const e = this.#entries.get(id);
      if (e === undefined) continue;
      this.#entries.delete(id);
      if (this.#svids.delete(id)) visible = true;
      this.#dropJwt(e.spiffeId);
    }
    for (const e of update.upsertedEntries) {
      const before = this.#entries.get(e.id);
      this.#entries.set(e.id, e);
      const held = this.#svids.get(e.id);
      if (held === undefined) continue;
      if (!this.#isWorkload(e) || held.svid.spiffeId !== e.spiffeId) {
        // Now a node alias (or without selectors), or for another ID: its SVID must not be
        // served or used for JWT-SVIDs any more (a workload entry gets a new one signed).
        this.#svids.delete(e.id);
        if (before !== undefined) this.#dropJwt(before.spiffeId);
        visible = true;
        continue;
      }
      // Same ID, other TTL or DNS names: the held SVID stays valid and is served until its
      // replacement is signed (due now), as SPIRE does; withdrawing it would fail every open
      // watch stream of the workload with PermissionDenied for the signing round trip. The
      // replacement notifies watchers when it arrives.
      const reissue = held.issuedFor !== issuedFor(e);
      const meta = held.svid.hint !== e.hint || held.svid.federatesWith.join() !== e.federatesWith.join();
      const selectorsChanged = before?.selectors.length !== e.selectors.length || before.selectors.some((s, i) => s.type !== e.selectors[i]?.type || s.value !== e.selectors[i]?.value);
      if (reissue || meta) {
        this.#svids.set(e.id, {
          ...held,
          ...(reissue ? { rotateAt: new Date(0) } : {}),
          ...(meta ? { svid: Object.freeze({ ...held.svid, hint: e.hint, federatesWith: Object.freeze([...e.federatesWith]) }) } : {}),
        });
      }
      if (meta || (!reissue && selectorsChanged)) visible = true;
    }
    if (update.full) {
      const keep = new Set([this.#o.trustDomain.name, ...update.upsertedBundles.map((b) => b.trustDomain.name)]);
      for (const td of [...this.#bundles.keys()]) {
        if (!keep.has(td)) {
          this.#bundles.delete(td);
          visible = true;
        }
      }
    }
    for (const td of update.removedBundles) {
      const name = tdName(td);
      if (name !== this.#o.trustDomain.name && this.#bundles.delete(name)) visible = true;
    }
    for (const b of update.upsertedBundles) {
      const cur = this.#bundles.get(b.trustDomain.name);
      if (cur !== undefined && cur.bundle.equals(b)) continue;
      this.#bundles.set(b.trustDomain.name, { bundle: b, view: toTrustBundle(b) });
      visible = true;
    }
    if (update.full) this.#synced = true;
    // A new entitlement is worth trying right away even after failures.
    this.#retryAt = 0;
    if (visible) this.#changed();
  }

  /** When {@link tick} next has work: the earliest rotation, retry or expiry. */
  nextWakeAt(): Date | undefined {
    let t = Infinity;
    for (const [id, e] of this.#entries) {
      if (!this.#isWorkload(e)) continue;
      const held = this.#svids.get(id);
      if (held === undefined) t = Math.min(t, this.#retryAt);
      else t = Math.min(t, Math.max(held.rotateAt.getTime(), this.#retryAt), held.notAfter.getTime());
    }
    return Number.isFinite(t) ? new Date(t) : undefined;
  }

  /**
   * Does what is due: signs SVIDs for entries without one and rotates those
   * past their rotation time, in batches; drops expired SVIDs. Concurrent
   * calls share one round. Never rejects (failures are logged and retried).
   */
  tick(): Promise<void> {
    this.#signing ??= this.#round().finally(() => {
      this.#signing = undefined;
    });
    return this.#signing;
  }

  async #round(): Promise<void> {
    const now = this.#now().getTime();
    let visible = false;
    for (const [id, held] of this.#svids) {
      if (held.notAfter.getTime() <= now) {
        this.#svids.delete(id);
        visible = true;
        this.#o.logger?.warn('workload SVID expired before it could be renewed', { entryId: id, spiffeId: held.svid.spiffeId });
      }
    }
    if (visible) this.#changed();
    if (now < this.#retryAt) return;
    const due = [...this.#entries.values()].filter((e) => {
      if (!this.#isWorkload(e)) return false;
      const held = this.#svids.get(e.id);
      return held === undefined || held.rotateAt.getTime() <= now;
    });
    const size = this.#o.batchSize ?? 500;
    for (let i = 0; i < due.length; i += size) {
      if (!(await this.#signBatch(due.slice(i, i + size)))) return;
    }
  }

  /** Signs one batch; false when the server couldn't be reached (retry later). */
  async #signBatch(batch: readonly Entry[]): Promise<boolean> {
    const keyType = this.#o.keyType ?? 'ec-p256';
    const keys = new Map<string, KeyObject>();
    const requests: SigningRequest[] = [];
    await Promise.all(
      batch.map(async (e) => {
        const key = await newWorkloadKey(keyType);
        keys.set(e.id, key);
        requests.push({ entryId: e.id, csr: buildCertificateRequest(key, { uris: [e.spiffeId] }) });
      }),
    );
    let results: SigningResult[];
    try {
      results = await this.#o.signer.signX509(requests);
    } catch (e) {
      this.#retryDelay = this.#retryDelay === 0 ? (this.#o.retryInitialMs ?? 1000) : Math.min(this.#retryDelay * 2, this.#o.retryMaxMs ?? 30_000);
      this.#retryAt = this.#now().getTime() + this.#retryDelay;
      this.#o.logger?.warn('cannot get workload SVIDs signed; keeping the ones held', { error: (e as Error).message, retryInMs: this.#retryDelay });
      return false;
    }
    this.#retryDelay = 0;
    let visible = false;
    let refused = 0;
    for (const r of results) {
      const entry = this.#entries.get(r.entryId);
      const key = keys.get(r.entryId);
      if (entry === undefined || key === undefined) continue; // removed meanwhile
      if (!r.ok) {
        refused++;
        this.#o.logger?.warn('server refused to sign a workload SVID', { entryId: r.entryId, spiffeId: entry.spiffeId, reason: r.reason });
        continue;
      }
      let leaf: Certificate;
      try {
        leaf = new Certificate(r.certificates[0] ?? new Uint8Array());
      } catch (e) {
        refused++;
        this.#o.logger?.warn('server returned an unreadable SVID', { entryId: r.entryId, error: (e as Error).message });
        continue;
      }
      if (leaf.subjectAltNames.uris[0] !== entry.spiffeId) {
        refused++;
        this.#o.logger?.warn('server returned an SVID for another ID', { entryId: r.entryId, expected: entry.spiffeId, got: leaf.subjectAltNames.uris[0] });
        continue;
      }
      this.#svids.set(r.entryId, {
        svid: Object.freeze({ spiffeId: entry.spiffeId, certificates: Object.freeze(r.certificates.map((c) => Buffer.from(c))), privateKey: key, hint: entry.hint, federatesWith: Object.freeze([...entry.federatesWith]) }),
        notAfter: leaf.notAfter,
        // Servers backdate notBefore for clock skew; the lifetime counts from when the SVID arrived.
        rotateAt: rotationTime(new Date(Math.max(leaf.notBefore.getTime(), this.#now().getTime())), leaf.notAfter, this.#random),
        issuedFor: issuedFor(entry),
      });
      visible = true;
    }
    if (refused > 0) {
      // Refusals are not transient in general; don't hammer the server.
      this.#retryAt = this.#now().getTime() + (this.#o.retryMaxMs ?? 30_000);
    }
    if (visible) this.#changed();
    return true;
  }

  identitiesFor(selectors: readonly Selector[]): { svids: readonly CachedSvid[] } {
    const svids: CachedSvid[] = [];
    const now = this.#now().getTime();
    const available = new Set(selectors.map((s) => `${s.type}:${s.value}`));
    for (const [id, held] of this.#svids) {
      const e = this.#entries.get(id);
      if (e === undefined || e.selectors.length === 0 || held.notAfter.getTime() <= now) continue;
      if (selectorsSubsetOf(e.selectors, available)) svids.push(held.svid);
    }
    return { svids };
  }

  bundle(): TrustBundle {
    const own = this.#bundles.get(this.#o.trustDomain.name);
    return own?.view ?? Object.freeze({ trustDomain: this.#o.trustDomain.name, x509Authorities: [], jwks: '{"keys":[]}' });
  }

  federatedBundles(): ReadonlyMap<string, TrustBundle> {
    const out = new Map<string, TrustBundle>();
    for (const [td, b] of this.#bundles) if (td !== this.#o.trustDomain.name) out.set(td, b.view);
    return out;
  }

  fetchJwtSvid(spiffeId: string, audience: readonly string[]): Promise<MintedJwtSvid> {
    const key = `${spiffeId}\0${[...audience].sort().join('\0')}`;
    const now = this.#now().getTime();
    const cached = this.#jwt.get(key);
    if (cached !== undefined && now < cached.refreshAt) return Promise.resolve(cached.minted);
    const pending = this.#jwtInFlight.get(key);
    if (pending !== undefined) return pending;
    const entry = [...this.#entries.values()].find((e) => e.spiffeId === spiffeId && this.#svids.has(e.id));
    if (entry === undefined) return Promise.reject(new Error(`no entry for ${spiffeId}`));
    const p = this.#o.signer
      .mintJwt(entry.id, audience)
      .then((minted) => {
        // The entry went (or changed its ID) while the mint was in flight: answer, but don't cache for it.
        if (![...this.#entries.values()].some((e) => e.spiffeId === spiffeId && this.#svids.has(e.id))) return minted;
        const issued = this.#now().getTime();
        this.#jwt.delete(key);
        this.#jwt.set(key, { minted, refreshAt: issued + (minted.expiresAt.getTime() - issued) / 2 });
        const max = this.#o.maxJwtSvids ?? 10_000;
        for (const k of this.#jwt.keys()) {
          if (this.#jwt.size <= max) break;
          this.#jwt.delete(k);
        }
        return minted;
      })
      .catch((e: unknown) => {
        // Server down: a cached token that is still valid beats an error.
        if (cached !== undefined && this.#now().getTime() < cached.minted.expiresAt.getTime()) return cached.minted;
        throw e;
      })
      .finally(() => this.#jwtInFlight.delete(key));
    this.#jwtInFlight.set(key, p);
    return p;
  }

  /** Tells watchers to look again (callers' selectors may have changed, e.g. an endpoint was registered). */
  refresh(): void {
    this.#changed();
  }

  onChange(listener: () => void): () => void {
    const l = (): void => listener();
    this.#listeners.add(l);
    return () => {
      this.#listeners.delete(l);
    };
  }

  #dropJwt(spiffeId: string): void {
    const prefix = `${spiffeId}\0`;
    for (const k of this.#jwt.keys()) if (k.startsWith(prefix)) this.#jwt.delete(k);
  }

  #changed(): void {
    for (const l of [...this.#listeners]) {
      try {
        l();
      } catch {
        // one broken listener must not stop the others
      }
    }
  }
}

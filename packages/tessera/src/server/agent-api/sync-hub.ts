import { create } from '@bufbuild/protobuf';
import { ConnectError, Code } from '@connectrpc/connect';
import { TrustDomain } from '@tessera/spiffe/id';
import { SpiffeBundle, X509Bundle } from '@tessera/spiffe/bundle';
import { SyncResponseSchema, type SyncResponse } from '../../gen/tessera/v1/agent_pb.js';
import type { Bundle, Entry } from '../../gen/tessera/v1/types_pb.js';
import type { AttestedAgent, ChangeEvent, Datastore, RegistrationEntry, StoredBundle, Watch } from '../datastore/index.js';
import { EntryIndex, formatSelector, serverId, type AgentIdentity } from '../registration/index.js';
import type { ServerCa } from '../ca/index.js';
import { entryToProto } from '../api/convert.js';
import { bundleToProto } from '../api/bundle-admin.js';
import type { Logger } from '../../observe/logger.js';

/** Options of {@link SyncHub}. */
export interface SyncHubOptions {
  readonly trustDomain: TrustDomain;
  readonly datastore: Datastore;
  readonly ca: ServerCa;
  readonly now: () => Date;
  readonly logger?: Logger | undefined;
  /** Most entries per Sync message (default 1000). */
  readonly entriesPerMessage?: number;
  /** How often streams holding entries with an expiry are re-evaluated (ms, default 5000). */
  readonly expirySweepMs?: number;
  /** Delay before reloading everything after a failed change-feed read (ms, default 1000). */
  readonly retryMs?: number;
}

/** A bundle ready to send, with the version it was derived from. */
interface BundleView {
  /** `ds:<sequence>` (datastore copy) or `ca:<sequence>` (the CA's own, before it is published). */
  readonly version: string;
  readonly bundle: SpiffeBundle;
  readonly proto: Bundle;
}

/**
 * One connected agent's Sync stream: what it has been sent, so updates are
 * deltas. Updates are computed when the stream is ready to send, from the
 * hub's state at that moment: a slow agent gets one coalesced delta, never a
 * backlog.
 */
export class Subscription {
  agent: AgentIdentity;
  /** Serial of the SVID the stream was opened with. */
  readonly serial: string;
  /** When that SVID expires (epoch ms): the stream ends then, the agent reconnects with its renewed SVID. */
  readonly svidExpiresAt: number;
  /** Entries sent, by ID (the object sent, to tell changes apart). */
  readonly sent = new Map<string, RegistrationEntry>();
  /** Bundles sent: trust domain → version. */
  readonly sentBundles = new Map<string, string>();
  /** Parent IDs whose children this agent is entitled to: its own ID and the SPIFFE IDs of its entries. */
  parents = new Set<string>();
  /** Trust domains whose bundles the agent needs: its own and those its entries federate with. */
  wanted = new Set<string>();
  /** Earliest `expiresAt` among sent entries (epoch seconds; Infinity when none). */
  nextExpiry = Infinity;
  #dirty = true;
  #closed = false;
  #error: ConnectError | undefined;
  #wake: (() => void) | undefined;

  constructor(agent: AgentIdentity, serial: string, svidExpiresAt: number) {
    this.agent = agent;
    this.serial = serial;
    this.svidExpiresAt = svidExpiresAt;
  }

  markDirty(): void {
    this.#dirty = true;
    this.#wake?.();
  }

  /** Ends the stream with `error` (ban, eviction, superseded SVID). */
  terminate(error: ConnectError): void {
    this.#error ??= error;
    this.close();
  }

  /** Ends the stream without error (client gone). */
  close(): void {
    this.#closed = true;
    this.#wake?.();
  }

  /**
   * Waits until there may be something to send. Resolves `true` when the
   * stream should compute an update, `false` when it is closed.
   * @throws ConnectError when the stream was terminated.
   */
  async next(): Promise<boolean> {
    while (!this.#dirty && !this.#closed) await new Promise<void>((resolve) => (this.#wake = resolve));
    this.#wake = undefined;
    if (this.#error) throw this.#error;
    if (this.#closed) return false;
    this.#dirty = false;
    return true;
  }
}

/** Entry changes in one batch above which a full reload may replace row-by-row reads. */
const BULK_CHANGES = 256;
const READ_CONCURRENCY = 64;
/** Agents whose entitlement (by entry ID) is kept for signing calls. */
const ENTITLEMENT_CACHE_SIZE = 1024;

const DEFAULTS = { entriesPerMessage: 1000, expirySweepMs: 5000, retryMs: 1000 } as const;

/**
 * The server's in-memory view of what agents are entitled to, shared by
 * every Sync stream and the signing calls: all registration entries in an
 * {@link EntryIndex} and all bundles, loaded once and then patched from the
 * datastore's change feed by a single watcher (not one per agent). After
 * each batch of changes, only the streams a change can concern are woken:
 * those that were sent a changed entry, whose entitlement includes the old or
 * new parent of a changed entry, that need a changed bundle — or all of them
 * when a node alias entry (parented to the server) changed.
 */
export class SyncHub {
  readonly #ds: Datastore;
  readonly #td: TrustDomain;
  readonly #serverId: string;
  readonly #ca: ServerCa;
  readonly #now: () => Date;
  readonly #log: Logger | undefined;
  readonly #perMessage: number;
  readonly #retryMs: number;
  #index = new EntryIndex();
  #bundles = new Map<string, StoredBundle>();
  #revision = 0;
  /** Changes up to this revision are in the last full load (their events are skipped). */
  #loadedThrough = 0;
  #watch: Watch | undefined;
  #pending: ChangeEvent[] = [];
  #reload = false;
  #draining: Promise<void> | undefined;
  #closed = false;
  readonly #subs = new Set<Subscription>();
  readonly #waiters = new Set<{ target: number; resolve: () => void }>();
  readonly #bundleViews = new Map<string, BundleView>();
  readonly #entryProtos = new WeakMap<RegistrationEntry, Entry>();
  readonly #entitlementCache = new Map<string, { key: string; entries: ReadonlyMap<string, RegistrationEntry> }>();
  #x509Source: { key: string; bundle: X509Bundle } | undefined;
  #sweep: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;

  private constructor(o: SyncHubOptions) {
    this.#ds = o.datastore;
    this.#td = o.trustDomain;
    this.#serverId = serverId(o.trustDomain.name);
    this.#ca = o.ca;
    this.#now = o.now;
    this.#log = o.logger;
    this.#perMessage = Math.max(1, o.entriesPerMessage ?? DEFAULTS.entriesPerMessage);
    this.#retryMs = o.retryMs ?? DEFAULTS.retryMs;
  }

  /** Loads every entry and bundle, then follows the change feed. */
  static async open(o: SyncHubOptions): Promise<SyncHub> {
    const hub = new SyncHub(o);
    await hub.#load();
    hub.#watch = hub.#ds.watch(hub.#revision, (ev) => hub.#onEvent(ev));
    hub.#sweep = setInterval(() => hub.#sweepExpired(), o.expirySweepMs ?? DEFAULTS.expirySweepMs);
    hub.#sweep.unref();
    return hub;
  }

  /** The change-feed revision the in-memory state reflects. */
  get revision(): number {
    return this.#revision;
  }

  /** How many Sync streams are open. */
  get streams(): number {
    return this.#subs.size;
  }

  async #load(): Promise<void> {
    const revision = await this.#ds.currentRevision();
    this.#loadedThrough = revision;
    const entries: RegistrationEntry[] = [];
    let pageToken: string | undefined;
    do {
      const page = await this.#ds.listEntries(undefined, { pageSize: 10_000, ...(pageToken ? { pageToken } : {}) });
      entries.push(...page.items);
      pageToken = page.nextPageToken;
    } while (pageToken);
    const bundles = await this.#ds.listBundles();
    this.#index = new EntryIndex(entries);
    this.#bundles = new Map(bundles.map((b) => [b.trustDomain, b]));
    this.#revision = Math.max(this.#revision, revision);
  }

  #onEvent(ev: ChangeEvent): void {
    this.#pending.push(ev);
    this.#kick();
  }

  #kick(): void {
    if (this.#draining || this.#closed) return;
    this.#draining = this.#drain().finally(() => {
      this.#draining = undefined;
      if (this.#pending.length > 0 || this.#reload) this.#kick();
    });
  }

  async #drain(): Promise<void> {
    while ((this.#pending.length > 0 || this.#reload) && !this.#closed) {
      const batch = this.#pending.splice(0);
      try {
        await this.#apply(batch);
      } catch (e) {
        // A failed read loses no change: everything is reloaded once the datastore answers again.
        this.#log?.warn('agent sync: applying datastore changes failed; reloading', { error: e as Error });
        this.#reload = true;
        clearTimeout(this.#retry);
        this.#retry = setTimeout(() => this.#kick(), this.#retryMs);
        this.#retry.unref();
        return;
      }
    }
  }

  async #apply(batch: ChangeEvent[]): Promise<void> {
    let maxRevision = this.#revision;
    for (const ev of batch) maxRevision = Math.max(maxRevision, ev.revision);
    const entryIds = new Set<string>();
    const bundleTds = new Set<string>();
    const agentIds = new Set<string>();
    for (const ev of batch) {
      if (ev.kind === 'resync') this.#reload = true;
      else if (ev.revision <= this.#loadedThrough) continue;
      else if (ev.kind === 'entry') entryIds.add(ev.key);
      else if (ev.kind === 'bundle') bundleTds.add(ev.key);
      else if (ev.kind === 'agent') agentIds.add(ev.key);
    }
    // Reading rows one by one costs ~10x a listing per row: past a tenth of
    // the index (a bulk import), reload everything instead.
    if (this.#reload || (entryIds.size > BULK_CHANGES && entryIds.size * 10 >= this.#index.size)) {
      await this.#load();
      this.#reload = false;
      this.#revision = Math.max(this.#revision, maxRevision);
      const agents = await this.#read([...new Set([...this.#subs].map((s) => s.agent.spiffeId))], (id) => this.#ds.getAgent(id));
      for (const s of this.#subs) s.markDirty();
      for (const [id, a] of agents) this.#agentChanged(id, a);
      this.#release();
      return;
    }
    // Read the rows' current state (which may be newer than the event: a later event re-reads the same).
    const entries = await this.#read([...entryIds], (id) => this.#ds.getEntry(id));
    const bundles = await this.#read([...bundleTds], (td) => this.#ds.getBundle(td));
    const agents = await this.#read([...agentIds].filter((id) => this.#hasSubscriber(id)), (id) => this.#ds.getAgent(id));
    const parents = new Set<string>();
    let aliasChanged = false;
    for (const [id, e] of entries) {
      const old = this.#index.get(id);
      for (const p of [old?.parentId, e?.parentId]) {
        if (p === undefined) continue;
        parents.add(p);
        if (p === this.#serverId) aliasChanged = true;
      }
      if (e) this.#index.upsert(e);
      else this.#index.remove(id);
    }
    for (const [td, b] of bundles) {
      if (b) this.#bundles.set(td, b);
      else this.#bundles.delete(td);
    }
    this.#revision = maxRevision;
    for (const s of this.#subs) {
      if (aliasChanged || touches(s, entryIds, parents, bundleTds)) s.markDirty();
    }
    for (const [id, a] of agents) this.#agentChanged(id, a);
    this.#release();
  }

  /** Reads `keys` with bounded concurrency. */
  async #read<T>(keys: readonly string[], get: (key: string) => Promise<T>): Promise<(readonly [string, T])[]> {
    const out: (readonly [string, T])[] = [];
    for (let i = 0; i < keys.length; i += READ_CONCURRENCY) {
      out.push(...(await Promise.all(keys.slice(i, i + READ_CONCURRENCY).map(async (k) => [k, await get(k)] as const))));
    }
    return out;
  }

  #hasSubscriber(agentId: string): boolean {
    for (const s of this.#subs) if (s.agent.spiffeId === agentId) return true;
    return false;
  }

  /** A banned, evicted or superseded agent loses its streams; new node selectors change its entitlement. */
  #agentChanged(id: string, a: AttestedAgent | undefined): void {
    for (const s of this.#subs) {
      if (s.agent.spiffeId !== id) continue;
      if (!a) s.terminate(new ConnectError(`agent "${id}" was evicted: attest again`, Code.PermissionDenied));
      else if (a.banned) s.terminate(new ConnectError(`agent "${id}" is banned`, Code.PermissionDenied));
      else if (s.serial !== a.certSerial && s.serial !== a.newCertSerial) {
        s.terminate(new ConnectError(`the SVID of this connection (serial ${s.serial}) was superseded: reconnect with the agent's current SVID`, Code.PermissionDenied));
      } else if (a.selectors.map(formatSelector).join('\n') !== s.agent.selectors.map(formatSelector).join('\n')) {
        s.agent = { spiffeId: id, selectors: a.selectors };
        s.markDirty();
      }
    }
  }

  #release(): void {
    for (const w of this.#waiters) {
      if (this.#revision >= w.target) {
        this.#waiters.delete(w);
        w.resolve();
      }
    }
  }

  /**
   * Waits (at most `timeoutMs`) until every change committed before the call
   * is applied: for a signing request about an entry created a moment ago.
   */
  async catchUp(timeoutMs = 2000): Promise<void> {
    const target = await this.#ds.currentRevision();
    if (this.#revision >= target) return;
    await new Promise<void>((resolve) => {
      const w = { target, resolve };
      this.#waiters.add(w);
      setTimeout(() => {
        this.#waiters.delete(w);
        resolve();
      }, timeoutMs).unref();
    });
  }

  #sweepExpired(): void {
    const nowMs = this.#now().getTime();
    const now = Math.floor(nowMs / 1000);
    for (const s of this.#subs) {
      if (s.svidExpiresAt <= nowMs) s.terminate(new ConnectError('the agent SVID of this connection expired: reconnect with the renewed SVID', Code.Unauthenticated));
      else if (s.nextExpiry <= now) s.markDirty();
    }
  }

  /** The entries `agent` is entitled to now (SPIRE's rules; see {@link EntryIndex.entitledEntries}). */
  entitled(agent: AgentIdentity): RegistrationEntry[] {
    return this.#index.entitledEntries(agent, this.#td.name, Math.floor(this.#now().getTime() / 1000));
  }

  /**
   * {@link entitled} by entry ID, cached per agent until the next change
   * (or the next second, for expiring entries): an agent signing in bursts
   * walks its entitlement once.
   */
  entitledById(agent: AgentIdentity): ReadonlyMap<string, RegistrationEntry> {
    const second = Math.floor(this.#now().getTime() / 1000);
    const key = `${this.#revision}|${second}|${agent.selectors.map(formatSelector).join('\n')}`;
    const hit = this.#entitlementCache.get(agent.spiffeId);
    if (hit?.key === key) return hit.entries;
    const entries = new Map(this.#index.entitledEntries(agent, this.#td.name, second).map((e) => [e.id, e]));
    this.#entitlementCache.delete(agent.spiffeId);
    if (this.#entitlementCache.size >= ENTITLEMENT_CACHE_SIZE) this.#entitlementCache.delete(this.#entitlementCache.keys().next().value!);
    this.#entitlementCache.set(agent.spiffeId, { key, entries });
    return entries;
  }

  /** Registers a Sync stream; its first update will be a full snapshot. */
  subscribe(agent: AgentIdentity, serial: string, svidExpiresAt: Date): Subscription {
    const s = new Subscription(agent, serial, svidExpiresAt.getTime());
    if (this.#closed) s.terminate(new ConnectError('the server is shutting down', Code.Unavailable));
    else this.#subs.add(s);
    return s;
  }

  unsubscribe(s: Subscription): void {
    this.#subs.delete(s);
  }

  /**
   * The messages that bring `s` from what it was sent to what it is entitled
   * to now (`full`: everything, replacing its state). Records them as sent.
   * Empty when nothing changed for this agent.
   */
  update(s: Subscription, full: boolean): SyncResponse[] {
    const entitled = this.entitled(s.agent);
    if (full) {
      s.sent.clear();
      s.sentBundles.clear();
    }
    const upserted: Entry[] = [];
    const ids = new Set<string>();
    const parents = new Set<string>([s.agent.spiffeId]);
    const wanted = new Set<string>([this.#td.name]);
    let nextExpiry = Infinity;
    for (const e of entitled) {
      ids.add(e.id);
      parents.add(e.spiffeId);
      for (const td of e.federatesWith) wanted.add(td);
      if (e.expiresAt > 0) nextExpiry = Math.min(nextExpiry, e.expiresAt);
      const prev = s.sent.get(e.id);
      if (prev === undefined || (prev !== e && !sameEntry(prev, e))) upserted.push(this.#entryProto(e));
      s.sent.set(e.id, e);
    }
    const removed: string[] = [];
    for (const id of s.sent.keys()) {
      if (!ids.has(id)) {
        removed.push(id);
        s.sent.delete(id);
      }
    }
    const upsertedBundles: Bundle[] = [];
    for (const td of wanted) {
      const v = this.#bundleView(td);
      if (v === undefined) continue;
      if (s.sentBundles.get(td) !== v.version) {
        upsertedBundles.push(v.proto);
        s.sentBundles.set(td, v.version);
      }
    }
    const removedBundles: string[] = [];
    for (const td of s.sentBundles.keys()) {
      if (!wanted.has(td) || this.#bundleView(td) === undefined) {
        removedBundles.push(td);
        s.sentBundles.delete(td);
      }
    }
    s.parents = parents;
    s.wanted = wanted;
    s.nextExpiry = nextExpiry;
    if (!full && upserted.length === 0 && removed.length === 0 && upsertedBundles.length === 0 && removedBundles.length === 0) return [];
    const revision = BigInt(this.#revision);
    const out: SyncResponse[] = [];
    for (let i = 0; i === 0 || i < upserted.length; i += this.#perMessage) {
      out.push(
        create(SyncResponseSchema, {
          revision,
          full,
          upsertedEntries: upserted.slice(i, i + this.#perMessage),
          ...(i === 0 ? { removedEntryIds: removed, upsertedBundles, removedBundles } : {}),
          more: i + this.#perMessage < upserted.length,
        }),
      );
    }
    return out;
  }

  #entryProto(e: RegistrationEntry): Entry {
    let p = this.#entryProtos.get(e);
    if (!p) this.#entryProtos.set(e, (p = entryToProto(e)));
    return p;
  }

  /** The server's own bundle, as agents receive it. */
  ownBundle(): Bundle {
    const v = this.#bundleView(this.#td.name);
    if (!v) throw new ConnectError('the trust bundle is not available yet', Code.Unavailable);
    return v.proto;
  }

  /**
   * The X.509 authorities that agent SVIDs are verified against: the
   * published bundle (all servers' CAs when replicas share a database) plus
   * this server's CA, which may be a step ahead of what is published.
   */
  x509Authorities(): X509Bundle {
    const stored = this.#bundles.get(this.#td.name);
    const caSeq = this.#ca.status().bundleSequence ?? 0;
    const key = `${stored?.sequence ?? 0}|${caSeq}`;
    if (this.#x509Source?.key !== key) {
      const roots: Buffer[] = [];
      const add = (d: Buffer): void => void (roots.some((r) => r.equals(d)) || roots.push(d));
      const published = stored ? this.#bundleView(this.#td.name) : undefined;
      for (const d of published?.bundle.x509Authorities() ?? []) add(d);
      for (const d of this.#ca.bundle().x509Authorities()) add(d);
      this.#x509Source = { key, bundle: new X509Bundle(this.#td, roots) };
    }
    return this.#x509Source.bundle;
  }

  #bundleView(td: string): BundleView | undefined {
    const stored = this.#bundles.get(td);
    let version: string;
    let load: () => SpiffeBundle;
    if (stored) {
      version = `ds:${stored.sequence}`;
      load = () => SpiffeBundle.parse(TrustDomain.parse(td), stored.bundle);
    } else if (td === this.#td.name) {
      version = `ca:${this.#ca.status().bundleSequence ?? 0}`;
      load = () => this.#ca.bundle();
    } else {
      return undefined;
    }
    const cached = this.#bundleViews.get(td);
    if (cached?.version === version) return cached;
    let bundle: SpiffeBundle;
    try {
      bundle = load();
    } catch (e) {
      this.#log?.warn('agent sync: cannot use a stored bundle', { trustDomain: td, error: e as Error });
      return undefined;
    }
    const view = { version, bundle, proto: bundleToProto(bundle) };
    this.#bundleViews.set(td, view);
    return view;
  }

  /** Stops following the change feed and ends every stream (UNAVAILABLE: agents reconnect elsewhere). */
  close(): void {
    this.#closed = true;
    this.#watch?.close();
    clearInterval(this.#sweep);
    clearTimeout(this.#retry);
    for (const s of this.#subs) s.terminate(new ConnectError('the server is shutting down', Code.Unavailable));
    this.#subs.clear();
    for (const w of this.#waiters) w.resolve();
    this.#waiters.clear();
  }
}

function touches(s: Subscription, entryIds: ReadonlySet<string>, parents: ReadonlySet<string>, bundleTds: ReadonlySet<string>): boolean {
  for (const id of entryIds) if (s.sent.has(id)) return true;
  for (const p of parents) if (s.parents.has(p)) return true;
  for (const td of bundleTds) if (s.wanted.has(td) || s.sentBundles.has(td)) return true;
  return false;
}

function sameEntry(a: RegistrationEntry, b: RegistrationEntry): boolean {
  return a.revisionNumber === b.revisionNumber && JSON.stringify(a) === JSON.stringify(b);
}

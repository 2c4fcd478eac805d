import type {
  AgentFilter,
  AgentInput,
  AgentUpdate,
  AttestedAgent,
  ChangeListener,
  ChangeRetention,
  DeleteBundleMode,
  EntryFilter,
  EntryInput,
  FederationRelationship,
  FederationRelationshipInput,
  JoinToken,
  Page,
  PageRequest,
  RegistrationEntry,
  Selector,
  SetMatch,
  StoredBundle,
  UpdateEntryOptions,
  Watch,
} from './types.js';

/** Registration entries (SPIRE's `registered_entries`). */
export interface EntryStore {
  /**
   * Stores a new entry with a server-generated ID and revision number 0.
   * @throws DatastoreError ALREADY_EXISTS when an entry with the same SPIFFE ID, parent ID and selector set exists; INVALID
   */
  createEntry(input: EntryInput): Promise<RegistrationEntry>;
  /**
   * Stores all entries or none (one transaction), in order.
   * @throws DatastoreError ALREADY_EXISTS naming the first duplicate (of a stored entry or of an earlier one in the batch); INVALID
   */
  createEntries(inputs: readonly EntryInput[]): Promise<RegistrationEntry[]>;
  /** The entry, or `undefined`. */
  getEntry(id: string): Promise<RegistrationEntry | undefined>;
  /**
   * Applies `changes` (restricted to `options.mask` when given) and increments the revision number.
   * @throws DatastoreError NOT_FOUND; CONFLICT when `options.expectedRevision` is stale; ALREADY_EXISTS; INVALID
   */
  updateEntry(id: string, changes: Partial<EntryInput>, options?: UpdateEntryOptions): Promise<RegistrationEntry>;
  /** Deletes and returns the entry. @throws DatastoreError NOT_FOUND */
  deleteEntry(id: string): Promise<RegistrationEntry>;
  /** Entries matching `filter`, ordered by ID (creation order), paginated. @throws DatastoreError INVALID (bad filter or token) */
  listEntries(filter?: EntryFilter, page?: PageRequest): Promise<Page<RegistrationEntry>>;
  /** How many entries match `filter`. */
  countEntries(filter?: EntryFilter): Promise<number>;
  /** Every entry whose parent is one of `parentIds` (an agent's own entries plus those of its node aliases). */
  listEntriesForParents(parentIds: readonly string[]): Promise<RegistrationEntry[]>;
  /** Every entry whose selector set matches `selectors` the way `match` says. */
  listEntriesBySelectors(selectors: readonly Selector[], match: SetMatch): Promise<RegistrationEntry[]>;
}

/** Attested agents (SPIRE's attested nodes). */
export interface AgentStore {
  /** @throws DatastoreError ALREADY_EXISTS; INVALID */
  createAgent(input: AgentInput): Promise<AttestedAgent>;
  /** The agent, or `undefined`. */
  getAgent(spiffeId: string): Promise<AttestedAgent | undefined>;
  /** @throws DatastoreError NOT_FOUND; INVALID */
  updateAgent(spiffeId: string, changes: AgentUpdate): Promise<AttestedAgent>;
  /** Deletes and returns the agent. @throws DatastoreError NOT_FOUND */
  deleteAgent(spiffeId: string): Promise<AttestedAgent>;
  /** Marks the agent banned and clears its certificate serials, so it can neither renew nor re-attest as itself. @throws DatastoreError NOT_FOUND */
  banAgent(spiffeId: string): Promise<AttestedAgent>;
  /** Agents matching `filter`, ordered by SPIFFE ID, paginated. */
  listAgents(filter?: AgentFilter, page?: PageRequest): Promise<Page<AttestedAgent>>;
  /** How many agents match `filter`. */
  countAgents(filter?: AgentFilter): Promise<number>;
}

/** One-time join tokens. */
export interface JoinTokenStore {
  /** @throws DatastoreError ALREADY_EXISTS; INVALID */
  createJoinToken(token: JoinToken): Promise<JoinToken>;
  /** The token, or `undefined` (whether expired or not). */
  getJoinToken(token: string): Promise<JoinToken | undefined>;
  /** Every stored token, by expiry. */
  listJoinTokens(): Promise<JoinToken[]>;
  /** @throws DatastoreError NOT_FOUND */
  deleteJoinToken(token: string): Promise<void>;
  /**
   * Atomically deletes and returns the token: of concurrent callers, in any
   * number of servers, exactly one gets it.
   * @param now epoch seconds (default: the datastore's clock)
   * @throws DatastoreError NOT_FOUND (unknown or already used); EXPIRED (deleted too)
   */
  consumeJoinToken(token: string, now?: number): Promise<JoinToken>;
  /** Deletes tokens expired at `now` (epoch seconds; default the clock); returns how many. */
  pruneJoinTokens(now?: number): Promise<number>;
}

/** Trust bundles: the server's own and federated ones. */
export interface BundleStore {
  /**
   * Stores `bundleJson` (SPIFFE bundle JSON text) for the trust domain and
   * increments its sequence. With `expectedSequence`, fails unless the stored
   * sequence is that (0 = must not exist yet).
   * @throws DatastoreError CONFLICT; INVALID (not a JSON object)
   */
  setBundle(trustDomain: string, bundleJson: string, expectedSequence?: number): Promise<StoredBundle>;
  /** The bundle, or `undefined`. */
  getBundle(trustDomain: string): Promise<StoredBundle | undefined>;
  /** Every bundle, by trust domain. */
  listBundles(): Promise<StoredBundle[]>;
  /** @throws DatastoreError NOT_FOUND; CONFLICT (`restrict` and entries federate with it) */
  deleteBundle(trustDomain: string, mode?: DeleteBundleMode): Promise<void>;
}

/** Federation relationships. */
export interface FederationStore {
  /** @throws DatastoreError ALREADY_EXISTS; INVALID */
  createFederationRelationship(input: FederationRelationshipInput): Promise<FederationRelationship>;
  /** The relationship, or `undefined`. */
  getFederationRelationship(trustDomain: string): Promise<FederationRelationship | undefined>;
  /** Every relationship, by trust domain. */
  listFederationRelationships(): Promise<FederationRelationship[]>;
  /** @throws DatastoreError NOT_FOUND; INVALID */
  updateFederationRelationship(trustDomain: string, changes: Partial<Omit<FederationRelationshipInput, 'trustDomain'>>): Promise<FederationRelationship>;
  /** @throws DatastoreError NOT_FOUND */
  deleteFederationRelationship(trustDomain: string): Promise<void>;
}

/** Per-server CA key state (opaque to the datastore). */
export interface CaJournalStore {
  /** The journal of server `serverId`, or `undefined`. */
  getCaJournal(serverId: string): Promise<string | undefined>;
  /** Replaces the journal of server `serverId`. */
  setCaJournal(serverId: string, journal: string): Promise<void>;
  /** Journals whose server ID starts with `prefix` (replicas publish their bundle contributions this way). */
  listCaJournals(prefix?: string): Promise<{ serverId: string; journal: string; updatedAt: number }[]>;
}

/** The change feed: every committed mutation of entries, agents, bundles and federation relationships. */
export interface ChangeFeedSource {
  /** The revision of the newest committed change (0 when none). */
  currentRevision(): Promise<number>;
  /**
   * Delivers every change with a revision above `fromRevision`, in order,
   * after it commits — including changes committed by other servers sharing
   * a PostgreSQL database. Read `currentRevision()` before loading the state
   * the listener maintains, then watch from it.
   */
  watch(fromRevision: number, listener: ChangeListener): Watch;
  /** Deletes changes outside the retention (also done periodically); returns how many. */
  pruneChanges(retention?: ChangeRetention): Promise<number>;
}

/**
 * Everything the server persists. Both implementations (SQLite, PostgreSQL)
 * behave the same; every multi-row change is one transaction.
 * @example
 * ```ts
 * const ds = await openDatastore({ kind: 'sqlite', path: '/var/lib/tessera/datastore.sqlite3' });
 * const rev = await ds.currentRevision();
 * const entries = await ds.listEntriesForParents([agentId]);
 * ds.watch(rev, (c) => console.log(c));
 * ```
 */
export interface Datastore extends EntryStore, AgentStore, JoinTokenStore, BundleStore, FederationStore, CaJournalStore, ChangeFeedSource {
  /** Which database is behind it. */
  readonly kind: 'sqlite' | 'postgres';
  /** The schema version the database is at. */
  readonly schemaVersion: number;
  /** Stops watchers and timers and closes the connections. Idempotent. */
  close(): Promise<void>;
}

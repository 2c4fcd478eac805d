import type { Kysely } from 'kysely';
import type pg from 'pg';
import * as agents from './agents.js';
import * as bundles from './bundles.js';
import * as caJournal from './ca-journal.js';
import { ChangeFeed, type ChangeReader } from './change-feed.js';
import type { Datastore } from './datastore.js';
import * as entries from './entries.js';
import { DatastoreError } from './errors.js';
import * as federation from './federation.js';
import * as joinTokens from './join-tokens.js';
import { PgListener } from './pg-listener.js';
import { CHANGES_CHANNEL, SqlContext } from './sql-context.js';
import type { SqlDialect, Tables } from './tables.js';
import type {
  AgentFilter,
  AgentInput,
  AgentUpdate,
  AttestedAgent,
  Change,
  ChangeKind,
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

/** How a {@link SqlDatastore} runs; `openDatastore` fills it in. */
export interface SqlDatastoreOptions {
  readonly clock: () => number;
  readonly newId: () => string;
  readonly onError: (err: unknown) => void;
  /** Change-feed safety poll (ms; 0 = off). */
  readonly pollIntervalMs: number;
  readonly retention: Required<ChangeRetention>;
  /** How often to prune the change log and expired join tokens (ms; 0 = never). */
  readonly pruneIntervalMs: number;
  /** PostgreSQL only: settings for the LISTEN connection. */
  readonly listen?: pg.ClientConfig;
}

/**
 * The {@link Datastore} over Kysely, for SQLite and PostgreSQL alike. The
 * table modules (`entries.ts`, `agents.ts`, …) hold the SQL; this class wires
 * them to one {@link SqlContext}, the change feed and the housekeeping timer.
 */
export class SqlDatastore implements Datastore {
  readonly kind: SqlDialect;
  readonly schemaVersion: number;
  readonly #db: Kysely<Tables>;
  readonly #ctx: SqlContext;
  readonly #feed: ChangeFeed;
  readonly #options: SqlDatastoreOptions;
  #listener: PgListener | undefined;
  #housekeeping: NodeJS.Timeout | undefined;
  #closed: Promise<void> | undefined;

  constructor(db: Kysely<Tables>, dialect: SqlDialect, schemaVersion: number, options: SqlDatastoreOptions) {
    this.kind = dialect;
    this.schemaVersion = schemaVersion;
    this.#db = db;
    this.#options = options;
    this.#ctx = new SqlContext(db, dialect, options.clock, options.newId, () => this.#feed.signal());
    const reader: ChangeReader = {
      readChanges: (after, limit) => this.#readChanges(after, limit),
      prunedThrough: async () => Number((await db.selectFrom('change_log_state').select('pruned_through').where('id', '=', 1).executeTakeFirst())?.pruned_through ?? 0),
    };
    this.#feed = new ChangeFeed(reader, {
      pollIntervalMs: options.pollIntervalMs,
      retryMs: 500,
      onError: options.onError,
      onFirstWatch: () => this.#startListener(),
    });
    if (options.pruneIntervalMs > 0) {
      this.#housekeeping = setInterval(() => void this.#houseKeep(), options.pruneIntervalMs);
      this.#housekeeping.unref();
    }
  }

  async #readChanges(after: number, limit: number): Promise<Change[]> {
    const rows = await this.#db.selectFrom('changes').selectAll().where('id', '>', after).orderBy('id').limit(limit).execute();
    return rows.map((r) => ({ revision: Number(r.id), kind: r.kind as ChangeKind, key: r.key, op: r.op as Change['op'], at: Number(r.at) }));
  }

  #startListener(): void {
    if (!this.#options.listen || this.#listener) return;
    this.#listener = new PgListener({ config: this.#options.listen, channel: CHANGES_CHANNEL, onSignal: () => this.#feed.signal(), onError: this.#options.onError });
    this.#listener.start();
  }

  async #houseKeep(): Promise<void> {
    try {
      await this.pruneChanges();
      await this.pruneJoinTokens();
    } catch (e) {
      this.#options.onError(e);
    }
  }

  createEntry(input: EntryInput): Promise<RegistrationEntry> {
    return entries.createEntries(this.#ctx, [input], false).then((r) => r[0]!);
  }
  createEntries(inputs: readonly EntryInput[]): Promise<RegistrationEntry[]> {
    return entries.createEntries(this.#ctx, inputs, true);
  }
  getEntry(id: string): Promise<RegistrationEntry | undefined> {
    return entries.getEntry(this.#ctx, id);
  }
  updateEntry(id: string, changes: Partial<EntryInput>, options?: UpdateEntryOptions): Promise<RegistrationEntry> {
    return entries.updateEntry(this.#ctx, id, changes, options);
  }
  deleteEntry(id: string): Promise<RegistrationEntry> {
    return entries.deleteEntry(this.#ctx, id);
  }
  listEntries(filter?: EntryFilter, page?: PageRequest): Promise<Page<RegistrationEntry>> {
    return entries.listEntries(this.#ctx, filter, page);
  }
  countEntries(filter?: EntryFilter): Promise<number> {
    return entries.countEntries(this.#ctx, filter);
  }
  listEntriesForParents(parentIds: readonly string[]): Promise<RegistrationEntry[]> {
    return entries.listEntriesForParents(this.#ctx, parentIds);
  }
  async listEntriesBySelectors(selectors: readonly Selector[], match: SetMatch): Promise<RegistrationEntry[]> {
    return (await entries.listEntries(this.#ctx, { selectors: { selectors, match } }, undefined)).items;
  }

  createAgent(input: AgentInput): Promise<AttestedAgent> {
    return agents.createAgent(this.#ctx, input);
  }
  getAgent(spiffeId: string): Promise<AttestedAgent | undefined> {
    return agents.getAgent(this.#ctx, spiffeId);
  }
  updateAgent(spiffeId: string, changes: AgentUpdate): Promise<AttestedAgent> {
    return agents.updateAgent(this.#ctx, spiffeId, changes);
  }
  deleteAgent(spiffeId: string): Promise<AttestedAgent> {
    return agents.deleteAgent(this.#ctx, spiffeId);
  }
  banAgent(spiffeId: string): Promise<AttestedAgent> {
    return agents.updateAgent(this.#ctx, spiffeId, { banned: true, certSerial: '', newCertSerial: '', newCertExpiresAt: 0 }, 'banning an agent');
  }
  listAgents(filter?: AgentFilter, page?: PageRequest): Promise<Page<AttestedAgent>> {
    return agents.listAgents(this.#ctx, filter, page);
  }
  countAgents(filter?: AgentFilter): Promise<number> {
    return agents.countAgents(this.#ctx, filter);
  }

  createJoinToken(token: JoinToken): Promise<JoinToken> {
    return joinTokens.createJoinToken(this.#ctx, token);
  }
  getJoinToken(token: string): Promise<JoinToken | undefined> {
    return joinTokens.getJoinToken(this.#ctx, token);
  }
  listJoinTokens(): Promise<JoinToken[]> {
    return joinTokens.listJoinTokens(this.#ctx);
  }
  deleteJoinToken(token: string): Promise<void> {
    return joinTokens.deleteJoinToken(this.#ctx, token);
  }
  consumeJoinToken(token: string, now: number = this.#ctx.nowSeconds()): Promise<JoinToken> {
    return joinTokens.consumeJoinToken(this.#ctx, token, now);
  }
  pruneJoinTokens(now: number = this.#ctx.nowSeconds()): Promise<number> {
    return joinTokens.pruneJoinTokens(this.#ctx, now);
  }

  setBundle(trustDomain: string, bundleJson: string, expectedSequence?: number): Promise<StoredBundle> {
    return bundles.setBundle(this.#ctx, trustDomain, bundleJson, expectedSequence);
  }
  getBundle(trustDomain: string): Promise<StoredBundle | undefined> {
    return bundles.getBundle(this.#ctx, trustDomain);
  }
  listBundles(): Promise<StoredBundle[]> {
    return bundles.listBundles(this.#ctx);
  }
  deleteBundle(trustDomain: string, mode?: DeleteBundleMode): Promise<void> {
    return bundles.deleteBundle(this.#ctx, trustDomain, mode);
  }

  createFederationRelationship(input: FederationRelationshipInput): Promise<FederationRelationship> {
    return federation.createFederationRelationship(this.#ctx, input);
  }
  getFederationRelationship(trustDomain: string): Promise<FederationRelationship | undefined> {
    return federation.getFederationRelationship(this.#ctx, trustDomain);
  }
  listFederationRelationships(): Promise<FederationRelationship[]> {
    return federation.listFederationRelationships(this.#ctx);
  }
  updateFederationRelationship(trustDomain: string, changes: Partial<Omit<FederationRelationshipInput, 'trustDomain'>>): Promise<FederationRelationship> {
    return federation.updateFederationRelationship(this.#ctx, trustDomain, changes);
  }
  deleteFederationRelationship(trustDomain: string): Promise<void> {
    return federation.deleteFederationRelationship(this.#ctx, trustDomain);
  }

  getCaJournal(serverId: string): Promise<string | undefined> {
    return caJournal.getCaJournal(this.#ctx, serverId);
  }
  listCaJournals(prefix?: string): Promise<{ serverId: string; journal: string; updatedAt: number }[]> {
    return caJournal.listCaJournals(this.#ctx, prefix);
  }
  setCaJournal(serverId: string, journal: string): Promise<void> {
    return caJournal.setCaJournal(this.#ctx, serverId, journal);
  }

  currentRevision(): Promise<number> {
    return this.#ctx.read('reading the current revision', async (db) =>
      Number((await db.selectFrom('changes').select((eb) => eb.fn.max('id').as('m')).executeTakeFirst())?.m ?? 0),
    );
  }

  watch(fromRevision: number, listener: ChangeListener): Watch {
    if (this.#closed) throw new DatastoreError('CLOSED', 'the datastore was closed');
    if (!Number.isSafeInteger(fromRevision) || fromRevision < 0) throw new DatastoreError('INVALID', 'fromRevision must be a non-negative whole number');
    if (typeof listener !== 'function') throw new DatastoreError('INVALID', 'listener must be a function');
    return this.#feed.watch(fromRevision, listener);
  }

  async pruneChanges(retention: ChangeRetention = {}): Promise<number> {
    const keep = retention.keep ?? this.#options.retention.keep;
    const maxAge = retention.maxAgeSeconds ?? this.#options.retention.maxAgeSeconds;
    if (!Number.isSafeInteger(keep) || keep < 1) throw new DatastoreError('INVALID', 'retention.keep must be a whole number of at least 1');
    if (!Number.isSafeInteger(maxAge) || maxAge < 0) throw new DatastoreError('INVALID', 'retention.maxAgeSeconds must be a non-negative whole number');
    const cutoff = this.#ctx.nowSeconds() - maxAge;
    return this.#ctx.write('pruning the change log', async (trx) => {
      const max = Number((await trx.selectFrom('changes').select((eb) => eb.fn.max('id').as('m')).executeTakeFirst())?.m ?? 0);
      // Prune a prefix only, so that the log is always "everything after pruned_through".
      const floorRow = await trx
        .selectFrom('changes')
        .select((eb) => eb.fn.max('id').as('f'))
        .where('id', '<=', max - keep)
        .where('at', '<', cutoff)
        .executeTakeFirst();
      const floor = Number(floorRow?.f ?? 0);
      if (floor <= 0) return 0;
      const res = await trx.deleteFrom('changes').where('id', '<=', floor).executeTakeFirst();
      await trx.updateTable('change_log_state').set({ pruned_through: floor }).where('id', '=', 1).where('pruned_through', '<', floor).execute();
      return Number(res.numDeletedRows);
    });
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#feed.close();
      clearInterval(this.#housekeeping);
      this.#ctx.markClosed();
      await this.#listener?.close();
      await this.#db.destroy();
    })();
    return this.#closed;
  }
}

/**
 * The server's datastore: registration entries, attested agents, join
 * tokens, bundles, federation relationships, CA journals and a change feed,
 * in SQLite (embedded default) or PostgreSQL (shared by server replicas).
 * See docs/datastore.md.
 */
export type { Datastore, EntryStore, AgentStore, JoinTokenStore, BundleStore, FederationStore, CaJournalStore, ChangeFeedSource } from './datastore.js';
export type * from './types.js';
export { DatastoreError, type DatastoreErrorCode } from './errors.js';
export { openDatastore, type DatastoreOptions } from './open.js';
export { parseDatastoreSpec, redactUrl, DEFAULT_SQLITE_FILE, type DatastoreSpec } from './spec.js';
export { SCHEMA_VERSION } from './migrations.js';

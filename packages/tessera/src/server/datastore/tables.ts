import type { Generated, SqlBool } from 'kysely';

/*
 * The SQL schema as Kysely sees it (snake_case, as created by migrations.ts).
 * Booleans are INTEGER 0/1 in SQLite and BOOLEAN in PostgreSQL; timestamps
 * whole epoch seconds (BIGINT in PostgreSQL, read back as numbers).
 * Selector and trust domain lists live in child tables (for indexed matching)
 * and, canonical and sorted, as JSON in the parent row (so reading a page of
 * rows is one query); both are written in the same statement group of one
 * transaction, by one function each.
 */

/** `registered_entries`. */
export interface RegisteredEntriesTable {
  id: string;
  spiffe_id: string;
  parent_id: string;
  /** sha256 of (spiffe_id, parent_id, canonical selectors): the duplicate guard. */
  unique_key: string;
  selectors: string;
  federates_with: string;
  dns_names: string;
  x509_svid_ttl: number;
  jwt_svid_ttl: number;
  admin: SqlBool;
  downstream: SqlBool;
  hint: string;
  expires_at: number;
  revision_number: number;
  created_at: number;
}

/** `entry_selectors`. */
export interface EntrySelectorsTable {
  entry_id: string;
  type: string;
  value: string;
}

/** `entry_federates_with`. */
export interface EntryFederatesWithTable {
  entry_id: string;
  trust_domain: string;
}

/** `attested_agents`. */
export interface AttestedAgentsTable {
  spiffe_id: string;
  attestation_type: string;
  cert_serial: string;
  cert_expires_at: number;
  new_cert_serial: string;
  new_cert_expires_at: number;
  banned: SqlBool;
  can_reattest: SqlBool;
  selectors: string;
  created_at: number;
  updated_at: number;
}

/** `agent_selectors`. */
export interface AgentSelectorsTable {
  spiffe_id: string;
  type: string;
  value: string;
}

/** `join_tokens`. */
export interface JoinTokensTable {
  token: string;
  expires_at: number;
  spiffe_id: string | null;
}

/** `bundles`. */
export interface BundlesTable {
  trust_domain: string;
  bundle: string;
  sequence: number;
  updated_at: number;
}

/** `federation_relationships`. */
export interface FederationRelationshipsTable {
  trust_domain: string;
  bundle_endpoint_url: string;
  profile: string;
  endpoint_spiffe_id: string;
  created_at: number;
  updated_at: number;
}

/** `ca_journals`. */
export interface CaJournalsTable {
  server_id: string;
  data: string;
  updated_at: number;
}

/** `changes`: the change log behind the feed. */
export interface ChangesTable {
  id: Generated<number>;
  kind: string;
  key: string;
  op: string;
  at: number;
}

/** `change_log_state`: one row, how far the change log was pruned. */
export interface ChangeLogStateTable {
  id: number;
  pruned_through: number;
}

/** `schema_migrations`. */
export interface SchemaMigrationsTable {
  version: number;
  name: string;
  applied_at: number;
}

/** The whole schema. */
export interface Tables {
  registered_entries: RegisteredEntriesTable;
  entry_selectors: EntrySelectorsTable;
  entry_federates_with: EntryFederatesWithTable;
  attested_agents: AttestedAgentsTable;
  agent_selectors: AgentSelectorsTable;
  join_tokens: JoinTokensTable;
  bundles: BundlesTable;
  federation_relationships: FederationRelationshipsTable;
  ca_journals: CaJournalsTable;
  changes: ChangesTable;
  change_log_state: ChangeLogStateTable;
  schema_migrations: SchemaMigrationsTable;
}

/** The two SQL dialects the datastore speaks. */
export type SqlDialect = 'sqlite' | 'postgres';

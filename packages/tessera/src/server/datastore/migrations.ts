import { sql, type Kysely, type Transaction } from 'kysely';
import { DatastoreError } from './errors.js';
import type { SqlDialect, Tables } from './tables.js';

/**
 * One schema change. Migrations are append-only: never edit one that has
 * shipped; add the next version instead.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  up(trx: Transaction<Tables>, dialect: SqlDialect): Promise<void>;
}

/** Advisory lock serialising migrations of concurrently starting servers on one PostgreSQL. */
const MIGRATION_LOCK = 0x7e55e7a1;

/**
 * Column types per dialect. PostgreSQL text columns use the "C" collation so
 * that ordering (and so keyset pagination) is by bytes, as in SQLite,
 * whatever the cluster's locale.
 */
function columnTypes(dialect: SqlDialect) {
  return dialect === 'postgres'
    ? ({ int: 'bigint', bool: 'boolean', serial: 'bigserial', text: sql`text collate "C"` } as const)
    : ({ int: 'integer', bool: 'integer', serial: 'integer', text: 'text' } as const);
}

/** Every migration, in order. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    async up(trx, dialect) {
      const t = columnTypes(dialect);
      const s = trx.schema;
      await s
        .createTable('registered_entries')
        .addColumn('id', t.text, (c) => c.primaryKey())
        .addColumn('spiffe_id', t.text, (c) => c.notNull())
        .addColumn('parent_id', t.text, (c) => c.notNull())
        .addColumn('unique_key', t.text, (c) => c.notNull().unique())
        .addColumn('selectors', t.text, (c) => c.notNull())
        .addColumn('federates_with', t.text, (c) => c.notNull())
        .addColumn('dns_names', t.text, (c) => c.notNull())
        .addColumn('x509_svid_ttl', t.int, (c) => c.notNull().defaultTo(0))
        .addColumn('jwt_svid_ttl', t.int, (c) => c.notNull().defaultTo(0))
        .addColumn('admin', t.bool, (c) => c.notNull())
        .addColumn('downstream', t.bool, (c) => c.notNull())
        .addColumn('hint', t.text, (c) => c.notNull().defaultTo(''))
        .addColumn('expires_at', t.int, (c) => c.notNull().defaultTo(0))
        .addColumn('revision_number', t.int, (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', t.int, (c) => c.notNull())
        .execute();
      await s.createIndex('registered_entries_parent_id').on('registered_entries').column('parent_id').execute();
      await s.createIndex('registered_entries_spiffe_id').on('registered_entries').column('spiffe_id').execute();
      await s.createIndex('registered_entries_hint').on('registered_entries').column('hint').execute();
      await s
        .createTable('entry_selectors')
        .addColumn('entry_id', t.text, (c) => c.notNull().references('registered_entries.id').onDelete('cascade'))
        .addColumn('type', t.text, (c) => c.notNull())
        .addColumn('value', t.text, (c) => c.notNull())
        .addPrimaryKeyConstraint('entry_selectors_pk', ['entry_id', 'type', 'value'])
        .execute();
      await s.createIndex('entry_selectors_type_value').on('entry_selectors').columns(['type', 'value']).execute();
      await s
        .createTable('entry_federates_with')
        .addColumn('entry_id', t.text, (c) => c.notNull().references('registered_entries.id').onDelete('cascade'))
        .addColumn('trust_domain', t.text, (c) => c.notNull())
        .addPrimaryKeyConstraint('entry_federates_with_pk', ['entry_id', 'trust_domain'])
        .execute();
      await s.createIndex('entry_federates_with_trust_domain').on('entry_federates_with').column('trust_domain').execute();

      await s
        .createTable('attested_agents')
        .addColumn('spiffe_id', t.text, (c) => c.primaryKey())
        .addColumn('attestation_type', t.text, (c) => c.notNull())
        .addColumn('cert_serial', t.text, (c) => c.notNull())
        .addColumn('cert_expires_at', t.int, (c) => c.notNull())
        .addColumn('new_cert_serial', t.text, (c) => c.notNull().defaultTo(''))
        .addColumn('new_cert_expires_at', t.int, (c) => c.notNull().defaultTo(0))
        .addColumn('banned', t.bool, (c) => c.notNull())
        .addColumn('can_reattest', t.bool, (c) => c.notNull())
        .addColumn('selectors', t.text, (c) => c.notNull())
        .addColumn('created_at', t.int, (c) => c.notNull())
        .addColumn('updated_at', t.int, (c) => c.notNull())
        .execute();
      await s.createIndex('attested_agents_attestation_type').on('attested_agents').column('attestation_type').execute();
      await s.createIndex('attested_agents_cert_expires_at').on('attested_agents').column('cert_expires_at').execute();
      await s
        .createTable('agent_selectors')
        .addColumn('spiffe_id', t.text, (c) => c.notNull().references('attested_agents.spiffe_id').onDelete('cascade'))
        .addColumn('type', t.text, (c) => c.notNull())
        .addColumn('value', t.text, (c) => c.notNull())
        .addPrimaryKeyConstraint('agent_selectors_pk', ['spiffe_id', 'type', 'value'])
        .execute();
      await s.createIndex('agent_selectors_type_value').on('agent_selectors').columns(['type', 'value']).execute();

      await s
        .createTable('join_tokens')
        .addColumn('token', t.text, (c) => c.primaryKey())
        .addColumn('expires_at', t.int, (c) => c.notNull())
        .addColumn('spiffe_id', t.text)
        .execute();
      await s.createIndex('join_tokens_expires_at').on('join_tokens').column('expires_at').execute();

      await s
        .createTable('bundles')
        .addColumn('trust_domain', t.text, (c) => c.primaryKey())
        .addColumn('bundle', t.text, (c) => c.notNull())
        .addColumn('sequence', t.int, (c) => c.notNull())
        .addColumn('updated_at', t.int, (c) => c.notNull())
        .execute();
      await s
        .createTable('federation_relationships')
        .addColumn('trust_domain', t.text, (c) => c.primaryKey())
        .addColumn('bundle_endpoint_url', t.text, (c) => c.notNull())
        .addColumn('profile', t.text, (c) => c.notNull())
        .addColumn('endpoint_spiffe_id', t.text, (c) => c.notNull().defaultTo(''))
        .addColumn('created_at', t.int, (c) => c.notNull())
        .addColumn('updated_at', t.int, (c) => c.notNull())
        .execute();
      await s
        .createTable('ca_journals')
        .addColumn('server_id', t.text, (c) => c.primaryKey())
        .addColumn('data', t.text, (c) => c.notNull())
        .addColumn('updated_at', t.int, (c) => c.notNull())
        .execute();

      // AUTOINCREMENT: SQLite must never reuse a revision, even after pruning.
      await s
        .createTable('changes')
        .addColumn('id', t.serial, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('kind', t.text, (c) => c.notNull())
        .addColumn('key', t.text, (c) => c.notNull())
        .addColumn('op', t.text, (c) => c.notNull())
        .addColumn('at', t.int, (c) => c.notNull())
        .execute();
      await s.createIndex('changes_at').on('changes').column('at').execute();
      await s
        .createTable('change_log_state')
        .addColumn('id', t.int, (c) => c.primaryKey())
        .addColumn('pruned_through', t.int, (c) => c.notNull())
        .execute();
      await trx.insertInto('change_log_state').values({ id: 1, pruned_through: 0 }).execute();
    },
  },
];

/** The schema version this code creates and understands. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

async function lock(trx: Transaction<Tables>, dialect: SqlDialect): Promise<void> {
  if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(${sql.lit(MIGRATION_LOCK)})`.execute(trx);
}

async function appliedVersions(db: Kysely<Tables> | Transaction<Tables>): Promise<Set<number>> {
  const rows = await db.selectFrom('schema_migrations').select('version').execute();
  return new Set(rows.map((r) => Number(r.version)));
}

function refuseNewer(applied: Set<number>, known: readonly Migration[]): void {
  const newest = Math.max(0, ...applied);
  const latest = known.length > 0 ? known[known.length - 1]!.version : 0;
  if (newest > latest) {
    throw new DatastoreError(
      'SCHEMA_TOO_NEW',
      `the database schema is at version ${newest} but this tessera server knows versions up to ${latest}: run a newer tessera (downgrades are not supported)`,
    );
  }
}

/**
 * Brings the schema up to date: records each applied migration in
 * `schema_migrations`, runs each one in its own transaction (so a crash
 * leaves the schema at a whole version), and refuses a schema newer than
 * `migrations` knows. Safe when several servers start at once on one
 * PostgreSQL (an advisory lock serialises them) and when run again.
 * @returns the schema version now in place
 * @throws DatastoreError SCHEMA_TOO_NEW
 */
export async function migrate(
  db: Kysely<Tables>,
  dialect: SqlDialect,
  nowSeconds: number,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<number> {
  await db.transaction().execute(async (trx) => {
    await lock(trx, dialect);
    await trx.schema
      .createTable('schema_migrations')
      .ifNotExists()
      .addColumn('version', 'integer', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('applied_at', columnTypes(dialect).int, (c) => c.notNull())
      .execute();
  });
  const before = await appliedVersions(db);
  refuseNewer(before, migrations);
  for (const m of migrations) {
    if (before.has(m.version)) continue;
    await db.transaction().execute(async (trx) => {
      await lock(trx, dialect);
      // Re-read under the lock: another server may have applied it meanwhile.
      const applied = await appliedVersions(trx);
      refuseNewer(applied, migrations);
      if (applied.has(m.version)) return;
      await m.up(trx, dialect);
      await trx.insertInto('schema_migrations').values({ version: m.version, name: m.name, applied_at: nowSeconds }).execute();
    });
  }
  return migrations.length > 0 ? migrations[migrations.length - 1]!.version : 0;
}

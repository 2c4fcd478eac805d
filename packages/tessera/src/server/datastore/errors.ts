/**
 * Typed errors of the datastore. Match on `code`; messages are for people.
 *
 * | code | when |
 * |---|---|
 * | `DATASTORE_UNREACHABLE` | the database cannot be opened or reached (wrong URL, server down, bad credentials, unwritable file) |
 * | `ALREADY_EXISTS` | a row with the same key exists (for entries: same SPIFFE ID, parent ID and selector set — SPIRE's AlreadyExists) |
 * | `NOT_FOUND` | the row asked for does not exist (or a join token was already used) |
 * | `EXPIRED` | a join token was presented after its expiry (it is consumed anyway) |
 * | `CONFLICT` | an optimistic check failed (revision number, bundle sequence) or a delete is restricted by references |
 * | `INVALID` | a row is structurally invalid (empty SPIFFE ID, no selectors, negative TTL, bad page token) |
 * | `SCHEMA_TOO_NEW` | the database was migrated by a newer Tessera than this one |
 * | `CLOSED` | the datastore was used after `close()` |
 * | `INTERNAL` | any other database failure; `cause` holds the driver's error |
 */
export type DatastoreErrorCode =
  | 'DATASTORE_UNREACHABLE'
  | 'ALREADY_EXISTS'
  | 'NOT_FOUND'
  | 'EXPIRED'
  | 'CONFLICT'
  | 'INVALID'
  | 'SCHEMA_TOO_NEW'
  | 'CLOSED'
  | 'INTERNAL';

/**
 * The one error class the datastore throws.
 * @example
 * ```ts
 * try {
 *   await ds.createEntry(input);
 * } catch (e) {
 *   if (e instanceof DatastoreError && e.code === 'ALREADY_EXISTS') console.error(`exists: ${e.key}`);
 * }
 * ```
 */
export class DatastoreError extends Error {
  /** Stable code; see the table above. */
  readonly code: DatastoreErrorCode;
  /** The key of the row at fault when there is one (entry ID, agent SPIFFE ID, trust domain, token). */
  readonly key: string | undefined;

  constructor(code: DatastoreErrorCode, message: string, options: { key?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DatastoreError';
    this.code = code;
    this.key = options.key;
  }
}

/** One line of text from any thrown value (drivers sometimes throw AggregateErrors with an empty message). */
export function describeError(e: unknown): string {
  if (e instanceof AggregateError && e.errors.length > 0) {
    return [...new Set(e.errors.map(describeError))].join('; ');
  }
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    const text = e.message || (typeof code === 'string' ? code : e.name);
    return text.replace(/\s*\n\s*/g, ' ').trim();
  }
  return String(e).replace(/\s*\n\s*/g, ' ');
}

/** Whether `e` is a unique or primary-key violation, in either dialect. */
export function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006', 'SQLITE_CANTOPEN', 'SQLITE_READONLY', 'SQLITE_FULL', 'SQLITE_IOERR']);

/**
 * Wraps whatever a driver threw into a {@link DatastoreError}: connection
 * failures become DATASTORE_UNREACHABLE, unique violations ALREADY_EXISTS,
 * the rest INTERNAL. DatastoreErrors pass through.
 */
export function toDatastoreError(e: unknown, doing: string): DatastoreError {
  if (e instanceof DatastoreError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  const errors = e instanceof AggregateError ? e.errors : [];
  const text = describeError(e);
  if (
    (typeof code === 'string' && (CONNECTION_CODES.has(code) || code.startsWith('SQLITE_IOERR'))) ||
    errors.some((x) => CONNECTION_CODES.has((x as { code?: string }).code ?? '')) ||
    /Connection terminated|connection timeout|timeout expired/i.test(text)
  ) {
    return new DatastoreError('DATASTORE_UNREACHABLE', `datastore unavailable while ${doing}: ${text}`, { cause: e });
  }
  if (isUniqueViolation(e)) return new DatastoreError('ALREADY_EXISTS', `${doing}: already exists (${text})`, { cause: e });
  return new DatastoreError('INTERNAL', `datastore failure while ${doing}: ${text}`, { cause: e });
}

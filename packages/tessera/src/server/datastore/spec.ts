import { isAbsolute, join, resolve } from 'node:path';
import { DatastoreError } from './errors.js';

/** Which database to open. */
export type DatastoreSpec = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

/** The SQLite file's name inside the server's data directory. */
export const DEFAULT_SQLITE_FILE = 'datastore.sqlite3';

/**
 * Reads the server config's `datastore` value: omitted or `sqlite` → the
 * embedded SQLite file in `dataDir`; `sqlite:<path>` → that file (relative
 * to `dataDir`); `postgres://…` or `postgresql://…` → PostgreSQL.
 * @throws DatastoreError INVALID
 * @example
 * ```ts
 * parseDatastoreSpec(undefined, '/var/lib/tessera'); // { kind: 'sqlite', path: '/var/lib/tessera/datastore.sqlite3' }
 * parseDatastoreSpec('postgres://tessera@db:5432/tessera', '/x'); // { kind: 'postgres', url: '…' }
 * ```
 */
export function parseDatastoreSpec(value: string | undefined, dataDir: string): DatastoreSpec {
  if (value === undefined || value === '' || value === 'sqlite') return { kind: 'sqlite', path: resolve(join(dataDir, DEFAULT_SQLITE_FILE)) };
  if (/^postgres(ql)?:\/\//i.test(value)) return { kind: 'postgres', url: value };
  if (value.startsWith('sqlite:') && value.length > 'sqlite:'.length) {
    const path = value.slice('sqlite:'.length);
    return { kind: 'sqlite', path: isAbsolute(path) ? path : resolve(dataDir, path) };
  }
  throw new DatastoreError('INVALID', `datastore must be "sqlite", "sqlite:<file>" or a postgres:// URL, got ${JSON.stringify(value)}`);
}

/** `url` with its password replaced by `***` (for messages and logs). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

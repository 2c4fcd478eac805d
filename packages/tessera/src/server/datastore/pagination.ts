import { DatastoreError } from './errors.js';
import type { Page, PageRequest } from './types.js';

/** Largest page a caller may ask for. */
export const MAX_PAGE_SIZE = 10_000;
const PREFIX = 'k1:';

/**
 * Validates a page request: the page size, and the key after which the page
 * starts (tokens are opaque to callers; inside, the last key of the previous
 * page, so pages stay consistent while rows are added or removed).
 * @throws DatastoreError INVALID
 */
export function readPageRequest(page: PageRequest | undefined): { limit: number | undefined; after: string | undefined } {
  const size = page?.pageSize;
  if (size !== undefined && (!Number.isSafeInteger(size) || size < 1 || size > MAX_PAGE_SIZE)) {
    throw new DatastoreError('INVALID', `page size must be a whole number from 1 to ${MAX_PAGE_SIZE}, got ${String(size)}`);
  }
  const token = page?.pageToken;
  if (token === undefined || token === '') return { limit: size, after: undefined };
  const text = typeof token === 'string' ? Buffer.from(token, 'base64url').toString('utf8') : '';
  if (!text.startsWith(PREFIX) || text.length === PREFIX.length) {
    throw new DatastoreError('INVALID', 'invalid page token: pass back the nextPageToken of the previous page unchanged');
  }
  return { limit: size, after: text.slice(PREFIX.length) };
}

/**
 * Builds a page from rows fetched with `limit + 1`: the extra row only tells
 * that more follow.
 */
export function toPage<T>(rows: T[], limit: number | undefined, keyOf: (item: T) => string): Page<T> {
  if (limit === undefined || rows.length <= limit) return { items: rows };
  const items = rows.slice(0, limit);
  return { items, nextPageToken: Buffer.from(PREFIX + keyOf(items[items.length - 1]!), 'utf8').toString('base64url') };
}

import { DatastoreError } from './errors.js';
import type { Selector } from './types.js';

/** `type:value`, the canonical text of a selector (sorting and uniqueness use it). */
export function selectorText(s: Selector): string {
  return `${s.type}:${s.value}`;
}

/**
 * The canonical form stored and compared: sorted by `type:value`, unique.
 * Checks only structure (non-empty strings); the registration layer checks
 * the rest.
 * @throws DatastoreError INVALID naming `field`
 */
export function canonicalSelectors(list: unknown, field: string, allowEmpty: boolean): Selector[] {
  if (!Array.isArray(list)) throw new DatastoreError('INVALID', `${field} must be a list of selectors`);
  if (list.length === 0 && !allowEmpty) throw new DatastoreError('INVALID', `${field} must have at least one selector`);
  const seen = new Map<string, Selector>();
  list.forEach((s: unknown, i) => {
    const sel = s as Partial<Selector> | null;
    if (sel === null || typeof sel !== 'object' || typeof sel.type !== 'string' || typeof sel.value !== 'string' || sel.type === '' || sel.value === '') {
      throw new DatastoreError('INVALID', `${field}[${i}] must have a non-empty type and value`);
    }
    const c = { type: sel.type, value: sel.value };
    seen.set(selectorText(c), c);
  });
  return [...seen.keys()].sort().map((k) => seen.get(k)!);
}

/** Sorted, unique, non-empty strings. @throws DatastoreError INVALID */
export function canonicalStrings(list: unknown, field: string, sort: boolean): string[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new DatastoreError('INVALID', `${field} must be a list of strings`);
  list.forEach((v: unknown, i) => {
    if (typeof v !== 'string' || v === '') throw new DatastoreError('INVALID', `${field}[${i}] must be a non-empty string`);
  });
  const unique = [...new Set(list as string[])];
  return sort ? unique.sort() : unique;
}

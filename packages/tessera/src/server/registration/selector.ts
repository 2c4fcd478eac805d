import { invalid } from './errors.js';

import type { Selector } from '../datastore/types.js';

/**
 * A selector in SPIRE's `type:value` form, e.g. `unix:uid:1000` (type `unix`,
 * value `uid:1000`) or `k8s:pod-label:app:web` (type `k8s`, value
 * `pod-label:app:web`). The type is everything up to the first colon.
 */
export type { Selector } from '../datastore/types.js';

const TYPE = /^[a-z0-9][a-z0-9_.-]*$/;
const MAX_VALUE = 1024;

/**
 * Parses `type:value`.
 * @throws RegistrationError INVALID_ARGUMENT naming `field`.
 */
export function parseSelector(s: string, field = 'selector'): Selector {
  if (typeof s !== 'string') throw invalid(field, 'must be a string of the form type:value');
  const i = s.indexOf(':');
  if (i <= 0) throw invalid(field, `"${s}" must be of the form type:value (e.g. unix:uid:1000, k8s:ns:backend)`);
  return validateSelector({ type: s.slice(0, i), value: s.slice(i + 1) }, field);
}

/** Checks a selector's parts. @throws RegistrationError INVALID_ARGUMENT */
export function validateSelector(sel: Selector, field = 'selector'): Selector {
  if (sel === null || typeof sel !== 'object' || typeof sel.type !== 'string' || typeof sel.value !== 'string') {
    throw invalid(field, 'must have a string type and value');
  }
  if (!TYPE.test(sel.type)) throw invalid(field, `selector type "${sel.type}" must be lowercase letters, digits, '.', '_' or '-'`);
  if (sel.value.length === 0) throw invalid(field, `selector "${sel.type}:" has an empty value`);
  if (sel.value.length > MAX_VALUE) throw invalid(field, `selector value longer than ${MAX_VALUE} characters`);
  if (/[\u0000-\u001f\u007f]/.test(sel.value)) throw invalid(field, 'selector value contains control characters');
  return { type: sel.type, value: sel.value };
}

/** `type:value`. */
export function formatSelector(sel: Selector): string {
  return `${sel.type}:${sel.value}`;
}

/** Sorted, de-duplicated copy (the canonical form stored and compared). */
export function normalizeSelectors(sels: readonly Selector[]): Selector[] {
  const seen = new Map<string, Selector>();
  for (const s of sels) seen.set(formatSelector(s), { type: s.type, value: s.value });
  return [...seen.keys()].sort().map((k) => seen.get(k)!);
}

/** Whether every selector of `required` is among `available` (SPIRE's subset match). */
export function selectorsSubsetOf(required: readonly Selector[], available: ReadonlySet<string> | readonly Selector[]): boolean {
  const set = available instanceof Set ? available : new Set((available as readonly Selector[]).map(formatSelector));
  for (const r of required) if (!set.has(formatSelector(r))) return false;
  return true;
}

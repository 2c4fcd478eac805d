import { SpiffeId, TrustDomain } from '@tessera/spiffe/id';
import { invalid } from './errors.js';
import { normalizeSelectors, validateSelector } from './selector.js';
import type { EntryInput } from '../datastore/types.js';

/** The entry shapes are the datastore's: one definition, SPIRE's fields. */
export type { RegistrationEntry, EntryInput } from '../datastore/types.js';

export type NormalizedEntryInput = Required<Omit<EntryInput, 'expiresAt'>> & { expiresAt: number };

/** Longest TTL an entry may ask for (SPIRE has no hard cap; a year stops typos such as ms for s). */
export const MAX_TTL_SECONDS = 366 * 24 * 3600;
const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;
const MAX_HINT = 1024;

function ttl(v: unknown, field: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(field, 'must be a non-negative whole number of seconds');
  if (v > MAX_TTL_SECONDS) throw invalid(field, `must be at most ${MAX_TTL_SECONDS} seconds`);
  return v;
}

function idIn(td: TrustDomain, v: unknown, field: string, allowRoot: boolean): string {
  if (typeof v !== 'string' || v.length === 0) throw invalid(field, 'is required');
  let id: SpiffeId;
  try {
    id = SpiffeId.parse(v);
  } catch (e) {
    throw invalid(field, `"${v}": ${(e as Error).message}`);
  }
  if (!id.memberOf(td)) throw invalid(field, `"${v}" is not in trust domain "${td.name}"`);
  if (!allowRoot && id.isRoot()) throw invalid(field, `"${v}" must have a path`);
  return id.toString();
}

/** Whether `name` is a valid DNS name (optionally a leading `*.` wildcard), as SPIRE accepts for `-dns`. */
export function isDnsName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  return labels.every((l, i) => (i === 0 && l === '*' && labels.length > 1) || DNS_LABEL.test(l));
}

/**
 * Validates and normalizes an entry (SPIRE's rules): SPIFFE ID and parent ID
 * valid and in the server's trust domain, the ID with a path; at least one
 * selector, each `type:value`; TTLs whole seconds; federated trust domains
 * valid and not our own; DNS names valid; expiry a time in seconds.
 * @throws RegistrationError INVALID_ARGUMENT naming the field.
 */
export function validateEntryInput(input: EntryInput, trustDomain: TrustDomain): NormalizedEntryInput {
  if (input === null || typeof input !== 'object') throw invalid('entry', 'must be an object');
  const spiffeId = idIn(trustDomain, input.spiffeId, 'spiffeId', false);
  const parentId = idIn(trustDomain, input.parentId, 'parentId', false);
  if (spiffeId === parentId) throw invalid('parentId', 'an entry cannot be its own parent');
  if (!Array.isArray(input.selectors) || input.selectors.length === 0) throw invalid('selectors', 'at least one selector is required');
  const selectors = normalizeSelectors(input.selectors.map((s, i) => validateSelector(s, `selectors[${i}]`)));
  const federatesWith = [...new Set((input.federatesWith ?? []).map((t, i) => {
    let td: TrustDomain;
    try {
      td = TrustDomain.parse(t);
    } catch (e) {
      throw invalid(`federatesWith[${i}]`, `"${String(t)}": ${(e as Error).message}`);
    }
    if (td.equals(trustDomain)) throw invalid(`federatesWith[${i}]`, `cannot federate with the server's own trust domain "${td.name}"`);
    return td.name;
  }))].sort();
  const dnsNames = [...new Set((input.dnsNames ?? []).map((d, i) => {
    if (typeof d !== 'string' || !isDnsName(d)) throw invalid(`dnsNames[${i}]`, `"${String(d)}" is not a valid DNS name`);
    return d.toLowerCase();
  }))];
  const hint = input.hint ?? '';
  if (typeof hint !== 'string' || hint.length > MAX_HINT) throw invalid('hint', `must be a string of at most ${MAX_HINT} characters`);
  const expiresAt = input.expiresAt ?? 0;
  if (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt) || expiresAt < 0) throw invalid('expiresAt', 'must be epoch seconds');
  for (const flag of ['admin', 'downstream'] as const) {
    if (input[flag] !== undefined && typeof input[flag] !== 'boolean') throw invalid(flag, 'must be a boolean');
  }
  return {
    spiffeId,
    parentId,
    selectors,
    x509SvidTtl: ttl(input.x509SvidTtl, 'x509SvidTtl'),
    jwtSvidTtl: ttl(input.jwtSvidTtl, 'jwtSvidTtl'),
    federatesWith,
    dnsNames,
    admin: input.admin ?? false,
    downstream: input.downstream ?? false,
    hint,
    expiresAt,
  };
}

/**
 * Federation relationships as the CLI sends them, from flags or from
 * SPIRE's `federation create|update -data` file:
 *
 * ```json
 * {"federationRelationships": [
 *   {"trustDomain": "b.test", "bundleEndpointURL": "https://b.example:8443",
 *    "bundleEndpointProfile": "https_spiffe", "endpointSPIFFEID": "spiffe://b.test/tessera/server",
 *    "trustDomainBundle": {"keys": [...]}, "trustDomainBundleFormat": "spiffe"}
 * ]}
 * ```
 *
 * Every relationship of a file is checked (and its bundle parsed) before
 * anything is sent, so a bad file creates nothing.
 */
import { dirname, resolve } from 'node:path';
import { SpiffeBundle, X509Bundle } from '@tessera/spiffe/bundle';
import type { TrustDomain } from '@tessera/spiffe/id';
import { validateRelationship } from '../../server/federation/relationship.js';
import { CommandError } from '../errors.js';
import { readFileOrStdin } from './server-flags.js';

/** A relationship ready to send; `trustDomainBundle` is SPIFFE bundle JSON, '' for none. */
export interface RelationshipRequest {
  readonly trustDomain: string;
  readonly bundleEndpointUrl: string;
  readonly profile: string;
  readonly endpointSpiffeId: string;
  readonly trustDomainBundle: string;
}

/**
 * A bootstrap bundle in `format` (SPIRE's `pem` or `spiffe`) as SPIFFE bundle JSON, parsed here so a
 * broken one is reported before anything is sent.
 * @param source - where it came from, for the message (`"b.pem"`, `standard input`).
 * @throws {@link CommandError} `cannot parse the PEM bundle from <source>: …`
 */
export function parseTrustDomainBundle(td: TrustDomain, data: Uint8Array, format: string, source: string): string {
  let b: SpiffeBundle;
  try {
    b = format === 'spiffe' ? SpiffeBundle.parse(td, data) : SpiffeBundle.fromX509Bundle(X509Bundle.parse(td, data));
    if (b.isEmpty()) throw new Error(format === 'pem' ? 'it holds no certificate' : 'it holds no authority');
  } catch (e) {
    const looksJson = format === 'pem' && Buffer.from(data).toString('utf8').trimStart().startsWith('{');
    const hint = looksJson ? ' (it looks like SPIFFE bundle JSON: add -trustDomainBundleFormat spiffe)' : '';
    throw new CommandError(`cannot parse the ${format === 'spiffe' ? 'SPIFFE bundle' : 'PEM bundle'} from ${source}: ${(e as Error).message}${hint}`);
  }
  return b.marshal();
}

class DataError extends Error {}

/** SPIRE's field names, folded (no underscores, lower case): Go's JSON decoder matches keys case-insensitively. */
const FIELDS = {
  trustdomain: 'trustDomain',
  bundleendpointurl: 'bundleEndpointUrl',
  bundleendpointprofile: 'profile',
  endpointspiffeid: 'endpointSpiffeId',
  trustdomainbundle: 'trustDomainBundle',
  trustdomainbundleformat: 'trustDomainBundleFormat',
  trustdomainbundlepath: 'trustDomainBundlePath',
} as const;

type Field = (typeof FIELDS)[keyof typeof FIELDS];

const fold = (key: string): string => key.replaceAll('_', '').toLowerCase();

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** One item of the file, checked; its bundle read from `trustDomainBundlePath` (relative to the file) when given. */
async function readItem(raw: unknown, at: string, baseDir: string): Promise<RelationshipRequest> {
  if (!isObject(raw)) throw new DataError(`${at} must be an object`);
  const v: Partial<Record<Field, unknown>> = {};
  const seen = new Map<Field, string>();
  for (const [key, value] of Object.entries(raw)) {
    const field = (FIELDS as Record<string, Field | undefined>)[fold(key)];
    if (field === undefined) throw new DataError(`${at}: unknown field "${key}"`);
    const other = seen.get(field);
    if (other !== undefined) throw new DataError(`${at}: "${other}" and "${key}" are the same field; give one`);
    seen.set(field, key);
    v[field] = value;
  }
  const str = (field: Field, name: string): string => {
    const x = v[field] ?? '';
    if (typeof x !== 'string') throw new DataError(`${at}.${name} must be a string`);
    return x;
  };
  const input = {
    trustDomain: str('trustDomain', 'trustDomain'),
    bundleEndpointUrl: str('bundleEndpointUrl', 'bundleEndpointURL'),
    profile: str('profile', 'bundleEndpointProfile'),
    endpointSpiffeId: str('endpointSpiffeId', 'endpointSPIFFEID'),
  };
  let td: TrustDomain;
  try {
    td = validateRelationship(input).trustDomain;
  } catch (e) {
    throw new DataError(`${at}: ${(e as Error).message}`);
  }
  const format = str('trustDomainBundleFormat', 'trustDomainBundleFormat') || 'pem';
  if (format !== 'pem' && format !== 'spiffe') throw new DataError(`${at}.trustDomainBundleFormat must be "pem" or "spiffe", got ${JSON.stringify(format)}`);
  const path = str('trustDomainBundlePath', 'trustDomainBundlePath');
  const inline = v.trustDomainBundle;
  if (path !== '' && inline !== undefined) throw new DataError(`${at}: give trustDomainBundle or trustDomainBundlePath, not both`);
  let trustDomainBundle = '';
  if (path !== '') {
    const file = resolve(baseDir, path);
    trustDomainBundle = parseTrustDomainBundle(td, await readFileOrStdin(file, 'trust domain bundle'), format, `"${file}" (${at})`);
  } else if (inline !== undefined) {
    // SPIRE's shapes: PEM as one string; a SPIFFE bundle as the JSON object itself (a string of it is taken too).
    let text: string;
    if (typeof inline === 'string') text = inline;
    else if (format === 'spiffe' && isObject(inline)) text = JSON.stringify(inline);
    else throw new DataError(`${at}.trustDomainBundle must be ${format === 'pem' ? 'a string of PEM certificates' : 'a SPIFFE bundle (JSON object)'}`);
    trustDomainBundle = parseTrustDomainBundle(td, Buffer.from(text), format, `${at}.trustDomainBundle`);
  }
  return { ...input, trustDomain: td.name, trustDomainBundle };
}

/**
 * The relationships of a `-data` file (`-` reads standard input), every one checked.
 * @throws {@link CommandError} one line: `cannot parse federation relationships "<file>": <what and where>`
 */
export async function readRelationshipsFile(file: string): Promise<RelationshipRequest[]> {
  const where = file === '-' ? 'from standard input' : `"${file}"`;
  const fail = (msg: string) => new CommandError(`cannot parse federation relationships ${where}: ${msg}`);
  const data = await readFileOrStdin(file, 'federation relationships');
  let doc: unknown;
  try {
    doc = JSON.parse(data.toString('utf8'));
  } catch (e) {
    throw fail(`invalid JSON: ${(e as Error).message}`);
  }
  if (!isObject(doc)) throw fail('expected an object with a "federationRelationships" array');
  let list: unknown;
  for (const [k, value] of Object.entries(doc)) {
    if (fold(k) === 'federationrelationships') list = value;
    else if (fold(k) !== 'nextpagetoken') throw fail(`unknown field "${k}"`);
  }
  if (!Array.isArray(list)) throw fail('expected an object with a "federationRelationships" array');
  if (list.length === 0) throw fail('"federationRelationships" is empty');
  const baseDir = file === '-' ? process.cwd() : dirname(resolve(file));
  const out: RelationshipRequest[] = [];
  const firstAt = new Map<string, number>();
  try {
    for (const [i, raw] of list.entries()) {
      const at = `federationRelationships[${i}]`;
      const r = await readItem(raw, at, baseDir);
      const j = firstAt.get(r.trustDomain);
      if (j !== undefined) throw new DataError(`${at}: trust domain "${r.trustDomain}" is also federationRelationships[${j}]`);
      firstAt.set(r.trustDomain, i);
      out.push(r);
    }
  } catch (e) {
    if (e instanceof DataError) throw fail(e.message);
    throw e;
  }
  return out;
}

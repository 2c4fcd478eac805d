/**
 * `tessera server entry create|show|update|delete|count`: registration
 * entries over the Admin API, with SPIRE's flags, output and batch-failure
 * reporting, so `spire-server entry …` command lines work unchanged.
 */
import { clone, create } from '@bufbuild/protobuf';
import { SpiffeId, TrustDomain } from '@tessera/spiffe/id';
import {
  BatchCreateEntryResponseSchema,
  BatchDeleteEntryResponseSchema,
  type BatchDeleteEntryResponse,
  BatchUpdateEntryResponseSchema,
  CountEntriesResponseSchema,
  EntryFilterSchema,
  ListEntriesResponseSchema,
  type EntryFilter,
} from '../../gen/tessera/v1/admin_pb.js';
import { EntrySchema, SelectorSchema, type Entry, type Selector, type Status } from '../../gen/tessera/v1/types_pb.js';
import { serverId } from '../../server/registration/index.js';
import type { Command, CommandContext, CommandGroup, OutputStream } from '../command.js';
import { CommandError, ExitCode, UsageError } from '../errors.js';
import type { FlagSpec, ParsedFlags } from '../flags.js';
import { SOCKET_PATH_FLAG, codeName, connectServer, type ServerConnection } from '../server-client.js';
import { formatTime } from '../time-format.js';
import {
  OUTPUT_FLAG,
  parseEpochSeconds,
  parseSeconds,
  parseSelectors,
  plural,
  readFileOrStdin,
  wantsJson,
  writeJson,
} from './server-flags.js';

/** Entries asked for per ListEntries call. */
const PAGE_SIZE = 500;

// ---------------------------------------------------------------- printing

function line(label: string, value: string | number | bigint | boolean): string {
  return `${label.padEnd(17)}: ${value}\n`;
}

/** One entry as SPIRE prints it, followed by a blank line. */
export function formatEntry(e: Entry): string {
  let s = line('Entry ID', e.id === '' ? '(none)' : e.id);
  s += line('SPIFFE ID', e.spiffeId);
  s += line('Parent ID', e.parentId);
  s += line('Revision', e.revisionNumber);
  if (e.downstream) s += line('Downstream', true);
  s += line('X509-SVID TTL', e.x509SvidTtl === 0 ? 'default' : e.x509SvidTtl);
  s += line('JWT-SVID TTL', e.jwtSvidTtl === 0 ? 'default' : e.jwtSvidTtl);
  if (e.expiresAt !== 0n) s += line('Expiration time', formatTime(new Date(Number(e.expiresAt) * 1000)));
  for (const sel of e.selectors) s += line('Selector', `${sel.type}:${sel.value}`);
  for (const td of e.federatesWith) s += line('FederatesWith', td);
  for (const dns of e.dnsNames) s += line('DNS name', dns);
  // Rarely set: shown only when true, as SPIRE does, to keep the common case short.
  if (e.admin) s += line('Admin', true);
  if (e.hint !== '') s += line('Hint', e.hint);
  return s + '\n';
}

/** Per-item failure of a batch call, SPIRE's way: the item, then why. */
function formatFailure(verb: string, e: Entry, status: Status | undefined): string {
  const reason = status === undefined ? 'no status returned' : `${status.message.replace(/\s*\n\s*/g, ' ') || 'no message'} (code: ${codeName(status.code)})`;
  return `FAILED to ${verb} the following entry:\n${formatEntry(e)}Reason: ${reason}\n`;
}

function isOk(status: Status | undefined): boolean {
  return status !== undefined && status.code === 0;
}

// ---------------------------------------------------------------- flags

/** The settable fields of an entry, by the names the update mask uses. */
type EntryField = 'spiffeId' | 'parentId' | 'selectors' | 'x509SvidTtl' | 'jwtSvidTtl' | 'federatesWith' | 'dnsNames' | 'admin' | 'downstream' | 'hint' | 'expiresAt';

const ENTRY_FLAGS: readonly FlagSpec[] = [
  { name: 'spiffe-id', kind: 'string', valueName: 'id', description: 'The SPIFFE ID that this entry represents' },
  { name: 'parent-id', kind: 'string', valueName: 'id', description: "The SPIFFE ID of this entry's parent (an agent, or another entry's SPIFFE ID)" },
  { name: 'selector', kind: 'string', valueName: 'type:value', multiple: true, description: 'A colon-delimited type:value selector, e.g. k8s:ns:backend' },
  { name: 'x509-svid-ttl', kind: 'string', valueName: 'seconds', description: 'Lifetime of X509-SVIDs issued for this entry (0: the server default)' },
  { name: 'ttl', kind: 'string', valueName: 'seconds', description: "SPIRE's older spelling of -x509SVIDTTL" },
  { name: 'jwt-svid-ttl', kind: 'string', valueName: 'seconds', description: 'Lifetime of JWT-SVIDs issued for this entry (0: the server default)' },
  { name: 'dns', kind: 'string', valueName: 'name', multiple: true, description: 'A DNS name to include in X509-SVIDs issued for this entry' },
  { name: 'federates-with', kind: 'string', valueName: 'td', multiple: true, description: "A trust domain whose bundle this entry's workloads receive (spiffe://td or td)" },
  { name: 'admin', kind: 'boolean', description: "Grant this entry's SPIFFE ID access to the Admin API" },
  { name: 'downstream', kind: 'boolean', description: 'The entry describes a downstream server' },
  { name: 'node', kind: 'boolean', description: "A node alias entry: its parent is the server (spiffe://<td>/tessera/server) and its selectors match agents' node selectors" },
  { name: 'hint', kind: 'string', valueName: 'hint', description: 'A hint for workloads to tell several SVIDs apart' },
  { name: 'entry-expiry', kind: 'string', valueName: 'epoch-seconds', description: 'When the entry stops being served (seconds since the epoch; 0: never)' },
];

const DATA_FLAG: FlagSpec = {
  name: 'data',
  kind: 'string',
  valueName: 'file',
  description: "A JSON file of entries, SPIRE's format ({\"entries\": [...]}); '-' reads standard input",
};

/** Entry fields given on the command line, and which fields they are. */
interface EntryFlags {
  readonly values: Partial<Pick<Entry, EntryField>>;
  readonly mask: EntryField[];
  /** `-node`: the parent is the server of the entry's trust domain, known once the SPIFFE ID is. */
  readonly node: boolean;
}

/** Reads the entry flags, checking every value before anything is sent. */
function readEntryFlags(flags: ParsedFlags): EntryFlags {
  const values: Partial<Pick<Entry, EntryField>> = {};
  const mask: EntryField[] = [];
  const set = <K extends EntryField>(k: K, v: Entry[K]): void => {
    values[k] = v;
    mask.push(k);
  };
  const spiffeId = flags.string('spiffe-id');
  if (spiffeId !== undefined) set('spiffeId', spiffeId);
  const node = flags.boolean('node');
  const parentId = flags.string('parent-id');
  if (node && parentId !== undefined) throw new UsageError('-node and -parentID cannot be combined: the parent of a node alias entry is the server');
  if (node && flags.strings('federates-with').length > 0) throw new UsageError('node entries can not federate: drop -federatesWith or -node');
  if (parentId !== undefined) set('parentId', parentId);
  if (flags.has('selector')) set('selectors', parseSelectors(flags.strings('selector')));
  const ttl = flags.string('ttl');
  const x509Ttl = flags.string('x509-svid-ttl');
  if (ttl !== undefined && x509Ttl !== undefined) throw new UsageError('use -x509SVIDTTL or -ttl, not both');
  if (x509Ttl !== undefined) set('x509SvidTtl', parseSeconds(x509Ttl, 'x509SVIDTTL'));
  if (ttl !== undefined) set('x509SvidTtl', parseSeconds(ttl, 'ttl'));
  const jwtTtl = flags.string('jwt-svid-ttl');
  if (jwtTtl !== undefined) set('jwtSvidTtl', parseSeconds(jwtTtl, 'jwtSVIDTTL'));
  if (flags.has('dns')) set('dnsNames', flags.strings('dns'));
  if (flags.has('federates-with')) set('federatesWith', flags.strings('federates-with'));
  if (flags.has('admin')) set('admin', flags.boolean('admin'));
  if (flags.has('downstream')) set('downstream', flags.boolean('downstream'));
  const hint = flags.string('hint');
  if (hint !== undefined) set('hint', hint);
  const expiry = flags.string('entry-expiry');
  if (expiry !== undefined) set('expiresAt', parseEpochSeconds(expiry, 'entryExpiry'));
  return { values, mask, node };
}

/** `spiffe://<td>/tessera/server`, the parent of node alias entries, for the trust domain of `spiffeId`. */
function nodeParentId(spiffeId: string): string {
  try {
    return serverId(SpiffeId.parse(spiffeId).trustDomain.name);
  } catch (e) {
    throw new CommandError(`invalid -spiffeID "${spiffeId}": ${(e as Error).message}`);
  }
}

function usedEntryFlags(flags: ParsedFlags): string[] {
  return ENTRY_FLAGS.filter((f) => flags.has(f.name)).map((f) => `--${f.name}`);
}

// ---------------------------------------------------------------- -data files

const JSON_KEYS: Record<string, EntryField | 'id' | 'revisionNumber' | 'createdAt' | 'storeSvid'> = {
  id: 'id',
  entryid: 'id',
  spiffeid: 'spiffeId',
  parentid: 'parentId',
  selectors: 'selectors',
  x509svidttl: 'x509SvidTtl',
  ttl: 'x509SvidTtl',
  jwtsvidttl: 'jwtSvidTtl',
  federateswith: 'federatesWith',
  dnsnames: 'dnsNames',
  admin: 'admin',
  downstream: 'downstream',
  hint: 'hint',
  expiresat: 'expiresAt',
  entryexpiry: 'expiresAt',
  revisionnumber: 'revisionNumber',
  createdat: 'createdAt',
  storesvid: 'storeSvid',
};

class DataError extends Error {}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A SPIFFE ID as a string, or as SPIRE's JSON object `{"trust_domain": …, "path": …}`. */
function jsonId(v: unknown, at: string): string {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v['trust_domain'] === 'string') {
    const path = v['path'] ?? '';
    if (typeof path !== 'string') throw new DataError(`${at}.path must be a string`);
    return `spiffe://${v['trust_domain']}${path}`;
  }
  throw new DataError(`${at} must be a SPIFFE ID string or {"trust_domain": …, "path": …}`);
}

/** A whole number, also as protojson writes 64-bit integers: a string of digits. */
function jsonInt(v: unknown, at: string): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new DataError(`${at} must be a non-negative whole number`);
  return n;
}

function jsonStrings(v: unknown, at: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new DataError(`${at} must be an array of strings`);
  return v as string[];
}

function jsonSelectors(v: unknown, at: string): Selector[] {
  if (!Array.isArray(v)) throw new DataError(`${at} must be an array of {"type": …, "value": …}`);
  return v.map((s: unknown, i) => {
    if (typeof s === 'string') {
      const colon = s.indexOf(':');
      if (colon <= 0) throw new DataError(`${at}[${i}]: "${s}" must be of the form type:value`);
      return create(SelectorSchema, { type: s.slice(0, colon), value: s.slice(colon + 1) });
    }
    if (!isObject(s) || typeof s['type'] !== 'string' || typeof s['value'] !== 'string') throw new DataError(`${at}[${i}] must be {"type": …, "value": …}`);
    return create(SelectorSchema, { type: s['type'], value: s['value'] });
  });
}

function jsonBool(v: unknown, at: string): boolean {
  if (typeof v !== 'boolean') throw new DataError(`${at} must be true or false`);
  return v;
}

/**
 * Entries of a `-data` file: `{"entries": [...]}` with SPIRE's field names
 * (`spiffe_id`, `parent_id`, `selectors`, `x509_svid_ttl`, `jwt_svid_ttl`,
 * `federates_with`, `dns_names`, `admin`, `downstream`, `hint`,
 * `entryExpiry`/`expires_at`; camelCase works too). IDs may be strings or
 * SPIRE's `{trust_domain, path}` objects, so `entry show -output json`
 * output can be fed back. Unknown fields are errors.
 */
function parseEntriesJson(data: Buffer, file: string, purpose: 'create' | 'update'): Entry[] {
  const fail = (msg: string) => new CommandError(`cannot parse entry data ${file === '-' ? 'from standard input' : `"${file}"`}: ${msg}`);
  let doc: unknown;
  try {
    doc = JSON.parse(data.toString('utf8'));
  } catch (e) {
    throw fail(`invalid JSON: ${(e as Error).message}`);
  }
  if (!isObject(doc) || !Array.isArray(doc['entries'])) throw fail('expected an object with an "entries" array');
  for (const k of Object.keys(doc)) if (k !== 'entries' && k !== 'next_page_token' && k !== 'nextPageToken') throw fail(`unknown field "${k}"`);
  const list = doc['entries'] as unknown[];
  if (list.length === 0) throw fail('"entries" is empty');
  try {
    return list.map((raw, i) => {
      const at = `entries[${i}]`;
      if (!isObject(raw)) throw new DataError(`${at} must be an object`);
      const e = create(EntrySchema, {});
      const seen = new Map<string, string>();
      for (const [key, v] of Object.entries(raw)) {
        const field = JSON_KEYS[key.replaceAll('_', '').toLowerCase()];
        if (field === undefined) throw new DataError(`${at}: unknown field "${key}"`);
        const other = seen.get(field);
        if (other !== undefined) throw new DataError(`${at}: "${other}" and "${key}" are the same field; give one`);
        seen.set(field, key);
        const fat = `${at}.${key}`;
        switch (field) {
          case 'id':
            if (typeof v !== 'string') throw new DataError(`${fat} must be a string`);
            if (purpose === 'create' && v !== '') throw new DataError(`${fat}: the server assigns entry IDs; remove "${key}" to create the entry`);
            e.id = v;
            break;
          case 'spiffeId':
            e.spiffeId = jsonId(v, fat);
            break;
          case 'parentId':
            e.parentId = jsonId(v, fat);
            break;
          case 'selectors':
            e.selectors = jsonSelectors(v, fat);
            break;
          case 'x509SvidTtl':
            e.x509SvidTtl = jsonInt(v, fat);
            break;
          case 'jwtSvidTtl':
            e.jwtSvidTtl = jsonInt(v, fat);
            break;
          case 'federatesWith':
            e.federatesWith = jsonStrings(v, fat);
            break;
          case 'dnsNames':
            e.dnsNames = jsonStrings(v, fat);
            break;
          case 'admin':
            e.admin = jsonBool(v, fat);
            break;
          case 'downstream':
            e.downstream = jsonBool(v, fat);
            break;
          case 'hint':
            if (typeof v !== 'string') throw new DataError(`${fat} must be a string`);
            e.hint = v;
            break;
          case 'expiresAt':
            e.expiresAt = BigInt(jsonInt(v, fat));
            break;
          case 'storeSvid':
            if (jsonBool(v, fat)) throw new DataError(`${fat}: tessera does not store SVIDs for entries; remove it`);
            break;
          case 'revisionNumber':
            // Sent on update so a concurrent change is refused rather than overwritten.
            e.revisionNumber = BigInt(jsonInt(v, fat));
            break;
          case 'createdAt':
            // Read-only, present in `entry show -output json`.
            break;
        }
      }
      if (purpose === 'update' && e.id === '') throw new DataError(`${at}: "id" is required to update an entry`);
      return e;
    });
  } catch (e) {
    if (e instanceof DataError) throw fail(e.message);
    throw e;
  }
}

// ---------------------------------------------------------------- filters

const FILTER_FLAGS: readonly FlagSpec[] = [
  { name: 'spiffe-id', kind: 'string', valueName: 'id', description: 'Only entries with this SPIFFE ID' },
  { name: 'parent-id', kind: 'string', valueName: 'id', description: 'Only entries with this parent ID' },
  { name: 'selector', kind: 'string', valueName: 'type:value', multiple: true, description: 'Only entries whose selectors match these (see -matchSelectorsOn)' },
  {
    name: 'match-selectors-on',
    kind: 'string',
    valueName: 'mode',
    choices: ['exact', 'subset', 'superset', 'any'],
    default: 'superset',
    description: "How -selector matches: the entry's selectors are exactly, a subset of, a superset of, or share any with the given ones",
  },
  { name: 'federates-with', kind: 'string', valueName: 'td', multiple: true, description: 'Only entries federated with these trust domains' },
  { name: 'hint', kind: 'string', valueName: 'hint', description: 'Only entries with this hint' },
  { name: 'downstream', kind: 'boolean', description: 'Only downstream entries' },
];

function normalizeId(value: string, flag: string): string {
  try {
    return SpiffeId.parse(value).toString();
  } catch (e) {
    throw new UsageError(`invalid value "${value}" for -${flag}: ${(e as Error).message}`);
  }
}

function readFilter(flags: ParsedFlags): EntryFilter {
  const f = create(EntryFilterSchema, {});
  const spiffeId = flags.string('spiffe-id');
  if (spiffeId !== undefined) f.bySpiffeId = normalizeId(spiffeId, 'spiffeID');
  const parentId = flags.string('parent-id');
  if (parentId !== undefined) f.byParentId = normalizeId(parentId, 'parentID');
  f.bySelectors = parseSelectors(flags.strings('selector'));
  f.selectorMatch = flags.string('match-selectors-on') ?? 'superset';
  f.byFederatesWith = flags.strings('federates-with').map((td) => {
    try {
      return TrustDomain.parse(td).name;
    } catch (e) {
      throw new UsageError(`invalid value "${td}" for -federatesWith: ${(e as Error).message}`);
    }
  });
  f.byHint = flags.string('hint') ?? '';
  f.byDownstream = flags.boolean('downstream');
  return f;
}

/** Every entry the filter matches, following pages to the end. */
async function listAll(server: ServerConnection, filter: EntryFilter): Promise<Entry[]> {
  const entries: Entry[] = [];
  let pageToken = '';
  do {
    const page = await server.call('cannot list entries', () => server.entries.listEntries({ filter, pageSize: PAGE_SIZE, pageToken }));
    entries.push(...page.entries);
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return entries;
}

function writeEntries(out: OutputStream, entries: readonly Entry[]): void {
  out.write(`Found ${plural(entries.length, 'entry', 'entries')}\n`);
  for (const e of entries) out.write(formatEntry(e));
}

// ---------------------------------------------------------------- commands

const createCommand: Command = {
  name: 'create',
  summary: 'Create registration entries',
  description: [
    'Creates a registration entry from the flags, or every entry of a -data file (SPIRE\'s JSON format).',
    'Entries that the server refuses are printed on stderr as "FAILED to create the following entry:",',
    'followed by the entry and the reason; the exit code is then 1.',
    '',
    '-node makes a node alias entry: its parent is the server, spiffe://<td>/tessera/server, where <td>',
    "is the trust domain of -spiffeID, and its selectors are matched against agents' node selectors.",
  ].join('\n'),
  flags: [...ENTRY_FLAGS, DATA_FLAG, OUTPUT_FLAG, SOCKET_PATH_FLAG],
  examples: [
    'tessera server entry create -spiffeID spiffe://cluster.local/ns/backend/sa/default -parentID spiffe://cluster.local/spire/agent/k8s/cluster.local/kubelet -selector k8s:ns:backend -selector k8s:sa:default -ttl 3600',
    'tessera server entry create -node -spiffeID spiffe://cluster.local/nodes/worker -selector join_token:abc',
    'tessera server entry create -data entries.json',
  ],
  async run({ io, flags }: CommandContext): Promise<number> {
    const dataFile = flags.string(DATA_FLAG.name);
    let entries: Entry[];
    if (dataFile !== undefined) {
      const used = usedEntryFlags(flags);
      if (used.length > 0) throw new UsageError(`-data cannot be combined with ${used.join(', ')}: the file gives every field`);
      entries = parseEntriesJson(await readFileOrStdin(dataFile, 'entry data'), dataFile, 'create');
    } else {
      const { values, node } = readEntryFlags(flags);
      if (values.spiffeId === undefined) throw new UsageError('a SPIFFE ID is required: give -spiffeID');
      if (values.parentId === undefined && !node) throw new UsageError('a parent ID is required if the node flag is not set: give -parentID (or -node)');
      if (values.selectors === undefined) throw new UsageError('at least one selector is required: give -selector type:value');
      const entry = create(EntrySchema, values);
      if (node) entry.parentId = nodeParentId(entry.spiffeId);
      entries = [entry];
    }

    const server = connectServer(flags);
    const resp = await server.call('cannot create entries', () => server.entries.batchCreateEntry({ entries }));
    // As SPIRE does, show a refused entry as it was sent: the result carries none.
    resp.results.forEach((r, i) => {
      if (!isOk(r.status) && r.entry === undefined && entries[i] !== undefined) r.entry = entries[i];
    });
    const failed = resp.results.filter((r) => !isOk(r.status));
    if (wantsJson(flags)) {
      writeJson(io.stdout, BatchCreateEntryResponseSchema, resp);
    } else {
      for (const r of resp.results) if (isOk(r.status) && r.entry !== undefined) io.stdout.write(formatEntry(r.entry));
      for (const r of failed) io.stderr.write(formatFailure('create', r.entry ?? create(EntrySchema, {}), r.status));
    }
    return failed.length > 0 || resp.results.length !== entries.length ? ExitCode.failure : ExitCode.ok;
  },
};

const showCommand: Command = {
  name: 'show',
  summary: 'Display registration entries',
  description: [
    'Shows the entries matching every filter given (all entries when none is), or the one entry',
    '-entryID names. Selectors match as -matchSelectorsOn says; the default, superset, finds the',
    'entries that have at least the given selectors.',
  ].join('\n'),
  flags: [{ name: 'entry-id', kind: 'string', valueName: 'id', description: 'The entry to show' }, ...FILTER_FLAGS, OUTPUT_FLAG, SOCKET_PATH_FLAG],
  examples: [
    'tessera server entry show',
    'tessera server entry show -parentID spiffe://cluster.local/tessera/server',
    'tessera server entry show -selector k8s:ns:backend -output json',
  ],
  async run({ io, flags }: CommandContext): Promise<number> {
    const entryId = flags.string('entry-id');
    let entries: Entry[];
    if (entryId !== undefined) {
      const others = FILTER_FLAGS.filter((f) => f.name !== 'match-selectors-on' && flags.has(f.name)).map((f) => `--${f.name}`);
      if (others.length > 0) throw new UsageError(`the -entryID flag can't be combined with others (${others.join(', ')})`);
      const server = connectServer(flags);
      entries = [await server.call(`cannot fetch entry "${entryId}"`, () => server.entries.getEntry({ id: entryId }))];
    } else {
      const filter = readFilter(flags);
      const server = connectServer(flags);
      entries = await listAll(server, filter);
    }
    if (wantsJson(flags)) writeJson(io.stdout, ListEntriesResponseSchema, create(ListEntriesResponseSchema, { entries }));
    else writeEntries(io.stdout, entries);
    return ExitCode.ok;
  },
};

const updateCommand: Command = {
  name: 'update',
  summary: 'Update registration entries',
  description: [
    'Changes the fields given by flags on the entry -entryID names and leaves the others as they are;',
    'a repeatable flag (-selector, -dns, -federatesWith) replaces the whole list. The update is',
    'refused if the entry changed since it was read, so a concurrent update is never overwritten.',
    "With -data, each entry of the file (which must have an \"id\") is replaced whole, as SPIRE's",
    '-data does. Refused entries are printed as "FAILED to update the following entry:" and the exit code is 1.',
  ].join('\n'),
  flags: [{ name: 'entry-id', kind: 'string', valueName: 'id', description: 'The entry to update' }, ...ENTRY_FLAGS, DATA_FLAG, OUTPUT_FLAG, SOCKET_PATH_FLAG],
  examples: [
    'tessera server entry update -entryID 0190f4c4-… -x509SVIDTTL 600',
    'tessera server entry update -entryID 0190f4c4-… -selector k8s:ns:backend -selector k8s:sa:api',
    'tessera server entry update -data entries.json',
  ],
  async run({ io, flags }: CommandContext): Promise<number> {
    const dataFile = flags.string(DATA_FLAG.name);
    let entries: Entry[];
    let mask: EntryField[];
    let server: ServerConnection;
    if (dataFile !== undefined) {
      const used = [...usedEntryFlags(flags), ...(flags.has('entry-id') ? ['--entry-id'] : [])];
      if (used.length > 0) throw new UsageError(`-data cannot be combined with ${used.join(', ')}: the file gives every field`);
      entries = parseEntriesJson(await readFileOrStdin(dataFile, 'entry data'), dataFile, 'update');
      mask = [];
      server = connectServer(flags);
    } else {
      const entryId = flags.string('entry-id');
      if (entryId === undefined) throw new UsageError('an entry ID is required: give -entryID (or -data)');
      const changes = readEntryFlags(flags);
      if (changes.mask.length === 0 && !changes.node) {
        throw new UsageError(`nothing to update: give at least one of ${ENTRY_FLAGS.map((f) => `--${f.name}`).join(', ')}`);
      }
      server = connectServer(flags);
      const current = await server.call(`cannot fetch entry "${entryId}"`, () => server.entries.getEntry({ id: entryId }));
      const entry = clone(EntrySchema, current);
      Object.assign(entry, changes.values);
      mask = [...changes.mask];
      if (changes.node) {
        entry.parentId = nodeParentId(entry.spiffeId);
        mask.push('parentId');
      }
      entries = [entry];
    }

    const resp = await server.call('cannot update entries', () => server.entries.batchUpdateEntry({ entries, mask }));
    resp.results.forEach((r, i) => {
      if (!isOk(r.status) && r.entry === undefined && entries[i] !== undefined) r.entry = entries[i];
    });
    const failed = resp.results.filter((r) => !isOk(r.status));
    if (wantsJson(flags)) {
      writeJson(io.stdout, BatchUpdateEntryResponseSchema, resp);
    } else {
      for (const r of resp.results) if (isOk(r.status) && r.entry !== undefined) io.stdout.write(formatEntry(r.entry));
      for (const r of failed) io.stderr.write(formatFailure('update', r.entry ?? create(EntrySchema, {}), r.status));
    }
    return failed.length > 0 || resp.results.length !== entries.length ? ExitCode.failure : ExitCode.ok;
  },
};

/**
 * Entry IDs of a `-file` for `entry delete`: SPIRE's `{"ids": [...]}`, or
 * `{"entries": [{"id": …}, …]}` (`entry_id` works too) so that the output of
 * `entry show -output json` can be fed back. Unknown fields are errors.
 */
function parseDeleteIdsJson(data: Buffer, file: string): string[] {
  const fail = (msg: string) => new CommandError(`cannot parse entry IDs ${file === '-' ? 'from standard input' : `"${file}"`}: ${msg}`);
  let doc: unknown;
  try {
    doc = JSON.parse(data.toString('utf8'));
  } catch (e) {
    throw fail(`invalid JSON: ${(e as Error).message}`);
  }
  if (!isObject(doc)) throw fail('expected an object with an "ids" array (or an "entries" array of {"id": …})');
  for (const k of Object.keys(doc)) {
    if (!['ids', 'entries', 'next_page_token', 'nextPageToken'].includes(k)) throw fail(`unknown field "${k}"`);
  }
  if (doc['ids'] !== undefined && doc['entries'] !== undefined) throw fail('give "ids" or "entries", not both');
  let ids: string[];
  if (doc['ids'] !== undefined) {
    const list = doc['ids'];
    if (!Array.isArray(list)) throw fail('"ids" must be an array of entry IDs');
    ids = list.map((v: unknown, i) => {
      if (typeof v !== 'string' || v === '') throw fail(`ids[${i}] must be a non-empty string`);
      return v;
    });
  } else if (Array.isArray(doc['entries'])) {
    ids = (doc['entries'] as unknown[]).map((e, i) => {
      if (!isObject(e)) throw fail(`entries[${i}] must be an object`);
      let id: unknown;
      for (const [key, v] of Object.entries(e)) {
        const field = JSON_KEYS[key.replaceAll('_', '').toLowerCase()];
        if (field === undefined) throw fail(`entries[${i}]: unknown field "${key}"`);
        if (field === 'id') id = v;
      }
      if (typeof id !== 'string' || id === '') throw fail(`entries[${i}]: "id" must be a non-empty string`);
      return id;
    });
  } else {
    throw fail('expected an object with an "ids" array (or an "entries" array of {"id": …})');
  }
  if (ids.length === 0) throw fail('it lists no entry IDs');
  return ids;
}

const FILE_FLAG: FlagSpec = {
  name: 'file',
  kind: 'string',
  valueName: 'file',
  description: 'A JSON file of entry IDs to delete, SPIRE\'s format ({"ids": [...]}); \'-\' reads standard input',
};

/** `entry delete -file`: one line per entry as SPIRE prints them, then a summary. */
async function deleteBatch(io: CommandContext['io'], flags: ParsedFlags, file: string): Promise<number> {
  const ids = parseDeleteIdsJson(await readFileOrStdin(file, 'entry IDs'), file);
  const server = connectServer(flags);
  const results: BatchDeleteEntryResponse['results'] = [];
  for (let i = 0; i < ids.length; i += PAGE_SIZE) {
    const part = ids.slice(i, i + PAGE_SIZE);
    const resp = await server.call('cannot delete entries', () => server.entries.batchDeleteEntry({ ids: part }));
    results.push(...resp.results);
  }
  const failed = results.filter((r) => !isOk(r.status));
  if (wantsJson(flags)) {
    writeJson(io.stdout, BatchDeleteEntryResponseSchema, create(BatchDeleteEntryResponseSchema, { results }));
  } else {
    for (const r of results) if (isOk(r.status)) io.stdout.write(`Deleted entry with ID: ${r.id}\n`);
    for (const r of failed) {
      const code = r.status === undefined ? 'Unknown' : codeName(r.status.code);
      const msg = r.status?.message.replace(/\s*\n\s*/g, ' ') || 'no status returned';
      io.stderr.write(`Failed to delete entry with ID ${r.id} (code: ${code}, msg: ${JSON.stringify(msg)})\n`);
    }
    const ok = results.length - failed.length;
    if (failed.length === 0) io.stdout.write(`Deleted ${plural(ok, 'entry', 'entries')} successfully\n`);
    else if (ok === 0) io.stdout.write(`Failed to delete ${plural(failed.length, 'entry', 'entries')}\n`);
    else io.stdout.write(`Deleted ${plural(ok, 'entry', 'entries')} successfully, but failed to delete ${plural(failed.length, 'entry', 'entries')}\n`);
  }
  return failed.length > 0 || results.length !== ids.length ? ExitCode.failure : ExitCode.ok;
}

const deleteCommand: Command = {
  name: 'delete',
  summary: 'Delete registration entries',
  description: [
    'Deletes the entry -entryID names, or every entry a -file lists (SPIRE\'s {"ids": [...]}, or the',
    '"entries" of `entry show -output json`). With -file, each entry gets a line: "Deleted entry with ID: …"',
    'or, on stderr, "Failed to delete entry with ID … (code: …, msg: …)"; the exit code is 1 if any failed.',
  ].join('\n'),
  flags: [{ name: 'entry-id', kind: 'string', valueName: 'id', description: 'The entry to delete' }, FILE_FLAG, OUTPUT_FLAG, SOCKET_PATH_FLAG],
  examples: ['tessera server entry delete -entryID 0190f4c4-…', 'tessera server entry delete -file ids.json'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const file = flags.string(FILE_FLAG.name);
    const id = flags.string('entry-id');
    if (file !== undefined && id !== undefined) throw new UsageError('-entryID and -file cannot be combined: give one');
    if (file !== undefined) return deleteBatch(io, flags, file);
    if (id === undefined) throw new UsageError('an entry ID is required: give -entryID (or -file)');
    const server = connectServer(flags);
    const resp = await server.call('cannot delete entries', () => server.entries.batchDeleteEntry({ ids: [id] }));
    const result = resp.results[0];
    if (wantsJson(flags)) writeJson(io.stdout, BatchDeleteEntryResponseSchema, resp);
    if (result === undefined || !isOk(result.status)) {
      const status = result?.status;
      const reason = status === undefined ? 'no status returned' : `${status.message} (code: ${codeName(status.code)})`;
      if (!wantsJson(flags)) io.stderr.write(`FAILED to delete the entry with ID ${id}\nReason: ${reason}\n`);
      return ExitCode.failure;
    }
    if (!wantsJson(flags)) io.stdout.write(`Deleted entry with ID: ${id}\n`);
    return ExitCode.ok;
  },
};

const countCommand: Command = {
  name: 'count',
  summary: 'Count registration entries',
  description: 'Counts the entries matching every filter given (all entries when none is).',
  flags: [...FILTER_FLAGS, OUTPUT_FLAG, SOCKET_PATH_FLAG],
  examples: ['tessera server entry count', 'tessera server entry count -parentID spiffe://cluster.local/tessera/server'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const filter = readFilter(flags);
    const server = connectServer(flags);
    const resp = await server.call('cannot count entries', () => server.entries.countEntries({ filter }));
    if (wantsJson(flags)) writeJson(io.stdout, CountEntriesResponseSchema, resp);
    else io.stdout.write(`${plural(resp.count, 'registration entry', 'registration entries')}\n`);
    return ExitCode.ok;
  },
};

/** `tessera server entry …`. */
export const serverEntryCommands: CommandGroup = {
  name: 'entry',
  summary: 'Create, show, update, delete and count registration entries',
  commands: [createCommand, showCommand, updateCommand, deleteCommand, countCommand],
};

/**
 * The registry's file: every endpoint as JSON, replaced atomically (temp
 * file, fsync, rename, fsync of the directory; mode 0600) so a crash leaves
 * the previous or the next registry, never half of one, and strictly
 * checked on load so a damaged file stops the agent with a clear message
 * rather than silently dropping endpoints (and the identities of their workloads).
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../../fs/atomic-write.js';
import { endpointKey, validateEndpointSpec, type Endpoint } from './endpoint.js';
import { EndpointError } from './errors.js';

/** Name of the registry file inside the registry's directory. */
export const ENDPOINT_FILE_NAME = 'endpoints.json';
const VERSION = 1;

interface StoredEndpoint {
  name: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
  netnsPath: string;
  ip?: string;
  hostInterface?: string;
  /** 64-bit: decimal strings. */
  netnsDev: string;
  netnsIno: string;
  createdAt: string;
}

const STORED_KEYS = new Set(['name', 'namespace', 'serviceAccount', 'labels', 'netnsPath', 'ip', 'hostInterface', 'netnsDev', 'netnsIno', 'createdAt']);

function toStored(e: Endpoint): StoredEndpoint {
  return {
    name: e.name,
    namespace: e.namespace,
    serviceAccount: e.serviceAccount,
    labels: { ...e.labels },
    netnsPath: e.netnsPath,
    ...(e.ip !== undefined ? { ip: e.ip } : {}),
    ...(e.hostInterface !== undefined ? { hostInterface: e.hostInterface } : {}),
    netnsDev: e.netns.dev.toString(),
    netnsIno: e.netns.ino.toString(),
    createdAt: e.createdAt.toISOString(),
  };
}

/** The file's text for `endpoints`. */
export function encodeEndpointFile(endpoints: readonly Endpoint[]): string {
  return JSON.stringify({ version: VERSION, endpoints: endpoints.map(toStored) }, null, 2) + '\n';
}

/**
 * Parses the file's text.
 * @throws EndpointError ENDPOINT_STORE_CORRUPT naming `path` and what is wrong.
 */
export function decodeEndpointFile(text: string, path: string): Endpoint[] {
  const corrupt = (why: string, cause?: unknown) =>
    new EndpointError('ENDPOINT_STORE_CORRUPT', `endpoint registry ${path} is corrupt: ${why}; fix or remove the file (its endpoints must then be registered again)`, { cause });
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw corrupt(`not JSON (${(e as Error).message})`, e);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw corrupt('expected an object');
  const { version, endpoints } = doc as Record<string, unknown>;
  if (version !== VERSION) throw corrupt(`unsupported version ${JSON.stringify(version)} (this agent reads version ${VERSION})`);
  if (!Array.isArray(endpoints)) throw corrupt('"endpoints" must be an array');
  const seen = new Set<string>();
  return endpoints.map((raw: unknown, i): Endpoint => {
    const at = `endpoints[${i}]`;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw corrupt(`${at} must be an object`);
    const r = raw as Record<string, unknown>;
    for (const k of Object.keys(r)) if (!STORED_KEYS.has(k)) throw corrupt(`${at} has unknown field "${k}"`);
    let spec;
    try {
      spec = validateEndpointSpec(r as unknown as StoredEndpoint);
    } catch (e) {
      throw corrupt(`${at}: ${(e as Error).message}`, e);
    }
    const big = (k: 'netnsDev' | 'netnsIno'): bigint => {
      const v = r[k];
      if (typeof v !== 'string' || !/^\d{1,20}$/.test(v)) throw corrupt(`${at}.${k} must be a decimal string`);
      return BigInt(v);
    };
    const createdAt = typeof r['createdAt'] === 'string' ? new Date(r['createdAt']) : undefined;
    if (createdAt === undefined || Number.isNaN(createdAt.getTime())) throw corrupt(`${at}.createdAt must be an ISO 8601 time`);
    const key = endpointKey(spec);
    if (seen.has(key)) throw corrupt(`${at}: endpoint ${key} appears twice`);
    seen.add(key);
    return { ...spec, netns: { dev: big('netnsDev'), ino: big('netnsIno') }, createdAt };
  });
}

/**
 * Reads the registry file, synchronously (once, when the agent starts).
 * A missing file is an empty registry.
 * @throws EndpointError ENDPOINT_STORE_CORRUPT, or ENDPOINT_STORE_FAILED if it cannot be read.
 */
export function loadEndpointFile(path: string): Endpoint[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new EndpointError('ENDPOINT_STORE_FAILED', `cannot read endpoint registry ${path}: ${(e as Error).message}`, { cause: e });
  }
  return decodeEndpointFile(text, path);
}

/**
 * Replaces the registry file with `endpoints`, atomically, mode 0600.
 * @throws EndpointError ENDPOINT_STORE_FAILED (the old file is intact).
 */
export async function saveEndpointFile(path: string, endpoints: readonly Endpoint[]): Promise<void> {
  try {
    await writeFileAtomic(path, encodeEndpointFile(endpoints), 0o600);
  } catch (e) {
    throw new EndpointError('ENDPOINT_STORE_FAILED', `cannot write endpoint registry ${path}: ${(e as Error).message}; the change was not made`, { cause: e });
  }
}

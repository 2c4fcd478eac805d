/**
 * The CA's persistent state — X.509 and JWT slots and the last published
 * bundle — and its JSON form in the {@link CaJournal}. Private keys are not
 * in it: slots name their key by key-manager ID.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { SpiffeBundle } from '@tessera/spiffe/bundle';
import type { TrustDomain } from '@tessera/spiffe/id';
import { CaError } from './errors.js';
import type { Slots } from './rotation.js';
import { x509Authority, type X509Authority } from './x509-ca.js';

/** A JWT signing key of the trust domain (JWT-SVID §2; its `kid` is published in the bundle). */
export interface JwtAuthority {
  /** The key manager's ID of the private key. */
  readonly keyId: string;
  /** `kid`: random 128-bit hex. */
  readonly kid: string;
  readonly publicKey: KeyObject;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface CaState {
  readonly x509: Slots<X509Authority>;
  readonly jwt: Slots<JwtAuthority>;
  /** The bundle published last (with its `spiffe_sequence`). */
  readonly bundle: SpiffeBundle | undefined;
}

export const EMPTY_STATE: CaState = {
  x509: { current: undefined, next: undefined, retired: [] },
  jwt: { current: undefined, next: undefined, retired: [] },
  bundle: undefined,
};

const VERSION = 1;

interface X509Doc {
  keyId: string;
  certificate: string;
  chain: string[];
  roots: string[];
}

interface JwtDoc {
  keyId: string;
  kid: string;
  publicKey: JsonWebKey;
  notBefore: string;
  notAfter: string;
}

interface SlotsDoc<T> {
  current?: T;
  next?: T;
  retired: T[];
}

interface JournalDoc {
  version: number;
  trustDomain: string;
  x509: SlotsDoc<X509Doc>;
  jwt: SlotsDoc<JwtDoc>;
  bundle?: string;
}

const b64 = (d: Buffer): string => d.toString('base64');

function x509Doc(a: X509Authority): X509Doc {
  return { keyId: a.keyId, certificate: b64(a.certificate), chain: a.chain.map(b64), roots: a.roots.map(b64) };
}

function jwtDoc(a: JwtAuthority): JwtDoc {
  return { keyId: a.keyId, kid: a.kid, publicKey: a.publicKey.export({ format: 'jwk' }), notBefore: a.notBefore.toISOString(), notAfter: a.notAfter.toISOString() };
}

function slotsDoc<T, D>(s: Slots<T & { notBefore: Date; notAfter: Date }>, f: (a: T) => D): SlotsDoc<D> {
  const out: SlotsDoc<D> = { retired: s.retired.map(f) };
  if (s.current !== undefined) out.current = f(s.current);
  if (s.next !== undefined) out.next = f(s.next);
  return out;
}

/** The journal document for `state`. */
export function serializeState(td: TrustDomain, state: CaState): string {
  const doc: JournalDoc = {
    version: VERSION,
    trustDomain: td.name,
    x509: slotsDoc(state.x509, x509Doc),
    jwt: slotsDoc(state.jwt, jwtDoc),
  };
  if (state.bundle !== undefined) doc.bundle = state.bundle.marshal();
  return JSON.stringify(doc, null, 2);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new Error(`${what} must be a non-empty string`);
  return v;
}

function strings(v: unknown, what: string): string[] {
  if (!Array.isArray(v)) throw new Error(`${what} must be an array`);
  return v.map((x, i) => str(x, `${what}[${i}]`));
}

function date(v: unknown, what: string): Date {
  const d = new Date(str(v, what));
  if (Number.isNaN(d.getTime())) throw new Error(`${what} is not a valid time`);
  return d;
}

function parseX509(v: unknown, what: string): X509Authority {
  if (!isObject(v)) throw new Error(`${what} must be an object`);
  const der = (s: string): Buffer => Buffer.from(s, 'base64');
  return x509Authority(
    str(v['keyId'], `${what}.keyId`),
    der(str(v['certificate'], `${what}.certificate`)),
    strings(v['chain'], `${what}.chain`).map(der),
    strings(v['roots'], `${what}.roots`).map(der),
  );
}

function parseJwt(v: unknown, what: string): JwtAuthority {
  if (!isObject(v)) throw new Error(`${what} must be an object`);
  if (!isObject(v['publicKey'])) throw new Error(`${what}.publicKey must be a JWK`);
  return {
    keyId: str(v['keyId'], `${what}.keyId`),
    kid: str(v['kid'], `${what}.kid`),
    publicKey: createPublicKey({ key: v['publicKey'] as JsonWebKey, format: 'jwk' }),
    notBefore: date(v['notBefore'], `${what}.notBefore`),
    notAfter: date(v['notAfter'], `${what}.notAfter`),
  };
}

function parseSlots<T>(v: unknown, what: string, f: (x: unknown, what: string) => T): { current: T | undefined; next: T | undefined; retired: T[] } {
  if (!isObject(v)) throw new Error(`${what} must be an object`);
  if (!Array.isArray(v['retired'])) throw new Error(`${what}.retired must be an array`);
  return {
    current: v['current'] === undefined ? undefined : f(v['current'], `${what}.current`),
    next: v['next'] === undefined ? undefined : f(v['next'], `${what}.next`),
    retired: v['retired'].map((x, i) => f(x, `${what}.retired[${i}]`)),
  };
}

/**
 * Parses a journal document.
 * @throws {@link CaError} `CA_JOURNAL_INVALID` when it is malformed, of an unknown version, or of another trust domain.
 */
export function parseState(td: TrustDomain, json: string): CaState {
  try {
    const doc: unknown = JSON.parse(json);
    if (!isObject(doc)) throw new Error('the document is not a JSON object');
    if (doc['version'] !== VERSION) throw new Error(`unsupported version ${JSON.stringify(doc['version'])} (this server writes ${VERSION})`);
    if (doc['trustDomain'] !== td.name) {
      throw new CaError('CA_JOURNAL_INVALID', `CA journal belongs to trust domain ${JSON.stringify(doc['trustDomain'])}, not "${td.name}"; point the server at its own data directory`);
    }
    const bundle = doc['bundle'] === undefined ? undefined : SpiffeBundle.parse(td, str(doc['bundle'], 'bundle'));
    return { x509: parseSlots(doc['x509'], 'x509', parseX509), jwt: parseSlots(doc['jwt'], 'jwt', parseJwt), bundle };
  } catch (e) {
    if (e instanceof CaError) throw e;
    throw new CaError('CA_JOURNAL_INVALID', `malformed CA journal: ${(e as Error).message}`, { cause: e });
  }
}

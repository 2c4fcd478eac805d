/**
 * The tessera server's CA for one trust domain: X.509 CA keys and JWT
 * signing keys rotated on SPIRE's schedule (see `rotation.ts`), state kept
 * across restarts (keys in a {@link KeyManager}, certificates and slots in a
 * {@link CaJournal}), the bundle with a `spiffe_sequence` bumped on every
 * change, and X509-SVID / JWT-SVID signing.
 *
 * No timers inside: the daemon calls {@link ServerCa.tick} from its
 * scheduler (e.g. every 30 s, or at {@link ServerCa.nextRotationAt}); tests
 * call it with an injected clock.
 */
import { createPublicKey, KeyObject, randomBytes } from 'node:crypto';
import type { SpiffeBundle } from '@tessera/spiffe/bundle';
import { isSpiffeError } from '@tessera/spiffe/errors';
import { SpiffeId, TrustDomain } from '@tessera/spiffe/id';
import { signJwtSvid } from '@tessera/spiffe/svid';
import { encodeSubjectPublicKeyInfo, parseSubjectPublicKeyInfo } from '@tessera/spiffe/x509';
import { mergeBundleContributions, type BundleContribution } from './bundle.js';
import { CsrChecker, type CsrCheck, type EcdsaVerifier } from './csr-checker.js';
import { CaError } from './errors.js';
import type { CaJournal } from './journal.js';
import { CA_KEY_TYPES, type CaKeyType, type KeyManager } from './key-manager.js';
import { nextRotationTime, planRotation, type Slots } from './rotation.js';
import { EMPTY_STATE, parseState, serializeState, type CaState, type JwtAuthority } from './state.js';
import { checkUpstreamAuthority, type UpstreamAuthority } from './upstream.js';
import { BACKDATE_SECONDS, mintCaCertificate, X509SvidSigner, type CaSubject, type X509Authority } from './x509-ca.js';

/** Defaults users expect from SPIRE (spec/spiffe.md §6). */
export const CA_DEFAULTS = {
  caTtlSeconds: 24 * 3600,
  x509SvidTtlSeconds: 3600,
  jwtSvidTtlSeconds: 300,
  keyType: 'ec-p256' as CaKeyType,
  bundleRefreshHintSeconds: 300,
} as const;

/** Options of {@link ServerCa.open}. */
export interface ServerCaOptions {
  /** The trust domain (name or `TrustDomain`). */
  readonly trustDomain: TrustDomain | string;
  readonly keyManager: KeyManager;
  readonly journal: CaJournal;
  /** Clock; default: real time. */
  readonly now?: () => Date;
  /** X.509 CA key type; default `ec-p256`. */
  readonly caKeyType?: CaKeyType;
  /** JWT signing key type; default `ec-p256` (ES256). */
  readonly jwtKeyType?: CaKeyType;
  /** Lifetime of each X.509 CA and JWT key, seconds; default 24 h. */
  readonly caTtlSeconds?: number;
  /** X509-SVID TTL when a request gives none; default 1 h. */
  readonly x509SvidTtlSeconds?: number;
  /** JWT-SVID TTL when a request gives none; default 5 min. */
  readonly jwtSvidTtlSeconds?: number;
  /** Subject of CA certificates; default C=US, O=SPIFFE (plus the serial). */
  readonly caSubject?: CaSubject;
  /** Upstream CA (see `loadUpstreamAuthority`); default: self-signed roots. */
  readonly upstream?: UpstreamAuthority;
  /** `spiffe_refresh_hint` of the bundle; default 300 s. */
  readonly bundleRefreshHintSeconds?: number;
  /**
   * Where a CSR's signature is verified: `thread-pool` (default) runs it on
   * libuv's thread pool, so concurrent requests and batches use the other
   * cores while this thread signs, and the event loop stays free; `inline`
   * verifies on the event loop (lowest latency one request at a time, the
   * better choice on a single core).
   */
  readonly csrVerification?: 'thread-pool' | 'inline';
  /**
   * @internal The ECDSA verifier of EC P-256/P-384 CSRs: default the
   * `@tessera/ecdsa-verify` addon when it is built; `null` verifies every CSR
   * with node:crypto (tests compare both; bench/ca.bench.ts measures both).
   */
  readonly csrEcdsaVerifier?: EcdsaVerifier | null;
}

/** A request that passed {@link ServerCa.signX509Svid}'s checks up to its CSR. */
type CheckedX509SvidRequest = { readonly signer: X509SvidSigner; readonly id: string; readonly ttl: number; readonly dnsNames: readonly string[] } & (
  | { readonly csr: Uint8Array; readonly spki: undefined }
  | { readonly csr: undefined; readonly spki: Buffer }
);

/** An X509-SVID signing request. Give exactly one of `csr` and `publicKey`. */
export interface X509SvidRequest {
  /** The SPIFFE ID to certify: in this trust domain, with a non-root path (X509-SVID §2). */
  readonly spiffeId: SpiffeId | string;
  /** A DER PKCS#10 request; its signature is verified (proof of possession). Its URI SANs, if any, must be exactly `spiffeId`; its other names are ignored. */
  readonly csr?: Uint8Array;
  /** The key to certify: a `KeyObject`, or SubjectPublicKeyInfo DER (checked like a CSR's key). */
  readonly publicKey?: KeyObject | Uint8Array;
  /** Requested TTL in seconds; `0`/absent: the default. Capped at the CA's remaining lifetime. */
  readonly ttlSeconds?: number;
  /** DNS SANs; the first also becomes the Subject CN (as SPIRE does). */
  readonly dnsNames?: readonly string[];
}

/** A signed X509-SVID chain. */
export interface SignedX509Svid {
  /** Leaf first, then intermediates up to (excluding) the bundle root (DER). */
  readonly certificates: Buffer[];
  /** The leaf's NotAfter. */
  readonly expiresAt: Date;
}

/** A JWT-SVID signing request (JWT-SVID §3). */
export interface JwtSvidRequest {
  readonly spiffeId: SpiffeId | string;
  /** One or more audiences. */
  readonly audience: string | readonly string[];
  /** Requested TTL in seconds; `0`/absent: the default. Capped at the signing key's remaining lifetime. */
  readonly ttlSeconds?: number;
}

/** A signed JWT-SVID. */
export interface SignedJwtSvid {
  readonly token: string;
  readonly expiresAt: Date;
  /** `kid` of the signing key. */
  readonly keyId: string;
}

/** Which kind of authority a report line is about. */
export type AuthorityKind = 'x509' | 'jwt';

/** What one {@link ServerCa.tick} did. */
export interface TickReport {
  readonly prepared: AuthorityKind[];
  readonly activated: AuthorityKind[];
  /** Authorities removed from the bundle (expired retired ones, unused expired `next` ones). */
  readonly removed: number;
  readonly bundleChanged: boolean;
  readonly bundleSequence: number | undefined;
  /** Rotation failures (e.g. `CA_UPSTREAM_INVALID`); the other kind still rotated. The daemon logs them and retries on the next tick. */
  readonly errors: CaError[];
}

/** One authority as {@link ServerCa.status} shows it. */
export interface AuthorityStatus {
  readonly keyId: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** X.509: the CA certificate's serial (hex); JWT: the `kid`. */
  readonly id: string;
}

/** Slots of one kind, for status displays. */
export interface SlotsStatus {
  readonly current: AuthorityStatus | undefined;
  readonly next: AuthorityStatus | undefined;
  readonly retired: AuthorityStatus[];
}

/** A snapshot for health checks and the CLI. */
export interface CaStatus {
  readonly x509: SlotsStatus;
  readonly jwt: SlotsStatus;
  readonly bundleSequence: number | undefined;
  readonly nextRotationAt: Date | undefined;
}

const KEY_PREFIX_X509 = 'ca-x509-';
const KEY_PREFIX_JWT = 'ca-jwt-';
const MAX_DNS_NAMES = 100;
const DNS_LABEL = '[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?';
const DNS_NAME = new RegExp(`^(?:\\*\\.)?${DNS_LABEL}(?:\\.${DNS_LABEL})*$`, 'i');
/** Upper bound for TTL options (10 years), to catch unit mistakes. */
const MAX_TTL_SECONDS = 10 * 365 * 86400;

function invalid(message: string, cause?: unknown): CaError {
  return new CaError('CA_INVALID_REQUEST', message, cause === undefined ? undefined : { cause });
}

function configTtl(v: number | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v <= 0 || v > MAX_TTL_SECONDS) throw new CaError('CA_INVALID_CONFIG', `"${name}" must be a whole number of seconds between 1 and ${MAX_TTL_SECONDS}, got ${String(v)}`);
  return v;
}

function requestTtl(v: number | undefined, dflt: number): number {
  if (v === undefined || v === 0) return dflt;
  if (!Number.isSafeInteger(v) || v < 0 || v > MAX_TTL_SECONDS) throw invalid(`"ttlSeconds" must be a whole number of seconds between 0 (default) and ${MAX_TTL_SECONDS}, got ${String(v)}`);
  return v;
}

function keyTypeOption(v: CaKeyType | undefined, name: string): CaKeyType {
  if (v === undefined) return CA_DEFAULTS.keyType;
  if (!CA_KEY_TYPES.includes(v)) throw new CaError('CA_INVALID_CONFIG', `"${name}" must be one of ${CA_KEY_TYPES.join(', ')}, got ${JSON.stringify(v)}`);
  return v;
}

/** Seconds precision, rounding down: certificates and JWTs carry whole seconds. */
function floorSeconds(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

/** The SPKI of a caller-supplied KeyObject, refusing key types an SVID should not carry. */
function spkiOfKeyObject(key: KeyObject): Buffer {
  const t = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails ?? {};
  const ok =
    (t === 'ec' && (d.namedCurve === 'prime256v1' || d.namedCurve === 'secp384r1')) ||
    (t === 'rsa' && (d.modulusLength ?? 0) >= 2048 && (d.modulusLength ?? 0) <= 8192) ||
    t === 'ed25519';
  if (!ok || key.type === 'secret') {
    throw invalid(`unsupported public key (${String(t)}${d.namedCurve ? ` ${d.namedCurve}` : ''}${d.modulusLength ? ` ${d.modulusLength}` : ''}); use EC P-256, EC P-384, RSA 2048–8192 or Ed25519`);
  }
  return encodeSubjectPublicKeyInfo(key);
}

/**
 * The trust domain's CA (see the module description).
 *
 * @example
 * ```ts
 * const ca = await ServerCa.open({
 *   trustDomain: 'cluster.local',
 *   keyManager: new DiskKeyManager(join(dataDir, 'keys')),
 *   journal: new FileCaJournal(join(dataDir, 'ca-journal.json')),
 * });
 * setInterval(() => void ca.tick().then(logTick, logError), 30_000); // the daemon's scheduler
 * const { certificates } = await ca.signX509Svid({ spiffeId: 'spiffe://cluster.local/web', csr });
 * ```
 */
export class ServerCa {
  readonly trustDomain: TrustDomain;
  /** Problems found while loading the journal (slots whose key was missing or did not match), already repaired. */
  readonly warnings: readonly string[];
  readonly #keyManager: KeyManager;
  readonly #journal: CaJournal;
  readonly #now: () => Date;
  readonly #caKeyType: CaKeyType;
  readonly #jwtKeyType: CaKeyType;
  readonly #caTtl: number;
  readonly #x509SvidTtl: number;
  readonly #jwtSvidTtl: number;
  readonly #caSubject: CaSubject | undefined;
  readonly #upstream: UpstreamAuthority | undefined;
  readonly #refreshHint: number;
  readonly #csrs: CsrChecker;
  #state: CaState = EMPTY_STATE;
  /** Private keys of `current` and `next` authorities, by key ID. */
  #keys = new Map<string, KeyObject>();
  #signer: X509SvidSigner | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #bundleChecked = false;

  private constructor(o: ServerCaOptions, td: TrustDomain, warnings: string[]) {
    this.trustDomain = td;
    this.warnings = warnings;
    this.#keyManager = o.keyManager;
    this.#journal = o.journal;
    this.#now = o.now ?? (() => new Date());
    this.#caKeyType = keyTypeOption(o.caKeyType, 'caKeyType');
    this.#jwtKeyType = keyTypeOption(o.jwtKeyType, 'jwtKeyType');
    this.#caTtl = configTtl(o.caTtlSeconds, 'caTtlSeconds', CA_DEFAULTS.caTtlSeconds);
    this.#x509SvidTtl = configTtl(o.x509SvidTtlSeconds, 'x509SvidTtlSeconds', CA_DEFAULTS.x509SvidTtlSeconds);
    this.#jwtSvidTtl = configTtl(o.jwtSvidTtlSeconds, 'jwtSvidTtlSeconds', CA_DEFAULTS.jwtSvidTtlSeconds);
    this.#caSubject = o.caSubject;
    this.#upstream = o.upstream;
    const hint = o.bundleRefreshHintSeconds ?? CA_DEFAULTS.bundleRefreshHintSeconds;
    if (!Number.isSafeInteger(hint) || hint < 0) throw new CaError('CA_INVALID_CONFIG', `"bundleRefreshHintSeconds" must be a non-negative whole number, got ${String(hint)}`);
    this.#refreshHint = hint;
    if (o.csrVerification !== undefined && o.csrVerification !== 'inline' && o.csrVerification !== 'thread-pool') {
      throw new CaError('CA_INVALID_CONFIG', `"csrVerification" must be "thread-pool" or "inline", got ${JSON.stringify(o.csrVerification)}`);
    }
    this.#csrs = new CsrChecker({ inline: o.csrVerification === 'inline', ...(o.csrEcdsaVerifier === undefined ? {} : { ecdsa: o.csrEcdsaVerifier }) });
  }

  /**
   * Loads the CA from its journal and key manager (or starts an empty one),
   * then runs a first {@link ServerCa.tick}, so the CA is ready to sign.
   * A slot whose key is missing or does not match its certificate is
   * retired (kept in the bundle until it expires, never used to sign) and
   * replaced; see {@link ServerCa.warnings}. Keys the journal no longer
   * references are deleted.
   *
   * @throws {@link CaError} `CA_INVALID_CONFIG`, `CA_JOURNAL_INVALID`,
   * `CA_KEY_UNAVAILABLE`, or the first tick's error (e.g.
   * `CA_UPSTREAM_INVALID`) when no authority can sign.
   */
  static async open(options: ServerCaOptions): Promise<ServerCa> {
    if (options === null || typeof options !== 'object') throw new CaError('CA_INVALID_CONFIG', 'ServerCa.open: options are required');
    let td: TrustDomain;
    try {
      td = typeof options.trustDomain === 'string' ? TrustDomain.parse(options.trustDomain) : options.trustDomain;
    } catch (e) {
      throw new CaError('CA_INVALID_CONFIG', `invalid trust domain: ${(e as Error).message}`, { cause: e });
    }
    if (!(td instanceof TrustDomain)) throw new CaError('CA_INVALID_CONFIG', '"trustDomain" must be a trust domain name or TrustDomain');
    if (options.keyManager === undefined || options.journal === undefined) throw new CaError('CA_INVALID_CONFIG', '"keyManager" and "journal" are required');
    const warnings: string[] = [];
    const ca = new ServerCa(options, td, warnings);
    const doc = await options.journal.load();
    if (doc !== undefined) await ca.#restore(parseState(td, doc), warnings);
    await ca.#collectGarbageKeys();
    const report = await ca.tick();
    if (ca.#signer === undefined || ca.#state.jwt.current === undefined) {
      throw report.errors[0] ?? new CaError('CA_NOT_READY', 'the CA could not prepare its first authorities');
    }
    return ca;
  }

  /** Re-attaches keys to the journal's `current`/`next` slots; retires slots whose key is gone or wrong. */
  async #restore(state: CaState, warnings: string[]): Promise<void> {
    const keys = new Map<string, KeyObject>();
    const attach = async <T extends X509Authority | JwtAuthority>(a: T | undefined, kind: string, publicKey: (a: T) => KeyObject): Promise<T | undefined> => {
      if (a === undefined) return undefined;
      const key = await this.#keyManager.getKey(a.keyId);
      let matches = false;
      try {
        matches = key !== undefined && createPublicKey(key).equals(publicKey(a));
      } catch {
        matches = false;
      }
      if (!matches) {
        warnings.push(`${kind} authority ${a.keyId}: its key is ${key === undefined ? 'missing' : 'not the certified key'}; retired it (still trusted until ${a.notAfter.toISOString()}) and preparing a new one`);
        return undefined;
      }
      keys.set(a.keyId, key!);
      return a;
    };
    const x = state.x509;
    const j = state.jwt;
    const xCurrent = await attach(x.current, 'X.509', (a) => a.parsed.publicKey);
    const xNext = await attach(x.next, 'X.509', (a) => a.parsed.publicKey);
    const jCurrent = await attach(j.current, 'JWT', (a) => a.publicKey);
    const jNext = await attach(j.next, 'JWT', (a) => a.publicKey);
    const retire = <T>(list: readonly T[], ...lost: (T | undefined)[]): T[] => [...list, ...lost.filter((a): a is T => a !== undefined)];
    this.#state = {
      x509: { current: xCurrent, next: xNext, retired: retire(x.retired, xCurrent ? undefined : x.current, xNext ? undefined : x.next) },
      jwt: { current: jCurrent, next: jNext, retired: retire(j.retired, jCurrent ? undefined : j.current, jNext ? undefined : j.next) },
      bundle: state.bundle,
    };
    this.#keys = keys;
    this.#signer = xCurrent ? new X509SvidSigner(xCurrent, keys.get(xCurrent.keyId)!) : undefined;
  }

  /** Deletes CA keys no slot needs (left behind by a crash between key generation and the journal write, or by retirement). */
  async #collectGarbageKeys(): Promise<void> {
    for (const id of await this.#keyManager.listKeys()) {
      if ((id.startsWith(KEY_PREFIX_X509) || id.startsWith(KEY_PREFIX_JWT)) && !this.#keys.has(id)) await this.#keyManager.deleteKey(id);
    }
  }

  /**
   * Runs the rotation schedule at `now` (default: the injected clock):
   * prepares `next` at 1/2 of `current`'s lifetime (and publishes it in the
   * bundle), activates it at 5/6, removes retired authorities once expired,
   * for X.509 CAs and JWT keys alike; then saves the journal if anything
   * changed and bumps `spiffe_sequence` if the bundle changed. Calls are
   * serialized. Signing continues with the previous state until the new one
   * is saved.
   *
   * @throws {@link CaError} `CA_JOURNAL_INVALID` when the journal cannot be
   * saved (nothing is applied). Rotation failures of one kind are reported
   * in {@link TickReport.errors} while the other kind still rotates.
   */
  tick(now?: Date): Promise<TickReport> {
    const run = this.#queue.then(() => this.#tick(now ?? this.#now()));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #tick(now: Date): Promise<TickReport> {
    const nowMs = now.getTime();
    const errors: CaError[] = [];
    const prepared: AuthorityKind[] = [];
    const activated: AuthorityKind[] = [];
    const newKeys = new Map<string, KeyObject>();
    const state = this.#state;

    const x509 = await this.#rotate(state.x509, nowMs, 'x509', prepared, activated, errors, async () => {
      const upstream = this.#upstream === undefined ? undefined : checkUpstreamAuthority(this.#upstream, now);
      const keyId = KEY_PREFIX_X509 + randomBytes(16).toString('hex');
      const key = await this.#keyManager.generateKey(keyId, this.#caKeyType);
      try {
        const a = mintCaCertificate({ trustDomain: this.trustDomain, keyId, key, now, ttlSeconds: this.#caTtl, subject: this.#caSubject, upstream });
        newKeys.set(keyId, key);
        return a;
      } catch (e) {
        await this.#keyManager.deleteKey(keyId).catch(() => undefined);
        throw e;
      }
    });
    const jwt = await this.#rotate(state.jwt, nowMs, 'jwt', prepared, activated, errors, async () => {
      const kid = randomBytes(16).toString('hex');
      const keyId = KEY_PREFIX_JWT + kid;
      const key = await this.#keyManager.generateKey(keyId, this.#jwtKeyType);
      newKeys.set(keyId, key);
      // The lifetime of a CA minted now — backdate included, in whole seconds as in a certificate — so both kinds
      // reach their thresholds in the same tick: one bundle change, one sequence bump.
      const a: JwtAuthority = {
        keyId,
        kid,
        publicKey: createPublicKey(key),
        notBefore: floorSeconds(nowMs - BACKDATE_SECONDS * 1000),
        notAfter: floorSeconds(nowMs + this.#caTtl * 1000),
      };
      return a;
    });
    const removed = x509.removed + jwt.removed;
    const slotsChanged = x509.slots !== state.x509 || jwt.slots !== state.jwt;
    const next: CaState = { x509: x509.slots, jwt: jwt.slots, bundle: state.bundle };
    // Unchanged slots give an unchanged bundle, except on the first tick after a (re)start, when options such as the refresh hint may differ.
    const merged =
      slotsChanged || !this.#bundleChecked
        ? mergeBundleContributions(this.trustDomain, [contributionOf(next)], { previous: state.bundle, refreshHintSeconds: this.#refreshHint })
        : { bundle: state.bundle, changed: false };
    const bundle = merged.changed ? merged.bundle : state.bundle;
    const committed: CaState = { ...next, bundle };
    if (slotsChanged || merged.changed) {
      try {
        await this.#journal.save(serializeState(this.trustDomain, committed));
      } catch (e) {
        for (const id of newKeys.keys()) await this.#keyManager.deleteKey(id).catch(() => undefined);
        if (e instanceof CaError) throw e;
        throw new CaError('CA_JOURNAL_INVALID', `cannot save the CA journal: ${(e as Error).message}`, { cause: e });
      }
    }
    // Commit: from here on, signing uses the new state.
    const keys = new Map<string, KeyObject>();
    for (const a of [committed.x509.current, committed.x509.next, committed.jwt.current, committed.jwt.next]) {
      if (a === undefined) continue;
      const k = this.#keys.get(a.keyId) ?? newKeys.get(a.keyId);
      if (k !== undefined) keys.set(a.keyId, k);
    }
    const stale = [...this.#keys.keys(), ...newKeys.keys()].filter((id) => !keys.has(id));
    this.#state = committed;
    this.#keys = keys;
    this.#bundleChecked = true;
    const cur = committed.x509.current;
    if (cur !== undefined && cur !== this.#signer?.authority) this.#signer = new X509SvidSigner(cur, keys.get(cur.keyId)!);
    if (cur === undefined) this.#signer = undefined;
    // Retired authorities never sign again: their private keys can go.
    for (const id of new Set(stale)) {
      await this.#keyManager.deleteKey(id).catch((e: unknown) => errors.push(e instanceof CaError ? e : new CaError('CA_KEY_UNAVAILABLE', String(e))));
    }
    return { prepared, activated, removed, bundleChanged: merged.changed, bundleSequence: bundle?.sequenceNumber, errors };
  }

  /** Applies {@link planRotation} to one kind of slots. */
  async #rotate<T extends X509Authority | JwtAuthority>(
    slots: Slots<T>,
    nowMs: number,
    kind: AuthorityKind,
    prepared: AuthorityKind[],
    activated: AuthorityKind[],
    errors: CaError[],
    create: () => Promise<T>,
  ): Promise<{ slots: Slots<T>; removed: number }> {
    const plan = planRotation(slots, nowMs);
    let { current, next } = slots;
    let retired = slots.retired.filter((r) => !plan.expired.includes(r));
    let removed = plan.expired.length;
    if (plan.dropNext) {
      next = undefined;
      removed++;
    }
    let failed = false;
    if (plan.prepare) {
      try {
        next = await create();
        prepared.push(kind);
      } catch (e) {
        errors.push(e instanceof CaError ? e : new CaError('CA_KEY_UNAVAILABLE', `cannot prepare a ${kind} authority: ${(e as Error).message}`, { cause: e }));
        failed = true;
      }
    }
    if (plan.activate && !failed && next !== undefined) {
      if (current !== undefined) {
        // A current that already expired (the server was down) signed nothing still valid: drop it rather than retire it.
        if (nowMs <= current.notAfter.getTime()) retired = [...retired, current];
        else removed++;
      }
      current = next;
      next = undefined;
      activated.push(kind);
    }
    const same = current === slots.current && next === slots.next && retired.length === slots.retired.length && retired.every((r, i) => r === slots.retired[i]);
    return { slots: same ? slots : { current, next, retired }, removed };
  }

  /**
   * When the next rotation step is due, so a scheduler can sleep until then
   * (it should still tick periodically to survive clock jumps).
   */
  nextRotationAt(): Date | undefined {
    const times = [nextRotationTime(this.#state.x509), nextRotationTime(this.#state.jwt)].filter((t): t is number => t !== undefined);
    return times.length === 0 ? undefined : new Date(Math.ceil(Math.min(...times)));
  }

  /**
   * Signs an X509-SVID (X509-SVID §4; spec/spiffe.md §2) with the active CA:
   * a random serial, Subject C=US, O=SPIRE (+ CN = first DNS name), URI SAN
   * = `spiffeId`, DNS SANs, `cA=false`, keyUsage digitalSignature |
   * keyEncipherment | keyAgreement (critical), extKeyUsage serverAuth +
   * clientAuth, SKI, AKI; NotBefore = now − 10 s, NotAfter = min(now + TTL,
   * the CA's NotAfter). A CSR's signature is verified first (proof of
   * possession), on libuv's thread pool unless `csrVerification: 'inline'`
   * (see csr-checker.ts).
   *
   * @throws {@link CaError} `CA_INVALID_REQUEST` (ID, TTL, DNS names, key or
   * CSR) or `CA_NOT_READY` (no active CA).
   */
  async signX509Svid(request: X509SvidRequest): Promise<SignedX509Svid> {
    const r = this.#checkX509SvidRequest(this.#signer, request);
    if (r.csr === undefined) return this.#signLeaf(r, r.spki);
    return this.#signCsr(r, await this.#csrs.check(r.csr));
  }

  /**
   * Signs a batch of X509-SVIDs as {@link ServerCa.signX509Svid} would one
   * by one — same checks, same certificates, same error per request — but
   * cheaper: the CSRs' signatures are verified in chunks on libuv's thread
   * pool (csr-checker.ts) while this thread signs the leaves of the chunks
   * already verified. One result per request, in order.
   *
   * @throws {@link CaError} `CA_INVALID_REQUEST` when `requests` is not an
   * array; each request's own failure is its result.
   */
  async signX509SvidBatch(requests: readonly X509SvidRequest[]): Promise<PromiseSettledResult<SignedX509Svid>[]> {
    if (!Array.isArray(requests)) throw invalid('an array of X509-SVID requests is required');
    const signer = this.#signer;
    const out = new Array<PromiseSettledResult<SignedX509Svid>>(requests.length);
    const settle = (i: number, sign: () => SignedX509Svid): void => {
      try {
        out[i] = { status: 'fulfilled', value: sign() };
      } catch (reason) {
        out[i] = { status: 'rejected', reason };
      }
    };
    const csrs: Uint8Array[] = [];
    const pending: { index: number; request: CheckedX509SvidRequest }[] = [];
    requests.forEach((request, i) => {
      let r: CheckedX509SvidRequest;
      try {
        r = this.#checkX509SvidRequest(signer, request);
      } catch (reason) {
        out[i] = { status: 'rejected', reason };
        return;
      }
      if (r.csr === undefined) {
        const spki = r.spki;
        settle(i, () => this.#signLeaf(r, spki));
      } else {
        csrs.push(r.csr);
        pending.push({ index: i, request: r });
      }
    });
    await this.#csrs.checkBatch(csrs, (j, check) => {
      const p = pending[j]!;
      settle(p.index, () => this.#signCsr(p.request, check));
    });
    return out;
  }

  /** The checks of {@link ServerCa.signX509Svid} before the CSR's. */
  #checkX509SvidRequest(signer: X509SvidSigner | undefined, request: X509SvidRequest): CheckedX509SvidRequest {
    if (signer === undefined) throw new CaError('CA_NOT_READY', 'the X.509 CA is not ready: no active CA (call tick() first)');
    if (request === null || typeof request !== 'object') throw invalid('an X509-SVID request is required');
    const id = this.#checkId(request.spiffeId).toString();
    const ttl = requestTtl(request.ttlSeconds, this.#x509SvidTtl);
    const dnsNames = checkDnsNames(request.dnsNames);
    if (request.csr !== undefined && request.publicKey !== undefined) throw invalid('give either "csr" or "publicKey", not both');
    if (request.csr !== undefined) {
      if (!(request.csr instanceof Uint8Array)) throw invalid('"csr" must be DER bytes');
      return { signer, id, ttl, dnsNames, csr: request.csr, spki: undefined };
    }
    let spki: Buffer;
    if (request.publicKey instanceof KeyObject) {
      spki = spkiOfKeyObject(request.publicKey);
    } else if (request.publicKey instanceof Uint8Array) {
      try {
        spki = parseSubjectPublicKeyInfo(request.publicKey).spki;
      } catch (e) {
        if (isSpiffeError(e)) throw invalid(`invalid public key: ${e.message}`, e);
        throw e;
      }
    } else {
      throw invalid('"csr" or "publicKey" is required');
    }
    return { signer, id, ttl, dnsNames, csr: undefined, spki };
  }

  /** The rest of {@link ServerCa.signX509Svid} once the CSR was checked. */
  #signCsr(r: CheckedX509SvidRequest, check: CsrCheck): SignedX509Svid {
    if (!check.ok) {
      if (isSpiffeError(check.error)) throw invalid(`invalid CSR: ${check.error.message}`, check.error);
      throw check.error;
    }
    const { uris } = check;
    if (uris.length > 0 && (uris.length !== 1 || uris[0] !== r.id)) {
      throw invalid(`the CSR asks for URI SAN ${uris.map((u) => JSON.stringify(u)).join(', ')} but the request is for "${r.id}"`);
    }
    return this.#signLeaf(r, check.spki);
  }

  /** Signs the leaf of a checked request, with the signer that was active when the request arrived. */
  #signLeaf(r: CheckedX509SvidRequest, spki: Buffer): SignedX509Svid {
    const { signer } = r;
    const nowMs = this.#now().getTime();
    const notAfter = floorSeconds(Math.min(nowMs + r.ttl * 1000, signer.authority.notAfter.getTime()));
    if (notAfter.getTime() <= nowMs) throw new CaError('CA_NOT_READY', `the active CA expires at ${signer.authority.notAfter.toISOString()}; it cannot sign until the next tick() replaces it`);
    const leaf = signer.sign({ spki, spiffeId: r.id, dnsNames: r.dnsNames, notBefore: new Date(nowMs - BACKDATE_SECONDS * 1000), notAfter });
    return { certificates: [leaf, ...signer.chain], expiresAt: notAfter };
  }

  /**
   * Signs a JWT-SVID (JWT-SVID §2–§3) with the active JWT key: header `alg`
   * (ES256 for the default key), `kid`, `typ: JWT`; claims `sub`, `aud`,
   * `iat`, `exp` = min(now + TTL, the key's NotAfter). Synchronous: one
   * signature, no I/O.
   *
   * @throws {@link CaError} `CA_INVALID_REQUEST` or `CA_NOT_READY`.
   */
  signJwtSvid(request: JwtSvidRequest): SignedJwtSvid {
    const authority = this.#state.jwt.current;
    const key = authority === undefined ? undefined : this.#keys.get(authority.keyId);
    if (authority === undefined || key === undefined) throw new CaError('CA_NOT_READY', 'the JWT signer is not ready: no active key (call tick() first)');
    if (request === null || typeof request !== 'object') throw invalid('a JWT-SVID request is required');
    const id = this.#checkId(request.spiffeId);
    const audience = typeof request.audience === 'string' ? [request.audience] : request.audience;
    if (!Array.isArray(audience) || audience.length === 0 || !audience.every((a) => typeof a === 'string' && a.length > 0)) {
      throw invalid('"audience" must be one or more non-empty strings (JWT-SVID §3: "aud" is required)');
    }
    const ttl = requestTtl(request.ttlSeconds, this.#jwtSvidTtl);
    const now = this.#now();
    const expiresAt = floorSeconds(Math.min(now.getTime() + ttl * 1000, authority.notAfter.getTime()));
    if (expiresAt.getTime() - now.getTime() < 1000) throw new CaError('CA_NOT_READY', `the active JWT key expires at ${authority.notAfter.toISOString()}; it cannot sign until the next tick() replaces it`);
    let token: string;
    try {
      token = signJwtSvid({ id, audience, key, keyId: authority.kid, expiresAt, issuedAt: now });
    } catch (e) {
      if (isSpiffeError(e)) throw invalid(e.message, e);
      throw e;
    }
    return { token, expiresAt, keyId: authority.kid };
  }

  #checkId(v: SpiffeId | string): SpiffeId {
    let id: SpiffeId;
    try {
      id = v instanceof SpiffeId ? v : SpiffeId.parse(v);
    } catch (e) {
      throw invalid(`invalid SPIFFE ID ${JSON.stringify(v)}: ${(e as Error).message}`, e);
    }
    if (!id.memberOf(this.trustDomain)) throw invalid(`SPIFFE ID "${id.toString()}" is not in trust domain "${this.trustDomain.name}"`);
    if (id.isRoot()) throw invalid(`SPIFFE ID "${id.toString()}" must have a path (X509-SVID §2: an SVID's ID is never the trust domain itself)`);
    return id;
  }

  /**
   * The bundle this server publishes for its trust domain: its authorities
   * (retired, current and next) with `spiffe_sequence` and
   * `spiffe_refresh_hint`. A copy.
   * @throws {@link CaError} `CA_NOT_READY` before the first tick.
   */
  bundle(): SpiffeBundle {
    const b = this.#state.bundle;
    if (b === undefined) throw new CaError('CA_NOT_READY', 'no bundle yet (call tick() first)');
    return b.clone();
  }

  /** This server's authorities, for {@link mergeBundleContributions} when several servers share a database. */
  bundleContribution(): BundleContribution {
    return contributionOf(this.#state);
  }

  /** The slots and bundle sequence, for health checks and the CLI. */
  status(): CaStatus {
    const x = (a: X509Authority): AuthorityStatus => ({ keyId: a.keyId, notBefore: a.notBefore, notAfter: a.notAfter, id: a.parsed.serialHex });
    const j = (a: JwtAuthority): AuthorityStatus => ({ keyId: a.keyId, notBefore: a.notBefore, notAfter: a.notAfter, id: a.kid });
    const s = this.#state;
    return {
      x509: { current: s.x509.current && x(s.x509.current), next: s.x509.next && x(s.x509.next), retired: s.x509.retired.map(x) },
      jwt: { current: s.jwt.current && j(s.jwt.current), next: s.jwt.next && j(s.jwt.next), retired: s.jwt.retired.map(j) },
      bundleSequence: s.bundle?.sequenceNumber,
      nextRotationAt: this.nextRotationAt(),
    };
  }
}

function checkDnsNames(v: readonly string[] | undefined): readonly string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw invalid('"dnsNames" must be an array of DNS names');
  if (v.length > MAX_DNS_NAMES) throw invalid(`at most ${MAX_DNS_NAMES} DNS names are allowed, got ${v.length}`);
  for (const d of v) {
    if (typeof d !== 'string' || d.length > 253 || !DNS_NAME.test(d)) throw invalid(`invalid DNS name ${JSON.stringify(d)}`);
  }
  return v;
}

/** The authorities of `state`, in publication order: retired, current, next. */
function contributionOf(state: CaState): BundleContribution {
  const x = state.x509;
  const j = state.jwt;
  const roots: Buffer[] = [];
  for (const a of [...x.retired, x.current, x.next]) {
    if (a === undefined) continue;
    for (const r of a.roots) if (!roots.some((d) => d.equals(r))) roots.push(r);
  }
  const jwt = [...j.retired, j.current, j.next]
    .filter((a): a is JwtAuthority => a !== undefined)
    .map((a) => ({ keyId: a.kid, publicKey: a.publicKey, expiresAt: a.notAfter }));
  return { x509Authorities: roots, jwtAuthorities: jwt };
}

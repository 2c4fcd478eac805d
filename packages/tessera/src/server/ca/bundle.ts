/**
 * The trust domain's bundle as the union of what each server contributes
 * (SPIFFE Trust Domain and Bundle §4). Servers sharing a database each keep
 * their own CA and JWT keys; each stores its {@link BundleContribution}, and
 * whoever publishes merges them with {@link mergeBundleContributions}, which
 * bumps `spiffe_sequence` only when the content changes.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { SpiffeBundle } from '@tessera/spiffe/bundle';
import type { TrustDomain } from '@tessera/spiffe/id';
import { Certificate } from '@tessera/spiffe/x509';
import { CaError } from './errors.js';

/** A JWT signing key as published in the bundle. */
export interface JwtAuthorityContribution {
  /** `kid` (random 128-bit hex). */
  readonly keyId: string;
  readonly publicKey: KeyObject;
  /** After this, no JWT-SVID signed with the key is valid; the key may be dropped. */
  readonly expiresAt: Date;
}

/** The authorities one server publishes for its trust domain. */
export interface BundleContribution {
  /** X.509 authorities (CA certificates, DER). */
  readonly x509Authorities: readonly Buffer[];
  readonly jwtAuthorities: readonly JwtAuthorityContribution[];
}

/** Options of {@link mergeBundleContributions}. */
export interface MergeOptions {
  /** The bundle published last; its sequence number is kept when nothing changed. */
  readonly previous?: SpiffeBundle;
  /** Drop authorities that expired before this time (contributions of servers that stopped pruning); default: keep all. */
  readonly now?: Date;
  /** `spiffe_refresh_hint` in seconds; default: the previous bundle's, else none. */
  readonly refreshHintSeconds?: number;
}

/** The result of {@link mergeBundleContributions}. */
export interface MergedBundle {
  readonly bundle: SpiffeBundle;
  /** Whether the content differs from `previous` (and the sequence number was bumped). */
  readonly changed: boolean;
}

/**
 * Merges contributions into one bundle: the union of authorities (duplicates
 * once), in a deterministic order (X.509 by NotBefore then DER, JWT by
 * `kid`), with `spiffe_sequence` = previous + 1 when the content changed
 * and unchanged otherwise (SPIFFE Trust Domain and Bundle §4: it increases
 * on every content change).
 *
 * @throws {@link CaError} `CA_BUNDLE_CONFLICT` when one `kid` names two different keys.
 * @example
 * ```ts
 * const { bundle, changed } = mergeBundleContributions(td, await store.listContributions(), { previous, now: new Date() });
 * if (changed) await publish(bundle);
 * ```
 */
export function mergeBundleContributions(trustDomain: TrustDomain, contributions: Iterable<BundleContribution>, options: MergeOptions = {}): MergedBundle {
  const nowMs = options.now?.getTime();
  const x509 = new Map<string, Certificate>();
  const jwt = new Map<string, JwtAuthorityContribution>();
  for (const c of contributions) {
    for (const d of c.x509Authorities) {
      const key = d.toString('base64');
      if (x509.has(key)) continue;
      const cert = new Certificate(d);
      if (nowMs !== undefined && cert.notAfter.getTime() < nowMs) continue;
      x509.set(key, cert);
    }
    for (const j of c.jwtAuthorities) {
      if (nowMs !== undefined && j.expiresAt.getTime() < nowMs) continue;
      const seen = jwt.get(j.keyId);
      if (seen !== undefined) {
        if (!seen.publicKey.equals(j.publicKey)) throw new CaError('CA_BUNDLE_CONFLICT', `JWT key ID "${j.keyId}" is contributed with two different keys`);
        continue;
      }
      jwt.set(j.keyId, j);
    }
  }
  const certs = [...x509.values()].sort((a, b) => a.notBefore.getTime() - b.notBefore.getTime() || Buffer.compare(a.der, b.der));
  const keys = [...jwt.values()].sort((a, b) => (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0));
  const previous = options.previous;
  const bundle = new SpiffeBundle(trustDomain, {
    x509Authorities: certs,
    jwtAuthorities: keys.map((k) => [k.keyId, k.publicKey] as [string, KeyObject]),
    refreshHintSeconds: options.refreshHintSeconds ?? previous?.refreshHintSeconds,
    sequenceNumber: previous?.sequenceNumber ?? 0,
  });
  if (previous !== undefined && bundle.equals(previous)) return { bundle, changed: false };
  bundle.setSequenceNumber((previous?.sequenceNumber ?? 0) + 1);
  return { bundle, changed: true };
}

interface ContributionDoc {
  x509Authorities: string[];
  jwtAuthorities: { keyId: string; publicKey: JsonWebKey; expiresAt: string }[];
}

/**
 * A contribution as JSON, for the datastore.
 * @example
 * ```ts
 * await db.saveContribution(serverId, marshalBundleContribution(ca.bundleContribution()));
 * ```
 */
export function marshalBundleContribution(c: BundleContribution): string {
  const doc: ContributionDoc = {
    x509Authorities: c.x509Authorities.map((d) => d.toString('base64')),
    jwtAuthorities: c.jwtAuthorities.map((j) => ({ keyId: j.keyId, publicKey: j.publicKey.export({ format: 'jwk' }), expiresAt: j.expiresAt.toISOString() })),
  };
  return JSON.stringify(doc);
}

/**
 * Parses {@link marshalBundleContribution}'s output.
 * @throws {@link CaError} `CA_JOURNAL_INVALID` when the document is malformed.
 * @example
 * ```ts
 * const contributions = rows.map((r) => parseBundleContribution(r.json));
 * ```
 */
export function parseBundleContribution(json: string): BundleContribution {
  const bad = (why: string, cause?: unknown): CaError => new CaError('CA_JOURNAL_INVALID', `malformed bundle contribution: ${why}`, cause === undefined ? undefined : { cause });
  let doc: ContributionDoc;
  try {
    doc = JSON.parse(json) as ContributionDoc;
  } catch (e) {
    throw bad((e as Error).message, e);
  }
  if (typeof doc !== 'object' || doc === null || !Array.isArray(doc.x509Authorities) || !Array.isArray(doc.jwtAuthorities)) throw bad('expected {x509Authorities, jwtAuthorities}');
  try {
    return {
      x509Authorities: doc.x509Authorities.map((s) => {
        if (typeof s !== 'string') throw new Error('X.509 authority is not a base64 string');
        return new Certificate(Buffer.from(s, 'base64')).der;
      }),
      jwtAuthorities: doc.jwtAuthorities.map((j) => {
        if (typeof j?.keyId !== 'string' || j.keyId.length === 0) throw new Error('JWT authority without keyId');
        const expiresAt = new Date(j.expiresAt);
        if (Number.isNaN(expiresAt.getTime())) throw new Error(`JWT authority "${j.keyId}" has an invalid expiresAt`);
        return { keyId: j.keyId, publicKey: createPublicKey({ key: j.publicKey, format: 'jwk' }), expiresAt };
      }),
    };
  } catch (e) {
    throw bad((e as Error).message, e);
  }
}

/**
 * Two bounded, process-wide caches that let X509-SVID verification
 * (spec/spiffe.md §2) skip work whose result is a pure function of bytes:
 * parsing a CA certificate (a function of its DER) and a *successful*
 * signature check of one (a function of its DER and the issuer's key). A peer sends the
 * same intermediates on every handshake, and re-parsing them and re-checking
 * their signatures made verification with one intermediate 4–5× slower than
 * without.
 *
 * Nothing here depends on time, on a bundle's contents or on chain position:
 * validity, CA flags, key usage, pathLen, name constraints, critical
 * extensions, the leaf rules and the search limits are all checked by the
 * verifier on every call. Failures are never cached, so a cache can only turn
 * an already-proven success into the same success, never a failure into one.
 * @internal
 */
import { createHash, type KeyObject } from 'node:crypto';
import { LruCache } from '../lru-cache.js';
import { Certificate } from './certificate.js';
import { checkSignature } from './signature.js';

/** Entries per cache. One verification touches at most 10 certificates (MAX_CHAIN). */
const MAX_ENTRIES = 256;
/** Larger certificates are not cached, bounding memory to about MAX_ENTRIES × this per cache. */
const MAX_CACHED_DER = 16 * 1024;

/**
 * CA certificates parsed from private copies of their DER, keyed by SHA-256
 * of it (a hit is also compared byte for byte). These objects are frozen and
 * never handed to callers: the verifier returns copies of their DER, so no
 * one can change the bytes or fields a later hit relies on.
 *
 * Only CA certificates (basicConstraints cA=true) are kept: they are what
 * peers send again and again, while leaves of distinct peers would only churn
 * the cache (measured: caching every leaf made verification of distinct
 * leaves ~10–15% slower) and could evict the intermediates.
 */
const certificates = new LruCache<string, Certificate>(MAX_ENTRIES);
/** SHA-256 of the DER of every certificate this module owns (those in, or once in, `certificates`): all immutable. */
const owned = new WeakMap<Certificate, string>();
const spkiDigests = new WeakMap<Certificate, { spki: Buffer; digest: string }>();

interface VerifiedSignature {
  /** The child's DER (an owned, never exposed buffer). */
  readonly child: Buffer;
  /** A copy of the issuer's SubjectPublicKeyInfo DER. */
  readonly spki: Buffer;
  /** The key the signature was verified with. */
  readonly key: KeyObject;
}

/** Successful signature checks, keyed by SHA-256(child DER) ‖ SHA-256(issuer SPKI DER). */
const signatures = new LruCache<string, VerifiedSignature>(MAX_ENTRIES);

const stats = { certificateHits: 0, signatureHits: 0 };

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('base64');
}

/** A buffer of its own (not a slice of Node's shared pool), so caching it keeps nothing else alive. */
function privateCopy(b: Uint8Array): Buffer {
  const copy = Buffer.allocUnsafeSlow(b.byteLength);
  copy.set(b);
  return copy;
}

/** Freezes every plain object and array of `cert` (Buffers and Dates cannot be frozen; see `certificates`). */
function freeze(cert: Certificate): Certificate {
  for (const e of cert.extensions) Object.freeze(e);
  Object.freeze(cert.extensions);
  if (cert.basicConstraints) Object.freeze(cert.basicConstraints);
  if (cert.keyUsage) Object.freeze(cert.keyUsage);
  if (cert.extKeyUsage) Object.freeze(cert.extKeyUsage);
  const san = cert.subjectAltNames;
  Object.freeze(san.uris);
  Object.freeze(san.dnsNames);
  Object.freeze(san.ipAddresses);
  Object.freeze(san.emails);
  Object.freeze(san);
  const nc = cert.nameConstraints;
  if (nc) {
    for (const st of [...nc.permitted, ...nc.excluded]) {
      if (st.ip) Object.freeze(st.ip);
      Object.freeze(st);
    }
    Object.freeze(nc.permitted);
    Object.freeze(nc.excluded);
    Object.freeze(nc);
  }
  Object.freeze(cert.unhandledCritical);
  // Private fields (#publicKey and the lazily decoded names) stay writable: they are derived from the DER.
  Object.freeze(cert);
  return cert;
}

/**
 * Parses `der`, or returns the cached certificate parsed from the same bytes
 * (CA certificates only). The result may be shared with other verifications,
 * so callers must not expose it (hand out copies of its DER) and must not
 * rely on its identity being distinct from an earlier call's.
 * @throws EncodingError `ERR_CERTIFICATE_INVALID` (parse failures are never cached).
 */
export function parseCertificateCached(der: Uint8Array): Certificate {
  if (der.byteLength > MAX_CACHED_DER) return new Certificate(der);
  const digest = sha256(der);
  const hit = certificates.get(digest);
  if (hit !== undefined && hit.der.equals(der)) {
    stats.certificateHits++;
    return hit;
  }
  const parsed = new Certificate(der);
  if (!parsed.isCa) return parsed;
  // Parse a private copy: Certificate keeps views into the bytes it parsed, and the caller may change its buffer later.
  const cert = freeze(new Certificate(privateCopy(der)));
  owned.set(cert, digest);
  certificates.set(digest, cert);
  return cert;
}

function spkiDigest(cert: Certificate): string {
  const memo = spkiDigests.get(cert);
  if (memo !== undefined && memo.spki === cert.spki) return memo.digest;
  const digest = sha256(cert.spki);
  spkiDigests.set(cert, { spki: cert.spki, digest });
  return digest;
}

function sameKey(a: KeyObject, b: KeyObject): boolean {
  return a === b || (a.asymmetricKeyType === b.asymmetricKeyType && a.equals(b));
}

/**
 * `checkSignature(child, issuer.publicKey)`, answered from the cache when the
 * same child bytes were already verified with an equal key under the same
 * SPKI bytes. Only children owned by this module (CA certificates parsed by
 * {@link parseCertificateCached}, hence immutable) are cached, so the checks
 * cached are those of intermediates; only successes are stored.
 * @throws EncodingError when the issuer's public key is unusable (never cached).
 */
export function checkSignatureCached(child: Certificate, issuer: Certificate): string | undefined {
  const childDigest = owned.get(child);
  const key = childDigest !== undefined && issuer.spki.byteLength <= MAX_CACHED_DER ? childDigest + spkiDigest(issuer) : undefined;
  const issuerKey = issuer.publicKey;
  if (key !== undefined) {
    const hit = signatures.get(key);
    if (hit !== undefined && hit.child.equals(child.der) && hit.spki.equals(issuer.spki) && sameKey(hit.key, issuerKey)) {
      stats.signatureHits++;
      return undefined;
    }
  }
  const result = checkSignature(child, issuerKey);
  if (result === undefined && key !== undefined) signatures.set(key, { child: child.der, spki: privateCopy(issuer.spki), key: issuerKey });
  return result;
}

/** @internal For tests: entry counts and hit counters of both caches. */
export function verifyCacheStats(): { certificates: number; signatures: number; certificateHits: number; signatureHits: number; maxEntries: number } {
  return { certificates: certificates.size, signatures: signatures.size, ...stats, maxEntries: MAX_ENTRIES };
}

/** @internal For tests: empties both caches and resets the counters. */
export function clearVerifyCaches(): void {
  certificates.clear();
  signatures.clear();
  stats.certificateHits = 0;
  stats.signatureHits = 0;
}

import type { TrustDomain } from '../id/index.js';
import type { SpiffeId } from '../id/index.js';
import { SpiffeError, X509SvidError } from '../errors/index.js';
import type { X509BundleSource } from '../bundle/source.js';
import { Certificate, KeyUsage, type NameSubtree } from '../internal/x509/certificate.js';
import { checkSignatureCached, parseCertificateCached } from '../internal/x509/verify-cache.js';
import { checkLeaf, parseCertificates } from './leaf-checks.js';

/** Options for {@link verifyX509Svid}. */
export interface X509VerifyOptions {
  /** The time at which validity is checked; default: now. */
  readonly time?: Date;
}

/** What a successful verification proved. */
export interface VerifiedX509Svid {
  /** The SPIFFE ID of the leaf. */
  readonly id: SpiffeId;
  /** Every chain found, leaf first, ending with a bundle authority (DER). */
  readonly verifiedChains: Buffer[][];
}

const MAX_CHAIN = 10;
/**
 * Most signature checks one verification may spend. Crafted chains of
 * self-issued CAs sharing a subject make naive path search factorial
 * (Go caps it at 100 too, CVE-2018-16875).
 */
const MAX_SIGNATURE_CHECKS = 100;
const MAX_PATHS = 1000;

/**
 * Verifies an X509-SVID chain as received from a peer (leaf first, then any
 * intermediates) against the X.509 bundle of **the leaf ID's trust domain
 * only** (X509-SVID §5): RFC 5280 path validation with CA flags, keyCertSign,
 * pathLen, name constraints, unknown critical extensions, signature algorithms
 * and validity times (of every certificate in the chain, at `options.time`).
 *
 * @throws {@link X509SvidError} `ERR_X509SVID_INVALID` for a malformed SVID,
 * `ERR_X509SVID_UNTRUSTED` when no valid chain reaches the bundle.
 * @example
 * ```ts
 * const { id } = verifyX509Svid(peerChainDer, bundleSet);
 * ```
 */
export function verifyX509Svid(rawCerts: readonly Uint8Array[], bundleSource: X509BundleSource, options: X509VerifyOptions = {}): VerifiedX509Svid {
  // Parsed certificates come from a cache shared by all verifications. The chain search tells
  // certificates apart by identity, so a DER sent twice in one chain gets a fresh object, exactly
  // as without the cache.
  const seen = new Set<Certificate>();
  const parse = (der: Uint8Array): Certificate => {
    const cert = parseCertificateCached(der);
    if (!seen.has(cert)) {
      seen.add(cert);
      return cert;
    }
    return new Certificate(der);
  };
  const certs = parseCertificates(rawCerts, 'ERR_X509SVID_INVALID', parse);
  return verifyParsed(certs, bundleSource, options);
}

/** @internal Verification over already parsed certificates. */
export function verifyParsed(certs: readonly Certificate[], bundleSource: X509BundleSource, options: X509VerifyOptions = {}): VerifiedX509Svid {
  const leaf = certs[0]!;
  const id = checkLeaf(leaf, 'ERR_X509SVID_INVALID');
  if (certs.length > MAX_CHAIN) throw new X509SvidError('ERR_X509SVID_INVALID', `certificate chain has ${certs.length} certificates; at most ${MAX_CHAIN} are accepted`);
  const roots = rootsFor(id.trustDomain, bundleSource);
  const now = options.time ?? new Date();
  const chains = buildChains(leaf, certs.slice(1), roots, now);
  if (typeof chains === 'string') throw new X509SvidError('ERR_X509SVID_UNTRUSTED', `could not verify leaf certificate: ${chains}`);
  // Copies: cached certificates must never be reachable (and changeable) by callers or authorizers.
  return { id, verifiedChains: chains.map((c) => c.map((x) => Buffer.from(x.der))) };
}

function rootsFor(td: TrustDomain, source: X509BundleSource): readonly Certificate[] {
  try {
    return source.getX509BundleForTrustDomain(td).certificates();
  } catch (e) {
    if (e instanceof SpiffeError) {
      throw new X509SvidError('ERR_X509SVID_UNTRUSTED', `could not get X509 bundle for trust domain "${td.name}": ${e.message}`, { cause: e });
    }
    throw e;
  }
}

function validityError(c: Certificate, now: Date, role: string): string | undefined {
  if (now < c.notBefore) return `${role} certificate is not yet valid (valid from ${c.notBefore.toISOString()}, now ${now.toISOString()})`;
  if (now > c.notAfter) return `${role} certificate has expired (valid until ${c.notAfter.toISOString()}, now ${now.toISOString()})`;
  return undefined;
}

/**
 * Depth-first search for chains leaf → intermediates* → root. Returns the
 * chains, or the most specific reason no chain could be built.
 */
function buildChains(leaf: Certificate, intermediates: readonly Certificate[], roots: readonly Certificate[], now: Date): Certificate[][] | string {
  const leafErr = validityError(leaf, now, 'leaf') ?? criticalError(leaf, 'leaf');
  if (leafErr) return leafErr;
  const chains: Certificate[][] = [];
  const budget: SignatureBudget = { checks: 0, visits: 0, results: new Map() };
  let reason = 'certificate signed by unknown authority';
  let reasonDepth = -1;
  const note = (depth: number, r: string): void => {
    if (depth >= reasonDepth) {
      reason = r;
      reasonDepth = depth;
    }
  };

  const extend = (chain: Certificate[]): void => {
    if (++budget.visits > MAX_PATHS) {
      note(Number.MAX_SAFE_INTEGER, 'too many candidate chains');
      return;
    }
    const current = chain[chain.length - 1]!;
    const depth = chain.length;
    for (const root of roots) {
      if (!root.subjectRaw.equals(current.issuerRaw)) continue;
      const err = issuerError(root, current, chain, now, 'root', budget);
      if (err) {
        note(depth, err);
        continue;
      }
      chains.push([...chain, root]);
    }
    if (depth >= MAX_CHAIN) {
      note(depth, 'certificate chain is too long');
      return;
    }
    for (const inter of intermediates) {
      if (chain.includes(inter) || !inter.subjectRaw.equals(current.issuerRaw)) continue;
      const err = issuerError(inter, current, chain, now, 'intermediate', budget) ?? criticalError(inter, 'intermediate');
      if (err) {
        note(depth, err);
        continue;
      }
      extend([...chain, inter]);
    }
  };
  extend([leaf]);
  if (chains.length === 0 && budget.checks > MAX_SIGNATURE_CHECKS) return 'too many signature checks while building the chain';
  return chains.length > 0 ? chains : reason;
}

function criticalError(c: Certificate, role: string): string | undefined {
  if (c.unhandledCritical.length > 0) return `${role} certificate has unhandled critical extension ${c.unhandledCritical.join(', ')}`;
  if (c.nameConstraints?.critical && [...c.nameConstraints.permitted, ...c.nameConstraints.excluded].some((s) => s.type === 'other')) {
    return `${role} certificate has an unsupported name constraint type`;
  }
  return undefined;
}

interface SignatureBudget {
  checks: number;
  /** Partial chains explored; bounded so that memoized checks cannot hide a factorial search. */
  visits: number;
  results: Map<Certificate, Map<Certificate, string | undefined>>;
}

/**
 * A memoized, budgeted signature check of `child` by `issuer`. A check answered
 * by the process-wide cache of successful checks still counts against
 * MAX_SIGNATURE_CHECKS, so the search limits, and the verdicts they produce,
 * are the same whether or not the cache is warm.
 */
function signatureError(child: Certificate, issuer: Certificate, budget: SignatureBudget): string | undefined {
  let byIssuer = budget.results.get(child);
  if (byIssuer?.has(issuer)) return byIssuer.get(issuer);
  if (++budget.checks > MAX_SIGNATURE_CHECKS) return 'too many signature checks while building the chain';
  let result: string | undefined;
  try {
    result = checkSignatureCached(child, issuer);
  } catch (e) {
    result = `issuer public key is unusable: ${(e as Error).message}`;
  }
  if (!byIssuer) budget.results.set(child, (byIssuer = new Map()));
  byIssuer.set(issuer, result);
  return result;
}

/** Checks `issuer` as the signer of `child` at the top of `chain` (RFC 5280 §6.1.3/§6.1.4). */
function issuerError(issuer: Certificate, child: Certificate, chain: Certificate[], now: Date, role: 'root' | 'intermediate', budget: SignatureBudget): string | undefined {
  if (!issuer.isCa) return `${role} certificate is not a CA (signing certificate must have CA flag set to true)`;
  if (role === 'intermediate' || issuer.keyUsage !== undefined) {
    if (!issuer.hasKeyUsage(KeyUsage.keyCertSign)) return `${role} certificate must have 'keyCertSign' set as key usage`;
  }
  const v = validityError(issuer, now, role);
  if (v) return v;
  const sigErr = signatureError(child, issuer, budget);
  if (sigErr) return `${role === 'root' ? 'certificate signed by unknown authority' : 'intermediate does not sign its child'}: ${sigErr}`;
  // pathLen counts the non-self-issued intermediates below the issuer (the leaf excluded).
  if (issuer.basicConstraints?.pathLen !== undefined) {
    const below = chain.slice(1).filter((c) => !c.selfIssued).length;
    if (below > issuer.basicConstraints.pathLen) return `${role} certificate path length constraint (${issuer.basicConstraints.pathLen}) exceeded`;
  }
  if (issuer.nameConstraints) {
    const ncErr = nameConstraintError(issuer, chain);
    if (ncErr) return ncErr;
  }
  return undefined;
}

function matchesDomain(name: string, constraint: string): boolean {
  const n = name.toLowerCase();
  const c = constraint.toLowerCase();
  if (c === '') return true;
  if (c.startsWith('.')) return n.endsWith(c);
  return n === c || n.endsWith('.' + c);
}

function uriHost(uri: string): string | undefined {
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)/.exec(uri);
  if (!m) return undefined;
  const host = m[1]!.replace(/^.*@/, '').replace(/:\d*$/, '');
  return host.length > 0 ? host : undefined;
}

function matchesUri(uri: string, constraint: string): boolean {
  const host = uriHost(uri);
  if (host === undefined) return false;
  const c = constraint.toLowerCase();
  const h = host.toLowerCase();
  return c.startsWith('.') ? h.endsWith(c) : h === c;
}

function ipToBytes(ip: string): Uint8Array {
  if (!ip.includes(':')) return Uint8Array.from(ip.split('.').map(Number));
  const b = new Uint8Array(16);
  ip.split(':').forEach((g, i) => {
    const v = parseInt(g, 16);
    b[i * 2] = v >> 8;
    b[i * 2 + 1] = v & 0xff;
  });
  return b;
}

function matchesIp(ip: string, st: NameSubtree): boolean {
  const a = ipToBytes(ip);
  const net = st.ip!;
  if (a.length !== net.address.length) return false;
  for (let i = 0; i < a.length; i++) if ((a[i]! & net.mask[i]!) !== (net.address[i]! & net.mask[i]!)) return false;
  return true;
}

function matchesEmail(email: string, constraint: string): boolean {
  if (constraint.includes('@')) return email.toLowerCase() === constraint.toLowerCase();
  const domain = email.slice(email.lastIndexOf('@') + 1);
  return constraint.startsWith('.') ? matchesDomain(domain, constraint) : domain.toLowerCase() === constraint.toLowerCase();
}

/** Name constraints of `ca` over the subject alternative names of every certificate below it (RFC 5280 §4.2.1.10). */
function nameConstraintError(ca: Certificate, chain: Certificate[]): string | undefined {
  const nc = ca.nameConstraints!;
  for (let i = 0; i < chain.length; i++) {
    const c = chain[i]!;
    if (i > 0 && c.selfIssued) continue;
    const names: [NameSubtree['type'], string][] = [
      ...c.subjectAltNames.uris.map((u) => ['uri', u] as [NameSubtree['type'], string]),
      ...c.subjectAltNames.dnsNames.map((d) => ['dns', d] as [NameSubtree['type'], string]),
      ...c.subjectAltNames.ipAddresses.map((d) => ['ip', d] as [NameSubtree['type'], string]),
      ...c.subjectAltNames.emails.map((d) => ['email', d] as [NameSubtree['type'], string]),
    ];
    for (const [type, name] of names) {
      const match = (st: NameSubtree): boolean =>
        st.type === type &&
        (type === 'uri' ? matchesUri(name, st.value) : type === 'dns' ? matchesDomain(name, st.value) : type === 'ip' ? matchesIp(name, st) : matchesEmail(name, st.value));
      if (nc.excluded.some(match)) return `name "${name}" is excluded by a name constraint of its issuer`;
      const permittedOfType = nc.permitted.filter((st) => st.type === type);
      if (permittedOfType.length > 0 && !permittedOfType.some(match)) return `name "${name}" is not permitted by a name constraint of its issuer`;
    }
  }
  return undefined;
}

/**
 * Strict conversion of Workload API messages into library types, as
 * go-spiffe's `workloadapi` client does (`parseX509Context`,
 * `parseX509Bundles`, `parseJWTSVIDs`, `parseJWTBundles`).
 * @internal
 */
import { BundleError, JwtSvidError, X509SvidError } from '../errors/index.js';
import { TrustDomain } from '../id/index.js';
import { X509Bundle } from '../bundle/x509-bundle.js';
import { JwtBundle } from '../bundle/jwt-bundle.js';
import { JwtBundleSet, X509BundleSet } from '../bundle/bundle-set.js';
import { X509Svid } from '../svid/x509-svid.js';
import { JwtSvid } from '../svid/jwt-svid.js';
import type { JWTBundlesResponse, JWTSVIDResponse, X509BundlesResponse, X509SVIDResponse } from './gen/workload/workload_pb.js';

/** The SVIDs and bundles of one X509SVIDResponse (go-spiffe's `X509Context`). */
export interface X509Context {
  /** The SVIDs, in the agent's order (first one is the default). */
  readonly svids: readonly X509Svid[];
  /** The own trust domain's bundle(s) and the federated bundles. */
  readonly bundles: X509BundleSet;
}

function trustDomainOf(key: string, what: string): TrustDomain {
  try {
    return TrustDomain.parse(key);
  } catch (e) {
    throw new BundleError('ERR_BUNDLE_INVALID', `${what}: invalid trust domain "${key}": ${(e as Error).message}`, { cause: e });
  }
}

function parseX509Bundle(key: string, der: Uint8Array): X509Bundle {
  const td = trustDomainOf(key, 'X.509 bundle');
  if (der.length === 0) throw new BundleError('ERR_BUNDLE_INVALID', `empty X.509 bundle for trust domain "${td.name}"`);
  return X509Bundle.parseDer(td, der);
}

/** X509SVIDResponse.svids → SVIDs; duplicate non-empty hints keep the first (Workload API §5.2). */
export function parseX509Svids(resp: X509SVIDResponse, firstOnly: boolean): X509Svid[] {
  if (resp.svids.length === 0) throw new X509SvidError('ERR_X509SVID_INVALID', 'no SVIDs in the Workload API response');
  const n = firstOnly ? 1 : resp.svids.length;
  const hints = new Set<string>();
  const out: X509Svid[] = [];
  for (const m of resp.svids.slice(0, n)) {
    if (m.hint !== '' && hints.has(m.hint)) continue;
    hints.add(m.hint);
    const svid = X509Svid.parseRaw(m.x509Svid, m.x509SvidKey, m.hint);
    if (svid.id.toString() !== m.spiffeId) {
      throw new X509SvidError('ERR_X509SVID_INVALID', `SVID for "${m.spiffeId}" carries a certificate for "${svid.id.toString()}"`);
    }
    out.push(svid);
  }
  return out;
}

/** The full X.509 context of an X509SVIDResponse. */
export function parseX509Context(resp: X509SVIDResponse): X509Context {
  const svids = parseX509Svids(resp, false);
  const bundles = new X509BundleSet();
  for (const m of resp.svids) bundles.add(parseX509Bundle(m.spiffeId, m.bundle));
  for (const [key, der] of Object.entries(resp.federatedBundles)) bundles.add(parseX509Bundle(key, der));
  return Object.freeze({ svids: Object.freeze(svids), bundles });
}

export function parseX509Bundles(resp: X509BundlesResponse): X509BundleSet {
  const set = new X509BundleSet();
  for (const [key, der] of Object.entries(resp.bundles)) set.add(parseX509Bundle(key, der));
  return set;
}

export function parseJwtBundles(resp: JWTBundlesResponse): JwtBundleSet {
  const set = new JwtBundleSet();
  for (const [key, jwks] of Object.entries(resp.bundles)) set.add(JwtBundle.parse(trustDomainOf(key, 'JWT bundle'), jwks));
  return set;
}

export function parseJwtSvids(resp: JWTSVIDResponse, audience: readonly string[], firstOnly: boolean): JwtSvid[] {
  if (resp.svids.length === 0) throw new JwtSvidError('ERR_JWTSVID_INVALID', 'there were no JWT-SVIDs in the Workload API response');
  const hints = new Set<string>();
  const out: JwtSvid[] = [];
  for (const m of resp.svids.slice(0, firstOnly ? 1 : resp.svids.length)) {
    if (m.hint !== '' && hints.has(m.hint)) continue;
    hints.add(m.hint);
    out.push(JwtSvid.parseInsecure(m.svid, audience, { hint: m.hint }));
  }
  return out;
}

/**
 * An upstream CA: when configured, every CA key of the trust domain is an
 * intermediate signed by it, the upstream's roots go in the bundle, and the
 * intermediates travel in every X509-SVID chain (X509-SVID §5; SPIRE's
 * `disk` UpstreamAuthority).
 */
import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parsePrivateKey } from '@tessera/spiffe/svid';
import { Certificate, KeyUsage, parsePemCertificates, signatureSchemeFor } from '@tessera/spiffe/x509';
import { CaError } from './errors.js';

/**
 * The upstream CA's material.
 *
 * @example
 * ```ts
 * const upstream = loadUpstreamAuthority({ certFile: 'upstream.pem', keyFile: 'upstream.key' });
 * ```
 */
export interface UpstreamAuthority {
  /** DER certificates: the upstream signing CA first, then its chain (roots may be included). */
  readonly certificates: readonly Buffer[];
  /** The upstream signing CA's private key. */
  readonly privateKey: KeyObject;
  /** The trust anchors that go in the bundle (DER). */
  readonly roots: readonly Buffer[];
}

/** Files of an upstream CA (PEM). */
export interface UpstreamFiles {
  /** The upstream signing CA certificate, optionally followed by its chain. */
  readonly certFile: string;
  /** Its private key (PKCS#8, SEC1 or PKCS#1 PEM, unencrypted). */
  readonly keyFile: string;
  /** The roots to publish; default: the last certificate of `certFile`, which must then be self-signed. */
  readonly bundleFile?: string;
}

/** An upstream CA after {@link checkUpstreamAuthority}. */
export interface CheckedUpstream {
  readonly signer: Certificate;
  readonly privateKey: KeyObject;
  /** Certificates to send after the trust domain's own CA certificate: the upstream chain minus the roots. */
  readonly chain: readonly Buffer[];
  readonly roots: readonly Buffer[];
}

function fail(message: string, cause?: unknown): CaError {
  return new CaError('CA_UPSTREAM_INVALID', `upstream CA: ${message}`, cause === undefined ? undefined : { cause });
}

function readText(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw fail(`cannot read ${what} "${path}": ${(e as Error).message}`, e);
  }
}

/**
 * Reads an upstream CA from PEM files.
 *
 * @throws {@link CaError} `CA_UPSTREAM_INVALID` when a file is missing or
 * malformed, or no roots can be determined.
 * @example
 * ```ts
 * const upstream = loadUpstreamAuthority({ certFile: '/etc/tessera/upstream.pem', keyFile: '/etc/tessera/upstream.key' });
 * ```
 */
export function loadUpstreamAuthority(files: UpstreamFiles): UpstreamAuthority {
  let certs: Certificate[];
  let privateKey: KeyObject;
  let roots: Certificate[];
  try {
    certs = parsePemCertificates(readText(files.certFile, 'certificate file'));
    privateKey = parsePrivateKey(readText(files.keyFile, 'key file'));
    roots = files.bundleFile === undefined ? [] : parsePemCertificates(readText(files.bundleFile, 'bundle file'));
  } catch (e) {
    if (e instanceof CaError) throw e;
    throw fail((e as Error).message, e);
  }
  if (certs.length === 0) throw fail(`"${files.certFile}" holds no certificate`);
  if (files.bundleFile === undefined) {
    const last = certs[certs.length - 1]!;
    if (!last.selfIssued) throw fail(`the last certificate of "${files.certFile}" is not self-signed; give the upstream roots in a bundle file`);
    roots = [last];
  } else if (roots.length === 0) {
    throw fail(`"${files.bundleFile}" holds no certificate`);
  }
  return { certificates: certs.map((c) => c.der), privateKey, roots: roots.map((c) => c.der) };
}

const CHALLENGE = Buffer.from('tessera upstream CA key check');

/**
 * Checks an upstream CA before it signs anything: the signing certificate is
 * a CA with keyCertSign that may sign a CA below it (pathLen), the key is
 * its key, every certificate is valid at `now`, roots are CA certificates.
 * (The whole chain is verified end to end each time a CA certificate is
 * minted, see `mintCaCertificate`.)
 *
 * @throws {@link CaError} `CA_UPSTREAM_INVALID` naming the defect.
 */
export function checkUpstreamAuthority(upstream: UpstreamAuthority, now: Date): CheckedUpstream {
  let certs: Certificate[];
  let roots: Certificate[];
  try {
    certs = upstream.certificates.map((d) => new Certificate(d));
    roots = upstream.roots.map((d) => new Certificate(d));
  } catch (e) {
    throw fail((e as Error).message, e);
  }
  const signer = certs[0];
  if (signer === undefined) throw fail('no certificate given');
  if (roots.length === 0) throw fail('no root certificate given');
  if (!signer.isCa) throw fail('the signing certificate is not a CA (basicConstraints cA=true is required)');
  if (!signer.hasKeyUsage(KeyUsage.keyCertSign) && signer.keyUsage !== undefined) throw fail("the signing certificate lacks the 'keyCertSign' key usage");
  if (signer.basicConstraints?.pathLen === 0) throw fail('the signing certificate has pathLen 0, so it cannot sign the trust domain\'s intermediate CA');
  for (const r of roots) if (!r.isCa) throw fail(`root ${r.serialHex} is not a CA certificate`);
  for (const c of [...certs, ...roots]) {
    if (now < c.notBefore) throw fail(`certificate ${c.serialHex} is not valid before ${c.notBefore.toISOString()}`);
    if (now > c.notAfter) throw fail(`certificate ${c.serialHex} expired at ${c.notAfter.toISOString()}`);
  }
  const key = upstream.privateKey;
  if (key.type !== 'private') throw fail('the key is not a private key');
  try {
    signatureSchemeFor(key);
  } catch (e) {
    throw fail(`unsupported key: ${(e as Error).message}`, e);
  }
  let matches = false;
  try {
    const digest = key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
    matches = createPublicKey(key).equals(signer.publicKey) && verify(digest, CHALLENGE, signer.publicKey, sign(digest, CHALLENGE, key));
  } catch {
    matches = false;
  }
  if (!matches) throw fail('the private key does not belong to the signing certificate');
  const rootDers = roots.map((r) => r.der);
  const chain = certs.map((c) => c.der).filter((d) => !rootDers.some((r) => r.equals(d)));
  return { signer, privateKey: key, chain, roots: rootDers };
}

import { readFileSync } from 'node:fs';
import { BundleError, EncodingError } from '../errors/index.js';
import { TrustDomain } from '../id/index.js';
import { Certificate } from '../internal/x509/certificate.js';
import { splitDerSequence } from '../internal/asn1/split.js';
import { decodePem, encodePem, looksLikePem } from '../internal/pem.js';
import type { X509BundleSource } from './source.js';

/**
 * The X.509 authorities (CA certificates) of one trust domain
 * (SPIFFE Trust Domain and Bundle §4, X509-SVID §6). Used to verify
 * X509-SVIDs of that trust domain only. Implements {@link X509BundleSource}.
 *
 * @example
 * ```ts
 * const bundle = X509Bundle.load(TrustDomain.parse('example.org'), 'bundle.pem');
 * bundle.x509Authorities().length;
 * ```
 */
export class X509Bundle implements X509BundleSource {
  readonly trustDomain: TrustDomain;
  #authorities: Certificate[];

  constructor(trustDomain: TrustDomain, authorities: Iterable<Uint8Array | Certificate> = []) {
    this.trustDomain = trustDomain;
    this.#authorities = [];
    for (const a of authorities) this.addX509Authority(a);
  }

  /**
   * Parses PEM text holding zero or more `CERTIFICATE` blocks.
   * @throws {@link BundleError} `ERR_BUNDLE_INVALID` on a non-certificate block or a malformed certificate.
   */
  static parse(td: TrustDomain, pem: string | Uint8Array): X509Bundle {
    let blocks;
    try {
      blocks = decodePem(pem);
    } catch (e) {
      throw new BundleError('ERR_BUNDLE_INVALID', `cannot parse X.509 bundle: ${(e as Error).message}`, { cause: e });
    }
    if (blocks.length === 0 && (typeof pem === 'string' ? pem.trim() : Buffer.from(pem).toString().trim()).length > 0) {
      throw new BundleError('ERR_BUNDLE_INVALID', 'cannot parse X.509 bundle: no PEM blocks found');
    }
    const certs: Certificate[] = [];
    for (const b of blocks) {
      if (b.type !== 'CERTIFICATE') {
        throw new BundleError('ERR_BUNDLE_INVALID', `cannot parse X.509 bundle: expected PEM block "CERTIFICATE", got "${b.type}"`);
      }
      certs.push(parseAuthority(b.der));
    }
    return new X509Bundle(td, certs);
  }

  /**
   * Parses concatenated DER certificates, the Workload API's bundle form
   * (SPIFFE Workload API §5.2).
   * @throws {@link BundleError} `ERR_BUNDLE_INVALID`
   */
  static parseDer(td: TrustDomain, der: Uint8Array): X509Bundle {
    let parts: Uint8Array[];
    try {
      parts = splitDerSequence(der);
    } catch (e) {
      throw new BundleError('ERR_BUNDLE_INVALID', `cannot parse X.509 bundle: ${(e as Error).message}`, { cause: e });
    }
    return new X509Bundle(td, parts.map(parseAuthority));
  }

  /** Reads a PEM or DER bundle file. @throws {@link BundleError} */
  static load(td: TrustDomain, path: string): X509Bundle {
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch (e) {
      throw new BundleError('ERR_BUNDLE_INVALID', `cannot read X.509 bundle file "${path}": ${(e as Error).message}`, { cause: e });
    }
    return looksLikePem(data) ? X509Bundle.parse(td, data) : X509Bundle.parseDer(td, data);
  }

  /** The authorities as DER buffers. */
  x509Authorities(): Buffer[] {
    return this.#authorities.map((c) => c.der);
  }

  /** @internal The parsed authorities. */
  certificates(): readonly Certificate[] {
    return this.#authorities;
  }

  /** Adds an authority unless an identical one is present. */
  addX509Authority(cert: Uint8Array | Certificate): void {
    const c = cert instanceof Certificate ? cert : parseAuthority(cert);
    if (!this.#authorities.some((a) => a.der.equals(c.der))) this.#authorities.push(c);
  }

  /** Removes an authority (by DER equality). */
  removeX509Authority(der: Uint8Array): void {
    const b = Buffer.from(der);
    this.#authorities = this.#authorities.filter((a) => !a.der.equals(b));
  }

  hasX509Authority(der: Uint8Array): boolean {
    const b = Buffer.from(der);
    return this.#authorities.some((a) => a.der.equals(b));
  }

  /** Whether both bundles hold the same trust domain and authorities, in any order. */
  equals(other: X509Bundle): boolean {
    if (!other.trustDomain.equals(this.trustDomain) || other.#authorities.length !== this.#authorities.length) return false;
    return this.#authorities.every((a) => other.#authorities.some((b) => a.der.equals(b.der)));
  }

  isEmpty(): boolean {
    return this.#authorities.length === 0;
  }

  clone(): X509Bundle {
    return new X509Bundle(this.trustDomain, this.#authorities);
  }

  /** PEM encoding of the authorities. */
  marshal(): string {
    return this.#authorities.map((a) => encodePem('CERTIFICATE', a.der)).join('');
  }

  /** Concatenated DER of the authorities. */
  marshalDer(): Buffer {
    return Buffer.concat(this.#authorities.map((a) => a.der));
  }

  /** Returns this bundle for its own trust domain. @throws {@link BundleError} for any other. */
  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle {
    if (!td.equals(this.trustDomain)) {
      throw new BundleError('ERR_BUNDLE_NOT_FOUND', `no X.509 bundle found for trust domain "${td.name}"`);
    }
    return this;
  }
}

function parseAuthority(der: Uint8Array): Certificate {
  try {
    return new Certificate(der);
  } catch (e) {
    if (e instanceof EncodingError) throw new BundleError('ERR_BUNDLE_INVALID', `cannot parse X.509 bundle: ${e.message}`, { cause: e });
    throw e;
  }
}


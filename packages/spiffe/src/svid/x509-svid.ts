import { readFileSync } from 'node:fs';
import { KeyObject } from 'node:crypto';
import { EncodingError, SpiffeError, X509SvidError } from '../errors/index.js';
import type { SpiffeId } from '../id/index.js';
import type { Certificate } from '../internal/x509/certificate.js';
import { splitDerSequence } from '../internal/asn1/split.js';
import { decodePem, encodePem } from '../internal/pem.js';
import { checkLeaf, parseCertificates, signingCertificateError } from './leaf-checks.js';
import { keysMatch, parsePrivateKey } from './private-key.js';

/**
 * Anything that can hand out the current X509-SVID: a static
 * {@link X509Svid}, or the live Workload API source (go-spiffe's `x509svid.Source`).
 */
export interface X509SvidSource {
  /** The current SVID. @throws {@link SpiffeError} when none is available. */
  getX509Svid(): X509Svid;
}

const INVALID = 'ERR_X509SVID_INVALID';

/**
 * An X509-SVID with its private key (X509-SVID §3–§5): a leaf certificate
 * carrying one SPIFFE ID, the intermediates up to (not including) a bundle
 * authority, and the leaf's private key.
 *
 * Construction applies every rule go-spiffe's `x509svid.Parse` applies, plus
 * a critical keyUsage on the leaf and the 255-byte trust domain limit.
 *
 * @example
 * ```ts
 * const svid = X509Svid.load('svid.pem', 'svid.key');
 * svid.id.toString(); // "spiffe://example.org/web"
 * ```
 */
export class X509Svid implements X509SvidSource {
  readonly id: SpiffeId;
  /** DER certificates, leaf first. */
  readonly certificates: readonly Buffer[];
  readonly privateKey: KeyObject;
  /** Operator hint from the Workload API (X509SVID.hint), or `''`. */
  readonly hint: string;
  readonly #parsed: readonly Certificate[];

  private constructor(id: SpiffeId, parsed: readonly Certificate[], key: KeyObject, hint: string) {
    this.id = id;
    this.#parsed = parsed;
    this.certificates = parsed.map((c) => c.der);
    this.privateKey = key;
    this.hint = hint;
  }

  /**
   * Parses a PEM certificate chain (leaf first) and a PEM private key.
   * @throws {@link X509SvidError} `ERR_X509SVID_INVALID` naming the broken rule.
   */
  static parse(certsPem: string | Uint8Array, keyPem: string | Uint8Array, hint = ''): X509Svid {
    let blocks;
    try {
      blocks = decodePem(certsPem);
    } catch (e) {
      throw new X509SvidError(INVALID, `cannot parse certificate: ${(e as Error).message}`, { cause: e });
    }
    const certs = blocks.filter((b) => b.type === 'CERTIFICATE');
    if (certs.length !== blocks.length) throw new X509SvidError(INVALID, 'cannot parse certificate: unexpected non-CERTIFICATE PEM block');
    return X509Svid.#build(certs.map((b) => b.der), keyPem, hint);
  }

  /**
   * Parses the Workload API form: concatenated DER certificates and a PKCS#8 DER key.
   * @throws {@link X509SvidError} `ERR_X509SVID_INVALID`
   */
  static parseRaw(certsDer: Uint8Array, keyDer: Uint8Array, hint = ''): X509Svid {
    let parts: Uint8Array[];
    try {
      parts = splitDerSequence(certsDer);
    } catch (e) {
      throw new X509SvidError(INVALID, `cannot parse certificate: ${(e as Error).message}`, { cause: e });
    }
    return X509Svid.#build(parts, keyDer, hint);
  }

  /** Reads PEM files. @throws {@link X509SvidError} */
  static load(certFile: string, keyFile: string): X509Svid {
    const read = (f: string): Buffer => {
      try {
        return readFileSync(f);
      } catch (e) {
        throw new X509SvidError(INVALID, `cannot read "${f}": ${(e as Error).message}`, { cause: e });
      }
    };
    return X509Svid.parse(read(certFile), read(keyFile));
  }

  /** @internal Builds from already parsed, already checked parts (used by issuers). */
  static fromParts(certs: readonly Uint8Array[], key: KeyObject, hint = ''): X509Svid {
    return X509Svid.#build(certs, key, hint);
  }

  static #build(ders: readonly Uint8Array[], keyData: Uint8Array | string | KeyObject, hint: string): X509Svid {
    const parsed = parseCertificates(ders, INVALID);
    const leaf = parsed[0]!;
    const id = checkLeaf(leaf, INVALID);
    for (const c of parsed.slice(1)) {
      const err = signingCertificateError(c);
      if (err) throw new X509SvidError(INVALID, err);
    }
    let key: KeyObject;
    try {
      key = keyData instanceof KeyObject ? keyData : parsePrivateKey(keyData);
    } catch (e) {
      if (e instanceof EncodingError) throw new X509SvidError(INVALID, `cannot parse private key: ${e.message}`, { cause: e });
      throw e;
    }
    let leafKey: KeyObject;
    try {
      leafKey = leaf.publicKey;
    } catch (e) {
      if (e instanceof SpiffeError) throw new X509SvidError(INVALID, e.message, { cause: e });
      throw e;
    }
    if (!keysMatch(key, leafKey)) throw new X509SvidError(INVALID, 'private key does not match certificate public key');
    return new X509Svid(id, parsed, key, hint);
  }

  /** The leaf's expiry. */
  get expiresAt(): Date {
    return this.#parsed[0]!.notAfter;
  }

  /** The leaf's start of validity. */
  get issuedAt(): Date {
    return this.#parsed[0]!.notBefore;
  }

  /** @internal Parsed certificates, leaf first. */
  parsedCertificates(): readonly Certificate[] {
    return this.#parsed;
  }

  /** PEM encodings of the chain and of the key (PKCS#8). */
  marshal(): { certificates: string; privateKey: string } {
    return {
      certificates: this.certificates.map((c) => encodePem('CERTIFICATE', c)).join(''),
      privateKey: this.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    };
  }

  /** The Workload API encodings: concatenated DER chain and PKCS#8 DER key. */
  marshalRaw(): { certificates: Buffer; privateKey: Buffer } {
    return {
      certificates: Buffer.concat(this.certificates),
      privateKey: this.privateKey.export({ type: 'pkcs8', format: 'der' }) as Buffer,
    };
  }

  /** Returns itself: a static SVID is its own source. */
  getX509Svid(): X509Svid {
    return this;
  }
}

/**
 * The certificate rules of X509-SVID §4 and §5 shared by parse-with-key and
 * verification, with go-spiffe's error texts.
 * @internal
 */
import { SpiffeId } from '../id/index.js';
import { EncodingError, SpiffeError, X509SvidError } from '../errors/index.js';
import { Certificate, KeyUsage } from '../internal/x509/certificate.js';

type Code = 'ERR_X509SVID_INVALID' | 'ERR_X509SVID_UNTRUSTED';

/** Parses DER certificates with `parse` (default: uncached), mapping encoding failures to `code`. */
export function parseCertificates(ders: readonly Uint8Array[], code: Code, parse: (der: Uint8Array) => Certificate = (d) => new Certificate(d)): Certificate[] {
  if (ders.length === 0) throw new X509SvidError(code, 'no certificates found');
  return ders.map((d, i) => {
    try {
      return parse(d);
    } catch (e) {
      if (e instanceof EncodingError) throw new X509SvidError(code, `certificate ${i}: ${e.message}`, { cause: e });
      throw e;
    }
  });
}

/** The SPIFFE ID in a certificate's single URI SAN (X509-SVID §2). */
export function idFromCertificate(cert: Certificate, code: Code): SpiffeId {
  const uris = cert.subjectAltNames.uris;
  if (uris.length === 0) throw new X509SvidError(code, 'certificate contains no URI SAN');
  if (uris.length > 1) throw new X509SvidError(code, 'certificate contains more than one URI SAN');
  try {
    return SpiffeId.parse(uris[0]!);
  } catch (e) {
    if (e instanceof SpiffeError) throw new X509SvidError(code, `certificate URI SAN is not a valid SPIFFE ID: ${e.message}`, { cause: e });
    throw e;
  }
}

/** Leaf rules (X509-SVID §4.1, §4.3): non-root ID, not a CA, digitalSignature, no keyCertSign/cRLSign. */
export function checkLeaf(leaf: Certificate, code: Code): SpiffeId {
  const id = idFromCertificate(leaf, code);
  if (id.isRoot()) throw new X509SvidError(code, `leaf certificate SPIFFE ID "${id.toString()}" must have a non-root path`);
  if (leaf.isCa) throw new X509SvidError(code, 'leaf certificate must not have CA flag set to true');
  if (leaf.keyUsage === undefined) throw new X509SvidError(code, 'leaf certificate must have a key usage extension');
  if (!leaf.keyUsage.critical) throw new X509SvidError(code, 'leaf certificate key usage extension must be critical');
  if (!leaf.hasKeyUsage(KeyUsage.digitalSignature)) throw new X509SvidError(code, "leaf certificate must have 'digitalSignature' set as key usage");
  if (leaf.hasKeyUsage(KeyUsage.keyCertSign)) throw new X509SvidError(code, "leaf certificate must not have 'keyCertSign' set as key usage");
  if (leaf.hasKeyUsage(KeyUsage.cRLSign)) throw new X509SvidError(code, "leaf certificate must not have 'cRLSign' set as key usage");
  return id;
}

/** Signing-certificate rules (X509-SVID §4.1, §4.3): CA flag and keyCertSign. Returns a reason or undefined. */
export function signingCertificateError(cert: Certificate): string | undefined {
  if (!cert.isCa) return 'signing certificate must have CA flag set to true';
  if (!cert.hasKeyUsage(KeyUsage.keyCertSign)) return "signing certificate must have 'keyCertSign' set as key usage";
  return undefined;
}

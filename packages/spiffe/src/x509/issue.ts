/**
 * What a certificate issuer needs beyond reading certificates: the DER
 * certificate builder and its extension helpers (RFC 5280 §4.1–§4.2), key
 * identifiers, random serials, and PKCS#10 certification requests (RFC 2986)
 * with proof-of-possession checking. Re-exported from `@tessera/spiffe/x509`
 * for Tessera's server CA and agent; most applications never need it.
 *
 * - {@link buildCertificate}: encodes a TBSCertificate from pre-encoded parts
 *   and signs it (ECDSA with the curve's hash, SHA256-RSA, Ed25519 — see
 *   {@link signatureSchemeFor}).
 * - {@link encodeName}, {@link basicConstraintsExt}, {@link keyUsageExt},
 *   {@link extKeyUsageExt}, {@link subjectAltNameExt},
 *   {@link subjectKeyIdentifierExt}, {@link authorityKeyIdentifierExt}: the
 *   parts an X509-SVID and its CA carry (X509-SVID §4, spec/spiffe.md §2).
 * - {@link randomSerial}: a positive 128-bit serial (spec/spiffe.md §2).
 * - {@link keyIdentifier}: RFC 5280 §4.2.1.2 method 1 over an SPKI.
 * - {@link parseCertificateRequest} (and its `Async` form), {@link buildCertificateRequest},
 *   {@link parseSubjectPublicKeyInfo}, {@link encodeSubjectPublicKeyInfo}:
 *   strict PKCS#10 and SPKI handling for keys made on the node.
 *
 * @example
 * ```ts
 * import { buildCertificateRequest, parseCertificateRequest } from '@tessera/spiffe/x509';
 * const csr = buildCertificateRequest(privateKey, { uris: ['spiffe://example.org/web'] });
 * const req = parseCertificateRequest(csr); // throws unless the signature verifies
 * req.subjectPublicKey.keyType; // "ec-p256"
 * ```
 * @module
 */
export {
  buildCertificate,
  encodeName,
  basicConstraintsExt,
  keyUsageExt,
  extKeyUsageExt,
  subjectAltNameExt,
  subjectKeyIdentifierExt,
  authorityKeyIdentifierExt,
  randomSerial,
  type CertificateSpec,
  type NameAttribute,
  type AltNames,
} from '../internal/x509/builder.js';
export { keyIdentifier, signatureSchemeFor, type SignatureScheme } from '../internal/x509/signature.js';
export { OID } from '../internal/x509/oids.js';
export {
  parseCertificateRequest,
  parseCertificateRequestAsync,
  parseUnverifiedCertificateRequest,
  UnverifiedCertificateRequest,
  buildCertificateRequest,
  parseSubjectPublicKeyInfo,
  encodeSubjectPublicKeyInfo,
  MAX_CERTIFICATE_REQUEST_BYTES,
  type CertificateRequest,
  type CertificateRequestNames,
  type CertificateRequestProof,
  type ProofVerdict,
  type SubjectPublicKey,
  type SubjectKeyType,
} from '../internal/x509/csr.js';

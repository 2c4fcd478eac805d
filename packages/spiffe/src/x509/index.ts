/**
 * Read-only access to X.509 certificates for tools that show or check them
 * (for example `tessera svid inspect`): a strict DER parser and helpers to
 * name what it finds. Verification lives in `@tessera/spiffe/svid`; this
 * module never decides whether a certificate is trusted.
 * @module
 */
import type { KeyObject } from 'node:crypto';
import { EncodingError } from '../errors/index.js';
import { splitDerSequence } from '../internal/asn1/split.js';
import { decodePem } from '../internal/pem.js';
import { Certificate, KEY_USAGE_NAMES } from '../internal/x509/certificate.js';
import { OID, OID_NAMES } from '../internal/x509/oids.js';
import { signatureAlgorithmName } from '../internal/x509/signature.js';

export {
  Certificate,
  KeyUsage,
  type AttributeValue,
  type Extension,
  type NameConstraints,
  type NameSubtree,
  type SubjectAltNames,
} from '../internal/x509/certificate.js';
export { signatureAlgorithmName };

/**
 * Parses every `CERTIFICATE` block of PEM text, in order. Text outside the
 * blocks is ignored (as OpenSSL and Go do); blank input gives `[]`.
 *
 * @throws {@link EncodingError} `ERR_PEM_INVALID` when the text has no PEM
 * block at all, a broken block, or a block of another type (such as a
 * private key); `ERR_CERTIFICATE_INVALID` for a malformed certificate.
 * @example
 * ```ts
 * const [leaf] = parsePemCertificates(readFileSync('svid.pem', 'utf8'));
 * leaf.subjectAltNames.uris; // ["spiffe://example.org/web"]
 * ```
 */
export function parsePemCertificates(text: string | Uint8Array): Certificate[] {
  const blocks = decodePem(text);
  if (blocks.length === 0) {
    const s = typeof text === 'string' ? text : Buffer.from(text).toString('latin1');
    if (s.trim().length === 0) return [];
    throw new EncodingError('ERR_PEM_INVALID', 'no PEM data found: expected "-----BEGIN CERTIFICATE-----" blocks');
  }
  return blocks.map((b, i) => {
    if (b.type !== 'CERTIFICATE') {
      throw new EncodingError('ERR_PEM_INVALID', `PEM block ${i + 1} is a "${b.type}", expected "CERTIFICATE"`);
    }
    return new Certificate(b.der);
  });
}

/**
 * Parses one or more concatenated DER certificates (the Workload API's form
 * of chains and bundles).
 *
 * @throws {@link EncodingError} `ERR_CERTIFICATE_INVALID`
 * @example
 * ```ts
 * const chain = parseDerCertificates(svidResponse.x509Svid);
 * ```
 */
export function parseDerCertificates(der: Uint8Array): Certificate[] {
  let parts: Uint8Array[];
  try {
    parts = splitDerSequence(der);
  } catch (e) {
    throw new EncodingError('ERR_CERTIFICATE_INVALID', `malformed certificate: ${(e as Error).message}`, { cause: e });
  }
  return parts.map((p) => new Certificate(p));
}

const CURVE_NAMES: Record<string, string> = {
  prime256v1: 'P-256',
  secp384r1: 'P-384',
  secp521r1: 'P-521',
};

/**
 * A short human description of a public or private key: `"EC P-256"`,
 * `"RSA 2048"`, `"RSA-PSS 3072"`, `"Ed25519"`.
 *
 * @example
 * ```ts
 * describeKey(certificate.publicKey); // "EC P-256"
 * ```
 */
export function describeKey(key: KeyObject): string {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  switch (type) {
    case 'ec': {
      const curve = details.namedCurve;
      return curve === undefined ? 'EC' : `EC ${CURVE_NAMES[curve] ?? curve}`;
    }
    case 'rsa':
    case 'rsa-pss':
      return `${type.toUpperCase()}${details.modulusLength === undefined ? '' : ` ${details.modulusLength}`}`;
    case 'ed25519':
      return 'Ed25519';
    case 'ed448':
      return 'Ed448';
    case 'x25519':
      return 'X25519';
    case 'x448':
      return 'X448';
    case 'dsa':
      return `DSA${details.modulusLength === undefined ? '' : ` ${details.modulusLength}`}`;
    default:
      return type ?? key.type;
  }
}

/**
 * The names of the keyUsage bits set in `bits` (RFC 5280 §4.2.1.3), in bit
 * order, e.g. `["digitalSignature", "keyEncipherment"]`.
 *
 * @example
 * ```ts
 * keyUsageNames(certificate.keyUsage?.bits ?? 0);
 * ```
 */
export function keyUsageNames(bits: number): string[] {
  return KEY_USAGE_NAMES.filter(([bit]) => (bits & bit) !== 0).map(([, name]) => name);
}

const OID_LONG_NAMES: Record<string, string> = Object.fromEntries(Object.entries(OID).map(([name, oid]) => [oid, name]));

/**
 * A short name for an object identifier the library knows (attribute types
 * such as `CN`, extended key usages such as `serverAuth`, algorithms such as
 * `ecPublicKey`), or the dotted OID itself.
 *
 * @example
 * ```ts
 * certificate.extKeyUsage?.map(oidName); // ["serverAuth", "clientAuth"]
 * ```
 */
export function oidName(oid: string): string {
  return OID_NAMES[oid] ?? OID_LONG_NAMES[oid] ?? oid;
}
export * from './issue.js';

/**
 * Builds and signs X.509 v3 certificates directly in DER with `node:crypto`.
 * Used by the test CA and by Tessera's server CA, where issuance speed
 * matters: a general-purpose ASN.1 object model is far slower.
 * @internal
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import * as der from '../asn1/der-writer.js';
import { OID } from './oids.js';
import { keyIdentifier, signatureSchemeFor, signTbs } from './signature.js';
import type { Extension } from './certificate.js';

export interface CertificateSpec {
  /** Serial number magnitude; default: 128 random bits, never zero. */
  readonly serial?: Uint8Array;
  /** DER of the issuer Name. */
  readonly issuer: Buffer;
  /** DER of the subject Name. */
  readonly subject: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Subject public key, as a KeyObject or SubjectPublicKeyInfo DER. */
  readonly publicKey: KeyObject | Buffer;
  readonly extensions: readonly Extension[];
  readonly signingKey: KeyObject;
}

const VERSION_3 = der.explicit(0, der.smallInteger(2));

/** A random positive 128-bit serial (RFC 5280 §4.1.2.2: at most 20 octets, positive). */
export function randomSerial(): Buffer {
  const b = randomBytes(16);
  b[0]! &= 0x7f;
  if (b[0] === 0) b[0] = 0x01;
  return b;
}

export function spkiOf(key: KeyObject | Buffer): Buffer {
  return Buffer.isBuffer(key) ? key : (key.export({ type: 'spki', format: 'der' }) as Buffer);
}

function encodeExtensions(exts: readonly Extension[]): Buffer[] {
  if (exts.length === 0) return [];
  return [
    der.explicit(
      3,
      der.seq(...exts.map((e) => (e.critical ? der.seq(der.oid(e.oid), der.boolean(true), der.octetString(e.value)) : der.seq(der.oid(e.oid), der.octetString(e.value))))),
    ),
  ];
}

/** Encodes the TBSCertificate of `spec` and signs it; returns the certificate DER. */
export function buildCertificate(spec: CertificateSpec): Buffer {
  const scheme = signatureSchemeFor(spec.signingKey);
  const tbs = der.seq(
    VERSION_3,
    der.unsignedInteger(spec.serial ?? randomSerial()),
    scheme.algorithmIdentifier,
    spec.issuer,
    der.seq(der.time(spec.notBefore), der.time(spec.notAfter)),
    spec.subject,
    spkiOf(spec.publicKey),
    ...encodeExtensions(spec.extensions),
  );
  const sig = signTbs(tbs, spec.signingKey, scheme);
  return der.seq(tbs, scheme.algorithmIdentifier, der.bitString(sig));
}

/** An attribute of a distinguished name. */
export interface NameAttribute {
  readonly oid: string;
  readonly value: string;
}

/** Encodes a Name with one attribute per RDN; country and serialNumber as PrintableString, the rest UTF8String. */
export function encodeName(attrs: readonly NameAttribute[]): Buffer {
  return der.seq(
    ...attrs.map((a) =>
      der.set(der.seq(der.oid(a.oid), a.oid === OID.country || a.oid === OID.serialNumber ? der.printableString(a.value) : der.utf8String(a.value))),
    ),
  );
}

function ext(oid: string, critical: boolean, value: Buffer): Extension {
  return { oid, critical, value };
}

export function basicConstraintsExt(ca: boolean, pathLen?: number, critical = true): Extension {
  const parts: Buffer[] = [];
  if (ca) parts.push(der.boolean(true));
  if (pathLen !== undefined) parts.push(der.smallInteger(pathLen));
  return ext(OID.basicConstraints, critical, der.seq(...parts));
}

/** keyUsage from a bit mask (bit i = KeyUsage bit i), DER with trailing zero bits trimmed. */
export function keyUsageExt(bits: number, critical = true): Extension {
  if (bits === 0) return ext(OID.keyUsage, critical, der.bitString(Buffer.alloc(0)));
  const highest = 31 - Math.clz32(bits);
  const bytes = Buffer.alloc((highest >> 3) + 1);
  for (let i = 0; i <= highest; i++) if ((bits & (1 << i)) !== 0) bytes[i >> 3]! |= 0x80 >> (i & 7);
  return ext(OID.keyUsage, critical, der.bitString(bytes, 7 - (highest & 7)));
}

export function extKeyUsageExt(oids: readonly string[], critical = false): Extension {
  return ext(OID.extKeyUsage, critical, der.seq(...oids.map((o) => der.oid(o))));
}

function ipBytes(ip: string): Buffer {
  if (ip.includes(':')) {
    const [head, tail] = ip.split('::') as [string, string | undefined];
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
    const b = Buffer.alloc(16);
    groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
    return b;
  }
  return Buffer.from(ip.split('.').map((x) => Number(x)));
}

export interface AltNames {
  readonly uris?: readonly string[];
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
}

export function subjectAltNameExt(names: AltNames, critical = false): Extension {
  const parts: Buffer[] = [];
  for (const d of names.dnsNames ?? []) parts.push(der.implicitPrimitive(2, Buffer.from(d, 'latin1')));
  for (const ip of names.ipAddresses ?? []) parts.push(der.implicitPrimitive(7, ipBytes(ip)));
  for (const u of names.uris ?? []) parts.push(der.implicitPrimitive(6, Buffer.from(u, 'latin1')));
  return ext(OID.subjectAltName, critical, der.seq(...parts));
}

export function subjectKeyIdentifierExt(publicKey: KeyObject | Buffer): Extension {
  return ext(OID.subjectKeyIdentifier, false, der.octetString(keyIdentifier(spkiOf(publicKey))));
}

export function authorityKeyIdentifierExt(keyId: Buffer): Extension {
  return ext(OID.authorityKeyIdentifier, false, der.seq(der.implicitPrimitive(0, keyId)));
}

export interface NameConstraintSpec {
  readonly permittedUris?: readonly string[];
  readonly excludedUris?: readonly string[];
  readonly permittedDns?: readonly string[];
  readonly excludedDns?: readonly string[];
}

export function nameConstraintsExt(spec: NameConstraintSpec, critical = true): Extension {
  const subtrees = (uris: readonly string[] = [], dns: readonly string[] = []): Buffer[] => [
    ...dns.map((d) => der.seq(der.implicitPrimitive(2, Buffer.from(d, 'latin1')))),
    ...uris.map((u) => der.seq(der.implicitPrimitive(6, Buffer.from(u, 'latin1')))),
  ];
  const parts: Buffer[] = [];
  const p = subtrees(spec.permittedUris, spec.permittedDns);
  const x = subtrees(spec.excludedUris, spec.excludedDns);
  if (p.length) parts.push(der.implicitConstructed(0, ...p));
  if (x.length) parts.push(der.implicitConstructed(1, ...x));
  return ext(OID.nameConstraints, critical, der.seq(...parts));
}

/**
 * An X.509 v3 certificate decoded from DER (RFC 5280 §4.1), with the
 * extensions X509-SVID validation needs decoded and everything else kept
 * raw. Parsing is strict DER; any defect is an `EncodingError`
 * (`ERR_CERTIFICATE_INVALID`).
 * @internal
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { EncodingError } from '../../errors/index.js';
import { ctx, DerError, DerReader, TAG, type Tlv, decodeBitString } from '../asn1/der-reader.js';
import { OID } from './oids.js';

/** keyUsage bits (RFC 5280 §4.2.1.3), bit 0 first. */
export const KeyUsage = {
  digitalSignature: 1 << 0,
  contentCommitment: 1 << 1,
  keyEncipherment: 1 << 2,
  dataEncipherment: 1 << 3,
  keyAgreement: 1 << 4,
  keyCertSign: 1 << 5,
  cRLSign: 1 << 6,
  encipherOnly: 1 << 7,
  decipherOnly: 1 << 8,
} as const;

export const KEY_USAGE_NAMES: [number, string][] = Object.entries(KeyUsage).map(([k, v]) => [v, k]);

export interface Extension {
  readonly oid: string;
  readonly critical: boolean;
  readonly value: Uint8Array;
}

/** One GeneralName subtree of a nameConstraints extension (RFC 5280 §4.2.1.10). */
export interface NameSubtree {
  readonly type: 'dns' | 'uri' | 'email' | 'ip' | 'other';
  readonly value: string;
  /** For `ip`: address and mask bytes. */
  readonly ip?: { address: Uint8Array; mask: Uint8Array };
}

export interface NameConstraints {
  readonly critical: boolean;
  readonly permitted: NameSubtree[];
  readonly excluded: NameSubtree[];
}

export interface SubjectAltNames {
  readonly uris: string[];
  readonly dnsNames: string[];
  readonly ipAddresses: string[];
  readonly emails: string[];
  /** Count of other GeneralName forms (otherName, directoryName, ...). */
  readonly others: number;
}

export interface AttributeValue {
  readonly oid: string;
  readonly value: string;
}

export class Certificate {
  readonly der: Buffer;
  readonly tbs: Buffer;
  readonly version: number;
  /** Serial number content octets (two's complement, as encoded). */
  readonly serial: Buffer;
  readonly signatureAlgorithm: string;
  /** DER of the AlgorithmIdentifier's parameters, if any. */
  readonly signatureParams: Buffer | undefined;
  readonly signature: Buffer;
  readonly issuerRaw: Buffer;
  readonly subjectRaw: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spki: Buffer;
  readonly publicKeyAlgorithm: string;
  /** Named curve OID for EC keys. */
  readonly publicKeyCurve: string | undefined;
  readonly extensions: readonly Extension[];
  readonly basicConstraints: { critical: boolean; ca: boolean; pathLen: number | undefined } | undefined;
  readonly keyUsage: { critical: boolean; bits: number } | undefined;
  readonly extKeyUsage: string[] | undefined;
  readonly subjectAltNames: SubjectAltNames;
  readonly nameConstraints: NameConstraints | undefined;
  readonly subjectKeyId: Buffer | undefined;
  readonly authorityKeyId: Buffer | undefined;
  /** OIDs of critical extensions this parser does not process. */
  readonly unhandledCritical: string[];
  #publicKey: KeyObject | undefined;
  #subject: AttributeValue[] | undefined;
  #issuer: AttributeValue[] | undefined;

  /** Parses `der`. @throws EncodingError `ERR_CERTIFICATE_INVALID`. */
  constructor(der: Uint8Array) {
    const buf = Buffer.isBuffer(der) ? der : Buffer.from(der.buffer, der.byteOffset, der.byteLength);
    try {
      const top = new DerReader(buf);
      const certTlv = top.expect(TAG.SEQUENCE, 'certificate');
      top.expectDone('certificate');
      this.der = buf;
      const cert = DerReader.of(buf, certTlv);
      const tbsTlv = cert.expect(TAG.SEQUENCE, 'tbsCertificate');
      this.tbs = buf.subarray(tbsTlv.start, tbsTlv.end);
      const outerAlg = readAlgorithm(cert, 'signatureAlgorithm');
      this.signatureAlgorithm = outerAlg.oid;
      this.signatureParams = outerAlg.params;
      const sig = cert.bitString('signatureValue');
      if (sig.unusedBits !== 0) throw new DerError('signature has unused bits', certTlv.start);
      this.signature = Buffer.from(sig.bytes.buffer, sig.bytes.byteOffset, sig.bytes.byteLength);
      cert.expectDone('certificate');

      const tbs = DerReader.of(buf, tbsTlv);
      const verTlv = tbs.optional(ctx(0, true));
      if (verTlv !== undefined) {
        const vr = DerReader.of(buf, verTlv);
        this.version = vr.smallInteger('version') + 1;
        vr.expectDone('version');
        if (this.version !== 3) throw new DerError(`unsupported certificate version ${this.version}`, verTlv.start);
      } else {
        this.version = 1;
      }
      const serial = tbs.integerBytes('serialNumber');
      if (serial.length > 21) throw new DerError('serial number longer than 20 octets', tbsTlv.start);
      this.serial = Buffer.from(serial);
      const innerAlg = readAlgorithm(tbs, 'signature');
      if (innerAlg.oid !== outerAlg.oid || !sameBytes(innerAlg.params, outerAlg.params)) {
        throw new DerError('signature algorithm in tbsCertificate does not match signatureAlgorithm', tbsTlv.start);
      }
      const issuerTlv = tbs.expect(TAG.SEQUENCE, 'issuer');
      this.issuerRaw = buf.subarray(issuerTlv.start, issuerTlv.end);
      const validity = tbs.sequence('validity');
      this.notBefore = validity.time('notBefore');
      this.notAfter = validity.time('notAfter');
      validity.expectDone('validity');
      const subjectTlv = tbs.expect(TAG.SEQUENCE, 'subject');
      this.subjectRaw = buf.subarray(subjectTlv.start, subjectTlv.end);
      const spkiTlv = tbs.expect(TAG.SEQUENCE, 'subjectPublicKeyInfo');
      this.spki = buf.subarray(spkiTlv.start, spkiTlv.end);
      const spki = DerReader.of(buf, spkiTlv);
      const keyAlg = readAlgorithm(spki, 'subjectPublicKeyInfo algorithm');
      this.publicKeyAlgorithm = keyAlg.oid;
      this.publicKeyCurve =
        keyAlg.oid === OID.ecPublicKey && keyAlg.params !== undefined
          ? new DerReader(keyAlg.params).oid('namedCurve')
          : undefined;
      spki.bitString('subjectPublicKey');
      spki.expectDone('subjectPublicKeyInfo');
      tbs.optional(ctx(1, false));
      tbs.optional(ctx(2, false));
      const extensions: Extension[] = [];
      const extTlv = tbs.optional(ctx(3, true));
      if (extTlv !== undefined) {
        if (this.version !== 3) throw new DerError('extensions require a v3 certificate', extTlv.start);
        const outer = DerReader.of(buf, extTlv);
        const list = outer.sequence('extensions');
        outer.expectDone('extensions');
        if (list.done()) throw new DerError('empty extensions', extTlv.start);
        const seen = new Set<string>();
        while (!list.done()) {
          const e = list.sequence('extension');
          const oid = e.oid('extnID');
          let critical = false;
          if (e.peekTag() === TAG.BOOLEAN) {
            // An explicit FALSE is not DER, but common and harmless; Go accepts it too.
            critical = e.boolean('critical');
          }
          const value = e.octetString('extnValue');
          e.expectDone('extension');
          if (seen.has(oid)) throw new DerError(`duplicate extension ${oid}`, extTlv.start);
          seen.add(oid);
          extensions.push({ oid, critical, value });
        }
      }
      tbs.expectDone('tbsCertificate');
      this.extensions = extensions;

      let bc: Certificate['basicConstraints'];
      let ku: Certificate['keyUsage'];
      let eku: string[] | undefined;
      let san: SubjectAltNames = { uris: [], dnsNames: [], ipAddresses: [], emails: [], others: 0 };
      let nc: NameConstraints | undefined;
      let ski: Buffer | undefined;
      let aki: Buffer | undefined;
      const unhandled: string[] = [];
      for (const ext of extensions) {
        const r = new DerReader(ext.value);
        switch (ext.oid) {
          case OID.basicConstraints: {
            const s = r.sequence('basicConstraints');
            let ca = false;
            if (s.peekTag() === TAG.BOOLEAN) {
              ca = s.boolean('cA');
            }
            const pathLen = s.peekTag() === TAG.INTEGER ? s.smallInteger('pathLenConstraint') : undefined;
            s.expectDone('basicConstraints');
            bc = { critical: ext.critical, ca, pathLen };
            break;
          }
          case OID.keyUsage: {
            const tlv = r.expect(TAG.BIT_STRING, 'keyUsage');
            const { bytes } = decodeBitString(ext.value, tlv, 'keyUsage');
            let bits = 0;
            for (let i = 0; i < Math.min(bytes.length, 2) * 8; i++) {
              if ((bytes[i >> 3]! & (0x80 >> (i & 7))) !== 0) bits |= 1 << i;
            }
            ku = { critical: ext.critical, bits };
            break;
          }
          case OID.extKeyUsage: {
            const s = r.sequence('extKeyUsage');
            eku = [];
            while (!s.done()) eku.push(s.oid('keyPurposeId'));
            if (eku.length === 0) throw new DerError('empty extKeyUsage', 0);
            break;
          }
          case OID.subjectAltName:
            san = parseGeneralNames(r.sequence('subjectAltName'), ext.value);
            if (san.uris.length + san.dnsNames.length + san.ipAddresses.length + san.emails.length + san.others === 0) {
              throw new DerError('empty subjectAltName', 0);
            }
            break;
          case OID.nameConstraints:
            nc = parseNameConstraints(r, ext.value, ext.critical);
            break;
          case OID.subjectKeyIdentifier:
            ski = Buffer.from(r.octetString('subjectKeyIdentifier'));
            break;
          case OID.authorityKeyIdentifier: {
            const s = r.sequence('authorityKeyIdentifier');
            const kid = s.optional(ctx(0, false));
            if (kid !== undefined) aki = Buffer.from(s.bytes(kid));
            break;
          }
          case OID.certificatePolicies:
            r.sequence('certificatePolicies');
            break;
          default:
            if (ext.critical) unhandled.push(ext.oid);
            continue;
        }
        r.expectDone(`extension ${ext.oid}`);
      }
      this.basicConstraints = bc;
      this.keyUsage = ku;
      this.extKeyUsage = eku;
      this.subjectAltNames = san;
      this.nameConstraints = nc;
      this.subjectKeyId = ski;
      this.authorityKeyId = aki;
      this.unhandledCritical = unhandled;
    } catch (e) {
      if (e instanceof DerError) throw new EncodingError('ERR_CERTIFICATE_INVALID', `malformed certificate: ${e.message}`, { cause: e });
      throw e;
    }
  }

  /** The public key as a `KeyObject` (parsed on first use). */
  get publicKey(): KeyObject {
    if (this.#publicKey === undefined) {
      try {
        this.#publicKey = checkedPublicKey(createPublicKey({ key: this.spki, format: 'der', type: 'spki' }));
      } catch (e) {
        throw new EncodingError('ERR_CERTIFICATE_INVALID', `malformed certificate: unsupported or invalid public key: ${(e as Error).message}`, { cause: e });
      }
    }
    return this.#publicKey;
  }

  get isCa(): boolean {
    return this.basicConstraints?.ca === true;
  }

  hasKeyUsage(bit: number): boolean {
    return this.keyUsage !== undefined && (this.keyUsage.bits & bit) !== 0;
  }

  /** Serial number as lowercase hex without leading zero octets. */
  get serialHex(): string {
    let i = 0;
    while (i < this.serial.length - 1 && this.serial[i] === 0) i++;
    return this.serial.subarray(i).toString('hex');
  }

  get subject(): AttributeValue[] {
    return (this.#subject ??= parseNameChecked(this.subjectRaw, 'subject'));
  }

  get issuer(): AttributeValue[] {
    return (this.#issuer ??= parseNameChecked(this.issuerRaw, 'issuer'));
  }

  get selfIssued(): boolean {
    return this.issuerRaw.equals(this.subjectRaw);
  }
}

function parseNameChecked(raw: Uint8Array, what: string): AttributeValue[] {
  try {
    return parseName(raw);
  } catch (e) {
    if (e instanceof DerError) throw new EncodingError('ERR_CERTIFICATE_INVALID', `malformed certificate ${what}: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * Makes sure OpenSSL can use a public key parsed from untrusted input. Node 20
 * accepts some invalid EC keys (e.g. the point at infinity) and then aborts
 * the whole process when their details are read; exporting them throws
 * instead, so do that first.
 * @internal
 */
export function checkedPublicKey(key: KeyObject): KeyObject {
  key.export({ type: 'spki', format: 'der' });
  return key;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return Buffer.compare(a, b) === 0;
}

function readAlgorithm(r: DerReader, what: string): { oid: string; params: Buffer | undefined } {
  const s = r.sequence(what);
  const oid = s.oid(`${what} OID`);
  let params: Buffer | undefined;
  if (!s.done()) {
    const p = s.read();
    params = Buffer.from(s.raw(p));
  }
  s.expectDone(what);
  return { oid, params };
}

function formatIp(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return parts.join(':');
}

function ascii(b: Uint8Array, what: string): string {
  for (const c of b) if (c < 0x20 || c > 0x7e) throw new DerError(`non-printable character in ${what}`, 0);
  return Buffer.from(b).toString('latin1');
}

function parseGeneralNames(r: DerReader, buf: Uint8Array): SubjectAltNames {
  const out = { uris: [] as string[], dnsNames: [] as string[], ipAddresses: [] as string[], emails: [] as string[], others: 0 };
  while (!r.done()) {
    const gn: Tlv = r.read();
    const bytes = buf.subarray(gn.content, gn.end);
    switch (gn.tag) {
      case ctx(1, false):
        out.emails.push(ascii(bytes, 'rfc822Name'));
        break;
      case ctx(2, false):
        out.dnsNames.push(ascii(bytes, 'dNSName'));
        break;
      case ctx(6, false):
        out.uris.push(ascii(bytes, 'uniformResourceIdentifier'));
        break;
      case ctx(7, false):
        if (bytes.length !== 4 && bytes.length !== 16) throw new DerError('invalid iPAddress length', gn.start);
        out.ipAddresses.push(formatIp(bytes));
        break;
      default:
        out.others++;
    }
  }
  return out;
}

function parseSubtrees(r: DerReader, buf: Uint8Array): NameSubtree[] {
  const out: NameSubtree[] = [];
  while (!r.done()) {
    const st = r.sequence('GeneralSubtree');
    const gn = st.read();
    // minimum defaults to 0 and maximum is never used (RFC 5280 §4.2.1.10); anything else is unsupported.
    if (!st.done()) throw new DerError('GeneralSubtree minimum/maximum are not supported', gn.start);
    const bytes = buf.subarray(gn.content, gn.end);
    switch (gn.tag) {
      case ctx(1, false):
        out.push({ type: 'email', value: ascii(bytes, 'rfc822Name constraint') });
        break;
      case ctx(2, false):
        out.push({ type: 'dns', value: ascii(bytes, 'dNSName constraint') });
        break;
      case ctx(6, false):
        out.push({ type: 'uri', value: ascii(bytes, 'URI constraint') });
        break;
      case ctx(7, false): {
        if (bytes.length !== 8 && bytes.length !== 32) throw new DerError('invalid iPAddress constraint length', gn.start);
        const half = bytes.length / 2;
        out.push({
          type: 'ip',
          value: formatIp(bytes.subarray(0, half)) + '/' + formatIp(bytes.subarray(half)),
          ip: { address: bytes.subarray(0, half), mask: bytes.subarray(half) },
        });
        break;
      }
      default:
        out.push({ type: 'other', value: `tag 0x${gn.tag.toString(16)}` });
    }
  }
  return out;
}

function parseNameConstraints(r: DerReader, buf: Uint8Array, critical: boolean): NameConstraints {
  const s = r.sequence('nameConstraints');
  let permitted: NameSubtree[] = [];
  let excluded: NameSubtree[] = [];
  const p = s.optional(ctx(0, true));
  if (p !== undefined) permitted = parseSubtrees(DerReader.of(buf, p), buf);
  const x = s.optional(ctx(1, true));
  if (x !== undefined) excluded = parseSubtrees(DerReader.of(buf, x), buf);
  s.expectDone('nameConstraints');
  if (p === undefined && x === undefined) throw new DerError('empty nameConstraints', 0);
  return { critical, permitted, excluded };
}

/** Decodes a Name into attribute/value pairs for display. */
export function parseName(raw: Uint8Array): AttributeValue[] {
  const out: AttributeValue[] = [];
  const r = new DerReader(raw).sequence('Name');
  while (!r.done()) {
    const rdn = DerReader.of(r.buf, r.expect(TAG.SET, 'RelativeDistinguishedName'));
    while (!rdn.done()) {
      const atv = rdn.sequence('AttributeTypeAndValue');
      const oid = atv.oid('attribute type');
      const v = atv.read();
      out.push({ oid, value: Buffer.from(atv.bytes(v)).toString(v.tag === 0x1e ? 'utf16le' : 'utf8') });
    }
  }
  return out;
}

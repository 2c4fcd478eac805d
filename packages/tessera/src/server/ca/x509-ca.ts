/**
 * The trust domain's X.509 authorities: minting CA certificates (self-signed
 * roots, or intermediates under an upstream CA) and signing X509-SVIDs with
 * them (X509-SVID §4, spec/spiffe.md §2).
 *
 * Issuance is the server's hot path, so {@link X509SvidSigner} encodes
 * everything that is the same for every SVID of one CA key once — version,
 * signature AlgorithmIdentifier, issuer Name, keyUsage, extKeyUsage,
 * basicConstraints and authorityKeyIdentifier extensions, the default
 * subject — and per SVID writes only the serial, validity, subject key,
 * subjectKeyIdentifier and subjectAltName around them.
 */
import { hash, randomFillSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { X509Bundle } from '@tessera/spiffe/bundle';
import type { TrustDomain } from '@tessera/spiffe/id';
import { verifyX509Svid } from '@tessera/spiffe/svid';
import {
  authorityKeyIdentifierExt,
  basicConstraintsExt,
  buildCertificate,
  Certificate,
  encodeName,
  encodeSubjectPublicKeyInfo,
  extKeyUsageExt,
  keyIdentifier,
  KeyUsage,
  keyUsageExt,
  OID,
  randomSerial,
  signatureSchemeFor,
  subjectAltNameExt,
  subjectKeyIdentifierExt,
  type NameAttribute,
  type SignatureScheme,
} from '@tessera/spiffe/x509';
import * as der from './der.js';
import { CaError } from './errors.js';
import type { CheckedUpstream } from './upstream.js';

/** Seconds by which NotBefore is backdated, for verifiers whose clocks run behind (as SPIRE does). */
export const BACKDATE_SECONDS = 10;

/** Subject attributes of CA certificates; a serialNumber attribute is always added (spec/spiffe.md §2). */
export interface CaSubject {
  /** Default `US`. */
  readonly country?: string;
  /** Default `SPIFFE`. */
  readonly organization?: string;
  readonly commonName?: string;
}

/** One X.509 authority of the trust domain: a CA certificate and where its key is. */
export interface X509Authority {
  /** The key manager's ID of the CA key. */
  readonly keyId: string;
  /** The CA certificate (DER). */
  readonly certificate: Buffer;
  readonly parsed: Certificate;
  /** Upstream certificates sent after {@link X509Authority.certificate} (empty when self-signed). */
  readonly chain: readonly Buffer[];
  /** What this authority adds to the bundle: itself when self-signed, else the upstream roots. */
  readonly roots: readonly Buffer[];
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Builds an {@link X509Authority} from stored parts. @throws {@link CaError} `CA_JOURNAL_INVALID` on a malformed certificate. */
export function x509Authority(keyId: string, certificate: Buffer, chain: readonly Buffer[], roots: readonly Buffer[]): X509Authority {
  let parsed: Certificate;
  try {
    parsed = new Certificate(certificate);
  } catch (e) {
    throw new CaError('CA_JOURNAL_INVALID', `CA certificate of key "${keyId}" is malformed: ${(e as Error).message}`, { cause: e });
  }
  return { keyId, certificate: parsed.der, parsed, chain, roots, notBefore: parsed.notBefore, notAfter: parsed.notAfter };
}

/** Options of {@link mintCaCertificate}. */
export interface MintCaOptions {
  readonly trustDomain: TrustDomain;
  readonly keyId: string;
  /** The new CA's private key. */
  readonly key: KeyObject;
  readonly now: Date;
  readonly ttlSeconds: number;
  readonly subject?: CaSubject;
  /** Sign with this upstream CA instead of self-signing. */
  readonly upstream?: CheckedUpstream;
}

const CA_KEY_USAGE = KeyUsage.keyCertSign | KeyUsage.cRLSign;
const LEAF_KEY_USAGE = KeyUsage.digitalSignature | KeyUsage.keyEncipherment | KeyUsage.keyAgreement;
/** ID of the probe SVID minted to check every new CA end to end. */
const PROBE_PATH = '/tessera/ca-self-test';

/**
 * Mints a CA certificate (X509-SVID §4.1, spec/spiffe.md §2): a unique
 * Subject (C, O, optional CN, and the serial as serialNumber, so verifiers
 * never confuse roots of successive rotations), URI SAN `spiffe://<td>`,
 * `cA=true`, keyCertSign + cRLSign (critical), SKI and AKI, NotBefore
 * backdated {@link BACKDATE_SECONDS}, NotAfter = now + TTL capped at the
 * upstream's NotAfter. Then a probe SVID is signed and verified against the
 * roots with the library's verifier, so a CA that could not issue
 * verifiable SVIDs (an upstream with name constraints, a broken chain) is
 * refused here rather than by every peer later.
 *
 * @throws {@link CaError} `CA_UPSTREAM_INVALID` when the upstream has
 * expired or the probe fails.
 */
export function mintCaCertificate(o: MintCaOptions): X509Authority {
  const nowMs = o.now.getTime();
  let notAfterMs = nowMs + o.ttlSeconds * 1000;
  if (o.upstream) {
    const limit = o.upstream.signer.notAfter.getTime();
    if (limit <= nowMs) throw new CaError('CA_UPSTREAM_INVALID', `upstream CA: certificate expired at ${o.upstream.signer.notAfter.toISOString()}`);
    notAfterMs = Math.min(notAfterMs, limit);
  }
  const serial = randomSerial();
  const attrs: NameAttribute[] = [
    { oid: OID.country, value: o.subject?.country ?? 'US' },
    { oid: OID.organization, value: o.subject?.organization ?? 'SPIFFE' },
    ...(o.subject?.commonName ? [{ oid: OID.commonName, value: o.subject.commonName }] : []),
    { oid: OID.serialNumber, value: BigInt('0x' + serial.toString('hex')).toString() },
  ];
  const subject = encodeName(attrs);
  const spki = encodeSubjectPublicKeyInfo(o.key);
  const ski = keyIdentifier(spki);
  const up = o.upstream;
  const certificate = buildCertificate({
    serial,
    issuer: up ? up.signer.subjectRaw : subject,
    subject,
    notBefore: new Date(nowMs - BACKDATE_SECONDS * 1000),
    notAfter: new Date(notAfterMs),
    publicKey: spki,
    extensions: [
      basicConstraintsExt(true),
      keyUsageExt(CA_KEY_USAGE),
      subjectKeyIdentifierExt(spki),
      authorityKeyIdentifierExt(up ? (up.signer.subjectKeyId ?? keyIdentifier(up.signer.spki)) : ski),
      subjectAltNameExt({ uris: [o.trustDomain.idString()] }),
    ],
    signingKey: up ? up.privateKey : o.key,
  });
  const authority = x509Authority(o.keyId, certificate, up ? up.chain : [], up ? up.roots : [certificate]);
  const probe = new X509SvidSigner(authority, o.key);
  const leaf = probe.sign({ spki, spiffeId: o.trustDomain.idString() + PROBE_PATH, dnsNames: [], notBefore: new Date(nowMs - 1000), notAfter: new Date(Math.min(nowMs + 60_000, notAfterMs)) });
  try {
    verifyX509Svid([leaf, ...probe.chain], new X509Bundle(o.trustDomain, authority.roots), { time: o.now });
  } catch (e) {
    throw new CaError('CA_UPSTREAM_INVALID', `a new CA certificate would not issue verifiable SVIDs: ${(e as Error).message}`, { cause: e });
  }
  return authority;
}

/** Reads one DER header at `at`; returns the content offset and length. */
function header(b: Buffer, at: number): { content: number; length: number } {
  const first = b[at + 1]!;
  if (first < 0x80) return { content: at + 2, length: first };
  let length = 0;
  const n = first & 0x7f;
  for (let i = 0; i < n; i++) length = length * 256 + b[at + 2 + i]!;
  return { content: at + 2 + n, length };
}

/**
 * RFC 5280 §4.2.1.2 method 1 (SHA-1 of the subjectPublicKey bits) for an SPKI
 * that was already checked (parsed from a CSR or SPKI input, or encoded from
 * a KeyObject): the BIT STRING follows the AlgorithmIdentifier. A one-shot
 * hash without a second DER parse: this runs once per SVID.
 */
function subjectKeyId(spki: Buffer): Buffer {
  const outer = header(spki, 0);
  const alg = header(spki, outer.content);
  const bits = header(spki, alg.content + alg.length);
  return hash('sha1', spki.subarray(bits.content + 1, bits.content + bits.length), 'buffer');
}

/** What varies per X509-SVID. */
export interface LeafParams {
  /** SubjectPublicKeyInfo DER of the SVID's key. */
  readonly spki: Buffer;
  readonly spiffeId: string;
  readonly dnsNames: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
}

const VERSION_3 = Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]);
const SKI_HEADER = Buffer.concat([der.oid(OID.subjectKeyIdentifier), Buffer.from([0x04, 0x16, 0x04, 0x14])]);
const SAN_OID = der.oid(OID.subjectAltName);
const SERIAL_POOL_SIZE = 16 * 256;

/** Longest CN allowed (X.520 ub-common-name). */
const MAX_CN = 64;

/**
 * Signs X509-SVIDs with one CA key (X509-SVID §4; SPIRE's leaf profile):
 * random serial, Subject C=US, O=SPIRE (+ CN = the first DNS name),
 * exactly one URI SAN, DNS SANs, `cA=false`, keyUsage digitalSignature |
 * keyEncipherment | keyAgreement (critical), extKeyUsage serverAuth +
 * clientAuth, SKI and AKI. The caller chooses the validity.
 */
export class X509SvidSigner {
  readonly authority: X509Authority;
  /** Certificates to send after the leaf: this CA unless it is a bundle root, then the upstream chain. */
  readonly chain: readonly Buffer[];
  readonly #key: KeyObject;
  readonly #digest: string | null;
  readonly #algorithm: Buffer;
  /** signature AlgorithmIdentifier ‖ issuer Name. */
  readonly #algorithmAndIssuer: Buffer;
  /** keyUsage ‖ extKeyUsage ‖ basicConstraints ‖ authorityKeyIdentifier, each a whole Extension. */
  readonly #fixedExtensions: Buffer;
  readonly #subjectAttributes: NameAttribute[];
  readonly #defaultSubject: Buffer;
  #serials = Buffer.allocUnsafe(0);
  #serialAt = 0;

  constructor(authority: X509Authority, key: KeyObject) {
    this.authority = authority;
    this.#key = key;
    let scheme: SignatureScheme;
    try {
      scheme = signatureSchemeFor(key);
    } catch (e) {
      throw new CaError('CA_KEY_UNAVAILABLE', `CA key "${authority.keyId}" cannot sign: ${(e as Error).message}`, { cause: e });
    }
    this.#digest = scheme.digest;
    this.#algorithm = scheme.algorithmIdentifier;
    this.#algorithmAndIssuer = Buffer.concat([scheme.algorithmIdentifier, authority.parsed.subjectRaw]);
    const aki = authority.parsed.subjectKeyId ?? keyIdentifier(authority.parsed.spki);
    const fixed = [keyUsageExt(LEAF_KEY_USAGE), extKeyUsageExt([OID.serverAuth, OID.clientAuth]), basicConstraintsExt(false), authorityKeyIdentifierExt(aki)];
    this.#fixedExtensions = Buffer.concat(fixed.map((e) => der.extension(der.oid(e.oid), e.critical, e.value)));
    this.#subjectAttributes = [
      { oid: OID.country, value: 'US' },
      { oid: OID.organization, value: 'SPIRE' },
    ];
    this.#defaultSubject = encodeName(this.#subjectAttributes);
    const isRoot = authority.roots.some((r) => r.equals(authority.certificate));
    this.chain = isRoot ? [...authority.chain] : [authority.certificate, ...authority.chain];
  }

  /** A positive serial of 16 octets (127 random bits), from a pool refilled 256 serials at a time. */
  #serial(): Buffer {
    if (this.#serialAt + 16 > this.#serials.length) {
      this.#serials = randomFillSync(Buffer.allocUnsafe(SERIAL_POOL_SIZE));
      this.#serialAt = 0;
    }
    const out = Buffer.allocUnsafe(18);
    out[0] = 0x02;
    out[1] = 16;
    this.#serials.copy(out, 2, this.#serialAt, this.#serialAt + 16);
    this.#serialAt += 16;
    // Positive (RFC 5280 §4.1.2.2) and minimal DER without a sign octet: first octet in 0x01–0x7f.
    out[2]! &= 0x7f;
    if (out[2] === 0) out[2] = 0x01;
    return out;
  }

  /** Encodes and signs one X509-SVID; returns the leaf DER. */
  sign(p: LeafParams): Buffer {
    const cn = p.dnsNames[0];
    const subject =
      cn !== undefined && cn.length <= MAX_CN ? encodeName([...this.#subjectAttributes, { oid: OID.commonName, value: cn }]) : this.#defaultSubject;
    const ski = der.seq(SKI_HEADER, subjectKeyId(p.spki));
    const names: Buffer[] = p.dnsNames.map((d) => der.tlv(0x82, [Buffer.from(d, 'latin1')]));
    names.push(der.tlv(0x86, [Buffer.from(p.spiffeId, 'latin1')]));
    const san = der.extension(SAN_OID, false, der.seq(...names));
    const tbs = der.seq(
      VERSION_3,
      this.#serial(),
      this.#algorithmAndIssuer,
      der.seq(der.time(p.notBefore), der.time(p.notAfter)),
      subject,
      p.spki,
      der.tlv(0xa3, [der.seq(this.#fixedExtensions, ski, san)]),
    );
    const signature = cryptoSign(this.#digest, tbs, this.#key);
    return der.seq(tbs, this.#algorithm, der.bitString(signature));
  }
}

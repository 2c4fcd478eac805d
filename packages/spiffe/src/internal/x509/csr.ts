/**
 * PKCS#10 certification requests (RFC 2986) and subject public keys
 * (RFC 5280 §4.1.2.7), for the issuing side: a server CA signs what agents
 * send, so everything here treats its input as hostile.
 *
 * Parsing is strict DER, capped at 64 KiB, and accepts only the key types an
 * X509-SVID should carry (spec/spiffe.md §2): EC P-256 and P-384 with
 * uncompressed points, RSA 2048–8192 bits with an odd public exponent, and
 * Ed25519. The request's self-signature is always verified (proof of
 * possession of the private key).
 *
 * Keys are imported through JWK rather than SPKI DER: with OpenSSL 3.0 (Node
 * 20) the DER decoder costs ~170 µs per key, the JWK import ~90 µs including
 * OpenSSL's full public-key check; on a CA's hot path that difference is
 * most of a signature. {@link encodeSubjectPublicKeyInfo} avoids the ~145 µs
 * SPKI export where it safely can (see there).
 * @internal
 */
import { createPublicKey, verify as cryptoVerify, type JsonWebKey, type KeyObject } from 'node:crypto';
import { EncodingError } from '../../errors/index.js';
import { ctx, DerError, DerReader, TAG, type Tlv } from '../asn1/der-reader.js';
import * as der from '../asn1/der-writer.js';
import { parseName } from './certificate.js';
import { OID } from './oids.js';
import { subjectAltNameExt, type AltNames } from './builder.js';
import { signatureSchemeFor, signTbs } from './signature.js';

/** Largest DER certification request accepted (bytes). */
export const MAX_CERTIFICATE_REQUEST_BYTES = 64 * 1024;

/** Smallest and largest RSA moduli accepted, in bits. */
const RSA_MIN_BITS = 2048;
const RSA_MAX_BITS = 8192;

const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const SUPPORTED_KEYS = 'use EC P-256, EC P-384, RSA (2048–8192 bits) or Ed25519';

/** The subject key types accepted in certification requests and SVIDs. */
export type SubjectKeyType = 'ec-p256' | 'ec-p384' | 'rsa' | 'ed25519';

/** A checked subject public key (RFC 5280 §4.1.2.7). */
export interface SubjectPublicKey {
  /** The SubjectPublicKeyInfo DER, in its one canonical encoding. */
  readonly spki: Buffer;
  /** The key, imported and checked by OpenSSL (EC points are on the curve). */
  readonly publicKey: KeyObject;
  readonly keyType: SubjectKeyType;
  /** Curve size or RSA modulus length, in bits. */
  readonly keyBits: number;
  /** The subjectPublicKey BIT STRING's bits: what a key identifier hashes (RFC 5280 §4.2.1.2). */
  readonly publicKeyBits: Buffer;
}

/** A parsed PKCS#10 request whose self-signature verified (RFC 2986 §4). */
export interface CertificateRequest {
  /** The request as received. */
  readonly der: Buffer;
  /** DER of the requested subject Name (issuers usually ignore it). */
  readonly subjectRaw: Buffer;
  /** The key to certify. */
  readonly subjectPublicKey: SubjectPublicKey;
  /** URI SANs asked for in the extensionRequest attribute (RFC 2985 §5.4.2). */
  readonly uris: readonly string[];
  /** DNS SANs asked for. */
  readonly dnsNames: readonly string[];
  /** IP address SANs asked for, in text form. */
  readonly ipAddresses: readonly string[];
  /** OID of the signature algorithm the request was signed with. */
  readonly signatureAlgorithm: string;
}

/** Names to request in {@link buildCertificateRequest}. */
export type CertificateRequestNames = AltNames;

/** An unsupported or invalid key: becomes `ERR_KEY_INVALID`. */
class KeyError extends Error {}

function keyError(e: KeyError | DerError, what: string): EncodingError {
  return e instanceof KeyError
    ? new EncodingError('ERR_KEY_INVALID', `unsupported ${what} key: ${e.message}; ${SUPPORTED_KEYS}`, { cause: e })
    : new EncodingError('ERR_KEY_INVALID', `malformed ${what} key: ${e.message}`, { cause: e });
}

/**
 * Parses and checks a SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) as an issuer
 * receives it.
 *
 * @throws {@link EncodingError} `ERR_KEY_INVALID` for malformed DER, a key
 * type or size outside those listed in the module description, or a key
 * OpenSSL refuses (an EC point not on its curve).
 */
export function parseSubjectPublicKeyInfo(spki: Uint8Array): SubjectPublicKey {
  const buf = Buffer.isBuffer(spki) ? spki : Buffer.from(spki.buffer, spki.byteOffset, spki.byteLength);
  let key: DecodedSubjectPublicKey;
  try {
    const r = new DerReader(buf);
    const tlv = r.expect(TAG.SEQUENCE, 'subjectPublicKeyInfo');
    r.expectDone('subjectPublicKeyInfo');
    key = readSubjectPublicKey(buf, tlv, 'public');
  } catch (e) {
    if (e instanceof KeyError || e instanceof DerError) throw keyError(e, 'public');
    throw e;
  }
  void key.publicKey; // imported now: the check is part of parsing
  return key;
}

/** Reads the SPKI at `tlv` of `buf`; its key is imported on first use. @throws DerError, KeyError */
function readSubjectPublicKey(buf: Buffer, tlv: Tlv, what: string): DecodedSubjectPublicKey {
  return new DecodedSubjectPublicKey(buf.subarray(tlv.start, tlv.end), decodeSubjectPublicKey(buf, tlv), what);
}

/**
 * A structurally checked subject key whose `KeyObject` is imported (and
 * checked by OpenSSL) on first use: an issuer that verifies proof of
 * possession another way never pays for the import.
 */
class DecodedSubjectPublicKey implements SubjectPublicKey {
  readonly spki: Buffer;
  readonly keyType: SubjectKeyType;
  readonly keyBits: number;
  readonly publicKeyBits: Buffer;
  readonly #jwk: JsonWebKey;
  readonly #what: string;
  #key: KeyObject | undefined;

  constructor(spki: Buffer, d: DecodedKey, what: string) {
    this.spki = spki;
    this.keyType = d.keyType;
    this.keyBits = d.keyBits;
    this.publicKeyBits = d.bits;
    this.#jwk = d.jwk;
    this.#what = what;
  }

  /** @throws {@link EncodingError} `ERR_KEY_INVALID` when OpenSSL refuses the key (an EC point not on its curve). */
  get publicKey(): KeyObject {
    if (this.#key === undefined) {
      try {
        this.#key = createPublicKey({ key: this.#jwk, format: 'jwk' });
      } catch (e) {
        throw keyError(new KeyError(`OpenSSL refused the key (${(e as Error).message})`), this.#what);
      }
    }
    return this.#key;
  }
}

interface DecodedKey {
  readonly jwk: JsonWebKey;
  readonly keyType: SubjectKeyType;
  readonly keyBits: number;
  readonly bits: Buffer;
}

/** The structural checks of an SPKI, without importing the key. @throws DerError, KeyError */
function decodeSubjectPublicKey(buf: Buffer, tlv: Tlv): DecodedKey {
  const s = DerReader.of(buf, tlv);
  const alg = s.sequence('subjectPublicKeyInfo algorithm');
  const algOid = alg.oid('public key algorithm');
  const bitsTlv = s.expect(TAG.BIT_STRING, 'subjectPublicKey');
  s.expectDone('subjectPublicKeyInfo');
  if (bitsTlv.end === bitsTlv.content || buf[bitsTlv.content] !== 0) throw new DerError('subjectPublicKey must have no unused bits', bitsTlv.start);
  const bits = buf.subarray(bitsTlv.content + 1, bitsTlv.end);
  let jwk: JsonWebKey;
  let keyType: SubjectKeyType;
  let keyBits: number;
  switch (algOid) {
    case OID.ecPublicKey: {
      if (alg.peekTag() !== TAG.OID) throw new KeyError('EC keys must name their curve (explicit curve parameters are not supported)');
      const curve = alg.oid('namedCurve');
      alg.expectDone('EC algorithm parameters');
      const size = curve === OID.p256 ? 32 : curve === OID.p384 ? 48 : 0;
      if (size === 0) throw new KeyError(`EC curve ${curve === OID.p521 ? 'P-521' : curve}`);
      if (bits[0] === 0x02 || bits[0] === 0x03) throw new KeyError('compressed EC points (X.509 consumers such as Go refuse them)');
      if (bits.length !== 1 + 2 * size || bits[0] !== 0x04) throw new DerError('invalid EC point encoding', bitsTlv.start);
      jwk = {
        kty: 'EC',
        crv: size === 32 ? 'P-256' : 'P-384',
        x: bits.subarray(1, 1 + size).toString('base64url'),
        y: bits.subarray(1 + size).toString('base64url'),
      };
      keyType = size === 32 ? 'ec-p256' : 'ec-p384';
      keyBits = size * 8;
      break;
    }
    case OID.rsaEncryption: {
      // RFC 3279 §2.3.1: the parameters MUST be NULL (Go refuses them absent too).
      if (alg.done()) throw new DerError('RSA algorithm parameters must be NULL (RFC 3279 §2.3.1)', tlv.start);
      const p = alg.expect(TAG.NULL, 'RSA algorithm parameters (NULL)');
      if (p.end !== p.content) throw new DerError('invalid NULL', p.start);
      alg.expectDone('RSA algorithm identifier');
      const k = new DerReader(bits).sequence('RSAPublicKey');
      const n = k.integerBytes('modulus');
      const e = k.integerBytes('publicExponent');
      k.expectDone('RSAPublicKey');
      if ((n[0]! & 0x80) !== 0 || (e[0]! & 0x80) !== 0) throw new DerError('negative RSA key component', bitsTlv.start);
      const mod = n[0] === 0 ? n.subarray(1) : n;
      keyBits = mod.length * 8 - Math.clz32(mod[0]!) + 24;
      if (keyBits < RSA_MIN_BITS || keyBits > RSA_MAX_BITS) throw new KeyError(`RSA key of ${keyBits} bits`);
      const exp = e[0] === 0 ? e.subarray(1) : e;
      let ev = 0;
      for (const b of exp) ev = ev * 256 + b;
      if (exp.length > 4 || ev < 3 || ev > 0x7fffffff || ev % 2 === 0) throw new KeyError('RSA public exponent must be odd, at least 3 and below 2^31');
      jwk = { kty: 'RSA', n: Buffer.from(mod).toString('base64url'), e: Buffer.from(exp).toString('base64url') };
      keyType = 'rsa';
      break;
    }
    case OID.ed25519:
      alg.expectDone('Ed25519 algorithm identifier (RFC 8410 §3: no parameters)');
      if (bits.length !== 32) throw new DerError('invalid Ed25519 public key length', bitsTlv.start);
      jwk = { kty: 'OKP', crv: 'Ed25519', x: bits.toString('base64url') };
      keyType = 'ed25519';
      keyBits = 256;
      break;
    default:
      throw new KeyError(`public key algorithm ${algOid}`);
  }
  return { jwk, keyType, keyBits, bits };
}

/**
 * Parses a DER PKCS#10 CertificationRequest (RFC 2986 §4) and verifies its
 * self-signature with the key it carries (proof of possession). Requested
 * URI, DNS and IP SANs are read from the extensionRequest attribute (RFC 2985
 * §5.4.2); other attributes and extensions are ignored, since an issuer
 * decides the certificate's content itself.
 *
 * @throws {@link EncodingError} `ERR_CERTIFICATE_INVALID` (message starting
 * `malformed certificate request:`) for input over 64 KiB, malformed DER,
 * an unsupported signature algorithm or a signature that does not verify;
 * `ERR_KEY_INVALID` for an unsupported or invalid subject key.
 */
export function parseCertificateRequest(input: Uint8Array): CertificateRequest {
  return parseUnverifiedCertificateRequest(input).verify();
}

/**
 * {@link parseCertificateRequest} with the signature verification run on
 * libuv's thread pool (`crypto.verify`'s callback form), so a server keeps
 * its event loop for other work; parsing and key import stay synchronous.
 * Same checks, same errors (as a rejected promise).
 */
export function parseCertificateRequestAsync(input: Uint8Array): Promise<CertificateRequest> {
  try {
    return parseUnverifiedCertificateRequest(input).verifyAsync();
  } catch (e) {
    return Promise.reject(e as Error);
  }
}

/**
 * Parses a certification request like {@link parseCertificateRequest} — every
 * check but the self-signature — and hands back what the signature covers,
 * for an issuer that verifies proof of possession another way (a batch
 * verifier on other threads). The request is only reachable through
 * {@link UnverifiedCertificateRequest.verify} or
 * {@link UnverifiedCertificateRequest.accept}. The subject key is not
 * imported into OpenSSL unless one of those needs it.
 *
 * @throws {@link EncodingError} as {@link parseCertificateRequest}, except
 * for the signature check and an EC point off its curve (found by the
 * verification).
 */
export function parseUnverifiedCertificateRequest(input: Uint8Array): UnverifiedCertificateRequest {
  const p = parseUnverified(input);
  return new UnverifiedCertificateRequest(p.request, p.proof);
}

/** What a certification request's self-signature covers (RFC 2986 §4.2). */
export interface CertificateRequestProof {
  readonly keyType: SubjectKeyType;
  /** The subject key's bits: for EC keys the uncompressed point 0x04 ‖ X ‖ Y (SEC 1 §2.3.3). */
  readonly publicKeyBits: Buffer;
  /** The digest of the signature algorithm; `null` for Ed25519. */
  readonly hash: 'sha256' | 'sha384' | 'sha512' | null;
  /** The DER certificationRequestInfo: the signed bytes. */
  readonly signedData: Buffer;
  /** The signature BIT STRING's bytes (for ECDSA, a DER ECDSA-Sig-Value). */
  readonly signature: Buffer;
}

/** What another verifier found: see {@link UnverifiedCertificateRequest.accept}. */
export type ProofVerdict = 'valid' | 'bad-signature' | 'bad-key';

/** A parsed certification request whose self-signature is still to be checked. */
export class UnverifiedCertificateRequest {
  readonly #request: CertificateRequest;
  /** The inputs of the signature check. */
  readonly proof: CertificateRequestProof;

  /** @internal */
  constructor(request: CertificateRequest, proof: CertificateRequestProof) {
    this.#request = request;
    this.proof = proof;
  }

  /**
   * Verifies the signature with node:crypto on this thread.
   * @throws {@link EncodingError} as {@link parseCertificateRequest}.
   */
  verify(): CertificateRequest {
    const p = this.proof;
    const key = this.#request.subjectPublicKey.publicKey;
    let ok = false;
    try {
      ok = cryptoVerify(p.hash, p.signedData, key, p.signature);
    } catch {
      ok = false;
    }
    if (!ok) throw malformed(BAD_SIGNATURE);
    return this.#request;
  }

  /** {@link UnverifiedCertificateRequest.verify} on libuv's thread pool (the key import stays on this thread). */
  verifyAsync(): Promise<CertificateRequest> {
    const p = this.proof;
    let key: KeyObject;
    try {
      key = this.#request.subjectPublicKey.publicKey;
    } catch (e) {
      return Promise.reject(e as Error);
    }
    return new Promise((resolve, reject) => {
      cryptoVerify(p.hash, p.signedData, key, p.signature, (err, ok) => {
        if (err === null && ok) resolve(this.#request);
        else reject(malformed(BAD_SIGNATURE));
      });
    });
  }

  /**
   * Completes the request with the verdict of a verifier that checked
   * {@link UnverifiedCertificateRequest.proof} itself: for `'valid'` the
   * request, otherwise the error {@link parseCertificateRequest} gives for
   * that defect. The caller answers for the verdict: give `'valid'` only for
   * a signature verified over `proof.signedData` with exactly
   * `proof.publicKeyBits` and `proof.hash`.
   *
   * @throws {@link EncodingError} `ERR_CERTIFICATE_INVALID` (bad signature)
   * or `ERR_KEY_INVALID` (bad key); a TypeError for another verdict.
   */
  accept(verdict: ProofVerdict): CertificateRequest {
    switch (verdict) {
      case 'valid':
        return this.#request;
      case 'bad-signature':
        throw malformed(BAD_SIGNATURE);
      case 'bad-key':
        throw keyError(new KeyError('the EC point is not on its curve'), 'certificate request');
      default:
        throw new TypeError(`unknown proof verdict ${JSON.stringify(verdict)}`);
    }
  }
}

const BAD_SIGNATURE = "signature does not verify with the request's public key (no proof of possession of the private key)";

interface Unverified {
  readonly request: CertificateRequest;
  readonly proof: CertificateRequestProof;
}

/** Everything but the signature check. */
function parseUnverified(input: Uint8Array): Unverified {
  if (!(input instanceof Uint8Array)) throw malformed('expected DER bytes');
  if (input.length > MAX_CERTIFICATE_REQUEST_BYTES) {
    throw malformed(`${input.length} bytes is larger than the ${MAX_CERTIFICATE_REQUEST_BYTES}-byte limit`);
  }
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  let info: Tlv;
  let subjectRaw: Buffer;
  let key: DecodedSubjectPublicKey;
  let names: { uris: string[]; dnsNames: string[]; ipAddresses: string[] };
  let sigAlg: string;
  let sigParams: Buffer | undefined;
  let signature: Buffer;
  try {
    const top = new DerReader(buf);
    const reqTlv = top.expect(TAG.SEQUENCE, 'CertificationRequest');
    top.expectDone('CertificationRequest');
    const req = DerReader.of(buf, reqTlv);
    info = req.expect(TAG.SEQUENCE, 'certificationRequestInfo');
    const alg = req.sequence('signatureAlgorithm');
    sigAlg = alg.oid('signature algorithm');
    if (!alg.done()) sigParams = Buffer.from(alg.raw(alg.read()));
    alg.expectDone('signatureAlgorithm');
    const sig = req.bitString('signature');
    if (sig.unusedBits !== 0) throw new DerError('signature has unused bits', reqTlv.start);
    signature = Buffer.from(sig.bytes.buffer, sig.bytes.byteOffset, sig.bytes.byteLength);
    req.expectDone('CertificationRequest');

    const r = DerReader.of(buf, info);
    if (r.smallInteger('version') !== 0) throw new DerError('unsupported version (only v1, 0, exists)', info.start);
    const subject = r.expect(TAG.SEQUENCE, 'subject');
    subjectRaw = buf.subarray(subject.start, subject.end);
    parseName(subjectRaw);
    key = readSubjectPublicKey(buf, r.expect(TAG.SEQUENCE, 'subjectPKInfo'), 'certificate request');
    // attributes [0] IMPLICIT SET OF Attribute is not OPTIONAL (RFC 2986 §4.1); Go requires it too.
    if (r.done()) throw new DerError('missing attributes [0] (required by RFC 2986 §4.1, even when empty)', info.start);
    names = readAttributes(buf, r.expect(ctx(0, true), 'attributes [0]'));
    r.expectDone('certificationRequestInfo');
  } catch (e) {
    if (e instanceof DerError) throw malformed(e.message, e);
    if (e instanceof KeyError) throw keyError(e, 'certificate request');
    throw e;
  }
  const hash = signatureHash(sigAlg, sigParams, key.keyType);
  if (hash === undefined) {
    throw malformed(`signature algorithm ${sigAlg} is not supported for a ${key.keyType} key (use ECDSA or RSA PKCS#1 v1.5 with SHA-256/384/512, or Ed25519)`);
  }
  return {
    request: { der: buf, subjectRaw, subjectPublicKey: key, ...names, signatureAlgorithm: sigAlg },
    proof: { keyType: key.keyType, publicKeyBits: key.publicKeyBits, hash, signedData: buf.subarray(info.start, info.end), signature },
  };
}

function malformed(message: string, cause?: unknown): EncodingError {
  return new EncodingError('ERR_CERTIFICATE_INVALID', `malformed certificate request: ${message}`, cause === undefined ? undefined : { cause });
}

/** Reads the attributes, returning the SANs of an extensionRequest. */
function readAttributes(buf: Buffer, attrs: Tlv): { uris: string[]; dnsNames: string[]; ipAddresses: string[] } {
  const out = { uris: [] as string[], dnsNames: [] as string[], ipAddresses: [] as string[] };
  const r = DerReader.of(buf, attrs);
  let sawExtensions = false;
  while (!r.done()) {
    const a = r.sequence('attribute');
    const type = a.oid('attribute type');
    const valuesTlv = a.expect(TAG.SET, 'attribute values');
    a.expectDone('attribute');
    if (valuesTlv.end === valuesTlv.content) throw new DerError('attribute with no values', valuesTlv.start);
    if (type !== OID_EXTENSION_REQUEST) continue;
    if (sawExtensions) throw new DerError('more than one extensionRequest attribute', valuesTlv.start);
    sawExtensions = true;
    const values = DerReader.of(buf, valuesTlv);
    const exts = values.sequence('extensionRequest');
    values.expectDone('extensionRequest (exactly one value)');
    const seen = new Set<string>();
    while (!exts.done()) {
      const e = exts.sequence('extension');
      const oid = e.oid('extnID');
      if (e.peekTag() === TAG.BOOLEAN) e.boolean('critical');
      const valueTlv = e.expect(TAG.OCTET_STRING, 'extnValue');
      e.expectDone('extension');
      if (seen.has(oid)) throw new DerError(`duplicate extension ${oid}`, valueTlv.start);
      seen.add(oid);
      if (oid === OID.subjectAltName) readGeneralNames(buf, valueTlv, out);
    }
  }
  return out;
}

function readGeneralNames(buf: Buffer, valueTlv: Tlv, out: { uris: string[]; dnsNames: string[]; ipAddresses: string[] }): void {
  const v = DerReader.of(buf, valueTlv);
  const names = v.sequence('subjectAltName');
  v.expectDone('subjectAltName');
  if (names.done()) throw new DerError('empty subjectAltName', valueTlv.start);
  while (!names.done()) {
    const gn = names.read();
    const bytes = buf.subarray(gn.content, gn.end);
    switch (gn.tag) {
      case ctx(2, false):
        out.dnsNames.push(ascii(bytes, 'dNSName', gn));
        break;
      case ctx(6, false):
        out.uris.push(ascii(bytes, 'uniformResourceIdentifier', gn));
        break;
      case ctx(7, false):
        if (bytes.length === 4) out.ipAddresses.push(Array.from(bytes).join('.'));
        else if (bytes.length === 16) out.ipAddresses.push(Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2).toString(16)).join(':'));
        else throw new DerError('invalid iPAddress length', gn.start);
        break;
      default:
        // Other name forms (email, directoryName, otherName) are never copied into an SVID.
        break;
    }
  }
}

function ascii(b: Uint8Array, what: string, tlv: Tlv): string {
  if (b.length === 0) throw new DerError(`empty ${what}`, tlv.start);
  for (const c of b) if (c < 0x21 || c > 0x7e) throw new DerError(`non-printable character in ${what}`, tlv.start);
  return Buffer.from(b).toString('latin1');
}

function ecdsaHash(oid: string): 'sha256' | 'sha384' | 'sha512' | undefined {
  return oid === OID.ecdsaWithSha256 ? 'sha256' : oid === OID.ecdsaWithSha384 ? 'sha384' : oid === OID.ecdsaWithSha512 ? 'sha512' : undefined;
}

function rsaHash(oid: string): 'sha256' | 'sha384' | 'sha512' | undefined {
  return oid === OID.sha256WithRsa ? 'sha256' : oid === OID.sha384WithRsa ? 'sha384' : oid === OID.sha512WithRsa ? 'sha512' : undefined;
}

const NULL_PARAMS = Buffer.from([0x05, 0x00]);

/** The node:crypto digest for the request's signature algorithm and key type; undefined when unsupported. */
function signatureHash(alg: string, params: Buffer | undefined, keyType: SubjectKeyType): CertificateRequestProof['hash'] | undefined {
  switch (keyType) {
    case 'ec-p256':
    case 'ec-p384':
      return params === undefined ? ecdsaHash(alg) : undefined;
    case 'rsa':
      // RFC 4055 §5: NULL parameters; absent ones are common enough (and harmless) to accept.
      return params === undefined || params.equals(NULL_PARAMS) ? rsaHash(alg) : undefined;
    case 'ed25519':
      return alg === OID.ed25519 && params === undefined ? null : undefined;
  }
}

/**
 * The SubjectPublicKeyInfo DER of a key (public, or the public half of a
 * private one): EC P-256/P-384/P-521, RSA or Ed25519.
 *
 * Never through a JWK export: on Node 20 an EC or RSA JWK export of a key
 * from `generateKeyPair[Sync]` (or a public key derived from one) can hang
 * the process — the export holds the key's lock while allocating, and a
 * garbage collection that finalizes the key's generation job takes the
 * same lock (see docs/ca.md). And not through an SPKI export where avoidable:
 * with OpenSSL 3.0 it costs ~145 µs. So: an EC private key via its SEC1
 * export (~15 µs; it carries the public point), RSA via PKCS#1 (~2 µs),
 * EC public and Ed25519 keys via SPKI. Passing the private key, or the SPKI
 * bytes themselves, is the fast path.
 *
 * @throws {@link EncodingError} `ERR_KEY_INVALID` for other key types or a
 * compressed EC point.
 */
export function encodeSubjectPublicKeyInfo(key: KeyObject): Buffer {
  const type = key.asymmetricKeyType;
  if (key.type !== 'private' && key.type !== 'public') throw new EncodingError('ERR_KEY_INVALID', 'a secret key has no SubjectPublicKeyInfo');
  if (type === 'rsa') {
    const pub = key.type === 'private' ? createPublicKey(key) : key;
    return der.seq(der.seq(der.oid(OID.rsaEncryption), der.nullValue()), der.bitString(pub.export({ type: 'pkcs1', format: 'der' })));
  }
  if (type === 'ec' && key.type === 'private') {
    const spki = spkiFromSec1(key.export({ type: 'sec1', format: 'der' }));
    if (spki !== undefined) return spki;
  }
  if (type === 'ec' || type === 'ed25519') {
    const pub = key.type === 'private' ? createPublicKey(key) : key;
    const spki = pub.export({ type: 'spki', format: 'der' });
    if (type === 'ec') checkUncompressedSpki(spki);
    return spki;
  }
  throw new EncodingError('ERR_KEY_INVALID', `cannot encode a ${String(type)} key; ${SUPPORTED_KEYS}`);
}

/**
 * The SPKI of an ECPrivateKey (RFC 5915 §3): its named-curve parameters [0]
 * and public key [1], re-wrapped. `undefined` when either is absent.
 */
function spkiFromSec1(sec1: Buffer): Buffer | undefined {
  const r = new DerReader(sec1).sequence('ECPrivateKey');
  r.smallInteger('version');
  r.octetString('privateKey');
  const params = r.optional(ctx(0, true));
  const pub = r.optional(ctx(1, true));
  if (params === undefined || pub === undefined) return undefined;
  const curve = DerReader.of(sec1, params).expect(TAG.OID, 'namedCurve');
  const bits = DerReader.of(sec1, pub).expect(TAG.BIT_STRING, 'publicKey');
  checkUncompressed(sec1[bits.content + 1]);
  return der.seq(der.seq(der.oid(OID.ecPublicKey), sec1.subarray(curve.start, curve.end)), sec1.subarray(bits.start, bits.end));
}

/** Refuses an SPKI whose EC point is compressed (see {@link checkUncompressed}). */
function checkUncompressedSpki(spki: Buffer): void {
  const s = new DerReader(spki).sequence('subjectPublicKeyInfo');
  s.sequence('algorithm');
  checkUncompressed(spki[s.expect(TAG.BIT_STRING, 'subjectPublicKey').content + 1]);
}

/**
 * Refuses a compressed EC point, given its first octet: OpenSSL keeps the
 * form a key was imported with, and X.509 consumers such as Go accept only
 * uncompressed points.
 */
function checkUncompressed(firstOctet: number | undefined): void {
  if (firstOctet !== 0x04) throw new EncodingError('ERR_KEY_INVALID', 'cannot encode a compressed EC point (X.509 consumers such as Go refuse them)');
}

/**
 * Builds and signs a PKCS#10 request (RFC 2986) for `privateKey`, asking for
 * `names` as SANs in an extensionRequest attribute (none when `names` is
 * empty). The subject is empty unless `subject` (Name DER) is given. Used by
 * the agent and by tests; any key `node:crypto` can sign with is accepted,
 * so tests can build requests a CA must refuse.
 *
 * @throws {@link EncodingError} `ERR_KEY_INVALID` for a key that cannot sign.
 */
export function buildCertificateRequest(privateKey: KeyObject, names: CertificateRequestNames = {}, subject?: Buffer): Buffer {
  if (privateKey.type !== 'private') throw new EncodingError('ERR_KEY_INVALID', 'a certificate request must be signed with a private key');
  const hasNames = (names.uris?.length ?? 0) + (names.dnsNames?.length ?? 0) + (names.ipAddresses?.length ?? 0) > 0;
  const attributes = hasNames
    ? [der.seq(der.oid(OID_EXTENSION_REQUEST), der.set(der.seq(der.seq(der.oid(OID.subjectAltName), der.octetString(subjectAltNameExt(names).value)))))]
    : [];
  const info = der.seq(
    der.smallInteger(0),
    subject ?? der.seq(),
    encodeSubjectPublicKeyInfo(privateKey),
    der.implicitConstructed(0, ...attributes),
  );
  let scheme;
  try {
    scheme = signatureSchemeFor(privateKey);
  } catch (e) {
    throw new EncodingError('ERR_KEY_INVALID', `cannot sign a certificate request: ${(e as Error).message}`, { cause: e });
  }
  return der.seq(info, scheme.algorithmIdentifier, der.bitString(signTbs(info, privateKey, scheme)));
}

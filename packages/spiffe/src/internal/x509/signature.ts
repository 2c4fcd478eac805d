/**
 * Certificate signature verification and creation with `node:crypto`.
 * Only algorithms accepted by go-spiffe / Go's crypto/x509 for SVIDs are
 * allowed; SHA-1 and MD5 based signatures are rejected.
 * @internal
 */
import { constants, createHash, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { DerReader, TAG, ctx } from '../asn1/der-reader.js';
import * as der from '../asn1/der-writer.js';
import { OID } from './oids.js';
import type { Certificate } from './certificate.js';

interface PssParams {
  hash: string;
  saltLength: number;
}

function hashName(oid: string): string | undefined {
  return oid === OID.sha256 ? 'sha256' : oid === OID.sha384 ? 'sha384' : oid === OID.sha512 ? 'sha512' : undefined;
}

function parsePss(params: Buffer | undefined): PssParams {
  if (params === undefined) throw new Error('RSASSA-PSS without parameters');
  const s = new DerReader(params).sequence('RSASSA-PSS-params');
  let hash = 'sha1';
  let saltLength = 20;
  let mgfHash = 'sha1';
  const h = s.optional(ctx(0, true));
  if (h !== undefined) {
    const a = DerReader.of(params, h).sequence('hashAlgorithm');
    hash = hashName(a.oid('hash')) ?? 'unsupported';
  }
  const mgf = s.optional(ctx(1, true));
  if (mgf !== undefined) {
    const a = DerReader.of(params, mgf).sequence('maskGenAlgorithm');
    if (a.oid('mgf') !== OID.mgf1) throw new Error('unsupported PSS mask generation function');
    const inner = a.sequence('mgf1 hash');
    mgfHash = hashName(inner.oid('mgf1 hash')) ?? 'unsupported';
  }
  const salt = s.optional(ctx(2, true));
  if (salt !== undefined) saltLength = DerReader.of(params, salt).smallInteger('saltLength');
  if (hash === 'sha1' || hash === 'unsupported' || mgfHash !== hash) throw new Error('unsupported RSASSA-PSS parameters');
  return { hash, saltLength };
}

/** Human name of a signature algorithm OID. */
export function signatureAlgorithmName(oid: string): string {
  switch (oid) {
    case OID.ecdsaWithSha256: return 'ECDSA-SHA256';
    case OID.ecdsaWithSha384: return 'ECDSA-SHA384';
    case OID.ecdsaWithSha512: return 'ECDSA-SHA512';
    case OID.sha256WithRsa: return 'SHA256-RSA';
    case OID.sha384WithRsa: return 'SHA384-RSA';
    case OID.sha512WithRsa: return 'SHA512-RSA';
    case OID.rsaPss: return 'RSASSA-PSS';
    case OID.ed25519: return 'Ed25519';
    default: return oid;
  }
}

/**
 * Verifies `cert`'s signature with `issuerKey`. Returns a reason string on
 * failure, `undefined` on success.
 */
export function checkSignature(cert: Certificate, issuerKey: KeyObject): string | undefined {
  const alg = cert.signatureAlgorithm;
  const keyType = issuerKey.asymmetricKeyType;
  try {
    let ok: boolean;
    switch (alg) {
      case OID.ecdsaWithSha256:
      case OID.ecdsaWithSha384:
      case OID.ecdsaWithSha512: {
        if (keyType !== 'ec') return 'signature algorithm does not match the issuer key type';
        if (cert.signatureParams !== undefined) return 'ECDSA signature algorithm must not have parameters';
        const h = alg === OID.ecdsaWithSha256 ? 'sha256' : alg === OID.ecdsaWithSha384 ? 'sha384' : 'sha512';
        ok = cryptoVerify(h, cert.tbs, { key: issuerKey, dsaEncoding: 'der' }, cert.signature);
        break;
      }
      case OID.sha256WithRsa:
      case OID.sha384WithRsa:
      case OID.sha512WithRsa: {
        if (keyType !== 'rsa') return 'signature algorithm does not match the issuer key type';
        const h = alg === OID.sha256WithRsa ? 'sha256' : alg === OID.sha384WithRsa ? 'sha384' : 'sha512';
        ok = cryptoVerify(h, cert.tbs, issuerKey, cert.signature);
        break;
      }
      case OID.rsaPss: {
        if (keyType !== 'rsa' && keyType !== 'rsa-pss') return 'signature algorithm does not match the issuer key type';
        const p = parsePss(cert.signatureParams);
        ok = cryptoVerify(p.hash, cert.tbs, { key: issuerKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: p.saltLength }, cert.signature);
        break;
      }
      case OID.ed25519:
        if (keyType !== 'ed25519') return 'signature algorithm does not match the issuer key type';
        ok = cryptoVerify(null, cert.tbs, issuerKey, cert.signature);
        break;
      default:
        return `unsupported signature algorithm ${alg}`;
    }
    return ok ? undefined : 'signature does not verify';
  } catch (e) {
    return `signature does not verify: ${(e as Error).message}`;
  }
}

/** The signature AlgorithmIdentifier DER and node:crypto digest for a signing key. */
export interface SignatureScheme {
  readonly algorithmIdentifier: Buffer;
  readonly digest: string | null;
}

const schemeCache = new WeakMap<KeyObject, SignatureScheme>();

/** Picks the signature algorithm for a signing key: ECDSA with the curve's hash, SHA256-RSA, or Ed25519. */
export function signatureSchemeFor(key: KeyObject): SignatureScheme {
  const cached = schemeCache.get(key);
  if (cached !== undefined) return cached;
  let scheme: SignatureScheme;
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const [oid, digest] =
        curve === 'P-384' || curve === 'secp384r1'
          ? [OID.ecdsaWithSha384, 'sha384']
          : curve === 'P-521' || curve === 'secp521r1'
            ? [OID.ecdsaWithSha512, 'sha512']
            : [OID.ecdsaWithSha256, 'sha256'];
      scheme = { algorithmIdentifier: der.seq(der.oid(oid)), digest };
      break;
    }
    case 'rsa':
      scheme = { algorithmIdentifier: der.seq(der.oid(OID.sha256WithRsa), der.nullValue()), digest: 'sha256' };
      break;
    case 'ed25519':
      scheme = { algorithmIdentifier: der.seq(der.oid(OID.ed25519)), digest: null };
      break;
    default:
      throw new Error(`unsupported signing key type ${String(key.asymmetricKeyType)}`);
  }
  schemeCache.set(key, scheme);
  return scheme;
}

/** Signs `tbs` with `key` using `scheme`. */
export function signTbs(tbs: Buffer, key: KeyObject, scheme: SignatureScheme): Buffer {
  return cryptoSign(scheme.digest, tbs, key.asymmetricKeyType === 'ec' ? { key, dsaEncoding: 'der' } : key);
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(spki: Buffer): Buffer {
  const s = new DerReader(spki).sequence('subjectPublicKeyInfo');
  s.read();
  const bits = s.expect(TAG.BIT_STRING, 'subjectPublicKey');
  return createHash('sha1').update(spki.subarray(bits.content + 1, bits.end)).digest();
}

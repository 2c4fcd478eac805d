import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { EncodingError } from '../errors/index.js';

/**
 * Parses a private key from PKCS#8 DER (the Workload API's form) or PEM
 * (`PRIVATE KEY`, `EC PRIVATE KEY`, `RSA PRIVATE KEY`). Encrypted keys are refused.
 * Only EC (P-256/384/521), RSA and Ed25519 keys are supported.
 * @throws {@link EncodingError} `ERR_KEY_INVALID`
 */
export function parsePrivateKey(data: Uint8Array | string): KeyObject {
  let key: KeyObject;
  try {
    const text = typeof data === 'string' ? data : undefined;
    const buf = typeof data === 'string' ? undefined : Buffer.from(data);
    const isPem = text !== undefined || buf!.subarray(0, 64).toString('latin1').includes('-----BEGIN');
    if (isPem) {
      const pem = text ?? buf!.toString('latin1');
      if (pem.includes('ENCRYPTED')) throw new EncodingError('ERR_KEY_INVALID', 'encrypted private keys are not supported');
      key = createPrivateKey({ key: pem, format: 'pem' });
    } else {
      key = createPrivateKey({ key: buf!, format: 'der', type: 'pkcs8' });
    }
  } catch (e) {
    if (e instanceof EncodingError) throw e;
    throw new EncodingError('ERR_KEY_INVALID', `cannot parse private key: ${(e as Error).message}`, { cause: e });
  }
  // Node 20 accepts some invalid EC private keys (an embedded point at
  // infinity, an over-long scalar) and aborts the process when their details
  // are read; a SEC1 export throws for them instead.
  if (key.asymmetricKeyType === 'ec') {
    try {
      key.export({ type: 'sec1', format: 'der' });
    } catch (e) {
      throw new EncodingError('ERR_KEY_INVALID', `invalid EC private key: ${(e as Error).message}`, { cause: e });
    }
  }
  checkKeyType(key);
  return key;
}

/** Refuses key types an SVID may not use. @throws {@link EncodingError} `ERR_KEY_INVALID` */
export function checkKeyType(key: KeyObject): void {
  const t = key.asymmetricKeyType;
  if (t === 'ec') {
    const c = key.asymmetricKeyDetails?.namedCurve;
    if (c !== 'prime256v1' && c !== 'secp384r1' && c !== 'secp521r1') throw new EncodingError('ERR_KEY_INVALID', `unsupported EC curve ${String(c)}`);
    return;
  }
  if (t === 'rsa' || t === 'ed25519') return;
  throw new EncodingError('ERR_KEY_INVALID', `unsupported private key type ${String(t)}`);
}

const CHALLENGE = Buffer.from('tessera: proof that the private key belongs to the certificate');

/**
 * Whether `privateKey` is the private half of `publicKey`. Comparing public
 * keys is not enough: a PKCS#8 key may embed a public key that its scalar
 * does not produce. So the key also signs a challenge that `publicKey` must
 * verify.
 */
export function keysMatch(privateKey: KeyObject, publicKey: KeyObject): boolean {
  try {
    if (!createPublicKey(privateKey).equals(publicKey)) return false;
    const digest = privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256';
    return verify(digest, CHALLENGE, publicKey, sign(digest, CHALLENGE, privateKey));
  } catch {
    return false;
  }
}

/**
 * JSON Web Key helpers shared by the JWT and SPIFFE bundles (RFC 7517).
 * @internal
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { checkedPublicKey } from '../internal/x509/certificate.js';

const EC_CURVES = new Set(['P-256', 'P-384', 'P-521']);

/**
 * Imports a public JWK. Only EC (P-256/384/521), RSA and OKP (Ed25519) public
 * keys are accepted; private members are refused.
 * @returns the key, or a reason string.
 */
export function importPublicJwk(jwk: Record<string, unknown>): KeyObject | string {
  const kty = jwk['kty'];
  if (typeof kty !== 'string') return 'missing "kty"';
  if ('d' in jwk || 'p' in jwk || 'q' in jwk) return 'JWK contains private key material';
  switch (kty) {
    case 'EC':
      if (typeof jwk['crv'] !== 'string' || !EC_CURVES.has(jwk['crv'])) return `unsupported EC curve ${JSON.stringify(jwk['crv'])}`;
      if (typeof jwk['x'] !== 'string' || typeof jwk['y'] !== 'string') return 'EC key needs "x" and "y"';
      break;
    case 'RSA':
      if (typeof jwk['n'] !== 'string' || typeof jwk['e'] !== 'string') return 'RSA key needs "n" and "e"';
      break;
    case 'OKP':
      if (jwk['crv'] !== 'Ed25519' || typeof jwk['x'] !== 'string') return 'OKP key must be Ed25519 with "x"';
      break;
    default:
      return `unsupported key type "${kty}"`;
  }
  try {
    const params: JsonWebKey = { kty };
    for (const k of ['crv', 'x', 'y', 'n', 'e'] as const) if (typeof jwk[k] === 'string') params[k] = jwk[k] as string;
    return checkedPublicKey(createPublicKey({ key: params, format: 'jwk' }));
  } catch (e) {
    return `invalid key parameters: ${(e as Error).message}`;
  }
}

/** Exports the public parameters of a key as a JWK (kty, crv/x/y or n/e). */
export function exportPublicJwk(key: KeyObject): Record<string, string> {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const jwk = pub.export({ format: 'jwk' }) as Record<string, string>;
  const out: Record<string, string> = { kty: jwk['kty']! };
  for (const k of ['crv', 'x', 'y', 'n', 'e']) if (jwk[k] !== undefined) out[k] = jwk[k]!;
  return out;
}

import { generateKeyPairSync, type KeyObject } from 'node:crypto';

/** Key types the test CA can mint. */
export type TestKeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'ed25519';

/** Generates a private key of `type`. */
export function generateKey(type: TestKeyType = 'ec-p256'): KeyObject {
  switch (type) {
    case 'ec-p256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    case 'ec-p384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    case 'rsa-2048':
      return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    case 'ed25519':
      return generateKeyPairSync('ed25519').privateKey;
  }
}

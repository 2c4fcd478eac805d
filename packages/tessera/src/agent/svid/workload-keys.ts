import { generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';

const generateKeyPairAsync = promisify(generateKeyPair);

/** Key types of workload SVIDs (made on the node; the server only sees CSRs). */
export type WorkloadKeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048';

/** A fresh private key of `type`, generated off the event loop (libuv thread pool). */
export async function newWorkloadKey(type: WorkloadKeyType): Promise<KeyObject> {
  switch (type) {
    case 'ec-p256':
      return (await generateKeyPairAsync('ec', { namedCurve: 'P-256' })).privateKey;
    case 'ec-p384':
      return (await generateKeyPairAsync('ec', { namedCurve: 'P-384' })).privateKey;
    case 'rsa-2048':
      return (await generateKeyPairAsync('rsa', { modulusLength: 2048 })).privateKey;
  }
}

import { createPublicKey, type KeyObject } from 'node:crypto';
import { TrustDomain } from '@tessera/spiffe/id';
import { SpiffeBundle } from '@tessera/spiffe/bundle';
import type { Bundle } from '../../gen/tessera/v1/types_pb.js';

/**
 * A bundle received from the server (Agent API `Bundle` message) as a
 * library {@link SpiffeBundle}: X.509 authorities (DER) and JWT authorities
 * (SPKI DER with their key IDs). Malformed content throws.
 */
export function bundleFromProto(b: Bundle): SpiffeBundle {
  const td = TrustDomain.parse(b.trustDomain);
  const jwt: [string, KeyObject][] = b.jwtAuthorities.map((k) => [k.keyId, createPublicKey({ key: Buffer.from(k.publicKey), format: 'der', type: 'spki' })]);
  return new SpiffeBundle(td, {
    x509Authorities: b.x509Authorities,
    jwtAuthorities: jwt,
    ...(b.sequenceNumber > 0n ? { sequenceNumber: Number(b.sequenceNumber) } : {}),
    ...(b.refreshHint > 0n ? { refreshHintSeconds: Number(b.refreshHint) } : {}),
  });
}

/**
 * A real Workload API socket for tests: `startWorkloadApi` over an
 * in-memory cache, callers identified by SO_PEERCRED and given selectors by
 * their uid (the test decides which).
 */
import type { TestCa } from '@tessera/spiffe/testing';
import { startWorkloadApi, type IdentityCache, type TrustBundle, type WorkloadApiServer } from '../../src/agent/workload-api/index.js';
import { peerCredentials } from '../../src/agent/workload-attestors/index.js';
import type { Selector } from '../../src/server/registration/index.js';

/** The trust bundle of a TestCa as the identity cache holds it. */
export const trustBundleOf = (c: TestCa): TrustBundle => ({ trustDomain: c.trustDomain.name, x509Authorities: [c.root.certificate], jwks: c.jwtBundle().marshal() });

/** Serves `cache` on `socketPath`; a caller gets `selectorsFor(its uid, its pid)`. */
export function startUidAttestedWorkloadApi(socketPath: string, cache: IdentityCache, selectorsFor: (uid: number, pid: number) => Selector[]): Promise<WorkloadApiServer> {
  const uidOf = new Map<number, number>();
  return startWorkloadApi({
    socketPath,
    cache,
    peer: (socket) => {
      const c = peerCredentials(socket);
      uidOf.set(c.pid, c.uid);
      return c;
    },
    attest: (pid) => Promise.resolve(selectorsFor(uidOf.get(pid) ?? -1, pid)),
  });
}

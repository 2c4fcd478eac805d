import type { Socket } from 'node:net';
import * as peercred from '@tessera/peercred';

import { WorkloadAttestationError } from './errors.js';

/** The caller of a Unix-socket connection, as the kernel recorded it at connect(2) (unix(7), SO_PEERCRED). */
export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/**
 * SO_PEERCRED of an accepted Unix-domain socket (the native `@tessera/peercred`
 * addon, which reads the fd from the undocumented `socket._handle.fd`).
 * Call it while the connection is open: once closed there is no fd.
 * @throws WorkloadAttestationError WORKLOAD_ATTESTOR_UNAVAILABLE if the addon is not built,
 *   WORKLOAD_PEERCRED_FAILED if the credentials cannot be read.
 */
export function peerCredentials(socket: Socket): PeerCredentials {
  try {
    const { pid, uid, gid } = peercred.peerCredentialsOf(socket);
    // pid 0 means the peer is in another pid namespace we cannot see (or a socketpair
    // created before credentials existed): /proc/0 would attest nothing meaningful.
    if (pid <= 0) throw new WorkloadAttestationError('WORKLOAD_PEERCRED_FAILED', `peer pid ${pid} is not visible from this pid namespace`);
    return { pid, uid, gid };
  } catch (e) {
    if (e instanceof WorkloadAttestationError) throw e;
    const code = (e as { code?: unknown }).code;
    if (code === 'ERR_PEERCRED_NOT_AVAILABLE') {
      throw new WorkloadAttestationError('WORKLOAD_ATTESTOR_UNAVAILABLE', (e as Error).message, { cause: e });
    }
    throw new WorkloadAttestationError('WORKLOAD_PEERCRED_FAILED', `cannot read the caller's credentials: ${(e as Error).message}`, { cause: e });
  }
}

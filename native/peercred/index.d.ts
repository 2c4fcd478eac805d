import type { Socket } from 'node:net';

/** Credentials the kernel recorded for the peer at connect(2) time (unix(7), SO_PEERCRED). */
export interface PeerCred {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/** True when the addon is built and loadable on this platform. */
export declare const available: boolean;
/** Path of the loaded .node file, or undefined. */
export declare const addonPath: string | undefined;

/**
 * getsockopt(fd, SOL_SOCKET, SO_PEERCRED).
 * Throws an Error with `code` (e.g. 'EBADF', 'ENOTSOCK'), negative `errno` and `syscall` on failure,
 * or `code` 'ERR_PEERCRED_NOT_AVAILABLE' if the addon is not built.
 */
export declare function getPeerCred(fd: number): PeerCred;
/** File descriptor of a connected net.Socket (via the undocumented `socket._handle.fd`); throws code 'ERR_PEERCRED_NO_FD'. */
export declare function socketFd(socket: Socket): number;
/** SO_PEERCRED of a connected Unix-domain net.Socket. */
export declare function peerCredentialsOf(socket: Socket): PeerCred;

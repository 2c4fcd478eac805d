// Loader for the SO_PEERCRED addon built by `node-gyp rebuild` (the package's
// install script, run by `npm ci` / `npm install` at the repository root).
//
// Getting the fd from a Node socket: an accepted `net.Socket` on a Unix-domain
// server keeps its libuv handle in the undocumented `socket._handle`, whose
// `fd` property is the kernel file descriptor (-1 once closed, or on Windows).
// There is no public API for it; `peerCredentialsOf(socket)` below wraps that
// access in one place and fails clearly if the handle is gone.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const candidates = [join(here, 'build', 'Release', 'peercred.node'), join(here, 'build', 'Debug', 'peercred.node')];
const found = candidates.find((p) => existsSync(p));

let binding;
let loadError;
if (process.platform !== 'linux') {
  loadError = new Error(`@tessera/peercred: SO_PEERCRED is Linux-only (platform is ${process.platform})`);
} else if (found === undefined) {
  loadError = new Error(
    `@tessera/peercred: native addon not built (looked for ${candidates.join(', ')}). ` +
      'Run `npm rebuild @tessera/peercred` (or `npm ci`) at the repository root; it needs node-gyp, a C compiler ' +
      'and Node headers (npm config nodedir=/usr), and the root package.json must allow its install script ("allowScripts").',
  );
} else {
  try {
    binding = createRequire(import.meta.url)(found);
  } catch (cause) {
    loadError = new Error(`@tessera/peercred: failed to load ${found}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}
if (loadError) loadError.code = 'ERR_PEERCRED_NOT_AVAILABLE';

/** True when the addon is built and loadable on this platform. */
export const available = binding !== undefined;

/** Path of the loaded .node file, or undefined. */
export const addonPath = binding !== undefined ? found : undefined;

/** getsockopt(fd, SOL_SOCKET, SO_PEERCRED). Throws ERR_PEERCRED_NOT_AVAILABLE if the addon is missing. */
export function getPeerCred(fd) {
  if (binding === undefined) throw loadError;
  return binding.getPeerCred(fd);
}

/** File descriptor of a connected net.Socket (via the undocumented `socket._handle.fd`). */
export function socketFd(socket) {
  const fd = socket?._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    const err = new Error('@tessera/peercred: socket has no file descriptor (closed, not yet connected, or not a libuv stream handle)');
    err.code = 'ERR_PEERCRED_NO_FD';
    throw err;
  }
  return fd;
}

/** SO_PEERCRED of a connected Unix-domain net.Socket. */
export function peerCredentialsOf(socket) {
  return getPeerCred(socketFd(socket));
}

import { isIP } from 'node:net';
import { OptionsError } from '../errors/index.js';

/** The environment variable holding the default Workload API address (SPIFFE Workload Endpoint §4). */
export const SPIFFE_ENDPOINT_SOCKET = 'SPIFFE_ENDPOINT_SOCKET';

/**
 * A parsed Workload API endpoint address: a Unix domain socket path or a
 * loopback-style TCP `IP:port` (SPIFFE Workload Endpoint §4).
 */
export type WorkloadEndpoint =
  | { readonly network: 'unix'; readonly path: string }
  | { readonly network: 'tcp'; readonly host: string; readonly port: number };

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/s;

function invalid(message: string): OptionsError {
  return new OptionsError(`${message}; use "unix:///absolute/path" or "tcp://<IP>:<port>"`);
}

/**
 * Parses a Workload API endpoint address with go-spiffe's rules
 * (`workloadapi.TargetFromAddress`): `unix:///absolute/path`, or
 * `tcp://<IP literal>:<port>` with nothing after the port. Opaque URIs
 * (`unix:path`), relative paths, host names, other schemes, user info,
 * query and fragment are refused. Without `addr`, the value of
 * `SPIFFE_ENDPOINT_SOCKET` is used.
 *
 * @throws {@link OptionsError} `ERR_INVALID_OPTIONS` naming what is wrong.
 * @example
 * ```ts
 * parseWorkloadEndpoint('unix:///run/spire/agent.sock'); // { network: 'unix', path: '/run/spire/agent.sock' }
 * parseWorkloadEndpoint('tcp://127.0.0.1:8081');          // { network: 'tcp', host: '127.0.0.1', port: 8081 }
 * ```
 */
export function parseWorkloadEndpoint(addr?: string, env: NodeJS.ProcessEnv = process.env): WorkloadEndpoint {
  const value = addr ?? env[SPIFFE_ENDPOINT_SOCKET];
  if (value === undefined || value === '') {
    throw new OptionsError(`workload endpoint socket address is not configured; pass "address" or set ${SPIFFE_ENDPOINT_SOCKET}`);
  }
  if (typeof value !== 'string') throw invalid('workload endpoint socket address must be a string');
  const m = SCHEME.exec(value);
  if (!m) throw invalid(`workload endpoint socket URI "${value}" has no scheme`);
  const scheme = m[1]!.toLowerCase();
  const rest = m[2]!;
  if (scheme !== 'unix' && scheme !== 'tcp') throw invalid(`workload endpoint socket URI must have a "tcp" or "unix" scheme, not "${scheme}"`);
  if (!rest.startsWith('//')) throw invalid(`workload endpoint ${scheme} socket URI must not be opaque`);
  const hier = rest.slice(2);
  const authEnd = hier.search(/[/?#]/);
  const authority = authEnd === -1 ? hier : hier.slice(0, authEnd);
  const tail = authEnd === -1 ? '' : hier.slice(authEnd);
  const q = tail.search(/[?#]/);
  const path = q === -1 ? tail : tail.slice(0, q);
  const after = q === -1 ? '' : tail.slice(q);
  if (authority.includes('@')) throw invalid(`workload endpoint ${scheme} socket URI must not include user info`);
  if (after.startsWith('?')) throw invalid(`workload endpoint ${scheme} socket URI must not include query values`);
  if (after.startsWith('#')) throw invalid(`workload endpoint ${scheme} socket URI must not include a fragment`);

  if (scheme === 'unix') {
    if (authority !== '') throw invalid(`workload endpoint unix socket URI must have an absolute path and no host (got host "${authority}")`);
    if (path === '' || path === '/') throw invalid('workload endpoint unix socket URI must include a path');
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      throw invalid('workload endpoint unix socket URI has a malformed percent-encoding');
    }
    if (decoded.includes('\0')) throw invalid('workload endpoint unix socket path must not contain NUL');
    return Object.freeze({ network: 'unix', path: decoded });
  }

  if (path !== '') throw invalid('workload endpoint tcp socket URI must not include a path');
  const hp = /^(?:\[([^\]]*)\]|([^:]*)):(\d*)$/.exec(authority);
  if (!hp) throw invalid('workload endpoint tcp socket URI host component must be an IP:port');
  const host = hp[1] ?? hp[2]!;
  const family = isIP(host);
  if (family === 0 || (hp[1] !== undefined && family !== 6) || (hp[2] !== undefined && family !== 4)) {
    throw invalid(`workload endpoint tcp socket URI host component must be an IP:port (got host "${host}")`);
  }
  if (hp[3] === '') throw invalid('workload endpoint tcp socket URI host component must include a port');
  const port = Number(hp[3]);
  if (!Number.isSafeInteger(port) || port < 1 || port > 65535) throw invalid(`workload endpoint tcp socket URI port "${hp[3]}" is out of range`);
  return Object.freeze({ network: 'tcp', host, port });
}

/**
 * `tessera server healthcheck`: SPIRE's `spire-server healthcheck`, usable
 * as a container health probe: exit 0 and "Server is healthy.", or exit 1
 * and "Server is unhealthy: <reason>".
 */
import type { HealthResponse } from '../../gen/tessera/v1/admin_pb.js';
import type { Command, CommandContext } from '../command.js';
import { CommandError, ExitCode } from '../errors.js';
import { SOCKET_PATH_FLAG, connectServer } from '../server-client.js';

/** SPIRE's healthcheck gives the server five seconds. */
const HEALTH_TIMEOUT_MS = 5000;

/** Component states that mean nothing is wrong. */
const GOOD = new Set(['', 'ok', 'ready', 'healthy', 'serving', 'active']);

/** Why a server that answered is not ready, from the components it reports. */
function notReadyReason(r: HealthResponse): string {
  const parts = [
    ...(GOOD.has(r.datastore.toLowerCase()) ? [] : [`datastore: ${r.datastore}`]),
    ...(GOOD.has(r.ca.toLowerCase()) ? [] : [`CA: ${r.ca}`]),
  ];
  return parts.length > 0 ? parts.join('; ') : 'the server is not ready';
}

/** `tessera server healthcheck`. */
export const serverHealthcheckCommand: Command = {
  name: 'healthcheck',
  summary: 'Determine server health status',
  description: [
    'Asks the server over its Admin API whether it is ready: its datastore answers and its CA can sign.',
    'Prints "Server is healthy." (exit 0) or "Server is unhealthy: <reason>" on stderr (exit 1).',
    'With -shallow, a server that answers at all is healthy (a liveness probe).',
  ].join('\n'),
  flags: [
    { name: 'shallow', kind: 'boolean', description: 'Perform a less stringent health check: the server answers' },
    { name: 'verbose', kind: 'boolean', description: 'Print verbose information' },
    SOCKET_PATH_FLAG,
  ],
  examples: ['tessera server healthcheck', 'tessera server healthcheck -shallow -socketPath /run/tessera/server.sock'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const verbose = flags.boolean('verbose');
    const server = connectServer(flags, { timeoutMs: HEALTH_TIMEOUT_MS });
    if (verbose) io.stdout.write(`Checking server health via ${server.socketPath}...\n`);
    let resp: HealthResponse;
    try {
      resp = await server.call('cannot check health', () => server.health.check({}));
    } catch (e) {
      if (!(e instanceof CommandError)) throw e;
      io.stderr.write(`Server is unhealthy: ${e.message}\n`);
      return ExitCode.failure;
    }
    if (verbose) {
      io.stdout.write(`Ready: ${resp.ready}\n`);
      if (resp.datastore !== '') io.stdout.write(`Datastore: ${resp.datastore}\n`);
      if (resp.ca !== '') io.stdout.write(`CA: ${resp.ca}\n`);
    }
    if (!flags.boolean('shallow') && !resp.ready) {
      io.stderr.write(`Server is unhealthy: ${notReadyReason(resp)}\n`);
      return ExitCode.failure;
    }
    io.stdout.write('Server is healthy.\n');
    return ExitCode.ok;
  },
};

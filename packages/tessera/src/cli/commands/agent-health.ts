/**
 * `tessera agent healthcheck`: SPIRE's `spire-agent healthcheck`, usable as
 * a container health probe: exit 0 and "Agent is healthy.", or exit 1 and
 * "Agent is unhealthy: <reason>".
 */
import { connect } from 'node:net';
import { Code } from '@connectrpc/connect';
import { WorkloadApiError, parseWorkloadEndpoint } from '@tessera/spiffe/workload-api';
import type { Command, CommandContext } from '../command.js';
import { CommandError, ExitCode } from '../errors.js';
import { WORKLOAD_SOCKET_FLAG, deadline, describeWorkloadApiError, openWorkloadApi, resolveWorkloadApiAddress } from './agent-api.js';

/** SPIRE's healthcheck gives the agent five seconds. */
const HEALTH_TIMEOUT_MS = 5000;

/** Resolves once the socket accepts a connection (the connection is closed at once). */
function acceptsConnection(address: string, timeoutMs: number): Promise<void> {
  const ep = parseWorkloadEndpoint(address);
  return new Promise((resolve, reject) => {
    const socket = ep.network === 'unix' ? connect(ep.path) : connect(ep.port, ep.host);
    socket.setTimeout(timeoutMs, () => socket.destroy(Object.assign(new Error(`no connection within ${timeoutMs / 1000}s`), { code: 'ETIMEDOUT' })));
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
}

/**
 * Asks the Workload API for the X.509 bundles. Any answer means the agent is
 * up and attesting callers, including PermissionDenied "no identity issued":
 * the probe usually runs as a process that has no registration entry.
 * @returns a note for -verbose.
 */
async function workloadApiAnswers(ctx: CommandContext): Promise<string> {
  const { client, address } = openWorkloadApi(ctx.flags);
  const { signal, clear } = deadline(HEALTH_TIMEOUT_MS);
  try {
    await client.fetchX509Bundles(signal);
    return 'the Workload API served the X.509 bundles';
  } catch (e) {
    if (!signal.aborted && e instanceof WorkloadApiError && e.grpcCode === Code.PermissionDenied) {
      return 'the Workload API answered PermissionDenied (no identity issued for this process): the agent is up';
    }
    throw describeWorkloadApiError(e, 'the Workload API did not answer', address, { signal, text: `${HEALTH_TIMEOUT_MS / 1000}s` });
  } finally {
    clear();
    client.close();
  }
}

/** `tessera agent healthcheck`. */
export const agentHealthcheckCommand: Command = {
  name: 'healthcheck',
  summary: 'Determines agent health status',
  description: [
    'Calls the Workload API on the agent socket. Prints "Agent is healthy." (exit 0) if the agent answers, even',
    'with PermissionDenied for a process without an identity; otherwise "Agent is unhealthy: <reason>" on stderr (exit 1).',
    'With -shallow, it only checks that the socket accepts a connection (a liveness probe).',
  ].join('\n'),
  flags: [
    WORKLOAD_SOCKET_FLAG,
    { name: 'shallow', kind: 'boolean', description: 'Perform a less stringent health check: the socket accepts a connection' },
    { name: 'verbose', kind: 'boolean', description: 'Print verbose information' },
  ],
  examples: ['tessera agent healthcheck', 'tessera agent healthcheck -shallow -socketPath /tmp/tessera-agent/public/api.sock'],
  async run(ctx: CommandContext): Promise<number> {
    const { io, flags } = ctx;
    const verbose = flags.boolean('verbose');
    const address = resolveWorkloadApiAddress(flags);
    if (verbose) io.stdout.write(`Checking agent health via ${address}...\n`);
    try {
      if (flags.boolean('shallow')) {
        try {
          await acceptsConnection(address, HEALTH_TIMEOUT_MS);
        } catch (e) {
          throw describeWorkloadApiError(e, 'the socket does not accept connections', address);
        }
        if (verbose) io.stdout.write('The socket accepts connections.\n');
      } else {
        const note = await workloadApiAnswers(ctx);
        if (verbose) io.stdout.write(`${note[0]!.toUpperCase()}${note.slice(1)}.\n`);
      }
    } catch (e) {
      if (!(e instanceof CommandError)) throw e;
      io.stderr.write(`Agent is unhealthy: ${e.message}\n`);
      return ExitCode.failure;
    }
    io.stdout.write('Agent is healthy.\n');
    return ExitCode.ok;
  },
};

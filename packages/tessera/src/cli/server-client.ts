/**
 * How `tessera server …` commands reach the server: the Admin API socket
 * (`-socketPath`, else the daemon's own default) and one-line messages for
 * every way a call can fail, so no command ever prints a stack trace.
 */
import { join } from 'node:path';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import type { DescService } from '@bufbuild/protobuf';
import { AgentAdmin, BundleAdmin, EntryAdmin, ServerHealth, SvidAdmin } from '../gen/tessera/v1/admin_pb.js';
import { unixSocketTransport } from '../grpc/unix-client.js';
import { CommandError } from './errors.js';
import { socketFailureReason } from './socket-errors.js';
import type { FlagSpec, ParsedFlags } from './flags.js';

/** Where the daemon keeps its data when nothing says otherwise (`tessera server run`'s `dataDir`). */
const DEFAULT_DATA_DIR = './.data';
/** How long a call may take before the CLI gives up on a server that accepted the connection. */
const DEFAULT_CALL_TIMEOUT_MS = 30_000;

/**
 * `-socketPath`, the flag every `tessera server` command takes (SPIRE's
 * spelling; `--socket-path` works too).
 */
export const SOCKET_PATH_FLAG: FlagSpec = {
  name: 'socket-path',
  kind: 'string',
  valueName: 'path',
  description: "Admin API socket of the server (default: $TESSERA_SERVER_SOCKET, else <$TESSERA_DATA_DIR or ./.data>/server.sock, as 'tessera server run' uses)",
};

/**
 * The Admin API socket a command talks to: the flag, else the environment
 * the daemon itself reads (`TESSERA_SERVER_SOCKET`, then
 * `<TESSERA_DATA_DIR>/server.sock`), else `./.data/server.sock`, so a CLI
 * started where the daemon was started finds it with no flag at all.
 *
 * @example
 * ```ts
 * resolveSocketPath(undefined, {}); // ".data/server.sock"
 * ```
 */
export function resolveSocketPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag !== undefined && flag !== '') return flag;
  const fromEnv = env['TESSERA_SERVER_SOCKET'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const dataDir = env['TESSERA_DATA_DIR'];
  return join(dataDir !== undefined && dataDir !== '' ? dataDir : DEFAULT_DATA_DIR, 'server.sock');
}



/** gRPC status name (`NotFound`) of a code. */
export function codeName(code: Code | number): string {
  return Code[code] ?? `code ${code}`;
}

/** Server messages go on one line whatever they contain. */
function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

/**
 * Turns anything a call threw into a one-line {@link CommandError}:
 * `cannot connect to the server at <path>: <reason> (…)` when the socket
 * cannot be reached, `<what>: <message> (<Code>)` when the server said no.
 * Errors that are not from the transport are rethrown untouched.
 */
export function describeCallError(e: unknown, what: string, socketPath: string, timeoutMs: number): CommandError {
  if (!(e instanceof ConnectError)) throw e;
  const reason = socketFailureReason(e);
  if (reason !== undefined) {
    return new CommandError(
      `cannot connect to the server at ${socketPath}: ${reason} (is 'tessera server run' running? Point at its socket with -socketPath or TESSERA_SERVER_SOCKET)`,
    );
  }
  if (e.code === Code.DeadlineExceeded) {
    return new CommandError(`${what}: the server at ${socketPath} did not answer within ${Math.round(timeoutMs / 1000)}s`);
  }
  if (e.code === Code.Unimplemented) {
    return new CommandError(`${what}: the server at ${socketPath} does not offer this API (${oneLine(e.rawMessage)}); is it an older tessera server?`);
  }
  return new CommandError(`${what}: ${oneLine(e.rawMessage) || 'no message'} (${codeName(e.code)})`);
}

/** A connection to one server's Admin API; clients are made on first use. */
export interface ServerConnection {
  /** The socket every call goes to. */
  readonly socketPath: string;
  readonly entries: Client<typeof EntryAdmin>;
  readonly agents: Client<typeof AgentAdmin>;
  readonly bundles: Client<typeof BundleAdmin>;
  readonly svids: Client<typeof SvidAdmin>;
  readonly health: Client<typeof ServerHealth>;
  /**
   * Runs one call; any failure becomes a one-line {@link CommandError}
   * starting with `what` (e.g. `cannot list entries`).
   */
  call<T>(what: string, f: () => Promise<T>): Promise<T>;
}

/**
 * Opens the Admin API named by the command's `-socketPath` flag (see
 * {@link resolveSocketPath}). Nothing is dialled until the first call.
 *
 * @example
 * ```ts
 * const server = connectServer(flags);
 * const n = await server.call('cannot count entries', () => server.entries.countEntries({}));
 * ```
 */
export function connectServer(flags: ParsedFlags, options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): ServerConnection {
  const socketPath = resolveSocketPath(flags.string(SOCKET_PATH_FLAG.name), options.env);
  const timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const transport = unixSocketTransport(socketPath, { timeoutMs });
  const clients = new Map<DescService, unknown>();
  const client = <S extends DescService>(service: S): Client<S> => {
    let c = clients.get(service) as Client<S> | undefined;
    if (c === undefined) {
      c = createClient(service, transport);
      clients.set(service, c);
    }
    return c;
  };
  return {
    socketPath,
    get entries() {
      return client(EntryAdmin);
    },
    get agents() {
      return client(AgentAdmin);
    },
    get bundles() {
      return client(BundleAdmin);
    },
    get svids() {
      return client(SvidAdmin);
    },
    get health() {
      return client(ServerHealth);
    },
    async call<T>(what: string, f: () => Promise<T>): Promise<T> {
      try {
        return await f();
      } catch (e) {
        throw describeCallError(e, what, socketPath, timeoutMs);
      }
    },
  };
}

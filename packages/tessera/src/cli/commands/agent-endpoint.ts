/**
 * `tessera agent endpoint add|remove|list`: endpoint registration on the
 * agent's admin socket (the call a CNI plugin makes, issue 4 "Endpoint
 * registration"), from the command line. Mounted under `tessera agent`.
 */
import { isAbsolute, resolve } from 'node:path';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { EndpointAdmin, ListEndpointsResponseSchema, WorkloadEndpointSchema, type WorkloadEndpoint } from '../../gen/tessera/v1/agent_admin_pb.js';
import { unixSocketTransport } from '../../grpc/unix-client.js';
import { EndpointError, validateEndpointSpec, type EndpointSpec } from '../../agent/endpoints/index.js';
import type { Command, CommandContext, CommandGroup, OutputStream } from '../command.js';
import { CommandError, ExitCode, UsageError } from '../errors.js';
import type { FlagSpec, ParsedFlags } from '../flags.js';
import { codeName } from '../server-client.js';
import { formatTime } from '../time-format.js';
import { DEFAULT_AGENT_ADMIN_SOCKET } from '../../agent/config.js';
import { socketFailureReason } from '../socket-errors.js';
import { OUTPUT_FLAG, plural, wantsJson, writeJson } from './server-flags.js';

/** Where `ip netns add <name>` puts a named namespace; `-netns <name>` means this directory. */
const NAMED_NETNS_DIR = '/var/run/netns';
const CALL_TIMEOUT_MS = 30_000;

const SOCKET_FLAG: FlagSpec = {
  name: 'socket-path',
  kind: 'string',
  valueName: 'path',
  default: DEFAULT_AGENT_ADMIN_SOCKET,
  description: "The agent's admin socket (root only)",
};
const NAME_FLAG: FlagSpec = { name: 'name', kind: 'string', valueName: 'name', required: true, description: 'Endpoint (pod) name, a DNS subdomain, e.g. web-0' };
const NAMESPACE_FLAG: FlagSpec = { name: 'namespace', kind: 'string', valueName: 'ns', required: true, description: 'Namespace, a DNS label, e.g. backend' };

// ---------------------------------------------------------------- the socket



/** Runs one call on the agent's admin socket; failures become one-line CommandErrors starting with `what`. */
async function callAgent<T>(flags: ParsedFlags, what: string, f: (client: Client<typeof EndpointAdmin>) => Promise<T>): Promise<T> {
  const socketPath = flags.string(SOCKET_FLAG.name) ?? DEFAULT_AGENT_ADMIN_SOCKET;
  const client = createClient(EndpointAdmin, unixSocketTransport(socketPath, { timeoutMs: CALL_TIMEOUT_MS }));
  try {
    return await f(client);
  } catch (e) {
    if (!(e instanceof ConnectError)) throw e;
    const reason = socketFailureReason(e);
    if (reason !== undefined) {
      throw new CommandError(`cannot connect to the agent at ${socketPath}: ${reason === 'permission denied' ? 'permission denied (the admin socket is root only)' : reason} (is 'tessera agent run' running? Point at its admin socket with -socketPath)`);
    }
    if (e.code === Code.Unimplemented) throw new CommandError(`${what}: the agent at ${socketPath} does not offer endpoint registration (${e.rawMessage})`);
    throw new CommandError(`${what}: ${e.rawMessage.replace(/\s*\n\s*/g, ' ') || 'no message'} (${codeName(e.code)})`);
  }
}

// ---------------------------------------------------------------- printing

function line(label: string, value: string): string {
  return `${label.padEnd(16)}: ${value}\n`;
}

/** One endpoint, followed by a blank line. */
export function formatEndpoint(e: WorkloadEndpoint): string {
  let s = line('Endpoint', `${e.namespace}/${e.name}`);
  s += line('Service account', e.serviceAccount);
  for (const k of Object.keys(e.labels).sort()) s += line('Label', `${k}=${e.labels[k]}`);
  s += line('Network ns', `${e.netnsPath} (dev ${e.netnsDev}, inode ${e.netnsIno})`);
  if (e.ip !== '') s += line('IP', e.ip);
  if (e.hostInterface !== '') s += line('Host interface', e.hostInterface);
  if (e.createdAt !== 0n) s += line('Registered', formatTime(new Date(Number(e.createdAt) * 1000)));
  return s + '\n';
}

// ---------------------------------------------------------------- flags

/** `k=v` label flags; a repeated key is a usage error. */
function parseLabels(values: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new UsageError(`invalid value "${v}" for -label: must be key=value (e.g. app=web)`);
    const k = v.slice(0, eq);
    if (Object.hasOwn(labels, k)) throw new UsageError(`-label ${k} given more than once`);
    labels[k] = v.slice(eq + 1);
  }
  return labels;
}

/** `-netns`: a name made by `ip netns add` (→ /var/run/netns/<name>) or a path (made absolute here: the agent has another working directory). */
function netnsPathOf(value: string): string {
  if (value === '') throw new UsageError('-netns must not be empty');
  if (!value.includes('/')) return `${NAMED_NETNS_DIR}/${value}`;
  return isAbsolute(value) ? value : resolve(value);
}

/** The flag that sets an {@link EndpointSpec} field, where the names differ. */
const FLAG_OF_FIELD: Record<string, string> = { netnsPath: 'netns', labels: 'label' };

// ---------------------------------------------------------------- commands

const addCommand: Command = {
  name: 'add',
  summary: 'Register an endpoint (a network namespace and its metadata) with the agent',
  description: [
    'Registers a network namespace with the agent. Every process in it is then attested with the',
    'selectors k8s:ns:<namespace>, k8s:sa:<serviceAccount>, k8s:pod-name:<name>,',
    'k8s:pod-label:<k>:<v> per label and k8s:node-name:<node>. The namespace must exist:',
    '-netns takes a name made by `ip netns add` (/var/run/netns/<name>) or a path such as /proc/<pid>/ns/net.',
  ].join('\n'),
  flags: [
    NAME_FLAG,
    NAMESPACE_FLAG,
    { name: 'service-account', kind: 'string', valueName: 'sa', description: 'Service account, a DNS subdomain (default: default)' },
    { name: 'label', kind: 'string', valueName: 'key=value', multiple: true, description: 'A Kubernetes-style label' },
    { name: 'netns', kind: 'string', valueName: 'path|name', required: true, description: 'The network namespace: a path, or a name under /var/run/netns' },
    { name: 'ip', kind: 'string', valueName: 'address', description: "The endpoint's IPv4 or IPv6 address" },
    { name: 'host-interface', kind: 'string', valueName: 'ifname', description: 'The host-side interface (e.g. the veth peer)' },
    OUTPUT_FLAG,
    SOCKET_FLAG,
  ],
  examples: [
    'tessera agent endpoint add -name web-0 -namespace backend -serviceAccount default -label app=web -netns web-0',
    'tessera agent endpoint add -name api -namespace backend -netns /proc/4242/ns/net -ip 10.0.0.2 -hostInterface veth-api',
  ],
  async run({ io, flags }: CommandContext): Promise<number> {
    const spec: EndpointSpec = {
      name: flags.string('name')!,
      namespace: flags.string('namespace')!,
      serviceAccount: flags.string('service-account'),
      labels: parseLabels(flags.strings('label')),
      netnsPath: netnsPathOf(flags.string('netns')!),
      ip: flags.string('ip'),
      hostInterface: flags.string('host-interface'),
    };
    // The agent checks again; checking here makes a typo a usage error that never reaches the socket.
    try {
      validateEndpointSpec(spec);
    } catch (e) {
      if (!(e instanceof EndpointError)) throw e;
      const base = e.field?.replace(/\[.*$/, '');
      const flag = base === undefined ? undefined : (FLAG_OF_FIELD[base] ?? base);
      throw new UsageError(flag === undefined ? e.message : `${e.message} (flag -${flag})`);
    }
    const endpoint = create(WorkloadEndpointSchema, {
      name: spec.name,
      namespace: spec.namespace,
      serviceAccount: spec.serviceAccount ?? '',
      labels: spec.labels ?? {},
      netnsPath: spec.netnsPath,
      ip: spec.ip ?? '',
      hostInterface: spec.hostInterface ?? '',
    });
    const resp = await callAgent(flags, `cannot add endpoint ${spec.namespace}/${spec.name}`, (c) => c.addEndpoint({ endpoint }));
    const added = resp.endpoint ?? endpoint;
    if (wantsJson(flags)) writeJson(io.stdout, WorkloadEndpointSchema, added);
    else io.stdout.write(formatEndpoint(added));
    return ExitCode.ok;
  },
};

const removeCommand: Command = {
  name: 'remove',
  summary: 'Unregister an endpoint',
  description: 'Unregisters the endpoint; processes in its network namespace lose its k8s:* selectors at once.',
  flags: [NAME_FLAG, NAMESPACE_FLAG, OUTPUT_FLAG, SOCKET_FLAG],
  examples: ['tessera agent endpoint remove -name web-0 -namespace backend'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const name = flags.string('name')!;
    const namespace = flags.string('namespace')!;
    const resp = await callAgent(flags, `cannot remove endpoint ${namespace}/${name}`, (c) => c.removeEndpoint({ name, namespace }));
    if (wantsJson(flags)) writeJson(io.stdout, WorkloadEndpointSchema, resp.endpoint ?? create(WorkloadEndpointSchema, { name, namespace }));
    else io.stdout.write(`Removed endpoint ${namespace}/${name}\n`);
    return ExitCode.ok;
  },
};

const listCommand: Command = {
  name: 'list',
  summary: 'List the registered endpoints',
  flags: [{ name: 'namespace', kind: 'string', valueName: 'ns', description: 'Only endpoints of this namespace' }, OUTPUT_FLAG, SOCKET_FLAG],
  examples: ['tessera agent endpoint list', 'tessera agent endpoint list -namespace backend -output json'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const resp = await callAgent(flags, 'cannot list endpoints', (c) => c.listEndpoints({ namespace: flags.string('namespace') ?? '' }));
    if (wantsJson(flags)) {
      writeJson(io.stdout, ListEndpointsResponseSchema, resp);
    } else {
      writeList(io.stdout, resp.endpoints);
    }
    return ExitCode.ok;
  },
};

function writeList(out: OutputStream, endpoints: readonly WorkloadEndpoint[]): void {
  out.write(`Found ${plural(endpoints.length, 'endpoint', 'endpoints')}\n`);
  for (const e of endpoints) out.write(formatEndpoint(e));
}

/** `tessera agent endpoint …`: mount it in the `agent` command group. */
export const agentEndpointCommands: CommandGroup = {
  name: 'endpoint',
  summary: 'Register, unregister and list workload endpoints (network namespaces) on the agent',
  commands: [addCommand, removeCommand, listCommand],
};

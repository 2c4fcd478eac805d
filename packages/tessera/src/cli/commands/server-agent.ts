/**
 * `tessera server agent list|show|count|evict|ban`: the agents the server
 * has attested (SPIRE's `spire-server agent …`).
 */
import { create } from '@bufbuild/protobuf';
import { AgentSchema, type Agent } from '../../gen/tessera/v1/types_pb.js';
import { CountAgentsResponseSchema, ListAgentsResponseSchema } from '../../gen/tessera/v1/admin_pb.js';
import type { Command, CommandContext, CommandGroup } from '../command.js';
import { ExitCode } from '../errors.js';
import type { FlagSpec } from '../flags.js';
import { SOCKET_PATH_FLAG, connectServer, type ServerConnection } from '../server-client.js';
import { formatTime } from '../time-format.js';
import { OUTPUT_FLAG, parseSelectors, plural, wantsJson, writeJson } from './server-flags.js';

const PAGE_SIZE = 500;

const AGENT_ID_FLAG: FlagSpec = { name: 'spiffe-id', kind: 'string', valueName: 'id', required: true, description: 'The SPIFFE ID of the agent' };

function line(label: string, value: string | boolean): string {
  return `${label.padEnd(18)}: ${value}\n`;
}

/** One agent as SPIRE prints it; `detail` adds what `agent show` shows beyond `agent list`. */
function formatAgent(a: Agent, detail: boolean): string {
  let s = line('SPIFFE ID', a.spiffeId);
  s += line('Attestation type', a.attestationType);
  s += line('Expiration time', a.x509SvidExpiresAt === 0n ? '-' : formatTime(new Date(Number(a.x509SvidExpiresAt) * 1000)));
  s += line('Serial number', a.x509SvidSerialNumber);
  s += line('Can re-attest', a.canReattest);
  if (a.banned) s += line('Banned', true);
  if (detail) for (const sel of a.selectors) s += line('Selectors', `${sel.type}:${sel.value}`);
  return s + '\n';
}

async function listAll(server: ServerConnection, bySelectors: ReturnType<typeof parseSelectors>, attestationType: string): Promise<Agent[]> {
  const agents: Agent[] = [];
  let pageToken = '';
  do {
    const page = await server.call('cannot list agents', () =>
      server.agents.listAgents({ bySelectors, byAttestationType: attestationType, pageSize: PAGE_SIZE, pageToken }),
    );
    agents.push(...page.agents);
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return agents;
}

const list: Command = {
  name: 'list',
  summary: 'List attested agents',
  flags: [
    { name: 'selector', kind: 'string', valueName: 'type:value', multiple: true, description: 'Only agents with all these node selectors' },
    { name: 'attestation-type', kind: 'string', valueName: 'type', description: 'Only agents attested this way (e.g. join_token, x509pop)' },
    OUTPUT_FLAG,
    SOCKET_PATH_FLAG,
  ],
  examples: ['tessera server agent list', 'tessera server agent list -attestationType join_token -output json'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const selectors = parseSelectors(flags.strings('selector'));
    const server = connectServer(flags);
    const agents = await listAll(server, selectors, flags.string('attestation-type') ?? '');
    if (wantsJson(flags)) {
      writeJson(io.stdout, ListAgentsResponseSchema, create(ListAgentsResponseSchema, { agents }));
    } else {
      io.stdout.write(`Found ${plural(agents.length, 'attested agent', 'attested agents')}${agents.length > 0 ? ':\n\n' : '\n'}`);
      for (const a of agents) io.stdout.write(formatAgent(a, false));
    }
    return ExitCode.ok;
  },
};

const show: Command = {
  name: 'show',
  summary: 'Show the details of an attested agent',
  flags: [AGENT_ID_FLAG, OUTPUT_FLAG, SOCKET_PATH_FLAG],
  examples: ['tessera server agent show -spiffeID spiffe://cluster.local/tessera/agent/join_token/4b1c…'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const id = flags.string('spiffe-id')!;
    const server = connectServer(flags);
    const agent = await server.call(`cannot show agent "${id}"`, () => server.agents.getAgent({ spiffeId: id }));
    if (wantsJson(flags)) writeJson(io.stdout, AgentSchema, agent);
    else io.stdout.write(`Found an attested agent given its SPIFFE ID\n\n${formatAgent(agent, true)}`);
    return ExitCode.ok;
  },
};

const count: Command = {
  name: 'count',
  summary: 'Count attested agents',
  flags: [OUTPUT_FLAG, SOCKET_PATH_FLAG],
  async run({ io, flags }: CommandContext): Promise<number> {
    const server = connectServer(flags);
    const resp = await server.call('cannot count agents', () => server.agents.countAgents({}));
    if (wantsJson(flags)) writeJson(io.stdout, CountAgentsResponseSchema, resp);
    else io.stdout.write(`${plural(resp.count, 'attested agent', 'attested agents')}\n`);
    return ExitCode.ok;
  },
};

const evict: Command = {
  name: 'evict',
  summary: 'Evict an attested agent (it must attest again)',
  description: "Deletes the agent's attestation: its SVID is no longer renewed and it must attest again (with a new join token, or its node credentials).",
  flags: [AGENT_ID_FLAG, SOCKET_PATH_FLAG],
  examples: ['tessera server agent evict -spiffeID spiffe://cluster.local/tessera/agent/join_token/4b1c…'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const id = flags.string('spiffe-id')!;
    const server = connectServer(flags);
    await server.call(`cannot evict agent "${id}"`, () => server.agents.deleteAgent({ spiffeId: id }));
    io.stdout.write('Agent evicted successfully\n');
    return ExitCode.ok;
  },
};

const ban: Command = {
  name: 'ban',
  summary: 'Ban an attested agent (it cannot attest again until evicted)',
  description: 'Bans the agent: its SVID is no longer renewed and it cannot attest again until it is evicted.',
  flags: [AGENT_ID_FLAG, SOCKET_PATH_FLAG],
  examples: ['tessera server agent ban -spiffeID spiffe://cluster.local/tessera/agent/join_token/4b1c…'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const id = flags.string('spiffe-id')!;
    const server = connectServer(flags);
    await server.call(`cannot ban agent "${id}"`, () => server.agents.banAgent({ spiffeId: id }));
    io.stdout.write('Agent banned successfully\n');
    return ExitCode.ok;
  },
};

/** `tessera server agent …`. */
export const serverAgentCommands: CommandGroup = {
  name: 'agent',
  summary: 'List, show, count, evict and ban attested agents',
  commands: [list, show, count, evict, ban],
};

/**
 * `tessera server agent list|show|count|evict|ban|purge`: the agents the server
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
import { OUTPUT_FLAG, parseSelectors, parseTtl, plural, wantsJson, writeJson, writeJsonValue } from './server-flags.js';

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

/** SPIRE's default -expiredFor: 30 days. */
const DEFAULT_EXPIRED_FOR = '720h';

interface PurgeResult {
  agent_id: string;
  deleted: boolean;
  error?: string;
}

const purge: Command = {
  name: 'purge',
  summary: 'Delete agents whose SVID expired a while ago (agents that can re-attest only)',
  description: [
    "Deletes the agents whose X509-SVID expired more than -expiredFor ago (default 720h, 30 days), as SPIRE's",
    "'agent purge' does: only agents that can re-attest (e.g. x509pop), since a purged join_token agent could",
    'never come back. -dryRun lists them and deletes nothing. Exit code 1 if any deletion failed.',
  ].join('\n'),
  flags: [
    { name: 'expired-for', kind: 'string', valueName: 'duration', default: DEFAULT_EXPIRED_FOR, description: "How long ago the agent's SVID must have expired (e.g. 720h, 24h, 90m)" },
    { name: 'dry-run', kind: 'boolean', description: 'Only list the agents that would be purged' },
    OUTPUT_FLAG,
    SOCKET_PATH_FLAG,
  ],
  examples: ['tessera server agent purge -dryRun', 'tessera server agent purge -expiredFor 24h'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const expiredFor = parseTtl(flags.string('expired-for')!, 'expiredFor');
    const dryRun = flags.boolean('dry-run');
    const server = connectServer(flags);
    const cutoff = Math.floor(io.now().getTime() / 1000) - expiredFor;
    // An agent with no recorded expiry (0) has no SVID that could have expired.
    const expired = (await listAll(server, [], '')).filter((a) => a.canReattest && a.x509SvidExpiresAt !== 0n && Number(a.x509SvidExpiresAt) < cutoff);
    const results: PurgeResult[] = [];
    for (const a of expired) {
      if (dryRun) {
        results.push({ agent_id: a.spiffeId, deleted: false });
        continue;
      }
      try {
        await server.call(`cannot purge agent "${a.spiffeId}"`, () => server.agents.deleteAgent({ spiffeId: a.spiffeId }));
        results.push({ agent_id: a.spiffeId, deleted: true });
      } catch (e) {
        results.push({ agent_id: a.spiffeId, deleted: false, error: (e as Error).message });
      }
    }
    const failed = results.filter((r) => r.error !== undefined);
    if (wantsJson(flags)) {
      writeJsonValue(io.stdout, { expired_agents: results });
    } else if (results.length === 0) {
      io.stdout.write('No agents to purge.\n');
    } else {
      io.stdout.write(`Found ${plural(results.length, 'expired agent', 'expired agents')}\n\n`);
      const purged = results.filter((r) => r.deleted);
      if (dryRun) io.stdout.write('Agents that can be purged:\n' + results.map((r) => line('SPIFFE ID', r.agent_id)).join(''));
      if (purged.length > 0) io.stdout.write('Agents purged:\n' + purged.map((r) => line('SPIFFE ID', r.agent_id)).join(''));
      if (failed.length > 0) io.stderr.write('Agents not purged:\n' + failed.map((r) => line('SPIFFE ID', r.agent_id) + line('Error', r.error!)).join(''));
    }
    return failed.length > 0 ? ExitCode.failure : ExitCode.ok;
  },
};

/** `tessera server agent …`. */
export const serverAgentCommands: CommandGroup = {
  name: 'agent',
  summary: 'List, show, count, evict, ban and purge attested agents',
  commands: [list, show, count, evict, ban, purge],
};

/**
 * `tessera server token generate`: a join token an agent attests with once
 * (SPIRE's `spire-server token generate`).
 */
import { JoinTokenSchema } from '../../gen/tessera/v1/admin_pb.js';
import type { Command, CommandContext, CommandGroup } from '../command.js';
import { ExitCode } from '../errors.js';
import { SOCKET_PATH_FLAG, connectServer } from '../server-client.js';
import { OUTPUT_FLAG, parseSeconds, wantsJson, writeJson } from './server-flags.js';

const generate: Command = {
  name: 'generate',
  summary: 'Generate a join token for an agent',
  description: [
    'Generates a one-time join token. An agent started with it attests as',
    'spiffe://<td>/tessera/agent/join_token/<token>. With -spiffeID, the agent is also known by that',
    'ID: a node alias entry (parent spiffe://<td>/tessera/server, selector join_token:<token>) is created.',
  ].join('\n'),
  flags: [
    { name: 'spiffe-id', kind: 'string', valueName: 'id', description: 'An additional SPIFFE ID for the agent that uses the token (creates a node alias entry)' },
    { name: 'ttl', kind: 'string', valueName: 'seconds', description: "How long the token can be used (default: the server's joinTokenTtl, 600)" },
    OUTPUT_FLAG,
    SOCKET_PATH_FLAG,
  ],
  examples: ['tessera server token generate', 'tessera server token generate -spiffeID spiffe://cluster.local/nodes/worker-1 -ttl 3600'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const ttlFlag = flags.string('ttl');
    const ttl = ttlFlag === undefined ? 0 : parseSeconds(ttlFlag, 'ttl');
    const server = connectServer(flags);
    const token = await server.call('cannot generate a join token', () =>
      server.agents.createJoinToken({ ttl, agentAlias: flags.string('spiffe-id') ?? '' }),
    );
    if (wantsJson(flags)) writeJson(io.stdout, JoinTokenSchema, token);
    else io.stdout.write(`Token: ${token.value}\n`);
    return ExitCode.ok;
  },
};

/** `tessera server token …`. */
export const serverTokenCommands: CommandGroup = {
  name: 'token',
  summary: 'Generate join tokens',
  commands: [generate],
};

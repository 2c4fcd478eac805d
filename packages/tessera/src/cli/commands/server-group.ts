/**
 * `tessera server …`: the SPIRE-compatible operator commands that talk to a
 * running server over its Admin API socket. Each noun lives in its own
 * `server-<noun>.ts`; commands that run the daemon itself join this group too.
 */
import type { CommandGroup } from '../command.js';
import { serverAgentCommands } from './server-agent.js';
import { serverBundleCommands } from './server-bundle.js';
import { serverEntryCommands } from './server-entry.js';
import { serverFederationCommands } from './server-federation.js';
import { serverHealthcheckCommand } from './server-health.js';
import { serverJwtCommands, serverX509Commands } from './server-mint.js';
import { serverRun } from './server-run.js';
import { serverTokenCommands } from './server-token.js';

/** The `server` command group. */
export const serverCommands: CommandGroup = {
  name: 'server',
  summary: 'Run a Tessera server and manage it: entries, join tokens, agents, bundles, SVIDs, health',
  description: [
    "Run a Tessera server ('run'), and manage a running one through its Admin API socket. SPIRE's 'spire-server' command",
    "lines work with 'tessera server' in front (-spiffeID, -parentID, -selector, -socketPath ...).",
    'The socket is -socketPath, else $TESSERA_SERVER_SOCKET, else <$TESSERA_DATA_DIR or ./.data>/server.sock.',
  ].join('\n'),
  commands: [serverRun, serverEntryCommands, serverTokenCommands, serverAgentCommands, serverBundleCommands, serverFederationCommands, serverX509Commands, serverJwtCommands, serverHealthcheckCommand],
};

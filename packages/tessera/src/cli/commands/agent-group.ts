/**
 * `tessera agent …`: run the node agent, and the SPIRE agent's client
 * commands that talk to a running one (Workload API, admin socket).
 */
import type { CommandGroup } from '../command.js';
import { agentRun } from './agent-run.js';
import { agentEndpointCommands } from './agent-endpoint.js';
import { agentApiCommands } from './agent-api.js';
import { agentHealthcheckCommand } from './agent-health.js';

/** The `agent` command group. */
export const agentCommands: CommandGroup = {
  name: 'agent',
  summary: 'Run a Tessera agent and talk to it: Workload API calls, endpoints, health',
  description: [
    "Run the node agent ('run'), call the SPIFFE Workload API like a workload ('api fetch x509' ...), register",
    "endpoints on the agent's admin socket ('endpoint add' ...), and check its health. SPIRE's 'spire-agent'",
    "command lines work with 'tessera agent' in front.",
  ].join('\n'),
  commands: [agentRun, agentApiCommands, agentEndpointCommands, agentHealthcheckCommand],
};

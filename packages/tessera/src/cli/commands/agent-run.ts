import { once } from 'node:events';
import type { Command, CommandContext } from '../command.js';
import { CommandError } from '../errors.js';
import { ConfigError } from '../../config/schema.js';
import { createLogger } from '../../observe/logger.js';
import { loadAgentConfig } from '../../agent/config.js';
import { startAgent } from '../../agent/agent.js';
import { AgentError } from '../../agent/errors.js';

/** Flags of `agent run` → config keys (flags win over the file and the environment). */
const FLAG_KEYS: [string, string][] = [
  ['trust-domain', 'trustDomain'],
  ['server-address', 'serverAddress'],
  ['server-port', 'serverPort'],
  ['data-dir', 'dataDir'],
  ['socket-path', 'socketPath'],
  ['admin-socket-path', 'adminSocketPath'],
  ['trust-bundle', 'trustBundle'],
  ['trust-bundle-format', 'trustBundleFormat'],
  ['join-token', 'joinToken'],
  ['x509pop-cert-file', 'x509popCertFile'],
  ['x509pop-key-file', 'x509popKeyFile'],
  ['node-name', 'nodeName'],
  ['log-level', 'logLevel'],
  ['health-port', 'healthPort'],
];

/** `tessera agent run`: attests the node and serves the Workload API until SIGINT/SIGTERM. */
export const agentRun: Command = {
  name: 'run',
  summary: 'Run the agent (node attestation, SVID cache, Workload API)',
  description: [
    'Runs the node agent: attests the node to the server (join_token or x509pop) or restores the agent SVID',
    'persisted in <dataDir>, keeps the server\'s push stream of entries and bundles open (failing over between',
    'comma-separated server addresses), gets workload SVIDs signed for keys made here and rotates them at half',
    'their TTL, and serves the SPIFFE Workload API on the socket. Stops cleanly on SIGINT or SIGTERM.',
  ].join('\n'),
  flags: [
    { name: 'config', kind: 'string', valueName: 'agent.yaml', description: 'Config file (YAML); keys as the flags in camelCase' },
    { name: 'trust-domain', kind: 'string', valueName: 'td', description: 'Trust domain (e.g. cluster.local)' },
    { name: 'server-address', kind: 'string', valueName: 'host[:port][,host[:port]]', description: 'Server Agent API address(es), failover in order (default 127.0.0.1)' },
    { name: 'server-port', kind: 'string', valueName: 'port', description: 'Port for addresses given without one (default 8081)' },
    { name: 'data-dir', kind: 'string', valueName: 'dir', description: 'Data directory (default ./.agent-data)' },
    { name: 'socket-path', kind: 'string', valueName: 'path', description: 'Workload API socket (default /tmp/tessera-agent/public/api.sock)' },
    { name: 'admin-socket-path', kind: 'string', valueName: 'path', description: 'Admin socket for endpoint registration (default /tmp/tessera-agent/admin.sock)' },
    { name: 'trust-bundle', kind: 'string', valueName: 'file', description: 'Bundle that verifies the server at first start' },
    { name: 'trust-bundle-format', kind: 'string', valueName: 'pem|spiffe', description: 'Format of -trustBundle (default pem)' },
    { name: 'insecure-bootstrap', kind: 'boolean', description: 'Trust the server at first start without a bundle (testing only)' },
    { name: 'join-token', kind: 'string', valueName: 'token', description: 'Join token (join_token node attestation)' },
    { name: 'x509pop-cert-file', kind: 'string', valueName: 'pem', description: 'x509pop node attestation: node certificate (chain)' },
    { name: 'x509pop-key-file', kind: 'string', valueName: 'pem', description: 'x509pop node attestation: node key' },
    { name: 'node-name', kind: 'string', valueName: 'name', description: 'Node name for k8s:node-name selectors (default the hostname)' },
    { name: 'log-level', kind: 'string', valueName: 'level', description: 'debug, info, warn or error (default info)' },
    { name: 'health-port', kind: 'string', valueName: 'port', description: 'Port of /live, /ready, /metrics on 127.0.0.1 (default 0: disabled)' },
  ],
  examples: ['tessera agent run -trustDomain cluster.local -serverAddress 10.0.0.1:8081 -trustBundle bundle.pem -joinToken 4c8…', 'tessera agent run -config agent.yaml'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const values: Record<string, unknown> = {};
    for (const [flag, key] of FLAG_KEYS) {
      const v = flags.string(flag);
      if (v !== undefined) values[key] = v;
    }
    if (flags.boolean('insecure-bootstrap')) values.insecureBootstrap = true;
    let config;
    try {
      config = loadAgentConfig({ ...(flags.string('config') ? { configFile: flags.string('config')! } : {}), flags: values, env: process.env });
    } catch (e) {
      if (e instanceof ConfigError) throw new CommandError(`invalid configuration: ${e.message}`);
      throw e;
    }
    let agent;
    try {
      agent = await startAgent(config, { now: io.now, logger: createLogger({ level: config.logLevel, write: (l) => io.stderr.write(l) }) });
    } catch (e) {
      if (e instanceof AgentError) throw new CommandError(e.message);
      throw e;
    }
    io.stderr.write(`tessera agent: ${agent.spiffeId}, Workload API on ${agent.socketPath}\n`);
    await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
    await agent.close();
    return 0;
  },
};

import { once } from 'node:events';
import type { Command, CommandContext } from '../command.js';
import { CommandError } from '../errors.js';
import { ConfigError } from '../../config/schema.js';
import { loadServerConfig } from '../../server/config.js';
import { startServer, ServerStartError } from '../../server/server.js';

/** Flags of `server run` → config keys (flags win over the file and the environment). */
const FLAG_KEYS: [string, string][] = [
  ['trust-domain', 'trustDomain'],
  ['data-dir', 'dataDir'],
  ['bind-address', 'bindAddress'],
  ['bind-port', 'bindPort'],
  ['socket-path', 'socketPath'],
  ['log-level', 'logLevel'],
  ['datastore', 'datastore'],
  ['health-port', 'healthPort'],
  ['bundle-endpoint-port', 'bundleEndpointPort'],
];

/** `tessera server run`: starts the trust domain's server and runs until SIGINT/SIGTERM. */
export const serverRun: Command = {
  name: 'run',
  summary: 'Run the server (CA, registration, Admin API)',
  description: [
    'Runs the trust domain\'s server: the CA (keys in <dataDir>/keys, rotated like SPIRE), the',
    'registration datastore (SQLite in <dataDir> by default, or PostgreSQL), the Admin API on the',
    'local socket, and /live, /ready, /metrics on the health port. Settings come from the config',
    'file, then TESSERA_* environment variables, then flags. Stops cleanly on SIGINT or SIGTERM.',
  ].join('\n'),
  flags: [
    { name: 'config', kind: 'string', valueName: 'server.yaml', description: 'Config file (YAML); keys as the flags in camelCase (trustDomain, dataDir, …)' },
    { name: 'trust-domain', kind: 'string', valueName: 'td', description: 'Trust domain (e.g. cluster.local)' },
    { name: 'data-dir', kind: 'string', valueName: 'dir', description: 'Data directory (default ./.data)' },
    { name: 'bind-address', kind: 'string', valueName: 'addr', description: 'Agent API address (default 0.0.0.0)' },
    { name: 'bind-port', kind: 'string', valueName: 'port', description: 'Agent API port (default 8081)' },
    { name: 'socket-path', kind: 'string', valueName: 'path', description: 'Admin API socket (default <dataDir>/server.sock)' },
    { name: 'log-level', kind: 'string', valueName: 'level', description: 'debug, info, warn or error (default info)' },
    { name: 'datastore', kind: 'string', valueName: 'spec', description: 'sqlite (default), sqlite:<path>, or postgres://…' },
    { name: 'health-port', kind: 'string', valueName: 'port', description: 'Port of /live, /ready, /metrics on 127.0.0.1 (default 8080; 0 disables)' },
    { name: 'bundle-endpoint-port', kind: 'string', valueName: 'port', description: 'Federation bundle endpoint port (https_spiffe by default; 0 disables, the default)' },
  ],
  examples: ['tessera server run -trustDomain cluster.local -dataDir /var/lib/tessera', 'tessera server run -config server.yaml'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const values: Record<string, unknown> = {};
    for (const [flag, key] of FLAG_KEYS) {
      const v = flags.string(flag);
      if (v !== undefined) values[key] = v;
    }
    let config;
    try {
      config = loadServerConfig({ ...(flags.string('config') ? { configFile: flags.string('config')! } : {}), flags: values, env: process.env });
    } catch (e) {
      if (e instanceof ConfigError) throw new CommandError(`invalid configuration: ${e.message}`);
      throw e;
    }
    let server;
    try {
      server = await startServer(config, { now: io.now });
    } catch (e) {
      if (e instanceof ServerStartError) throw new CommandError(e.message);
      throw e;
    }
    io.stderr.write(`tessera server: trust domain ${config.trustDomain.name}, Admin API on ${server.socketPath}${server.healthPort ? `, health on 127.0.0.1:${server.healthPort}` : ''}\n`);
    await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
    await server.close();
    return 0;
  },
};

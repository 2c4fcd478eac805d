import { hostname } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { TrustDomain } from '@tessera/spiffe/id';
import { loadConfigFile } from '../config/load-file.js';
import { ConfigError, resolveConfig, trustDomainCheck, type Schema } from '../config/schema.js';

/** Where the Workload API listens unless configured (SPIRE: /tmp/spire-agent/public/api.sock). */
export const DEFAULT_AGENT_SOCKET = '/tmp/tessera-agent/public/api.sock';
/** The agent's admin socket unless configured (endpoint registration; root only). */
export const DEFAULT_AGENT_ADMIN_SOCKET = '/tmp/tessera-agent/admin.sock';

/** One server address: `host:port` or `[v6]:port`. */
export interface ServerAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * Parses `host:port[,host:port…]` (several servers: the agent fails over in
 * order). A part without a port (`10.0.0.1`, `[::1]`) takes `defaultPort`
 * (SPIRE's separate `serverPort`, 8081 by default).
 */
export function parseServerAddresses(v: string, defaultPort = 8081): ServerAddress[] {
  const out: ServerAddress[] = [];
  for (const part of v.split(',').map((s) => s.trim())) {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s/]+))(?::(\d{1,5}))?$/.exec(part);
    const port = m ? (m[3] !== undefined ? Number(m[3]) : defaultPort) : NaN;
    if (!m || !(port > 0 && port < 65536)) throw new ConfigError(`serverAddress: "${part}" is not host:port`);
    out.push({ host: m[1] ?? m[2]!, port });
  }
  if (out.length === 0) throw new ConfigError('serverAddress: empty');
  return out;
}

function serverAddressCheck(v: string): string | undefined {
  try {
    parseServerAddresses(v);
    return undefined;
  } catch (e) {
    return (e as Error).message.replace(/^serverAddress: /, '');
  }
}

/** `tessera agent run` settings, with SPIRE's spellings. */
export const AGENT_SCHEMA = {
  trustDomain: { type: 'string', description: 'trust domain of the server', required: true, check: trustDomainCheck as (v: never) => string | undefined, env: 'TESSERA_TRUST_DOMAIN' },
  serverAddress: { type: 'string', description: 'server Agent API, host[:port]; several separated by commas (failover in order)', default: '127.0.0.1', check: serverAddressCheck as (v: never) => string | undefined, env: 'TESSERA_SERVER_ADDRESS' },
  serverPort: { type: 'integer', description: 'port for serverAddress parts without one (SPIRE spelling)', default: 8081, min: 1, max: 65535 },
  dataDir: { type: 'string', description: 'directory for the agent SVID, its key, the bundle and registered endpoints', default: './.agent-data', env: 'TESSERA_AGENT_DATA_DIR' },
  socketPath: { type: 'string', description: 'Workload API Unix socket', default: DEFAULT_AGENT_SOCKET, env: 'TESSERA_AGENT_SOCKET' },
  adminSocketPath: { type: 'string', description: 'admin socket (endpoint registration), mode 0600', default: DEFAULT_AGENT_ADMIN_SOCKET },
  trustBundle: { type: 'string', description: 'bootstrap trust bundle file (PEM or SPIFFE JSON) to verify the server at first start' },
  trustBundleFormat: { type: 'enum', description: 'format of trustBundle', default: 'pem', values: ['pem', 'spiffe'] },
  insecureBootstrap: { type: 'boolean', description: 'trust the server at first start without a bundle (testing only)', default: false },
  joinToken: { type: 'string', description: 'join token for node attestation (join_token)', env: 'TESSERA_JOIN_TOKEN' },
  x509popCertFile: { type: 'string', description: 'x509pop node attestation: node certificate chain (PEM)' },
  x509popKeyFile: { type: 'string', description: 'x509pop node attestation: node private key (PEM)' },
  nodeName: { type: 'string', description: 'node name for k8s:node-name selectors (default the hostname)' },
  workloadKeyType: { type: 'enum', description: 'key type of workload SVIDs', default: 'ec-p256', values: ['ec-p256', 'ec-p384', 'rsa-2048'] },
  healthPort: { type: 'integer', description: 'port of /live, /ready, /metrics on 127.0.0.1 (0 disables)', default: 0, min: 0, max: 65535 },
  logLevel: { type: 'enum', description: 'log level', default: 'info', values: ['debug', 'info', 'warn', 'error'] },
} as const satisfies Schema;

/** How the agent proves its node the first time. */
export type NodeAttestationConfig = { readonly type: 'join_token'; readonly token: string } | { readonly type: 'x509pop'; readonly certFile: string; readonly keyFile: string } | undefined;

export interface AgentConfig {
  readonly trustDomain: TrustDomain;
  readonly serverAddresses: readonly ServerAddress[];
  readonly dataDir: string;
  readonly socketPath: string;
  readonly adminSocketPath: string;
  readonly trustBundle: { readonly path: string; readonly format: 'pem' | 'spiffe' } | undefined;
  readonly insecureBootstrap: boolean;
  readonly attestation: NodeAttestationConfig;
  readonly nodeName: string;
  readonly workloadKeyType: 'ec-p256' | 'ec-p384' | 'rsa-2048';
  readonly healthPort: number;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
}

/**
 * Resolves the agent's config: the file (`-config`), then environment
 * variables, then flags.
 * @throws ConfigError naming the key and the problem.
 */
export function loadAgentConfig(options: { configFile?: string; flags?: Record<string, unknown>; env?: NodeJS.ProcessEnv }): AgentConfig {
  const layers = [
    { source: options.configFile ? `config file "${options.configFile}"` : 'config', values: options.configFile ? loadConfigFile(options.configFile) : {} },
    { source: 'flags', values: options.flags ?? {} },
  ];
  const c = resolveConfig(AGENT_SCHEMA, layers, options.env ?? {});
  if (c.joinToken !== undefined && c.x509popCertFile !== undefined) throw new ConfigError('joinToken and x509popCertFile are two node attestors: give one');
  if ((c.x509popCertFile === undefined) !== (c.x509popKeyFile === undefined)) throw new ConfigError('x509popCertFile and x509popKeyFile must be given together');
  if (c.trustBundle !== undefined && c.insecureBootstrap === true) throw new ConfigError('trustBundle and insecureBootstrap exclude each other');
  for (const k of ['socketPath', 'adminSocketPath'] as const) {
    if (!isAbsolute(String(c[k]))) throw new ConfigError(`${k}: "${String(c[k])}" must be an absolute path`);
  }
  const attestation: NodeAttestationConfig =
    c.joinToken !== undefined
      ? { type: 'join_token', token: String(c.joinToken) }
      : c.x509popCertFile !== undefined
        ? { type: 'x509pop', certFile: String(c.x509popCertFile), keyFile: String(c.x509popKeyFile) }
        : undefined;
  if (attestation?.type === 'join_token' && attestation.token.length === 0) throw new ConfigError('joinToken: empty');
  return Object.freeze({
    trustDomain: TrustDomain.parse(String(c.trustDomain)),
    serverAddresses: Object.freeze(parseServerAddresses(String(c.serverAddress), Number(c.serverPort))),
    dataDir: resolve(String(c.dataDir)),
    socketPath: String(c.socketPath),
    adminSocketPath: String(c.adminSocketPath),
    trustBundle: c.trustBundle !== undefined ? { path: String(c.trustBundle), format: c.trustBundleFormat as 'pem' | 'spiffe' } : undefined,
    insecureBootstrap: c.insecureBootstrap === true,
    attestation,
    nodeName: c.nodeName !== undefined ? String(c.nodeName) : hostname(),
    workloadKeyType: c.workloadKeyType as AgentConfig['workloadKeyType'],
    healthPort: Number(c.healthPort),
    logLevel: c.logLevel as AgentConfig['logLevel'],
  });
}

/** The files of the agent's persisted identity inside `dataDir`. */
export function agentDataFiles(dataDir: string): { svid: string; key: string; bundle: string } {
  return { svid: join(dataDir, 'agent-svid.pem'), key: join(dataDir, 'agent-key.pem'), bundle: join(dataDir, 'bundle.json') };
}

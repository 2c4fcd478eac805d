import { join } from 'node:path';
import { TrustDomain } from '@tessera/spiffe/id';
import { loadConfigFile } from '../config/load-file.js';
import { ConfigError, resolveConfig, trustDomainCheck, type Schema } from '../config/schema.js';

function datastoreCheck(v: string): string | undefined {
  if (v === 'sqlite' || v.startsWith('sqlite:')) return undefined;
  if (/^postgres(ql)?:\/\//.test(v)) {
    try {
      new URL(v);
      return undefined;
    } catch {
      return 'not a valid postgres:// URL';
    }
  }
  return 'must be "sqlite" (the default, in dataDir), "sqlite:<path>" or a postgres:// URL';
}

/** `tessera server run` settings, with SPIRE's defaults (spec §6) and spellings. */
export const SERVER_SCHEMA = {
  trustDomain: { type: 'string', description: 'trust domain this server is the CA of', required: true, check: trustDomainCheck as (v: never) => string | undefined, env: 'TESSERA_TRUST_DOMAIN' },
  dataDir: { type: 'string', description: 'directory for keys, the CA journal and the SQLite database', default: './.data', env: 'TESSERA_DATA_DIR' },
  bindAddress: { type: 'string', description: 'address of the Agent API', default: '0.0.0.0' },
  bindPort: { type: 'integer', description: 'port of the Agent API', default: 8081, min: 0, max: 65535 },
  socketPath: { type: 'string', description: 'Admin API Unix socket (default <dataDir>/server.sock)', env: 'TESSERA_SERVER_SOCKET' },
  healthPort: { type: 'integer', description: 'port of /live, /ready and /metrics (0 disables)', default: 8080, min: 0, max: 65535 },
  logLevel: { type: 'enum', description: 'log level', default: 'info', values: ['debug', 'info', 'warn', 'error'] },
  datastore: { type: 'string', description: 'sqlite (default), sqlite:<path>, or postgres://…', default: 'sqlite', check: datastoreCheck as (v: never) => string | undefined, env: 'TESSERA_DATASTORE' },
  caKeyType: { type: 'enum', description: 'CA key type', default: 'ec-p256', values: ['ec-p256', 'ec-p384', 'rsa-2048'] },
  caTtl: { type: 'duration', description: 'CA certificate lifetime', default: '24h', min: 60 },
  defaultX509SvidTtl: { type: 'duration', description: 'X509-SVID lifetime when an entry sets none', default: '1h', min: 10 },
  defaultJwtSvidTtl: { type: 'duration', description: 'JWT-SVID lifetime when an entry sets none', default: '5m', min: 10 },
  agentSvidTtl: { type: 'duration', description: 'agent SVID lifetime', default: '1h', min: 10 },
  joinTokenTtl: { type: 'duration', description: 'default join token lifetime', default: '600s', min: 1 },
  upstreamCertFile: { type: 'string', description: 'upstream CA certificate (PEM); with upstreamKeyFile, the server runs an intermediate' },
  upstreamKeyFile: { type: 'string', description: 'upstream CA private key (PEM)' },
  x509popCaFile: { type: 'string', description: 'CA bundle (PEM) that x509pop node certificates must chain to' },
  bundleEndpointPort: { type: 'integer', description: 'federation bundle endpoint port (0 disables; SPIRE uses 8443)', default: 0, min: 0, max: 65535 },
  bundleEndpointProfile: { type: 'enum', description: 'bundle endpoint profile', default: 'https_spiffe', values: ['https_spiffe', 'https_web'] },
  bundleEndpointCertFile: { type: 'string', description: 'https_web: serving certificate chain (PEM)' },
  bundleEndpointKeyFile: { type: 'string', description: 'https_web: serving key (PEM)' },
} as const satisfies Schema;

export interface ServerConfig {
  readonly trustDomain: TrustDomain;
  readonly dataDir: string;
  readonly bindAddress: string;
  readonly bindPort: number;
  readonly socketPath: string;
  readonly healthPort: number;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
  readonly datastore: { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };
  readonly caKeyType: 'ec-p256' | 'ec-p384' | 'rsa-2048';
  readonly caTtlSeconds: number;
  readonly defaultX509SvidTtlSeconds: number;
  readonly defaultJwtSvidTtlSeconds: number;
  readonly agentSvidTtlSeconds: number;
  readonly joinTokenTtlSeconds: number;
  readonly upstream: { certFile: string; keyFile: string } | undefined;
  readonly x509popCaFile: string | undefined;
  readonly bundleEndpointPort: number;
  readonly bundleEndpointProfile: 'https_spiffe' | 'https_web';
  readonly bundleEndpointCertFile: string | undefined;
  readonly bundleEndpointKeyFile: string | undefined;
}

/**
 * Resolves the server's config: the file (`-config`), then environment
 * variables, then flags. Unknown keys and bad values are a `ConfigError`
 * whose message names the source, the key and the problem.
 */
export function loadServerConfig(options: { configFile?: string; flags?: Record<string, unknown>; env?: NodeJS.ProcessEnv }): ServerConfig {
  const layers = [
    { source: options.configFile ? `config file "${options.configFile}"` : 'config', values: options.configFile ? loadConfigFile(options.configFile) : {} },
    { source: 'flags', values: options.flags ?? {} },
  ];
  const c = resolveConfig(SERVER_SCHEMA, layers, options.env ?? {});
  const dataDir = String(c.dataDir);
  const ds = String(c.datastore);
  if (c.bundleEndpointProfile === 'https_web' && Number(c.bundleEndpointPort) > 0 && (c.bundleEndpointCertFile === undefined || c.bundleEndpointKeyFile === undefined)) {
    throw new ConfigError('bundleEndpointProfile https_web needs bundleEndpointCertFile and bundleEndpointKeyFile');
  }
  if ((c.upstreamCertFile === undefined) !== (c.upstreamKeyFile === undefined)) {
    throw new ConfigError('upstreamCertFile and upstreamKeyFile must be given together');
  }
  return Object.freeze({
    trustDomain: TrustDomain.parse(String(c.trustDomain)),
    dataDir,
    bindAddress: String(c.bindAddress),
    bindPort: Number(c.bindPort),
    socketPath: c.socketPath !== undefined ? String(c.socketPath) : join(dataDir, 'server.sock'),
    healthPort: Number(c.healthPort),
    logLevel: c.logLevel as ServerConfig['logLevel'],
    datastore: ds.startsWith('postgres') ? { kind: 'postgres' as const, url: ds } : { kind: 'sqlite' as const, path: ds.startsWith('sqlite:') ? ds.slice(7) : join(dataDir, 'datastore.sqlite3') },
    caKeyType: c.caKeyType as ServerConfig['caKeyType'],
    caTtlSeconds: Number(c.caTtl),
    defaultX509SvidTtlSeconds: Number(c.defaultX509SvidTtl),
    defaultJwtSvidTtlSeconds: Number(c.defaultJwtSvidTtl),
    agentSvidTtlSeconds: Number(c.agentSvidTtl),
    joinTokenTtlSeconds: Number(c.joinTokenTtl),
    upstream: c.upstreamCertFile !== undefined ? { certFile: String(c.upstreamCertFile), keyFile: String(c.upstreamKeyFile) } : undefined,
    x509popCaFile: c.x509popCaFile !== undefined ? String(c.x509popCaFile) : undefined,
    bundleEndpointPort: Number(c.bundleEndpointPort),
    bundleEndpointProfile: c.bundleEndpointProfile as ServerConfig['bundleEndpointProfile'],
    bundleEndpointCertFile: c.bundleEndpointCertFile !== undefined ? String(c.bundleEndpointCertFile) : undefined,
    bundleEndpointKeyFile: c.bundleEndpointKeyFile !== undefined ? String(c.bundleEndpointKeyFile) : undefined,
  });
}

/**
 * `tessera server x509 mint` and `tessera server jwt mint`: SVIDs for any
 * SPIFFE ID of the trust domain, straight from the server, without an entry
 * or an agent (SPIRE's `spire-server x509 mint` / `jwt mint`). For X.509 the
 * key is made here and only a certificate request is sent.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { SpiffeId } from '@tessera/spiffe/id';
import { buildCertificateRequest } from '@tessera/spiffe/x509';
import type { Command, CommandContext, CommandGroup, OutputStream } from '../command.js';
import { CommandError, ExitCode } from '../errors.js';
import { SOCKET_PATH_FLAG, connectServer } from '../server-client.js';
import { formatTime } from '../time-format.js';
import { OUTPUT_FLAG, parseTtl, wantsJson, writeJsonValue } from './server-flags.js';

function pem(type: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${type}-----\n${b64}\n-----END ${type}-----\n`;
}

function writeOutputFile(path: string, data: string, mode: number, what: string): void {
  try {
    writeFileSync(path, data, { mode });
    // writeFileSync's mode only applies to a new file; a key must never stay world-readable.
    chmodSync(path, mode);
  } catch (e) {
    throw new CommandError(`cannot write ${what} to "${path}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** SPIRE warns when the server issued a shorter lifetime than asked for (its CA's own expiry caps it). */
function warnIfCapped(err: OutputStream, kind: string, askedSeconds: number, expiresAt: bigint, now: Date): void {
  if (askedSeconds === 0 || expiresAt === 0n) return;
  const expiry = new Date(Number(expiresAt) * 1000);
  if (expiry.getTime() - now.getTime() < askedSeconds * 1000 - 1000) {
    err.write(`${kind} lifetime was capped shorter than specified ttl; expires "${formatTime(expiry)}"\n`);
  }
}

const TTL_FLAG_DESCRIPTION = "Lifetime: seconds (3600) or a duration (1h, 15m); default: the server's";

const x509Mint: Command = {
  name: 'mint',
  summary: 'Mint an X509-SVID',
  description: [
    'Makes an EC P-256 key here, sends a certificate request for -spiffeID and prints the X509-SVID,',
    "its private key and the server's root CAs as PEM. With -write <dir>, writes svid.pem, key.pem",
    '(mode 0600) and bundle.pem there instead.',
  ].join('\n'),
  flags: [
    { name: 'spiffe-id', kind: 'string', valueName: 'id', required: true, description: 'SPIFFE ID of the X509-SVID' },
    { name: 'ttl', kind: 'string', valueName: 'ttl', description: TTL_FLAG_DESCRIPTION },
    { name: 'dns', kind: 'string', valueName: 'name', multiple: true, description: 'DNS name to include in the SVID' },
    { name: 'write', kind: 'string', valueName: 'dir', description: 'Directory to write svid.pem, key.pem and bundle.pem to instead of stdout' },
    OUTPUT_FLAG,
    SOCKET_PATH_FLAG,
  ],
  examples: ['tessera server x509 mint -spiffeID spiffe://cluster.local/ns/backend/sa/default -ttl 1h', 'tessera server x509 mint -spiffeID spiffe://cluster.local/db -dns db.internal -write ./certs'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const spiffeId = flags.string('spiffe-id')!;
    const ttlFlag = flags.string('ttl');
    const ttl = ttlFlag === undefined ? 0 : parseTtl(ttlFlag, 'ttl');
    const dnsNames = flags.strings('dns');

    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    // The request names what it asks for; an ID the library cannot parse is left for the server to refuse with its reason.
    let names: { uris?: string[]; dnsNames?: string[] } = {};
    try {
      names = { uris: [SpiffeId.parse(spiffeId).toString()], dnsNames };
    } catch {
      names = {};
    }
    const csr = buildCertificateRequest(privateKey, names);

    const server = connectServer(flags);
    const resp = await server.call(`cannot mint an X509-SVID for ${spiffeId}`, () => server.svids.mintX509Svid({ spiffeId, csr, ttl, dnsNames }));
    if (resp.certificates.length === 0) throw new CommandError('the server returned no certificate');
    const bundle = await server.call('cannot fetch the bundle', () => server.bundles.getBundle({}));
    if (bundle.x509Authorities.length === 0) throw new CommandError('the server returned no root CA');

    const svidPem = resp.certificates.map((c) => pem('CERTIFICATE', c)).join('');
    const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const bundlePem = bundle.x509Authorities.map((c) => pem('CERTIFICATE', c)).join('');
    warnIfCapped(io.stderr, 'X509-SVID', ttl, resp.expiresAt, io.now());
    const expiresAt = resp.expiresAt === 0n ? undefined : formatTime(new Date(Number(resp.expiresAt) * 1000));

    const dir = flags.string('write');
    if (dir === undefined) {
      if (wantsJson(flags)) writeJsonValue(io.stdout, { spiffe_id: spiffeId, expires_at: expiresAt, x509_svid: svidPem, private_key: keyPem, root_cas: bundlePem });
      else io.stdout.write(`X509-SVID:\n${svidPem}\nPrivate key:\n${keyPem}\nRoot CAs:\n${bundlePem}\n`);
      return ExitCode.ok;
    }
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new CommandError(`cannot create directory "${dir}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const paths = { svid: join(dir, 'svid.pem'), key: join(dir, 'key.pem'), bundle: join(dir, 'bundle.pem') };
    writeOutputFile(paths.svid, svidPem, 0o644, 'the X509-SVID');
    writeOutputFile(paths.key, keyPem, 0o600, 'the private key');
    writeOutputFile(paths.bundle, bundlePem, 0o644, 'the root CAs');
    if (wantsJson(flags)) {
      writeJsonValue(io.stdout, { spiffe_id: spiffeId, expires_at: expiresAt, x509_svid_path: paths.svid, private_key_path: paths.key, root_cas_path: paths.bundle });
    } else {
      io.stdout.write(`X509-SVID written to ${paths.svid}\nPrivate key written to ${paths.key}\nRoot CAs written to ${paths.bundle}\n`);
    }
    return ExitCode.ok;
  },
};

const jwtMint: Command = {
  name: 'mint',
  summary: 'Mint a JWT-SVID',
  description: 'Prints a JWT-SVID for -spiffeID with the given audiences, signed by the server. With -write <file>, writes it there (mode 0600).',
  flags: [
    { name: 'spiffe-id', kind: 'string', valueName: 'id', required: true, description: 'SPIFFE ID of the JWT-SVID' },
    { name: 'audience', kind: 'string', valueName: 'aud', multiple: true, required: true, description: 'Audience claim' },
    { name: 'ttl', kind: 'string', valueName: 'ttl', description: TTL_FLAG_DESCRIPTION },
    { name: 'write', kind: 'string', valueName: 'file', description: 'File to write the token to instead of stdout' },
    OUTPUT_FLAG,
    SOCKET_PATH_FLAG,
  ],
  examples: ['tessera server jwt mint -spiffeID spiffe://cluster.local/ns/backend/sa/default -audience api -ttl 5m'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const spiffeId = flags.string('spiffe-id')!;
    const audience = flags.strings('audience');
    const ttlFlag = flags.string('ttl');
    const ttl = ttlFlag === undefined ? 0 : parseTtl(ttlFlag, 'ttl');
    const server = connectServer(flags);
    const resp = await server.call(`cannot mint a JWT-SVID for ${spiffeId}`, () => server.svids.mintJwtSvid({ spiffeId, audience, ttl }));
    if (resp.token === '') throw new CommandError('the server returned no token');
    warnIfCapped(io.stderr, 'JWT-SVID', ttl, resp.expiresAt, io.now());
    const expiresAt = resp.expiresAt === 0n ? undefined : formatTime(new Date(Number(resp.expiresAt) * 1000));
    const file = flags.string('write');
    if (file !== undefined) writeOutputFile(file, resp.token, 0o600, 'the token');
    if (wantsJson(flags)) writeJsonValue(io.stdout, { spiffe_id: spiffeId, expires_at: expiresAt, ...(file === undefined ? { token: resp.token } : { token_path: file }) });
    else io.stdout.write(file === undefined ? `${resp.token}\n` : `JWT-SVID written to ${file}\n`);
    return ExitCode.ok;
  },
};

/** `tessera server x509 …`. */
export const serverX509Commands: CommandGroup = {
  name: 'x509',
  summary: 'Mint X509-SVIDs',
  commands: [x509Mint],
};

/** `tessera server jwt …`. */
export const serverJwtCommands: CommandGroup = {
  name: 'jwt',
  summary: 'Mint JWT-SVIDs',
  commands: [jwtMint],
};

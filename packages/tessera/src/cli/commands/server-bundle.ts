/**
 * `tessera server bundle show|list|set|delete`: the server's own trust
 * bundle and the bundles of federated trust domains (SPIRE's
 * `spire-server bundle …`), as PEM or SPIFFE bundle JSON.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { SpiffeBundle, X509Bundle } from '@tessera/spiffe/bundle';
import { TrustDomain } from '@tessera/spiffe/id';
import { BundleSchema, type Bundle } from '../../gen/tessera/v1/types_pb.js';
import { DeleteFederatedBundleRequest_Mode, ListFederatedBundlesResponseSchema } from '../../gen/tessera/v1/admin_pb.js';
import type { Command, CommandContext, CommandGroup } from '../command.js';
import { CommandError, ExitCode, UsageError } from '../errors.js';
import type { FlagSpec, ParsedFlags } from '../flags.js';
import { SOCKET_PATH_FLAG, connectServer } from '../server-client.js';
import { OUTPUT_FLAG, readFileOrStdin, wantsJson, writeJson, writeJsonValue } from './server-flags.js';

const FORMAT_FLAG: FlagSpec = {
  name: 'format',
  kind: 'string',
  valueName: 'format',
  choices: ['pem', 'spiffe'],
  default: 'pem',
  description: 'Bundle format: PEM certificates (X.509 authorities only) or SPIFFE bundle JSON (X.509 and JWT authorities)',
};

const ID_FLAG: FlagSpec = { name: 'id', kind: 'string', valueName: 'spiffe://td', description: 'The trust domain of the bundle (spiffe://example.org or example.org)' };

function trustDomainFlag(flags: ParsedFlags): TrustDomain | undefined {
  const v = flags.string(ID_FLAG.name);
  if (v === undefined) return undefined;
  try {
    return TrustDomain.parse(v);
  } catch (e) {
    throw new UsageError(`invalid value "${v}" for -id: ${(e as Error).message}`);
  }
}

/** The bundle as the SPIFFE bundle document (SPIFFE Trust Domain and Bundle §4). */
function toSpiffeBundle(b: Bundle): SpiffeBundle {
  return new SpiffeBundle(TrustDomain.parse(b.trustDomain), {
    x509Authorities: b.x509Authorities,
    jwtAuthorities: b.jwtAuthorities.map((k): [string, KeyObject] => [k.keyId, createPublicKey({ key: Buffer.from(k.publicKey), format: 'der', type: 'spki' })]),
    sequenceNumber: Number(b.sequenceNumber),
    ...(b.refreshHint > 0n ? { refreshHintSeconds: Number(b.refreshHint) } : {}),
  });
}

/** The bundle in the format asked for, ending with a newline. */
function renderBundle(b: Bundle, format: string): string {
  try {
    // Indented as SPIRE prints it: these are read by people as often as by programs.
    if (format === 'spiffe') return JSON.stringify(JSON.parse(toSpiffeBundle(b).marshal()), null, 4) + '\n';
    return new X509Bundle(TrustDomain.parse(b.trustDomain), b.x509Authorities).marshal();
  } catch (e) {
    throw new CommandError(`the server sent a bundle for "${b.trustDomain}" that cannot be shown: ${(e as Error).message}`);
  }
}

/** SPIRE's banner above each bundle of `bundle list`. */
function banner(td: string): string {
  const rule = '*'.repeat(40);
  return `${rule}\n* spiffe://${td}\n${rule}\n`;
}

const show: Command = {
  name: 'show',
  summary: "Print the server's trust bundle",
  flags: [FORMAT_FLAG, OUTPUT_FLAG, SOCKET_PATH_FLAG],
  examples: ['tessera server bundle show > bundle.pem', 'tessera server bundle show -format spiffe'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const server = connectServer(flags);
    const bundle = await server.call('cannot fetch the bundle', () => server.bundles.getBundle({}));
    if (wantsJson(flags)) writeJson(io.stdout, BundleSchema, bundle);
    else io.stdout.write(renderBundle(bundle, flags.string(FORMAT_FLAG.name)!));
    return ExitCode.ok;
  },
};

const list: Command = {
  name: 'list',
  summary: 'Print the bundles of federated trust domains',
  flags: [{ ...ID_FLAG, description: 'Only the bundle of this trust domain (spiffe://example.org)' }, FORMAT_FLAG, OUTPUT_FLAG, SOCKET_PATH_FLAG],
  examples: ['tessera server bundle list', 'tessera server bundle list -id spiffe://partner.example -format spiffe'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const td = trustDomainFlag(flags);
    const format = flags.string(FORMAT_FLAG.name)!;
    const server = connectServer(flags);
    if (td !== undefined) {
      const bundle = await server.call(`cannot fetch the bundle of ${td.name}`, () => server.bundles.getFederatedBundle({ trustDomain: td.name }));
      if (wantsJson(flags)) writeJson(io.stdout, BundleSchema, bundle);
      else io.stdout.write(renderBundle(bundle, format));
      return ExitCode.ok;
    }
    const resp = await server.call('cannot list federated bundles', () => server.bundles.listFederatedBundles({}));
    if (wantsJson(flags)) {
      writeJson(io.stdout, ListFederatedBundlesResponseSchema, resp);
      return ExitCode.ok;
    }
    io.stdout.write(resp.bundles.map((b) => banner(b.trustDomain) + renderBundle(b, format)).join('\n'));
    return ExitCode.ok;
  },
};

const set: Command = {
  name: 'set',
  summary: 'Create or replace the bundle of a federated trust domain',
  description: [
    'Stores the bundle of a federated trust domain, read from -path or from standard input. The',
    'bundle is parsed here first, so a broken file is reported before anything is sent.',
  ].join('\n'),
  flags: [
    { ...ID_FLAG, required: true },
    { name: 'path', kind: 'string', valueName: 'file', description: 'The bundle file (default: standard input)' },
    FORMAT_FLAG,
    SOCKET_PATH_FLAG,
  ],
  examples: ['tessera server bundle set -id spiffe://partner.example -path partner.pem', 'curl … | tessera server bundle set -id spiffe://partner.example -format spiffe'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const td = trustDomainFlag(flags)!;
    const format = flags.string(FORMAT_FLAG.name)!;
    const path = flags.string('path') ?? '-';
    const data = await readFileOrStdin(path, 'bundle');
    const source = path === '-' ? 'standard input' : `"${path}"`;
    try {
      const parsed = format === 'spiffe' ? SpiffeBundle.parse(td, data) : X509Bundle.parse(td, data);
      if (parsed.isEmpty()) throw new Error(format === 'pem' ? 'it holds no certificate' : 'it holds no authority');
    } catch (e) {
      throw new CommandError(`cannot parse the ${format === 'spiffe' ? 'SPIFFE bundle' : 'PEM bundle'} from ${source}: ${(e as Error).message}`);
    }
    const server = connectServer(flags);
    await server.call(`cannot set the bundle of ${td.name}`, () => server.bundles.setFederatedBundle({ trustDomain: td.name, bundle: data, format }));
    io.stdout.write('bundle set.\n');
    return ExitCode.ok;
  },
};

const MODE_FLAG: FlagSpec = {
  name: 'mode',
  kind: 'string',
  valueName: 'mode',
  choices: ['restrict', 'dissociate', 'delete'],
  default: 'restrict',
  description: 'Entries that federate with the trust domain: refuse (restrict), remove it from their federatesWith (dissociate), or delete them (delete)',
};

const DELETE_MODES: Record<string, DeleteFederatedBundleRequest_Mode> = {
  restrict: DeleteFederatedBundleRequest_Mode.RESTRICT,
  dissociate: DeleteFederatedBundleRequest_Mode.DISSOCIATE,
  delete: DeleteFederatedBundleRequest_Mode.DELETE,
};

const del: Command = {
  name: 'delete',
  summary: 'Delete the bundle of a federated trust domain',
  description: [
    "Deletes a federated trust domain's bundle. -mode says what happens to entries that federate with it, as",
    "in SPIRE: restrict (the default) refuses and names them; dissociate removes the trust domain from their",
    'federatesWith; delete deletes them. The entries and the bundle change together or not at all.',
  ].join('\n'),
  flags: [{ ...ID_FLAG, required: true }, MODE_FLAG, OUTPUT_FLAG, SOCKET_PATH_FLAG],
  examples: ['tessera server bundle delete -id spiffe://partner.example', 'tessera server bundle delete -id spiffe://partner.example -mode dissociate'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const td = trustDomainFlag(flags)!;
    const mode = DELETE_MODES[flags.string(MODE_FLAG.name)!]!;
    const server = connectServer(flags);
    await server.call(`cannot delete the bundle of ${td.name}`, () => server.bundles.deleteFederatedBundle({ trustDomain: td.name, mode }));
    if (wantsJson(flags)) writeJsonValue(io.stdout, {});
    else io.stdout.write('bundle deleted.\n');
    return ExitCode.ok;
  },
};

/** `tessera server bundle …`. */
export const serverBundleCommands: CommandGroup = {
  name: 'bundle',
  summary: "Show the server's bundle; list, set and delete federated bundles",
  commands: [show, list, set, del],
};

/**
 * `tessera server federation create|list|show|update|delete|refresh`:
 * relationships with other trust domains' bundle endpoints (SPIRE's
 * `spire-server federation …`, same flags and output), spec/spiffe.md §5.
 */
import { create, toJson, type JsonValue } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { SpiffeId, type TrustDomain } from '@tessera/spiffe/id';
import { FederationAdmin, ListFederationRelationshipsResponseSchema } from '../../gen/tessera/v1/admin_pb.js';
import { BundleSchema, FederationRelationshipSchema, type FederationRelationship } from '../../gen/tessera/v1/types_pb.js';
import { unixSocketTransport } from '../../grpc/unix-client.js';
import { BUNDLE_ENDPOINT_PROFILES, bundleEndpointUrlProblem, parseFederatedTrustDomain, validateRelationship } from '../../server/federation/relationship.js';
import type { Command, CommandContext, CommandGroup } from '../command.js';
import { CommandError, ExitCode, UsageError } from '../errors.js';
import type { FlagSpec, ParsedFlags } from '../flags.js';
import { SOCKET_PATH_FLAG, codeName, describeCallError, resolveSocketPath } from '../server-client.js';
import { parseTrustDomainBundle, readRelationshipsFile } from './federation-data.js';
import { OUTPUT_FLAG, plural, readFileOrStdin, wantsJson, writeJson, writeJsonValue } from './server-flags.js';

const CALL_TIMEOUT_MS = 30_000;

/** The FederationAdmin client of the socket named by `-socketPath`, with one-line errors. */
function connectFederation(flags: ParsedFlags): { client: Client<typeof FederationAdmin>; call<T>(what: string, f: () => Promise<T>): Promise<T> } {
  const socketPath = resolveSocketPath(flags.string(SOCKET_PATH_FLAG.name));
  const client = createClient(FederationAdmin, unixSocketTransport(socketPath, { timeoutMs: CALL_TIMEOUT_MS }));
  return {
    client,
    async call<T>(what: string, f: () => Promise<T>): Promise<T> {
      try {
        return await f();
      } catch (e) {
        throw describeCallError(e, what, socketPath, CALL_TIMEOUT_MS);
      }
    },
  };
}

const TRUST_DOMAIN_FLAG: FlagSpec = { name: 'trust-domain', kind: 'string', valueName: 'td', description: 'Name of the trust domain to federate with (e.g. example.org)' };
const ID_FLAG: FlagSpec = { name: 'id', kind: 'string', valueName: 'spiffe://td', required: true, description: 'SPIFFE ID of the trust domain of the relationship (spiffe://example.org or example.org)' };
const URL_FLAG: FlagSpec = {
  name: 'bundle-endpoint-url',
  kind: 'string',
  valueName: 'url',
  description: 'URL of the SPIFFE bundle endpoint that provides the trust bundle (must use https)',
};
const PROFILE_FLAG: FlagSpec = {
  name: 'bundle-endpoint-profile',
  kind: 'string',
  valueName: 'profile',
  choices: BUNDLE_ENDPOINT_PROFILES,
  description: 'Endpoint profile: https_spiffe (the endpoint presents an X509-SVID) or https_web (a Web PKI certificate)',
};
const ENDPOINT_ID_FLAG: FlagSpec = {
  name: 'endpoint-spiffe-id',
  kind: 'string',
  valueName: 'id',
  description: 'SPIFFE ID of the bundle endpoint server; https_spiffe only (e.g. spiffe://example.org/tessera/server)',
};
const BUNDLE_PATH_FLAG: FlagSpec = {
  name: 'trust-domain-bundle-path',
  kind: 'string',
  valueName: 'file',
  description: "The trust domain's current bundle, to authenticate its https_spiffe endpoint the first time ('-' reads standard input)",
};
const BUNDLE_FORMAT_FLAG: FlagSpec = {
  name: 'trust-domain-bundle-format',
  kind: 'string',
  valueName: 'format',
  choices: ['pem', 'spiffe'],
  default: 'pem',
  description: 'Format of -trustDomainBundlePath: PEM certificates or SPIFFE bundle JSON',
};
const CONFIG_FLAGS = [TRUST_DOMAIN_FLAG, URL_FLAG, PROFILE_FLAG, ENDPOINT_ID_FLAG, BUNDLE_PATH_FLAG, BUNDLE_FORMAT_FLAG, OUTPUT_FLAG, SOCKET_PATH_FLAG];

function trustDomainFlag(flags: ParsedFlags, name: string): TrustDomain {
  const v = flags.string(name);
  if (v === undefined || v === '') throw new UsageError(`-${name === 'id' ? 'id' : 'trustDomain'} is required`);
  try {
    return parseFederatedTrustDomain(v);
  } catch (e) {
    throw new UsageError(`invalid value "${v}" for -${name === 'id' ? 'id' : 'trustDomain'}: ${(e as Error).message}`);
  }
}

/** The relationship as SPIRE prints it. */
function formatRelationship(r: FederationRelationship): string {
  let s = `Trust domain              : ${r.trustDomain}\n`;
  s += `Bundle endpoint URL       : ${r.bundleEndpointUrl}\n`;
  s += `Bundle endpoint profile   : ${r.profile}\n`;
  if (r.profile === 'https_spiffe') s += `Endpoint SPIFFE ID        : ${r.endpointSpiffeId}\n`;
  return s;
}

/** The bootstrap bundle named by the flags as SPIFFE bundle JSON, checked here before anything is sent; '' when none. */
async function bootstrapBundle(flags: ParsedFlags, td: TrustDomain): Promise<string> {
  const path = flags.string(BUNDLE_PATH_FLAG.name);
  if (path === undefined) return '';
  const format = flags.string(BUNDLE_FORMAT_FLAG.name)!;
  const data = await readFileOrStdin(path, 'trust domain bundle');
  return parseTrustDomainBundle(td, data, format, path === '-' ? 'standard input' : `"${path}"`);
}

const DATA_FLAG: FlagSpec = {
  name: 'data',
  kind: 'string',
  valueName: 'file',
  description: 'A JSON file of federation relationships, SPIRE\'s format ({"federationRelationships": [...]}); \'-\' reads standard input',
};

/** The relationship flags given with -data, which the file replaces. */
function usedConfigFlags(flags: ParsedFlags): string[] {
  return [TRUST_DOMAIN_FLAG, URL_FLAG, PROFILE_FLAG, ENDPOINT_ID_FLAG, BUNDLE_PATH_FLAG, BUNDLE_FORMAT_FLAG].filter((f) => flags.has(f.name)).map((f) => `--${f.name}`);
}

/** Usage error unless every flag of `specs` is given (they are required when there is no -data). */
function requireFlags(flags: ParsedFlags, specs: readonly FlagSpec[]): void {
  const missing = specs.find((f) => !flags.has(f.name));
  if (missing !== undefined) throw new UsageError(`missing required flag --${missing.name} <${missing.valueName ?? 'value'}> (or give -data)`);
}

/** Statuses that concern one relationship; anything else (no server, timeout) ends the whole command. */
const PER_ITEM_CODES = new Set([Code.InvalidArgument, Code.AlreadyExists, Code.NotFound, Code.FailedPrecondition, Code.Aborted, Code.PermissionDenied, Code.Internal]);

/**
 * `create|update -data`: sends the file's relationships one by one and reports
 * each as SPIRE does: successes on stdout, failures on stderr with the code
 * and message; exit code 1 if any failed.
 */
async function runDataFile(ctx: CommandContext, verb: 'create' | 'update', file: string): Promise<number> {
  const { flags, io } = ctx;
  const used = usedConfigFlags(flags);
  if (used.length > 0) throw new UsageError(`-data cannot be combined with ${used.join(', ')}: the file gives every field`);
  const requests = await readRelationshipsFile(file);
  const fed = connectFederation(flags);
  const results: { status: { code: number; message: string }; federation_relationship: JsonValue }[] = [];
  let failed = 0;
  for (const req of requests) {
    try {
      const r = await (verb === 'create' ? fed.client.createFederationRelationship(req) : fed.client.updateFederationRelationship(req));
      results.push({ status: { code: 0, message: 'OK' }, federation_relationship: toJson(FederationRelationshipSchema, r, { useProtoFieldName: true, alwaysEmitImplicit: true }) });
      if (!wantsJson(flags)) io.stdout.write('\n' + formatRelationship(r));
    } catch (e) {
      if (!(e instanceof ConnectError) || !PER_ITEM_CODES.has(e.code)) throw describeCallError(e, `cannot ${verb} federation relationships`, resolveSocketPath(flags.string(SOCKET_PATH_FLAG.name)), CALL_TIMEOUT_MS);
      failed++;
      const sent = create(FederationRelationshipSchema, req);
      results.push({ status: { code: e.code, message: e.rawMessage }, federation_relationship: toJson(FederationRelationshipSchema, sent, { useProtoFieldName: true, alwaysEmitImplicit: true }) });
      if (!wantsJson(flags)) {
        io.stderr.write(`\nFailed to ${verb} the following federation relationship (code: ${codeName(e.code)}, msg: ${JSON.stringify(e.rawMessage)}):\n${formatRelationship(sent)}`);
      }
    }
  }
  if (wantsJson(flags)) writeJsonValue(io.stdout, { results });
  return failed > 0 ? ExitCode.failure : ExitCode.ok;
}

function writeRelationship(ctx: CommandContext, r: FederationRelationship): void {
  if (wantsJson(ctx.flags)) writeJson(ctx.io.stdout, FederationRelationshipSchema, r);
  else ctx.io.stdout.write('\n' + formatRelationship(r));
}

const createCmd: Command = {
  name: 'create',
  summary: 'Create a federation relationship with a foreign trust domain',
  description: [
    "Creates a federation relationship: the server fetches the trust domain's bundle from its bundle endpoint",
    'and keeps it current (every spiffe_refresh_hint seconds). For https_spiffe, give the bundle the endpoint',
    "is verified with the first time (-trustDomainBundlePath; e.g. the output of 'bundle show -format spiffe' there).",
    '',
    'With -data, the relationships of a JSON file (SPIRE\'s format: {"federationRelationships": [{"trustDomain",',
    '"bundleEndpointURL", "bundleEndpointProfile", "endpointSPIFFEID", "trustDomainBundle",',
    '"trustDomainBundleFormat"}]}; also "trustDomainBundlePath", relative to the file) are all checked first,',
    'then created one by one; failures are printed on stderr and the exit code is then 1.',
  ].join('\n'),
  flags: [DATA_FLAG, ...CONFIG_FLAGS],
  examples: [
    'tessera server federation create -trustDomain partner.example -bundleEndpointURL https://partner.example:8443 -bundleEndpointProfile https_spiffe -endpointSpiffeID spiffe://partner.example/tessera/server -trustDomainBundlePath partner.json -trustDomainBundleFormat spiffe',
    'tessera server federation create -trustDomain partner.example -bundleEndpointURL https://bundle.partner.example -bundleEndpointProfile https_web',
    'tessera server federation create -data relationships.json',
  ],
  async run(ctx: CommandContext): Promise<number> {
    const { flags } = ctx;
    const dataFile = flags.string(DATA_FLAG.name);
    if (dataFile !== undefined) return runDataFile(ctx, 'create', dataFile);
    requireFlags(flags, [TRUST_DOMAIN_FLAG, URL_FLAG, PROFILE_FLAG]);
    const td = trustDomainFlag(flags, TRUST_DOMAIN_FLAG.name);
    const input = {
      trustDomain: td.name,
      bundleEndpointUrl: flags.string(URL_FLAG.name)!,
      profile: flags.string(PROFILE_FLAG.name)!,
      endpointSpiffeId: flags.string(ENDPOINT_ID_FLAG.name) ?? '',
    };
    try {
      validateRelationship(input);
    } catch (e) {
      throw new UsageError(`invalid federation relationship: ${(e as Error).message}`);
    }
    const trustDomainBundle = await bootstrapBundle(flags, td);
    const fed = connectFederation(flags);
    const r = await fed.call(`cannot create the federation relationship with ${td.name}`, () => fed.client.createFederationRelationship({ ...input, trustDomainBundle }));
    writeRelationship(ctx, r);
    return ExitCode.ok;
  },
};

const updateCmd: Command = {
  name: 'update',
  summary: 'Update a federation relationship (flags not given keep their value)',
  description: [
    'Changes the fields given by flags and keeps the others. With -data (SPIRE\'s JSON format, as for',
    "'federation create -data'), each relationship of the file is replaced whole.",
  ].join('\n'),
  flags: [DATA_FLAG, ...CONFIG_FLAGS],
  examples: ['tessera server federation update -trustDomain partner.example -bundleEndpointURL https://partner.example:9443', 'tessera server federation update -data relationships.json'],
  async run(ctx: CommandContext): Promise<number> {
    const { flags } = ctx;
    const dataFile = flags.string(DATA_FLAG.name);
    if (dataFile !== undefined) return runDataFile(ctx, 'update', dataFile);
    requireFlags(flags, [TRUST_DOMAIN_FLAG]);
    const td = trustDomainFlag(flags, TRUST_DOMAIN_FLAG.name);
    const url = flags.string(URL_FLAG.name) ?? '';
    const endpointSpiffeId = flags.string(ENDPOINT_ID_FLAG.name) ?? '';
    const problem = url === '' ? undefined : bundleEndpointUrlProblem(url);
    if (problem !== undefined) throw new UsageError(`invalid federation relationship: ${problem}`);
    if (endpointSpiffeId !== '') {
      try {
        SpiffeId.parse(endpointSpiffeId);
      } catch (e) {
        throw new UsageError(`invalid value "${endpointSpiffeId}" for -endpointSpiffeID: ${(e as Error).message}`);
      }
    }
    const trustDomainBundle = await bootstrapBundle(flags, td);
    const fed = connectFederation(flags);
    const r = await fed.call(`cannot update the federation relationship with ${td.name}`, () =>
      fed.client.updateFederationRelationship({ trustDomain: td.name, bundleEndpointUrl: url, profile: flags.string(PROFILE_FLAG.name) ?? '', endpointSpiffeId, trustDomainBundle }),
    );
    writeRelationship(ctx, r);
    return ExitCode.ok;
  },
};

const listCmd: Command = {
  name: 'list',
  summary: 'List federation relationships',
  flags: [OUTPUT_FLAG, SOCKET_PATH_FLAG],
  examples: ['tessera server federation list', 'tessera server federation list -output json'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const fed = connectFederation(flags);
    const resp = await fed.call('cannot list federation relationships', () => fed.client.listFederationRelationships({}));
    if (wantsJson(flags)) {
      writeJson(io.stdout, ListFederationRelationshipsResponseSchema, resp);
      return ExitCode.ok;
    }
    io.stdout.write(`Found ${plural(resp.relationships.length, 'federation relationship', 'federation relationships')}\n`);
    for (const r of resp.relationships) io.stdout.write('\n' + formatRelationship(r));
    return ExitCode.ok;
  },
};

const showCmd: Command = {
  name: 'show',
  summary: 'Show a federation relationship',
  flags: [{ ...TRUST_DOMAIN_FLAG, required: true, description: 'The trust domain name of the federation relationship to show (e.g. example.org)' }, OUTPUT_FLAG, SOCKET_PATH_FLAG],
  examples: ['tessera server federation show -trustDomain partner.example'],
  async run(ctx: CommandContext): Promise<number> {
    const td = trustDomainFlag(ctx.flags, TRUST_DOMAIN_FLAG.name);
    const fed = connectFederation(ctx.flags);
    const r = await fed.call(`cannot show the federation relationship with ${td.name}`, () => fed.client.getFederationRelationship({ trustDomain: td.name }));
    if (wantsJson(ctx.flags)) writeJson(ctx.io.stdout, FederationRelationshipSchema, r);
    else ctx.io.stdout.write(`Found a federation relationship with trust domain ${r.trustDomain}:\n\n${formatRelationship(r)}`);
    return ExitCode.ok;
  },
};

const deleteCmd: Command = {
  name: 'delete',
  summary: "Delete a federation relationship (the trust domain's bundle stays; see 'bundle delete')",
  flags: [ID_FLAG, OUTPUT_FLAG, SOCKET_PATH_FLAG],
  examples: ['tessera server federation delete -id spiffe://partner.example'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const td = trustDomainFlag(flags, ID_FLAG.name);
    const fed = connectFederation(flags);
    await fed.call(`cannot delete the federation relationship with ${td.name}`, () => fed.client.deleteFederationRelationship({ trustDomain: td.name }));
    if (wantsJson(flags)) writeJsonValue(io.stdout, {});
    else io.stdout.write('federation relationship deleted.\n');
    return ExitCode.ok;
  },
};

const refreshCmd: Command = {
  name: 'refresh',
  summary: 'Fetch the bundle of a federated trust domain from its bundle endpoint now',
  flags: [ID_FLAG, OUTPUT_FLAG, SOCKET_PATH_FLAG],
  examples: ['tessera server federation refresh -id spiffe://partner.example'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const td = trustDomainFlag(flags, ID_FLAG.name);
    const fed = connectFederation(flags);
    const bundle = await fed.call(`cannot refresh the bundle of ${td.name}`, async () => {
      try {
        return await fed.client.refreshBundle({ trustDomain: td.name });
      } catch (e) {
        if (e instanceof ConnectError && e.code === Code.NotFound) throw new CommandError(`there is no federation relationship with trust domain "${td.name}"`);
        throw e;
      }
    });
    if (wantsJson(flags)) writeJson(io.stdout, BundleSchema, bundle);
    else io.stdout.write('Bundle refreshed\n');
    return ExitCode.ok;
  },
};

/** `tessera server federation …`. */
export const serverFederationCommands: CommandGroup = {
  name: 'federation',
  summary: 'Manage federation relationships with other trust domains',
  description: [
    "Federation relationships tell the server where to fetch other trust domains' bundles (SPIFFE Federation):",
    'their bundle endpoint URL and profile. Fetched bundles are stored and delivered to agents whose entries',
    'federate with those trust domains.',
  ].join('\n'),
  commands: [createCmd, listCmd, showCmd, updateCmd, deleteCmd, refreshCmd],
};

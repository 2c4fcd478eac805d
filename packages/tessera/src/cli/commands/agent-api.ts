/**
 * `tessera agent api …`: SPIRE's `spire-agent api` commands, run by a
 * workload against the Workload API socket (spec/workload-api.md) with the
 * library's client: fetch and write X509-SVIDs, fetch and validate
 * JWT-SVIDs, watch X509-SVID updates. Same flags and output as SPIRE, so its
 * documentation and scripts work with `tessera agent` in front.
 */
import { mkdirSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { create, toJson, type JsonObject } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import type { X509Bundle } from '@tessera/spiffe/bundle';
import { JwtSvidError, SpiffeError } from '@tessera/spiffe/errors';
import { parseDerCertificates, type Certificate } from '@tessera/spiffe/x509';
import {
  SPIFFE_ENDPOINT_SOCKET,
  WorkloadApiClient,
  parseWorkloadEndpoint,
  WorkloadApiError,
  workloadApiWire as wire,
  type X509Context,
} from '@tessera/spiffe/workload-api';
import type { Command, CommandContext, CommandGroup, OutputStream } from '../command.js';
import { CommandError, ExitCode, UsageError } from '../errors.js';
import { OUTPUT_FLAG, type FlagSpec, type ParsedFlags } from '../flags.js';
import { formatTime } from '../time-format.js';
import { writeFileAtomic } from '../../fs/atomic-write.js';
import { DEFAULT_AGENT_SOCKET } from '../../agent/config.js';
import { socketErrno, socketFailureReason } from '../socket-errors.js';
import { wantsJson, writeJson, writeJsonValue } from './server-flags.js';

/** Where `tessera agent run` serves the Workload API unless told otherwise (SPIRE's is /tmp/spire-agent/public/api.sock). */
export const DEFAULT_WORKLOAD_API_SOCKET = `unix://${DEFAULT_AGENT_SOCKET}`;

/** `-socketPath`: a path or a `unix://`/`tcp://` address. */
export const WORKLOAD_SOCKET_FLAG: FlagSpec = {
  name: 'socket-path',
  kind: 'string',
  valueName: 'path',
  description: `Workload API socket: a path or unix:///path (default: $${SPIFFE_ENDPOINT_SOCKET}, else ${DEFAULT_WORKLOAD_API_SOCKET})`,
};

const TIMEOUT_FLAG: FlagSpec = {
  name: 'timeout',
  kind: 'string',
  valueName: 'duration',
  default: '5s',
  description: 'Time to wait for a response (e.g. 500ms, 5s, 1m)',
};

/**
 * The Workload API address a command talks to, as go-spiffe spells it:
 * `-socketPath` (a plain path becomes `unix://<absolute path>`), else
 * `SPIFFE_ENDPOINT_SOCKET`, else {@link DEFAULT_WORKLOAD_API_SOCKET}.
 *
 * @example
 * ```ts
 * workloadApiAddress('/run/agent.sock', {}); // "unix:///run/agent.sock"
 * ```
 */
export function workloadApiAddress(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const value = flag !== undefined && flag !== '' ? flag : env[SPIFFE_ENDPOINT_SOCKET];
  if (value === undefined || value === '') return DEFAULT_WORKLOAD_API_SOCKET;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(value)) return value;
  const path = isAbsolute(value) ? value : resolve(value);
  // The client percent-decodes the path, so characters that mean something in a URI are encoded.
  return 'unix://' + path.split('/').map(encodeURIComponent).join('/');
}

/** The command's Workload API address, checked; a malformed one is a usage error. */
export function resolveWorkloadApiAddress(flags: ParsedFlags): string {
  const address = workloadApiAddress(flags.string(WORKLOAD_SOCKET_FLAG.name));
  try {
    parseWorkloadEndpoint(address);
  } catch (e) {
    if (e instanceof SpiffeError) throw new UsageError(`invalid -socketPath "${address}": ${e.message}`);
    throw e;
  }
  return address;
}

/** Opens a client for the command's `-socketPath`. */
export function openWorkloadApi(flags: ParsedFlags): { client: WorkloadApiClient; address: string } {
  const address = resolveWorkloadApiAddress(flags);
  return { client: new WorkloadApiClient({ address }), address };
}

const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration (`500ms`, `5s`, `1m30s`) or whole seconds, in milliseconds. @throws {@link UsageError} */
export function parseDurationMs(value: string, flag: string): number {
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const part = /(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)/gy;
  let ms = 0;
  let end = 0;
  for (let m = part.exec(value); m !== null; m = part.exec(value)) {
    ms += Number(m[1]) * DURATION_MS[m[2]!]!;
    end = part.lastIndex;
  }
  if (value.length === 0 || end !== value.length || ms <= 0) {
    throw new UsageError(`invalid value "${value}" for -${flag}: give a duration such as 500ms, 5s or 1m`);
  }
  return Math.ceil(ms);
}



/** The agent's own status message, on one line. */
function rawMessage(e: WorkloadApiError): string {
  const m = (e.cause as { rawMessage?: string } | undefined)?.rawMessage ?? e.message;
  return m.replace(/\s*\n\s*/g, ' ');
}

/**
 * One line saying why a Workload API call failed: the socket cannot be
 * reached, the agent has no identity for this process, the timeout passed,
 * or the status the agent answered. Errors that are not from the call are rethrown.
 */
export function describeWorkloadApiError(e: unknown, what: string, address: string, timeout?: { signal: AbortSignal; text: string }): CommandError {
  if (timeout?.signal.aborted) return new CommandError(`${what}: the Workload API at ${address} did not answer within ${timeout.text}`);
  const reason = socketFailureReason(e);
  if (reason !== undefined) {
    return new CommandError(
      `${what}: cannot connect to the Workload API at ${address}: ${reason} (is 'tessera agent run' running? Point at its socket with -socketPath or ${SPIFFE_ENDPOINT_SOCKET})`,
    );
  }
  if (socketErrno(e) !== undefined) return new CommandError(`${what}: cannot connect to the Workload API at ${address}: ${(e as Error).message}`);
  if (e instanceof WorkloadApiError) {
    const message = rawMessage(e);
    if (e.grpcCode === Code.PermissionDenied) {
      const uid = process.getuid?.();
      return new CommandError(
        `${what}: ${message} (PermissionDenied): the agent has no registration entry matching this process${uid === undefined ? '' : ` (uid ${uid})`}`,
      );
    }
    return new CommandError(`${what}: ${message || 'no message'} (${e.grpcStatus})`);
  }
  if (e instanceof SpiffeError) return new CommandError(`${what}: the agent sent an invalid response: ${e.message}`);
  throw e;
}

/**
 * A signal that aborts after `ms`. Unlike `AbortSignal.timeout` its timer
 * keeps the process alive: a CLI waiting on an agent that never answers must
 * time out, not exit as if it had nothing left to do.
 */
export function deadline(ms: number): { signal: AbortSignal; clear: () => void } {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`timed out after ${ms} ms`)), ms);
  return { signal: ac.signal, clear: () => clearTimeout(timer) };
}

/** Runs `f` with the command's `-timeout`, mapping every failure to one line. */
async function call<T>(
  flags: ParsedFlags,
  what: string,
  address: string,
  f: (signal: AbortSignal) => Promise<T>,
  explain?: (e: unknown) => CommandError | undefined,
): Promise<T> {
  const text = flags.string(TIMEOUT_FLAG.name)!;
  const { signal, clear } = deadline(parseDurationMs(text, 'timeout'));
  try {
    return await f(signal);
  } catch (e) {
    throw (signal.aborted ? undefined : explain?.(e)) ?? describeWorkloadApiError(e, what, address, { signal, text });
  } finally {
    clear();
  }
}

/** `2.5ms`, `1.2s`: the response time SPIRE prints, from the injected clock. */
function elapsed(start: Date, end: Date): string {
  const ms = end.getTime() - start.getTime();
  return ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(3).replace(/\.?0+$/, '')}s`;
}

/** One X509-SVID as `fetch x509` reports and writes it. */
interface SvidView {
  readonly spiffeId: string;
  readonly hint: string;
  readonly chain: readonly Buffer[];
  readonly certificates: readonly Certificate[];
  readonly keyPem: string;
  readonly keyDer: Buffer;
  readonly bundle: X509Bundle | undefined;
  /** Bundles of other trust domains, sorted by trust domain. */
  readonly federated: readonly X509Bundle[];
}

function svidViews(ctx: X509Context): SvidView[] {
  return ctx.svids.map((svid) => {
    const td = svid.id.trustDomain;
    return {
      spiffeId: svid.id.toString(),
      hint: svid.hint,
      chain: svid.certificates,
      certificates: parseDerCertificates(Buffer.concat(svid.certificates)),
      keyPem: svid.marshal().privateKey,
      keyDer: svid.marshalRaw().privateKey,
      bundle: ctx.bundles.get(td),
      federated: ctx.bundles
        .bundles()
        .filter((b) => !b.trustDomain.equals(td))
        .sort((a, b) => (a.trustDomain.name < b.trustDomain.name ? -1 : a.trustDomain.name > b.trustDomain.name ? 1 : 0)),
    };
  });
}

/** SPIRE's `printX509SVIDResponse`, with the CLI's time format. */
function printX509Svids(out: OutputStream, views: readonly SvidView[], took: string): void {
  const lines = [`Received ${views.length} svid${views.length === 1 ? '' : 's'} after ${took}`];
  for (const v of views) {
    lines.push('', `SPIFFE ID:\t\t${v.spiffeId}`);
    if (v.hint !== '') lines.push(`Hint:\t\t\t${v.hint}`);
    const [leaf, ...intermediates] = v.certificates;
    lines.push(`SVID Valid After:\t${formatTime(leaf!.notBefore)}`, `SVID Valid Until:\t${formatTime(leaf!.notAfter)}`);
    intermediates.forEach((c, i) => {
      lines.push(`Intermediate #${i + 1} Valid After:\t${formatTime(c.notBefore)}`, `Intermediate #${i + 1} Valid Until:\t${formatTime(c.notAfter)}`);
    });
    (v.bundle?.certificates() ?? []).forEach((c, i) => {
      lines.push(`CA #${i + 1} Valid After:\t${formatTime(c.notBefore)}`, `CA #${i + 1} Valid Until:\t${formatTime(c.notAfter)}`);
    });
    for (const b of v.federated) {
      b.certificates().forEach((c, i) => {
        const td = b.trustDomain.idString();
        lines.push(`[${td}] CA #${i + 1} Valid After:\t${formatTime(c.notBefore)}`, `[${td}] CA #${i + 1} Valid Until:\t${formatTime(c.notAfter)}`);
      });
    }
  }
  out.write(lines.join('\n') + '\n\n');
}

/** The X509SVIDResponse SPIRE prints with `-output json` (proto field names, bytes as base64). */
function x509ResponseJson(views: readonly SvidView[]): wire.X509SVIDResponse {
  const federated: Record<string, Uint8Array> = {};
  for (const b of views.flatMap((v) => v.federated)) federated[b.trustDomain.idString()] = b.marshalDer();
  return create(wire.X509SVIDResponseSchema, {
    svids: views.map((v) => ({ spiffeId: v.spiffeId, x509Svid: Buffer.concat(v.chain), x509SvidKey: v.keyDer, bundle: v.bundle?.marshalDer() ?? new Uint8Array(), hint: v.hint })),
    federatedBundles: federated,
  });
}

/** Writes `path` atomically with exactly `mode` (SPIRE's diskutil.WritePrivateFile / WritePubliclyReadableFile). */
async function writeFile(path: string, data: string, mode: number): Promise<void> {
  try {
    await writeFileAtomic(path, data, mode);
  } catch (e) {
    throw new CommandError(`cannot write "${path}": ${(e as Error).message}`);
  }
}

const pem = (ders: readonly Buffer[]): string => ders.map((d) => `-----BEGIN CERTIFICATE-----\n${d.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`).join('');

/** SPIRE's `writeResponse`: svid.<n>.pem, svid.<n>.key (0600), bundle.<n>.pem, federated_bundle.<n>.<m>.pem. */
async function writeX509Svids(dir: string, views: readonly SvidView[], log: (line: string) => void): Promise<void> {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new CommandError(`cannot create directory "${dir}": ${(e as Error).message}`);
  }
  for (const [i, v] of views.entries()) {
    const svidPath = join(dir, `svid.${i}.pem`);
    const keyPath = join(dir, `svid.${i}.key`);
    const bundlePath = join(dir, `bundle.${i}.pem`);
    log(`Writing SVID #${i} to file ${svidPath}.`);
    await writeFile(svidPath, pem(v.chain), 0o644);
    log(`Writing key #${i} to file ${keyPath}.`);
    await writeFile(keyPath, v.keyPem, 0o600);
    log(`Writing bundle #${i} to file ${bundlePath}.`);
    await writeFile(bundlePath, v.bundle?.marshal() ?? '', 0o644);
    for (const [j, b] of v.federated.entries()) {
      const path = join(dir, `federated_bundle.${i}.${j}.pem`);
      log(`Writing federated bundle #${j} for trust domain ${b.trustDomain.idString()} to file ${path}.`);
      await writeFile(path, b.marshal(), 0o644);
    }
  }
}

async function fetchX509({ io, flags }: CommandContext): Promise<number> {
  const { client, address } = openWorkloadApi(flags);
  try {
    const start = io.now();
    const ctx = await call(flags, 'cannot fetch X509-SVIDs', address, (signal) => client.fetchX509Context(signal));
    const took = elapsed(start, io.now());
    const views = svidViews(ctx);
    const silent = flags.boolean('silent');
    if (!silent) {
      if (wantsJson(flags)) writeJson(io.stdout, wire.X509SVIDResponseSchema, x509ResponseJson(views));
      else printX509Svids(io.stdout, views, took);
    }
    const dir = flags.string('write');
    if (dir !== undefined) await writeX509Svids(dir, views, (line) => (silent || wantsJson(flags) ? undefined : io.stdout.write(line + '\n')));
    return ExitCode.ok;
  } finally {
    client.close();
  }
}

/** `-audience a -audience b` and SPIRE's `-audience a,b`. */
function audiences(flags: ParsedFlags): string[] {
  const out = flags.strings('audience').flatMap((a) => a.split(',')).map((a) => a.trim()).filter((a) => a !== '');
  if (out.length === 0) throw new UsageError('audience must be specified: -audience <value>');
  return out;
}

async function fetchJwt({ io, flags }: CommandContext): Promise<number> {
  const audience = audiences(flags);
  const spiffeId = flags.string('spiffe-id');
  const { client, address } = openWorkloadApi(flags);
  try {
    const bundles = await call(flags, 'cannot fetch JWT bundles', address, (signal) => client.fetchJwtBundles(signal));
    const svids = await call(flags, 'cannot fetch JWT-SVID', address, (signal) =>
      client.fetchJwtSvids({ audience, ...(spiffeId === undefined ? {} : { spiffeId }) }, signal),
    );
    const jwks = bundles
      .bundles()
      .map((b) => [b.trustDomain.idString(), b.marshal()] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    if (wantsJson(flags)) {
      const svidResp = create(wire.JWTSVIDResponseSchema, { svids: svids.map((s) => ({ spiffeId: s.id.toString(), svid: s.marshal(), hint: s.hint })) });
      const bundlesResp = create(wire.JWTBundlesResponseSchema, { bundles: Object.fromEntries(jwks.map(([td, j]) => [td, Buffer.from(j)])) });
      const opts = { useProtoFieldName: true, alwaysEmitImplicit: true } as const;
      writeJsonValue(io.stdout, [toJson(wire.JWTSVIDResponseSchema, svidResp, opts), toJson(wire.JWTBundlesResponseSchema, bundlesResp, opts)]);
    } else {
      const lines = [...svids.map((s) => `token(${s.id.toString()}):\n\t${s.marshal()}`), ...jwks.map(([td, j]) => `bundle(${td}):\n\t${j}`)];
      io.stdout.write(lines.join('\n') + '\n');
    }
    return ExitCode.ok;
  } finally {
    client.close();
  }
}

/** Flags of `fetch x509` only and of `fetch jwt` only, for a clear error when mixed up. */
const X509_ONLY = ['write', 'silent'];
const JWT_ONLY = ['audience', 'spiffe-id'];

/**
 * `fetch [x509|jwt]`: one command rather than a group, because SPIRE's
 * `spire-agent api fetch` with no kind is `fetch x509`.
 */
const fetch: Command = {
  name: 'fetch',
  summary: "Fetches SVIDs from the Workload API: 'fetch x509' (the default) or 'fetch jwt'",
  description: [
    "fetch x509 (or 'fetch' alone): fetches this process's X509-SVIDs and bundles and prints them like",
    "'spire-agent api fetch x509'. With -write, writes svid.<n>.pem (leaf and intermediates), svid.<n>.key",
    "(PKCS#8, mode 0600), bundle.<n>.pem (the bundle of the SVID's trust domain) and federated_bundle.<n>.<m>.pem",
    'into the directory, for tools such as openssl, curl or nginx.',
    '',
    'fetch jwt: fetches a JWT-SVID for the audience (one per identity of this process, or the one of -spiffeID)',
    "and the JWT bundles, and prints them like 'spire-agent api fetch jwt'.",
  ].join('\n'),
  args: [{ name: 'x509|jwt', optional: true, description: 'What to fetch (default x509)' }],
  flags: [
    WORKLOAD_SOCKET_FLAG,
    TIMEOUT_FLAG,
    { name: 'write', kind: 'string', valueName: 'dir', description: 'x509: write the SVIDs, keys and bundles to this directory' },
    { name: 'silent', kind: 'boolean', description: 'x509: print nothing (with -write: just write the files)' },
    { name: 'audience', kind: 'string', valueName: 'aud', multiple: true, description: 'jwt (required): audience of the token; repeat it or separate values with commas' },
    { name: 'spiffe-id', kind: 'string', valueName: 'id', aliases: ['spiffeID'], description: 'jwt: the identity to fetch the token of (when the process has several)' },
    OUTPUT_FLAG,
  ],
  examples: [
    'tessera agent api fetch x509 -write /tmp/certs',
    'tessera agent api fetch -socketPath /tmp/tessera-agent/public/api.sock',
    'tessera agent api fetch jwt -audience spiffe://example.org/api -spiffeID spiffe://example.org/web',
  ],
  run(ctx: CommandContext): Promise<number> {
    const kind = ctx.args[0] ?? 'x509';
    if (kind !== 'x509' && kind !== 'jwt') throw new UsageError(`unknown kind "${kind}": use 'fetch x509' or 'fetch jwt'`);
    const misplaced = (kind === 'x509' ? JWT_ONLY : X509_ONLY).find((f) => ctx.flags.has(f));
    if (misplaced !== undefined) throw new UsageError(`flag --${misplaced} applies to 'fetch ${kind === 'x509' ? 'jwt' : 'x509'}', not 'fetch ${kind}'`);
    return kind === 'x509' ? fetchX509(ctx) : fetchJwt(ctx);
  },
};

const validateJwt: Command = {
  name: 'jwt',
  summary: 'Validates a JWT-SVID',
  description: [
    "Asks the agent whether the token is a valid JWT-SVID for the audience (and checks it locally against the",
    'JWT bundles). Prints "SVID is valid." with the SPIFFE ID and claims (exit 0), or "SVID is not valid: <reason>" (exit 1).',
  ].join('\n'),
  flags: [
    { name: 'audience', kind: 'string', valueName: 'aud', required: true, description: 'The audience the token must be for' },
    { name: 'svid', kind: 'string', valueName: 'token', required: true, description: 'The JWT-SVID (compact JWS)' },
    WORKLOAD_SOCKET_FLAG,
    TIMEOUT_FLAG,
    OUTPUT_FLAG,
  ],
  examples: ['tessera agent api validate jwt -audience spiffe://example.org/api -svid eyJhbGciOi...'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const audience = flags.string('audience')!;
    const token = flags.string('svid')!;
    if (audience === '') throw new UsageError('audience must be specified: -audience <value>');
    if (token === '') throw new UsageError('svid must be specified: -svid <token>');
    const { client, address } = openWorkloadApi(flags);
    try {
      const svid = await call(flags, 'unable to validate JWT-SVID', address, (signal) => client.validateJwtSvid(token, audience, signal), (e) => {
        // InvalidArgument is the agent's verdict on the token; a failed local check says the same.
        if (e instanceof WorkloadApiError && e.grpcCode === Code.InvalidArgument) return new CommandError(`SVID is not valid: ${rawMessage(e)}`);
        if (e instanceof JwtSvidError) return new CommandError(`SVID is not valid: ${e.message}`);
        return undefined;
      });
      const claims = svid.claims as JsonObject;
      if (wantsJson(flags)) {
        writeJson(io.stdout, wire.ValidateJWTSVIDResponseSchema, create(wire.ValidateJWTSVIDResponseSchema, { spiffeId: svid.id.toString(), claims }));
      } else {
        io.stdout.write(`SVID is valid.\nSPIFFE ID : ${svid.id.toString()}\nClaims    : ${JSON.stringify(claims)}\n`);
      }
      return ExitCode.ok;
    } finally {
      client.close();
    }
  },
};

const watch: Command = {
  name: 'watch',
  summary: 'Attaches to the Workload API and prints updated X509-SVIDs as they are received',
  description: [
    'Watches the X509-SVID stream and prints every update like \'fetch x509\' (the first one at once, then one per',
    'rotation or entry change) until interrupted (Ctrl-C). Failed streams are retried with backoff, as the library does.',
  ].join('\n'),
  flags: [
    WORKLOAD_SOCKET_FLAG,
    { name: 'count', kind: 'string', valueName: 'n', description: 'Stop after n updates (for scripts and tests)' },
  ],
  examples: ['tessera agent api watch', 'tessera agent api watch -count 1'],
  async run({ io, flags }: CommandContext): Promise<number> {
    const countText = flags.string('count');
    if (countText !== undefined && !/^[1-9]\d*$/.test(countText)) throw new UsageError(`invalid value "${countText}" for -count: must be a positive whole number`);
    const count = countText === undefined ? Infinity : Number(countText);
    const { client, address } = openWorkloadApi(flags);
    const stop = new AbortController();
    const onSignal = (): void => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    let received = 0;
    let start = io.now();
    try {
      await client.watchX509Context(
        {
          onX509ContextUpdate: (ctx) => {
            printX509Svids(io.stdout, svidViews(ctx), elapsed(start, io.now()));
            start = io.now();
            if (++received >= count) stop.abort();
          },
          onX509ContextWatchError: (e) => {
            if (stop.signal.aborted) return;
            try {
              io.stderr.write(`${describeWorkloadApiError(e, 'watch failed (retrying)', address).message}\n`);
            } catch {
              io.stderr.write(`watch failed (retrying): ${e.message}\n`);
            }
          },
        },
        stop.signal,
      );
    } catch (e) {
      throw describeWorkloadApiError(e, 'cannot watch X509-SVIDs', address);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      client.close();
    }
    return ExitCode.ok;
  },
};

/** `tessera agent api …` (mounted under the `agent` group). */
export const agentApiCommands: CommandGroup = {
  name: 'api',
  summary: 'Use the Workload API: fetch and validate SVIDs, watch updates',
  description: [
    "The workload side of the agent, like 'spire-agent api': these commands call the Workload API as the",
    'process running them, so they get the identities registered for it.',
    `The socket is -socketPath, else $${SPIFFE_ENDPOINT_SOCKET}, else ${DEFAULT_WORKLOAD_API_SOCKET}.`,
  ].join('\n'),
  commands: [
    fetch,
    { name: 'validate', summary: 'Validates a JWT-SVID', commands: [validateJwt] },
    watch,
  ],
};

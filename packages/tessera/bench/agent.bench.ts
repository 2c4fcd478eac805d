/**
 * Agent benchmark against REAL processes: a `tessera server run` process
 * (SQLite in a temporary data directory) and `tessera agent run` processes
 * (join_token attestation, Workload API on a Unix socket), with workloads in
 * this process or in child processes (the same file, run as `streams`):
 *
 *  1. FetchX509SVID first-message latency through the library's
 *     WorkloadApiClient, a fresh connection per fetch and a reused client,
 *     interleaved; then fetches/s at several concurrencies over 4 connections
 *     (raw gRPC client, so the bench side stays cheap), with the agent's CPU
 *     time per fetch (one entry for this process's uid).
 *  2. 1,000 FetchX509SVID watch streams (4 child processes × 250
 *     connections, one stream each): agent RSS before / after, and the time
 *     from an entry update (x509SvidTtl changed: the SVID must be re-signed)
 *     until every stream has the new serial (p50 / p100), three times.
 *  3. agent RSS with 100 entries (distinct SPIFFE IDs, all matched by this
 *     uid) and 100 open streams, on a fresh agent: idle → SVIDs signed →
 *     streams open.
 *  4. mTLS requests/s during rotation: examples/dist/echo-server and two
 *     echo-clients (no keep-alive: a handshake per request) as child processes
 *     with SPIFFE_ENDPOINT_SOCKET at a fresh agent, entries with a short
 *     x509SvidTtl; requests, errors, and rotations observed from both sides.
 *
 * Run: `node packages/tessera/dist/bench/agent.bench.js` (after `tsc -b`);
 * writes bench/results/agent.json. Bounded: a watchdog stops everything after
 * BENCH_AGENT_TIMEOUT_MS (default 180 s). Loopback and Unix sockets only.
 * BENCH_AGENT_CPU_PROF=<dir> makes the agents write CPU profiles there.
 * Needs root for scenario 4 (the echo processes get distinct gids, so each
 * has its own identity); without it scenario 4 is skipped.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { TrustDomain } from '@tessera/spiffe/id';
import { WorkloadApiClient } from '@tessera/spiffe/workload-api';
import { AgentAdmin, BundleAdmin, EntryAdmin, ServerHealth } from '../src/gen/tessera/v1/admin_pb.js';
import { EntrySchema, type Entry } from '../src/gen/tessera/v1/types_pb.js';
import { unixSocketTransport } from '../src/grpc/unix-client.js';
import { joinTokenAgentId } from '../src/server/api/agent-admin.js';
import { freePort } from '../test/helpers/processes.js';
import { cpuMs, hasExited, killNow, memory, percentile, rawWorkloadClient, round, runWithWatchdog, sleep, sortNum, stopProcess } from './bench-tools.js';

const SELF = fileURLToPath(import.meta.url);
const here = dirname(SELF);
const ROOT = resolve(here, '../../../..');
const BIN = resolve(here, '../../bin/tessera.js');
const OUT = join(ROOT, 'bench/results/agent.json');
const ECHO_SERVER = join(ROOT, 'examples/dist/echo-server/main.js');
const ECHO_CLIENT = join(ROOT, 'examples/dist/echo-client/main.js');
const TD = TrustDomain.parse('bench.local');
const TIMEOUT_MS = Number(process.env['BENCH_AGENT_TIMEOUT_MS'] ?? 180_000);
/** BENCH_AGENT_CPU_PROF=<dir>: the agent processes write V8 CPU profiles there (on exit). */
const PROFILE_DIR = process.env['BENCH_AGENT_CPU_PROF'];

const LATENCY_PAIRS = 200;
const RATE_MS = 2500;
const RATE_CONCURRENCY = [1, 16, 64] as const;
const RATE_CONNECTIONS = 4;
const STREAM_CHILDREN = 4;
const STREAMS_PER_CHILD = 250;
const ROTATIONS = 3;
const WORKLOADS = 100;
/** x509SvidTtl of the echo entries: with the server's 10 s NotBefore backdate they rotate 2–8 s after issue. */
const ECHO_TTL_SECONDS = 20;
const ECHO_SECONDS = 30;
const ECHO_CLIENTS = 2;
const ECHO_SERVER_GID = 40_001;
const ECHO_CLIENT_GID = 40_002;

const uid = process.getuid?.() ?? 0;
/** Milliseconds on a clock shared by this process and its children (performance.now() is per process). */
const epochMs = (): number => performance.timeOrigin + performance.now();
const log = (msg: string): void => console.error(`[agent.bench] ${msg}`);



/** The first certificate of a concatenated DER chain. */
function firstDer(chain: Uint8Array): Uint8Array {
  let len = chain[1]!;
  let off = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let k = 0; k < n; k++) len = len * 256 + chain[2 + k]!;
    off = 2 + n;
  }
  return chain.subarray(0, off + len);
}

/** Soft limit on open files of this process (/proc/self/limits). */
function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m?.[1] === 'unlimited' ? Infinity : Number(m?.[1] ?? 1024);
}

// ---------------------------------------------------------------- child: hold N watch streams

type ChildMessage =
  | { readonly t: 'u'; readonly i: number; readonly serial: string; readonly svids: number; readonly bytes: number; readonly at: number }
  | { readonly t: 'e'; readonly i: number; readonly code: string; readonly at: number };

/** `agent.bench.js streams <socket> <n>`: n connections, one FetchX509SVID stream each, every message reported over IPC. */
async function streamsChild(socketPath: string, count: number): Promise<void> {
  const stop = new AbortController();
  // The parent going away (or stopping us) ends everything.
  process.on('disconnect', () => process.exit(0));
  process.once('SIGTERM', () => process.exit(0));
  const serials = new Map<string, string>();
  const send = (m: ChildMessage): void => void process.send?.(m);
  const hold = async (i: number): Promise<void> => {
    const { client } = rawWorkloadClient(socketPath);
    while (!stop.signal.aborted) {
      try {
        for await (const m of client.fetchX509SVID({}, { signal: stop.signal })) {
          const at = epochMs();
          const first = m.svids[0];
          if (first === undefined) continue;
          const leaf = firstDer(first.x509Svid);
          // The leaf's last bytes are its signature: unique per certificate.
          const key = Buffer.from(leaf.subarray(-32)).toString('base64');
          let serial = serials.get(key);
          if (serial === undefined) {
            serial = new X509Certificate(leaf).serialNumber;
            serials.set(key, serial);
          }
          const bytes = m.svids.reduce((n, s) => n + s.x509Svid.length + s.x509SvidKey.length + s.bundle.length + s.spiffeId.length, 0);
          send({ t: 'u', i, serial, svids: m.svids.length, bytes, at });
        }
        send({ t: 'e', i, code: 'ended', at: epochMs() });
      } catch (e) {
        if (stop.signal.aborted) return;
        send({ t: 'e', i, code: Code[ConnectError.from(e).code] ?? 'unknown', at: epochMs() });
      }
      await sleep(200);
    }
  };
  await Promise.all(Array.from({ length: count }, (_, i) => hold(i)));
}

// ---------------------------------------------------------------- processes

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  stderr: string;
}

const procs: Proc[] = [];
const tempDirs: string[] = [];
const killAllNow = (): void => killNow(procs, tempDirs);

function track(name: string, child: ChildProcess): Proc {
  if (child.pid === undefined) throw new Error(`could not spawn ${name}`);
  const p: Proc = { name, child, pid: child.pid, stderr: '' };
  child.stderr?.on('data', (d: Buffer) => {
    p.stderr = (p.stderr + d.toString()).slice(-20_000);
  });
  procs.push(p);
  return p;
}

/** Spawns node with `args`; through `sh -c 'ulimit -n …'` when the process needs more descriptors than our soft limit. */
function spawnNode(args: readonly string[], fds: number, options: SpawnOptions): ChildProcess {
  if (openFilesLimit() >= fds) return spawn(process.execPath, args, options);
  const quoted = [process.execPath, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return spawn('/bin/sh', ['-c', `ulimit -n ${fds} && exec ${quoted}`], options);
}






/** RSS after letting the process settle (timers, lazy frees): the last of a few samples. */
async function settledRss(pid: number, ms = 1500): Promise<{ rssMiB: number; peakRssMiB: number; samplesMiB: number[] }> {
  const samples: number[] = [];
  for (let t = 0; t < ms; t += 250) {
    await sleep(250);
    samples.push(memory(pid).rssMiB);
  }
  return { ...memory(pid), samplesMiB: samples };
}

async function waitUntil(cond: () => boolean, timeoutMs: number, what: string, proc?: Proc): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (proc && hasExited(proc)) throw new Error(`${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode}) while waiting for ${what}: ${proc.stderr.trim().slice(-2000)}`);
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}


interface ServerProc extends Proc {
  readonly port: number;
  readonly bundlePem: string;
  readonly entries: Client<typeof EntryAdmin>;
  readonly agents: Client<typeof AgentAdmin>;
}

async function startServer(dir: string): Promise<ServerProc> {
  const dataDir = join(dir, 'server');
  const socket = join(dataDir, 'server.sock');
  const port = await freePort();
  const t0 = performance.now();
  const p = track(
    'server',
    spawn(process.execPath, [BIN, 'server', 'run', '-trustDomain', TD.name, '-dataDir', dataDir, '-socketPath', socket, '-bindAddress', '127.0.0.1', '-bindPort', String(port), '-healthPort', '0', '-logLevel', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] }),
  );
  const health = createClient(ServerHealth, unixSocketTransport(socket, { timeoutMs: 2000 }));
  for (let i = 0; ; i++) {
    if (hasExited(p)) throw new Error(`server exited: ${p.stderr.trim()}`);
    if (existsSync(socket) && (await health.check({}).then((h) => h.ready, () => false))) break;
    if (i >= 300) throw new Error(`server did not become ready in 15 s: ${p.stderr.trim()}`);
    await sleep(50);
  }
  log(`server pid ${p.pid} ready in ${(performance.now() - t0).toFixed(0)} ms (Agent API 127.0.0.1:${port})`);
  const bundle = await createClient(BundleAdmin, unixSocketTransport(socket)).getBundle({});
  if (bundle.x509Authorities.length === 0) throw new Error('the server bundle has no X.509 authorities');
  return Object.assign(p, {
    port,
    bundlePem: bundle.x509Authorities.map((d) => new X509Certificate(d).toString()).join(''),
    entries: createClient(EntryAdmin, unixSocketTransport(socket, { timeoutMs: 30_000 })),
    agents: createClient(AgentAdmin, unixSocketTransport(socket, { timeoutMs: 10_000 })),
  });
}

interface AgentProc extends Proc {
  readonly spiffeId: string;
  readonly socket: string;
}

/** `tessera agent run` with a fresh join token; resolves once the Workload API socket is served. */
async function startAgent(s: ServerProc, dir: string, name: string, fds: number): Promise<AgentProc> {
  const base = join(dir, name);
  mkdirSync(base, { recursive: true });
  const bundleFile = join(base, 'bootstrap.pem');
  writeFileSync(bundleFile, s.bundlePem);
  const token = (await s.agents.createJoinToken({})).value;
  const socket = join(base, 'public', 'api.sock');
  const t0 = performance.now();
  const p = track(
    name,
    spawnNode(
      [...(PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR] : []), BIN, 'agent', 'run', '-trustDomain', TD.name, '-serverAddress', `127.0.0.1:${s.port}`, '-dataDir', join(base, 'data'), '-socketPath', socket, '-adminSocketPath', join(base, 'admin.sock'), '-trustBundle', bundleFile, '-joinToken', token, '-logLevel', 'warn'],
      fds,
      { stdio: ['ignore', 'ignore', 'pipe'] },
    ),
  );
  await waitUntil(() => p.stderr.includes('Workload API on'), 15_000, `${name} to serve the Workload API`, p);
  log(`${name}: pid ${p.pid} serving in ${(performance.now() - t0).toFixed(0)} ms`);
  return Object.assign(p, { spiffeId: joinTokenAgentId(TD, token), socket });
}

const entryInput = (parentId: string, path: string, selectors: readonly string[], x509SvidTtl = 0): Entry =>
  create(EntrySchema, { spiffeId: `spiffe://${TD.name}${path}`, parentId, selectors: selectors.map((s) => ({ type: 'unix', value: s })), x509SvidTtl });

async function createEntries(s: ServerProc, batch: Entry[]): Promise<string[]> {
  const res = await s.entries.batchCreateEntry({ entries: batch });
  return res.results.map((r, i) => {
    if (r.status?.code !== 0 || !r.entry) throw new Error(`entry ${batch[i]!.spiffeId}: code ${r.status?.code} ${r.status?.message}`);
    return r.entry.id;
  });
}

/** Waits until this process is served `n` SVIDs by the agent. */
async function waitForSvids(a: AgentProc, n: number, timeoutMs: number): Promise<void> {
  const { client, close } = rawWorkloadClient(a.socket);
  const deadline = performance.now() + timeoutMs;
  let last = '';
  try {
    for (;;) {
      const ac = new AbortController();
      try {
        for await (const m of client.fetchX509SVID({}, { signal: ac.signal })) {
          if (m.svids.length >= n) return;
          last = `${m.svids.length} SVIDs`;
          break;
        }
      } catch (e) {
        last = ConnectError.from(e).message;
      } finally {
        ac.abort();
      }
      if (performance.now() > deadline) throw new Error(`${a.name}: not served ${n} SVIDs after ${timeoutMs} ms (last: ${last})`);
      await sleep(20);
    }
  } finally {
    close();
  }
}

// ---------------------------------------------------------------- 1. fetch latency and rate

async function fetchFigures(a: AgentProc): Promise<Record<string, unknown>> {
  const address = `unix://${a.socket}`;
  const reused = new WorkloadApiClient({ address });
  const fresh: number[] = [];
  const again: number[] = [];
  const fetchFresh = async (): Promise<void> => {
    const t = performance.now();
    const c = new WorkloadApiClient({ address });
    try {
      await c.fetchX509Svid();
    } finally {
      c.close();
    }
    fresh.push(performance.now() - t);
  };
  const fetchReused = async (): Promise<void> => {
    const t = performance.now();
    await reused.fetchX509Svid();
    again.push(performance.now() - t);
  };
  for (let i = 0; i < 30; i++) {
    await fetchFresh();
    await fetchReused();
  }
  fresh.length = 0;
  again.length = 0;
  // Interleaved, alternating which goes first: both see the same machine.
  for (let i = 0; i < LATENCY_PAIRS; i++) {
    if (i % 2 === 0) {
      await fetchFresh();
      await fetchReused();
    } else {
      await fetchReused();
      await fetchFresh();
    }
  }
  const f = sortNum(fresh);
  const r = sortNum(again);

  const raw = Array.from({ length: RATE_CONNECTIONS }, () => rawWorkloadClient(a.socket));
  const rate = async (concurrency: number, fetchOne: (w: number) => Promise<void>): Promise<Record<string, number>> => {
    let n = 0;
    let errors = 0;
    const cpu0 = cpuMs(a.pid);
    const start = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async (_, w) => {
        while (performance.now() - start < RATE_MS) {
          try {
            await fetchOne(w);
            n++;
          } catch {
            errors++;
          }
        }
      }),
    );
    const secs = (performance.now() - start) / 1000;
    const cpu = cpuMs(a.pid) - cpu0;
    return { concurrency, fetchesPerSec: Math.round(n / secs), errors, agentCpuPercent: Math.round(cpu / 10 / secs), agentCpuMsPerFetch: round(cpu / Math.max(1, n), 3) };
  };
  const rawFetch = async (w: number): Promise<void> => {
    const ac = new AbortController();
    try {
      for await (const m of raw[w % raw.length]!.client.fetchX509SVID({}, { signal: ac.signal })) {
        if (m.svids.length === 0) throw new Error('no SVID');
        break;
      }
    } finally {
      ac.abort();
    }
  };
  const rates: Record<string, number>[] = [];
  for (const c of RATE_CONCURRENCY) rates.push(await rate(c, rawFetch));
  const libClients = Array.from({ length: RATE_CONNECTIONS }, () => new WorkloadApiClient({ address }));
  const lib = await rate(16, (w) => libClients[w % libClients.length]!.fetchX509Svid().then(() => undefined));
  for (const c of libClients) c.close();
  // Side by side, alternating rounds: the same raw client accepting gzip (as connect-node clients
  // do by default, the library's included) or not; the agent gzips every response over 1 KiB for the former.
  const plain = Array.from({ length: RATE_CONNECTIONS }, () => rawWorkloadClient(a.socket, false));
  const plainFetch = async (w: number): Promise<void> => {
    const ac = new AbortController();
    try {
      for await (const m of plain[w % plain.length]!.client.fetchX509SVID({}, { signal: ac.signal })) {
        if (m.svids.length === 0) throw new Error('no SVID');
        break;
      }
    } finally {
      ac.abort();
    }
  };
  const gz: Record<string, number>[] = [];
  const nogz: Record<string, number>[] = [];
  for (let i = 0; i < 2; i++) {
    gz.push(await rate(16, rawFetch));
    nogz.push(await rate(16, plainFetch));
  }
  const med = (xs: Record<string, number>[], k: string): number => sortNum(xs.map((x) => x[k]!))[Math.floor(xs.length / 2)]!;
  for (const c of plain) c.close();
  for (const c of raw) c.close();
  reused.close();
  return {
    entries: 1,
    latency: {
      fetches: LATENCY_PAIRS,
      client: 'WorkloadApiClient.fetchX509Svid (SVID parsed), interleaved fresh/reused',
      freshConnectionP50Ms: round(percentile(f, 50), 2),
      freshConnectionP99Ms: round(percentile(f, 99), 2),
      reusedClientP50Ms: round(percentile(r, 50), 2),
      reusedClientP99Ms: round(percentile(r, 99), 2),
      freshOverReusedP50: round(percentile(f, 50) / percentile(r, 50), 2),
    },
    rate: {
      seconds: RATE_MS / 1000,
      connections: RATE_CONNECTIONS,
      rawClient: rates,
      libraryClientConcurrency16: lib,
      gzipSideBySide: {
        concurrency: 16,
        rounds: gz.length,
        acceptGzipFetchesPerSec: med(gz, 'fetchesPerSec'),
        noCompressionFetchesPerSec: med(nogz, 'fetchesPerSec'),
        acceptGzipAgentCpuMsPerFetch: med(gz, 'agentCpuMsPerFetch'),
        noCompressionAgentCpuMsPerFetch: med(nogz, 'agentCpuMsPerFetch'),
        agentCpuRatioGzipOverPlain: round(med(gz, 'agentCpuMsPerFetch') / med(nogz, 'agentCpuMsPerFetch'), 2),
      },
      note: 'one stream per fetch (first message, then cancel); every fetch is attested (/proc) by the agent',
    },
  };
}

// ---------------------------------------------------------------- stream fleets (child processes)

interface StreamState {
  serial: string;
  /** epochMs of the first message carrying `serial`. */
  since: number;
  svids: number;
  bytes: number;
  /** epochMs of the latest message. */
  lastAt: number;
}

class StreamFleet {
  readonly streams = new Map<string, StreamState>();
  readonly errors: { code: string; at: number }[] = [];
  updates = 0;
  readonly children: Proc[] = [];

  constructor(
    readonly socket: string,
    readonly perChild: number,
    childCount: number,
  ) {
    for (let c = 0; c < childCount; c++) {
      const child = spawnNode([SELF, 'streams', socket, String(perChild)], perChild + 64, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
      const p = track(`streams-${c}`, child);
      this.children.push(p);
      child.on('message', (m: ChildMessage) => {
        if (m.t === 'e') {
          this.errors.push({ code: m.code, at: m.at });
          return;
        }
        this.updates++;
        const key = `${c}:${m.i}`;
        const cur = this.streams.get(key);
        if (cur === undefined || cur.serial !== m.serial) this.streams.set(key, { serial: m.serial, since: m.at, svids: m.svids, bytes: m.bytes, lastAt: m.at });
        else {
          cur.svids = m.svids;
          cur.lastAt = m.at;
        }
      });
    }
  }

  get total(): number {
    return this.perChild * this.children.length;
  }

  serials(): Set<string> {
    return new Set([...this.streams.values()].map((s) => s.serial));
  }

  async waitAll(cond: (s: StreamState) => boolean, timeoutMs: number, what: string): Promise<void> {
    await waitUntil(
      () => {
        for (const p of this.children) if (hasExited(p)) throw new Error(`${p.name} exited: ${p.stderr.trim().slice(-2000)}`);
        if (this.streams.size < this.total) return false;
        for (const s of this.streams.values()) if (!cond(s)) return false;
        return true;
      },
      timeoutMs,
      what,
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.children.map((p) => stopProcess(p)));
  }
}

// ---------------------------------------------------------------- 2. 1,000 watch streams and one rotation

/** Changes the entry's x509SvidTtl and times until every stream of `fleet` has a new serial. */
async function rotate(s: ServerProc, a: AgentProc, fleet: StreamFleet, entryId: string, ttl: number): Promise<Record<string, unknown>> {
  const old = fleet.serials();
  if (old.size !== 1) throw new Error(`streams disagree before the rotation: ${old.size} serials`);
  const errorsBefore = fleet.errors.length;
  const updatesBefore = fleet.updates;
  const cpu0 = cpuMs(a.pid);
  const start = epochMs();
  const res = await s.entries.batchUpdateEntry({ entries: [create(EntrySchema, { id: entryId, x509SvidTtl: ttl })], mask: ['x509SvidTtl'] });
  if (res.results[0]?.status?.code !== 0) throw new Error(`entry update: ${res.results[0]?.status?.message}`);
  const updateCallMs = epochMs() - start;
  await fleet.waitAll((st) => !old.has(st.serial), 30_000, 'the rotation to reach every stream');
  const lat = sortNum([...fleet.streams.values()].map((st) => st.since - start));
  const errs = fleet.errors.slice(errorsBefore);
  return {
    updateCallMs: round(updateCallMs, 2),
    firstStreamMs: round(lat[0]!, 1),
    p50Ms: round(percentile(lat, 50), 1),
    p99Ms: round(percentile(lat, 99), 1),
    p100Ms: round(lat.at(-1)!, 1),
    spreadFirstToLastMs: round(lat.at(-1)! - lat[0]!, 1),
    messagesPerStream: round((fleet.updates - updatesBefore) / fleet.total, 2),
    streamErrors: errs.length,
    streamErrorCodes: [...new Set(errs.map((e) => e.code))],
    distinctSerialsAfter: fleet.serials().size,
    agentCpuMs: cpuMs(a.pid) - cpu0,
  };
}

/** The same rotation seen by one stream: the latency without fan-out, and whether the stream survives it. */
async function singleStreamRotation(s: ServerProc, a: AgentProc, entryId: string): Promise<Record<string, unknown>> {
  const fleet = new StreamFleet(a.socket, 1, 1);
  try {
    await fleet.waitAll(() => true, 15_000, 'one stream to get its first message');
    const rotations: Record<string, unknown>[] = [];
    for (let r = 0; r < ROTATIONS; r++) {
      rotations.push(await rotate(s, a, fleet, entryId, 7200 + r + 1));
      await sleep(300);
    }
    return {
      streams: 1,
      p100Ms: rotations.map((x) => x['p100Ms']),
      streamErrors: rotations.reduce((n, x) => n + (x['streamErrors'] as number), 0),
      streamErrorCodes: [...new Set(rotations.flatMap((x) => x['streamErrorCodes'] as string[]))],
      rotations,
    };
  } finally {
    await fleet.close();
  }
}

/** entry create → a workload already waiting on a stream receives the new SVID (the issue's "well under a second"). */
async function entryCreateFigures(s: ServerProc, a: AgentProc): Promise<Record<string, unknown>> {
  const fleet = new StreamFleet(a.socket, 1, 1);
  try {
    await fleet.waitAll(() => true, 15_000, 'one stream to get its first message');
    const lat: number[] = [];
    for (let i = 0; i < 30; i++) {
      const before = [...fleet.streams.values()][0]!.svids;
      const start = epochMs();
      await createEntries(s, [entryInput(a.spiffeId, `/bench/created-${i}`, [`uid:${uid}`], 3600)]);
      await fleet.waitAll((st) => st.svids > before, 10_000, 'the new entry\'s SVID on the waiting stream');
      lat.push([...fleet.streams.values()][0]!.lastAt - start);
      await sleep(50);
    }
    const sorted = sortNum(lat);
    return { creates: lat.length, p50Ms: round(percentile(sorted, 50), 1), p99Ms: round(percentile(sorted, 99), 1), maxMs: round(sorted.at(-1)!, 1) };
  } finally {
    await fleet.close();
  }
}

async function streamFigures(s: ServerProc, a: AgentProc, entryId: string): Promise<Record<string, unknown>> {
  const before = await settledRss(a.pid, 1000);
  const t0 = performance.now();
  const fleet = new StreamFleet(a.socket, STREAMS_PER_CHILD, STREAM_CHILDREN);
  try {
    await fleet.waitAll(() => true, 30_000, `${fleet.total} streams to get their first message`);
    const openSeconds = (performance.now() - t0) / 1000;
    const openErrors = fleet.errors.length;
    const open = await settledRss(a.pid, 1500);
    log(`${fleet.total} streams open in ${openSeconds.toFixed(2)} s; agent RSS ${before.rssMiB} → ${open.rssMiB} MiB`);
    const rotations: Record<string, unknown>[] = [];
    for (let r = 0; r < ROTATIONS; r++) {
      rotations.push(await rotate(s, a, fleet, entryId, 3600 + r + 1));
      log(`rotation ${r}: ${JSON.stringify(rotations.at(-1))}`);
      await sleep(500);
    }
    const afterRotations = await settledRss(a.pid, 1000);
    const streams = fleet.total;
    await fleet.close();
    const closed = await settledRss(a.pid, 1500);
    return {
      streams,
      childProcesses: STREAM_CHILDREN,
      connectionsPerChild: STREAMS_PER_CHILD,
      openFilesSoftLimit: openFilesLimit(),
      openSeconds: round(openSeconds, 2),
      openStreamErrors: openErrors,
      svidsPerStream: 1,
      agentRssBeforeMiB: before.rssMiB,
      agentRssWithStreamsMiB: open.rssMiB,
      agentRssPerStreamKiB: round(((open.rssMiB - before.rssMiB) * 1024) / streams, 1),
      agentRssAfterRotationsMiB: afterRotations.rssMiB,
      agentRssAfterStreamsClosedMiB: closed.rssMiB,
      agentPeakRssMiB: closed.peakRssMiB,
      rotationTrigger: 'BatchUpdateEntry x509SvidTtl (the SVID must be re-signed); latency from just before the update call to the message with the new serial, timed in the child processes',
      rotations,
      rotationP50MsMedian: round(sortNum(rotations.map((x) => x['p50Ms'] as number))[Math.floor(rotations.length / 2)]!, 1),
      rotationP100MsMedian: round(sortNum(rotations.map((x) => x['p100Ms'] as number))[Math.floor(rotations.length / 2)]!, 1),
    };
  } finally {
    await fleet.close();
  }
}

// ---------------------------------------------------------------- 3. 100 workloads

async function workloadFigures(s: ServerProc, a: AgentProc): Promise<Record<string, unknown>> {
  const idle = await settledRss(a.pid, 1500);
  const t0 = performance.now();
  await createEntries(
    s,
    Array.from({ length: WORKLOADS }, (_, i) => entryInput(a.spiffeId, `/workload/w${i}`, [`uid:${uid}`])),
  );
  await waitForSvids(a, WORKLOADS, 30_000);
  const signedSeconds = (performance.now() - t0) / 1000;
  const withSvids = await settledRss(a.pid, 1500);
  const fleet = new StreamFleet(a.socket, WORKLOADS, 1);
  try {
    await fleet.waitAll((st) => st.svids === WORKLOADS, 30_000, `${WORKLOADS} streams with ${WORKLOADS} SVIDs`);
    const withStreams = await settledRss(a.pid, 2000);
    const bytes = [...fleet.streams.values()][0]!.bytes;
    const perWorkload = (withStreams.rssMiB - idle.rssMiB) / WORKLOADS;
    return {
      workloads: WORKLOADS,
      entries: WORKLOADS,
      streams: WORKLOADS,
      svidsPerStream: WORKLOADS,
      messageBytesPerStream: bytes,
      signSeconds: round(signedSeconds, 2),
      agentRssIdleMiB: idle.rssMiB,
      agentRssWith100SvidsMiB: withSvids.rssMiB,
      agentRssWith100SvidsAnd100StreamsMiB: withStreams.rssMiB,
      agentPeakRssMiB: withStreams.peakRssMiB,
      perWorkloadAboveIdleKiB: round(perWorkload * 1024, 1),
      perEntryAndSvidKiB: round(((withSvids.rssMiB - idle.rssMiB) * 1024) / WORKLOADS, 1),
      totalPerWorkloadIncludingIdleMiB: round(withStreams.rssMiB / WORKLOADS, 2),
      envoySidecarMiBPerPod: 50,
      note: 'every entry matches this uid, so each of the 100 streams carries all 100 SVIDs (a worst case: a pod stream carries its own one or few); see streams1000.agentRssPerStreamKiB for the cost of a one-SVID stream',
    };
  } finally {
    await fleet.close();
  }
}

// ---------------------------------------------------------------- 4. mTLS during rotation

interface EchoCounters {
  ok: number;
  errors: number;
  rejected: number;
  serverSerials: Set<string>;
  clientSerials: Set<string>;
  errorSamples: string[];
}

function watchLines(p: Proc, onLine: (line: string) => void): void {
  let buf = '';
  p.child.stderr!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
}

async function echoFigures(s: ServerProc, a: AgentProc): Promise<Record<string, unknown>> {
  if (!existsSync(ECHO_SERVER) || !existsSync(ECHO_CLIENT)) return { skipped: `${ECHO_SERVER} or ${ECHO_CLIENT} not built` };
  if (uid !== 0) return { skipped: 'needs root: the echo processes run with distinct gids so that each has its own identity' };
  const serverId = `spiffe://${TD.name}/echo-server`;
  const clientId = `spiffe://${TD.name}/echo-client`;
  await createEntries(s, [
    entryInput(a.spiffeId, '/echo-server', [`uid:${uid}`, `gid:${ECHO_SERVER_GID}`], ECHO_TTL_SECONDS),
    entryInput(a.spiffeId, '/echo-client', [`uid:${uid}`, `gid:${ECHO_CLIENT_GID}`], ECHO_TTL_SECONDS),
  ]);
  const env = { ...process.env, SPIFFE_ENDPOINT_SOCKET: `unix://${a.socket}` };
  const c: EchoCounters = { ok: 0, errors: 0, rejected: 0, serverSerials: new Set(), clientSerials: new Set(), errorSamples: [] };
  const server = track('echo-server', spawn(process.execPath, [ECHO_SERVER], { env: { ...env, LISTEN_ADDRESS: '127.0.0.1:0' }, gid: ECHO_SERVER_GID, stdio: ['ignore', 'pipe', 'pipe'] }));
  let port = 0;
  server.child.stdout!.on('data', (d: Buffer) => {
    const m = /^(\d+)$/m.exec(d.toString());
    if (m) port = Number(m[1]);
  });
  watchLines(server, (line) => {
    const m = /Received request from \S+ \(certificate ([0-9A-F]+)\)/i.exec(line);
    if (m) c.clientSerials.add(m[1]!);
    else if (line.includes('Rejected connection')) {
      c.rejected++;
      if (c.errorSamples.length < 5) c.errorSamples.push(line);
    }
  });
  await waitUntil(() => port > 0, 30_000, 'the echo-server port', server);
  const clients: Proc[] = [];
  for (let i = 0; i < ECHO_CLIENTS; i++) {
    const p = track(
      `echo-client-${i}`,
      spawn(process.execPath, [ECHO_CLIENT], { env: { ...env, SERVER_ADDRESS: `127.0.0.1:${port}`, EXPECTED_SERVER_ID: serverId, INTERVAL_MS: '0' }, gid: ECHO_CLIENT_GID, stdio: ['ignore', 'ignore', 'pipe'] }),
    );
    watchLines(p, (line) => {
      const m = /Server response: .*\(server certificate ([0-9A-F]+)\)/i.exec(line);
      if (m) {
        c.ok++;
        c.serverSerials.add(m[1]!);
      } else if (line.includes('Error making request')) {
        c.errors++;
        if (c.errorSamples.length < 5) c.errorSamples.push(line);
      }
    });
    clients.push(p);
  }
  try {
    await waitUntil(() => c.ok >= ECHO_CLIENTS * 5, 30_000, 'the echo-clients to get answers', clients[0]);
    // The window: counters and serials from here on.
    const ok0 = c.ok;
    const err0 = c.errors + c.rejected;
    const startupErrorSamples = c.errorSamples.splice(0);
    c.serverSerials.clear();
    c.clientSerials.clear();
    const cpu0 = cpuMs(a.pid);
    const t0 = performance.now();
    await sleep(ECHO_SECONDS * 1000);
    const secs = (performance.now() - t0) / 1000;
    const ok = c.ok - ok0;
    const errors = c.errors + c.rejected - err0;
    for (const p of [...clients, server]) if (hasExited(p)) throw new Error(`${p.name} exited during the run: ${p.stderr.trim().slice(-2000)}`);
    return {
      seconds: round(secs, 1),
      clients: ECHO_CLIENTS,
      client: 'examples/dist/echo-client (sequential requests, no keep-alive: an mTLS handshake per request)',
      server: 'examples/dist/echo-server',
      serverId,
      clientId,
      x509SvidTtlSeconds: ECHO_TTL_SECONDS,
      requests: ok,
      requestsPerSec: Math.round(ok / secs),
      errors,
      clientErrors: c.errors,
      serverRejectedConnections: c.rejected,
      errorSamples: c.errorSamples,
      errorsBeforeWindow: err0,
      startupErrorSamples,
      serverSvidRotationsSeenByClients: Math.max(0, c.serverSerials.size - 1),
      clientSvidRotationsSeenByServer: Math.max(0, c.clientSerials.size - 1),
      agentCpuPercent: Math.round((cpuMs(a.pid) - cpu0) / 10 / secs),
    };
  } finally {
    await Promise.all([...clients, server].map((p) => stopProcess(p)));
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const started = performance.now();
  const results: Record<string, unknown> = {
    node: process.version,
    date: new Date().toISOString(),
    setup: 'tessera server run + tessera agent run as separate processes; workloads in this process or child processes over the agent Unix socket; unix workload attestor (uid, gid, path, sha256) per call',
  };
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-agent-'));
  tempDirs.push(dir);
  try {
    const s = await startServer(dir);

    // Agent 1: fetch figures, then 1,000 streams.
    const a1 = await startAgent(s, dir, 'agent-1', STREAM_CHILDREN * STREAMS_PER_CHILD + 256);
    await sleep(500);
    const idle1 = memory(a1.pid);
    const [entryId] = await createEntries(s, [entryInput(a1.spiffeId, '/bench/fetch', [`uid:${uid}`], 3600)]);
    await waitForSvids(a1, 1, 15_000);
    results['agentIdleRssMiB'] = idle1.rssMiB;
    results['fetchX509Svid'] = await fetchFigures(a1);
    log(`fetch: ${JSON.stringify(results['fetchX509Svid'])}`);
    results['rotationOneStream'] = await singleStreamRotation(s, a1, entryId!);
    log(`one stream: ${JSON.stringify(results['rotationOneStream'])}`);
    results['streams1000'] = await streamFigures(s, a1, entryId!);
    results['entryCreateToWaitingWorkload'] = await entryCreateFigures(s, a1);
    log(`entry create → workload: ${JSON.stringify(results['entryCreateToWaitingWorkload'])}`);
    await stopProcess(a1);

    // Agent 2 (fresh process): 100 workloads.
    const a2 = await startAgent(s, dir, 'agent-2', 1024);
    results['workloads100'] = await workloadFigures(s, a2);
    log(`workloads: ${JSON.stringify(results['workloads100'])}`);
    await stopProcess(a2);

    // Agent 3 (fresh process): mTLS traffic through rotations.
    const a3 = await startAgent(s, dir, 'agent-3', 1024);
    results['mtlsDuringRotation'] = await echoFigures(s, a3);
    log(`mtls: ${JSON.stringify(results['mtlsDuringRotation'])}`);
    await stopProcess(a3);
    await stopProcess(s);

    results['totalSeconds'] = round((performance.now() - started) / 1000, 1);
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, JSON.stringify(results, null, 2) + '\n');
    console.log(summary(results));
    console.log(`wrote ${OUT}`);
    return 0;
  } catch (e) {
    console.error(`agent bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    for (const p of procs) if (p.stderr.trim()) console.error(`${p.name} (pid ${p.pid}) stderr (tail):\n${p.stderr.trim().slice(-3000)}`);
    return 1;
  } finally {
    await Promise.all(procs.map((p) => stopProcess(p).catch(() => undefined)));
    killAllNow();
  }
}

/** A short human summary of the figures. */
function summary(r: Record<string, unknown>): string {
  const g = (path: string): unknown => path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], r);
  const rates = (g('fetchX509Svid.rate.rawClient') as Record<string, number>[]).map((x) => `c=${x['concurrency']}: ${x['fetchesPerSec']}/s (${x['agentCpuMsPerFetch']} ms agent CPU each)`).join(', ');
  const m = g('mtlsDuringRotation') as Record<string, unknown>;
  return [
    'Agent benchmark (real server + agent processes)',
    `  FetchX509SVID first message: fresh connection p50 ${String(g('fetchX509Svid.latency.freshConnectionP50Ms'))} ms / p99 ${String(g('fetchX509Svid.latency.freshConnectionP99Ms'))} ms; reused client p50 ${String(g('fetchX509Svid.latency.reusedClientP50Ms'))} ms / p99 ${String(g('fetchX509Svid.latency.reusedClientP99Ms'))} ms`,
    `  fetches/s (one agent process): ${rates}; library client c=16: ${String(g('fetchX509Svid.rate.libraryClientConcurrency16.fetchesPerSec'))}/s`,
    `  1,000 watch streams: agent RSS ${String(g('streams1000.agentRssBeforeMiB'))} → ${String(g('streams1000.agentRssWithStreamsMiB'))} MiB (${String(g('streams1000.agentRssPerStreamKiB'))} KiB/stream); rotation to all: p50 ${String(g('streams1000.rotationP50MsMedian'))} ms, p100 ${String(g('streams1000.rotationP100MsMedian'))} ms (median of ${ROTATIONS})`,
    `  entry create → SVID on a waiting workload's stream: p50 ${String(g('entryCreateToWaitingWorkload.p50Ms'))} ms, p99 ${String(g('entryCreateToWaitingWorkload.p99Ms'))} ms (${String(g('entryCreateToWaitingWorkload.creates'))} creates)`,
    `  100 workloads: agent RSS ${String(g('workloads100.agentRssIdleMiB'))} MiB idle → ${String(g('workloads100.agentRssWith100SvidsAnd100StreamsMiB'))} MiB (${String(g('workloads100.perWorkloadAboveIdleKiB'))} KiB per workload above idle, ${String(g('workloads100.totalPerWorkloadIncludingIdleMiB'))} MiB per workload all-in vs ~50 MiB per Envoy sidecar)`,
    m['skipped'] !== undefined
      ? `  mTLS during rotation: skipped (${String(m['skipped'])})`
      : `  mTLS during rotation: ${String(m['requestsPerSec'])} req/s over ${String(m['seconds'])} s, ${String(m['errors'])} errors, rotations seen: server SVID ${String(m['serverSvidRotationsSeenByClients'])}, client SVID ${String(m['clientSvidRotationsSeenByServer'])}`,
  ].join('\n');
}

if (process.argv[2] === 'streams') {
  await streamsChild(process.argv[3]!, Number(process.argv[4]));
} else {
  await runWithWatchdog('agent bench', TIMEOUT_MS, main, killAllNow);
}

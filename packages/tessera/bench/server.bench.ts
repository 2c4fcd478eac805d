/**
 * Server benchmark against the REAL `tessera server run` process (SQLite in a
 * temporary data directory, Agent API on 127.0.0.1, Admin API on the Unix
 * socket), with real agents (join_token attestation, mTLS Sync streams):
 *
 *  1. entry create → agent notified: 200 entries created one at a time
 *     through the Admin API for an attested agent with an open Sync stream;
 *     latency from just before the create call to the arrival of the Sync
 *     delta carrying the entry (p50/p99/max).
 *  2. initial sync of 10,000 entries to one agent: 10,000 entries created in
 *     batches of 500 (create rate), then a new Sync stream timed until its
 *     full snapshot (last message with more = false) has arrived.
 *  3. server RSS with 10,000 entries and 100 agents, each agent attested and
 *     holding an open Sync stream with its 100 entries (a fresh server
 *     process), next to the RSS of the idle server right after start.
 *  4. X509-SVIDs signed through BatchNewX509Svid over the wire: an agent
 *     sends batches of 500 CSRs (each with its own P-256 key, as agents
 *     make them), two calls in flight (BENCH_SIGN_CALLERS); SVIDs/s and server CPU per SVID, next
 *     to raw P-256 `crypto.sign` per second measured in this process in
 *     interleaved rounds (the bench client shares the 2 cores with the
 *     server: protobuf and TLS on both sides are included).
 *
 * Run: `node packages/tessera/dist/bench/server.bench.js` (after `tsc -b`);
 * writes bench/results/server.json. Bounded: a watchdog stops everything
 * after BENCH_SERVER_TIMEOUT_MS (default 150 s). Loopback traffic only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient, type Client } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { X509Bundle } from '@tessera/spiffe/bundle';
import { TrustDomain } from '@tessera/spiffe/id';
import { verifyX509Svid } from '@tessera/spiffe/svid';
import { buildCertificateRequest, Certificate, encodeSubjectPublicKeyInfo } from '@tessera/spiffe/x509';
import { AgentAdmin, BundleAdmin, EntryAdmin, ServerHealth } from '../src/gen/tessera/v1/admin_pb.js';
import { EntrySchema, type Entry } from '../src/gen/tessera/v1/types_pb.js';
import { unixSocketTransport } from '../src/grpc/unix-client.js';
import { joinTokenAgentId } from '../src/server/api/agent-admin.js';
import { agentClient, attestJoinToken, SyncStream, type AgentApiTarget, type Attested } from './agent-client.js';
import { freePort } from '../test/helpers/processes.js';
import { cpuMs, killNow, median, memory, percentile, round, runWithWatchdog, sleep, stopProcess, syncRate } from './bench-tools.js';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = resolve(here, '../../bin/tessera.js');
const OUT = resolve(here, '../../../../bench/results/server.json');
const TD = TrustDomain.parse('bench.local');
const TIMEOUT_MS = Number(process.env['BENCH_SERVER_TIMEOUT_MS'] ?? 150_000);

const NOTIFY_ENTRIES = 200;
const BULK_ENTRIES = 10_000;
const BATCH = 500;
const AGENTS = 100;
const ATTEST_CONCURRENCY = 10;
const SIGN_KEYS = 2000;
const SIGN_ROUNDS = 3;
const SIGN_ROUND_MS = 2000;
/** BatchNewX509Svid calls in flight (a rotation wave reaches many agents together; here one connection carries them). */
const SIGN_CALLERS = Number(process.env['BENCH_SIGN_CALLERS'] ?? 2);

const log = (msg: string): void => console.error(`[server.bench] ${msg}`);

// ---------------------------------------------------------------- server process

interface ServerProc {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly dataDir: string;
  readonly socket: string;
  readonly port: number;
  readonly target: AgentApiTarget;
  readonly entries: Client<typeof EntryAdmin>;
  readonly agents: Client<typeof AgentAdmin>;
  stderr: string;
}

const servers: ServerProc[] = [];
const tempDirs: string[] = [];



async function startServer(name: string): Promise<ServerProc> {
  const dir = mkdtempSync(join(tmpdir(), `tessera-bench-${name}-`));
  tempDirs.push(dir);
  const dataDir = join(dir, 'data');
  const socket = join(dataDir, 'server.sock');
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [BIN, 'server', 'run', '-trustDomain', TD.name, '-dataDir', dataDir, '-socketPath', socket, '-bindAddress', '127.0.0.1', '-bindPort', String(port), '-healthPort', '0', '-logLevel', 'warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  if (child.pid === undefined) throw new Error('could not spawn the server');
  const partial = { child, pid: child.pid, dataDir, socket, port, stderr: '' };
  child.stderr!.on('data', (d: Buffer) => {
    partial.stderr = (partial.stderr + d.toString()).slice(-20_000);
  });
  const health = createClient(ServerHealth, unixSocketTransport(socket, { timeoutMs: 2000 }));
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${partial.stderr.trim()}`);
    if (existsSync(socket) && (await health.check({}).then((h) => h.ready, () => false))) break;
    if (i >= 300) throw new Error(`server did not become ready in 15 s: ${partial.stderr.trim()}`);
    await sleep(50);
  }
  log(`${name}: server pid ${child.pid} ready in ${(performance.now() - t0).toFixed(0)} ms (Agent API 127.0.0.1:${port})`);
  // The trust bundle comes from the Admin socket (local trust), as an operator bootstraps an agent.
  const bundle = await createClient(BundleAdmin, unixSocketTransport(socket)).getBundle({});
  if (bundle.x509Authorities.length === 0) throw new Error('the server bundle has no X.509 authorities');
  const p: ServerProc = {
    ...partial,
    target: { trustDomain: TD, host: '127.0.0.1', port, roots: bundle.x509Authorities },
    entries: createClient(EntryAdmin, unixSocketTransport(socket, { timeoutMs: 30_000 })),
    agents: createClient(AgentAdmin, unixSocketTransport(socket, { timeoutMs: 10_000 })),
  };
  servers.push(p);
  return p;
}

const stopServer = (s: ServerProc): Promise<void> => stopProcess(s);
const killAllNow = (): void => killNow(servers, tempDirs);

// ---------------------------------------------------------------- helpers

const entryInput = (parentId: string, path: string, uid: number): Entry =>
  create(EntrySchema, { spiffeId: `spiffe://${TD.name}${path}`, parentId, selectors: [{ type: 'unix', value: `uid:${uid}` }] });

async function createBatch(s: ServerProc, batch: Entry[]): Promise<string[]> {
  const res = await s.entries.batchCreateEntry({ entries: batch });
  return res.results.map((r, i) => {
    if (r.status?.code !== 0 || !r.entry) throw new Error(`entry ${batch[i]!.spiffeId}: code ${r.status?.code} ${r.status?.message}`);
    return r.entry.id;
  });
}

async function newAgent(s: ServerProc): Promise<Attested & { id: string }> {
  const token = await s.agents.createJoinToken({});
  const a = await attestJoinToken(s.target, token.value);
  const id = joinTokenAgentId(TD, token.value);
  if (a.result.spiffeId !== id) throw new Error(`agent attested as ${a.result.spiffeId}, expected ${id}`);
  return { ...a, id };
}

/** Runs `fn` over `items` with at most `n` in flight. */
async function pool<T, R>(items: readonly T[], n: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

// ---------------------------------------------------------------- scenarios

/** 1. entry create → agent notified. */
async function notifyLatency(s: ServerProc): Promise<Record<string, unknown>> {
  const agent = await newAgent(s);
  const stream = new SyncStream(agentClient(s.target, agent));
  await stream.waitFor(() => stream.updates.length > 0, 10_000, 'the initial Sync update');
  const latencies: number[] = [];
  const createCall: number[] = [];
  /** Push arrival minus create response (negative: the delta beat the response). */
  const afterResponse: number[] = [];
  let pushedBeforeResponse = 0;
  for (let i = 0; i < NOTIFY_ENTRIES; i++) {
    const e = entryInput(agent.id, `/notify/w${i}`, 1000 + i);
    const t0 = performance.now();
    const [id] = await createBatch(s, [e]);
    const t1 = performance.now();
    createCall.push(t1 - t0);
    if (stream.arrivals.has(id!)) pushedBeforeResponse++;
    await stream.waitFor(() => stream.arrivals.has(id!), 5000, `the delta with entry ${i}`);
    latencies.push(stream.arrivals.get(id!)! - t0);
    afterResponse.push(stream.arrivals.get(id!)! - t1);
  }
  const deltas = stream.updates.slice(1);
  stream.close();
  const first = latencies[0]!;
  const sorted = [...latencies].sort((a, b) => a - b);
  const calls = [...createCall].sort((a, b) => a - b);
  const after = [...afterResponse].sort((a, b) => a - b);
  return {
    entries: NOTIFY_ENTRIES,
    p50Ms: round(percentile(sorted, 50), 2),
    p99Ms: round(percentile(sorted, 99), 2),
    maxMs: round(sorted.at(-1)!, 2),
    meanMs: round(sorted.reduce((a, b) => a + b, 0) / sorted.length, 2),
    firstMs: round(first, 2),
    createCallP50Ms: round(percentile(calls, 50), 2),
    createCallP99Ms: round(percentile(calls, 99), 2),
    pushAfterCreateResponseP50Ms: round(percentile(after, 50), 2),
    pushAfterCreateResponseP99Ms: round(percentile(after, 99), 2),
    deltaUpdates: deltas.length,
    deltasWithOneEntry: deltas.filter((u) => !u.full && u.entries === 1).length,
    pushArrivedBeforeCreateResponse: pushedBeforeResponse,
  };
}

/** 2. initial sync of 10,000 entries to one agent. */
async function initialSync(s: ServerProc): Promise<Record<string, unknown>> {
  const agent = await newAgent(s);
  const client = agentClient(s.target, agent);
  // A live stream during the creates tells when the server has taken in every change.
  const live = new SyncStream(client);
  await live.waitFor(() => live.updates.length > 0, 10_000, 'the initial Sync update');
  const batchMs: number[] = [];
  const t0 = performance.now();
  for (let b = 0; b < BULK_ENTRIES / BATCH; b++) {
    const batch = Array.from({ length: BATCH }, (_, i) => entryInput(agent.id, `/bulk/w${b * BATCH + i}`, b * BATCH + i));
    const tb = performance.now();
    await createBatch(s, batch);
    batchMs.push(performance.now() - tb);
  }
  const createMs = performance.now() - t0;
  await live.waitFor(() => live.entryIds.size >= BULK_ENTRIES, 30_000, 'the live stream to receive all 10,000 entries');
  const liveCaughtUpMs = Math.max(0, live.updates.at(-1)!.at - (t0 + createMs));
  const liveDeltas = live.updates.length - 1;
  live.close();
  await sleep(200);

  // The measured part: a NEW Sync stream (on the agent's existing connection) until its full snapshot is in.
  const fresh = new SyncStream(client);
  await fresh.waitFor(() => fresh.updates.length > 0, 30_000, 'the full snapshot');
  const snap = fresh.updates[0]!;
  if (!snap.full || snap.entries !== BULK_ENTRIES) throw new Error(`snapshot: full=${snap.full}, ${snap.entries} entries (expected ${BULK_ENTRIES})`);
  fresh.close();
  const seconds = (snap.at - fresh.openedAt) / 1000;
  const sortedBatches = [...batchMs].sort((a, b) => a - b);
  return {
    entries: BULK_ENTRIES,
    createBatchSize: BATCH,
    createSeconds: round(createMs / 1000, 3),
    createEntriesPerSec: Math.round((BULK_ENTRIES * 1000) / createMs),
    createBatchP50Ms: round(percentile(sortedBatches, 50)),
    createBatchMaxMs: round(sortedBatches.at(-1)!),
    liveStreamDeltaUpdates: liveDeltas,
    liveStreamCaughtUpAfterLastCreateMs: round(liveCaughtUpMs),
    snapshotSeconds: round(seconds, 3),
    snapshotEntriesPerSec: Math.round(BULK_ENTRIES / seconds),
    snapshotFirstMessageMs: round(snap.firstAt - fresh.openedAt),
    snapshotMessages: snap.messages,
  };
}

/** 3. RSS with 10,000 entries over 100 agents, each with an open Sync stream. */
async function rssAt100Agents(s: ServerProc, idle: { rssMiB: number; peakRssMiB: number }): Promise<Record<string, unknown>> {
  let t0 = performance.now();
  const agents = await pool(Array.from({ length: AGENTS }), ATTEST_CONCURRENCY, () => newAgent(s));
  const attestSeconds = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const streams = agents.map((a) => new SyncStream(agentClient(s.target, a)));
  for (const st of streams) await st.waitFor(() => st.updates.length > 0, 20_000, 'an initial Sync update');
  const streamsOpenSeconds = (performance.now() - t0) / 1000;
  const perAgent = BULK_ENTRIES / AGENTS;
  const all = agents.flatMap((a, ai) => Array.from({ length: perAgent }, (_, i) => entryInput(a.id, `/fleet/a${ai}/w${i}`, ai * perAgent + i)));
  t0 = performance.now();
  for (let b = 0; b < all.length; b += BATCH) await createBatch(s, all.slice(b, b + BATCH));
  const createSeconds = (performance.now() - t0) / 1000;
  for (const st of streams) await st.waitFor(() => st.entryIds.size >= perAgent, 30_000, `${perAgent} entries on every stream`);
  const deliveredSeconds = (performance.now() - t0) / 1000;
  const afterDelivery = memory(s.pid);
  // Let it settle (timers, lazy frees), sampling as it goes; the figure is the last sample.
  const samples: number[] = [];
  for (let i = 0; i < 8; i++) {
    await sleep(250);
    samples.push(memory(s.pid).rssMiB);
  }
  const settled = memory(s.pid);
  const broken = streams.filter((st) => st.ended).length;
  for (const st of streams) st.close();
  return {
    agents: AGENTS,
    entries: BULK_ENTRIES,
    entriesPerAgent: perAgent,
    openSyncStreams: AGENTS - broken,
    idleRssMiB: idle.rssMiB,
    rssMiB: settled.rssMiB,
    rssAboveIdleMiB: round(settled.rssMiB - idle.rssMiB),
    rssRightAfterDeliveryMiB: afterDelivery.rssMiB,
    rssSettleSamplesMiB: samples,
    peakRssMiB: settled.peakRssMiB,
    attestSeconds: round(attestSeconds, 3),
    attestConcurrency: ATTEST_CONCURRENCY,
    streamsOpenSeconds: round(streamsOpenSeconds, 3),
    createSeconds: round(createSeconds, 3),
    allDeliveredSeconds: round(deliveredSeconds, 3),
  };
}

// ---------------------------------------------------------------- main

/** 4. BatchNewX509Svid over the wire, next to raw P-256 signatures. */
async function batchSigning(s: ServerProc): Promise<Record<string, unknown>> {
  const agent = await newAgent(s);
  const client = agentClient(s.target, agent);
  const [entryId] = await createBatch(s, [entryInput(agent.id, '/sign/web', 4242)]);
  const spiffeId = `spiffe://${TD.name}/sign/web`;
  const keys = Array.from({ length: SIGN_KEYS }, () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
  const csrs = keys.map((k) => buildCertificateRequest(k, { uris: [spiffeId] }));
  const call = async (first: number): Promise<number> => {
    const params = Array.from({ length: BATCH }, (_, k) => ({ entryId: entryId!, csr: csrs[(first + k) % SIGN_KEYS]! }));
    const res = await client.batchNewX509Svid({ params });
    const bad = res.results.find((r) => r.status?.code !== 0);
    if (bad !== undefined || res.results.length !== BATCH) throw new Error(`BatchNewX509Svid: ${bad?.status?.message ?? `${res.results.length} results`}`);
    return res.results.length;
  };
  // What is timed must be right: the SVIDs verify and certify the CSRs' own keys.
  const check = await client.batchNewX509Svid({ params: [{ entryId: entryId!, csr: csrs[7]! }] });
  const svid = check.results[0]!.svid;
  verifyX509Svid(svid, new X509Bundle(TD, s.target.roots));
  if (!new Certificate(svid[0]!).spki.equals(encodeSubjectPublicKeyInfo(keys[7]!))) throw new Error('the SVID does not certify the CSR key');
  // Warm-up (JIT, TLS session, pools): a second of calls.
  for (const w0 = performance.now(); performance.now() - w0 < 1000; ) await call(0);
  const tbs = randomBytes(450);
  const rawKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const raw: number[] = [];
  const svidsPerSec: number[] = [];
  const serverCpuMsPerSvid: number[] = [];
  const clientCpuMsPerSvid: number[] = [];
  let n = 0;
  for (let r = 0; r < SIGN_ROUNDS; r++) {
    raw.push(syncRate(() => sign('sha256', tbs, rawKey), 1000));
    const cpu0 = cpuMs(s.pid);
    const own0 = process.cpuUsage();
    const t0 = performance.now();
    let signed = 0;
    const caller = async (): Promise<void> => {
      while (performance.now() - t0 < SIGN_ROUND_MS) {
        const first = n;
        n += BATCH;
        const got = await call(first); // not `signed += await …`: that reads `signed` before the await and loses other callers' counts
        signed += got;
      }
    };
    await Promise.all(Array.from({ length: SIGN_CALLERS }, caller));
    const wall = performance.now() - t0;
    svidsPerSec.push((signed * 1000) / wall);
    serverCpuMsPerSvid.push((cpuMs(s.pid) - cpu0) / signed);
    const own = process.cpuUsage(own0);
    clientCpuMsPerSvid.push((own.user + own.system) / 1000 / signed);
  }
  const rawMed = median(raw);
  const svidMed = median(svidsPerSec);
  return {
    csrsPerCall: BATCH,
    callsInFlight: SIGN_CALLERS,
    distinctKeys: SIGN_KEYS,
    rounds: SIGN_ROUNDS,
    svidsPerSec: round(svidMed, 0),
    rawP256SignPerSec: round(rawMed, 0),
    ratioToRawSign: round(svidMed / rawMed, 3),
    serverCpuMicrosPerSvid: round(median(serverCpuMsPerSvid) * 1000, 1),
    /** The bench's own CPU (building requests, TLS, decoding 500 SVIDs per response): it shares the cores with the server. */
    clientCpuMicrosPerSvid: round(median(clientCpuMsPerSvid) * 1000, 1),
    perRound: svidsPerSec.map((v, i) => ({ svidsPerSec: round(v, 0), rawSignPerSec: round(raw[i]!, 0) })),
  };
}

async function main(): Promise<number> {
  const started = performance.now();
  const results: Record<string, unknown> = {
    node: process.version,
    date: new Date().toISOString(),
    datastore: 'sqlite',
    server: 'tessera server run (separate process), Agent API over mTLS on 127.0.0.1, Admin API over the Unix socket',
  };
  try {
    const s1 = await startServer('sync');
    await sleep(500);
    const idle1 = memory(s1.pid);
    log(`idle RSS ${idle1.rssMiB} MiB`);
    results['entryCreateToAgentNotified'] = await notifyLatency(s1);
    log(`notify: ${JSON.stringify(results['entryCreateToAgentNotified'])}`);
    results['initialSync10k'] = await initialSync(s1);
    log(`initial sync: ${JSON.stringify(results['initialSync10k'])}`);
    results['syncServerMemory'] = { idleRssMiB: idle1.rssMiB, afterScenarios12: memory(s1.pid), entries: NOTIFY_ENTRIES + BULK_ENTRIES, agents: 2 };
    results['batchNewX509Svid'] = await batchSigning(s1);
    log(`BatchNewX509Svid: ${JSON.stringify(results['batchNewX509Svid'])}`);
    await stopServer(s1);

    const s2 = await startServer('fleet');
    await sleep(500);
    const idle2 = memory(s2.pid);
    log(`idle RSS ${idle2.rssMiB} MiB`);
    results['rss10kEntries100Agents'] = await rssAt100Agents(s2, idle2);
    log(`rss: ${JSON.stringify(results['rss10kEntries100Agents'])}`);
    await stopServer(s2);
    results['totalSeconds'] = round((performance.now() - started) / 1000, 1);
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, JSON.stringify(results, null, 2) + '\n');
    console.log(JSON.stringify(results, null, 2));
    console.log(`wrote ${OUT}`);
    return 0;
  } catch (e) {
    console.error(`server bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    for (const s of servers) if (s.stderr.trim()) console.error(`server pid ${s.pid} stderr (tail):\n${s.stderr.trim().slice(-4000)}`);
    return 1;
  } finally {
    for (const s of servers) await stopServer(s).catch(() => undefined);
    killAllNow();
  }
}

await runWithWatchdog('server bench', TIMEOUT_MS, main, killAllNow);

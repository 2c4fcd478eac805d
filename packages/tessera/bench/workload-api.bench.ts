/**
 * Workload API micro-benchmark: the agent's per-call cost of FetchX509SVID
 * without a server, SQLite or signing in the way. A child process runs
 * startWorkloadApi with the daemon's attestors (unix + endpoint, real /proc,
 * real SO_PEERCRED) over an InMemoryIdentityCache holding one SVID for this
 * uid; this process fetches over 4 connections (raw gRPC client, first
 * message only, like agent.bench.ts) and reads the child's CPU time.
 *
 * Side by side: every build directory given is measured in alternating
 * rounds (the machine is shared and noisy), e.g. a copy of `dist` taken
 * before a change against the current one:
 *
 *   node packages/tessera/dist/bench/workload-api.bench.js [distDir ...]
 *
 * (default: this file's own dist). BENCH_WLAPI_ROUNDS (default 3),
 * BENCH_WLAPI_SECONDS per rate point (default 2.5), BENCH_WLAPI_CPU_PROF=<dir>
 * makes the children write CPU profiles.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Client } from '@connectrpc/connect';
import { workloadApiWire as wire } from '@tessera/spiffe/workload-api';
import { cpuMs, percentile, rawWorkloadClient, round, sleep } from './bench-tools.js';

const SELF = fileURLToPath(import.meta.url);
const OWN_DIST = resolve(dirname(SELF), '..');
const ROUNDS = Number(process.env['BENCH_WLAPI_ROUNDS'] ?? 3);
const RATE_MS = Number(process.env['BENCH_WLAPI_SECONDS'] ?? 2.5) * 1000;
const CONCURRENCY = [16, 64] as const;
const CONNECTIONS = 4;
const LATENCY_CALLS = 400;
const PROFILE_DIR = process.env['BENCH_WLAPI_CPU_PROF'];

const log = (msg: string): void => console.error(`[workload-api.bench] ${msg}`);
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;


// ---------------------------------------------------------------- child: the agent side

/** `workload-api.bench.js serve <distDir> <socket>`: the Workload API of that build; prints "ready". */
async function serve(distDir: string, socketPath: string): Promise<void> {
  const mod = async <T>(path: string): Promise<T> => (await import(pathToFileURL(join(distDir, path)).href)) as T;
  type Api = typeof import('../src/agent/workload-api/index.js');
  type Attestors = typeof import('../src/agent/workload-attestors/index.js');
  type Endpoints = typeof import('../src/agent/endpoints/index.js');
  const { startWorkloadApi, InMemoryIdentityCache } = await mod<Api>('src/agent/workload-api/index.js');
  const { unixAttestor, peerCredentials } = await mod<Attestors>('src/agent/workload-attestors/index.js');
  const { combineAttestors, endpointAttestor } = await mod<Endpoints>('src/agent/endpoints/index.js');
  const { TestCa } = await import('@tessera/spiffe/testing');
  const ca = new TestCa({ trustDomain: 'bench.local' });
  const svid = ca.createX509Svid('spiffe://bench.local/bench/fetch');
  const cache = new InMemoryIdentityCache({ bundle: { trustDomain: 'bench.local', x509Authorities: [ca.root.certificate], jwks: ca.jwtBundle().marshal() } });
  cache.setEntry('e1', {
    selectors: [{ type: 'unix', value: `uid:${process.getuid?.() ?? 0}` }],
    svid: { spiffeId: 'spiffe://bench.local/bench/fetch', certificates: [...svid.certificates], privateKey: svid.privateKey, hint: '', federatesWith: [] },
  });
  // No endpoint registered (the bench agent's case): the attestor still stats the caller's namespace.
  const attestor = combineAttestors([unixAttestor(), endpointAttestor({ registry: { byNetns: () => [] }, nodeName: 'bench-node' })]);
  const server = await startWorkloadApi({ socketPath, cache, peer: peerCredentials, attest: (pid) => attestor.attest(pid) });
  process.once('SIGTERM', () => {
    void server.close().then(() => process.exit(0));
  });
  console.log('ready');
}

// ---------------------------------------------------------------- parent: the workloads



async function fetchFirst(c: Client<typeof wire.SpiffeWorkloadAPI>): Promise<void> {
  const ac = new AbortController();
  try {
    for await (const m of c.fetchX509SVID({}, { signal: ac.signal })) {
      if (m.svids.length === 0) throw new Error('no SVID');
      break;
    }
  } finally {
    ac.abort();
  }
}

interface Figures {
  latencyP50Ms: number;
  latencyP99Ms: number;
  rates: { concurrency: number; fetchesPerSec: number; agentCpuMsPerFetch: number; errors: number }[];
}

async function measure(distDir: string, dir: string, tag: string): Promise<Figures> {
  const socket = join(dir, `${tag}.sock`);
  const args = [...(PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR] : []), SELF, 'serve', distDir, socket];
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = performance.now() + 15_000;
    while (!out.includes('ready')) {
      if (child.exitCode !== null || performance.now() > deadline) throw new Error(`the ${tag} agent did not start`);
      await sleep(10);
    }
    const clients = Array.from({ length: CONNECTIONS }, () => rawWorkloadClient(socket));
    try {
      // Warm-up: JIT, connections, caches (executable hash, user database).
      const warm = performance.now();
      while (performance.now() - warm < 700) await Promise.all(clients.map((c) => fetchFirst(c.client)));
      const lat: number[] = [];
      for (let i = 0; i < LATENCY_CALLS; i++) {
        const t = performance.now();
        await fetchFirst(clients[0]!.client);
        lat.push(performance.now() - t);
      }
      lat.sort((a, b) => a - b);
      const rates: Figures['rates'] = [];
      for (const concurrency of CONCURRENCY) {
        let n = 0;
        let errors = 0;
        const cpu0 = cpuMs(child.pid!);
        const start = performance.now();
        await Promise.all(
          Array.from({ length: concurrency }, async (_, w) => {
            while (performance.now() - start < RATE_MS) {
              try {
                await fetchFirst(clients[w % CONNECTIONS]!.client);
                n++;
              } catch {
                errors++;
              }
            }
          }),
        );
        const secs = (performance.now() - start) / 1000;
        const cpu = cpuMs(child.pid!) - cpu0;
        rates.push({ concurrency, fetchesPerSec: Math.round(n / secs), agentCpuMsPerFetch: round(cpu / Math.max(1, n), 3), errors });
      }
      return { latencyP50Ms: round(percentile(lat, 50), 2), latencyP99Ms: round(percentile(lat, 99), 2), rates };
    } finally {
      for (const c of clients) c.close();
    }
  } finally {
    if (child.exitCode === null) {
      const done = once(child, 'exit');
      child.kill('SIGTERM');
      await Promise.race([done, sleep(5000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }
}

async function main(): Promise<void> {
  const builds = process.argv.slice(2).map((d) => resolve(d));
  if (builds.length === 0) builds.push(OWN_DIST);
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-wlapi-'));
  const all = new Map<string, Figures[]>(builds.map((b) => [b, []]));
  try {
    for (let r = 0; r < ROUNDS; r++) {
      // Alternate the order each round: both builds see the same machine.
      const order = r % 2 === 0 ? builds : [...builds].reverse();
      for (const [i, b] of order.entries()) {
        const f = await measure(b, dir, `r${r}-${i}`);
        all.get(b)!.push(f);
        log(`round ${r} ${b}: ${JSON.stringify(f)}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const summary = [...all].map(([build, fs]) => ({
    build,
    rounds: fs.length,
    latencyP50Ms: median(fs.map((f) => f.latencyP50Ms)),
    latencyP99Ms: median(fs.map((f) => f.latencyP99Ms)),
    rates: CONCURRENCY.map((c, i) => ({
      concurrency: c,
      fetchesPerSec: median(fs.map((f) => f.rates[i]!.fetchesPerSec)),
      agentCpuMsPerFetch: median(fs.map((f) => f.rates[i]!.agentCpuMsPerFetch)),
    })),
  }));
  console.log(JSON.stringify(summary, null, 2));
}

if (process.argv[2] === 'serve') await serve(process.argv[3]!, process.argv[4]!);
else await main();

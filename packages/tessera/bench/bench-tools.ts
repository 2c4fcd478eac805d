/**
 * What the benchmarks share: rounding, percentiles and medians, a timed
 * loop of synchronous calls, /proc
 * readings of a process (RSS, CPU), stopping only the processes a bench
 * spawned (by PID), a watchdog around `main`, and a raw Workload API client.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { createClient, type Client, type Interceptor } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { SECURITY_HEADER, workloadApiWire as wire } from '@tessera/spiffe/workload-api';

export const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** The p-th percentile (nearest rank) of ascending `sorted`. */
export const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
export const sortNum = (xs: readonly number[]): number[] => [...xs].sort((a, b) => a - b);
/** The middle value (upper middle for an even count): the figure of a set of interleaved rounds. */
export const median = (xs: readonly number[]): number => sortNum(xs)[Math.floor(xs.length / 2)]!;

/** Calls per second of a synchronous function over `budgetMs` (the clock read every 20 calls). */
export function syncRate(fn: (i: number) => void, budgetMs: number): number {
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < budgetMs) {
    for (let i = 0; i < 20; i++) fn(n + i);
    n += 20;
    now = performance.now();
  }
  return (n * 1000) / (now - start);
}

/** VmRSS / VmHWM of a process in MiB. */
export function memory(pid: number): { rssMiB: number; peakRssMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: round(kb('VmRSS') / 1024), peakRssMiB: round(kb('VmHWM') / 1024) };
}

/** User + system CPU time of a process in ms (clock ticks of 10 ms). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

/** A process a bench spawned. */
export interface SpawnedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
}

export const hasExited = (p: SpawnedProcess): boolean => p.child.exitCode !== null || p.child.signalCode !== null;

/** SIGTERM, then SIGKILL if it has not exited in 5 s. Only processes the bench spawned, by PID. */
export async function stopProcess(p: SpawnedProcess): Promise<void> {
  if (hasExited(p)) return;
  const done = once(p.child, 'exit');
  try {
    process.kill(p.pid, 'SIGTERM');
  } catch {
    return;
  }
  if (!(await Promise.race([done.then(() => true), sleep(5000).then(() => false)]))) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    await Promise.race([done, sleep(2000)]);
  }
}

/** SIGKILLs every process still running and removes the temporary directories (watchdog, signals, failures). */
export function killNow(procs: Iterable<SpawnedProcess>, tempDirs: Iterable<string>): void {
  for (const p of procs) {
    if (!hasExited(p)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
}

/**
 * Runs `main` and exits with its code; after `timeoutMs`, or on SIGINT/SIGTERM,
 * `cleanup()` and exit (2 / 130). Exiting explicitly: HTTP/2 client sessions
 * may linger on timers once the bench is done.
 */
export async function runWithWatchdog(name: string, timeoutMs: number, main: () => Promise<number>, cleanup: () => void): Promise<never> {
  const watchdog = setTimeout(() => {
    console.error(`${name}: watchdog fired after ${timeoutMs} ms; stopping`);
    cleanup();
    process.exit(2);
  }, timeoutMs);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cleanup();
      process.exit(130);
    });
  }
  const code = await main();
  clearTimeout(watchdog);
  process.exit(code);
}

const securityHeader: Interceptor = (next) => (req) => {
  req.header.set(SECURITY_HEADER, 'true');
  return next(req);
};

/**
 * A raw Workload API client on its own connection (no parsing: the bench side
 * stays cheap). Like the library's client it accepts gzip/br responses unless
 * `compression` is false.
 */
export function rawWorkloadClient(socketPath: string, compression = true): { client: Client<typeof wire.SpiffeWorkloadAPI>; close(): void } {
  const sessions = new Http2SessionManager('http://localhost', undefined, { createConnection: () => connect(socketPath) });
  const client = createClient(
    wire.SpiffeWorkloadAPI,
    createGrpcTransport({ baseUrl: 'http://localhost', sessionManager: sessions, interceptors: [securityHeader], ...(compression ? {} : { acceptCompression: [] }) }),
  );
  return { client, close: () => sessions.abort() };
}

/**
 * Real `tessera server run` / `tessera agent run` processes for end-to-end
 * tests: started with ephemeral ports and private directories, stopped by
 * PID. Every process a test starts is registered so `stopAll()` (in an
 * `after` hook) can end it even when the test fails.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { createClient } from '@connectrpc/connect';
import { ServerHealth } from '../../src/gen/tessera/v1/admin_pb.js';
import { unixSocketTransport } from '../../src/grpc/unix-client.js';

/** The `tessera` CLI entry point. */
export const TESSERA_BIN = join(dirname(fileURLToPath(import.meta.url)), '../../../bin/tessera.js');
/** The repository root. */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../../../..');

/** A started process with its output collected. */
export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  output(): string;
  /** Resolves when the output matches `re` (returns the match); rejects on exit or timeout. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or signal name). */
  exited(): Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

const running = new Set<Proc>();

/** Starts `command args`; stdout and stderr are collected together. */
export function startProcess(command: string, args: readonly string[], options: SpawnOptions = {}): Proc {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (d: Buffer): void => {
    out += d.toString();
    for (const w of [...waiters]) w();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exit = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  let done = false;
  void exit.then(() => {
    done = true;
    for (const w of [...waiters]) w();
  });
  const proc: Proc = {
    child,
    pid: child.pid!,
    output: () => out,
    waitFor(re, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = re.exec(out);
          if (m) {
            cleanup();
            resolve(m);
          } else if (done) {
            cleanup();
            reject(new Error(`process ${command} ${args.slice(0, 3).join(' ')} exited before printing ${re}; output:\n${out}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re}; output:\n${out}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    exited: () => exit,
    async stop(signal = 'SIGTERM') {
      if (!done) child.kill(signal);
      const r = await exit;
      running.delete(proc);
      return r;
    },
  };
  running.add(proc);
  return proc;
}

/** Ends every process still running (SIGKILL), by PID. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop('SIGKILL')));
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Runs the `tessera` CLI to completion: exit code and output. */
export async function tessera(args: readonly string[], options: SpawnOptions & { user?: string } = {}): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const argv = options.user ? ['runuser', ['-u', options.user, '--', process.execPath, TESSERA_BIN, ...args]] as const : [process.execPath, [TESSERA_BIN, ...args]] as const;
  const child = spawn(argv[0], argv[1], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | string>((resolve) => child.once('exit', (c, s) => resolve(c ?? s ?? -1)));
  return { code, stdout, stderr };
}

/** `tessera server run` on 127.0.0.1:<port, default a free one>; resolves when its Admin API says ready. */
export async function startServerProcess(dataDir: string, options: { port?: number; extra?: readonly string[] } = {}): Promise<{ proc: Proc; port: number; socket: string }> {
  const port = options.port ?? (await freePort());
  const extra = options.extra ?? [];
  const socket = join(dataDir, 'server.sock');
  const proc = startProcess(process.execPath, [TESSERA_BIN, 'server', 'run', '-trustDomain', 'cluster.local', '-dataDir', dataDir, '-healthPort', '0', '-bindPort', String(port), '-bindAddress', '127.0.0.1', '-logLevel', 'warn', ...extra]);
  const health = createClient(ServerHealth, unixSocketTransport(socket));
  for (let i = 0; i < 300; i++) {
    if (existsSync(socket) && (await health.check({}).then((h) => h.ready, () => false))) return { proc, port, socket };
    if (proc.child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await proc.stop('SIGKILL');
  throw new Error(`server did not become ready; output:\n${proc.output()}`);
}

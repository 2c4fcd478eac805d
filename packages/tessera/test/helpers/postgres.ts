/**
 * A throwaway PostgreSQL cluster for tests: `initdb` in a temp dir, `pg_ctl
 * start` on a free loopback port, fsync off. Needs root (initdb runs as the
 * `postgres` user via runuser) and Debian's server binaries
 * (/usr/lib/postgresql/<version>/bin), which scripts/setup.sh installs.
 * Without them it throws — tests that need PostgreSQL fail, they never skip.
 *
 * Start one cluster per test file and give each test its own database
 * (`createDatabase()`).
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);
const PG_ROOT = '/usr/lib/postgresql';

/** A running test cluster. */
export interface PostgresCluster {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication). */
  readonly url: string;
  /** How long initdb + start took (ms). */
  readonly startupMs: number;
  /** Creates an empty database `t_<random>` and returns its URL. */
  createDatabase(): Promise<string>;
  /** Runs SQL on the database at `url` (for tests that must reach under the datastore). */
  exec(url: string, text: string, values?: unknown[]): Promise<pg.QueryResult>;
  /** Stops the cluster at once (`-m immediate`) and removes its directory. */
  stop(): Promise<void>;
}

function fail(message: string): never {
  throw new Error(`startPostgres: ${message}`);
}

function binDir(): string {
  const versions = existsSync(PG_ROOT) ? readdirSync(PG_ROOT).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) {
    const dir = join(PG_ROOT, v, 'bin');
    if (existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  }
  return fail(`no PostgreSQL server binaries (initdb, pg_ctl) under ${PG_ROOT}/<version>/bin: install Debian's "postgresql" package (scripts/setup.sh does)`);
}

function postgresUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) fail('there is no "postgres" user: install Debian\'s "postgresql" package (scripts/setup.sh does)');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function asPostgres(bin: string, args: string[]): Promise<void> {
  try {
    await run('runuser', ['-u', 'postgres', '--', bin, ...args], { timeout: 60_000 });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    fail(`${bin.split('/').pop()} failed: ${(err.stderr || err.stdout || err.message).trim()}`);
  }
}

/**
 * Starts a cluster (about a second).
 * @throws Error saying what is missing when not root or PostgreSQL is not installed
 */
export async function startPostgres(): Promise<PostgresCluster> {
  const started = performance.now();
  if (process.getuid?.() !== 0) fail('the PostgreSQL tests must run as root (initdb runs as the postgres user through runuser); run them as root, as CI does');
  const bin = binDir();
  const { uid, gid } = postgresUser();
  const root = mkdtempSync(join(tmpdir(), 'tessera-pg-'));
  const data = join(root, 'data');
  chownSync(root, uid, gid);
  chmodSync(root, 0o700);
  let running = false;
  const stopSync = () => {
    if (running) spawnSync('runuser', ['-u', 'postgres', '--', join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop'], { stdio: 'ignore' });
    running = false;
    rmSync(root, { recursive: true, force: true });
  };
  process.on('exit', stopSync);
  try {
    await asPostgres(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions']);
    const port = await freePort();
    const opts = `-k ${root} -p ${port} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c wal_level=minimal -c max_wal_senders=0`;
    await asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-l', join(root, 'log'), '-o', opts, '-w', '-t', '30', 'start']);
    running = true;
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const exec = async (target: string, text: string, values?: unknown[]) => {
      const c = new pg.Client({ connectionString: target });
      await c.connect();
      try {
        return await c.query(text, values);
      } finally {
        await c.end();
      }
    };
    return {
      url,
      startupMs: performance.now() - started,
      exec,
      async createDatabase() {
        const name = `t_${randomBytes(6).toString('hex')}`;
        await exec(url, `CREATE DATABASE ${name}`);
        return `postgres://postgres@127.0.0.1:${port}/${name}`;
      },
      async stop() {
        process.off('exit', stopSync);
        if (running) {
          running = false;
          await run('runuser', ['-u', 'postgres', '--', join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
        }
        rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (e) {
    process.off('exit', stopSync);
    stopSync();
    throw e;
  }
}

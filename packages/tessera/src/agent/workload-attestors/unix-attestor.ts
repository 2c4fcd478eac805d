import { processStartTime } from './process-start.js';
import type { Selector } from '../../server/registration/index.js';
import { WorkloadAttestationError } from './errors.js';
import { executableHasher, type ExecutableHasher } from './executable-hash.js';
import { linuxProcReader, parseStatusIds, type ProcReader } from './proc-reader.js';
import { fileUserDatabase, type UserDatabase } from './user-database.js';

/** A workload attestor: the selectors of the process with this pid. */
export interface WorkloadAttestor {
  readonly name: string;
  attest(pid: number): Promise<Selector[]>;
}

export interface UnixAttestorOptions {
  /** /proc access; default the real /proc. */
  readonly proc?: ProcReader;
  /** uid/gid → name; default /etc/passwd and /etc/group. */
  readonly users?: UserDatabase;
  /** Executable hashing (size cap, cache); default {@link executableHasher} with its defaults. */
  readonly hasher?: ExecutableHasher;
  /** Emit `unix:path:` and `unix:sha256:` (SPIRE's `discover_workload_path`). Default true. */
  readonly discoverWorkloadPath?: boolean;
}

/**
 * SPIRE's `unix` workload attestor: for a caller pid (from SO_PEERCRED),
 * `unix:uid:`, `unix:user:`, `unix:gid:`, `unix:group:`,
 * `unix:supplementary_gid:` / `unix:supplementary_group:` per group in
 * /proc/<pid>/status, `unix:path:` (the /proc/<pid>/exe target) and
 * `unix:sha256:` (of that executable). Names are omitted when the id has none.
 *
 * PID reuse (spec/workload-api.md, caller identification): the process start
 * time is read before and after every other read; if it changed, the pid now
 * names another process and everything read may be about that one, so the
 * attestation fails rather than return a mix.
 *
 * @throws WorkloadAttestationError WORKLOAD_PROCESS_GONE, WORKLOAD_PID_REUSED, WORKLOAD_INSPECTION_FAILED
 */
export function unixAttestor(options: UnixAttestorOptions = {}): WorkloadAttestor {
  const proc = options.proc ?? linuxProcReader();
  const users = options.users ?? fileUserDatabase();
  const hasher = options.hasher ?? executableHasher();
  const discoverPath = options.discoverWorkloadPath ?? true;

  const startTime = (pid: number): Promise<bigint> => processStartTime(proc, pid);

  /**
   * The executable's hash. Usually known: a stat(2) of /proc/<pid>/exe names
   * the cached file, which saves the open, fstat and close (three thread-pool
   * round trips, a fifth of the agent's CPU per Workload API call). On a miss
   * the file is opened and the hash is keyed by fstat of that very descriptor,
   * as before: a process that execs another binary between the stat and the
   * open can then not file that binary's hash under the first one's identity.
   */
  async function sha256Of(pid: number): Promise<string | undefined> {
    if (proc.exeStat !== undefined && hasher.known !== undefined) {
      const known = hasher.known(await proc.exeStat(pid));
      if (known !== undefined) return known;
    }
    const file = await proc.openExe(pid);
    try {
      return await hasher.hash(file);
    } finally {
      await file.close();
    }
  }

  async function inspect(pid: number): Promise<Selector[]> {
    const ids = parseStatusIds(await proc.status(pid));
    if (ids === undefined) throw new WorkloadAttestationError('WORKLOAD_INSPECTION_FAILED', `/proc/${pid}/status lacks parsable Uid/Gid/Groups lines`);
    const out: Selector[] = [];
    const add = (value: string) => out.push({ type: 'unix', value });
    const [user, group, groupNames] = await Promise.all([
      users.userName(ids.uid),
      users.groupName(ids.gid),
      Promise.all(ids.groups.map((g) => users.groupName(g))),
    ]);
    add(`uid:${ids.uid}`);
    if (user !== undefined) add(`user:${user}`);
    add(`gid:${ids.gid}`);
    if (group !== undefined) add(`group:${group}`);
    ids.groups.forEach((g, i) => {
      add(`supplementary_gid:${g}`);
      const name = groupNames[i];
      if (name !== undefined) add(`supplementary_group:${name}`);
    });
    if (discoverPath) {
      add(`path:${await proc.exePath(pid)}`);
      const sha = await sha256Of(pid);
      if (sha !== undefined) add(`sha256:${sha}`);
    }
    return out;
  }

  return {
    name: 'unix',
    async attest(pid) {
      if (!Number.isSafeInteger(pid) || pid <= 0) {
        throw new WorkloadAttestationError('WORKLOAD_INSPECTION_FAILED', `pid must be a positive integer, got ${String(pid)}`);
      }
      const before = await startTime(pid);
      let selectors: Selector[] | undefined;
      let failure: unknown;
      try {
        selectors = await inspect(pid);
      } catch (e) {
        failure = e;
      }
      // Re-check even after a failure: an ENOENT mid-way means "gone" or "reused", and which matters.
      let after: bigint;
      try {
        after = await startTime(pid);
      } catch (e) {
        if (e instanceof WorkloadAttestationError && e.code !== 'WORKLOAD_PROCESS_GONE' && failure instanceof WorkloadAttestationError) throw failure;
        throw e;
      }
      if (after !== before) {
        throw new WorkloadAttestationError('WORKLOAD_PID_REUSED', `pid ${pid} was reused during attestation (start time ${before} → ${after}); the caller is gone`);
      }
      if (failure !== undefined) {
        if (failure instanceof WorkloadAttestationError) throw failure;
        // Some /proc entries (the exe of a kernel thread) are ENOENT while the process runs.
        throw new WorkloadAttestationError('WORKLOAD_INSPECTION_FAILED', `cannot inspect pid ${pid}: ${(failure as Error).message}`, { cause: failure });
      }
      return selectors ?? [];
    },
  };
}

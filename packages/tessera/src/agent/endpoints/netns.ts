/**
 * Network namespace identity: a namespace is the nsfs inode its files
 * (`/proc/<pid>/ns/net`, a bind mount under /var/run/netns) resolve to, so
 * (st_dev, st_ino) of stat(2) names it exactly (namespaces(7), "The
 * /proc/[pid]/ns/ directory": two processes are in the same namespace iff
 * these are equal). Behind an interface so unit tests need no namespaces.
 */
import { statSync } from 'node:fs';
import { stat, statfs } from 'node:fs/promises';

/** (st_dev, st_ino) of a namespace file. */
export interface NetnsIdentity {
  readonly dev: bigint;
  readonly ino: bigint;
}

/** Whether two identities name the same namespace. */
export function sameNetns(a: NetnsIdentity, b: NetnsIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/** `dev:ino`, a map key. */
export function netnsKey(id: NetnsIdentity): string {
  return `${id.dev}:${id.ino}`;
}

/** What a namespace file resolves to. */
export interface NetnsFileInfo extends NetnsIdentity {
  /** Whether the file lives on nsfs, i.e. is a namespace file at all. */
  readonly isNamespace: boolean;
}

/**
 * The kernel-facing side of endpoint attestation. Errors are the raw fs
 * errors (`ENOENT`, `EACCES`); callers decide what they mean.
 */
export interface NetnsReader {
  /** The namespace file at `path` (stat follows the /proc magic link or bind mount). */
  inspect(path: string): Promise<NetnsFileInfo>;
  /** The network namespace of process `pid` (`/proc/<pid>/ns/net`). */
  ofProcess(pid: number): Promise<NetnsIdentity>;
  /** The namespace the agent itself runs in (the host's, normally). */
  ofSelf(): Promise<NetnsIdentity>;
}

/** statfs(2) f_type of nsfs (NSFS_MAGIC, include/uapi/linux/magic.h). */
const NSFS_MAGIC = 0x6e736673;

/** The real kernel, through `procRoot` (default /proc). */
export function linuxNetnsReader(procRoot = '/proc'): NetnsReader {
  const identify = async (path: string): Promise<NetnsIdentity> => {
    const st = await stat(path, { bigint: true });
    return { dev: st.dev, ino: st.ino };
  };
  return {
    async inspect(path) {
      const [id, fsInfo] = await Promise.all([identify(path), statfs(path)]);
      return { ...id, isNamespace: fsInfo.type === NSFS_MAGIC };
    },
    // Synchronous: /proc/<pid>/ns/net resolves in memory (procfs, nsfs) in microseconds, where a
    // thread-pool stat cost an eighth of the agent's CPU per Workload API call (every call
    // attests the caller's namespace). Registered paths (inspect) may live anywhere: async.
    ofProcess: (pid) => {
      try {
        const st = statSync(`${procRoot}/${pid}/ns/net`, { bigint: true });
        return Promise.resolve({ dev: st.dev, ino: st.ino });
      } catch (e) {
        return Promise.reject(e as Error);
      }
    },
    ofSelf: () => identify(`${procRoot}/self/ns/net`),
  };
}

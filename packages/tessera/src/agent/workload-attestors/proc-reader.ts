import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { ExecutableIdentity } from './executable-hash.js';

/**
 * The kernel-facing side of Unix workload attestation: the few /proc/<pid>
 * reads it needs, behind an interface so unit tests can inject processes
 * (and PID reuse) without spawning any. Errors are the raw fs errors; the
 * attestor decides what ENOENT/ESRCH mean.
 */
export interface ProcReader {
  /** Text of /proc/<pid>/stat. */
  stat(pid: number): Promise<string>;
  /** Text of /proc/<pid>/status. */
  status(pid: number): Promise<string>;
  /** Target of /proc/<pid>/exe (the executable's path; `" (deleted)"` appended if unlinked). */
  exePath(pid: number): Promise<string>;
  /**
   * The process's executable, opened through /proc/<pid>/exe — the very file
   * it runs even if the path was since replaced — for hashing.
   */
  openExe(pid: number): Promise<FileHandle>;
  /**
   * stat(2) of /proc/<pid>/exe, which follows the magic link to the file the
   * process runs (as {@link openExe} would open it), without opening it: lets
   * a cached hash be found with one syscall. Optional: readers without it always open.
   */
  exeStat?(pid: number): Promise<ExecutableIdentity>;
}

/** Runs a synchronous read as a promise (errors become rejections). */
function now<T>(read: () => T): Promise<T> {
  try {
    return Promise.resolve(read());
  } catch (e) {
    return Promise.reject(e as Error);
  }
}

/**
 * The real /proc of this pid namespace (`root` overridable, e.g. a host /proc
 * mounted elsewhere). /proc files are generated in memory, so they are read
 * synchronously: a few microseconds each, where an asynchronous read costs four
 * thread-pool round trips (open, fstat, read, close) and dominated a Workload API call.
 */
export function linuxProcReader(root = '/proc'): ProcReader {
  const p = (pid: number, file: string) => `${root}/${pid}/${file}`;
  return {
    stat: (pid) => now(() => readFileSync(p(pid, 'stat'), 'utf8')),
    status: (pid) => now(() => readFileSync(p(pid, 'status'), 'utf8')),
    exePath: (pid) => now(() => readlinkSync(p(pid, 'exe'))),
    openExe: (pid) => open(p(pid, 'exe'), 'r'),
    exeStat: (pid) => now(() => statSync(p(pid, 'exe'), { bigint: true })),
  };
}

/** What /proc/<pid>/stat says about a process's identity and liveness. */
export interface ProcStat {
  /** Field 3, one letter: `Z` (zombie) and `X` (dead) mean the process has exited. */
  readonly state: string;
  /**
   * Field 22, `starttime` (clock ticks after boot; proc(5)). A pid with the
   * same start time is the same process, so comparing it before and after
   * attestation detects PID reuse.
   */
  readonly startTime: bigint;
}

/**
 * Parses /proc/<pid>/stat. `comm` (field 2) may contain spaces and
 * parentheses, so fields are counted from the last `)`.
 * @returns undefined if the text is not a stat line.
 */
export function parseProcStat(statText: string): ProcStat | undefined {
  const close = statText.lastIndexOf(')');
  if (close < 0) return undefined;
  // After ") " come fields 3 (state), 4 (ppid), ...: field n is at index n - 3.
  const rest = statText.slice(close + 1).trim().split(/\s+/);
  const state = rest[0];
  const start = rest[22 - 3];
  if (state === undefined || !/^[A-Za-z]$/.test(state) || start === undefined || !/^\d+$/.test(start)) return undefined;
  return { state, startTime: BigInt(start) };
}

/** Field 22 of /proc/<pid>/stat (see {@link parseProcStat}), or undefined. */
export function parseStartTime(statText: string): bigint | undefined {
  return parseProcStat(statText)?.startTime;
}

/** The ids /proc/<pid>/status reports (proc(5)): effective uid/gid and the supplementary groups. */
export interface StatusIds {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
}

/**
 * Parses `Uid:`, `Gid:` (real, effective, saved, fs — the effective one is
 * used, like SPIRE) and `Groups:` from /proc/<pid>/status.
 * @returns undefined if a line is missing or malformed.
 */
export function parseStatusIds(statusText: string): StatusIds | undefined {
  // Only three of its ~55 lines are needed, on every Workload API call: look them up rather
  // than split the whole text. The last line with a key wins, as a line-by-line map would have it.
  const field = (key: string): string | undefined => {
    const tag = `${key}:`;
    const at = statusText.lastIndexOf(`\n${tag}`);
    const start = at >= 0 ? at + 1 + tag.length : statusText.startsWith(tag) ? tag.length : -1;
    if (start < 0) return undefined;
    const end = statusText.indexOf('\n', start);
    return statusText.slice(start, end < 0 ? undefined : end).trim();
  };
  const ids = (key: string) => {
    const v = field(key);
    if (v === undefined) return undefined;
    const parts = v === '' ? [] : v.split(/\s+/);
    return parts.every((x) => /^\d+$/.test(x)) ? parts.map(Number) : undefined;
  };
  const uids = ids('Uid');
  const gids = ids('Gid');
  const groups = ids('Groups');
  const uid = uids?.[1];
  const gid = gids?.[1];
  if (uid === undefined || gid === undefined || groups === undefined) return undefined;
  return { uid, gid, groups };
}

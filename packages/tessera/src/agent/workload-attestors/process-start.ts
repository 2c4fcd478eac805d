import { WorkloadAttestationError } from './errors.js';
import { parseProcStat, type ProcReader } from './proc-reader.js';

/** Whether a /proc read failed because the process is gone. */
export function isProcessGone(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'ENOENT' || code === 'ESRCH';
}

/** The WORKLOAD_PROCESS_GONE error for `pid`. */
export function processGone(pid: number, cause: unknown): WorkloadAttestationError {
  return new WorkloadAttestationError('WORKLOAD_PROCESS_GONE', `process ${pid} no longer exists or has exited (it left before attestation finished)`, { cause });
}

/**
 * The start time of process `pid` (field 22 of /proc/<pid>/stat), the
 * attestors' guard against pid reuse: read before and after everything else,
 * a change means the pid now names another process. A zombie counts as gone
 * (it keeps its pid but has left its namespaces and lost its exe).
 * @throws WorkloadAttestationError WORKLOAD_PROCESS_GONE, WORKLOAD_INSPECTION_FAILED
 */
export async function processStartTime(proc: ProcReader, pid: number): Promise<bigint> {
  let text: string;
  try {
    text = await proc.stat(pid);
  } catch (e) {
    if (isProcessGone(e)) throw processGone(pid, e);
    throw new WorkloadAttestationError('WORKLOAD_INSPECTION_FAILED', `cannot read /proc/${pid}/stat: ${(e as Error).message}`, { cause: e });
  }
  const stat = parseProcStat(text);
  if (stat === undefined) throw new WorkloadAttestationError('WORKLOAD_INSPECTION_FAILED', `/proc/${pid}/stat has no state and start time (fields 3, 22)`);
  if (stat.state === 'Z' || stat.state === 'X') throw processGone(pid, undefined);
  return stat.startTime;
}

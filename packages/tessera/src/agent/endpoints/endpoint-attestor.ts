import { processStartTime } from '../workload-attestors/process-start.js';
import { WorkloadAttestationError } from '../workload-attestors/errors.js';
import { linuxProcReader, type ProcReader } from '../workload-attestors/proc-reader.js';
import type { WorkloadAttestor } from '../workload-attestors/unix-attestor.js';
import { endpointKey, type Endpoint } from './endpoint.js';
import { dnsSubdomainProblem } from './names.js';
import { linuxNetnsReader, sameNetns, type NetnsIdentity, type NetnsReader } from './netns.js';
import type { EndpointRegistry } from './registry.js';
import { endpointSelectors } from './selectors.js';

export interface EndpointAttestorOptions {
  /** The registered endpoints (only `byNetns` is used). */
  readonly registry: Pick<EndpointRegistry, 'byNetns'>;
  /** This agent's node name, reported as `k8s:node-name:` (a DNS subdomain). */
  readonly nodeName: string;
  /** /proc access for the PID-reuse guard; default the real /proc. */
  readonly proc?: ProcReader;
  /** Namespace inspection; default the real kernel. */
  readonly netns?: NetnsReader;
}

/**
 * The `endpoint` workload attestor (issue 4, "Workload attestation"): the
 * caller's network namespace (st_dev, st_ino of /proc/<pid>/ns/net) picks
 * the endpoint registered for that namespace, whose metadata becomes
 * `k8s:ns:`, `k8s:sa:`, `k8s:pod-name:`, `k8s:pod-label:<k>:<v>` and
 * `k8s:node-name:` selectors ({@link endpointSelectors}).
 *
 * A caller in no registered namespace gets no selectors, not an error: other
 * attestors (unix) may still identify it. An endpoint whose namespace file
 * now resolves to another namespace (deleted and re-created) is ignored.
 *
 * PID reuse (spec/workload-api.md, caller identification): as in the unix
 * attestor, the process start time is read before and after the namespace;
 * if it changed the pid names another process and attestation fails.
 *
 * @throws WorkloadAttestationError WORKLOAD_PROCESS_GONE, WORKLOAD_PID_REUSED, WORKLOAD_INSPECTION_FAILED
 * @example
 * ```ts
 * const attestor = combineAttestors([unixAttestor(), endpointAttestor({ registry, nodeName: 'node-1' })]);
 * const selectors = await attestor.attest(peer.pid);
 * ```
 */
export function endpointAttestor(options: EndpointAttestorOptions): WorkloadAttestor {
  if (options === null || typeof options !== 'object') throw new TypeError('endpointAttestor: options are required');
  if (options.registry === null || typeof options.registry?.byNetns !== 'function') throw new TypeError('endpointAttestor: registry must be an EndpointRegistry');
  if (typeof options.nodeName !== 'string') throw new TypeError('endpointAttestor: nodeName must be a string');
  const problem = dnsSubdomainProblem(options.nodeName);
  if (problem !== undefined) throw new TypeError(`endpointAttestor: nodeName ${problem}`);
  const { registry, nodeName } = options;
  const proc = options.proc ?? linuxProcReader();
  const netns = options.netns ?? linuxNetnsReader();

  const startTime = (pid: number): Promise<bigint> => processStartTime(proc, pid);

  /** The endpoint of namespace `id`, re-checking that its file still names that namespace. */
  async function endpointOf(id: NetnsIdentity): Promise<Endpoint | undefined> {
    const live: Endpoint[] = [];
    for (const e of registry.byNetns(id)) {
      try {
        if (sameNetns(await netns.inspect(e.netnsPath), id)) live.push(e);
      } catch {
        // The namespace file is gone: the endpoint no longer describes anything.
      }
    }
    if (live.length > 1) {
      // The registry refuses this; if it happens anyway, no endpoint is the safe answer only if we say so.
      throw new WorkloadAttestationError('WORKLOAD_INSPECTION_FAILED', `network namespace ${id.dev}:${id.ino} is registered as several endpoints (${live.map(endpointKey).join(', ')})`);
    }
    return live[0];
  }

  return {
    name: 'endpoint',
    async attest(pid) {
      if (!Number.isSafeInteger(pid) || pid <= 0) {
        throw new WorkloadAttestationError('WORKLOAD_INSPECTION_FAILED', `pid must be a positive integer, got ${String(pid)}`);
      }
      const before = await startTime(pid);
      let id: NetnsIdentity | undefined;
      let failure: unknown;
      try {
        id = await netns.ofProcess(pid);
      } catch (e) {
        failure = e;
      }
      // Re-check even after a failure: ENOENT on ns/net means the process left, and "gone" vs "reused" matters.
      const after = await startTime(pid);
      if (after !== before) {
        throw new WorkloadAttestationError('WORKLOAD_PID_REUSED', `pid ${pid} was reused during attestation (start time ${before} → ${after}); the caller is gone`);
      }
      if (id === undefined) {
        throw new WorkloadAttestationError('WORKLOAD_INSPECTION_FAILED', `cannot read the network namespace of pid ${pid}: ${(failure as Error | undefined)?.message ?? 'unknown error'}`, { cause: failure });
      }
      const endpoint = await endpointOf(id);
      return endpoint === undefined ? [] : endpointSelectors(endpoint, nodeName);
    },
  };
}


import type { Selector } from '../../server/registration/index.js';
import type { WorkloadAttestor } from '../workload-attestors/unix-attestor.js';

/**
 * One attestor made of several (SPIRE runs every configured workload
 * attestor and unions their selectors): all run concurrently, selectors are
 * concatenated in attestor order without duplicates. If any attestor fails
 * the whole attestation fails with its error: a partial set of selectors
 * could match an entry meant for a caller we could not fully identify.
 *
 * @throws TypeError if `attestors` is empty or holds something that is not an attestor.
 * @example
 * ```ts
 * const attestor = combineAttestors([unixAttestor(), endpointAttestor({ registry, nodeName })]);
 * ```
 */
export function combineAttestors(attestors: readonly WorkloadAttestor[]): WorkloadAttestor {
  if (!Array.isArray(attestors) || attestors.length === 0) throw new TypeError('combineAttestors: give at least one attestor');
  for (const [i, a] of attestors.entries()) {
    if (a === null || typeof a !== 'object' || typeof a.attest !== 'function' || typeof a.name !== 'string') {
      throw new TypeError(`combineAttestors: attestors[${i}] is not a WorkloadAttestor ({ name, attest(pid) })`);
    }
  }
  const list = [...attestors];
  return {
    name: list.map((a) => a.name).join('+'),
    async attest(pid) {
      const results = await Promise.all(list.map((a) => a.attest(pid)));
      const seen = new Set<string>();
      const out: Selector[] = [];
      for (const sels of results) {
        for (const s of sels) {
          const key = `${s.type}:${s.value}`;
          if (seen.has(key)) continue;
          seen.add(key);
          out.push({ type: s.type, value: s.value });
        }
      }
      return out;
    },
  };
}

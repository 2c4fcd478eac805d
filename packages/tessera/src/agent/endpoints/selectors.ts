/**
 * The Kubernetes-style selectors of an endpoint, with the names and value
 * forms of SPIRE's k8s workload attestor (`k8s:ns:`, `k8s:sa:`,
 * `k8s:pod-name:`, `k8s:pod-label:<k>:<v>`, `k8s:node-name:`), so entries
 * written for SPIRE (`-selector k8s:ns:backend -selector k8s:sa:default`)
 * match workloads in registered network namespaces.
 */
import type { Selector } from '../../server/registration/index.js';
import type { ValidEndpointSpec } from './endpoint.js';

/** Selector type of every selector the `endpoint` attestor yields. */
export const K8S_SELECTOR_TYPE = 'k8s';

/**
 * Selectors of `endpoint` on node `nodeName`: ns, sa, pod-name, one
 * pod-label per label (sorted by key), node-name.
 *
 * @example
 * ```ts
 * endpointSelectors({ ...spec, namespace: 'backend', serviceAccount: 'default' }, 'node-1');
 * // [{type:'k8s',value:'ns:backend'}, {type:'k8s',value:'sa:default'}, …, {type:'k8s',value:'node-name:node-1'}]
 * ```
 */
export function endpointSelectors(endpoint: Pick<ValidEndpointSpec, 'name' | 'namespace' | 'serviceAccount' | 'labels'>, nodeName: string): Selector[] {
  const k8s = (value: string): Selector => ({ type: K8S_SELECTOR_TYPE, value });
  const labels = Object.keys(endpoint.labels)
    .sort()
    .map((k) => k8s(`pod-label:${k}:${endpoint.labels[k]}`));
  return [k8s(`ns:${endpoint.namespace}`), k8s(`sa:${endpoint.serviceAccount}`), k8s(`pod-name:${endpoint.name}`), ...labels, k8s(`node-name:${nodeName}`)];
}

/**
 * Workload endpoints: network namespaces registered with the agent (by a
 * CNI-like caller on its admin socket) and the `endpoint` workload attestor
 * that turns a caller's namespace into Kubernetes-style selectors.
 */
export { EndpointError, type EndpointErrorCode } from './errors.js';
export { DEFAULT_SERVICE_ACCOUNT, MAX_LABELS, endpointKey, validateEndpointSpec, type Endpoint, type EndpointSpec, type ValidEndpointSpec } from './endpoint.js';
export { dnsLabelProblem, dnsSubdomainProblem, interfaceNameProblem, ipProblem, labelKeyProblem, labelValueProblem } from './names.js';
export { linuxNetnsReader, netnsKey, sameNetns, type NetnsFileInfo, type NetnsIdentity, type NetnsReader } from './netns.js';
export { ENDPOINT_FILE_NAME, decodeEndpointFile, encodeEndpointFile } from './endpoint-file.js';
export { EndpointRegistry, type EndpointChange, type EndpointChangeListener, type EndpointRegistryOptions } from './registry.js';
export { K8S_SELECTOR_TYPE, endpointSelectors } from './selectors.js';
export { endpointAttestor, type EndpointAttestorOptions } from './endpoint-attestor.js';
export { combineAttestors } from './combine-attestors.js';

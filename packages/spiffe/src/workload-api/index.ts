/**
 * The SPIFFE Workload API client and live sources (go-spiffe's `workloadapi`).
 * @module
 */
export { parseWorkloadEndpoint, SPIFFE_ENDPOINT_SOCKET, type WorkloadEndpoint } from './address.js';
export { exponentialBackoff, type Backoff, type BackoffStrategy, type Sleep } from './backoff.js';
export {
  WorkloadApiClient,
  SECURITY_HEADER,
  type WorkloadApiClientOptions,
  type JwtSvidParams,
  type X509ContextWatcher,
  type JwtBundleWatcher,
  type X509BundleWatcher,
} from './client.js';
export { WorkloadApiError } from './errors.js';
export type { X509Context } from './parse.js';
export type { SourceOptions, SourceEvents } from './watched-source.js';
export { X509Source, type X509SourceOptions } from './x509-source.js';
export { JwtSource } from './jwt-source.js';
export { BundleSource } from './bundle-source.js';
/**
 * The Workload API's wire schema (messages and the `SpiffeWorkloadAPI`
 * service descriptor, generated from proto/workload/workload.proto), for
 * implementations of the server side such as Tessera's agent.
 */
export * as workloadApiWire from './gen/workload/workload_pb.js';

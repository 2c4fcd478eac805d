/**
 * `@tessera/spiffe`: SPIFFE for Node.js. Each part is also importable on its
 * own (`@tessera/spiffe/id`, `/bundle`, `/svid`, `/tls`, `/workload-api`, `/x509`, `/errors`,
 * `/testing`).
 * @module
 */
export * from './errors/index.js';
export * from './id/index.js';
export * from './bundle/index.js';
export * from './svid/index.js';
export * from './tls/index.js';
export * from './workload-api/index.js';

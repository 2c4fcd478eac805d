/**
 * The Agent API (gRPC over TLS): node attestation, agent SVID renewal, the
 * Sync push stream, workload SVID signing for entitled entries, JWT-SVIDs
 * and the bundle. See docs/agent-api.md.
 * @module
 */
export { startAgentApi, type AgentApiDeps, type AgentApiServer } from './start.js';
export { DEFAULT_LIMITS, type AgentApiLimits } from './service.js';

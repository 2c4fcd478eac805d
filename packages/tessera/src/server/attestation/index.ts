/**
 * Server-side node attestation (SPIRE's NodeAttestor plugins): `join_token`
 * and `x509pop`. An attestor turns the evidence an agent sends (and, for
 * x509pop, its answer to a challenge) into an agent ID and node selectors;
 * the Agent API then issues the agent SVID and stores the agent record.
 * @module
 */
export { AttestationError, type AttestationErrorCode } from './errors.js';
export type { NodeAttestor, AttestationStep, AttestationResult } from './node-attestor.js';
export { JoinTokenAttestor } from './join-token.js';
export {
  X509PopAttestor,
  X509POP_CHALLENGE_CONTEXT,
  X509POP_NONCE_BYTES,
  signX509popChallenge,
  x509popSignedData,
  x509popAgentId,
  type X509PopOptions,
} from './x509pop.js';

import type { Selector } from '../registration/index.js';

/** What a successful node attestation proves about the node. */
export interface AttestationResult {
  /** The agent SPIFFE ID: `spiffe://<td>/tessera/agent/<attestor>/<unique>`. */
  readonly agentId: string;
  /** The attestor's name, stored as the agent's attestation type. */
  readonly attestationType: string;
  /** Node selectors (node alias entries match on them). */
  readonly selectors: readonly Selector[];
  /** Whether the same node may attest again as the same agent (SPIRE's `can_reattest`). */
  readonly canReattest: boolean;
}

/**
 * One step of an attestation: either the result, or a challenge the agent
 * must answer (the answer leads to the next step). Multi-round protocols
 * chain challenges.
 */
export type AttestationStep =
  | { readonly kind: 'done'; readonly result: AttestationResult }
  | { readonly kind: 'challenge'; readonly challenge: Buffer; respond(answer: Uint8Array): Promise<AttestationStep> };

/**
 * A server-side node attestor (SPIRE's NodeAttestor plugin): turns the
 * evidence an agent sends into an agent ID and node selectors.
 * @throws AttestationError from `begin` or `respond`.
 */
export interface NodeAttestor {
  /** The `AttestationData.type` it handles, e.g. `join_token`. */
  readonly type: string;
  begin(payload: Uint8Array): Promise<AttestationStep>;
}

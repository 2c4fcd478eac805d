import type { TrustDomain } from '@tessera/spiffe/id';
import { DatastoreError, type JoinTokenStore } from '../datastore/index.js';
import { joinTokenAgentId, joinTokenSelector } from '../api/agent-admin.js';
import { denied, malformed } from './errors.js';
import type { AttestationStep, NodeAttestor } from './node-attestor.js';

const TOKEN = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * `join_token` attestation (SPIRE's join_token): the payload is a token the
 * operator generated; it is consumed atomically (one use, across every
 * server sharing the datastore). Agent ID
 * `spiffe://<td>/tessera/agent/join_token/<token>`, node selector
 * `join_token:<token>` (what `token generate -spiffeID` alias entries match).
 * A join-token agent can never re-attest: its token is gone.
 */
export class JoinTokenAttestor implements NodeAttestor {
  readonly type = 'join_token';
  readonly #tokens: Pick<JoinTokenStore, 'consumeJoinToken'>;
  readonly #td: TrustDomain;
  readonly #now: () => Date;

  constructor(tokens: Pick<JoinTokenStore, 'consumeJoinToken'>, trustDomain: TrustDomain, now: () => Date = () => new Date()) {
    this.#tokens = tokens;
    this.#td = trustDomain;
    this.#now = now;
  }

  async begin(payload: Uint8Array): Promise<AttestationStep> {
    let token: string;
    try {
      token = new TextDecoder('utf-8', { fatal: true }).decode(payload);
    } catch {
      throw malformed('join token is not UTF-8 text');
    }
    if (token.length === 0) throw malformed('join token is empty: pass the token from "tessera server token generate"');
    if (!TOKEN.test(token)) throw malformed('join token must be 1–128 characters of letters, digits, ".", "_" or "-"');
    try {
      await this.#tokens.consumeJoinToken(token, Math.floor(this.#now().getTime() / 1000));
    } catch (e) {
      if (e instanceof DatastoreError && e.code === 'NOT_FOUND') throw denied('join token does not exist or has already been used; generate a new one', e);
      if (e instanceof DatastoreError && e.code === 'EXPIRED') throw denied(`${e.message}; generate a new one`, e);
      if (e instanceof DatastoreError && e.code === 'INVALID') throw malformed(e.message, e);
      throw e;
    }
    return {
      kind: 'done',
      result: { agentId: joinTokenAgentId(this.#td, token), attestationType: this.type, selectors: [joinTokenSelector(token)], canReattest: false },
    };
  }
}

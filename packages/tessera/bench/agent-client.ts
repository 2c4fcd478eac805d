/**
 * A minimal Agent API client for benchmarks against a real server process:
 * connect-node over HTTP/2 + TLS, the server verified by its SPIFFE ID
 * (strict SVID verification against the trust bundle instead of hostname
 * checks), the agent SVID as client certificate once attested, join_token
 * attestation over the AttestAgent bidi stream, and a Sync stream reader that
 * assembles updates (messages up to `more = false`).
 *
 * Same patterns as test/integration/agent-api.test.ts, without node:test.
 */
import { X509Certificate, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { create } from '@bufbuild/protobuf';
import type { TrustDomain } from '@tessera/spiffe/id';
import { X509Bundle } from '@tessera/spiffe/bundle';
import { verifyX509Svid } from '@tessera/spiffe/svid';
import { buildCertificateRequest } from '@tessera/spiffe/x509';
import { AgentApi, AttestAgentRequestSchema, type AttestAgentRequest, type AttestAgentResponse_Result, type SyncResponse } from '../src/gen/tessera/v1/agent_pb.js';
import { serverId } from '../src/server/registration/index.js';
import { requestChannel } from '../src/grpc/request-channel.js';

/** Where the server is and what vouches for it. */
export interface AgentApiTarget {
  readonly trustDomain: TrustDomain;
  readonly host: string;
  readonly port: number;
  /** The trust domain's X.509 authorities (DER), e.g. from BundleAdmin.GetBundle over the Admin socket. */
  readonly roots: readonly Uint8Array[];
}

export interface AgentCreds {
  readonly certificates: readonly Uint8Array[];
  readonly key: KeyObject;
}

export interface Attested extends AgentCreds {
  readonly result: AttestAgentResponse_Result;
}

const pem = (der: Uint8Array): string => new X509Certificate(der).toString();

/** An Agent API client; with `creds`, it authenticates with the agent SVID (one HTTP/2 connection per client). */
export function agentClient(target: AgentApiTarget, creds?: AgentCreds): Client<typeof AgentApi> {
  const bundle = new X509Bundle(target.trustDomain, target.roots);
  const expected = serverId(target.trustDomain.name);
  return createClient(
    AgentApi,
    createGrpcTransport({
      baseUrl: `https://${target.host}:${target.port}`,
      nodeOptions: {
        ca: target.roots.map(pem),
        ...(creds ? { cert: creds.certificates.map(pem).join(''), key: creds.key.export({ type: 'pkcs8', format: 'pem' }) } : {}),
        checkServerIdentity: (_host: string, cert: { raw: Buffer }) => {
          try {
            const { id } = verifyX509Svid([cert.raw], bundle);
            return id.toString() === expected ? undefined : new Error(`unexpected server ID ${id.toString()}`);
          } catch (e) {
            return e as Error;
          }
        },
      },
    }),
  );
}

export { requestChannel };

/** join_token attestation: a fresh P-256 key, a CSR without SAN, the token as payload. */
export async function attestJoinToken(target: AgentApiTarget, token: string): Promise<Attested> {
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const reqs = requestChannel<AttestAgentRequest>();
  reqs.push(create(AttestAgentRequestSchema, { step: { case: 'params', value: { data: { type: 'join_token', payload: Buffer.from(token) }, csr: buildCertificateRequest(key, {}) } } }));
  try {
    for await (const res of agentClient(target).attestAgent(reqs)) {
      if (res.step.case === 'result') return { result: res.step.value, certificates: res.step.value.svid, key };
      throw new Error(`unexpected AttestAgent step ${String(res.step.case)}`);
    }
  } finally {
    reqs.end();
  }
  throw new Error('AttestAgent ended without a result');
}

/** One assembled Sync update. */
export interface SyncUpdate {
  /** performance.now() when the first / last message of the update arrived. */
  readonly firstAt: number;
  readonly at: number;
  readonly messages: number;
  readonly full: boolean;
  readonly revision: bigint;
  readonly entries: number;
}

/**
 * Reads a Sync stream in the background. Keeps the entitled entry IDs, when
 * each entry ID was last upserted (`arrivals`), and the updates' timings.
 */
export class SyncStream {
  readonly openedAt = performance.now();
  readonly updates: SyncUpdate[] = [];
  /** Entry ID → performance.now() of the update that upserted it (the last message of that update). */
  readonly arrivals = new Map<string, number>();
  readonly entryIds = new Set<string>();
  error: unknown;
  ended = false;
  readonly #abort = new AbortController();
  #waiters = new Set<() => void>();

  constructor(client: Client<typeof AgentApi>) {
    void this.#run(client);
  }

  async #run(client: Client<typeof AgentApi>): Promise<void> {
    let cur: SyncResponse[] = [];
    let firstAt = 0;
    try {
      for await (const m of client.sync({}, { signal: this.#abort.signal })) {
        if (cur.length === 0) firstAt = performance.now();
        cur.push(m);
        if (m.more) continue;
        const at = performance.now();
        const full = cur[0]!.full;
        if (full) this.entryIds.clear();
        let entries = 0;
        for (const msg of cur) {
          for (const e of msg.upsertedEntries) {
            this.entryIds.add(e.id);
            this.arrivals.set(e.id, at);
            entries++;
          }
          for (const id of msg.removedEntryIds) this.entryIds.delete(id);
        }
        this.updates.push({ firstAt, at, messages: cur.length, full, revision: cur[0]!.revision, entries });
        cur = [];
        this.#notify();
      }
    } catch (e) {
      if (!this.#abort.signal.aborted) this.error = e;
    }
    this.ended = true;
    this.#notify();
  }

  #notify(): void {
    for (const w of this.#waiters) w();
  }

  /** Resolves once `cond()` holds; rejects on timeout or when the stream ends first. */
  async waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!cond()) {
      if (this.ended) throw new Error(`Sync stream ended while waiting for ${what}${this.error ? `: ${String(this.error)}` : ''}`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((r) => {
        const done = (): void => {
          clearTimeout(t);
          this.#waiters.delete(done);
          r();
        };
        const t = setTimeout(done, left);
        this.#waiters.add(done);
      });
    }
  }

  close(): void {
    this.#abort.abort();
  }
}

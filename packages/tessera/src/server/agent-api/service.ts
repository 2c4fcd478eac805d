import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import type { TrustDomain } from '@tessera/spiffe/id';
import { Certificate, MAX_CERTIFICATE_REQUEST_BYTES, parseCertificateRequest } from '@tessera/spiffe/x509';
import {
  AgentApi,
  AttestAgentResponseSchema,
  BatchNewX509SvidResponse_ResultSchema,
  type AttestAgentRequest,
  type AttestAgentResponse,
  type BatchNewX509SvidResponse_Result,
  type NewX509SvidParams,
} from '../../gen/tessera/v1/agent_pb.js';
import { StatusSchema } from '../../gen/tessera/v1/types_pb.js';
import type { Datastore, RegistrationEntry } from '../datastore/index.js';
import type { ServerCa } from '../ca/index.js';
import type { NodeAttestor, AttestationStep } from '../attestation/index.js';
import type { Logger } from '../../observe/logger.js';
import type { MetricsRegistry } from '../../observe/metrics.js';
import type { AgentAuthenticator, AuthenticatedAgent } from './authenticate.js';
import type { SyncHub } from './sync-hub.js';
import { agentApiError, invalidArgument, permissionDenied } from './errors.js';

/** Request limits of the Agent API (beyond the transport's message size limit). */
export interface AgentApiLimits {
  /** Most items in one BatchNewX509Svid call. */
  readonly maxBatchSize: number;
  /** Most audiences in one NewJwtSvid call, and the longest one (characters). */
  readonly maxAudiences: number;
  readonly maxAudienceLength: number;
  /** How long AttestAgent waits for each message of the agent (ms). */
  readonly attestStepTimeoutMs: number;
}

export const DEFAULT_LIMITS: AgentApiLimits = { maxBatchSize: 500, maxAudiences: 32, maxAudienceLength: 512, attestStepTimeoutMs: 30_000 };

export interface AgentApiServiceDeps {
  readonly trustDomain: TrustDomain;
  readonly datastore: Datastore;
  readonly ca: ServerCa;
  readonly hub: SyncHub;
  readonly auth: AgentAuthenticator;
  readonly attestors: ReadonlyMap<string, NodeAttestor>;
  readonly agentSvidTtlSeconds: number;
  readonly limits: AgentApiLimits;
  readonly logger?: Logger | undefined;
  readonly metrics?: MetricsRegistry | undefined;
}

const seconds = (d: Date): bigint => BigInt(Math.floor(d.getTime() / 1000));

/** Checks a CSR's presence and size; the CA verifies the rest (signature, key type, URI SAN). */
function checkCsr(csr: Uint8Array, field: string): void {
  if (csr.length === 0) throw invalidArgument(`${field} is required: a DER PKCS#10 request made with a key that never leaves the node`);
  if (csr.length > MAX_CERTIFICATE_REQUEST_BYTES) throw invalidArgument(`${field} is larger than ${MAX_CERTIFICATE_REQUEST_BYTES} bytes`);
}

/** Rejects after `ms` unless `p` settles first. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new ConnectError(`timed out after ${ms} ms waiting for ${what}`, Code.DeadlineExceeded)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** The Agent API's handlers. Every call but AttestAgent starts by authenticating the agent. */
export function agentApiService(d: AgentApiServiceDeps): ServiceImpl<typeof AgentApi> {
  const { datastore: ds, ca, hub, auth, limits } = d;
  const signed = (kind: 'x509' | 'jwt' | 'agent_x509', n = 1): void => d.metrics?.inc('tessera_server_svid_signings_total', 'SVIDs signed', { kind, api: 'agent' }, n);
  const fail = (e: unknown, ctx: HandlerContext): ConnectError => agentApiError(e, d.logger, ctx.method.name);

  /**
   * The entries `agent` may sign for among `ids`. The shared index follows
   * the change feed a few milliseconds behind commits; when an ID is missing,
   * wait for it to catch up once before refusing.
   */
  const entitledAmong = async (agent: AuthenticatedAgent, ids: readonly string[]): Promise<ReadonlyMap<string, RegistrationEntry>> => {
    let m = hub.entitledById(agent.identity);
    if (ids.some((id) => id !== '' && !m.has(id))) {
      await hub.catchUp();
      m = hub.entitledById(agent.identity);
    }
    return m;
  };

  const notEntitled = (id: string, agent: AuthenticatedAgent): ConnectError =>
    permissionDenied(`entry "${id}" does not exist or agent "${agent.spiffeId}" is not entitled to it`);

  async function* attest(requests: AsyncIterable<AttestAgentRequest>): AsyncGenerator<AttestAgentResponse> {
    const it = requests[Symbol.asyncIterator]();
    const next = async (what: string): Promise<AttestAgentRequest> => {
      const r = await within(it.next(), limits.attestStepTimeoutMs, what);
      if (r.done) throw invalidArgument(`the stream ended before ${what}`);
      return r.value;
    };
    const first = await next('the attestation parameters');
    if (first.step.case !== 'params') throw invalidArgument('the first AttestAgent message must carry "params" (attestation data and CSR)');
    const { data, csr } = first.step.value;
    if (!data || data.type === '') throw invalidArgument('params.data.type is required (e.g. "join_token" or "x509pop")');
    const attestor = d.attestors.get(data.type);
    if (!attestor) throw invalidArgument(`attestation type "${data.type}" is not enabled on this server (enabled: ${[...d.attestors.keys()].join(', ')})`);
    // The CSR is checked before the evidence is consumed: a bad CSR must not burn a join token.
    checkCsr(csr, 'params.csr');
    let uris: readonly string[];
    try {
      uris = parseCertificateRequest(csr).uris;
    } catch (e) {
      throw invalidArgument(`invalid CSR: ${(e as Error).message}`);
    }
    let step: AttestationStep = await attestor.begin(data.payload);
    while (step.kind === 'challenge') {
      yield create(AttestAgentResponseSchema, { step: { case: 'challenge', value: step.challenge } });
      const answer = await next('the challenge response');
      if (answer.step.case !== 'challengeResponse') throw invalidArgument('expected a challenge response');
      step = await step.respond(answer.step.value);
    }
    const r = step.result;
    if (uris.length > 0 && (uris.length !== 1 || uris[0] !== r.agentId)) {
      throw invalidArgument(`the CSR asks for URI SAN ${uris.map((u) => JSON.stringify(u)).join(', ')} but this node attests as "${r.agentId}"`);
    }
    const existing = await ds.getAgent(r.agentId);
    if (existing?.banned) throw permissionDenied(`agent "${r.agentId}" is banned`);
    if (existing && !(existing.canReattest && r.canReattest)) {
      throw permissionDenied(`agent "${r.agentId}" is already attested and "${r.attestationType}" does not allow re-attestation; evict it first`);
    }
    const svid = await ca.signX509Svid({ spiffeId: r.agentId, csr, ttlSeconds: d.agentSvidTtlSeconds });
    signed('agent_x509');
    const serial = new Certificate(svid.certificates[0]!).serialHex;
    const record = { attestationType: r.attestationType, certSerial: serial, certExpiresAt: Number(seconds(svid.expiresAt)), newCertSerial: '', newCertExpiresAt: 0, selectors: r.selectors, canReattest: r.canReattest };
    if (existing) await ds.updateAgent(r.agentId, record);
    else await ds.createAgent({ spiffeId: r.agentId, ...record });
    d.logger?.info('agent attested', { agent: r.agentId, attestationType: r.attestationType, reattested: existing !== undefined });
    yield create(AttestAgentResponseSchema, {
      step: { case: 'result', value: { spiffeId: r.agentId, svid: svid.certificates, expiresAt: seconds(svid.expiresAt), bundle: hub.ownBundle(), reattested: existing !== undefined } },
    });
  }

  /** One result per param, in order: the entitled ones signed as one batch (the CA verifies their CSRs on other cores meanwhile). */
  const signBatch = async (agent: AuthenticatedAgent, entitled: ReadonlyMap<string, RegistrationEntry>, params: readonly NewX509SvidParams[]): Promise<BatchNewX509SvidResponse_Result[]> => {
    const failed = (entryId: string, e: unknown): BatchNewX509SvidResponse_Result => {
      const c = agentApiError(e, d.logger, 'BatchNewX509Svid');
      return create(BatchNewX509SvidResponse_ResultSchema, { status: create(StatusSchema, { code: c.code, message: c.rawMessage }), entryId });
    };
    const results = new Array<BatchNewX509SvidResponse_Result>(params.length);
    const toSign: { index: number; entry: RegistrationEntry; csr: Uint8Array }[] = [];
    params.forEach((p, index) => {
      try {
        if (p.entryId === '') throw invalidArgument('entry_id is required');
        const entry = entitled.get(p.entryId);
        if (!entry) throw notEntitled(p.entryId, agent);
        checkCsr(p.csr, 'csr');
        toSign.push({ index, entry, csr: p.csr });
      } catch (e) {
        results[index] = failed(p.entryId, e);
      }
    });
    const signedAll = await ca.signX509SvidBatch(toSign.map(({ entry, csr }) => ({ spiffeId: entry.spiffeId, csr, ttlSeconds: entry.x509SvidTtl, dnsNames: entry.dnsNames })));
    signedAll.forEach((s, k) => {
      const { index, entry } = toSign[k]!;
      results[index] =
        s.status === 'fulfilled'
          ? create(BatchNewX509SvidResponse_ResultSchema, {
              status: create(StatusSchema, { code: 0, message: 'OK' }),
              entryId: entry.id,
              spiffeId: entry.spiffeId,
              svid: s.value.certificates,
              expiresAt: seconds(s.value.expiresAt),
            })
          : failed(entry.id, s.reason);
    });
    return results;
  };

  return {
    async *attestAgent(requests, ctx) {
      try {
        yield* attest(requests);
      } catch (e) {
        const err = fail(e, ctx);
        // Operators want to see refused nodes (wrong token, untrusted certificate).
        if (err.code === Code.PermissionDenied || err.code === Code.InvalidArgument) d.logger?.warn('agent attestation refused', { code: Code[err.code], reason: err.rawMessage });
        throw err;
      }
    },

    async renewAgent(req, ctx) {
      try {
        const agent = await auth.authenticate(ctx);
        checkCsr(req.csr, 'csr');
        const s = await ca.signX509Svid({ spiffeId: agent.spiffeId, csr: req.csr, ttlSeconds: d.agentSvidTtlSeconds });
        signed('agent_x509');
        // The new serial becomes current the first time the agent uses it (AgentAuthenticator).
        await ds.updateAgent(agent.spiffeId, { newCertSerial: new Certificate(s.certificates[0]!).serialHex, newCertExpiresAt: Number(seconds(s.expiresAt)) });
        return { svid: s.certificates, expiresAt: seconds(s.expiresAt) };
      } catch (e) {
        throw fail(e, ctx);
      }
    },

    async *sync(_req, ctx) {
      let agent: AuthenticatedAgent;
      try {
        agent = await auth.authenticate(ctx);
      } catch (e) {
        throw fail(e, ctx);
      }
      const sub = hub.subscribe(agent.identity, agent.serial, agent.expiresAt);
      const onAbort = (): void => sub.close();
      ctx.signal.addEventListener('abort', onAbort);
      d.metrics?.set('tessera_server_agent_sync_streams', 'Open agent Sync streams', hub.streams);
      try {
        let full = true;
        while (await sub.next()) {
          for (const m of hub.update(sub, full)) yield m;
          full = false;
        }
      } catch (e) {
        throw fail(e, ctx);
      } finally {
        ctx.signal.removeEventListener('abort', onAbort);
        hub.unsubscribe(sub);
        d.metrics?.set('tessera_server_agent_sync_streams', 'Open agent Sync streams', hub.streams);
      }
    },

    async batchNewX509Svid(req, ctx) {
      try {
        const agent = await auth.authenticate(ctx);
        if (req.params.length === 0) throw invalidArgument('params must hold at least one {entry_id, csr}');
        if (req.params.length > limits.maxBatchSize) throw invalidArgument(`at most ${limits.maxBatchSize} SVIDs may be requested in one call, got ${req.params.length}`);
        const entitled = await entitledAmong(agent, req.params.map((p) => p.entryId));
        const results = await signBatch(agent, entitled, req.params);
        const ok = results.filter((r) => r.status?.code === 0).length;
        if (ok > 0) signed('x509', ok);
        return { results };
      } catch (e) {
        throw fail(e, ctx);
      }
    },

    async newJwtSvid(req, ctx) {
      try {
        const agent = await auth.authenticate(ctx);
        if (req.entryId === '') throw invalidArgument('entry_id is required');
        if (req.audience.length === 0) throw invalidArgument('at least one audience is required (JWT-SVID §3: "aud" is required)');
        if (req.audience.length > limits.maxAudiences) throw invalidArgument(`at most ${limits.maxAudiences} audiences are allowed`);
        for (const a of req.audience) {
          if (a === '' || a.length > limits.maxAudienceLength) throw invalidArgument(`each audience must be 1–${limits.maxAudienceLength} characters`);
        }
        const e = (await entitledAmong(agent, [req.entryId])).get(req.entryId);
        if (!e) throw notEntitled(req.entryId, agent);
        const s = ca.signJwtSvid({ spiffeId: e.spiffeId, audience: req.audience, ttlSeconds: e.jwtSvidTtl });
        signed('jwt');
        return { token: s.token, expiresAt: seconds(s.expiresAt), spiffeId: e.spiffeId };
      } catch (e) {
        throw fail(e, ctx);
      }
    },

    async getBundle(_req, ctx) {
      try {
        await auth.authenticate(ctx);
        return hub.ownBundle();
      } catch (e) {
        throw fail(e, ctx);
      }
    },
  };
}

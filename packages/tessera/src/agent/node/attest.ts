import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import type { SpiffeBundle } from '@tessera/spiffe/bundle';
import { parsePrivateKey } from '@tessera/spiffe/svid';
import { buildCertificateRequest, parsePemCertificates } from '@tessera/spiffe/x509';
import { AttestAgentRequestSchema, type AttestAgentRequest } from '../../gen/tessera/v1/agent_pb.js';
import { signX509popChallenge } from '../../server/attestation/x509pop.js';
import { requestChannel } from '../../grpc/request-channel.js';
import type { NodeAttestationConfig } from '../config.js';
import { AgentError } from '../errors.js';
import { newWorkloadKey } from '../svid/workload-keys.js';
import { bundleFromProto } from './bundle-proto.js';
import { agentSvidFrom, type AgentSvid } from './identity-store.js';
import { isServerUnavailable, isUntrustedServer, type ServerConnection } from './server-connection.js';

/** How long one attestation exchange may take. */
const ATTEST_TIMEOUT_MS = 10_000;

/** The outcome of node attestation. */
export interface NodeAttestation {
  readonly svid: AgentSvid;
  readonly bundle: SpiffeBundle;
  readonly reattested: boolean;
}

async function evidence(config: NonNullable<NodeAttestationConfig>): Promise<{ type: string; payload: Buffer; nodeKey?: KeyObject }> {
  if (config.type === 'join_token') return { type: 'join_token', payload: Buffer.from(config.token, 'utf8') };
  try {
    const certs = parsePemCertificates(await readFile(config.certFile));
    if (certs.length === 0) throw new Error('no certificate in the file');
    const nodeKey = parsePrivateKey(await readFile(config.keyFile));
    return { type: 'x509pop', payload: Buffer.concat(certs.map((c) => c.der)), nodeKey };
  } catch (e) {
    throw new AgentError('AGENT_BOOTSTRAP_INVALID', `x509pop: cannot load ${config.certFile} / ${config.keyFile}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Node attestation over the Agent API's AttestAgent stream (join_token, or
 * x509pop's challenge–response): a new agent key is made here, the server
 * signs its CSR. Tries every server address once.
 *
 * @throws AgentError AGENT_ATTESTATION_FAILED (refused), AGENT_SERVER_UNTRUSTED,
 *   AGENT_SERVER_UNREACHABLE (no address answered), AGENT_BOOTSTRAP_INVALID
 */
export async function attestNode(conn: ServerConnection, config: NonNullable<NodeAttestationConfig>, addresses: number): Promise<NodeAttestation> {
  const ev = await evidence(config);
  // The agent's key is made here; only its CSR leaves the node.
  const key = await newWorkloadKey('ec-p256');
  const csr = buildCertificateRequest(key, {});
  let lastError: unknown;
  for (let attempt = 0; attempt < addresses; attempt++) {
    const reqs = requestChannel<AttestAgentRequest>();
    // connect's own deadline timer outlives a stream left early; an abort signal ends it cleanly.
    const ac = new AbortController();
    reqs.push(create(AttestAgentRequestSchema, { step: { case: 'params', value: { data: { type: ev.type, payload: ev.payload }, csr } } }));
    try {
      for await (const res of conn.client().attestAgent(reqs, { signal: AbortSignal.any([ac.signal, AbortSignal.timeout(ATTEST_TIMEOUT_MS)]), timeoutMs: 0 })) {
        if (res.step.case === 'challenge') {
          if (ev.nodeKey === undefined) throw new AgentError('AGENT_ATTESTATION_FAILED', `the server sent a challenge to a ${ev.type} attestation`);
          reqs.push(create(AttestAgentRequestSchema, { step: { case: 'challengeResponse', value: signX509popChallenge(ev.nodeKey, res.step.value) } }));
          continue;
        }
        if (res.step.case !== 'result') continue;
        const r = res.step.value;
        if (r.bundle === undefined) throw new AgentError('AGENT_ATTESTATION_FAILED', 'the server answered without a trust bundle');
        return { svid: agentSvidFrom(r.svid, key), bundle: bundleFromProto(r.bundle), reattested: r.reattested };
      }
      throw new AgentError('AGENT_ATTESTATION_FAILED', 'the server ended attestation without a result');
    } catch (e) {
      if (e instanceof AgentError) throw e;
      if (isUntrustedServer(e)) throw new AgentError('AGENT_SERVER_UNTRUSTED', `server ${conn.addressString} is not trusted by the bootstrap bundle (is -trustBundle this trust domain's?): ${ConnectError.from(e).rawMessage.replace(/^server not trusted: /, '')}`, { cause: e });
      if (!isServerUnavailable(e)) {
        const ce = ConnectError.from(e);
        throw new AgentError('AGENT_ATTESTATION_FAILED', `node attestation (${ev.type}) refused by ${conn.addressString}: ${ce.rawMessage} (${Code[ce.code]})`, { cause: e });
      }
      lastError = e;
      conn.failover();
    } finally {
      reqs.end();
      ac.abort();
    }
  }
  throw new AgentError('AGENT_SERVER_UNREACHABLE', `no server answered (${ConnectError.from(lastError).rawMessage})`, { cause: lastError });
}

import type { TLSSocket } from 'node:tls';
import type { Http2ServerRequest } from 'node:http2';
import { Code, ConnectError, createContextKey, createContextValues, type ContextValues, type HandlerContext } from '@connectrpc/connect';
import type { TrustDomain } from '@tessera/spiffe/id';
import type { X509BundleSource } from '@tessera/spiffe/bundle';
import { verifyX509Svid, type VerifiedX509Svid } from '@tessera/spiffe/svid';
import { peerCertificates } from '@tessera/spiffe/tls';
import { Certificate } from '@tessera/spiffe/x509';
import type { AttestedAgent, Datastore } from '../datastore/index.js';
import type { AgentIdentity } from '../registration/index.js';
import { permissionDenied } from './errors.js';

/** Reads the TLS client's certificates, leaf first (DER); with `false`, the leaf only. */
type PeerChainReader = (withIntermediates: boolean) => Buffer[];

const PEER_CHAIN = createContextKey<PeerChainReader | undefined>(undefined, { description: 'TLS client certificate chain of the request' });

/**
 * The adapter's `contextValues`: gives handlers the TLS client certificate of
 * the request's connection. The HTTP/2 request's socket is a proxy that
 * forwards reads to the session's TLS socket.
 */
export function peerContextValues(req: unknown): ContextValues {
  const values = createContextValues();
  const socket = (req as Http2ServerRequest).socket as TLSSocket | undefined;
  values.set(PEER_CHAIN, (withIntermediates) => (socket && typeof socket.getPeerCertificate === 'function' ? peerCertificates(socket, withIntermediates) : []));
  return values;
}

/** An agent the caller proved to be. */
export interface AuthenticatedAgent {
  readonly spiffeId: string;
  readonly record: AttestedAgent;
  /** For entitlement: ID and node selectors. */
  readonly identity: AgentIdentity;
  /** Serial (lowercase hex) of the SVID presented on this connection. */
  readonly serial: string;
  /** NotAfter of that SVID. */
  readonly expiresAt: Date;
}

/** The agent ID prefix every attestor uses (`spiffe://<td>/tessera/agent/<attestor>/<unique>`). */
const AGENT_PATH_PREFIX = '/tessera/agent/';

/**
 * Authenticates Agent API callers (SPIRE's agent authentication): the TLS
 * client certificate must be an X509-SVID of this trust domain that
 * verifies against the current bundle, its ID an agent ID, the agent
 * attested and not banned, and its serial the agent's current SVID serial
 * or the one issued by the last renewal. The first use of a renewed SVID
 * makes it current (the previous one stops working).
 */
export class AgentAuthenticator {
  readonly #td: TrustDomain;
  readonly #ds: Datastore;
  readonly #bundle: () => X509BundleSource;
  readonly #now: () => Date;

  constructor(td: TrustDomain, ds: Datastore, bundle: () => X509BundleSource, now: () => Date) {
    this.#td = td;
    this.#ds = ds;
    this.#bundle = bundle;
    this.#now = now;
  }

  /**
   * @throws ConnectError UNAUTHENTICATED (no or unverifiable certificate),
   * PERMISSION_DENIED (not an agent, not attested, banned, stale serial).
   */
  async authenticate(ctx: HandlerContext): Promise<AuthenticatedAgent> {
    const read = ctx.values.get(PEER_CHAIN);
    const leaf = read ? read(false) : [];
    if (leaf.length === 0) {
      throw new ConnectError('no client certificate: present the agent SVID (only AttestAgent may be called without one)', Code.Unauthenticated);
    }
    const verified = this.#verify(leaf, read!);
    const id = verified.id;
    return this.#agent(id, leaf);
  }

  /**
   * The caller's verified X509-SVID ID, for APIs other than the Agent API
   * (the Admin API reached over TCP with an admin SVID).
   * @throws ConnectError UNAUTHENTICATED without a verifiable SVID.
   */
  callerId(values: ContextValues): string {
    const read = values.get(PEER_CHAIN);
    const leaf = read ? read(false) : [];
    if (leaf.length === 0) throw new ConnectError('no client certificate: the Admin API over TCP needs an admin X509-SVID', Code.Unauthenticated);
    return this.#verify(leaf, read!).id.toString();
  }

  async #agent(id: VerifiedX509Svid['id'], leaf: Buffer[]): Promise<AuthenticatedAgent> {
    if (!id.memberOf(this.#td) || !id.path.startsWith(AGENT_PATH_PREFIX)) {
      throw permissionDenied(`caller "${id.toString()}" is not an agent of trust domain "${this.#td.name}" (expected spiffe://${this.#td.name}${AGENT_PATH_PREFIX}…)`);
    }
    const spiffeId = id.toString();
    const leafCert = new Certificate(leaf[0]!);
    const serial = leafCert.serialHex;
    let record = await this.#ds.getAgent(spiffeId);
    if (!record) throw permissionDenied(`agent "${spiffeId}" is not attested (evicted or never attested): attest again`);
    if (record.banned) throw permissionDenied(`agent "${spiffeId}" is banned`);
    if (serial !== record.certSerial) {
      if (serial === '' || serial !== record.newCertSerial) {
        throw permissionDenied(`the SVID presented by agent "${spiffeId}" (serial ${serial}) is not its current one: it was superseded by a renewal or re-attestation`);
      }
      // SPIRE's semantics: a renewed SVID becomes current the first time it is used.
      record = await this.#ds.updateAgent(spiffeId, { certSerial: record.newCertSerial, certExpiresAt: record.newCertExpiresAt, newCertSerial: '', newCertExpiresAt: 0 });
    }
    return { spiffeId, record, identity: { spiffeId, selectors: record.selectors }, serial, expiresAt: leafCert.notAfter };
  }

  #verify(leaf: Buffer[], read: PeerChainReader): VerifiedX509Svid {
    const bundle = this.#bundle();
    const time = this.#now();
    try {
      return verifyX509Svid(leaf, bundle, { time });
    } catch (first) {
      const full = read(true);
      if (full.length > 1) {
        try {
          return verifyX509Svid(full, bundle, { time });
        } catch (e) {
          throw new ConnectError(`client certificate rejected: ${(e as Error).message}`, Code.Unauthenticated);
        }
      }
      throw new ConnectError(`client certificate rejected: ${(first as Error).message}`, Code.Unauthenticated);
    }
  }
}

import { createHash, randomBytes, sign, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TrustDomain } from '@tessera/spiffe/id';
import { Certificate, KeyUsage, parseDerCertificates, parsePemCertificates } from '@tessera/spiffe/x509';
import type { Selector } from '../registration/index.js';
import { denied, malformed } from './errors.js';
import type { AttestationStep, NodeAttestor } from './node-attestor.js';

/**
 * Prefixed to the nonce before signing, so a proof of possession can never
 * be replayed as a signature in another protocol (TLS, JWT, CSR) and vice
 * versa.
 */
export const X509POP_CHALLENGE_CONTEXT = Buffer.from('tessera-x509pop-challenge-v1\0', 'latin1');

/** Nonce length of an x509pop challenge (bytes). */
export const X509POP_NONCE_BYTES = 32;

const MAX_PAYLOAD_BYTES = 64 * 1024;
const MAX_CHAIN = 8;
const MAX_SIGNATURE_BYTES = 2048;
const OID_CN = '2.5.4.3';

/** The bytes the node key signs: context string, then the nonce. */
export function x509popSignedData(nonce: Uint8Array): Buffer {
  return Buffer.concat([X509POP_CHALLENGE_CONTEXT, nonce]);
}

function digestFor(key: KeyObject): string | null {
  switch (key.asymmetricKeyType) {
    case 'ec':
    case 'rsa':
      return 'sha256';
    case 'ed25519':
      return null;
    default:
      throw malformed(`x509pop: unsupported node key type "${String(key.asymmetricKeyType)}" (use EC, RSA or Ed25519)`);
  }
}

/**
 * The agent side of the proof of possession: signs the server's nonce with
 * the node key (ECDSA or RSA PKCS#1 v1.5 over SHA-256, or Ed25519).
 */
export function signX509popChallenge(nodeKey: KeyObject, nonce: Uint8Array): Buffer {
  return sign(digestFor(nodeKey), x509popSignedData(nonce), nodeKey);
}

/** The agent ID of a node certificate: `spiffe://<td>/tessera/agent/x509pop/<SHA-1 of the leaf DER, hex>` (SPIRE's default). */
export function x509popAgentId(td: TrustDomain, leafDer: Uint8Array): string {
  return `spiffe://${td.name}/tessera/agent/x509pop/${createHash('sha1').update(leafDer).digest('hex')}`;
}

/** Options of {@link X509PopAttestor}. */
export interface X509PopOptions {
  readonly trustDomain: TrustDomain;
  /** The CA certificates node certificates must chain to (DER or PEM text). */
  readonly caCertificates: readonly Uint8Array[] | string;
  readonly now?: () => Date;
  /** Source of challenge nonces (tests inject it). */
  readonly randomBytes?: (n: number) => Buffer;
}

interface VerifiedNode {
  readonly leaf: Certificate;
  /** The CA certificates of the verified path, issuer of the leaf first, ending with the configured root. */
  readonly cas: readonly Certificate[];
}

/**
 * `x509pop` attestation (SPIRE's x509pop): the agent sends its node
 * certificate chain; the server checks it chains to a configured CA (RFC 5280
 * path building with `node:crypto`: issuer/subject and key identifiers,
 * signatures, CA flag and keyCertSign of every issuer, validity of every
 * certificate; the leaf must not be a CA and must allow digitalSignature),
 * then sends a random 32-byte nonce the agent must sign with the node key.
 *
 * Agent ID `spiffe://<td>/tessera/agent/x509pop/<sha1 of leaf>`; node selectors
 * `x509pop:subject:cn:<CN>`, `x509pop:ca:fingerprint:<sha1>` for every CA of
 * the path (intermediates and root), `x509pop:san:dns:<name>` for each DNS SAN
 * and `x509pop:serialnumber:<hex>`. The node may attest again as the same
 * agent (its certificate is durable evidence), unless banned.
 */
export class X509PopAttestor implements NodeAttestor {
  readonly type = 'x509pop';
  readonly #td: TrustDomain;
  readonly #roots: { cert: Certificate; x509: X509Certificate }[];
  readonly #now: () => Date;
  readonly #random: (n: number) => Buffer;

  constructor(options: X509PopOptions) {
    this.#td = options.trustDomain;
    this.#now = options.now ?? (() => new Date());
    this.#random = options.randomBytes ?? randomBytes;
    const certs = typeof options.caCertificates === 'string' ? parsePemCertificates(options.caCertificates) : options.caCertificates.map((d) => new Certificate(d));
    if (certs.length === 0) throw new Error('x509pop: the CA bundle holds no certificate');
    this.#roots = certs.map((cert, i) => {
      if (!cert.isCa) throw new Error(`x509pop: certificate ${i + 1} of the CA bundle is not a CA certificate`);
      return { cert, x509: new X509Certificate(cert.der) };
    });
  }

  /** Reads the CA bundle (PEM) from `path`. @throws Error with a one-line reason. */
  static fromCaFile(path: string, options: Omit<X509PopOptions, 'caCertificates'>): X509PopAttestor {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new Error(`x509pop: cannot read CA bundle "${path}": ${(e as Error).message}`, { cause: e });
    }
    try {
      return new X509PopAttestor({ ...options, caCertificates: text });
    } catch (e) {
      throw new Error(`x509pop: invalid CA bundle "${path}": ${(e as Error).message}`, { cause: e });
    }
  }

  async begin(payload: Uint8Array): Promise<AttestationStep> {
    const node = this.verifyChain(payload);
    const nonce = this.#random(X509POP_NONCE_BYTES);
    const publicKey = new X509Certificate(node.leaf.der).publicKey;
    const digest = digestFor(publicKey);
    return {
      kind: 'challenge',
      challenge: nonce,
      respond: async (answer) => {
        if (answer.length === 0 || answer.length > MAX_SIGNATURE_BYTES) throw malformed('x509pop: the challenge response must be a signature of at most 2048 bytes');
        let ok = false;
        try {
          ok = verify(digest, x509popSignedData(nonce), publicKey, answer);
        } catch {
          ok = false;
        }
        if (!ok) throw denied('x509pop: the challenge response is not a signature by the node certificate\'s key (proof of possession failed)');
        return { kind: 'done', result: { agentId: x509popAgentId(this.#td, node.leaf.der), attestationType: this.type, selectors: this.#selectors(node), canReattest: true } };
      },
    };
  }

  /**
   * Checks the node certificate chain (concatenated DER, leaf first).
   * @throws AttestationError ATTESTATION_INVALID (malformed), ATTESTATION_DENIED (untrusted).
   */
  verifyChain(payload: Uint8Array): VerifiedNode {
    if (payload.length === 0) throw malformed('x509pop: the payload must be the node certificate chain (DER, leaf first)');
    if (payload.length > MAX_PAYLOAD_BYTES) throw malformed(`x509pop: the certificate chain is larger than ${MAX_PAYLOAD_BYTES} bytes`);
    let certs: Certificate[];
    try {
      certs = parseDerCertificates(payload);
    } catch (e) {
      throw malformed(`x509pop: cannot parse the node certificate chain: ${(e as Error).message}`, e);
    }
    if (certs.length === 0) throw malformed('x509pop: the node certificate chain is empty');
    if (certs.length > MAX_CHAIN) throw malformed(`x509pop: the node certificate chain has ${certs.length} certificates; at most ${MAX_CHAIN} are accepted`);
    const leaf = certs[0]!;
    if (leaf.isCa) throw denied('x509pop: the node certificate is a CA certificate; a leaf certificate is required');
    if (!leaf.hasKeyUsage(KeyUsage.digitalSignature)) throw denied('x509pop: the node certificate lacks the digitalSignature key usage needed for proof of possession');
    const now = this.#now();
    this.#checkTime(leaf, now, 'node');
    const intermediates = certs.slice(1).map((cert) => ({ cert, x509: new X509Certificate(cert.der) }));
    let current = { cert: leaf, x509: new X509Certificate(leaf.der) };
    const path: Certificate[] = [];
    const used = new Set<number>();
    for (let depth = 0; depth <= MAX_CHAIN; depth++) {
      const root = this.#roots.find((r) => issued(r, current));
      if (root) {
        this.#checkTime(root.cert, now, 'x509pop CA');
        return { leaf, cas: [...path, root.cert] };
      }
      const i = intermediates.findIndex((c, k) => !used.has(k) && c.cert.isCa && (c.cert.keyUsage === undefined || c.cert.hasKeyUsage(KeyUsage.keyCertSign)) && issued(c, current));
      if (i < 0) break;
      used.add(i);
      current = intermediates[i]!;
      this.#checkTime(current.cert, now, 'intermediate');
      path.push(current.cert);
    }
    throw denied('x509pop: the node certificate does not chain to a configured x509pop CA');
  }

  #checkTime(c: Certificate, now: Date, role: string): void {
    if (now < c.notBefore) throw denied(`x509pop: the ${role} certificate is not valid before ${c.notBefore.toISOString()}`);
    if (now > c.notAfter) throw denied(`x509pop: the ${role} certificate expired at ${c.notAfter.toISOString()}`);
  }

  #selectors(node: VerifiedNode): Selector[] {
    const out: Selector[] = [];
    const usable = (v: string): boolean => v.length > 0 && v.length <= 1000 && !/[\u0000-\u001f\u007f]/.test(v);
    const cn = node.leaf.subject.find((a) => a.oid === OID_CN)?.value;
    if (cn !== undefined && usable(cn)) out.push({ type: 'x509pop', value: `subject:cn:${cn}` });
    for (const ca of node.cas) out.push({ type: 'x509pop', value: `ca:fingerprint:${createHash('sha1').update(ca.der).digest('hex')}` });
    for (const dns of node.leaf.subjectAltNames.dnsNames) if (usable(dns)) out.push({ type: 'x509pop', value: `san:dns:${dns}` });
    out.push({ type: 'x509pop', value: `serialnumber:${node.leaf.serialHex}` });
    return out;
  }
}

/** Whether `issuer` issued `child`: names and key identifiers (OpenSSL's check_issued), then the signature. */
function issued(issuer: { x509: X509Certificate }, child: { x509: X509Certificate }): boolean {
  try {
    return child.x509.checkIssued(issuer.x509) && child.x509.verify(issuer.x509.publicKey);
  } catch {
    return false;
  }
}

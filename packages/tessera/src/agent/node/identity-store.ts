import { X509Certificate, type KeyObject } from 'node:crypto';
import { readFile, unlink } from 'node:fs/promises';
import type { TrustDomain } from '@tessera/spiffe/id';
import { SpiffeBundle } from '@tessera/spiffe/bundle';
import { parsePrivateKey } from '@tessera/spiffe/svid';
import { Certificate, parsePemCertificates } from '@tessera/spiffe/x509';
import { agentDataFiles } from '../config.js';
import { AgentError } from '../errors.js';
import { writeFileAtomic } from '../../fs/atomic-write.js';

/** The agent's own SVID: what it authenticates to the server with. */
export interface AgentSvid {
  readonly spiffeId: string;
  /** DER, leaf first. */
  readonly certificates: readonly Buffer[];
  readonly key: KeyObject;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** What survives a restart: the agent SVID and the trust domain's bundle. */
export interface PersistedIdentity {
  readonly svid: AgentSvid;
  readonly bundle: SpiffeBundle;
}

const toPem = (der: Uint8Array): string => new X509Certificate(der).toString();

/** Builds an {@link AgentSvid} from a chain (leaf first) and key; ID and validity come from the leaf. */
export function agentSvidFrom(certificates: readonly Uint8Array[], key: KeyObject): AgentSvid {
  const leaf = certificates[0];
  if (leaf === undefined) throw new AgentError('AGENT_STATE_INVALID', 'agent SVID: empty certificate chain');
  const cert = new Certificate(leaf);
  const uri = cert.subjectAltNames.uris[0];
  if (uri === undefined || !uri.startsWith('spiffe://')) throw new AgentError('AGENT_STATE_INVALID', 'agent SVID: the leaf has no SPIFFE ID');
  if (!new X509Certificate(leaf).checkPrivateKey(key)) throw new AgentError('AGENT_STATE_INVALID', 'agent SVID: the key does not match the certificate');
  return Object.freeze({
    spiffeId: uri,
    certificates: Object.freeze(certificates.map((c) => Buffer.from(c))),
    key,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
  });
}

/**
 * The agent's persisted state in `dataDir` (SPIRE keeps agent_svid.der,
 * keys and bundle.der there): `agent-svid.pem` (chain), `agent-key.pem`
 * (PKCS#8, 0600), `bundle.json` (SPIFFE bundle). Each file is replaced
 * atomically; the key is written before the certificate so that a crash
 * between them leaves a pair the loader rejects as mismatched, never a
 * certificate whose key is lost silently.
 */
export class IdentityStore {
  readonly #files: ReturnType<typeof agentDataFiles>;
  readonly #td: TrustDomain;

  constructor(dataDir: string, trustDomain: TrustDomain) {
    this.#files = agentDataFiles(dataDir);
    this.#td = trustDomain;
  }

  /** The persisted identity, or `undefined` when none was saved. @throws AgentError AGENT_STATE_INVALID */
  async load(): Promise<PersistedIdentity | undefined> {
    const read = async (path: string): Promise<Buffer | undefined> => {
      try {
        return await readFile(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new AgentError('AGENT_STATE_INVALID', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
      }
    };
    const [svidPem, keyPem, bundleJson] = await Promise.all([read(this.#files.svid), read(this.#files.key), read(this.#files.bundle)]);
    if (svidPem === undefined) return undefined;
    if (keyPem === undefined || bundleJson === undefined) throw new AgentError('AGENT_STATE_INVALID', `${this.#files.svid} exists but ${keyPem === undefined ? this.#files.key : this.#files.bundle} is missing; remove the data directory's agent files to attest again`);
    try {
      const svid = agentSvidFrom(
        parsePemCertificates(svidPem).map((c) => c.der),
        parsePrivateKey(keyPem),
      );
      const bundle = SpiffeBundle.parse(this.#td, bundleJson);
      if (!svid.spiffeId.startsWith(`${this.#td.idString()}/`)) throw new AgentError('AGENT_STATE_INVALID', `persisted agent SVID ${svid.spiffeId} is not in trust domain ${this.#td.name}`);
      return { svid, bundle };
    } catch (e) {
      if (e instanceof AgentError) throw e;
      throw new AgentError('AGENT_STATE_INVALID', `persisted agent state in ${this.#files.svid}: ${(e as Error).message}`, { cause: e });
    }
  }

  async saveSvid(svid: AgentSvid): Promise<void> {
    await writeFileAtomic(this.#files.key, svid.key.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    await writeFileAtomic(this.#files.svid, svid.certificates.map(toPem).join(''), 0o644);
  }

  async saveBundle(bundle: SpiffeBundle): Promise<void> {
    await writeFileAtomic(this.#files.bundle, bundle.marshal(), 0o644);
  }

  /** Forgets the identity (after the server evicted or banned this agent). */
  async clear(): Promise<void> {
    for (const f of [this.#files.svid, this.#files.key]) await unlink(f).catch(() => undefined);
  }
}

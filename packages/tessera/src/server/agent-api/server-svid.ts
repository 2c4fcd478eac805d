import { generateKeyPairSync, createPublicKey } from 'node:crypto';
import { X509Svid, type X509SvidSource } from '@tessera/spiffe/svid';
import type { ServerCa } from '../ca/index.js';
import { serverId } from '../registration/index.js';

/**
 * The X509-SVID the Agent API presents: `spiffe://<td>/tessera/server`,
 * issued by the server's own CA with a key made here (never persisted: a
 * restart issues a new one). Re-issued once half its lifetime has passed
 * (SPIRE's rotation point), so agents never see an expired server
 * certificate while the CA is healthy.
 */
export class ServerSvid implements X509SvidSource {
  readonly #ca: ServerCa;
  readonly #now: () => Date;
  #svid: X509Svid;

  private constructor(ca: ServerCa, now: () => Date, svid: X509Svid) {
    this.#ca = ca;
    this.#now = now;
    this.#svid = svid;
  }

  static async issue(ca: ServerCa, now: () => Date): Promise<ServerSvid> {
    return new ServerSvid(ca, now, await mint(ca));
  }

  getX509Svid(): X509Svid {
    return this.#svid;
  }

  /** Whether half of the current SVID's lifetime has passed. */
  due(): boolean {
    const from = this.#svid.issuedAt.getTime();
    const to = this.#svid.expiresAt.getTime();
    return this.#now().getTime() >= from + (to - from) / 2;
  }

  /** Issues a new SVID now and returns it. */
  async rotate(): Promise<X509Svid> {
    this.#svid = await mint(this.#ca);
    return this.#svid;
  }
}

async function mint(ca: ServerCa): Promise<X509Svid> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signed = await ca.signX509Svid({ spiffeId: serverId(ca.trustDomain.name), publicKey: createPublicKey(privateKey) });
  return X509Svid.parseRaw(Buffer.concat(signed.certificates), privateKey.export({ type: 'pkcs8', format: 'der' }));
}

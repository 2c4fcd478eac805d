/**
 * The X509-SVID an `https_spiffe` bundle endpoint presents (SPIFFE
 * Federation §5): minted by the server's own CA for a key generated here
 * (the key never leaves this process), and re-minted at half of its
 * lifetime, as SVIDs are rotated everywhere else (spec/spiffe.md §6). The
 * TLS server reads {@link EndpointSvid.getX509Svid} on every new connection
 * and swaps its secure context when the SVID object changes.
 */
import { generateKeyPair as generateKeyPairCb } from 'node:crypto';
import { promisify } from 'node:util';
import type { SpiffeId } from '@tessera/spiffe/id';
import { X509Svid, type X509SvidSource } from '@tessera/spiffe/svid';
import type { X509SvidRequest, SignedX509Svid } from '../ca/index.js';

const generateKeyPair = promisify(generateKeyPairCb);

/** The part of the server CA this needs. */
export interface SvidMinter {
  signX509Svid(request: X509SvidRequest): Promise<SignedX509Svid>;
}

/** The bundle endpoint's own SVID (see the module description). */
export class EndpointSvid implements X509SvidSource {
  readonly id: SpiffeId;
  readonly #signer: SvidMinter;
  readonly #now: () => Date;
  #svid: X509Svid;
  #rotating: Promise<boolean> | undefined;

  private constructor(id: SpiffeId, signer: SvidMinter, now: () => Date, svid: X509Svid) {
    this.id = id;
    this.#signer = signer;
    this.#now = now;
    this.#svid = svid;
  }

  /**
   * Mints the first SVID.
   * @throws the CA's `CaError` (e.g. `CA_NOT_READY`, or `CA_INVALID_REQUEST` for an ID outside the trust domain).
   * @example
   * ```ts
   * const svid = await EndpointSvid.mint(ca, SpiffeId.parse('spiffe://a.test/tessera/server'), () => new Date());
   * ```
   */
  static async mint(signer: SvidMinter, id: SpiffeId, now: () => Date): Promise<EndpointSvid> {
    return new EndpointSvid(id, signer, now, await mintSvid(signer, id));
  }

  /** The current SVID. */
  getX509Svid(): X509Svid {
    return this.#svid;
  }

  /** When the current SVID is due for replacement: half-way through its validity. */
  renewAt(): Date {
    const nb = this.#svid.issuedAt.getTime();
    return new Date(nb + (this.#svid.expiresAt.getTime() - nb) / 2);
  }

  /**
   * Re-mints the SVID if it is at or past half of its lifetime (by the
   * injected clock). Concurrent calls share one minting. On failure the
   * current SVID stays in use and the error propagates; the next call retries.
   * @returns whether the SVID changed.
   */
  rotateIfDue(): Promise<boolean> {
    if (this.#now() < this.renewAt()) return Promise.resolve(false);
    this.#rotating ??= mintSvid(this.#signer, this.id)
      .then((svid) => {
        this.#svid = svid;
        return true;
      })
      .finally(() => {
        this.#rotating = undefined;
      });
    return this.#rotating;
  }
}

async function mintSvid(signer: SvidMinter, id: SpiffeId): Promise<X509Svid> {
  const { privateKey, publicKey } = await generateKeyPair('ec', { namedCurve: 'P-256' });
  const signed = await signer.signX509Svid({ spiffeId: id, publicKey });
  return X509Svid.fromParts(signed.certificates, privateKey);
}

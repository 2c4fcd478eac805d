/**
 * Proof-of-possession checks of certification requests (RFC 2986 §3) for
 * the CA's hot path. Parsing stays in the library (every check but the
 * self-signature); the signature of an EC P-256/P-384 request is verified by
 * the `@tessera/ecdsa-verify` addon, which skips the key import node:crypto
 * needs (with OpenSSL 3.0 that import costs as much as the verification) and
 * runs batches on libuv's thread pool while this thread signs the leaves of
 * the requests already checked. RSA and Ed25519 requests, and every request
 * when the addon is not built, are verified with node:crypto as
 * `parseCertificateRequest[Async]` does. Same verdicts, same errors, either
 * way (test/unit/ca-csr-checker.test.ts compares them).
 * @internal
 */
import { availableParallelism } from 'node:os';
import * as nativeEcdsa from '@tessera/ecdsa-verify';
import type { EcdsaCheck, EcdsaCurve } from '@tessera/ecdsa-verify';
import { parseUnverifiedCertificateRequest, type CertificateRequest, type ProofVerdict, type UnverifiedCertificateRequest } from '@tessera/spiffe/x509';

/** What the signing side needs of a checked CSR, or why it was refused. */
export type CsrCheck =
  | { readonly ok: true; readonly spki: Buffer; readonly uris: readonly string[] }
  | { readonly ok: false; readonly error: unknown };

/** The ECDSA verifier's interface (the addon's; tests inject others). */
export interface EcdsaVerifier {
  verifyEcdsa(checks: readonly EcdsaCheck[]): Uint8Array;
  verifyEcdsaAsync(checks: readonly EcdsaCheck[]): Promise<Uint8Array>;
}

/** Options of {@link CsrChecker}. */
export interface CsrCheckerOptions {
  /** Verify on the calling thread instead of libuv's thread pool. */
  readonly inline: boolean;
  /** The EC verifier; default the addon, or none when it is not built (node:crypto then). `null`: none. */
  readonly ecdsa?: EcdsaVerifier | null;
  /** Chunks verified at once on the thread pool; default the number of cores. */
  readonly parallelism?: number;
}

/** Smallest and largest number of requests verified in one thread-pool job. */
const MIN_CHUNK = 4;
const MAX_CHUNK = 32;
/** Chunks per lane and batch, at least: small enough that the pool and this thread overlap. */
const CHUNKS_PER_LANE = 8;

interface EcItem {
  readonly index: number;
  readonly u: UnverifiedCertificateRequest;
  readonly check: EcdsaCheck;
}

const CURVES: Partial<Record<string, EcdsaCurve>> = { 'ec-p256': 'P-256', 'ec-p384': 'P-384' };

const VERDICTS: Partial<Record<number, ProofVerdict>> = {
  [nativeEcdsa.VALID]: 'valid',
  [nativeEcdsa.BAD_SIGNATURE]: 'bad-signature',
  [nativeEcdsa.BAD_KEY]: 'bad-key',
};

function accepted(request: CertificateRequest): CsrCheck {
  return { ok: true, spki: request.subjectPublicKey.spki, uris: request.uris };
}

function refused(error: unknown): CsrCheck {
  return { ok: false, error };
}

/** The addon's check for a request, or undefined when the addon does not cover its key or algorithm. */
function ecdsaCheckOf(u: UnverifiedCertificateRequest): EcdsaCheck | undefined {
  const { keyType, hash, publicKeyBits, signedData, signature } = u.proof;
  const curve = CURVES[keyType];
  if (curve === undefined || hash === null) return undefined;
  return { curve, hash, point: publicKeyBits, data: signedData, signature };
}

/** Checks CSRs; see the module description. */
export class CsrChecker {
  readonly #inline: boolean;
  readonly #ecdsa: EcdsaVerifier | undefined;
  readonly #parallelism: number;

  constructor(o: CsrCheckerOptions) {
    this.#inline = o.inline;
    this.#ecdsa = o.ecdsa === null ? undefined : (o.ecdsa ?? (nativeEcdsa.available ? nativeEcdsa : undefined));
    const p = o.parallelism ?? availableParallelism();
    if (!Number.isSafeInteger(p) || p < 1) throw new RangeError(`parallelism must be a whole number ≥ 1, got ${String(p)}`);
    this.#parallelism = p;
  }

  /** Whether EC requests are verified by the native verifier. */
  get native(): boolean {
    return this.#ecdsa !== undefined;
  }

  /** Checks one CSR. */
  async check(csr: Uint8Array): Promise<CsrCheck> {
    let result: CsrCheck = refused(new Error('unreachable'));
    await this.checkBatch([csr], (_, c) => (result = c));
    return result;
  }

  /**
   * Checks every CSR of a batch and calls `onChecked` once per index as
   * results arrive (in any order; `onChecked` must not throw). Resolves once
   * all are reported.
   *
   * With the thread pool, CSRs are parsed a chunk at a time just before the
   * chunk is handed over, and each lane hands over its next chunk before it
   * reports (and the caller signs) the one that came back: this thread
   * parses and signs while the pool verifies.
   */
  async checkBatch(csrs: readonly Uint8Array[], onChecked: (index: number, check: CsrCheck) => void): Promise<void> {
    const slow: Promise<void>[] = [];
    let cursor = 0;
    /** Parses CSRs from the cursor until `size` of them are for the EC verifier; reports or routes the others. */
    const take = (size: number): EcItem[] => {
      const chunk: EcItem[] = [];
      while (cursor < csrs.length && chunk.length < size) {
        const index = cursor++;
        let u: UnverifiedCertificateRequest;
        try {
          u = parseUnverifiedCertificateRequest(csrs[index]!);
        } catch (error) {
          onChecked(index, refused(error));
          continue;
        }
        const check = this.#ecdsa === undefined ? undefined : ecdsaCheckOf(u);
        if (check !== undefined) chunk.push({ index, u, check });
        else slow.push(this.#verifyWithNode(u).then((c) => onChecked(index, c)));
      }
      return chunk;
    };
    /** Reports a verified chunk. */
    const settle = (chunk: readonly EcItem[], codes: Uint8Array): void => {
      chunk.forEach(({ index, u }, k) => {
        const verdict = VERDICTS[codes[k]!];
        // ERROR (out of memory in OpenSSL) or a lost chunk: node:crypto decides.
        if (verdict === undefined) {
          slow.push(this.#verifyWithNode(u).then((c) => onChecked(index, c)));
          return;
        }
        let c: CsrCheck;
        try {
          c = accepted(u.accept(verdict));
        } catch (error) {
          c = refused(error);
        }
        onChecked(index, c);
      });
    };
    const verifier = this.#ecdsa;
    if (verifier === undefined || this.#inline) {
      const chunk = take(csrs.length);
      if (chunk.length > 0) settle(chunk, this.#verifyHere(verifier!, chunk));
    } else {
      const size = Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, Math.ceil(csrs.length / (CHUNKS_PER_LANE * this.#parallelism))));
      const verify = (chunk: readonly EcItem[]): Promise<Uint8Array> | undefined => {
        if (chunk.length === 0) return undefined;
        const lost = (): Uint8Array => new Uint8Array(chunk.length).fill(nativeEcdsa.ERROR);
        try {
          return verifier.verifyEcdsaAsync(chunk.map((i) => i.check)).catch(lost);
        } catch {
          return Promise.resolve(lost());
        }
      };
      const lane = async (): Promise<void> => {
        let chunk = take(size);
        let pending = verify(chunk);
        while (pending !== undefined) {
          const codes = await pending;
          const done = chunk;
          chunk = take(size);
          pending = verify(chunk);
          settle(done, codes);
        }
      };
      await Promise.all(Array.from({ length: this.#parallelism }, lane));
    }
    await Promise.all(slow);
  }

  /** Verifies a chunk on this thread; every item ERROR when the verifier fails as a whole. */
  #verifyHere(verifier: EcdsaVerifier, chunk: readonly EcItem[]): Uint8Array {
    try {
      return verifier.verifyEcdsa(chunk.map((i) => i.check));
    } catch {
      return new Uint8Array(chunk.length).fill(nativeEcdsa.ERROR);
    }
  }

  #verifyWithNode(u: UnverifiedCertificateRequest): Promise<CsrCheck> {
    if (this.#inline) {
      try {
        return Promise.resolve(accepted(u.verify()));
      } catch (error) {
        return Promise.resolve(refused(error));
      }
    }
    return u.verifyAsync().then(accepted, refused);
  }
}

/**
 * CSR checks spread over cores. Checking a P-256 CSR — strict parse, key
 * import, proof-of-possession verification — costs ~5× the leaf signature
 * (bench/ca.bench.ts: ~210 µs vs ~43 µs), so for a batch of requests a few
 * worker threads do the checks while the calling thread signs leaves as the
 * results come in, and checks chunks itself while it waits (on 2 cores one
 * worker alone would leave the main thread idle most of the time).
 *
 * Messaging is per chunk, not per CSR: a chunk's requests travel in one
 * transferred ArrayBuffer and come back in it, with the offsets of each
 * request's SubjectPublicKeyInfo inside it — so the key the leaf certifies is
 * exactly the bytes that were verified, and no copy is made on the way back.
 *
 * Workers start on first use and never keep the process alive while idle. A
 * worker that dies is logged; its chunks are checked on the calling thread,
 * and after {@link MAX_CRASHES} deaths the pool stops starting workers.
 * @internal
 */
import { Worker } from 'node:worker_threads';
import { EncodingError } from '@tessera/spiffe/errors';
import { parseCertificateRequest } from '@tessera/spiffe/x509';

/** What the main thread needs to sign for a checked CSR, or why it was refused. */
export type CsrCheck =
  | { readonly ok: true; readonly spki: Buffer; readonly uris: readonly string[] }
  | { readonly ok: false; readonly error: unknown };

/** main → worker: a chunk of CSRs, concatenated; `ends[i]` is where request `i` ends. */
export interface VerifyRequest {
  readonly id: number;
  readonly buffer: ArrayBuffer;
  readonly ends: Uint32Array<ArrayBuffer>;
}

/** worker → main: the buffer back, with results (see csr-verify-worker.ts). */
export interface VerifyReply extends VerifyRequest {
  /** `[start, end)` of request `i`'s SubjectPublicKeyInfo in `buffer` at `2i`, `2i+1`; -1 when refused or redone. */
  readonly spki: Int32Array<ArrayBuffer>;
  readonly uris: readonly (readonly string[])[];
  readonly errors: readonly { readonly index: number; readonly code: 'ERR_PEM_INVALID' | 'ERR_CERTIFICATE_INVALID' | 'ERR_KEY_INVALID'; readonly message: string; readonly cause?: string }[];
  /** Requests the worker could not answer in the wire form: checked again on the main thread. */
  readonly redo: readonly number[];
}

/** Options of {@link CsrVerifyPool}. */
export interface CsrVerifyPoolOptions {
  /** Worker threads, at least 1. */
  readonly size: number;
  /** The worker's script; tests inject a failing one. Default: csr-verify-worker.js next to this module. */
  readonly script?: URL;
  /** Told about each worker that dies, and when the pool gives up on workers. */
  readonly onWorkerError?: (message: string, error: Error) => void;
  /**
   * Whether the calling thread checks chunks too while it waits; default
   * true. False leaves it only the signing (measured in bench/ca.bench.ts).
   */
  readonly shareWithCaller?: boolean;
}

/** Worker deaths after which the pool checks everything on the calling thread. */
export const MAX_CRASHES = 3;
/** Chunks in flight per worker: one being checked, one queued, so a worker never waits for the main thread. */
const IN_FLIGHT_PER_WORKER = 2;
const MIN_CHUNK = 4;
const MAX_CHUNK = 32;

/** Checks one CSR on the calling thread, as `ServerCa.signX509Svid` does. */
export function checkCsrInline(csr: Uint8Array): CsrCheck {
  try {
    const r = parseCertificateRequest(csr);
    return { ok: true, spki: r.subjectPublicKey.spki, uris: r.uris };
  } catch (error) {
    return { ok: false, error };
  }
}

interface Chunk {
  readonly indices: readonly number[];
}

/**
 * The CSRs of a batch nobody has taken yet: workers cut chunks from the
 * front, the calling thread from the back. Chunks shrink as the range does
 * (guided self-scheduling), so the last ones finish close together and
 * nobody waits long for the others at the end.
 */
class Unclaimed {
  #lo = 0;
  #hi: number;
  /** Chunks of workers that died, to be taken first. */
  readonly #returned: Chunk[] = [];

  constructor(
    n: number,
    /** Threads sharing the batch. */
    readonly threads: number,
  ) {
    this.#hi = n;
  }

  get empty(): boolean {
    return this.#lo >= this.#hi && this.#returned.length === 0;
  }

  take(fromFront: boolean): Chunk | undefined {
    const back = this.#returned.pop();
    if (back !== undefined) return back;
    const left = this.#hi - this.#lo;
    if (left <= 0) return undefined;
    const size = Math.min(left, MAX_CHUNK, Math.max(MIN_CHUNK, Math.ceil(left / (2 * this.threads))));
    const start = fromFront ? this.#lo : this.#hi - size;
    if (fromFront) this.#lo += size;
    else this.#hi -= size;
    return { indices: Array.from({ length: size }, (_, k) => start + k) };
  }

  giveBack(chunk: Chunk): void {
    this.#returned.push(chunk);
  }
}

interface Job {
  readonly chunk: Chunk;
  readonly batch: Batch;
}

interface Batch {
  readonly csrs: readonly Uint8Array[];
  readonly onResult: (index: number, check: CsrCheck) => void;
  readonly unclaimed: Unclaimed;
  inFlight: number;
  /** Wakes the batch's loop when a chunk comes back or is given back. */
  wake: (() => void) | undefined;
  /** The first error `onResult` threw; `verify` rejects with it at the end. */
  failure: { readonly error: unknown } | undefined;
}

class PoolWorker {
  readonly worker: Worker;
  readonly jobs = new Map<number, Job>();
  dead = false;

  constructor(script: URL) {
    this.worker = new Worker(script);
    this.worker.unref();
  }
}

/**
 * A small pool of worker threads that check CSRs for
 * {@link CsrVerifyPool.verify}; see the module description.
 */
export class CsrVerifyPool {
  readonly size: number;
  readonly #script: URL;
  readonly #onWorkerError: ((message: string, error: Error) => void) | undefined;
  readonly #share: boolean;
  #workers: PoolWorker[] = [];
  #nextJobId = 1;
  #crashes = 0;
  #closed = false;

  constructor(o: CsrVerifyPoolOptions) {
    if (!Number.isSafeInteger(o.size) || o.size < 1) throw new RangeError(`a CSR verification pool needs at least one worker, got ${String(o.size)}`);
    this.size = o.size;
    this.#script = o.script ?? new URL('./csr-verify-worker.js', import.meta.url);
    this.#onWorkerError = o.onWorkerError;
    this.#share = o.shareWithCaller ?? true;
  }

  /** Whether workers are (or may be) used: false once closed or after {@link MAX_CRASHES} worker deaths. */
  get available(): boolean {
    return !this.#closed && this.#crashes < MAX_CRASHES;
  }

  /** Live worker threads (started on first use). */
  get threads(): number {
    return this.#workers.filter((w) => !w.dead).length;
  }

  /**
   * Checks every CSR of `csrs` (strict parse, key import, proof of
   * possession), calling `onResult` on this thread once per CSR, in no
   * particular order, as results arrive — so the caller can sign while the
   * workers still check. Work is shared between the workers and this thread.
   * Resolves when every CSR has had its result; never rejects on a CSR's or
   * a worker's failure (a dead worker's chunks are checked here), only with
   * the first error `onResult` threw, once all results are in.
   */
  async verify(csrs: readonly Uint8Array[], onResult: (index: number, check: CsrCheck) => void): Promise<void> {
    const n = csrs.length;
    if (n === 0) return;
    const workers = this.#ensureWorkers();
    const unclaimed = new Unclaimed(n, workers.length + (this.#share ? 1 : 0));
    const batch: Batch = {
      csrs,
      onResult: (i, check) => {
        try {
          onResult(i, check);
        } catch (error) {
          // A reply handler must not throw (it would be an uncaught exception): report it at the end.
          batch.failure ??= { error };
        }
      },
      unclaimed,
      inFlight: 0,
      wake: undefined,
      failure: undefined,
    };
    while (!unclaimed.empty || batch.inFlight > 0) {
      // Keep every live worker busy (a dead worker's chunks come back to be taken again).
      const live = workers.filter((w) => !w.dead);
      for (const w of live) for (let k = w.jobs.size; k < IN_FLIGHT_PER_WORKER; k++) this.#dispatch(w, batch);
      // This thread checks from the back while the workers take from the front.
      const mine = this.#share || live.length === 0 ? unclaimed.take(false) : undefined;
      if (mine !== undefined) {
        for (const i of mine.indices) batch.onResult(i, checkCsrInline(csrs[i]!));
      }
      // Let replies in (they are handled in the poll phase), or wait for one when there is nothing left to check here.
      await new Promise<void>((resolve) => {
        if (mine !== undefined) setImmediate(resolve);
        else batch.wake = resolve;
      });
      batch.wake = undefined;
    }
    if (batch.failure !== undefined) throw batch.failure.error;
  }

  /** Stops the workers. Batches in progress finish on the calling thread. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const workers = this.#workers;
    this.#workers = [];
    await Promise.all(workers.map((w) => w.worker.terminate().catch(() => undefined)));
  }

  #ensureWorkers(): PoolWorker[] {
    this.#workers = this.#workers.filter((w) => !w.dead);
    if (!this.available) return [];
    while (this.#workers.length < this.size) {
      let w: PoolWorker;
      try {
        w = new PoolWorker(this.#script);
      } catch (e) {
        this.#died(undefined, e instanceof Error ? e : new Error(String(e)));
        break;
      }
      w.worker.on('message', (m: VerifyReply) => this.#onReply(w, m));
      w.worker.on('error', (e) => this.#died(w, e));
      w.worker.on('messageerror', (e) => this.#died(w, e));
      w.worker.on('exit', (code) => {
        if (!w.dead && !this.#closed) this.#died(w, new Error(`the CSR verification worker exited with code ${code}`));
        this.#giveBack(w);
      });
      this.#workers.push(w);
    }
    return this.#workers.filter((w) => !w.dead);
  }

  #dispatch(w: PoolWorker, batch: Batch): void {
    if (w.dead) return;
    const chunk = batch.unclaimed.take(true);
    if (chunk === undefined) return;
    let total = 0;
    for (const i of chunk.indices) total += batch.csrs[i]!.byteLength;
    const bytes = new Uint8Array(total);
    const ends = new Uint32Array(chunk.indices.length);
    let at = 0;
    chunk.indices.forEach((i, k) => {
      bytes.set(batch.csrs[i]!, at);
      at += batch.csrs[i]!.byteLength;
      ends[k] = at;
    });
    const id = this.#nextJobId++;
    w.jobs.set(id, { chunk, batch });
    batch.inFlight++;
    if (w.jobs.size === 1) w.worker.ref();
    const request: VerifyRequest = { id, buffer: bytes.buffer, ends };
    try {
      w.worker.postMessage(request, [bytes.buffer, ends.buffer]);
    } catch (e) {
      this.#died(w, e instanceof Error ? e : new Error(String(e)));
      this.#giveBack(w);
    }
  }

  #onReply(w: PoolWorker, m: VerifyReply): void {
    const job = w.jobs.get(m.id);
    if (job === undefined) return;
    w.jobs.delete(m.id);
    if (w.jobs.size === 0) w.worker.unref();
    const { chunk, batch } = job;
    batch.inFlight--;
    const refused = new Map(m.errors.map((e) => [e.index, e]));
    const redo = new Set(m.redo);
    let start = 0;
    chunk.indices.forEach((i, k) => {
      const end = m.ends[k]!;
      const s = m.spki[2 * k]!;
      const e = m.spki[2 * k + 1]!;
      const err = refused.get(k);
      let check: CsrCheck;
      if (err !== undefined) {
        check = { ok: false, error: new EncodingError(err.code, err.message, err.cause === undefined ? undefined : { cause: new Error(err.cause) }) };
      } else if (!redo.has(k) && s >= start && e > s && e <= end) {
        check = { ok: true, spki: Buffer.from(m.buffer, s, e - s), uris: m.uris[k] ?? [] };
      } else {
        check = checkCsrInline(batch.csrs[i]!);
      }
      start = end;
      batch.onResult(i, check);
    });
    this.#dispatch(w, batch);
    batch.wake?.();
  }

  /** Gives a dead worker's chunks back to their batches, to be checked on the calling thread or by another worker. */
  #giveBack(w: PoolWorker): void {
    w.dead = true;
    for (const { chunk, batch } of w.jobs.values()) {
      batch.unclaimed.giveBack(chunk);
      batch.inFlight--;
      batch.wake?.();
    }
    w.jobs.clear();
  }

  #died(w: PoolWorker | undefined, error: Error): void {
    if (w !== undefined) {
      if (w.dead) return;
      w.dead = true;
      void w.worker.terminate().catch(() => undefined);
    }
    if (this.#closed) return;
    this.#crashes++;
    const last = this.#crashes >= MAX_CRASHES;
    this.#onWorkerError?.(
      last ? `CSR verification worker failed ${this.#crashes} times; checking CSRs on the main thread from now on` : 'CSR verification worker failed; its CSRs are checked on the main thread',
      error,
    );
  }
}

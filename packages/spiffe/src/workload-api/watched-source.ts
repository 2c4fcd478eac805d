import { EventEmitter } from 'node:events';
import { OptionsError, SourceError } from '../errors/index.js';
import { WorkloadApiClient, type WorkloadApiClientOptions } from './client.js';

/** Options shared by the Workload API sources. */
export interface SourceOptions extends WorkloadApiClientOptions {
  /** Use this client instead of creating one (the source then does not close it). */
  readonly client?: WorkloadApiClient;
  /** Closes the source when aborted. */
  readonly signal?: AbortSignal;
  /** `create()` rejects if the first update has not arrived within this time; default: wait until `signal` aborts. */
  readonly timeoutMs?: number;
}

/** Events of the Workload API sources. */
export interface SourceEvents {
  /** New material was swapped in. */
  update: [];
  /** A stream failed (it is retried) or an update was malformed and rejected (the previous material stays). */
  watchError: [error: Error];
}

/**
 * @internal The lifecycle every source shares: one client, watches that run
 * until `close()`, readiness, and the after-close guard of every getter.
 */
export abstract class WatchedSource extends EventEmitter<SourceEvents> {
  readonly #client: WorkloadApiClient;
  readonly #ownsClient: boolean;
  readonly #stop = new AbortController();
  #ready = false;
  #readyWaiters: (() => void)[] = [];
  #fatal: Error | undefined;
  readonly #name: string;

  protected constructor(name: string, options: SourceOptions) {
    super();
    if (options === null || typeof options !== 'object') throw new OptionsError(`${name}: options must be an object`);
    if (options.timeoutMs !== undefined && !(Number.isFinite(options.timeoutMs) && options.timeoutMs >= 0)) {
      throw new OptionsError(`${name}: "timeoutMs" must be a non-negative number`);
    }
    this.#name = name;
    this.#ownsClient = options.client === undefined;
    this.#client = options.client ?? new WorkloadApiClient(options);
    if (options.signal) {
      if (options.signal.aborted) this.close();
      else options.signal.addEventListener('abort', () => this.close(), { once: true, signal: this.#stop.signal });
    }
  }

  protected get client(): WorkloadApiClient {
    return this.#client;
  }

  /** Starts a watch; a watch that ends for good (InvalidArgument) makes the source unusable. */
  protected run(watch: (signal: AbortSignal) => Promise<void>): void {
    if (this.#stop.signal.aborted) return;
    watch(this.#stop.signal).catch((e: Error) => {
      if (this.#stop.signal.aborted) return;
      this.#fatal = e;
      this.#wake();
    });
  }

  protected reportError(e: Error): void {
    if (this.listenerCount('watchError') > 0) this.emit('watchError', e);
  }

  protected markUpdated(): void {
    this.#ready = true;
    this.#wake();
    this.emit('update');
  }

  #wake(): void {
    const w = this.#readyWaiters;
    this.#readyWaiters = [];
    for (const f of w) f();
  }

  /** @throws {@link SourceError} when closed or not ready. */
  protected check(): void {
    if (this.#stop.signal.aborted) throw new SourceError(`${this.#name} is closed`);
    if (!this.#ready) throw new SourceError(`${this.#name} has no update from the Workload API yet; await waitUntilReady()`, { cause: this.#fatal });
  }

  /** Whether the first update arrived (and the source is not closed). */
  get ready(): boolean {
    return this.#ready && !this.#stop.signal.aborted;
  }

  /**
   * Resolves once the first update arrived.
   * @throws {@link SourceError} on timeout, on close, or when the agent refused the watch (InvalidArgument).
   */
  waitUntilReady(timeoutMs?: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.#readyWaiters = this.#readyWaiters.filter((f) => f !== done);
        if (this.#stop.signal.aborted) reject(new SourceError(`${this.#name} is closed`));
        else if (this.#ready) resolve();
        else if (this.#fatal) reject(new SourceError(`${this.#name} cannot watch the Workload API: ${this.#fatal.message}`, { cause: this.#fatal }));
        else if (signal?.aborted) reject(new SourceError(`${this.#name}: waiting was aborted`, { cause: signal.reason }));
        else reject(new SourceError(`${this.#name} got no update from the Workload API within ${timeoutMs} ms`));
      };
      if (this.#ready || this.#fatal || this.#stop.signal.aborted || signal?.aborted) return done();
      this.#readyWaiters.push(done);
      this.#stop.signal.addEventListener('abort', done, { once: true });
      signal?.addEventListener('abort', done, { once: true });
      if (timeoutMs !== undefined) timer = setTimeout(done, timeoutMs);
    });
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#stop.signal.aborted;
  }

  /** Stops watching; every getter then throws `ERR_SOURCE_UNAVAILABLE`. Idempotent. */
  close(): void {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort();
    if (this.#ownsClient) this.#client.close();
  }

  /** @internal `create()`'s common tail: wait for readiness, close on failure. */
  protected async started(timeoutMs: number | undefined, signal: AbortSignal | undefined): Promise<this> {
    try {
      await this.waitUntilReady(timeoutMs, signal);
      return this;
    } catch (e) {
      this.close();
      throw e;
    }
  }
}

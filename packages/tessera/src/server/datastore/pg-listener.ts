import pg from 'pg';

/** Options of a {@link PgListener}. */
export interface PgListenerOptions {
  /** Connection settings (the pool's, minus pooling). */
  readonly config: pg.ClientConfig;
  readonly channel: string;
  /** Called for every notification, and after every (re)connection (anything may have been missed meanwhile). */
  readonly onSignal: () => void;
  readonly onError: (err: unknown) => void;
  /** First reconnection delay (ms); doubles up to `maxRetryMs`. */
  readonly retryMs?: number;
  readonly maxRetryMs?: number;
}

/**
 * A dedicated connection that LISTENs on a channel and reconnects with
 * backoff when it drops. It only signals; the reader re-reads from its last
 * revision, so notifications lost while disconnected do not matter.
 */
export class PgListener {
  readonly #options: PgListenerOptions;
  #client: pg.Client | undefined;
  #closed = false;
  #retryMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: PgListenerOptions) {
    this.#options = options;
    this.#retryMs = options.retryMs ?? 100;
  }

  /** Connects (in the background). */
  start(): void {
    void this.#connect();
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    const client = new pg.Client({ ...this.#options.config, keepAlive: true });
    this.#client = client;
    let failed = false;
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      if (this.#closed) return;
      this.#options.onError(err);
      client.removeAllListeners('notification');
      void client.end().catch(() => {});
      this.#scheduleReconnect();
    };
    client.on('error', fail);
    client.on('end', () => fail(new Error(`LISTEN connection for ${this.#options.channel} ended`)));
    client.on('notification', (n) => {
      if (n.channel === this.#options.channel) this.#options.onSignal();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${client.escapeIdentifier(this.#options.channel)}`);
    } catch (e) {
      fail(e);
      return;
    }
    if (this.#closed) {
      await client.end().catch(() => {});
      return;
    }
    this.#retryMs = this.#options.retryMs ?? 100;
    this.#options.onSignal();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#timer) return;
    const delay = this.#retryMs;
    this.#retryMs = Math.min(this.#retryMs * 2, this.#options.maxRetryMs ?? 5000);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#connect();
    }, delay);
    this.#timer.unref();
  }

  /** Closes the connection; no reconnection follows. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    const c = this.#client;
    this.#client = undefined;
    if (c) await c.end().catch(() => {});
  }
}

import { Code, ConnectError } from '@connectrpc/connect';
import type { SyncResponse } from '../../gen/tessera/v1/agent_pb.js';
import type { Logger } from '../../observe/logger.js';
import type { EntitlementUpdate } from '../svid/svid-manager.js';
import { bundleFromProto } from './bundle-proto.js';
import { isServerUnavailable, isUntrustedServer, type ServerConnection } from './server-connection.js';

/** Waits `ms` unless `signal` aborts first (injected in tests). */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

/** A real-timer {@link Sleep} that ends early when `signal` aborts. */
export const realSleep: Sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

/** Options of {@link SyncLoop}. */
export interface SyncLoopOptions {
  readonly conn: ServerConnection;
  /** Receives every assembled update (the first after each (re)connection is full). */
  readonly onUpdate: (update: EntitlementUpdate & { readonly revision: bigint }) => void | Promise<void>;
  /** Connection state changes (for health and logs). */
  readonly onState?: (connected: boolean, error?: unknown) => void;
  readonly logger?: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
  /** Reconnect delays: initial, doubling up to max. Default 500 ms → 30 s. */
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  readonly sleep?: Sleep;
}

/**
 * Keeps the server's Sync push stream open: assembles updates (messages up to
 * `more = false`), hands them on, and when the stream breaks reconnects with
 * exponential backoff, moving to the next server address when a server is
 * unreachable. Every (re)connection starts with a full update, so state is
 * resynchronised without a restart.
 */
export class SyncLoop {
  readonly #o: SyncLoopOptions;
  readonly #closed = new AbortController();
  #stream: AbortController | undefined;
  #running: Promise<void> | undefined;
  #connected = false;
  #delay = 0;

  constructor(options: SyncLoopOptions) {
    this.#o = options;
  }

  get connected(): boolean {
    return this.#connected;
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  /** Reopens the stream now (after the agent SVID was renewed: the new one authenticates). */
  restart(): void {
    this.#delay = 0;
    this.#stream?.abort();
  }

  async close(): Promise<void> {
    this.#closed.abort();
    this.#stream?.abort();
    await this.#running;
  }

  #setConnected(v: boolean, error?: unknown): void {
    if (this.#connected === v && error === undefined) return;
    this.#connected = v;
    this.#o.onState?.(v, error);
  }

  async #loop(): Promise<void> {
    const sleep = this.#o.sleep ?? realSleep;
    while (!this.#closed.signal.aborted) {
      const ac = new AbortController();
      this.#stream = ac;
      let restarted = false;
      try {
        await this.#readStream(ac.signal);
        if (!this.#closed.signal.aborted && !ac.signal.aborted) this.#o.logger?.warn('Sync stream ended by the server; reconnecting', { server: this.#o.conn.addressString });
      } catch (e) {
        if (this.#closed.signal.aborted) break;
        if (ac.signal.aborted) {
          restarted = true;
        } else {
          const ce = ConnectError.from(e);
          const unavailable = isServerUnavailable(e);
          const from = this.#o.conn.addressString;
          if (unavailable && this.#o.conn.failover() !== from) this.#o.logger?.warn('server unreachable; failing over', { from, to: this.#o.conn.addressString, error: ce.rawMessage });
          else if (ce.code === Code.PermissionDenied || ce.code === Code.Unauthenticated) this.#o.logger?.error('the server refuses this agent (evicted or banned?)', { server: from, error: ce.rawMessage });
          else if (isUntrustedServer(e)) this.#o.logger?.error('server not trusted', { server: from, error: ce.rawMessage });
          else this.#o.logger?.warn('Sync stream failed', { server: from, code: Code[ce.code], error: ce.rawMessage });
          this.#setConnected(false, e);
        }
      }
      this.#setConnected(false);
      if (this.#closed.signal.aborted) break;
      if (restarted) continue;
      this.#delay = this.#delay === 0 ? (this.#o.backoffInitialMs ?? 500) : Math.min(this.#delay * 2, this.#o.backoffMaxMs ?? 30_000);
      await sleep(this.#delay, this.#closed.signal);
    }
  }

  async #readStream(signal: AbortSignal): Promise<void> {
    let parts: SyncResponse[] = [];
    for await (const m of this.#o.conn.client().sync({}, { signal, timeoutMs: 0 })) {
      parts.push(m);
      if (m.more) continue;
      const update = {
        revision: parts[0]!.revision,
        full: parts[0]!.full,
        upsertedEntries: parts.flatMap((p) => p.upsertedEntries),
        removedEntryIds: parts.flatMap((p) => p.removedEntryIds),
        upsertedBundles: parts.flatMap((p) => p.upsertedBundles).map(bundleFromProto),
        removedBundles: parts.flatMap((p) => p.removedBundles),
      };
      parts = [];
      if (!this.#connected) this.#o.logger?.info('synced with server', { server: this.#o.conn.addressString, entries: update.upsertedEntries.length });
      this.#delay = 0;
      this.#setConnected(true);
      await this.#o.onUpdate(update);
    }
  }
}

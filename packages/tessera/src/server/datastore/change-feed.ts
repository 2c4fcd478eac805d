import type { Change, ChangeEvent, ChangeListener, Watch } from './types.js';

/** Where a {@link ChangeFeed} reads committed changes from. */
export interface ChangeReader {
  /** Changes with a revision above `after`, oldest first, at most `limit`. */
  readChanges(after: number, limit: number): Promise<Change[]>;
  /** The highest revision deleted by pruning (0 when none). */
  prunedThrough(): Promise<number>;
}

/** Options of a {@link ChangeFeed}. */
export interface ChangeFeedOptions {
  /** Re-read the log this often even without a signal (ms; 0 = never). A safety net under NOTIFY. */
  pollIntervalMs: number;
  /** Delay before retrying after a failed read (ms). */
  retryMs: number;
  /** Receives read failures and listener exceptions. */
  onError: (err: unknown) => void;
  /** Called when the first watcher registers (e.g. to open a LISTEN connection). */
  onFirstWatch?: () => void;
}

interface Watcher {
  cursor: number;
  readonly listener: ChangeListener;
}

const READ_BATCH = 1000;

/**
 * Tails the `changes` table for watchers. Commits (local ones, and NOTIFYs
 * from other servers) only *signal* that something may be new; the feed then
 * reads every row after the lowest watcher cursor, so nothing is lost when
 * signals coalesce, arrive late, or the signalling connection drops. Each
 * watcher sees every revision above its cursor exactly once, in order.
 *
 * Reads never overlap: a signal during a read makes the read loop go round
 * once more.
 */
export class ChangeFeed {
  readonly #reader: ChangeReader;
  readonly #options: ChangeFeedOptions;
  readonly #watchers = new Set<Watcher>();
  #running = false;
  #again = false;
  #closed = false;
  #started = false;
  #poll: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;

  constructor(reader: ChangeReader, options: ChangeFeedOptions) {
    this.#reader = reader;
    this.#options = options;
  }

  /** Registers a watcher for revisions above `fromRevision`. */
  watch(fromRevision: number, listener: ChangeListener): Watch {
    if (!Number.isSafeInteger(fromRevision) || fromRevision < 0) throw new RangeError('fromRevision must be a non-negative whole number');
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    const w: Watcher = { cursor: fromRevision, listener };
    if (this.#closed) return { close() {} };
    this.#watchers.add(w);
    if (!this.#started) {
      this.#started = true;
      this.#options.onFirstWatch?.();
      if (this.#options.pollIntervalMs > 0) {
        this.#poll = setInterval(() => this.signal(), this.#options.pollIntervalMs);
        this.#poll.unref();
      }
    }
    this.signal();
    return { close: () => void this.#watchers.delete(w) };
  }

  /** Something may have been committed: read the log (now, or right after the current read). */
  signal(): void {
    if (this.#closed || this.#watchers.size === 0) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    void this.#run().finally(() => {
      this.#running = false;
    });
  }

  async #run(): Promise<void> {
    try {
      do {
        this.#again = false;
        while (await this.#readOnce());
      } while (this.#again && !this.#closed);
    } catch (e) {
      this.#options.onError(e);
      if (!this.#closed && !this.#retry) {
        this.#retry = setTimeout(() => {
          this.#retry = undefined;
          this.signal();
        }, this.#options.retryMs);
        this.#retry.unref();
      }
    }
  }

  /** Reads and delivers one batch; true when a full batch came (more may follow). */
  async #readOnce(): Promise<boolean> {
    if (this.#closed || this.#watchers.size === 0) return false;
    const from = Math.min(...[...this.#watchers].map((w) => w.cursor));
    const rows = await this.#reader.readChanges(from, READ_BATCH);
    if (rows.length > 0 && rows[0]!.revision > from + 1) {
      // A hole: pruned rows (or, harmlessly, sequence values of failed commits).
      const floor = await this.#reader.prunedThrough();
      for (const w of this.#watchers) {
        if (w.cursor < floor) {
          w.cursor = floor;
          this.#deliver(w, { kind: 'resync', revision: floor });
        }
      }
    }
    for (const c of rows) {
      for (const w of this.#watchers) {
        if (c.revision > w.cursor) {
          w.cursor = c.revision;
          this.#deliver(w, c);
        }
      }
    }
    return rows.length === READ_BATCH;
  }

  #deliver(w: Watcher, event: ChangeEvent): void {
    if (!this.#watchers.has(w)) return;
    try {
      w.listener(event);
    } catch (e) {
      this.#options.onError(e);
    }
  }

  /** Stops all watchers and timers. */
  close(): void {
    this.#closed = true;
    this.#watchers.clear();
    clearInterval(this.#poll);
    clearTimeout(this.#retry);
  }
}

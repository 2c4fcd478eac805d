/**
 * Retry timing of Workload API watches (go-spiffe's `BackoffStrategy`).
 * Injectable so that tests never wait for real time.
 */

/** One retry sequence: `next()` gives the delay before the next attempt, `reset()` starts over. */
export interface Backoff {
  next(): number;
  reset(): void;
}

/** Makes a fresh {@link Backoff} for each watch. */
export type BackoffStrategy = () => Backoff;

/** Waits `ms`, resolving early (without error) when `signal` aborts. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

/**
 * Exponential backoff: `initialMs`, doubling, capped at `maxMs`; reset after
 * every message received. Defaults 1 s and 30 s, as go-spiffe's backoff.
 * @example
 * ```ts
 * new WorkloadApiClient({ backoff: exponentialBackoff({ initialMs: 10, maxMs: 100 }) });
 * ```
 */
export function exponentialBackoff(options: { initialMs?: number; maxMs?: number } = {}): BackoffStrategy {
  const initial = options.initialMs ?? 1000;
  const max = options.maxMs ?? 30_000;
  return () => {
    let n = 0;
    return {
      next(): number {
        const d = Math.min(max, initial * 2 ** n);
        if (d < max) n++;
        return d;
      },
      reset(): void {
        n = 0;
      },
    };
  };
}

/** @internal The real-time {@link Sleep}. */
export const realSleep: Sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = (): void => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });

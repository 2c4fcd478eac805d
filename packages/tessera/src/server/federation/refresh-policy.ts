/**
 * When to fetch a federated bundle again (SPIFFE Federation §5; spec/spiffe.md
 * §5): every `spiffe_refresh_hint` seconds, about 5 minutes when the bundle
 * has none; the hint is clamped so a hostile or broken endpoint can neither
 * make us poll it in a tight loop nor stop us polling for days. Failures back
 * off exponentially, never beyond the default period.
 */

/** Polling period when the bundle has no `spiffe_refresh_hint` (§5: "about 5 minutes"). */
export const DEFAULT_REFRESH_SECONDS = 300;
/** Floor of the polling period, whatever the hint says. */
export const MIN_REFRESH_SECONDS = 10;
/** Ceiling of the polling period, whatever the hint says. */
export const MAX_REFRESH_SECONDS = 3600;
/** First retry delay after a failure; doubles per consecutive failure up to {@link DEFAULT_REFRESH_SECONDS}. */
export const FIRST_RETRY_SECONDS = 10;

/**
 * Seconds until the next fetch after a successful one.
 * @example
 * ```ts
 * refreshIntervalSeconds(undefined); // 300
 * refreshIntervalSeconds(1);         // 10
 * refreshIntervalSeconds(86_400);    // 3600
 * ```
 */
export function refreshIntervalSeconds(hint: number | undefined): number {
  if (hint === undefined || hint === 0) return DEFAULT_REFRESH_SECONDS;
  return Math.min(MAX_REFRESH_SECONDS, Math.max(MIN_REFRESH_SECONDS, hint));
}

/**
 * Seconds until the next attempt after `failures` consecutive failures (≥ 1).
 * @example
 * ```ts
 * retryDelaySeconds(1); // 10
 * retryDelaySeconds(3); // 40
 * retryDelaySeconds(9); // 300
 * ```
 */
export function retryDelaySeconds(failures: number): number {
  const n = Math.max(1, Math.min(failures, 30));
  return Math.min(DEFAULT_REFRESH_SECONDS, FIRST_RETRY_SECONDS * 2 ** (n - 1));
}

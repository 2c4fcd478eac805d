/**
 * Human-readable times for CLI output: `2025-01-02T03:04:05Z`, `59m 50s`,
 * `expired 3h ago`. Always relative to the injected clock, never `Date.now()`.
 */

const UNITS: [string, number][] = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
];

/**
 * A duration as its two largest non-zero units, rounded down: `3h`,
 * `59m 50s`, `2d 4h`; `0s` under a second. The sign is ignored.
 *
 * @example
 * ```ts
 * formatDuration(3_590_000); // "59m 50s"
 * ```
 */
export function formatDuration(ms: number): string {
  let rest = Math.floor(Math.abs(ms) / 1000) * 1000;
  const parts: string[] = [];
  for (const [unit, size] of UNITS) {
    if (parts.length === 2) break;
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0) parts.push(`${n}${unit}`);
    else if (parts.length > 0) break;
  }
  return parts.length > 0 ? parts.join(' ') : '0s';
}

/**
 * An instant as ISO 8601 UTC without milliseconds when they are zero.
 *
 * @example
 * ```ts
 * formatTime(new Date(0)); // "1970-01-01T00:00:00Z"
 * ```
 */
export function formatTime(d: Date): string {
  return d.toISOString().replace('.000Z', 'Z');
}

/** Where `now` lies in a validity period. */
export type ValidityStatus = 'valid' | 'expired' | 'not-yet-valid';

/**
 * Status of a validity period at `now` and a phrase for it:
 * `expires in 59m 50s`, `expired 3h ago`, `not yet valid: starts in 2h`.
 *
 * @example
 * ```ts
 * describeValidity(cert.notBefore, cert.notAfter, io.now()).text;
 * ```
 */
export function describeValidity(notBefore: Date, notAfter: Date, now: Date): { status: ValidityStatus; text: string } {
  if (now.getTime() < notBefore.getTime()) {
    return { status: 'not-yet-valid', text: `not yet valid: starts in ${formatDuration(notBefore.getTime() - now.getTime())}` };
  }
  if (now.getTime() > notAfter.getTime()) {
    return { status: 'expired', text: `expired ${formatDuration(now.getTime() - notAfter.getTime())} ago` };
  }
  return { status: 'valid', text: `expires in ${formatDuration(notAfter.getTime() - now.getTime())}` };
}

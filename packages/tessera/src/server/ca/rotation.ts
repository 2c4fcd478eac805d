/**
 * SPIRE's CA rotation scheme as pure functions of the slots and the time
 * (spec/spiffe.md §6), shared by X.509 CAs and JWT signing keys:
 *
 * - `current` signs; `next` waits, already published in the bundle, so every
 *   peer trusts it before anything it signs shows up;
 * - `next` is PREPARED at 1/2 of `current`'s lifetime and ACTIVATED at 5/6;
 * - an activated-away authority is RETIRED: it stays in the bundle until its
 *   NotAfter, after which nothing it signed can still be valid (SVID
 *   lifetimes are capped at the authority's), then it is removed;
 * - an expired `current` (a server that was down) is replaced at once.
 *
 * No timers here: the server calls `tick(now)` from its scheduler and tests
 * call it with an injected clock.
 */

/** Anything with a validity period. */
export interface Lifetime {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** The slots of one kind of authority. */
export interface Slots<T extends Lifetime> {
  readonly current: T | undefined;
  readonly next: T | undefined;
  /** Retired authorities still published, oldest first. */
  readonly retired: readonly T[];
}

/** When `next` is prepared: half of `current`'s lifetime. */
export function preparationTime(l: Lifetime): number {
  const a = l.notBefore.getTime();
  return a + (l.notAfter.getTime() - a) / 2;
}

/** When `next` becomes `current`: five sixths of `current`'s lifetime. */
export function activationTime(l: Lifetime): number {
  const a = l.notBefore.getTime();
  return a + ((l.notAfter.getTime() - a) * 5) / 6;
}

/** What `tick` must do. */
export interface RotationPlan<T extends Lifetime> {
  /** Create a new authority (it becomes `next`, or `current` at once when `activate` is also set and `next` is unusable). */
  readonly prepare: boolean;
  /** Make `next` (or the newly prepared authority) `current`; retire the old `current`. */
  readonly activate: boolean;
  /** A `next` that expired before it was ever used: drop it. */
  readonly dropNext: boolean;
  /** Retired authorities whose NotAfter has passed: remove them from the bundle. */
  readonly expired: readonly T[];
}

function usable(a: Lifetime | undefined, now: number): boolean {
  return a !== undefined && now < a.notAfter.getTime();
}

/** Decides what to do at `now` (milliseconds). */
export function planRotation<T extends Lifetime>(slots: Slots<T>, now: number): RotationPlan<T> {
  const expired = slots.retired.filter((r) => now > r.notAfter.getTime());
  const nextOk = usable(slots.next, now);
  const dropNext = slots.next !== undefined && !nextOk;
  const cur = slots.current;
  if (cur === undefined || !usable(cur, now) || now >= activationTime(cur)) {
    return { prepare: !nextOk, activate: true, dropNext, expired };
  }
  return { prepare: !nextOk && now >= preparationTime(cur), activate: false, dropNext, expired };
}

/** The next instant at which {@link planRotation} will ask for something, or undefined when nothing is scheduled. */
export function nextRotationTime<T extends Lifetime>(slots: Slots<T>): number | undefined {
  const times: number[] = slots.retired.map((r) => r.notAfter.getTime() + 1);
  const cur = slots.current;
  if (cur !== undefined) {
    times.push(activationTime(cur));
    if (slots.next === undefined) times.push(preparationTime(cur));
  }
  if (slots.next !== undefined) times.push(slots.next.notAfter.getTime());
  return times.length === 0 ? undefined : Math.min(...times);
}

/** Share of an SVID's lifetime after which it is renewed (SPIRE: half). */
export const ROTATE_AT_FRACTION = 0.5;
/** ± jitter on that share, so that a fleet's SVIDs issued together don't rotate together. */
export const ROTATE_JITTER = 0.1;

/**
 * When to renew an SVID valid from `notBefore` to `notAfter`: at ½ of its
 * lifetime ± 10 % of the lifetime, `random()` in [0, 1) choosing where in
 * that window (injected in tests).
 */
export function rotationTime(notBefore: Date, notAfter: Date, random: () => number): Date {
  const life = notAfter.getTime() - notBefore.getTime();
  const drawn = random();
  // NaN would make an Invalid Date: the SVID would never rotate.
  const r = Number.isNaN(drawn) ? 0.5 : Math.min(Math.max(drawn, 0), 1);
  const fraction = ROTATE_AT_FRACTION + (2 * r - 1) * ROTATE_JITTER;
  return new Date(notBefore.getTime() + Math.max(0, life) * fraction);
}

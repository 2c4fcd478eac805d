/**
 * Character classes of SPIFFE-ID §2.1 (trust domain) and §2.2 (path).
 * Lookup tables keep validation at one array read per byte.
 * @internal
 */

function table(chars: string): Uint8Array {
  const t = new Uint8Array(128);
  for (const c of chars) t[c.charCodeAt(0)] = 1;
  return t;
}

const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const DIGITS = '0123456789';

const TRUST_DOMAIN_CHARS = table(LOWER + DIGITS + '.-_');
const PATH_CHARS = table(LOWER + LOWER.toUpperCase() + DIGITS + '.-_');

/** Whether char code `c` may appear in a trust domain name. */
export function isTrustDomainChar(c: number): boolean {
  return c < 128 && TRUST_DOMAIN_CHARS[c] === 1;
}

/** Whether char code `c` may appear in a path segment. */
export function isPathChar(c: number): boolean {
  return c < 128 && PATH_CHARS[c] === 1;
}

export const ERR_TD_CHARS =
  'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores';
export const ERR_PATH_CHARS =
  'path segment characters are limited to letters, numbers, dots, dashes, and underscores';
export const ERR_EMPTY_SEGMENT = 'path cannot contain empty segments';
export const ERR_DOT_SEGMENT = 'path cannot contain dot segments';
export const ERR_TRAILING_SLASH = 'path cannot have a trailing slash';
export const ERR_LEADING_SLASH = 'path must have a leading slash';
export const ERR_EMPTY = 'cannot be empty';
export const ERR_SCHEME = 'scheme is missing or invalid';
export const ERR_MISSING_TD = 'trust domain is missing';
export const ERR_TD_TOO_LONG = 'trust domain cannot be longer than 255 bytes';

import { SpiffeIdError } from '../errors/index.js';
import {
  ERR_DOT_SEGMENT,
  ERR_EMPTY_SEGMENT,
  ERR_LEADING_SLASH,
  ERR_PATH_CHARS,
  ERR_TRAILING_SLASH,
  isPathChar,
} from './charset.js';

/**
 * Returns the reason `path` is not a valid SPIFFE ID path, or `undefined` if it is.
 * The empty path (root) is valid. Implements SPIFFE-ID §2.2.
 * @internal
 */
export function pathError(path: string, from = 0): string | undefined {
  const end = path.length;
  if (from === end) return undefined;
  if (path.charCodeAt(from) !== 0x2f) return ERR_LEADING_SLASH;
  let segStart = from + 1;
  for (let i = from + 1; i <= end; i++) {
    if (i === end || path.charCodeAt(i) === 0x2f) {
      const len = i - segStart;
      if (len === 0) return i === end ? ERR_TRAILING_SLASH : ERR_EMPTY_SEGMENT;
      if (
        (len === 1 && path.charCodeAt(segStart) === 0x2e) ||
        (len === 2 && path.charCodeAt(segStart) === 0x2e && path.charCodeAt(segStart + 1) === 0x2e)
      ) {
        return ERR_DOT_SEGMENT;
      }
      segStart = i + 1;
      continue;
    }
    if (!isPathChar(path.charCodeAt(i))) return ERR_PATH_CHARS;
  }
  return undefined;
}

/**
 * Validates a SPIFFE ID path (SPIFFE-ID §2.2): empty, or `/`-separated
 * segments of `[a-zA-Z0-9._-]`, with no empty, `.` or `..` segment and no
 * trailing slash.
 *
 * @throws {@link SpiffeIdError} `ERR_SPIFFEID_INVALID` naming the broken rule.
 * @example
 * ```ts
 * validatePath('/ns/backend/sa/default'); // ok
 * validatePath('/a//b'); // throws "path cannot contain empty segments"
 * ```
 */
export function validatePath(path: string): void {
  const err = pathError(path);
  if (err !== undefined) throw new SpiffeIdError(err);
}

/**
 * Validates one path segment (no slashes) and returns it.
 * @throws {@link SpiffeIdError} on an empty, dot or badly-charactered segment.
 */
export function validatePathSegment(segment: string): string {
  if (segment === '') throw new SpiffeIdError(ERR_EMPTY_SEGMENT);
  if (segment.includes('/')) throw new SpiffeIdError(ERR_PATH_CHARS);
  validatePath('/' + segment);
  return segment;
}

/** What a socket-level failure means for the user, by errno. */
const CONNECT_REASONS: Record<string, string> = {
  ENOENT: 'no socket at this path',
  ECONNREFUSED: 'nothing is listening on the socket',
  ENOTSOCK: 'the path is not a socket',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ENOTDIR: 'a parent of the path is not a directory',
  ECONNRESET: 'the connection was reset',
  EPIPE: 'the connection was closed',
};

/** The errno code (`ENOENT`, …) somewhere in the cause chain of `e`, if any. */
export function socketErrno(e: unknown): string | undefined {
  let cause: unknown = e;
  for (let depth = 0; depth < 6 && cause instanceof Error; depth++) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    cause = cause.cause;
  }
  return undefined;
}

/**
 * A one-line reason when a call failed because the Unix socket could not be
 * reached (missing, nobody listening, permissions…), else `undefined` (the
 * failure came from the server and its own message should be shown).
 */
export function socketFailureReason(e: unknown): string | undefined {
  const errno = socketErrno(e);
  return errno === undefined ? undefined : CONNECT_REASONS[errno];
}

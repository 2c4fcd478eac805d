/**
 * The two ways a command fails, mapped to exit codes by `main`: a bad
 * invocation (exit 2, with a pointer to `--help`) and a failure to do what
 * was asked (exit 1). Neither prints a stack trace.
 */

/** Exit codes of the `tessera` CLI. */
export const ExitCode = {
  ok: 0,
  /** The command ran and failed (bad input file, verification failed, ...). */
  failure: 1,
  /** The command line itself is wrong: unknown command or flag, missing argument. */
  usage: 2,
} as const;

/**
 * The command line is wrong (unknown command or flag, missing or extra
 * argument, invalid flag value). `main` prints the message and a hint to
 * run `--help`, and exits with {@link ExitCode.usage}.
 *
 * @example
 * ```ts
 * throw new UsageError('unknown flag: -bundel');
 * ```
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * The command could not do what was asked. `main` prints the message alone
 * on stderr and exits with {@link ExitCode.failure}.
 *
 * @example
 * ```ts
 * throw new CommandError(`cannot read "${file}": no such file or directory`);
 * ```
 */
export class CommandError extends Error {
  override readonly name = 'CommandError';
}

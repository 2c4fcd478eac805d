/**
 * Entry point of the `tessera` CLI (`bin/tessera.js`). Adding a command
 * group is one file under `commands/` and one line in {@link ROOT}.
 */
import { runCommandTree, type CliIo, type CommandGroup } from './command.js';
import { ExitCode } from './errors.js';
import { svidCommands } from './commands/svid.js';
import { serverCommands } from './commands/server-group.js';
import { agentCommands } from './commands/agent-group.js';

export type { CliIo, OutputStream } from './command.js';
export { ExitCode } from './errors.js';

/** The root of the command tree. */
export const ROOT: CommandGroup = {
  name: 'tessera',
  summary: 'Tessera: SPIFFE workload identity and mutually authenticated network policy.',
  description: [
    'Tessera: SPIFFE workload identity and mutually authenticated network policy.',
    '',
    "Every command has -h/--help ('tessera help <command>' works too). Flags may be written",
    "-flag or --flag, with the value after a space or '='; SPIRE's spellings (-trustDomain) work too.",
    'Exit codes: 0 success, 1 failure, 2 bad command line.',
  ].join('\n'),
  commands: [svidCommands, serverCommands, agentCommands],
};

/**
 * Runs the CLI with `argv` (without the node and script paths) and returns
 * the exit code: 0 success, 1 failure, 2 bad command line. Never throws and
 * never prints a stack trace.
 *
 * @example
 * ```ts
 * process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, now: () => new Date() });
 * ```
 */
export async function main(argv: string[], io: CliIo): Promise<number> {
  try {
    return await runCommandTree(ROOT, argv, io);
  } catch (e) {
    // A bug, not a user error: say so in one line rather than dump a stack.
    io.stderr.write(`tessera: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
    return ExitCode.failure;
  }
}

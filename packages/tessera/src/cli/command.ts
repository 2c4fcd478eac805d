/**
 * The command tree of `tessera <noun> <verb> [flags] [args]`: groups hold
 * commands (or further groups), commands declare their flags and
 * arguments and run. Each command group lives in its own file under
 * `commands/` and is listed once in `main.ts`.
 */
import { CommandError, ExitCode, UsageError } from './errors.js';
import { HELP_FLAG, flagDisplayName, parseFlags, type FlagSpec, type ParsedFlags } from './flags.js';

/** Where a command writes (`process.stdout` or a test's capture). */
export interface OutputStream {
  write(chunk: string): unknown;
}

/** What the CLI may touch besides files: its output streams and the clock. */
export interface CliIo {
  readonly stdout: OutputStream;
  readonly stderr: OutputStream;
  /** The current time; injected so time-dependent output is testable. */
  readonly now: () => Date;
}

/** A positional argument of a command, for usage lines and arity checks. */
export interface ArgSpec {
  /** Shown as `<name>`, e.g. `svid.pem`. */
  readonly name: string;
  readonly description: string;
  readonly optional?: boolean;
  /** Takes every remaining argument (last argument only). */
  readonly variadic?: boolean;
}

/** What a command's `run` receives. */
export interface CommandContext {
  readonly io: CliIo;
  readonly flags: ParsedFlags;
  /** Positional arguments, already checked against the command's {@link ArgSpec}s. */
  readonly args: readonly string[];
  /** The full command, e.g. `tessera svid verify`, for messages. */
  readonly commandPath: string;
}

/** A runnable command: the verb of `tessera <noun> <verb>`. */
export interface Command {
  readonly name: string;
  /** One line for the parent's command list. */
  readonly summary: string;
  /** Paragraphs shown by `--help` below the usage line; default: the summary. */
  readonly description?: string;
  readonly args?: readonly ArgSpec[];
  readonly flags?: readonly FlagSpec[];
  readonly examples?: readonly string[];
  /**
   * Does the work and returns the exit code. Throw {@link CommandError} to
   * fail with a message (exit 1) or {@link UsageError} for a bad invocation (exit 2).
   */
  run(ctx: CommandContext): Promise<number> | number;
}

/** A noun grouping commands (or further groups), e.g. `svid`. */
export interface CommandGroup {
  readonly name: string;
  readonly summary: string;
  readonly description?: string;
  readonly commands: readonly (Command | CommandGroup)[];
}

function isGroup(node: Command | CommandGroup): node is CommandGroup {
  return 'commands' in node;
}

const HELP_TOKENS = new Set(['-h', '--help', '-help']);
const SPELLING_NOTE =
  "Flags may be written -flag or --flag, with the value after a space or '='; SPIRE's spellings (-trustDomain, -spiffeID) work too.";

function table(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([l]) => l.length));
  return rows.map(([l, r]) => `  ${l.padEnd(width)}   ${r}`.trimEnd()).join('\n');
}

function argUsage(a: ArgSpec): string {
  const s = `<${a.name}>${a.variadic ? '...' : ''}`;
  return a.optional ? `[${s}]` : s;
}

/** Help text of a group: its commands. */
export function groupHelp(group: CommandGroup, path: string): string {
  const rows = group.commands.map((c): [string, string] => [c.name, c.summary]);
  return [
    `Usage: ${path} <command> [flags] [arguments]`,
    '',
    group.description ?? group.summary,
    '',
    'Commands:',
    table(rows),
    '',
    `Run '${path} <command> --help' for more about a command.`,
    '',
  ].join('\n');
}

function flagRow(f: FlagSpec): [string, string] {
  const short = (f.aliases ?? []).filter((a) => a.length === 1).map((a) => `-${a}, `).join('');
  const value = f.kind === 'string' ? ` <${f.valueName ?? 'value'}>` : '';
  const notes: string[] = [];
  if (f.required) notes.push('required');
  if (f.multiple) notes.push('repeatable');
  if (f.choices) notes.push(`one of: ${f.choices.join(', ')}`);
  if (f.default !== undefined) notes.push(`default: ${f.default}`);
  return [`${short}${flagDisplayName(f)}${value}`, f.description + (notes.length > 0 ? ` (${notes.join('; ')})` : '')];
}

/** Help text of a command: usage, arguments, flags, examples. */
export function commandHelp(cmd: Command, path: string): string {
  const args = cmd.args ?? [];
  const lines = [`Usage: ${path} [flags]${args.map((a) => ' ' + argUsage(a)).join('')}`, '', cmd.description ?? cmd.summary, ''];
  if (args.length > 0) lines.push('Arguments:', table(args.map((a) => [argUsage(a), a.description])), '');
  lines.push('Flags:', table([...(cmd.flags ?? []), HELP_FLAG].map(flagRow)), '');
  if (cmd.examples && cmd.examples.length > 0) lines.push('Examples:', ...cmd.examples.map((e) => `  ${e}`), '');
  lines.push(SPELLING_NOTE, '');
  return lines.join('\n');
}

function checkArity(cmd: Command, args: readonly string[]): void {
  const specs = cmd.args ?? [];
  const required = specs.filter((a) => !a.optional && !a.variadic).length;
  const variadic = specs.some((a) => a.variadic);
  if (args.length < required) {
    const missing = specs.slice(args.length).filter((a) => !a.optional);
    throw new UsageError(`missing argument${missing.length > 1 ? 's' : ''}: ${missing.map(argUsage).join(' ')}`);
  }
  if (!variadic && args.length > specs.length) {
    throw new UsageError(`unexpected argument${args.length - specs.length > 1 ? 's' : ''}: ${args.slice(specs.length).join(' ')}`);
  }
}

function unknownCommand(name: string, group: CommandGroup, path: string): UsageError {
  const near = group.commands.filter((c) => c.name.startsWith(name.slice(0, 2)) && name.length > 1).map((c) => c.name);
  return new UsageError(`unknown command "${name}" for "${path}"${near.length > 0 ? ` (did you mean ${near.join(' or ')}?)` : ''}`);
}

/**
 * Runs the command `argv` names in the tree under `root` and returns the
 * exit code: help on `-h`/`--help` (stdout, 0) at any level, usage errors
 * on stderr with exit 2, {@link CommandError}s on stderr with exit 1.
 * Other errors propagate to the caller.
 *
 * @example
 * ```ts
 * const code = await runCommandTree(root, ['svid', 'inspect', 'svid.pem'], io);
 * ```
 */
export async function runCommandTree(root: CommandGroup, argv: readonly string[], io: CliIo): Promise<number> {
  let node: Command | CommandGroup = root;
  let path = root.name;
  let i = 0;
  try {
    while (isGroup(node)) {
      const group: CommandGroup = node;
      const arg = argv[i];
      if (arg === undefined) {
        io.stderr.write(groupHelp(group, path));
        return ExitCode.usage;
      }
      if (HELP_TOKENS.has(arg)) {
        io.stdout.write(groupHelp(group, path));
        return ExitCode.ok;
      }
      if (arg === 'help' && group === root) {
        // `tessera help svid verify` is `tessera svid verify --help`.
        return await runCommandTree(root, [...argv.slice(i + 1), '--help'], io);
      }
      if (arg.startsWith('-')) throw new UsageError(`unknown flag: ${arg.split('=')[0]} (flags go after the command)`);
      const next: Command | CommandGroup | undefined = group.commands.find((c) => c.name === arg);
      if (next === undefined) throw unknownCommand(arg, group, path);
      node = next;
      path = `${path} ${arg}`;
      i++;
    }
    const cmd: Command = node;
    const flags = parseFlags(argv.slice(i), cmd.flags ?? []);
    if (flags.help) {
      io.stdout.write(commandHelp(cmd, path));
      return ExitCode.ok;
    }
    checkArity(cmd, flags.positionals);
    return await cmd.run({ io, flags, args: flags.positionals, commandPath: path });
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`${path}: ${e.message}\nRun '${path} --help' for usage.\n`);
      return ExitCode.usage;
    }
    if (e instanceof CommandError) {
      io.stderr.write(`${e.message}\n`);
      return ExitCode.failure;
    }
    throw e;
  }
}

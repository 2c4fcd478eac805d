/**
 * The CLI's flag parser. It accepts the GNU spellings (`--bundle f`,
 * `--bundle=f`) and SPIRE's Go-flag spellings (`-bundle f`, `-trustDomain td`,
 * `-spiffeID id`), so commands copied from SPIRE documentation work: a flag
 * name matches whatever its dashes and letter case, `trust-domain`,
 * `trustDomain` and `trustdomain` being one flag. Flags and positional
 * arguments may be interleaved; `--` ends the flags. Unknown flags are
 * errors, never ignored.
 */
import { UsageError } from './errors.js';

/** Declaration of one flag of a command. */
export interface FlagSpec {
  /** Canonical kebab-case name, shown as `--name` in help (e.g. `trust-domain`). */
  readonly name: string;
  /** `string` flags take a value; `boolean` flags take none (or `=true`/`=false`). */
  readonly kind: 'string' | 'boolean';
  /** One line for `--help`. */
  readonly description: string;
  /** Placeholder shown in help for the value, e.g. `file`; default `value`. */
  readonly valueName?: string;
  /** Other accepted names, e.g. a one-letter `f`, or SPIRE's `spiffeID`. */
  readonly aliases?: readonly string[];
  /** May be given several times; values are collected in order. */
  readonly multiple?: boolean;
  /** Must be given (string flags). */
  readonly required?: boolean;
  /** The only accepted values (string flags). */
  readonly choices?: readonly string[];
  /** Value used when the flag is absent (string flags). */
  readonly default?: string;
}

/** The built-in `-h`/`--help` flag every command has. */
export const HELP_FLAG: FlagSpec = { name: 'help', kind: 'boolean', aliases: ['h'], description: 'Show help for this command' };

type FlagValue = string | boolean | string[];

/**
 * The result of {@link parseFlags}. Values are read with typed accessors
 * named after the flag's canonical name; asking for an undeclared flag, or
 * with the wrong accessor, is a programming error and throws.
 */
export class ParsedFlags {
  /** Arguments that are not flags, in order. */
  readonly positionals: readonly string[];
  /** Whether `-h`/`--help` was given. */
  readonly help: boolean;
  readonly #specs: ReadonlyMap<string, FlagSpec>;
  readonly #values: ReadonlyMap<string, FlagValue>;

  /** @internal Built by {@link parseFlags}. */
  constructor(specs: ReadonlyMap<string, FlagSpec>, values: ReadonlyMap<string, FlagValue>, positionals: readonly string[], help: boolean) {
    this.#specs = specs;
    this.#values = values;
    this.positionals = positionals;
    this.help = help;
  }

  /** The value of a single-valued string flag, its default, or `undefined`. */
  string(name: string): string | undefined {
    const spec = this.#spec(name, 'string', false);
    const v = this.#values.get(name);
    return typeof v === 'string' ? v : spec.default;
  }

  /** Every value of a repeatable string flag, in command-line order. */
  strings(name: string): string[] {
    this.#spec(name, 'string', true);
    const v = this.#values.get(name);
    return Array.isArray(v) ? [...v] : [];
  }

  /** Whether a boolean flag is set. */
  boolean(name: string): boolean {
    this.#spec(name, 'boolean', false);
    return this.#values.get(name) === true;
  }

  /** Whether the flag appeared on the command line at all. */
  has(name: string): boolean {
    return this.#values.has(name);
  }

  #spec(name: string, kind: FlagSpec['kind'], multiple: boolean): FlagSpec {
    const spec = this.#specs.get(name);
    if (spec === undefined || spec.kind !== kind || (spec.multiple === true) !== multiple) {
      throw new Error(`flag "${name}" is not declared as a ${multiple ? 'repeatable ' : ''}${kind} flag`);
    }
    return spec;
  }
}

/** Folds a flag name to the form spellings are compared in: no dashes, lower case. */
function fold(name: string): string {
  return name.replaceAll('-', '').replaceAll('_', '').toLowerCase();
}

/** How a flag is written in help and messages: `--trust-domain`. */
export function flagDisplayName(spec: FlagSpec): string {
  return `--${spec.name}`;
}

/** Builds the spelling → spec table, refusing declarations that would collide. */
function lookupTable(specs: readonly FlagSpec[]): Map<string, FlagSpec> {
  const table = new Map<string, FlagSpec>();
  for (const spec of [...specs, HELP_FLAG]) {
    for (const n of [spec.name, ...(spec.aliases ?? [])]) {
      const key = fold(n);
      const other = table.get(key);
      if (other !== undefined && other !== spec) throw new Error(`flag spelling "${n}" of --${spec.name} collides with --${other.name}`);
      table.set(key, spec);
    }
  }
  return table;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

function suggestion(name: string, specs: readonly FlagSpec[]): string {
  const wanted = fold(name);
  if (wanted.length < 2) return '';
  let best: FlagSpec | undefined;
  let bestDistance = Infinity;
  for (const spec of specs) {
    for (const n of [spec.name, ...(spec.aliases ?? [])]) {
      const d = editDistance(wanted, fold(n));
      if (d < bestDistance) {
        best = spec;
        bestDistance = d;
      }
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(wanted.length / 3)) ? ` (did you mean ${flagDisplayName(best)}?)` : '';
}

function parseBoolean(token: string, value: string): boolean {
  switch (value.toLowerCase()) {
    case 'true':
    case '1':
      return true;
    case 'false':
    case '0':
      return false;
    default:
      throw new UsageError(`invalid value "${value}" for boolean flag ${token}: use true or false`);
  }
}

/**
 * Parses `argv` against the declared flags (plus the built-in `-h`/`--help`).
 *
 * When help is asked for, errors in the rest of the command line are not
 * reported: the user is about to read how to fix them.
 *
 * @throws {@link UsageError} for an unknown flag, a missing value, a value
 * outside `choices`, a single-valued flag given twice or a missing required flag.
 * @example
 * ```ts
 * const flags = parseFlags(['-bundle', 'b.pem', 'svid.pem'], [{ name: 'bundle', kind: 'string', description: '...' }]);
 * flags.string('bundle'); // "b.pem"
 * flags.positionals;      // ["svid.pem"]
 * ```
 */
export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[]): ParsedFlags {
  const table = lookupTable(specs);
  const values = new Map<string, FlagValue>();
  const positionals: string[] = [];
  const errors: string[] = [];
  let help = false;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    const body = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
    const eq = body.indexOf('=');
    const name = eq < 0 ? body : body.slice(0, eq);
    const inline = eq < 0 ? undefined : body.slice(eq + 1);
    const token = arg.slice(0, arg.length - body.length) + name;
    const spec = name.length > 0 ? table.get(fold(name)) : undefined;
    if (spec === undefined) {
      errors.push(`unknown flag: ${name.length > 0 ? token : arg}${suggestion(name, specs)}`);
      continue;
    }
    if (spec === HELP_FLAG) {
      help = true;
      continue;
    }
    try {
      if (spec.kind === 'boolean') {
        values.set(spec.name, inline === undefined ? true : parseBoolean(token, inline));
        continue;
      }
      let value = inline;
      if (value === undefined) {
        if (i + 1 >= argv.length) throw new UsageError(`flag needs a value: ${token} <${spec.valueName ?? 'value'}>`);
        value = argv[++i]!;
      }
      if (spec.choices !== undefined && !spec.choices.includes(value)) {
        throw new UsageError(`invalid value "${value}" for ${token}: must be one of ${spec.choices.join(', ')}`);
      }
      if (spec.multiple) {
        const prev = values.get(spec.name);
        values.set(spec.name, [...(Array.isArray(prev) ? prev : []), value]);
      } else {
        if (values.has(spec.name)) throw new UsageError(`flag ${flagDisplayName(spec)} given more than once`);
        values.set(spec.name, value);
      }
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      errors.push(e.message);
    }
  }

  if (!help) {
    if (errors.length > 0) throw new UsageError(errors[0]!);
    for (const spec of specs) {
      if (spec.required && !values.has(spec.name)) throw new UsageError(`missing required flag ${flagDisplayName(spec)} <${spec.valueName ?? 'value'}>`);
    }
  }
  return new ParsedFlags(new Map(specs.map((s) => [s.name, s])), values, positionals, help);
}

/** `-output text|json` (`pretty` is SPIRE's name for the text form). */
export const OUTPUT_FLAG: FlagSpec = {
  name: 'output',
  kind: 'string',
  valueName: 'format',
  choices: ['text', 'pretty', 'json'],
  default: 'text',
  description: 'Output format',
};

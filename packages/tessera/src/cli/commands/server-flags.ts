/**
 * Flag values shared by the `tessera server …` commands, checked before
 * anything is sent: a bad value is a usage error (exit 2) naming the flag,
 * and the server is never contacted.
 */
import { create, toJson, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { SelectorSchema, type Selector } from '../../gen/tessera/v1/types_pb.js';
import { parseSelector, RegistrationError } from '../../server/registration/index.js';
import type { OutputStream } from '../command.js';
import { CommandError, UsageError } from '../errors.js';
import { OUTPUT_FLAG, type ParsedFlags } from '../flags.js';

export { OUTPUT_FLAG };
import { readInputFile } from '../input-files.js';


/** Whether the command was asked for JSON output. */
export function wantsJson(flags: ParsedFlags): boolean {
  return flags.string(OUTPUT_FLAG.name) === 'json';
}

/** Largest value an int32 proto field (TTLs) can carry. */
const MAX_INT32 = 2 ** 31 - 1;

/**
 * A whole, non-negative number of seconds (SPIRE's integer `-ttl`).
 * @throws {@link UsageError} naming `flag`.
 */
export function parseSeconds(value: string, flag: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`invalid value "${value}" for -${flag}: must be a whole number of seconds`);
  const n = Number(value);
  if (n > MAX_INT32) throw new UsageError(`invalid value "${value}" for -${flag}: at most ${MAX_INT32} seconds`);
  return n;
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-9, us: 1e-6, 'µs': 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/**
 * A TTL written as whole seconds (`3600`) or as a Go duration (`1h`,
 * `1h30m`, `90s`), which is what SPIRE's `x509 mint` and `jwt mint` take.
 * Fractions of a second round up, as SPIRE rounds them.
 * @throws {@link UsageError} naming `flag`.
 */
export function parseTtl(value: string, flag: string): number {
  if (/^\d+$/.test(value)) return parseSeconds(value, flag);
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let seconds = 0;
  let end = 0;
  for (let m = part.exec(value); m !== null; m = part.exec(value)) {
    seconds += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    end = part.lastIndex;
  }
  if (value.length === 0 || end !== value.length) {
    throw new UsageError(`invalid value "${value}" for -${flag}: give seconds (3600) or a duration such as 90s, 15m or 1h`);
  }
  const whole = Math.ceil(seconds - 1e-9);
  if (whole > MAX_INT32) throw new UsageError(`invalid value "${value}" for -${flag}: at most ${MAX_INT32} seconds`);
  return whole;
}

/**
 * Epoch seconds (SPIRE's `-entryExpiry`).
 * @throws {@link UsageError} naming `flag`.
 */
export function parseEpochSeconds(value: string, flag: string): bigint {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(`invalid value "${value}" for -${flag}: must be a time in seconds since the epoch (e.g. ${Math.floor(Date.UTC(2030, 0, 1) / 1000)})`);
  }
  return BigInt(value);
}

/**
 * `type:value` selectors (`k8s:ns:backend`: type `k8s`, value `ns:backend`),
 * checked as the server checks them.
 * @throws {@link UsageError} naming `flag`.
 */
export function parseSelectors(values: readonly string[], flag = 'selector'): Selector[] {
  return values.map((v) => {
    try {
      const s = parseSelector(v, `-${flag}`);
      return create(SelectorSchema, { type: s.type, value: s.value });
    } catch (e) {
      // The message names the flag and the value: `invalid -selector: "x" must be of the form type:value (…)`.
      if (e instanceof RegistrationError) throw new UsageError(e.message);
      throw e;
    }
  });
}

/** `1 registration entry`, `2 registration entries`. */
export function plural(n: number | bigint, one: string, many: string): string {
  return `${n} ${n === 1 || n === 1n ? one : many}`;
}

/**
 * Writes a proto message as JSON the way SPIRE's `-output json` does:
 * proto field names, unset fields included, 64-bit integers as strings.
 */
export function writeJson<Desc extends DescMessage>(out: OutputStream, schema: Desc, message: MessageShape<Desc>): void {
  out.write(JSON.stringify(toJson(schema, message, { useProtoFieldName: true, alwaysEmitImplicit: true }), null, 2) + '\n');
}

/** Writes a plain value as indented JSON. */
export function writeJsonValue(out: OutputStream, value: unknown): void {
  out.write(JSON.stringify(value, null, 2) + '\n');
}

/**
 * The content of `path`, or of standard input when `path` is `-` (SPIRE's
 * convention for `-data -`).
 * @throws {@link CommandError} `cannot read <what> "<path>": <reason>`
 */
export async function readFileOrStdin(path: string, what: string): Promise<Buffer> {
  if (path !== '-') return readInputFile(path, what);
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  } catch (e) {
    throw new CommandError(`cannot read ${what} from standard input: ${(e as Error).message}`);
  }
  return Buffer.concat(chunks);
}

/**
 * A tiny declarative config schema: every daemon lists its keys with type,
 * default and check once; the loader merges file < environment < flags,
 * rejects unknown keys and freezes the result (fastify's habit).
 */
import { TrustDomain } from '@tessera/spiffe/id';

export type FieldType = 'string' | 'integer' | 'boolean' | 'duration' | 'enum';

export interface Field {
  readonly type: FieldType;
  readonly description: string;
  readonly default?: string | number | boolean;
  /** For `enum`. */
  readonly values?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  /** Extra validation; returns an error message or undefined. */
  readonly check?: (v: never) => string | undefined;
  /** Environment variable that may set it. */
  readonly env?: string;
  readonly required?: boolean;
}

export type Schema = Readonly<Record<string, Field>>;

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const DURATION = /^(\d+)(ms|s|m|h|d)?$/;
const UNIT: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** Parses `90`, `90s`, `5m`, `1h`, `24h`, `7d` into seconds. */
export function parseDuration(v: unknown, key: string): number {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  if (typeof v === 'string') {
    const m = DURATION.exec(v.trim());
    if (m) return Number(m[1]) * UNIT[m[2] ?? 's']!;
  }
  throw new ConfigError(`${key}: "${String(v)}" is not a duration (e.g. 90s, 5m, 1h, 24h)`);
}

function coerce(key: string, f: Field, v: unknown): string | number | boolean {
  switch (f.type) {
    case 'string':
      if (typeof v !== 'string' && typeof v !== 'number') throw new ConfigError(`${key}: must be a string`);
      return String(v);
    case 'integer': {
      const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new ConfigError(`${key}: "${String(v)}" is not a whole number`);
      if (f.min !== undefined && n < f.min) throw new ConfigError(`${key}: must be at least ${f.min}`);
      if (f.max !== undefined && n > f.max) throw new ConfigError(`${key}: must be at most ${f.max}`);
      return n;
    }
    case 'boolean':
      if (typeof v === 'boolean') return v;
      if (v === 'true') return true;
      if (v === 'false') return false;
      throw new ConfigError(`${key}: "${String(v)}" is not true or false`);
    case 'duration': {
      const d = parseDuration(v, key);
      if (f.min !== undefined && d < f.min) throw new ConfigError(`${key}: must be at least ${f.min}s`);
      if (f.max !== undefined && d > f.max) throw new ConfigError(`${key}: must be at most ${f.max}s`);
      return d;
    }
    case 'enum':
      if (typeof v !== 'string' || !f.values!.includes(v)) throw new ConfigError(`${key}: "${String(v)}" must be one of ${f.values!.join(', ')}`);
      return v;
  }
}

/**
 * Merges config layers (lowest first), checks every key against `schema`
 * and returns a frozen object with defaults filled in.
 * @throws ConfigError naming the key and what is wrong.
 */
export function resolveConfig<S extends Schema>(schema: S, layers: { source: string; values: Record<string, unknown> }[], env: NodeJS.ProcessEnv = {}): Readonly<Record<keyof S, string | number | boolean>> {
  const merged: Record<string, { v: unknown; source: string }> = {};
  for (const [key, f] of Object.entries(schema)) {
    if (f.default !== undefined) merged[key] = { v: f.default, source: 'default' };
  }
  const apply = (source: string, values: Record<string, unknown>): void => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) continue;
      if (!(k in schema)) {
        const known = Object.keys(schema);
        const near = known.find((n) => n.toLowerCase() === k.toLowerCase());
        throw new ConfigError(`${source}: unknown key "${k}"${near ? ` (did you mean "${near}"?)` : ''}`);
      }
      merged[k] = { v, source };
    }
  };
  const [file, ...rest] = layers;
  if (file) apply(file.source, file.values);
  for (const [key, f] of Object.entries(schema)) {
    if (f.env && env[f.env] !== undefined && env[f.env] !== '') merged[key] = { v: env[f.env], source: `environment ${f.env}` };
  }
  for (const l of rest) apply(l.source, l.values);
  const out: Record<string, string | number | boolean> = {};
  for (const [key, f] of Object.entries(schema)) {
    const m = merged[key];
    if (m === undefined) {
      if (f.required) throw new ConfigError(`${key} is required (${f.description})`);
      continue;
    }
    let v: string | number | boolean;
    try {
      v = coerce(key, f, m.v);
      const msg = f.check?.(v as never);
      if (msg) throw new ConfigError(`${key}: ${msg}`);
    } catch (e) {
      if (e instanceof ConfigError && m.source !== 'default') throw new ConfigError(`${m.source}: ${e.message}`);
      throw e;
    }
    out[key] = v;
  }
  return Object.freeze(out) as Readonly<Record<keyof S, string | number | boolean>>;
}

/** A schema `check` for trust domain names: the bare name (`example.org`), not a SPIFFE ID. */
export function trustDomainCheck(v: string): string | undefined {
  try {
    TrustDomain.parse(v);
    return v.includes('://') ? 'give the bare trust domain name (example.org), not a SPIFFE ID' : undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { ConfigError } from './schema.js';

/**
 * Reads a YAML (or JSON) config file into a flat key/value object. Nested
 * sections are flattened with dots is not supported on purpose: Tessera's
 * config files are flat, like the flags.
 * @throws ConfigError with the file name and the problem.
 */
export function loadConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file "${path}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parse(text, { strict: true, uniqueKeys: true });
  } catch (e) {
    throw new ConfigError(`config file "${path}" is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config file "${path}" must be a mapping of keys to values`);
  for (const [k, v] of Object.entries(doc)) {
    if (v !== null && typeof v === 'object') throw new ConfigError(`config file "${path}": "${k}" must be a plain value, not a ${Array.isArray(v) ? 'list' : 'mapping'}`);
  }
  return doc as Record<string, unknown>;
}

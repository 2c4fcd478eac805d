import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const repo = resolve(pkg, '../..');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('ErrorCode, the codes thrown in src/ and docs/errors.md list the same codes', () => {
  const errorsTs = readFileSync(join(pkg, 'src/errors/index.ts'), 'utf8');
  const union = errorsTs.slice(errorsTs.indexOf('export type ErrorCode'), errorsTs.indexOf(';', errorsTs.indexOf('export type ErrorCode')));
  const declared = new Set([...union.matchAll(/'(ERR_[A-Z0-9_]+)'/g)].map((m) => m[1]!));
  const used = new Set(sources(join(pkg, 'src')).filter((f) => !f.endsWith('errors/index.ts')).flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/'(ERR_[A-Z0-9_]+)'/g)].map((m) => m[1]!)));
  const documented = new Set([...readFileSync(join(repo, 'docs/errors.md'), 'utf8').matchAll(/^\| `(ERR_[A-Z0-9_]+)`/gm)].map((m) => m[1]!));
  assert.ok(declared.size >= 10);
  for (const c of used) assert.ok(declared.has(c), `${c} is used in src/ but missing from ErrorCode`);
  assert.deepEqual([...documented].sort(), [...declared].sort(), 'docs/errors.md must document exactly the ErrorCode union');
});

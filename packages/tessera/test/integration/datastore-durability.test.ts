/**
 * kill -9 during writes, then restart: the SQLite file passes
 * integrity_check and holds every entry whose commit the writer reported,
 * and no batch is half-written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { openDatastore } from '../../src/server/datastore/index.js';

const DATASTORE = new URL('../../src/server/datastore/index.js', import.meta.url).href;

/** The writer: single creates, batches of 5, updates; prints each commit as it returns. */
const WRITER = `
import { openDatastore } from ${JSON.stringify(DATASTORE)};
const [path, round] = process.argv.slice(2);
const ds = await openDatastore({ kind: 'sqlite', path }, { pruneIntervalMs: 0 });
const sel = (v) => [{ type: 'unix', value: v }];
let last;
for (let i = 0; ; i++) {
  const base = 'spiffe://td/r' + round + '/' + i;
  if (i % 3 === 0) {
    const made = await ds.createEntries([1, 2, 3, 4, 5].map((k) => ({ spiffeId: base + '/' + k, parentId: 'spiffe://td/batch/r' + round + '-' + i, selectors: sel('uid:' + k) })));
    process.stdout.write('c ' + made.map((e) => e.id).join(' ') + '\\n');
  } else if (i % 3 === 1) {
    last = await ds.createEntry({ spiffeId: base, parentId: 'spiffe://td/agent', selectors: sel('uid:' + i), dnsNames: ['n' + i + '.example'] });
    process.stdout.write('c ' + last.id + '\\n');
  } else {
    const u = await ds.updateEntry(last.id, { hint: 'h' + i, selectors: sel('uid:' + i + ':updated') });
    process.stdout.write('u ' + u.id + ' ' + u.revisionNumber + '\\n');
  }
}
`;

async function runAndKill(script: string, path: string, round: number, afterLines: number): Promise<{ created: string[]; updated: Map<string, number> }> {
  const child = spawn(process.execPath, [script, path, String(round)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const created: string[] = [];
  const updated = new Map<string, number>();
  let lines = 0;
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  for await (const line of createInterface({ input: child.stdout })) {
    const [kind, ...rest] = line.split(' ');
    if (kind === 'c') created.push(...rest);
    if (kind === 'u') updated.set(rest[0]!, Number(rest[1]));
    if (++lines === afterLines) child.kill('SIGKILL');
  }
  const signal = await exited;
  assert.equal(signal, 'SIGKILL', `writer died on its own: ${stderr}`);
  return { created, updated };
}

test('SIGKILL during writes loses no committed entry and corrupts nothing (SQLite)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-ds-crash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, 'writer.mjs');
  writeFileSync(script, WRITER);
  const path = join(dir, 'datastore.sqlite3');
  const allCreated: string[] = [];
  const lastRevision = new Map<string, number>();
  for (let round = 0; round < 3; round++) {
    const { created, updated } = await runAndKill(script, path, round, 150 + 37 * round);
    allCreated.push(...created);
    for (const [id, rev] of updated) lastRevision.set(id, rev);

    const raw = new Database(path);
    try {
      assert.equal(raw.pragma('integrity_check', { simple: true }), 'ok', `round ${round}: integrity_check`);
      assert.deepEqual(raw.pragma('foreign_key_check'), [], `round ${round}: foreign keys`);
      const batches = raw.prepare("select parent_id, count(*) as n from registered_entries where parent_id like 'spiffe://td/batch/%' group by parent_id").all() as { parent_id: string; n: number }[];
      assert.ok(batches.every((b) => b.n === 5), `round ${round}: no half-written batch: ${JSON.stringify(batches.filter((b) => b.n !== 5))}`);
      const orphans = raw.prepare('select count(*) as n from registered_entries e where not exists (select 1 from entry_selectors s where s.entry_id = e.id)').get() as { n: number };
      assert.equal(orphans.n, 0, `round ${round}: every entry has its selector rows`);
    } finally {
      raw.close();
    }

    // Restart: the datastore opens the file and finds every reported commit.
    const ds = await openDatastore({ kind: 'sqlite', path }, { pruneIntervalMs: 0 });
    try {
      const stored = new Map((await ds.listEntries()).items.map((e) => [e.id, e]));
      const missing = allCreated.filter((id) => !stored.has(id));
      assert.deepEqual(missing, [], `round ${round}: committed entries lost`);
      for (const [id, rev] of lastRevision) {
        assert.ok((stored.get(id)?.revisionNumber ?? -1) >= rev, `round ${round}: update of ${id} to revision ${rev} lost`);
      }
      assert.ok((await ds.currentRevision()) >= allCreated.length, 'the change log holds the creations');
      t.diagnostic(`round ${round}: killed after ${created.length} reported creations; ${stored.size} entries stored, all ${allCreated.length} reported present`);
    } finally {
      await ds.close();
    }
  }
});

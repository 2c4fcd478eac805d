// The unix workload attestor with an injected /proc: parsing, selectors, the
// PID-reuse guard, vanished processes, and the executable hash cache.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  WorkloadAttestationError,
  executableHasher,
  parseGroup,
  parsePasswd,
  parseProcStat,
  parseStartTime,
  parseStatusIds,
  unixAttestor,
  type ProcReader,
  type UserDatabase,
  type WorkloadAttestationErrorCode,
} from '../../src/agent/workload-attestors/index.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-unix-attestor-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const exe = join(dir, 'workload');
const EXE_BYTES = Buffer.from('#!/bin/true\n'.repeat(1000));
writeFileSync(exe, EXE_BYTES);
const EXE_SHA = createHash('sha256').update(EXE_BYTES).digest('hex');

/** A /proc/<pid>/stat line with a hostile comm and the given start time in field 22. */
function statLine(pid: number, start: number | bigint): string {
  // fields 3..21 then 22 = starttime, then a few more
  const rest = ['S', '1', ...Array.from({ length: 17 }, (_, i) => String(i + 10)), String(start), '123456', '78'];
  return `${pid} (evil) (name ) 1 2) ${rest.join(' ')}\n`;
}

const STATUS = 'Name:\tworkload\nUid:\t1000\t1001\t1001\t1001\nGid:\t2000\t2001\t2001\t2001\nGroups:\t27 2001 4242 \n';

const users: UserDatabase = {
  userName: async (uid) => ({ 1001: 'alice' })[uid],
  groupName: async (gid) => ({ 2001: 'alice', 27: 'sudo' })[gid],
};

const noent = (what: string) => Object.assign(new Error(`ENOENT: no such file or directory, ${what}`), { code: 'ENOENT' });

/** A fake /proc for one pid whose stat answers come from `starts` in order (an Error = gone). */
function fakeProc(pid: number, starts: (number | Error)[], overrides: Partial<ProcReader> = {}): ProcReader & { statCalls: number } {
  const reader: ProcReader & { statCalls: number } = {
    statCalls: 0,
    async stat(p: number): Promise<string> {
      assert.equal(p, pid);
      const s = starts[Math.min(reader.statCalls++, starts.length - 1)];
      if (s === undefined || s instanceof Error) throw s ?? noent('stat');
      return statLine(pid, s);
    },
    status: async () => STATUS,
    exePath: async () => exe,
    openExe: () => open(exe, 'r'),
    ...overrides,
  };
  return reader;
}

const isCode = (code: WorkloadAttestationErrorCode, re?: RegExp) => (e: unknown) =>
  e instanceof WorkloadAttestationError && e.code === code && (re === undefined || re.test(e.message));

test('parseStartTime: field 22, counted from the last ")" of comm', () => {
  assert.equal(parseStartTime(statLine(42, 987654321012n)), 987654321012n);
  // A real line from this process.
  assert.equal(typeof parseStartTime('1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 77 1000 10 18446744073709551615'), 'bigint');
  assert.equal(parseStartTime('1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 77 1000'), 77n);
  assert.deepEqual(parseProcStat(statLine(42, 5)), { state: 'S', startTime: 5n });
  assert.equal(parseStartTime('garbage'), undefined);
  assert.equal(parseStartTime('1 (x) S 0 1'), undefined);
});

test('parseStatusIds: effective uid/gid and supplementary groups', () => {
  assert.deepEqual(parseStatusIds(STATUS), { uid: 1001, gid: 2001, groups: [27, 2001, 4242] });
  assert.deepEqual(parseStatusIds('Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n'), { uid: 0, gid: 0, groups: [] });
  assert.equal(parseStatusIds('Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n'), undefined);
  assert.equal(parseStatusIds('Uid:\tx\nGid:\t0\t0\nGroups:\n'), undefined);
});

test('parsePasswd / parseGroup: first entry wins, junk and NIS lines ignored', () => {
  const passwd = parsePasswd('# comment\nroot:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\ntoor:x:0:0::/root:/bin/sh\n+::::::\nbad:x:nan:0:::\nshort:x:7\n');
  assert.deepEqual([...passwd], [[0, 'root'], [65534, 'nobody']]);
  const group = parseGroup('root:x:0:\nnogroup:x:65534:\nsudo:x:27:alice,bob\n\n');
  assert.deepEqual([...group], [[0, 'root'], [65534, 'nogroup'], [27, 'sudo']]);
});

test('unix attestor: SPIRE selectors from /proc', async () => {
  const proc = fakeProc(7, [555, 555]);
  const selectors = await unixAttestor({ proc, users }).attest(7);
  assert.deepEqual(
    selectors.map((s) => `${s.type}:${s.value}`),
    [
      'unix:uid:1001',
      'unix:user:alice',
      'unix:gid:2001',
      'unix:group:alice',
      'unix:supplementary_gid:27',
      'unix:supplementary_group:sudo',
      'unix:supplementary_gid:2001',
      'unix:supplementary_group:alice',
      'unix:supplementary_gid:4242', // no name: no supplementary_group
      `unix:path:${exe}`,
      `unix:sha256:${EXE_SHA}`,
    ],
  );
  assert.equal(proc.statCalls, 2, 'start time read before and after');
  const noPath = await unixAttestor({ proc: fakeProc(7, [555]), users, discoverWorkloadPath: false }).attest(7);
  assert.ok(!noPath.some((s) => s.value.startsWith('path:') || s.value.startsWith('sha256:')));
});

test('PID-reuse guard: a changed start time → WORKLOAD_PID_REUSED', async () => {
  await assert.rejects(unixAttestor({ proc: fakeProc(7, [555, 556]), users }).attest(7), isCode('WORKLOAD_PID_REUSED', /pid 7 was reused.*555 → 556/));
});

test('PID-reuse guard: the pid reused while /proc reads failed → WORKLOAD_PID_REUSED, not the read error', async () => {
  const proc = fakeProc(7, [555, 900], { exePath: async () => Promise.reject(noent('readlink')) });
  await assert.rejects(unixAttestor({ proc, users }).attest(7), isCode('WORKLOAD_PID_REUSED'));
});

test('vanished process: before, during, and after attestation → WORKLOAD_PROCESS_GONE', async () => {
  await assert.rejects(unixAttestor({ proc: fakeProc(7, [noent('stat')]), users }).attest(7), isCode('WORKLOAD_PROCESS_GONE', /process 7 no longer exists or has exited/));
  const during = fakeProc(7, [555, noent('stat')], { status: async () => Promise.reject(noent('status')) });
  await assert.rejects(unixAttestor({ proc: during, users }).attest(7), isCode('WORKLOAD_PROCESS_GONE'));
  await assert.rejects(unixAttestor({ proc: fakeProc(7, [555, noent('stat')]), users }).attest(7), isCode('WORKLOAD_PROCESS_GONE'));
  // A zombie (exited, not yet reaped) keeps its pid and stat but has no exe.
  const zombie = fakeProc(7, [555], { stat: async () => statLine(7, 555).replace(') S ', ') Z ') });
  await assert.rejects(unixAttestor({ proc: zombie, users }).attest(7), isCode('WORKLOAD_PROCESS_GONE'));
  const esrch = Object.assign(new Error('ESRCH'), { code: 'ESRCH' });
  await assert.rejects(unixAttestor({ proc: fakeProc(7, [esrch]), users }).attest(7), isCode('WORKLOAD_PROCESS_GONE'));
});

test('inspection failures of a live process → WORKLOAD_INSPECTION_FAILED', async () => {
  // e.g. a kernel thread: /proc/<pid>/exe is ENOENT while the process runs.
  const kthread = fakeProc(7, [555, 555], { exePath: async () => Promise.reject(noent('readlink')) });
  await assert.rejects(unixAttestor({ proc: kthread, users }).attest(7), isCode('WORKLOAD_INSPECTION_FAILED', /cannot inspect pid 7/));
  const badStatus = fakeProc(7, [555, 555], { status: async () => 'Name:\tx\n' });
  await assert.rejects(unixAttestor({ proc: badStatus, users }).attest(7), isCode('WORKLOAD_INSPECTION_FAILED', /Uid\/Gid\/Groups/));
  const badStat = fakeProc(7, [555], { stat: async () => 'nonsense' });
  await assert.rejects(unixAttestor({ proc: badStat, users }).attest(7), isCode('WORKLOAD_INSPECTION_FAILED', /fields 3, 22/));
  const eacces = fakeProc(7, [Object.assign(new Error('EACCES'), { code: 'EACCES' })]);
  await assert.rejects(unixAttestor({ proc: eacces, users }).attest(7), isCode('WORKLOAD_INSPECTION_FAILED', /cannot read \/proc\/7\/stat/));
  for (const pid of [0, -1, 1.5, Number.NaN]) {
    await assert.rejects(unixAttestor({ proc: fakeProc(7, [555]), users }).attest(pid), isCode('WORKLOAD_INSPECTION_FAILED', /positive integer/));
  }
});

/** Opens `path` and counts reads, so cache hits are visible. */
async function countingOpen(path: string, counter: { reads: number }): Promise<FileHandle> {
  const fh = await open(path, 'r');
  return new Proxy(fh, {
    get(target, prop, receiver) {
      if (prop === 'read') counter.reads++;
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

test('executable hash: cached by (dev, ino, mtime, size), re-hashed when the file changes', async () => {
  const file = join(dir, 'cached');
  writeFileSync(file, 'version 1');
  const hasher = executableHasher();
  const counter = { reads: 0 };
  const hashOf = async () => {
    const fh = await countingOpen(file, counter);
    try {
      return await hasher.hash(fh);
    } finally {
      await fh.close();
    }
  };
  const h1 = await hashOf();
  assert.equal(h1, createHash('sha256').update('version 1').digest('hex'));
  const readsAfterFirst = counter.reads;
  assert.ok(readsAfterFirst > 0);
  assert.equal(await hashOf(), h1);
  assert.equal(counter.reads, readsAfterFirst, 'second hash came from the cache');
  writeFileSync(file, 'version 2, longer');
  assert.equal(await hashOf(), createHash('sha256').update('version 2, longer').digest('hex'));
  assert.ok(counter.reads > readsAfterFirst);
});

test('unix attestor: a cached executable hash is found by stat, without opening the file', async () => {
  const file = join(dir, 'stat-keyed');
  writeFileSync(file, 'build 1');
  let opens = 0;
  const proc = fakeProc(7, [555], {
    exePath: async () => file,
    exeStat: async () => statSync(file, { bigint: true }),
    openExe: () => {
      opens++;
      return open(file, 'r');
    },
  });
  const attestor = unixAttestor({ proc, users });
  const sha = async () => (await attestor.attest(7)).find((s) => s.value.startsWith('sha256:'))?.value;
  assert.equal(await sha(), `sha256:${createHash('sha256').update('build 1').digest('hex')}`);
  assert.equal(opens, 1, 'a miss opens the file and keys the hash by fstat of it');
  assert.equal(await sha(), `sha256:${createHash('sha256').update('build 1').digest('hex')}`);
  assert.equal(opens, 1, 'a hit needs no open');
  writeFileSync(file, 'build 2, rewritten');
  assert.equal(await sha(), `sha256:${createHash('sha256').update('build 2, rewritten').digest('hex')}`);
  assert.equal(opens, 2, 'a changed file is opened and hashed again');
});

test('executable hash: files over the cap get no sha256 selector', async () => {
  const small = executableHasher({ maxBytes: EXE_BYTES.length - 1 });
  const selectors = await unixAttestor({ proc: fakeProc(7, [555, 555]), users, hasher: small }).attest(7);
  assert.ok(selectors.some((s) => s.value === `path:${exe}`));
  assert.ok(!selectors.some((s) => s.value.startsWith('sha256:')));
  const exact = executableHasher({ maxBytes: EXE_BYTES.length });
  const fh = await open(exe, 'r');
  try {
    assert.equal(await exact.hash(fh), EXE_SHA);
  } finally {
    await fh.close();
  }
  assert.throws(() => executableHasher({ maxBytes: -1 }), RangeError);
  assert.throws(() => executableHasher({ cacheSize: 0 }), RangeError);
});

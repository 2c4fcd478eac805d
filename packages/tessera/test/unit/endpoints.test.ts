// Endpoints without the kernel: validation rules, the persisted registry
// (round trip, reload, corrupt files, atomic replacement), the selectors the
// endpoint attestor yields (checked against the server's selector parser),
// the attestor's PID-reuse guard with an injected /proc and namespaces, and
// combineAttestors.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Code } from '@connectrpc/connect';
import {
  EndpointError,
  EndpointRegistry,
  combineAttestors,
  endpointAttestor,
  endpointSelectors,
  validateEndpointSpec,
  type EndpointChange,
  type EndpointErrorCode,
  type EndpointSpec,
  type NetnsFileInfo,
  type NetnsIdentity,
  type NetnsReader,
} from '../../src/agent/endpoints/index.js';
import { ENDPOINT_ERROR_STATUS, endpointConnectError } from '../../src/agent/api/endpoint-admin.js';
import { WorkloadAttestationError, type ProcReader, type WorkloadAttestationErrorCode, type WorkloadAttestor } from '../../src/agent/workload-attestors/index.js';
import { parseSelector, selectorsSubsetOf } from '../../src/server/registration/index.js';
import { runCommandTree, type CliIo } from '../../src/cli/command.js';
import { agentEndpointCommands } from '../../src/cli/commands/agent-endpoint.js';

const root = mkdtempSync(join(tmpdir(), 'tessera-endpoints-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => join(root, `r${++dirs}`);

const isEndpointError = (code: EndpointErrorCode, re?: RegExp) => (e: unknown) =>
  e instanceof EndpointError && e.code === code && (re === undefined || re.test(e.message));
const isAttestationError = (code: WorkloadAttestationErrorCode, re?: RegExp) => (e: unknown) =>
  e instanceof WorkloadAttestationError && e.code === code && (re === undefined || re.test(e.message));
const noent = (what: string) => Object.assign(new Error(`ENOENT: no such file or directory, ${what}`), { code: 'ENOENT' });

/** Namespaces as a table: path → file info, pid → namespace. Mutable, so tests can re-create a namespace. */
function fakeNetns(): NetnsReader & { files: Map<string, NetnsFileInfo>; pids: Map<number, NetnsIdentity> } {
  const files = new Map<string, NetnsFileInfo>();
  const pids = new Map<number, NetnsIdentity>();
  return {
    files,
    pids,
    async inspect(path) {
      const f = files.get(path);
      if (f === undefined) throw noent(path);
      return f;
    },
    async ofProcess(pid) {
      const id = pids.get(pid);
      if (id === undefined) throw noent(`/proc/${pid}/ns/net`);
      return id;
    },
    ofSelf: async () => HOST,
  };
}

const HOST: NetnsIdentity = { dev: 4n, ino: 4026531840n };
const NS_A: NetnsFileInfo = { dev: 4n, ino: 4026532301n, isNamespace: true };
const NS_B: NetnsFileInfo = { dev: 4n, ino: 4026532402n, isNamespace: true };
const A = '/var/run/netns/a';
const B = '/var/run/netns/b';

function netnsWithAB() {
  const n = fakeNetns();
  n.files.set(A, NS_A).set(B, NS_B).set('/proc/1/ns/net', { ...HOST, isNamespace: true }).set('/etc/hostname', { dev: 2049n, ino: 17n, isNamespace: false });
  return n;
}

const WEB: EndpointSpec = { name: 'web-0', namespace: 'backend', serviceAccount: 'api', labels: { app: 'web', 'example.com/tier': 'front' }, netnsPath: A, ip: '10.0.0.2', hostInterface: 'veth-web0' };
const fixedNow = () => new Date('2030-01-02T03:04:05.000Z');

// ---------------------------------------------------------------- validation

test('validateEndpointSpec: defaults, sorted and frozen labels, empty optionals are absent', () => {
  const v = validateEndpointSpec({ name: 'web-0', namespace: 'backend', netnsPath: A, ip: '', hostInterface: '', labels: { z: '1', a: '' } });
  assert.equal(v.serviceAccount, 'default');
  assert.equal(v.ip, undefined);
  assert.equal(v.hostInterface, undefined);
  assert.deepEqual(Object.keys(v.labels), ['a', 'z']);
  assert.ok(Object.isFrozen(v.labels));
  assert.equal(validateEndpointSpec({ ...WEB, ip: 'fd00::1' }).ip, 'fd00::1');
  assert.equal(validateEndpointSpec({ ...WEB, name: 'a.b-c.d' }).name, 'a.b-c.d');
  assert.equal(validateEndpointSpec({ ...WEB, netnsPath: '/proc/4242/ns/net' }).netnsPath, '/proc/4242/ns/net');
});

const BAD: [string, Partial<Record<keyof EndpointSpec, unknown>>, string][] = [
  ['name missing', { name: undefined }, 'name'],
  ['name not a string', { name: 42 }, 'name'],
  ['name upper case', { name: 'Web' }, 'name'],
  ['name with underscore', { name: 'web_0' }, 'name'],
  ['name ends with -', { name: 'web-' }, 'name'],
  ['name longer than 253', { name: 'a'.repeat(254) }, 'name'],
  ['namespace with a dot (a label, not a subdomain)', { namespace: 'back.end' }, 'namespace'],
  ['namespace longer than 63', { namespace: 'a'.repeat(64) }, 'namespace'],
  ['namespace empty', { namespace: '' }, 'namespace'],
  ['service account upper case', { serviceAccount: 'Default' }, 'serviceAccount'],
  ['label key with a space', { labels: { 'bad key': 'x' } }, 'labels["bad key"]'],
  ['label key with a bad prefix', { labels: { 'Example.com/app': 'x' } }, 'labels["Example.com/app"]'],
  ['label key with an empty name', { labels: { 'example.com/': 'x' } }, 'labels["example.com/"]'],
  ['label key name longer than 63', { labels: { ['k'.repeat(64)]: 'x' } }, `labels["${'k'.repeat(64)}"]`],
  ['label value with a colon', { labels: { app: 'a:b' } }, 'labels["app"]'],
  ['label value longer than 63', { labels: { app: 'v'.repeat(64) } }, 'labels["app"]'],
  ['label value not a string', { labels: { app: 1 } }, 'labels["app"]'],
  ['labels an array', { labels: ['app=web'] }, 'labels'],
  ['too many labels', { labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }, 'labels'],
  ['netns relative', { netnsPath: 'var/run/netns/a' }, 'netnsPath'],
  ['netns with ..', { netnsPath: '/var/run/netns/../../etc/passwd' }, 'netnsPath'],
  ['netns with //', { netnsPath: '/var/run//netns/a' }, 'netnsPath'],
  ['netns with a trailing /', { netnsPath: '/var/run/netns/a/' }, 'netnsPath'],
  ['netns with a newline', { netnsPath: '/var/run/netns/a\n' }, 'netnsPath'],
  ['netns missing', { netnsPath: undefined }, 'netnsPath'],
  ['ip not an address', { ip: '10.0.0.256' }, 'ip'],
  ['ip a host name', { ip: 'localhost' }, 'ip'],
  ['ip with a zone', { ip: 'fe80::1%eth0' }, 'ip'],
  ['interface longer than 15 bytes', { hostInterface: 'veth0123456789ab' }, 'hostInterface'],
  ['interface with /', { hostInterface: 'veth/0' }, 'hostInterface'],
  ['interface with :', { hostInterface: 'eth0:1' }, 'hostInterface'],
  ['interface ..', { hostInterface: '..' }, 'hostInterface'],
  ['interface with a space', { hostInterface: 'veth 0' }, 'hostInterface'],
];

for (const [what, change, field] of BAD) {
  test(`validateEndpointSpec rejects ${what} → ENDPOINT_INVALID naming ${field}`, () => {
    const spec = { ...WEB, ...change } as EndpointSpec;
    assert.throws(
      () => validateEndpointSpec(spec),
      (e: unknown) => e instanceof EndpointError && e.code === 'ENDPOINT_INVALID' && e.field === field && e.message.startsWith(`invalid ${field}: `),
    );
  });
}

// ---------------------------------------------------------------- registry

test('registry: add, get, list (sorted, by namespace), remove', async () => {
  const reg = new EndpointRegistry({ dir: freshDir(), netns: netnsWithAB(), now: fixedNow });
  const web = await reg.add(WEB);
  assert.deepEqual(web.netns, { dev: NS_A.dev, ino: NS_A.ino });
  assert.equal(web.createdAt.toISOString(), '2030-01-02T03:04:05.000Z');
  assert.ok(Object.isFrozen(web));
  await reg.add({ name: 'db', namespace: 'aaa', netnsPath: B });
  assert.deepEqual(reg.list().map((e) => `${e.namespace}/${e.name}`), ['aaa/db', 'backend/web-0']);
  assert.deepEqual(reg.list({ namespace: 'backend' }).map((e) => e.name), ['web-0']);
  assert.equal(reg.get('backend', 'web-0')?.serviceAccount, 'api');
  assert.equal(reg.get('backend', 'nope'), undefined);
  assert.deepEqual(reg.byNetns(NS_B).map((e) => e.name), ['db']);
  const removed = await reg.remove('aaa', 'db');
  assert.equal(removed.name, 'db');
  assert.deepEqual(reg.list().map((e) => e.name), ['web-0']);
  await assert.rejects(reg.remove('aaa', 'db'), isEndpointError('ENDPOINT_NOT_FOUND', /aaa\/db/));
});

test('registry: refusals — taken name, unreadable netns, not a namespace, the host namespace, a namespace already registered', async () => {
  const netns = netnsWithAB();
  const reg = new EndpointRegistry({ dir: freshDir(), netns });
  await reg.add(WEB);
  await assert.rejects(reg.add({ ...WEB, netnsPath: B }), isEndpointError('ENDPOINT_EXISTS', /backend\/web-0 is already registered/));
  await assert.rejects(reg.add({ ...WEB, name: 'x', netnsPath: '/var/run/netns/missing' }), isEndpointError('ENDPOINT_NETNS_UNREADABLE', /ENOENT/));
  await assert.rejects(reg.add({ ...WEB, name: 'x', netnsPath: '/etc/hostname' }), isEndpointError('ENDPOINT_NETNS_NOT_NAMESPACE'));
  await assert.rejects(reg.add({ ...WEB, name: 'x', netnsPath: '/proc/1/ns/net' }), isEndpointError('ENDPOINT_NETNS_HOST'));
  await assert.rejects(reg.add({ ...WEB, name: 'x', netnsPath: '/proc/77/ns/net' }), isEndpointError('ENDPOINT_NETNS_UNREADABLE'));
  netns.files.set('/proc/77/ns/net', NS_A);
  await assert.rejects(reg.add({ ...WEB, name: 'x', netnsPath: '/proc/77/ns/net' }), isEndpointError('ENDPOINT_NETNS_IN_USE', /backend\/web-0/));
  await assert.rejects(reg.add({ ...WEB, name: 'Bad' }), isEndpointError('ENDPOINT_INVALID'));
  assert.equal(reg.list().length, 1, 'no refused endpoint was registered');
  // The host namespace is accepted when asked for explicitly.
  const hostReg = new EndpointRegistry({ dir: freshDir(), netns, allowHostNetns: true });
  await hostReg.add({ ...WEB, netnsPath: '/proc/1/ns/net' });
  // A stale endpoint (its file now names another namespace) does not block the namespace it used to name.
  netns.files.set(A, { dev: 4n, ino: 999n, isNamespace: true });
  await reg.add({ ...WEB, name: 'y', netnsPath: '/proc/77/ns/net' });
});

test('registry: persisted with mode 0600 and reloaded by a new registry (agent restart)', async () => {
  const dir = freshDir();
  const netns = netnsWithAB();
  const reg = new EndpointRegistry({ dir, netns, now: fixedNow });
  await reg.add(WEB);
  await reg.add({ name: 'db', namespace: 'data', netnsPath: B });
  assert.equal(statSync(reg.path).mode & 0o777, 0o600);
  const reloaded = new EndpointRegistry({ dir, netns });
  assert.deepEqual(reloaded.list(), reg.list());
  assert.equal(typeof reloaded.get('backend', 'web-0')?.netns.ino, 'bigint');
  await reloaded.remove('data', 'db');
  assert.deepEqual(new EndpointRegistry({ dir, netns }).list().map((e) => e.name), ['web-0']);
  // No directory and no file yet is an empty registry, not an error.
  assert.deepEqual(new EndpointRegistry({ dir: join(freshDir(), 'deeper'), netns }).list(), []);
});

test('registry: a corrupt file is ENDPOINT_STORE_CORRUPT at construction, naming the file and the fault', async () => {
  const netns = netnsWithAB();
  const good = new EndpointRegistry({ dir: freshDir(), netns, now: fixedNow });
  await good.add(WEB);
  const doc = JSON.parse(readFileSync(good.path, 'utf8')) as { version: number; endpoints: Record<string, unknown>[] };
  const cases: [string, string, RegExp][] = [
    ['truncated', readFileSync(good.path, 'utf8').slice(0, 40), /not JSON/],
    ['empty', '', /not JSON/],
    ['an array', '[]', /expected an object/],
    ['another version', JSON.stringify({ ...doc, version: 2 }), /unsupported version 2/],
    ['endpoints not an array', JSON.stringify({ version: 1, endpoints: {} }), /"endpoints" must be an array/],
    ['an invalid endpoint', JSON.stringify({ version: 1, endpoints: [{ ...doc.endpoints[0], namespace: 'Bad' }] }), /endpoints\[0\]: invalid namespace/],
    ['an unknown field', JSON.stringify({ version: 1, endpoints: [{ ...doc.endpoints[0], extra: 1 }] }), /unknown field "extra"/],
    ['a bad inode', JSON.stringify({ version: 1, endpoints: [{ ...doc.endpoints[0], netnsIno: -1 }] }), /netnsIno must be a decimal string/],
    ['a bad time', JSON.stringify({ version: 1, endpoints: [{ ...doc.endpoints[0], createdAt: 'yesterday' }] }), /createdAt/],
    ['a duplicate', JSON.stringify({ version: 1, endpoints: [doc.endpoints[0], doc.endpoints[0]] }), /appears twice/],
  ];
  for (const [what, text, re] of cases) {
    const dir = freshDir();
    mkdirSync(dir);
    writeFileSync(join(dir, 'endpoints.json'), text);
    assert.throws(() => new EndpointRegistry({ dir, netns }), (e: unknown) => isEndpointError('ENDPOINT_STORE_CORRUPT', re)(e) && (e as Error).message.includes(join(dir, 'endpoints.json')), what);
  }
});

test('registry: a failed write changes nothing — memory, the file and no temp files left (atomic replacement)', async () => {
  const dir = freshDir();
  const netns = netnsWithAB();
  const reg = new EndpointRegistry({ dir, netns, now: fixedNow });
  await reg.add(WEB);
  const before = readFileSync(reg.path, 'utf8');
  const events: EndpointChange[] = [];
  reg.onChange((c) => events.push(c));
  // Make the rename onto endpoints.json fail: a temp file stranded by a "crash" and a file we cannot replace.
  writeFileSync(join(dir, '.endpoints.json.deadbeef.tmp'), '{"version":1,"endpoints":[{"half');
  const blocked = new EndpointRegistry({ dir: freshDir(), netns });
  mkdirSync(join(blocked.path, 'in-the-way'), { recursive: true });
  await assert.rejects(blocked.add(WEB), isEndpointError('ENDPOINT_STORE_FAILED', /the change was not made/));
  assert.deepEqual(blocked.list(), []);
  assert.deepEqual(readdirSync(join(blocked.path, '..')).sort(), ['endpoints.json'], 'the temp file was removed');
  // The stranded temp file of the first registry is ignored on reload; the committed file is intact.
  assert.deepEqual(new EndpointRegistry({ dir, netns }).list().map((e) => e.name), ['web-0']);
  assert.equal(readFileSync(reg.path, 'utf8'), before);
  assert.deepEqual(events, []);
  // Changes after a failure still go through (the queue is not poisoned).
  rmSync(blocked.path, { recursive: true });
  await blocked.add(WEB);
  assert.equal(blocked.list().length, 1);
});

test('registry: change events after persisting; unsubscribe; a throwing listener harms no one', async () => {
  const reg = new EndpointRegistry({ dir: freshDir(), netns: netnsWithAB() });
  const seen: string[] = [];
  reg.onChange(() => {
    throw new Error('listener bug');
  });
  const stop = reg.onChange(({ kind, endpoint }) => {
    assert.ok(new EndpointRegistry({ dir: join(reg.path, '..'), netns: netnsWithAB() }).get(endpoint.namespace, endpoint.name) !== undefined === (kind === 'added'), 'persisted before the event');
    seen.push(`${kind} ${endpoint.namespace}/${endpoint.name}`);
  });
  await reg.add(WEB);
  await reg.remove('backend', 'web-0');
  stop();
  await reg.add(WEB);
  assert.deepEqual(seen, ['added backend/web-0', 'removed backend/web-0']);
});

test('registry: concurrent adds of one name — exactly one wins', async () => {
  const reg = new EndpointRegistry({ dir: freshDir(), netns: netnsWithAB() });
  const results = await Promise.allSettled([reg.add(WEB), reg.add({ ...WEB, netnsPath: B })]);
  assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected']);
  assert.equal(reg.list().length, 1);
});

test('registry options are validated at construction', () => {
  assert.throws(() => new EndpointRegistry({ dir: '' }), TypeError);
  assert.throws(() => new EndpointRegistry({ dir: freshDir(), now: 'now' as unknown as () => Date }), TypeError);
});

// ---------------------------------------------------------------- selectors

test('endpointSelectors: SPIRE k8s selectors, matched by an entry made with -selector k8s:ns:backend -selector k8s:sa:default', () => {
  const spec = validateEndpointSpec({ ...WEB, serviceAccount: undefined });
  const sels = endpointSelectors(spec, 'node-1');
  assert.deepEqual(sels.map((s) => `${s.type}:${s.value}`), [
    'k8s:ns:backend',
    'k8s:sa:default',
    'k8s:pod-name:web-0',
    'k8s:pod-label:app:web',
    'k8s:pod-label:example.com/tier:front',
    'k8s:node-name:node-1',
  ]);
  // What `tessera server entry create -selector …` stores is what we yield.
  for (const s of sels) assert.deepEqual(parseSelector(`${s.type}:${s.value}`), s);
  assert.ok(selectorsSubsetOf([parseSelector('k8s:ns:backend'), parseSelector('k8s:sa:default')], sels));
  assert.ok(!selectorsSubsetOf([parseSelector('k8s:ns:frontend')], sels));
});

// ---------------------------------------------------------------- attestor

function statLine(pid: number, start: number): string {
  const rest = ['S', '1', ...Array.from({ length: 17 }, (_, i) => String(i + 10)), String(start), '123456', '78'];
  return `${pid} (sleep) ${rest.join(' ')}\n`;
}

/** /proc where each stat read of `pid` returns the next start time (an Error: gone). */
function fakeProc(starts: (number | Error)[]): ProcReader {
  let calls = 0;
  const unused = async (): Promise<never> => assert.fail('the endpoint attestor reads only stat');
  return {
    async stat(pid) {
      const s = starts[Math.min(calls++, starts.length - 1)];
      if (s === undefined || s instanceof Error) throw s ?? noent('stat');
      return statLine(pid, s);
    },
    status: unused,
    exePath: unused,
    openExe: unused,
  };
}

test('endpoint attestor: the endpoint of the caller\'s namespace; nothing for others; stale endpoints ignored', async () => {
  const netns = netnsWithAB();
  const reg = new EndpointRegistry({ dir: freshDir(), netns });
  await reg.add(WEB);
  netns.pids.set(10, NS_A).set(11, HOST).set(12, NS_B);
  const attest = (pid: number) => endpointAttestor({ registry: reg, nodeName: 'node-1', proc: fakeProc([5, 5]), netns }).attest(pid);
  assert.deepEqual((await attest(10)).map((s) => s.value), ['ns:backend', 'sa:api', 'pod-name:web-0', 'pod-label:app:web', 'pod-label:example.com/tier:front', 'node-name:node-1']);
  assert.deepEqual(await attest(11), [], 'host process: no endpoint, no error');
  assert.deepEqual(await attest(12), [], 'unregistered namespace');
  // The namespace was deleted and its name re-used for another namespace: the old record must not match.
  netns.files.set(A, NS_B);
  assert.deepEqual(await attest(10), []);
  netns.files.delete(A);
  assert.deepEqual(await attest(10), []);
  netns.files.set(A, NS_A);
  await reg.remove('backend', 'web-0');
  assert.deepEqual(await attest(10), [], 'removed endpoint');
});

test('endpoint attestor: PID-reuse guard and vanished processes', async () => {
  const netns = netnsWithAB();
  const reg = new EndpointRegistry({ dir: freshDir(), netns });
  await reg.add(WEB);
  netns.pids.set(10, NS_A);
  const at = (starts: (number | Error)[]) => endpointAttestor({ registry: reg, nodeName: 'node-1', proc: fakeProc(starts), netns });
  await assert.rejects(at([5, 6]).attest(10), isAttestationError('WORKLOAD_PID_REUSED', /pid 10 was reused.*5 → 6/));
  await assert.rejects(at([noent('stat')]).attest(10), isAttestationError('WORKLOAD_PROCESS_GONE'));
  await assert.rejects(at([5, noent('stat')]).attest(10), isAttestationError('WORKLOAD_PROCESS_GONE'));
  // ns/net unreadable while the process lives on: an inspection failure, not an empty answer.
  await assert.rejects(at([5, 5]).attest(99), isAttestationError('WORKLOAD_INSPECTION_FAILED', /network namespace of pid 99/));
  await assert.rejects(at([5, 5]).attest(0), isAttestationError('WORKLOAD_INSPECTION_FAILED'));
  const zombie: ProcReader = { ...fakeProc([5]), stat: async (pid) => statLine(pid, 5).replace(' S ', ' Z ') };
  await assert.rejects(endpointAttestor({ registry: reg, nodeName: 'n', proc: zombie, netns }).attest(10), isAttestationError('WORKLOAD_PROCESS_GONE'));
});

test('endpoint attestor options are validated at construction', () => {
  const registry = new EndpointRegistry({ dir: freshDir(), netns: netnsWithAB() });
  assert.throws(() => endpointAttestor({ registry, nodeName: 'Node_1' }), /nodeName/);
  assert.throws(() => endpointAttestor({ registry: {} as EndpointRegistry, nodeName: 'n' }), /registry/);
});

// ---------------------------------------------------------------- combineAttestors

const fixed = (name: string, values: string[]): WorkloadAttestor => ({ name, attest: async () => values.map((v) => parseSelector(v)) });

test('combineAttestors: concatenated in order, without duplicates; one failure fails all', async () => {
  const both = combineAttestors([fixed('unix', ['unix:uid:0', 'k8s:ns:a']), fixed('endpoint', ['k8s:ns:a', 'k8s:sa:b'])]);
  assert.equal(both.name, 'unix+endpoint');
  assert.deepEqual((await both.attest(1)).map((s) => `${s.type}:${s.value}`), ['unix:uid:0', 'k8s:ns:a', 'k8s:sa:b']);
  const failing: WorkloadAttestor = { name: 'bad', attest: async () => Promise.reject(new WorkloadAttestationError('WORKLOAD_PID_REUSED', 'reused')) };
  await assert.rejects(combineAttestors([fixed('unix', ['unix:uid:0']), failing]).attest(1), isAttestationError('WORKLOAD_PID_REUSED'));
  assert.throws(() => combineAttestors([]), TypeError);
  assert.throws(() => combineAttestors([{} as WorkloadAttestor]), TypeError);
});

// ---------------------------------------------------------------- admin API mapping and CLI checks

test('admin API: every EndpointError code has a gRPC status; unknown errors are Internal without details', () => {
  assert.equal(endpointConnectError(new EndpointError('ENDPOINT_INVALID', 'invalid name: x')).code, Code.InvalidArgument);
  assert.equal(endpointConnectError(new EndpointError('ENDPOINT_EXISTS', 'x')).code, Code.AlreadyExists);
  assert.equal(endpointConnectError(new EndpointError('ENDPOINT_NOT_FOUND', 'x')).code, Code.NotFound);
  assert.equal(endpointConnectError(new EndpointError('ENDPOINT_NETNS_UNREADABLE', 'x')).code, Code.FailedPrecondition);
  assert.equal(endpointConnectError(new EndpointError('ENDPOINT_INVALID', 'invalid name: x')).rawMessage, 'invalid name: x');
  const internal = endpointConnectError(new Error('secret detail'));
  assert.equal(internal.code, Code.Internal);
  assert.doesNotMatch(internal.rawMessage, /secret/);
  for (const code of Object.values(ENDPOINT_ERROR_STATUS)) assert.notEqual(code, Code.Unknown);
});

function captureIo(): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, now: fixedNow, out: () => out, err: () => err };
}

test('CLI: bad flag values are usage errors (exit 2) naming the flag; the socket is never dialled', async () => {
  const rootGroup = { name: 'tessera', summary: 'test', commands: [{ name: 'agent', summary: 'agent', commands: [agentEndpointCommands] }] };
  const socket = join(root, 'never.sock');
  const cases: [string[], RegExp][] = [
    [['-name', 'Web', '-namespace', 'b', '-netns', 'x'], /invalid name: .*\(flag -name\)/],
    [['-name', 'w', '-namespace', 'b', '-netns', 'x', '-label', 'novalue'], /must be key=value/],
    [['-name', 'w', '-namespace', 'b', '-netns', 'x', '-label', 'a=1', '-label', 'a=2'], /-label a given more than once/],
    [['-name', 'w', '-namespace', 'b', '-netns', 'x', '-label', 'a=b:c'], /\(flag -label\)/],
    [['-name', 'w', '-namespace', 'b', '-netns', 'x', '-ip', '1.2.3'], /invalid ip: .*\(flag -ip\)/],
    [['-name', 'w', '-namespace', 'b', '-netns', 'x', '-hostInterface', 'much-too-long-name'], /\(flag -hostInterface\)/],
    [['-name', 'w', '-namespace', 'b'], /missing required flag --netns/],
  ];
  for (const [args, re] of cases) {
    const io = captureIo();
    const code = await runCommandTree(rootGroup, ['agent', 'endpoint', 'add', ...args, '-socketPath', socket], io);
    assert.equal(code, 2, io.err());
    assert.match(io.err(), re);
  }
});

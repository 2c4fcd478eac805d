/**
 * `tessera server entry|token|agent` end to end against a real server
 * (`startServer`: SQLite datastore, CA, Admin API on a Unix socket). The
 * seed's SPIRE command lines go through the real bin as a child process,
 * verbatim and with no -socketPath: the CLI finds the socket where the
 * daemon's defaults put it (./.data/server.sock under the working directory).
 * Everything else calls `main()` in-process with -socketPath.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.js';
import { loadServerConfig } from '../../src/server/config.js';
import { startServer, type RunningServer } from '../../src/server/server.js';

const BIN = fileURLToPath(new URL('../../../bin/tessera.js', import.meta.url));
const TD = 'cluster.local';
const SERVER_ID = `spiffe://${TD}/tessera/server`;
const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } };

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `tessera` bin in `cwd` with none of the TESSERA_* variables set. */
function runBin(args: string[], cwd: string): Promise<RunResult> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TESSERA_')));
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { cwd, env, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

async function runMain(args: string[]): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    now: () => new Date(),
  });
  return { code, stdout, stderr };
}

function assertNoStackTrace(r: RunResult): void {
  assert.doesNotMatch(r.stderr + r.stdout, /^\s+at /m, 'output must not contain a stack trace');
}

/** The value of the first `Label   : value` line. */
function field(text: string, label: string): string {
  const m = new RegExp(`^${label}\\s*: (.*)$`, 'm').exec(text);
  assert.ok(m, `no "${label}" line in:\n${text}`);
  return m[1]!;
}

describe('tessera server entry/token/agent (CLI against a real server)', () => {
  let dir: string;
  let srv: RunningServer;
  let socket: string;
  /** `tessera server <args> -socketPath <socket>` in-process. */
  const server = (...args: string[]) => runMain(['server', ...args, '-socketPath', socket]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-cli-server-'));
    // The daemon's default data directory, relative to where the bin is started.
    const config = loadServerConfig({ flags: { trustDomain: TD, dataDir: join(dir, '.data'), healthPort: 0, bindPort: 0, bindAddress: '127.0.0.1' } });
    srv = await startServer(config, { logger: silent, tickSeconds: 0 });
    socket = srv.socketPath;
    assert.equal(socket, join(dir, '.data', 'server.sock'));
  });
  after(async () => {
    await srv?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("accepts the seed's spire-server entry create command line verbatim (real bin, default socket)", async () => {
    const created = await runBin(
      [
        'server', 'entry', 'create',
        '-spiffeID', 'spiffe://cluster.local/ns/backend/sa/default',
        '-parentID', 'spiffe://cluster.local/spire/agent/k8s/cluster.local/kubelet',
        '-selector', 'k8s:ns:backend',
        '-selector', 'k8s:sa:default',
        '-ttl', '3600',
      ],
      dir,
    );
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stderr, '');
    const id = field(created.stdout, 'Entry ID');
    assert.match(id, /^[0-9a-f-]{36}$/);
    const block = [
      `Entry ID         : ${id}`,
      'SPIFFE ID        : spiffe://cluster.local/ns/backend/sa/default',
      'Parent ID        : spiffe://cluster.local/spire/agent/k8s/cluster.local/kubelet',
      'Revision         : 0',
      'X509-SVID TTL    : 3600',
      'JWT-SVID TTL     : default',
      'Selector         : k8s:ns:backend',
      'Selector         : k8s:sa:default',
      '',
      '',
    ].join('\n');
    assert.equal(created.stdout, block);

    const shown = await runBin(['server', 'entry', 'show', '-spiffeID', 'spiffe://cluster.local/ns/backend/sa/default'], dir);
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal(shown.stdout, `Found 1 entry\n${block}`);

    // The same command again: SPIRE's per-entry failure report, exit 1.
    const again = await runBin(
      ['server', 'entry', 'create', '-spiffeID', 'spiffe://cluster.local/ns/backend/sa/default', '-parentID', 'spiffe://cluster.local/spire/agent/k8s/cluster.local/kubelet', '-selector', 'k8s:sa:default', '-selector', 'k8s:ns:backend', '-ttl', '3600'],
      dir,
    );
    assert.equal(again.code, 1);
    assert.equal(again.stdout, '');
    assert.match(again.stderr, /^FAILED to create the following entry:\nEntry ID {9}: \(none\)\nSPIFFE ID {8}: spiffe:\/\/cluster\.local\/ns\/backend\/sa\/default\n/);
    assert.match(again.stderr, /\nReason: .*already exists.*\(code: AlreadyExists\)\n$/);
    assertNoStackTrace(again);

    const deleted = await server('entry', 'delete', '-entryID', id);
    assert.equal(deleted.code, 0, deleted.stderr);
  });

  it('create → show → update → show → count → delete', async () => {
    const spiffeId = 'spiffe://cluster.local/ns/shop/sa/api';
    const parentId = 'spiffe://cluster.local/tessera/agent/join_token/abc';
    const c = await server('entry', 'create', '-spiffeID', spiffeId, '-parentID', parentId, '-selector', 'unix:uid:1000', '-dns', 'api.shop.svc', '-x509SVIDTTL', '600', '-jwtSVIDTTL', '60', '-hint', 'api', '-downstream');
    assert.equal(c.code, 0, c.stderr);
    const id = field(c.stdout, 'Entry ID');
    assert.equal(field(c.stdout, 'X509-SVID TTL'), '600');
    assert.equal(field(c.stdout, 'JWT-SVID TTL'), '60');
    assert.equal(field(c.stdout, 'DNS name'), 'api.shop.svc');
    assert.equal(field(c.stdout, 'Downstream'), 'true');
    assert.equal(field(c.stdout, 'Hint'), 'api');

    const s1 = await server('entry', 'show', '-entryID', id);
    assert.equal(s1.code, 0, s1.stderr);
    assert.match(s1.stdout, /^Found 1 entry\n/);
    assert.equal(field(s1.stdout, 'Revision'), '0');

    // Only the given fields change; the list flag replaces the whole list.
    const u = await server('entry', 'update', '-entryID', id, '-selector', 'unix:uid:1001', '-selector', 'unix:gid:50', '-ttl', '900', '-entryExpiry', '4102444800');
    assert.equal(u.code, 0, u.stderr);
    assert.equal(field(u.stdout, 'Revision'), '1');

    const s2 = await server('entry', 'show', '-entryID', id);
    assert.equal(s2.code, 0, s2.stderr);
    assert.deepEqual([...s2.stdout.matchAll(/^Selector\s*: (.*)$/gm)].map((m) => m[1]), ['unix:gid:50', 'unix:uid:1001']);
    assert.equal(field(s2.stdout, 'X509-SVID TTL'), '900');
    assert.equal(field(s2.stdout, 'JWT-SVID TTL'), '60', 'fields not given keep their value');
    assert.equal(field(s2.stdout, 'DNS name'), 'api.shop.svc');
    assert.equal(field(s2.stdout, 'Expiration time'), '2100-01-01T00:00:00Z');
    assert.equal(field(s2.stdout, 'Parent ID'), parentId);

    // Filters: by selector (superset by default), by parent.
    const bySel = await server('entry', 'show', '-selector', 'unix:uid:1001');
    assert.match(bySel.stdout, /^Found 1 entry\n/);
    const exact = await server('entry', 'show', '-selector', 'unix:uid:1001', '-matchSelectorsOn', 'exact');
    assert.equal(exact.stdout, 'Found 0 entries\n');

    const n = await server('entry', 'count');
    assert.equal(n.code, 0, n.stderr);
    assert.equal(n.stdout, '1 registration entry\n');

    const d = await server('entry', 'delete', '-entryID', id);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(d.stdout, `Deleted entry with ID: ${id}\n`);
    assert.equal((await server('entry', 'count')).stdout, '0 registration entries\n');

    const gone = await server('entry', 'delete', '-entryID', id);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^FAILED to delete the entry with ID .*\nReason: .*\(code: NotFound\)\n$/);
    const missing = await server('entry', 'update', '-entryID', id, '-ttl', '5');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^cannot fetch entry ".*": .* \(NotFound\)\n$/);
  });

  it('an entry the server refuses: exit 1 with the validation reason', async () => {
    const foreign = await server('entry', 'create', '-spiffeID', 'spiffe://other.td/x', '-parentID', 'spiffe://cluster.local/a', '-selector', 'k8s:ns:x');
    assert.equal(foreign.code, 1);
    assert.match(foreign.stderr, /Reason: invalid spiffeId: "spiffe:\/\/other\.td\/x" is not in trust domain "cluster\.local" \(code: InvalidArgument\)/);
    const malformed = await server('entry', 'create', '-spiffeID', 'not-an-id', '-parentID', 'spiffe://cluster.local/a', '-selector', 'k8s:ns:x');
    assert.equal(malformed.code, 1);
    assert.match(malformed.stderr, /Reason: invalid spiffeId: "not-an-id": .*\(code: InvalidArgument\)/);
    assertNoStackTrace(malformed);
    assert.equal((await server('entry', 'count')).stdout, '0 registration entries\n');
  });

  it('-node: a node alias entry parented to the server', async () => {
    const r = await server('entry', 'create', '-node', '-spiffeID', 'spiffe://cluster.local/nodes/rack-1', '-selector', 'x509pop:subject:cn:rack-1');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(field(r.stdout, 'Parent ID'), SERVER_ID);
    assert.equal((await server('entry', 'delete', '-entryID', field(r.stdout, 'Entry ID'))).code, 0);

    const both = await server('entry', 'create', '-node', '-parentID', 'spiffe://cluster.local/x', '-spiffeID', 'spiffe://cluster.local/y', '-selector', 'a:b');
    assert.equal(both.code, 2);
    assert.match(both.stderr, /-node and -parentID cannot be combined/);
  });

  it('token generate with an alias; entry show -parentID <server> lists the alias entry', async () => {
    const t = await server('token', 'generate', '-spiffeID', 'spiffe://cluster.local/nodes/worker-1', '-ttl', '600');
    assert.equal(t.code, 0, t.stderr);
    const m = /^Token: ([0-9a-f-]{36})\n$/.exec(t.stdout);
    assert.ok(m, t.stdout);
    const token = m[1]!;

    const s = await server('entry', 'show', '-parentID', SERVER_ID);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /^Found 1 entry\n/);
    assert.equal(field(s.stdout, 'SPIFFE ID'), 'spiffe://cluster.local/nodes/worker-1');
    assert.equal(field(s.stdout, 'Selector'), `join_token:${token}`);

    const json = await server('token', 'generate', '-output', 'json');
    assert.equal(json.code, 0, json.stderr);
    const doc = JSON.parse(json.stdout) as { value: string; expires_at: string };
    assert.match(doc.value, /^[0-9a-f-]{36}$/);
    assert.ok(Number(doc.expires_at) > Date.now() / 1000);

    // The alias is cleaned up so later counts start from zero.
    assert.equal((await server('entry', 'delete', '-entryID', field(s.stdout, 'Entry ID'))).code, 0);
  });

  it('agent list/count/show/ban/evict', async () => {
    const empty = await server('agent', 'list');
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(empty.stdout, 'Found 0 attested agents\n');
    assert.equal((await server('agent', 'count')).stdout, '0 attested agents\n');

    // Stand-in for node attestation over the Agent API: the record it leaves in the datastore.
    const agentId = 'spiffe://cluster.local/tessera/agent/join_token/3f0c';
    await srv.datastore.createAgent({
      spiffeId: agentId,
      attestationType: 'join_token',
      certSerial: '1234',
      certExpiresAt: 4102444800,
      selectors: [{ type: 'join_token', value: '3f0c' }],
    });
    const list = await server('agent', 'list');
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^Found 1 attested agent:\n\nSPIFFE ID {9}: spiffe:\/\/cluster\.local\/tessera\/agent\/join_token\/3f0c\n/);
    assert.equal(field(list.stdout, 'Attestation type'), 'join_token');
    assert.equal(field(list.stdout, 'Expiration time'), '2100-01-01T00:00:00Z');
    assert.equal(field(list.stdout, 'Serial number'), '1234');
    const show = await server('agent', 'show', '-spiffeID', agentId);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /^Found an attested agent given its SPIFFE ID\n\n/);
    assert.equal(field(show.stdout, 'Selectors'), 'join_token:3f0c');

    const ban = await server('agent', 'ban', '-spiffeID', agentId);
    assert.equal(ban.code, 0, ban.stderr);
    assert.equal(ban.stdout, 'Agent banned successfully\n');
    assert.equal(field((await server('agent', 'show', '-spiffeID', agentId)).stdout, 'Banned'), 'true');
    const evict = await server('agent', 'evict', '-spiffeID', agentId);
    assert.equal(evict.code, 0, evict.stderr);
    assert.equal(evict.stdout, 'Agent evicted successfully\n');
    assert.equal((await server('agent', 'count')).stdout, '0 attested agents\n');

    const unknown = await server('agent', 'show', '-spiffeID', agentId);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^cannot show agent ".*": .* \(NotFound\)\n$/);
  });

  it('-output json parses, in SPIRE’s field names', async () => {
    const c = await server('entry', 'create', '-spiffeID', 'spiffe://cluster.local/j', '-parentID', 'spiffe://cluster.local/p', '-selector', 'unix:uid:7', '-output', 'json');
    assert.equal(c.code, 0, c.stderr);
    const created = JSON.parse(c.stdout) as { results: { status: { code: number }; entry: { id: string; spiffe_id: string } }[] };
    assert.equal(created.results[0]!.status.code, 0);
    assert.equal(created.results[0]!.entry.spiffe_id, 'spiffe://cluster.local/j');

    const s = await server('entry', 'show', '-output', 'json');
    const shown = JSON.parse(s.stdout) as { entries: { id: string; parent_id: string; selectors: { type: string; value: string }[]; x509_svid_ttl: number }[] };
    assert.equal(shown.entries.length, 1);
    assert.deepEqual(shown.entries[0]!.selectors, [{ type: 'unix', value: 'uid:7' }]);
    assert.equal(shown.entries[0]!.x509_svid_ttl, 0);
    assert.deepEqual(JSON.parse((await server('entry', 'count', '-output', 'json')).stdout), { count: '1' });
    assert.deepEqual(JSON.parse((await server('agent', 'list', '-output', 'json')).stdout), { agents: [], next_page_token: '' });

    // A duplicate in JSON: the failed result carries the entry that was sent, as SPIRE's does.
    const dup = await server('entry', 'create', '-spiffeID', 'spiffe://cluster.local/j', '-parentID', 'spiffe://cluster.local/p', '-selector', 'unix:uid:7', '-output', 'json');
    assert.equal(dup.code, 1);
    const failed = JSON.parse(dup.stdout) as { results: { status: { code: number; message: string }; entry: { id: string; spiffe_id: string } }[] };
    assert.equal(failed.results[0]!.status.code, 6);
    assert.equal(failed.results[0]!.entry.spiffe_id, 'spiffe://cluster.local/j');
    assert.equal(failed.results[0]!.entry.id, '');
    assert.equal((await server('entry', 'delete', '-entryID', created.results[0]!.entry.id)).code, 0);
  });

  it('-data: batch create from SPIRE JSON, per-entry failures reported', async () => {
    const file = join(dir, 'entries.json');
    writeFileSync(
      file,
      JSON.stringify({
        entries: [
          { selectors: [{ type: 'unix', value: 'uid:1111' }], spiffe_id: 'spiffe://cluster.local/Blog', parent_id: 'spiffe://cluster.local/spire/agent/join_token/TokenBlog', x509_svid_ttl: 200, jwt_svid_ttl: 30, admin: true },
          { selectors: [{ type: 'unix', value: 'uid:1111' }], spiffe_id: { trust_domain: 'cluster.local', path: '/Database' }, parent_id: 'spiffe://cluster.local/spire/agent/join_token/TokenDatabase', ttl: 200 },
          { selectors: ['unix:uid:1'], spiffe_id: 'spiffe://elsewhere.org/x', parent_id: 'spiffe://cluster.local/a' },
        ],
      }),
    );
    const r = await server('entry', 'create', '-data', file);
    assert.equal(r.code, 1, 'one entry was refused');
    assert.deepEqual([...r.stdout.matchAll(/^SPIFFE ID\s*: (.*)$/gm)].map((m) => m[1]), ['spiffe://cluster.local/Blog', 'spiffe://cluster.local/Database']);
    assert.equal(field(r.stdout, 'Admin'), 'true');
    assert.match(r.stderr, /^FAILED to create the following entry:\n(.*\n)*SPIFFE ID {8}: spiffe:\/\/elsewhere\.org\/x\n(.*\n)*Reason: .*not in trust domain/);
    assert.equal((await server('entry', 'count')).stdout, '2 registration entries\n');

    writeFileSync(file, JSON.stringify({ entries: [{ spiffe_id: 'spiffe://cluster.local/q', selectorz: [] }] }));
    const bad = await server('entry', 'create', '-data', file);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /cannot parse entry data ".*entries\.json": entries\[0\]: unknown field "selectorz"/);

    const mixed = await server('entry', 'create', '-data', file, '-spiffeID', 'spiffe://cluster.local/x');
    assert.equal(mixed.code, 2);

    const all = JSON.parse((await server('entry', 'show', '-output', 'json')).stdout) as { entries: { id: string }[] };
    for (const e of all.entries) assert.equal((await server('entry', 'delete', '-entryID', e.id)).code, 0);
  });

  it('bad flag values are usage errors (exit 2) found before contacting the server', async () => {
    // A socket that does not exist: any attempt to connect would say "cannot connect".
    const nowhere = join(dir, 'nowhere.sock');
    const cases: [string[], RegExp][] = [
      [['entry', 'create', '-spiffeID', 'spiffe://cluster.local/x', '-parentID', 'spiffe://cluster.local/p', '-selector', 'k8s:ns:a', '-ttl', 'abc'], /invalid value "abc" for -ttl: must be a whole number of seconds/],
      [['entry', 'create', '-spiffeID', 'spiffe://cluster.local/x', '-parentID', 'spiffe://cluster.local/p', '-selector', 'nocolon'], /invalid -selector: "nocolon" must be of the form type:value/],
      [['entry', 'create', '-spiffeID', 'spiffe://cluster.local/x', '-parentID', 'spiffe://cluster.local/p', '-selector', 'k8s:ns:a', '-bogus'], /unknown flag: -bogus/],
      [['entry', 'create', '-spiffeID', 'spiffe://cluster.local/x', '-selector', 'k8s:ns:a'], /a parent ID is required if the node flag is not set/],
      [['entry', 'create', '-spiffeID', 'spiffe://cluster.local/x', '-parentID', 'spiffe://cluster.local/p'], /at least one selector is required/],
      [['entry', 'create', '-spiffeID', 'spiffe://cluster.local/x', '-parentID', 'spiffe://cluster.local/p', '-selector', 'a:b', '-ttl', '1', '-x509SVIDTTL', '2'], /use -x509SVIDTTL or -ttl, not both/],
      [['entry', 'show', '-entryID', 'x', '-spiffeID', 'spiffe://cluster.local/x'], /can't be combined/],
      [['entry', 'show', '-matchSelectorsOn', 'most'], /must be one of exact, subset, superset, any/],
      [['entry', 'update', '-entryID', 'x'], /nothing to update/],
      [['entry', 'delete'], /an entry ID is required: give -entryID \(or -file\)/],
      [['entry', 'delete', '-entryID', 'x', '-file', 'ids.json'], /-entryID and -file cannot be combined/],
      [['token', 'generate', '-ttl', '10m'], /invalid value "10m" for -ttl/],
      [['agent', 'show'], /missing required flag --spiffe-id/],
    ];
    for (const [args, reason] of cases) {
      const r = await runMain(['server', ...args, '-socketPath', nowhere]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, reason, args.join(' '));
      assert.doesNotMatch(r.stderr, /cannot connect/, args.join(' '));
      assert.equal(r.stdout, '');
    }
  });

  it('no server: exit 1, "cannot connect to the server at <path>", no stack trace', async () => {
    const nowhere = join(dir, 'nowhere.sock');
    const r = await runMain(['server', 'entry', 'show', '-socketPath', nowhere]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`^cannot connect to the server at ${nowhere.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: no socket at this path \\(is 'tessera server run' running\\?`));
    assert.equal(r.stderr.split('\n').length, 2, 'one line');

    // The real bin, in a directory with no ./.data/server.sock.
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const bin = await runBin(['server', 'entry', 'count'], empty);
    assert.equal(bin.code, 1);
    assert.match(bin.stderr, /^cannot connect to the server at \.data\/server\.sock: no socket at this path/);
    assertNoStackTrace(bin);

    // Something that is not a socket.
    const file = join(dir, 'not-a-socket');
    writeFileSync(file, '');
    const notSocket = await runMain(['server', 'agent', 'count', '-socketPath', file]);
    assert.equal(notSocket.code, 1);
    assert.match(notSocket.stderr, /^cannot connect to the server at .*not-a-socket: (nothing is listening on the socket|the path is not a socket)/);
  });
});

/**
 * `tessera server bundle delete -mode`, `entry delete -file` and `agent
 * purge` end to end against a real server (`startServer`: SQLite datastore,
 * CA, Admin API on a Unix socket), the CLI in-process through `main()` with
 * SPIRE's spellings. Agents are the records node attestation leaves in the
 * datastore; `agent purge` runs with an injected clock.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCa } from '@tessera/spiffe/testing';
import { main } from '../../src/cli/main.js';
import { loadServerConfig } from '../../src/server/config.js';
import { startServer, type RunningServer } from '../../src/server/server.js';

const TD = 'cluster.local';
const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } };

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function runMain(args: string[], now: () => Date = () => new Date()): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, now });
  return { code, stdout, stderr };
}

function assertOneLine(r: RunResult): void {
  assert.doesNotMatch(r.stderr + r.stdout, /^\s+at /m, 'output must not contain a stack trace');
  assert.equal(r.stderr.split('\n').length, 2, `one line: ${r.stderr}`);
}

/** The value of the first `Label   : value` line. */
function field(text: string, label: string): string {
  const m = new RegExp(`^${label}\\s*: (.*)$`, 'm').exec(text);
  assert.ok(m, `no "${label}" line in:\n${text}`);
  return m[1]!;
}

describe('tessera server bundle delete -mode, entry delete -file, agent purge (CLI against a real server)', () => {
  let dir: string;
  let srv: RunningServer;
  /** `tessera server <args> -socketPath <socket>` in-process. */
  const server = (...args: string[]) => runMain(['server', ...args, '-socketPath', srv.socketPath]);

  /** Creates an entry through the CLI; returns its ID. */
  async function entry(path: string, ...extra: string[]): Promise<string> {
    const r = await server('entry', 'create', '-spiffeID', `spiffe://${TD}${path}`, '-parentID', `spiffe://${TD}/agent`, '-selector', `unix:uid:${path.length}${path.charCodeAt(1)}`, ...extra);
    assert.equal(r.code, 0, r.stderr);
    return field(r.stdout, 'Entry ID');
  }

  async function setBundle(td: string): Promise<void> {
    const file = join(dir, `${td}.pem`);
    writeFileSync(file, new TestCa({ trustDomain: td }).x509Bundle().marshal());
    const r = await server('bundle', 'set', '-id', `spiffe://${td}`, '-path', file);
    assert.equal(r.code, 0, r.stderr);
  }

  async function entryCount(): Promise<string> {
    return (await server('entry', 'count')).stdout;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-cli-delete-purge-'));
    const config = loadServerConfig({ flags: { trustDomain: TD, dataDir: join(dir, '.data'), healthPort: 0, bindPort: 0, bindAddress: '127.0.0.1' } });
    srv = await startServer(config, { logger: silent, tickSeconds: 0 });
  });
  after(async () => {
    await srv?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('bundle delete -mode', () => {
    it('restrict (the default) refuses, naming the federating entries, and changes nothing', async () => {
      await setBundle('partner.test');
      const a = await entry('/a', '-federatesWith', 'spiffe://partner.test');
      const b = await entry('/b', '-federatesWith', 'partner.test');
      const [first, second] = [a, b].sort();

      const r = await server('bundle', 'delete', '-id', 'spiffe://partner.test');
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      const ids = [first, second].map((id) => `${id} \\(spiffe://cluster\\.local/${id === a ? 'a' : 'b'}\\)`).join(', ');
      assert.match(r.stderr, new RegExp(`^cannot delete the bundle of partner\\.test: 2 entries federate with partner\\.test: ${ids}; .*mode "dissociate" or "delete" \\(Aborted\\)\\n$`));
      assertOneLine(r);
      // Same with the mode spelled out.
      assert.equal((await server('bundle', 'delete', '-id', 'partner.test', '-mode', 'restrict')).code, 1);

      assert.equal((await server('bundle', 'list', '-id', 'spiffe://partner.test')).code, 0, 'the bundle is still there');
      assert.equal(field((await server('entry', 'show', '-entryID', a)).stdout, 'FederatesWith'), 'partner.test');
      assert.equal(field((await server('entry', 'show', '-entryID', a)).stdout, 'Revision'), '0');

      for (const id of [a, b]) assert.equal((await server('entry', 'delete', '-entryID', id)).code, 0);
      const free = await server('bundle', 'delete', '-id', 'spiffe://partner.test');
      assert.equal(free.code, 0, free.stderr);
      assert.equal(free.stdout, 'bundle deleted.\n');
    });

    it('dissociate removes the trust domain from the entries, then deletes the bundle', async () => {
      await setBundle('partner.test');
      await setBundle('other.test');
      const a = await entry('/a', '-federatesWith', 'partner.test');
      const b = await entry('/b', '-federatesWith', 'partner.test', '-federatesWith', 'other.test');

      const r = await server('bundle', 'delete', '-id', 'spiffe://partner.test', '-mode', 'dissociate');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'bundle deleted.\n');
      const showA = (await server('entry', 'show', '-entryID', a)).stdout;
      assert.doesNotMatch(showA, /FederatesWith/);
      assert.equal(field(showA, 'Revision'), '1', 'a dissociated entry is a changed entry');
      const showB = (await server('entry', 'show', '-entryID', b)).stdout;
      assert.deepEqual([...showB.matchAll(/^FederatesWith\s*: (.*)$/gm)].map((m) => m[1]), ['other.test']);
      const gone = await server('bundle', 'list', '-id', 'partner.test');
      assert.equal(gone.code, 1);
      assert.match(gone.stderr, /no bundle for trust domain "partner\.test" \(NotFound\)/);

      // delete: the entries federating with other.test go with its bundle; the others stay.
      const d = await server('bundle', 'delete', '-id', 'other.test', '-mode', 'delete', '-output', 'json');
      assert.equal(d.code, 0, d.stderr);
      assert.deepEqual(JSON.parse(d.stdout), {});
      assert.equal((await server('entry', 'show', '-entryID', b)).code, 1, 'the federating entry was deleted');
      assert.equal((await server('entry', 'show', '-entryID', a)).code, 0);
      assert.equal((await server('bundle', 'list')).stdout, '');

      assert.equal((await server('entry', 'delete', '-entryID', a)).code, 0);
    });

    it('bad input: an unknown mode is a usage error; an unknown bundle is NotFound', async () => {
      const bad = await server('bundle', 'delete', '-id', 'partner.test', '-mode', 'cascade');
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /must be one of restrict, dissociate, delete/);
      const unknown = await server('bundle', 'delete', '-id', 'spiffe://nope.test', '-mode', 'delete');
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /^cannot delete the bundle of nope\.test: no bundle for trust domain nope\.test \(NotFound\)\n$/);
      const own = await server('bundle', 'delete', '-id', `spiffe://${TD}`);
      assert.equal(own.code, 1);
      assert.match(own.stderr, /is the server's own trust domain/);
    });
  });

  describe('entry delete -file', () => {
    it("takes SPIRE's {\"ids\": [...]}: one line per entry, exit 1 when any failed", async () => {
      const a = await entry('/a');
      const b = await entry('/b');
      const file = join(dir, 'ids.json');
      writeFileSync(file, JSON.stringify({ ids: [a, 'no-such-entry', b] }));
      const r = await server('entry', 'delete', '-file', file);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, `Deleted entry with ID: ${a}\nDeleted entry with ID: ${b}\nDeleted 2 entries successfully, but failed to delete 1 entry\n`);
      assert.match(r.stderr, /^Failed to delete entry with ID no-such-entry \(code: NotFound, msg: ".*no-such-entry.*"\)\n$/);
      assert.equal(await entryCount(), '0 registration entries\n');

      // All of them deleted: exit 0.
      const c = await entry('/c');
      writeFileSync(file, JSON.stringify({ ids: [c] }));
      const ok = await server('entry', 'delete', '-file', file);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, `Deleted entry with ID: ${c}\nDeleted 1 entry successfully\n`);
      assert.equal(ok.stderr, '');
    });

    it("takes 'entry show -output json' output (entries with id) and reports JSON results", async () => {
      const a = await entry('/a');
      const b = await entry('/b');
      const file = join(dir, 'shown.json');
      writeFileSync(file, (await server('entry', 'show', '-output', 'json')).stdout);
      const r = await server('entry', 'delete', '-file', file, '-output', 'json');
      assert.equal(r.code, 0, r.stderr);
      const doc = JSON.parse(r.stdout) as { results: { id: string; status: { code: number } }[] };
      assert.deepEqual(doc.results.map((x) => [x.id, x.status.code]), [a, b].sort().map((id) => [id, 0]));
      assert.equal(await entryCount(), '0 registration entries\n');

      writeFileSync(file, JSON.stringify({ entries: [{ entry_id: 'gone' }] }));
      const none = await server('entry', 'delete', '-file', file);
      assert.equal(none.code, 1);
      assert.equal(none.stdout, 'Failed to delete 1 entry\n');
    });

    it('a bad file: one-line error, exit 1, nothing deleted', async () => {
      const a = await entry('/a');
      const file = join(dir, 'bad.json');
      const cases: [string, RegExp][] = [
        [`{"ids": ["${a}"`, /^cannot parse entry IDs ".*bad\.json": invalid JSON: /],
        [JSON.stringify({ ids: [a], entry_ids: [a] }), /: unknown field "entry_ids"\n$/],
        [JSON.stringify({ ids: [] }), /: it lists no entry IDs\n$/],
        [JSON.stringify({ ids: [a, 7] }), /: ids\[1\] must be a non-empty string\n$/],
        [JSON.stringify({ entries: [{ id: a }, { spiffe_id: 'spiffe://cluster.local/a' }] }), /: entries\[1\]: "id" must be a non-empty string\n$/],
        [JSON.stringify({ entries: [{ id: a, colour: 'red' }] }), /: entries\[0\]: unknown field "colour"\n$/],
        [JSON.stringify([a]), /: expected an object with an "ids" array/],
      ];
      for (const [text, reason] of cases) {
        writeFileSync(file, text);
        const r = await server('entry', 'delete', '-file', file);
        assert.equal(r.code, 1, text);
        assert.equal(r.stdout, '', text);
        assert.match(r.stderr, reason, text);
        assertOneLine(r);
      }
      const missing = await server('entry', 'delete', '-file', join(dir, 'nope.json'));
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /^cannot read entry IDs ".*nope\.json": no such file or directory/);
      assert.equal(await entryCount(), '1 registration entry\n', 'nothing was deleted');
      assert.equal((await server('entry', 'delete', '-entryID', a)).code, 0);
    });
  });

  describe('agent purge', () => {
    const NOW = new Date('2030-06-01T00:00:00Z');
    const now = () => NOW;
    const nowSeconds = NOW.getTime() / 1000;
    const DAY = 24 * 3600;
    const purge = (...args: string[]) => runMain(['server', 'agent', 'purge', ...args, '-socketPath', srv.socketPath], now);
    const agentId = (name: string) => `spiffe://${TD}/tessera/agent/x509pop/${name}`;

    before(async () => {
      const agents: [string, number, boolean][] = [
        ['long-gone', nowSeconds - 40 * DAY, true],
        ['yesterday', nowSeconds - DAY, true],
        ['alive', nowSeconds + DAY, true],
        // A join_token agent cannot re-attest: SPIRE never purges those.
        ['token-long-gone', nowSeconds - 40 * DAY, false],
      ];
      for (const [name, certExpiresAt, canReattest] of agents) {
        await srv.datastore.createAgent({ spiffeId: agentId(name), attestationType: canReattest ? 'x509pop' : 'join_token', certSerial: '1', certExpiresAt, canReattest });
      }
    });

    it('-dryRun lists the agents expired for more than 30 days and deletes nothing', async () => {
      const r = await purge('-dryRun');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `Found 1 expired agent\n\nAgents that can be purged:\nSPIFFE ID         : ${agentId('long-gone')}\n`);
      const json = await purge('-dryRun', '-expiredFor', '12h', '-output', 'json');
      assert.equal(json.code, 0, json.stderr);
      assert.deepEqual(JSON.parse(json.stdout), {
        expired_agents: [
          { agent_id: agentId('long-gone'), deleted: false },
          { agent_id: agentId('yesterday'), deleted: false },
        ],
      });
      assert.equal((await server('agent', 'count')).stdout, '4 attested agents\n', 'a dry run deletes nothing');
    });

    it('purges what the dry run listed, then with -expiredFor the more recently expired', async () => {
      const r = await purge();
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `Found 1 expired agent\n\nAgents purged:\nSPIFFE ID         : ${agentId('long-gone')}\n`);
      const gone = await server('agent', 'show', '-spiffeID', agentId('long-gone'));
      assert.equal(gone.code, 1);
      assert.match(gone.stderr, /\(NotFound\)/);

      const recent = await purge('-expiredFor', '12h');
      assert.equal(recent.code, 0, recent.stderr);
      assert.match(recent.stdout, /^Found 1 expired agent\n\nAgents purged:\nSPIFFE ID {9}: .*\/yesterday\n$/);
      assert.equal((await purge('-expiredFor', '1s')).stdout, 'No agents to purge.\n');

      const left = (await server('agent', 'list')).stdout;
      assert.deepEqual([...left.matchAll(/^SPIFFE ID\s*: (.*)$/gm)].map((m) => m[1]), [agentId('alive'), agentId('token-long-gone')]);
    });

    it('a bad -expiredFor is a usage error before the server is contacted', async () => {
      const r = await runMain(['server', 'agent', 'purge', '-expiredFor', 'a while', '-socketPath', join(dir, 'nowhere.sock')], now);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /invalid value "a while" for -expiredFor/);
      assert.doesNotMatch(r.stderr, /cannot connect/);
    });
  });
});

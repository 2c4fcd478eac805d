/**
 * `tessera server bundle|x509|jwt|healthcheck` against a real server
 * (`startServer`). Minted SVIDs are checked with the library's verifier
 * against the bundle the CLI printed; federated bundles go in through the
 * real bin's standard input.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JwtBundle, SpiffeBundle, X509Bundle } from '@tessera/spiffe/bundle';
import { TrustDomain } from '@tessera/spiffe/id';
import { JwtSvid, X509Svid, verifyX509Svid } from '@tessera/spiffe/svid';
import { TestCa } from '@tessera/spiffe/testing';
import { main } from '../../src/cli/main.js';
import { parseTtl } from '../../src/cli/commands/server-flags.js';
import { UsageError } from '../../src/cli/errors.js';
import { loadServerConfig } from '../../src/server/config.js';
import { startServer, type RunningServer } from '../../src/server/server.js';

const BIN = fileURLToPath(new URL('../../../bin/tessera.js', import.meta.url));
const td = TrustDomain.parse('cluster.local');
const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } };

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real bin with `input` on its standard input. */
function runBin(args: string[], input: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [BIN, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
    child.stdin!.end(input);
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

/** The PEM block(s) between a `Label:` line and the next blank line. */
function section(text: string, label: string): string {
  const m = new RegExp(`^${label}:\\n((?:-----BEGIN [^\\n]+\\n(?:[^\\n]+\\n)*?-----END [^\\n]+\\n)+)`, 'm').exec(text);
  assert.ok(m, `no "${label}" section in:\n${text}`);
  return m[1]!;
}

describe('tessera server bundle/x509/jwt/healthcheck (CLI against a real server)', () => {
  let dir: string;
  let srv: RunningServer;
  const server = (...args: string[]) => runMain(['server', ...args, '-socketPath', srv.socketPath]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-cli-svid-'));
    const config = loadServerConfig({ flags: { trustDomain: td.name, dataDir: join(dir, 'data'), healthPort: 0, bindPort: 0, bindAddress: '127.0.0.1' } });
    srv = await startServer(config, { logger: silent, tickSeconds: 0 });
  });
  after(async () => {
    await srv?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("bundle show: the server's authorities as PEM and as a SPIFFE bundle", async () => {
    const pem = await server('bundle', 'show');
    assert.equal(pem.code, 0, pem.stderr);
    const x509 = X509Bundle.parse(td, pem.stdout);
    assert.equal(x509.x509Authorities().length, 1);
    assert.ok(x509.x509Authorities()[0]!.equals(srv.ca.bundle().x509Authorities()[0]!));

    const json = await server('bundle', 'show', '-format', 'spiffe');
    assert.equal(json.code, 0, json.stderr);
    const spiffe = SpiffeBundle.parse(td, json.stdout);
    assert.ok(spiffe.equals(srv.ca.bundle()), 'the SPIFFE bundle printed is the CA bundle, JWT authorities included');

    const proto = JSON.parse((await server('bundle', 'show', '-output', 'json')).stdout) as { trust_domain: string; x509_authorities: string[] };
    assert.equal(proto.trust_domain, 'cluster.local');
    assert.equal(proto.x509_authorities.length, 1);
  });

  it('bundle set (stdin and -path) / list / delete for a federated trust domain', async () => {
    const partner = new TestCa({ trustDomain: 'partner.example' });
    const partnerPem = partner.x509Bundle().marshal();
    const viaStdin = await runBin(['server', 'bundle', 'set', '-id', 'spiffe://partner.example', '-socketPath', srv.socketPath], partnerPem);
    assert.equal(viaStdin.code, 0, viaStdin.stderr);
    assert.equal(viaStdin.stdout, 'bundle set.\n');

    const other = new TestCa({ trustDomain: 'other.example' });
    const file = join(dir, 'other.json');
    writeFileSync(file, SpiffeBundle.fromX509Bundle(other.x509Bundle()).marshal());
    const viaPath = await server('bundle', 'set', '-id', 'spiffe://other.example', '-path', file, '-format', 'spiffe');
    assert.equal(viaPath.code, 0, viaPath.stderr);

    const list = await server('bundle', 'list');
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^\*{40}\n\* spiffe:\/\/other\.example\n\*{40}\n-----BEGIN CERTIFICATE-----/m);
    assert.match(list.stdout, /^\* spiffe:\/\/partner\.example$/m);

    const one = await server('bundle', 'list', '-id', 'spiffe://partner.example');
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.stdout, partnerPem);

    // A broken file is reported before anything is sent; the server's own domain is refused by the server.
    writeFileSync(join(dir, 'bad.pem'), 'garbage\n');
    const bad = await server('bundle', 'set', '-id', 'spiffe://bad.example', '-path', join(dir, 'bad.pem'));
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^cannot parse the PEM bundle from ".*bad\.pem": /);
    const own = await server('bundle', 'set', '-id', 'spiffe://cluster.local', '-path', file, '-format', 'spiffe');
    assert.equal(own.code, 1);
    assert.match(own.stderr, /server's own trust domain.*\(InvalidArgument\)\n$/);
    const badId = await server('bundle', 'set', '-id', 'spiffe://Bad', '-path', file);
    assert.equal(badId.code, 2);

    const del = await server('bundle', 'delete', '-id', 'spiffe://partner.example');
    assert.equal(del.code, 0, del.stderr);
    assert.equal(del.stdout, 'bundle deleted.\n');
    const again = await server('bundle', 'delete', '-id', 'spiffe://partner.example');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /\(NotFound\)\n$/);
  });

  it('x509 mint: key made here, SVID verifies against the printed root CAs; -write writes 3 files', async () => {
    const r = await server('x509', 'mint', '-spiffeID', 'spiffe://cluster.local/ns/backend/sa/default', '-ttl', '1h', '-dns', 'backend.svc');
    assert.equal(r.code, 0, r.stderr);
    const svid = X509Svid.parse(section(r.stdout, 'X509-SVID'), section(r.stdout, 'Private key'));
    const roots = X509Bundle.parse(td, section(r.stdout, 'Root CAs'));
    const verified = verifyX509Svid(svid.certificates, roots);
    assert.equal(verified.id.toString(), 'spiffe://cluster.local/ns/backend/sa/default');
    assert.deepEqual(svid.parsedCertificates()[0]!.subjectAltNames.dnsNames, ['backend.svc']);
    const lifetime = svid.expiresAt.getTime() - Date.now();
    assert.ok(lifetime > 3500_000 && lifetime <= 3600_000 + 5000, `lifetime ${lifetime}ms`);

    const out = join(dir, 'certs');
    const w = await server('x509', 'mint', '-spiffeID', 'spiffe://cluster.local/db', '-ttl', '600', '-write', out);
    assert.equal(w.code, 0, w.stderr);
    assert.equal(w.stdout, `X509-SVID written to ${join(out, 'svid.pem')}\nPrivate key written to ${join(out, 'key.pem')}\nRoot CAs written to ${join(out, 'bundle.pem')}\n`);
    assert.equal(statSync(join(out, 'key.pem')).mode & 0o777, 0o600);
    const written = X509Svid.load(join(out, 'svid.pem'), join(out, 'key.pem'));
    verifyX509Svid(written.certificates, X509Bundle.parse(td, readFileSync(join(out, 'bundle.pem'))));

    const json = JSON.parse((await server('x509', 'mint', '-spiffeID', 'spiffe://cluster.local/j', '-output', 'json')).stdout) as Record<string, string>;
    assert.equal(json['spiffe_id'], 'spiffe://cluster.local/j');
    X509Svid.parse(json['x509_svid']!, json['private_key']!);

    // A lifetime beyond the CA's is capped, with SPIRE's warning.
    const capped = await server('x509', 'mint', '-spiffeID', 'spiffe://cluster.local/long', '-ttl', '9000h');
    assert.equal(capped.code, 0, capped.stderr);
    assert.match(capped.stderr, /^X509-SVID lifetime was capped shorter than specified ttl; expires "/);

    const foreign = await server('x509', 'mint', '-spiffeID', 'spiffe://other.td/x');
    assert.equal(foreign.code, 1);
    assert.match(foreign.stderr, /^cannot mint an X509-SVID for spiffe:\/\/other\.td\/x: .*not in trust domain.*\(InvalidArgument\)\n$/);
    const badTtl = await server('x509', 'mint', '-spiffeID', 'spiffe://cluster.local/x', '-ttl', 'soon');
    assert.equal(badTtl.code, 2);
  });

  it('mint -ttl: seconds or a Go duration, as SPIRE takes it', () => {
    const cases: [string, number][] = [['3600', 3600], ['0', 0], ['1h', 3600], ['1h30m', 5400], ['90s', 90], ['1.5s', 2], ['500ms', 1], ['2h0m0s', 7200]];
    for (const [v, want] of cases) assert.equal(parseTtl(v, 'ttl'), want, v);
    for (const v of ['', '-1', '1d', 'h', '1h-', '1.5.5s', '99999999999']) assert.throws(() => parseTtl(v, 'ttl'), UsageError, v);
  });

  it('jwt mint: a JWT-SVID that validates against the bundle', async () => {
    const r = await server('jwt', 'mint', '-spiffeID', 'spiffe://cluster.local/ns/backend/sa/default', '-audience', 'api', '-audience', 'db', '-ttl', '5m');
    assert.equal(r.code, 0, r.stderr);
    const token = r.stdout.trim();
    const jwtBundle: JwtBundle = SpiffeBundle.parse(td, (await server('bundle', 'show', '-format', 'spiffe')).stdout).jwtBundle();
    const svid = JwtSvid.parseAndValidate(token, jwtBundle, ['db']);
    assert.equal(svid.id.toString(), 'spiffe://cluster.local/ns/backend/sa/default');
    assert.deepEqual([...svid.audience], ['api', 'db']);

    const file = join(dir, 'token.jwt');
    const w = await server('jwt', 'mint', '-spiffeID', 'spiffe://cluster.local/x', '-audience', 'a', '-write', file);
    assert.equal(w.code, 0, w.stderr);
    assert.equal(w.stdout, `JWT-SVID written to ${file}\n`);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    JwtSvid.parseAndValidate(readFileSync(file, 'utf8'), jwtBundle, ['a']);

    const noAudience = await server('jwt', 'mint', '-spiffeID', 'spiffe://cluster.local/x');
    assert.equal(noAudience.code, 2);
    assert.match(noAudience.stderr, /missing required flag --audience/);
  });

  it('healthcheck: healthy, verbose, and unhealthy when nothing listens', async () => {
    const ok = await server('healthcheck');
    assert.deepEqual(ok, { code: 0, stdout: 'Server is healthy.\n', stderr: '' });
    const verbose = await server('healthcheck', '-verbose');
    assert.equal(verbose.code, 0);
    assert.match(verbose.stdout, /^Checking server health via .*server\.sock\.\.\.\nReady: true\nDatastore: ok\nCA: ok\nServer is healthy\.\n$/);
    assert.equal((await server('healthcheck', '-shallow')).code, 0);

    const down = await runMain(['server', 'healthcheck', '-socketPath', join(dir, 'none.sock')]);
    assert.equal(down.code, 1);
    assert.equal(down.stdout, '');
    assert.match(down.stderr, /^Server is unhealthy: cannot connect to the server at .*none\.sock: no socket at this path/);
  });
});

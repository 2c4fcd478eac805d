// `tessera agent api …` and `tessera agent healthcheck` against a real
// Workload API socket (startWorkloadApi + InMemoryIdentityCache, callers
// identified by SO_PEERCRED), and the files of `fetch x509 -write` used by
// real third-party TLS tools: openssl s_server/s_client/verify and curl.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Svid, JwtSvid } from '@tessera/spiffe/svid';
import { TestCa } from '@tessera/spiffe/testing';

import { InMemoryIdentityCache, type CachedSvid } from '../../src/agent/workload-api/index.js';
import { startUidAttestedWorkloadApi, trustBundleOf } from '../helpers/workload-api.js';
import type { Selector } from '../../src/server/registration/index.js';
import { runCommandTree, type CliIo, type CommandGroup } from '../../src/cli/command.js';
import { DEFAULT_WORKLOAD_API_SOCKET, agentApiCommands, workloadApiAddress } from '../../src/cli/commands/agent-api.js';
import { agentHealthcheckCommand } from '../../src/cli/commands/agent-health.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-agent-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ca = new TestCa({ trustDomain: 'example.org' });
const intermediate = ca.createIntermediate();
const fedCa = new TestCa({ trustDomain: 'other.org' });
const strangerCa = new TestCa({ trustDomain: 'example.org' });
const uid = process.getuid?.() ?? 0;
const mine: Selector[] = [{ type: 'unix', value: `uid:${uid}` }];
const NOW = new Date('2030-01-01T00:00:00Z');

const root: CommandGroup = { name: 'agent', summary: 'test root', commands: [agentApiCommands, agentHealthcheckCommand] };

/** Runs `tessera agent <argv>` in-process with captured output and a fixed clock. */
async function run(argv: string[], onStdout?: (all: string) => void): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: { write: (s: string) => ((stdout += s), onStdout?.(stdout)) },
    stderr: { write: (s: string) => (stderr += s) },
    now: () => NOW,
  };
  const code = await runCommandTree(root, argv, io);
  return { code, stdout, stderr };
}


function cached(svid: X509Svid, hint: string, federatesWith: string[] = []): CachedSvid {
  return { spiffeId: svid.id.toString(), certificates: [...svid.certificates], privateKey: svid.privateKey, hint, federatesWith };
}

/** web: root-signed, DNS SAN localhost (curl checks host names), federates with other.org; db: signed by an intermediate. */
const web = ca.createX509Svid('spiffe://example.org/web', { dnsNames: ['localhost'] });
const db = intermediate.createX509Svid('spiffe://example.org/db', { dnsNames: ['localhost'] });

let socketN = 0;
async function agentSocket(withEntries = true): Promise<{ path: string; cache: InMemoryIdentityCache }> {
  const path = join(dir, `api-${++socketN}.sock`);
  const cache = new InMemoryIdentityCache({ bundle: trustBundleOf(ca), jwtSigner: { key: ca.jwtKey, keyId: ca.jwtKeyId } });
  cache.setFederatedBundle('other.org', trustBundleOf(fedCa));
  if (withEntries) {
    cache.setEntry('web', { selectors: mine, svid: cached(web, 'internal', ['spiffe://other.org']) });
    cache.setEntry('db', { selectors: mine, svid: cached(db, '') });
  }
  const server = await startUidAttestedWorkloadApi(path, cache, (peer) => (peer === uid ? mine : []));
  after(() => server.close());
  return { path, cache };
}

const pemOf = (ders: readonly Buffer[]): string => ders.map((d) => new X509Certificate(d).toString()).join('');
const iso = (d: string | Date): string => new Date(d).toISOString().replace('.000Z', 'Z');

/** A unix socket server that answers every connection with `reply` (or nothing) — not a Workload API. */
async function fakeServer(name: string, reply?: Buffer): Promise<string> {
  const path = join(dir, name);
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    if (reply !== undefined) s.end(reply);
  });
  server.listen(path);
  await once(server, 'listening');
  after(() => {
    // The client's half of a connection the server never answered is not always destroyed by client.close().
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return path;
}

// One agent socket for the read-only tests (made at top level, so it lives until the file ends).
const shared = await agentSocket();
const api = (): Promise<{ path: string; cache: InMemoryIdentityCache }> => Promise.resolve(shared);

test('fetch x509 prints every SVID like spire-agent: IDs, hint, validity, intermediates, CAs, federated CAs', async () => {
  const { path } = await api();
  const r = await run(['api', 'fetch', 'x509', '-socketPath', path]);
  assert.equal(r.code, 0, r.stderr);
  const web0 = new X509Certificate(web.certificates[0]!);
  const inter = new X509Certificate(intermediate.certificate);
  const rootCert = new X509Certificate(ca.certificate);
  const fedCert = new X509Certificate(fedCa.certificate);
  const expected = [
    'Received 2 svids after 0ms',
    '',
    'SPIFFE ID:\t\tspiffe://example.org/web',
    'Hint:\t\t\tinternal',
    `SVID Valid After:\t${iso(web0.validFrom)}`,
    `SVID Valid Until:\t${iso(web0.validTo)}`,
    `CA #1 Valid After:\t${iso(rootCert.validFrom)}`,
    `CA #1 Valid Until:\t${iso(rootCert.validTo)}`,
    `[spiffe://other.org] CA #1 Valid After:\t${iso(fedCert.validFrom)}`,
    `[spiffe://other.org] CA #1 Valid Until:\t${iso(fedCert.validTo)}`,
    '',
    'SPIFFE ID:\t\tspiffe://example.org/db',
  ];
  assert.deepEqual(r.stdout.split('\n').slice(0, expected.length), expected);
  assert.match(r.stdout, new RegExp(`Intermediate #1 Valid After:\\t${iso(inter.validFrom)}\\nIntermediate #1 Valid Until:\\t${iso(inter.validTo)}\\n`));
  assert.equal(r.stderr, '');

  // `fetch` alone is `fetch x509`; -socketPath takes a unix:// URL too.
  const bare = await run(['api', 'fetch', '-socketPath', `unix://${path}`]);
  assert.equal(bare.code, 0, bare.stderr);
  assert.equal(bare.stdout, r.stdout);
});

test('fetch x509 -write: svid/key/bundle/federated files with SPIRE names, contents and modes; -silent prints nothing', async () => {
  const { path } = await api();
  const out = join(dir, 'write');
  const r = await run(['api', 'fetch', 'x509', '-socketPath', path, '-write', out, '-silent']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '');
  assert.deepEqual(readdirSync(out).sort(), [
    'bundle.0.pem', 'bundle.1.pem', 'federated_bundle.0.0.pem', 'federated_bundle.1.0.pem', 'svid.0.key', 'svid.0.pem', 'svid.1.key', 'svid.1.pem',
  ]);
  for (const f of readdirSync(out)) assert.equal(statSync(join(out, f)).mode & 0o777, f.endsWith('.key') ? 0o600 : 0o644, f);
  const got0 = X509Svid.load(join(out, 'svid.0.pem'), join(out, 'svid.0.key'));
  assert.equal(got0.id.toString(), 'spiffe://example.org/web');
  assert.deepEqual(got0.certificates, web.certificates);
  const got1 = X509Svid.load(join(out, 'svid.1.pem'), join(out, 'svid.1.key'));
  assert.deepEqual(got1.certificates, db.certificates, 'leaf and intermediate');
  assert.equal(got1.certificates.length, 2);
  assert.match(readFileSync(join(out, 'svid.0.key'), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
  assert.equal(readFileSync(join(out, 'bundle.0.pem'), 'utf8'), pemOf([ca.certificate]));
  assert.equal(readFileSync(join(out, 'federated_bundle.0.0.pem'), 'utf8'), pemOf([fedCa.certificate]));

  // Without -silent it says what it writes, like SPIRE; an existing key file gets mode 0600 again.
  writeFileSync(join(out, 'svid.0.key'), 'old', { mode: 0o644 });
  const loud = await run(['api', 'fetch', 'x509', '-socketPath', path, '-write', out]);
  assert.match(loud.stdout, new RegExp(`Writing key #0 to file ${join(out, 'svid.0.key')}\\.\\n`));
  assert.match(loud.stdout, new RegExp(`Writing federated bundle #0 for trust domain spiffe://other.org to file ${join(out, 'federated_bundle.1.0.pem')}\\.\\n`));
  assert.equal(statSync(join(out, 'svid.0.key')).mode & 0o777, 0o600);
  assert.notEqual(readFileSync(join(out, 'svid.0.key'), 'utf8'), 'old');
});

test('fetch x509 -output json is the X509SVIDResponse with proto field names', async () => {
  const { path } = await api();
  const r = await run(['api', 'fetch', 'x509', '-socketPath', path, '-output', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { svids: { spiffe_id: string; x509_svid: string; x509_svid_key: string; bundle: string; hint: string }[]; federated_bundles: Record<string, string> };
  assert.deepEqual(j.svids.map((s) => s.spiffe_id), ['spiffe://example.org/web', 'spiffe://example.org/db']);
  assert.deepEqual(Buffer.from(j.svids[1]!.x509_svid, 'base64'), Buffer.concat(db.certificates));
  assert.deepEqual(Buffer.from(j.svids[0]!.bundle, 'base64'), ca.certificate);
  assert.equal(j.svids[0]!.hint, 'internal');
  assert.deepEqual(Object.keys(j.federated_bundles), ['spiffe://other.org']);
});

/**
 * Runs a tool to completion. Asynchronously: s_server's output must keep
 * flowing (and the in-process Workload API serving) while it runs.
 */
async function tool(cmd: string, args: string[], input = ''): Promise<{ status: number | null; out: string }> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const killer = setTimeout(() => child.kill(), 20_000);
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  child.stdin.end(input);
  const [status] = (await once(child, 'close')) as [number | null];
  clearTimeout(killer);
  return { status, out };
}

/** Starts `openssl s_server` on an ephemeral loopback port; resolves with its port once it accepts. */
async function sServer(args: string[]): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn('openssl', ['s_server', '-accept', '127.0.0.1:0', '-www', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill();
  });
  let seen = '';
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (b: Buffer): void => {
      seen += b.toString();
      const m = /ACCEPT 127\.0\.0\.1:(\d+)/.exec(seen);
      if (m) resolve(Number(m[1]));
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`openssl s_server exited (${code}): ${seen}`)));
  });
  return { port, child };
}

test('interop: openssl verify, s_server -Verify with s_client and curl, using the files of fetch x509 -write', async (t) => {
  if (spawnSync('openssl', ['version']).status !== 0 || spawnSync('curl', ['--version']).status !== 0) {
    t.skip('openssl or curl is not installed (scripts/setup.sh installs them)');
    return;
  }
  const { path } = await api();
  const out = join(dir, 'interop');
  assert.equal((await run(['api', 'fetch', 'x509', '-socketPath', path, '-write', out, '-silent'])).code, 0);
  const f = (name: string): string => join(out, name);
  const wrongBundle = join(dir, 'wrong-bundle.pem');
  writeFileSync(wrongBundle, pemOf([strangerCa.certificate]));

  // openssl verify: the leaf chains to the bundle (through the intermediate sent with svid.1.pem), not to another CA.
  assert.equal((await tool('openssl', ['verify', '-CAfile', f('bundle.0.pem'), f('svid.0.pem')])).status, 0);
  const v1 = await tool('openssl', ['verify', '-CAfile', f('bundle.1.pem'), '-untrusted', f('svid.1.pem'), f('svid.1.pem')]);
  assert.equal(v1.status, 0, v1.out);
  assert.notEqual((await tool('openssl', ['verify', '-CAfile', wrongBundle, f('svid.0.pem')])).status, 0);

  // The server presents svid.0 and demands a client certificate from the bundle.
  const { port } = await sServer(['-cert', f('svid.0.pem'), '-key', f('svid.0.key'), '-CAfile', f('bundle.0.pem'), '-Verify', '1', '-verify_return_error']);
  // -ign_eof: send the request, then wait for the server's answer and close.
  const connect = ['s_client', '-connect', `127.0.0.1:${port}`, '-brief', '-verify_return_error', '-ign_eof'];

  const ok = await tool('openssl', [...connect, '-cert', f('svid.1.pem'), '-cert_chain', f('svid.1.pem'), '-key', f('svid.1.key'), '-CAfile', f('bundle.1.pem')], 'GET / HTTP/1.0\r\n\r\n');
  assert.equal(ok.status, 0, ok.out);
  assert.match(ok.out, /Verification: OK/);
  assert.match(ok.out, /HTTP\/1\.0 200 ok/, 'the server accepted the client certificate and answered');
  // A client that trusts another CA rejects the server; a client without a certificate is refused.
  const wrong = await tool('openssl', [...connect, '-cert', f('svid.1.pem'), '-cert_chain', f('svid.1.pem'), '-key', f('svid.1.key'), '-CAfile', wrongBundle]);
  assert.notEqual(wrong.status, 0, wrong.out);
  const anonymous = await tool('openssl', [...connect, '-CAfile', f('bundle.0.pem')], 'GET / HTTP/1.0\r\n\r\n');
  assert.doesNotMatch(anonymous.out, /HTTP\/1\.0 200 ok/);

  // curl checks the host name, hence the DNS SAN and --resolve; it verifies the server against the bundle.
  const curl = ['-sS', '--max-time', '15', '--resolve', `localhost:${port}:127.0.0.1`, '--cert', f('svid.1.pem'), '--key', f('svid.1.key')];
  const c1 = await tool('curl', [...curl, '--cacert', f('bundle.1.pem'), `https://localhost:${port}/`]);
  assert.equal(c1.status, 0, c1.out);
  assert.match(c1.out, /s_server/, 's_server -www status page');
  const c2 = await tool('curl', [...curl, '--cacert', wrongBundle, `https://localhost:${port}/`]);
  assert.equal(c2.status, 60, `curl must reject a server outside the bundle: ${c2.out}`);
});

test('fetch jwt prints tokens and JWT bundles; -spiffeID picks one; -output json', async () => {
  const { path } = await api();
  const aud = 'spiffe://example.org/api';
  const r = await run(['api', 'fetch', 'jwt', '-audience', aud, '-socketPath', path]);
  assert.equal(r.code, 0, r.stderr);
  const tokens = [...r.stdout.matchAll(/^token\((spiffe:\/\/[^)]+)\):\n\t(\S+)$/gm)].map((m) => [m[1]!, m[2]!] as const);
  assert.deepEqual(tokens.map(([id]) => id), ['spiffe://example.org/web', 'spiffe://example.org/db']);
  for (const [id, token] of tokens) assert.equal(JwtSvid.parseAndValidate(token, ca.jwtBundle(), aud).id.toString(), id);
  const bundles = [...r.stdout.matchAll(/^bundle\((spiffe:\/\/[^)]+)\):\n\t(\{.*\})$/gm)].map((m) => m[1]);
  assert.deepEqual(bundles, ['spiffe://example.org', 'spiffe://other.org']);
  assert.match(r.stdout, new RegExp(`"kid":"${ca.jwtKeyId}"`));

  const one = await run(['api', 'fetch', 'jwt', '-audience', 'a,b', '-spiffeID', 'spiffe://example.org/db', '-socketPath', path, '-output', 'json']);
  assert.equal(one.code, 0, one.stderr);
  const [svids, jwks] = JSON.parse(one.stdout) as [{ svids: { spiffe_id: string; svid: string }[] }, { bundles: Record<string, string> }];
  assert.deepEqual(svids.svids.map((s) => s.spiffe_id), ['spiffe://example.org/db']);
  assert.deepEqual(JwtSvid.parseAndValidate(svids.svids[0]!.svid, ca.jwtBundle(), 'b').audience, ['a', 'b']);
  assert.ok(JSON.parse(Buffer.from(jwks.bundles['spiffe://example.org']!, 'base64').toString()).keys.length === 1);

  const notMine = await run(['api', 'fetch', 'jwt', '-audience', 'a', '-spiffeID', 'spiffe://example.org/nope', '-socketPath', path]);
  assert.equal(notMine.code, 1);
  assert.match(notMine.stderr, /^cannot fetch JWT-SVID: .*PermissionDenied/);
});

test('validate jwt: valid token → exit 0 with ID and claims; wrong audience, foreign signer, garbage → exit 1', async () => {
  const { path } = await api();
  const fetched = await run(['api', 'fetch', 'jwt', '-audience', 'spiffe://example.org/api', '-spiffeID', 'spiffe://example.org/web', '-socketPath', path]);
  const token = /^\t(\S+)$/m.exec(fetched.stdout)![1]!;
  const ok = await run(['api', 'validate', 'jwt', '-audience', 'spiffe://example.org/api', '-svid', token, '-socketPath', path]);
  assert.equal(ok.code, 0, ok.stderr);
  const lines = ok.stdout.split('\n');
  assert.equal(lines[0], 'SVID is valid.');
  assert.equal(lines[1], 'SPIFFE ID : spiffe://example.org/web');
  const claims = JSON.parse(lines[2]!.replace(/^Claims {4}: /, '')) as { sub: string; aud: string[] };
  assert.equal(claims.sub, 'spiffe://example.org/web');
  assert.deepEqual(claims.aud, ['spiffe://example.org/api']);

  const json = await run(['api', 'validate', 'jwt', '-audience', 'spiffe://example.org/api', '-svid', token, '-socketPath', path, '-output', 'json']);
  assert.equal((JSON.parse(json.stdout) as { spiffe_id: string }).spiffe_id, 'spiffe://example.org/web');

  const { createJwtSvid } = await import('@tessera/spiffe/testing');
  for (const [svid, audience] of [
    [token, 'spiffe://example.org/other'],
    [createJwtSvid(strangerCa, 'spiffe://example.org/web', 'spiffe://example.org/api'), 'spiffe://example.org/api'],
    ['garbage', 'spiffe://example.org/api'],
  ] as const) {
    const bad = await run(['api', 'validate', 'jwt', '-audience', audience, '-svid', svid, '-socketPath', path]);
    assert.equal(bad.code, 1, `${svid.slice(0, 12)}: ${bad.stdout}`);
    assert.match(bad.stderr, /^SVID is not valid: \S.*\n$/);
    assert.equal(bad.stdout, '');
  }
});

test('a caller without a registration entry gets a clear PermissionDenied message (exit 1)', async () => {
  const { path } = await agentSocket(false);
  const r = await run(['api', 'fetch', 'x509', '-socketPath', path]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `cannot fetch X509-SVIDs: no identity issued (PermissionDenied): the agent has no registration entry matching this process (uid ${uid})\n`);
  assert.equal(r.stdout, '');
});

test('unreachable or wrong sockets, timeouts and bad command lines', async () => {
  const missing = join(dir, 'missing.sock');
  const r = await run(['api', 'fetch', 'x509', '-socketPath', missing]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^cannot fetch X509-SVIDs: cannot connect to the Workload API at unix://${missing}: no socket at this path \\(is 'tessera agent run' running\\?`));

  const silent = await fakeServer('silent.sock');
  const t = await run(['api', 'fetch', 'x509', '-socketPath', silent, '-timeout', '150ms']);
  assert.equal(t.code, 1);
  assert.match(t.stderr, /did not answer within 150ms\n$/);

  for (const argv of [
    ['api', 'fetch', 'jwt'],
    ['api', 'fetch', 'x509', '-audience', 'a'],
    ['api', 'fetch', 'jwt', '-audience', 'a', '-write', 'x'],
    ['api', 'fetch', 'x509', '-timeout', 'soon'],
    ['api', 'fetch', 'spiffe'],
    ['api', 'fetch', '-socketPath', 'http://x'],
    ['api', 'validate', 'jwt', '-audience', 'a'],
    ['api', 'watch', '-count', '0'],
  ]) {
    const u = await run(argv);
    assert.equal(u.code, 2, `${argv.join(' ')}: ${u.stderr}`);
  }

  assert.equal(workloadApiAddress(undefined, {}), DEFAULT_WORKLOAD_API_SOCKET);
  assert.equal(DEFAULT_WORKLOAD_API_SOCKET, 'unix:///tmp/tessera-agent/public/api.sock');
  assert.equal(workloadApiAddress(undefined, { SPIFFE_ENDPOINT_SOCKET: 'unix:///run/a.sock' }), 'unix:///run/a.sock');
  assert.equal(workloadApiAddress('/run/b c.sock', { SPIFFE_ENDPOINT_SOCKET: 'unix:///run/a.sock' }), 'unix:///run/b%20c.sock');
  assert.equal(workloadApiAddress('rel.sock', {}), `unix://${process.cwd()}/rel.sock`);
});

test('healthcheck: healthy with or without an identity; unhealthy for a missing socket or a garbage server; -shallow', async () => {
  const { path } = await api();
  const healthy = await run(['healthcheck', '-socketPath', path, '-verbose']);
  assert.equal(healthy.code, 0, healthy.stderr);
  assert.match(healthy.stdout, /Agent is healthy\.\n$/);

  const noIdentity = await agentSocket(false);
  const up = await run(['healthcheck', '-socketPath', noIdentity.path, '-verbose']);
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, /PermissionDenied.*\nAgent is healthy\.\n$/);

  const missing = await run(['healthcheck', '-socketPath', join(dir, 'nope.sock')]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stdout, '');
  assert.match(missing.stderr, /^Agent is unhealthy: .*no socket at this path.*\n$/);
  assert.equal(missing.stderr.split('\n').length, 2, 'one line');

  const garbage = await fakeServer('garbage.sock', Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\nthis is not gRPC'));
  const g = await run(['healthcheck', '-socketPath', garbage]);
  assert.equal(g.code, 1);
  assert.match(g.stderr, /^Agent is unhealthy: .+\n$/);
  assert.equal(g.stderr.split('\n').length, 2, 'one line');

  // -shallow: the socket accepts connections, whatever speaks on it.
  assert.equal((await run(['healthcheck', '-shallow', '-socketPath', garbage])).code, 0);
  const shallowMissing = await run(['healthcheck', '-shallow', '-socketPath', join(dir, 'nope.sock')]);
  assert.equal(shallowMissing.code, 1);
  assert.match(shallowMissing.stderr, /^Agent is unhealthy: .*no socket at this path/);
});

test('watch prints the first X509-SVID update and one per rotation (-count stops it)', async () => {
  const { path, cache } = await agentSocket();
  const rotated = ca.createX509Svid('spiffe://example.org/web', { ttlSeconds: 7200 });
  let rotatedOnce = false;
  const r = await run(['api', 'watch', '-socketPath', path, '-count', '2'], (all) => {
    // Rotate as soon as the first update has been printed: no timers involved.
    if (!rotatedOnce && all.includes('Received 2 svids')) {
      rotatedOnce = true;
      cache.setEntry('web', { selectors: mine, svid: cached(rotated, 'internal', ['spiffe://other.org']) });
    }
  });
  assert.equal(r.code, 0, r.stderr);
  const blocks = r.stdout.split(/^(?=Received )/m);
  assert.equal(blocks.length, 2, r.stdout);
  const until = (block: string): string => /SPIFFE ID:\t\tspiffe:\/\/example\.org\/web\n(?:.*\n)*?SVID Valid Until:\t(\S+)/.exec(block)![1]!;
  assert.equal(until(blocks[0]!), iso(new X509Certificate(web.certificates[0]!).validTo));
  assert.equal(until(blocks[1]!), iso(new X509Certificate(rotated.certificates[0]!).validTo));
});

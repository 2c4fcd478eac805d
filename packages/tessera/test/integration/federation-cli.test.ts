/**
 * `tessera server federation create|list|show|update|delete|refresh` against
 * two running servers (real SQLite, real bundle endpoints on loopback), with
 * SPIRE's flags and output. The CLI runs in-process through `main()`; the
 * FederationAdmin service is served on its own socket until the daemon
 * registers it on the Admin API socket.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpiffeBundle } from '@tessera/spiffe/bundle';
import { FederationAdmin } from '../../src/gen/tessera/v1/admin_pb.js';
import { serveGrpcOnUnixSocket, type UnixGrpcServer } from '../../src/grpc/unix-server.js';
import { main } from '../../src/cli/main.js';
import { federationAdmin } from '../../src/server/api/federation-admin.js';
import { loadServerConfig } from '../../src/server/config.js';
import { startFederation, type RunningFederation } from '../../src/server/federation/index.js';
import { startServer, type RunningServer } from '../../src/server/server.js';

const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } };

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function runMain(args: string[]): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, now: () => new Date() });
  return { code, stdout, stderr };
}

function assertNoStackTrace(r: RunResult): void {
  assert.doesNotMatch(r.stderr + r.stdout, /^\s+at /m, 'output must not contain a stack trace');
}

describe('tessera server federation (CLI against running servers)', () => {
  let dir: string;
  const servers: { srv: RunningServer; fed: RunningFederation; grpc: UnixGrpcServer }[] = [];
  let socket: string;
  let bUrl: string;
  let b: RunningServer;
  /** `tessera server federation <args> -socketPath <A's socket>`. */
  const federation = (...args: string[]) => runMain(['server', 'federation', ...args, '-socketPath', socket]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-federation-cli-'));
    for (const td of ['a.test', 'b.test']) {
      const dataDir = join(dir, td);
      const srv = await startServer(loadServerConfig({ flags: { trustDomain: td, dataDir, healthPort: 0, bindPort: 0, bindAddress: '127.0.0.1' } }), { logger: silent, tickSeconds: 0 });
      const fed = await startFederation({ datastore: srv.datastore, ca: srv.ca, logger: silent, bundleEndpoint: { address: '127.0.0.1', port: 0 }, tickSeconds: 0 });
      const grpc = await serveGrpcOnUnixSocket(join(dataDir, 'federation.sock'), (r) => r.service(FederationAdmin, federationAdmin(srv.datastore, srv.ca.trustDomain, fed)));
      servers.push({ srv, fed, grpc });
    }
    socket = servers[0]!.grpc.path;
    b = servers[1]!.srv;
    bUrl = `https://127.0.0.1:${servers[1]!.fed.bundleEndpointPort}/`;
    writeFileSync(join(dir, 'b.json'), b.ca.bundle().marshal());
    writeFileSync(join(dir, 'b.pem'), b.ca.bundle().x509Bundle().marshal());
  });
  after(async () => {
    for (const s of servers) {
      await s.grpc.close();
      await s.fed.close();
      await s.srv.close();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("create → list → show → refresh → update → delete with SPIRE's command lines and output", async () => {
    const block = [
      'Trust domain              : b.test',
      `Bundle endpoint URL       : ${bUrl}`,
      'Bundle endpoint profile   : https_spiffe',
      'Endpoint SPIFFE ID        : spiffe://b.test/tessera/server',
      '',
    ].join('\n');
    const created = await federation(
      'create',
      '-bundleEndpointProfile', 'https_spiffe',
      '-bundleEndpointURL', bUrl,
      '-endpointSpiffeID', 'spiffe://b.test/tessera/server',
      '-trustDomain', 'b.test',
      '-trustDomainBundleFormat', 'spiffe',
      '-trustDomainBundlePath', join(dir, 'b.json'),
    );
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout, '\n' + block);

    const listed = await federation('list');
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stdout, `Found 1 federation relationship\n\n${block}`);

    const shown = await federation('show', '-trustDomain', 'b.test');
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal(shown.stdout, `Found a federation relationship with trust domain b.test:\n\n${block}`);

    const refreshed = await federation('refresh', '-id', 'spiffe://b.test');
    assert.equal(refreshed.code, 0, refreshed.stderr);
    assert.equal(refreshed.stdout, 'Bundle refreshed\n');
    const stored = await servers[0]!.srv.datastore.getBundle('b.test');
    assert.ok(SpiffeBundle.parse(b.ca.trustDomain, stored!.bundle).equals(b.ca.bundle()));
    const refreshedJson = await federation('refresh', '-id', 'b.test', '-output', 'json');
    assert.equal(refreshedJson.code, 0, refreshedJson.stderr);
    assert.equal(JSON.parse(refreshedJson.stdout).trust_domain, 'b.test');

    const json = await federation('list', '-output', 'json');
    assert.equal(json.code, 0, json.stderr);
    const rel = JSON.parse(json.stdout).relationships[0];
    assert.equal(rel.trust_domain, 'b.test');
    assert.equal(rel.bundle_endpoint_url, bUrl);
    assert.equal(rel.profile, 'https_spiffe');
    assert.equal(rel.endpoint_spiffe_id, 'spiffe://b.test/tessera/server');
    assert.ok(SpiffeBundle.parse(b.ca.trustDomain, rel.trust_domain_bundle).equals(b.ca.bundle()));

    const toWeb = await federation('update', '-trustDomain', 'b.test', '-bundleEndpointProfile', 'https_web', '-bundleEndpointURL', 'https://bundle.b.test/');
    assert.equal(toWeb.code, 0, toWeb.stderr);
    assert.equal(toWeb.stdout, '\nTrust domain              : b.test\nBundle endpoint URL       : https://bundle.b.test/\nBundle endpoint profile   : https_web\n');
    const back = await federation('update', '-trustDomain', 'b.test', '-bundleEndpointProfile', 'https_spiffe', '-bundleEndpointURL', bUrl, '-endpointSpiffeID', 'spiffe://b.test/tessera/server');
    assert.equal(back.code, 0, back.stderr);
    assert.equal(back.stdout, '\n' + block);

    const deleted = await federation('delete', '-id', 'spiffe://b.test');
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(deleted.stdout, 'federation relationship deleted.\n');
    assert.equal((await federation('list')).stdout, 'Found 0 federation relationships\n');
  });

  it('takes a PEM bootstrap bundle (the default -trustDomainBundleFormat)', async () => {
    const created = await federation('create', '-trustDomain', 'b.test', '-bundleEndpointURL', bUrl, '-bundleEndpointProfile', 'https_spiffe', '-endpointSpiffeID', 'spiffe://b.test/tessera/server', '-trustDomainBundlePath', join(dir, 'b.pem'));
    assert.equal(created.code, 0, created.stderr);
    assert.equal((await federation('refresh', '-id', 'spiffe://b.test')).code, 0);
    assert.equal((await federation('delete', '-id', 'b.test')).code, 0);
  });

  it('refuses bad input with the reasons: usage errors (exit 2) before the server, the server\'s InvalidArgument (exit 1)', async () => {
    const http = await federation('create', '-trustDomain', 'b.test', '-bundleEndpointURL', 'http://127.0.0.1:8443', '-bundleEndpointProfile', 'https_spiffe');
    assert.equal(http.code, 2);
    assert.match(http.stderr, /invalid federation relationship: bundle endpoint URL "http:\/\/127\.0\.0\.1:8443" must use https \(got http\); endpoint SPIFFE ID is required with profile https_spiffe/);
    assertNoStackTrace(http);

    const own = await federation('create', '-trustDomain', 'a.test', '-bundleEndpointURL', 'https://a.test/', '-bundleEndpointProfile', 'https_web');
    assert.equal(own.code, 1);
    assert.equal(own.stderr, `cannot create the federation relationship with a.test: "a.test" is the server's own trust domain; federate with other trust domains only (InvalidArgument)\n`);

    const noProfile = await federation('create', '-trustDomain', 'b.test', '-bundleEndpointURL', bUrl);
    assert.equal(noProfile.code, 2);
    assert.match(noProfile.stderr, /bundle-endpoint-profile/);

    const badProfile = await federation('create', '-trustDomain', 'b.test', '-bundleEndpointURL', bUrl, '-bundleEndpointProfile', 'https_mtls');
    assert.equal(badProfile.code, 2);

    const badTd = await federation('show', '-trustDomain', 'B.TEST');
    assert.equal(badTd.code, 2);
    assert.match(badTd.stderr, /invalid value "B\.TEST" for -trustDomain/);

    const jsonAsPem = await federation('create', '-trustDomain', 'b.test', '-bundleEndpointURL', bUrl, '-bundleEndpointProfile', 'https_spiffe', '-endpointSpiffeID', 'spiffe://b.test/tessera/server', '-trustDomainBundlePath', join(dir, 'b.json'));
    assert.equal(jsonAsPem.code, 1);
    assert.match(jsonAsPem.stderr, /cannot parse the PEM bundle from ".*b\.json": .*add -trustDomainBundleFormat spiffe/);

    const missingFile = await federation('create', '-trustDomain', 'b.test', '-bundleEndpointURL', bUrl, '-bundleEndpointProfile', 'https_web', '-trustDomainBundlePath', join(dir, 'nope.pem'));
    assert.equal(missingFile.code, 1);
    assert.match(missingFile.stderr, /cannot read trust domain bundle ".*nope\.pem": no such file or directory/);
    assert.equal((await federation('list')).stdout, 'Found 0 federation relationships\n', 'nothing was created');

    const unknown = await federation('refresh', '-id', 'spiffe://nope.test');
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr, 'there is no federation relationship with trust domain "nope.test"\n');
    const unknownShow = await federation('show', '-trustDomain', 'nope.test');
    assert.equal(unknownShow.code, 1);
    assert.match(unknownShow.stderr, /no federation relationship with trust domain "nope\.test" \(NotFound\)/);
    const noId = await federation('delete');
    assert.equal(noId.code, 2);

    const noServer = await runMain(['server', 'federation', 'list', '-socketPath', join(dir, 'missing.sock')]);
    assert.equal(noServer.code, 1);
    assert.match(noServer.stderr, /cannot connect to the server at .*missing\.sock: no socket at this path/);
  });

  it('a failing refresh exits 1 with the reason', async () => {
    assert.equal((await federation('create', '-trustDomain', 'b.test', '-bundleEndpointURL', bUrl, '-bundleEndpointProfile', 'https_spiffe', '-endpointSpiffeID', 'spiffe://b.test/wrong', '-trustDomainBundleFormat', 'spiffe', '-trustDomainBundlePath', join(dir, 'b.json'))).code, 0);
    const r = await federation('refresh', '-id', 'b.test');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^cannot refresh the bundle of b\.test: bundle endpoint https:\/\/127\.0\.0\.1:\d+\/ failed https_spiffe authentication: .*expected spiffe:\/\/b\.test\/wrong\) \(FailedPrecondition\)\n$/);
    assert.equal((await federation('delete', '-id', 'b.test')).code, 0);
  });

  it('is listed under tessera server with help', async () => {
    const help = await runMain(['server', 'federation', '--help']);
    assert.equal(help.code, 0);
    for (const c of ['create', 'list', 'show', 'update', 'delete', 'refresh']) assert.match(help.stdout, new RegExp(`^  ${c} `, 'm'));
    const createHelp = await runMain(['server', 'federation', 'create', '--help']);
    assert.match(createHelp.stdout, /--bundle-endpoint-url <url>/);
    assert.match(createHelp.stdout, /--trust-domain-bundle-format <format>.*default: pem/);
  });
});

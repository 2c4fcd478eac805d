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

  it("create|update -data: SPIRE's JSON file, every relationship reported", async () => {
    const file = join(dir, 'relationships.json');
    const bBlock = `Trust domain              : b.test\nBundle endpoint URL       : ${bUrl}\nBundle endpoint profile   : https_spiffe\nEndpoint SPIFFE ID        : spiffe://b.test/tessera/server\n`;
    const cBlock = (url: string) => `Trust domain              : c.test\nBundle endpoint URL       : ${url}\nBundle endpoint profile   : https_web\n`;
    writeFileSync(
      file,
      JSON.stringify({
        federationRelationships: [
          {
            trustDomain: 'b.test',
            bundleEndpointURL: bUrl,
            bundleEndpointProfile: 'https_spiffe',
            endpointSPIFFEID: 'spiffe://b.test/tessera/server',
            trustDomainBundle: JSON.parse(b.ca.bundle().marshal()) as unknown,
            trustDomainBundleFormat: 'spiffe',
          },
          { trustDomain: 'c.test', bundleEndpointURL: 'https://bundle.c.test/', bundleEndpointProfile: 'https_web' },
        ],
      }),
    );
    const created = await federation('create', '-data', file);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout, `\n${bBlock}\n${cBlock('https://bundle.c.test/')}`);
    assert.equal(created.stderr, '');
    assert.match((await federation('list')).stdout, /^Found 2 federation relationships\n/);
    // The inline bootstrap bundle authenticates the https_spiffe endpoint.
    assert.equal((await federation('refresh', '-id', 'b.test')).code, 0);

    // Again: both exist; each failure is reported with its code, exit 1.
    const again = await federation('create', '-data', file);
    assert.equal(again.code, 1);
    assert.equal(again.stdout, '');
    assert.match(again.stderr, /^\nFailed to create the following federation relationship \(code: AlreadyExists, msg: ".*b\.test.*"\):\nTrust domain {14}: b\.test\n/);
    assert.match(again.stderr, /\nFailed to create the following federation relationship \(code: AlreadyExists, msg: ".*c\.test.*"\):\nTrust domain {14}: c\.test\n/);

    // update -data replaces each relationship whole; a PEM bundle path is read relative to the file.
    writeFileSync(
      file,
      JSON.stringify({
        federation_relationships: [
          { trust_domain: 'c.test', bundle_endpoint_url: 'https://c.example:8443/', bundle_endpoint_profile: 'https_web' },
          { trustDomain: 'b.test', bundleEndpointURL: bUrl, bundleEndpointProfile: 'https_spiffe', endpointSPIFFEID: 'spiffe://b.test/tessera/server', trustDomainBundlePath: 'b.pem' },
        ],
      }),
    );
    const updated = await federation('update', '-data', file, '-output', 'json');
    assert.equal(updated.code, 0, updated.stderr);
    const results = (JSON.parse(updated.stdout) as { results: { status: { code: number }; federation_relationship: { trust_domain: string; bundle_endpoint_url: string } }[] }).results;
    assert.deepEqual(results.map((r) => [r.status.code, r.federation_relationship.trust_domain, r.federation_relationship.bundle_endpoint_url]), [[0, 'c.test', 'https://c.example:8443/'], [0, 'b.test', bUrl]]);
    assert.equal((await federation('show', '-trustDomain', 'c.test')).stdout, `Found a federation relationship with trust domain c.test:\n\n${cBlock('https://c.example:8443/')}`);

    for (const td of ['b.test', 'c.test']) assert.equal((await federation('delete', '-id', td)).code, 0);
  });

  it('-data: a bad file is one line, exit 1, and creates nothing', async () => {
    const file = join(dir, 'bad-relationships.json');
    const good = { trustDomain: 'c.test', bundleEndpointURL: 'https://bundle.c.test/', bundleEndpointProfile: 'https_web' };
    const cases: [unknown, RegExp][] = [
      ['{"federationRelationships": [', /^cannot parse federation relationships ".*bad-relationships\.json": invalid JSON: /],
      [{ relationships: [good] }, /: unknown field "relationships"\n$/],
      [{ federationRelationships: [] }, /: "federationRelationships" is empty\n$/],
      [{ federationRelationships: [good, { ...good, trustDomain: 'd.test', bundleEndpointURL: 'http://bundle.d.test/' }] }, /: federationRelationships\[1\]: bundle endpoint URL "http:\/\/bundle\.d\.test\/" must use https \(got http\)\n$/],
      [{ federationRelationships: [good, { ...good, bundleEndpointProfile: 'https_spiffe' }] }, /: federationRelationships\[1\]: endpoint SPIFFE ID is required with profile https_spiffe/],
      [{ federationRelationships: [{ ...good, trustDomainBundle: { keys: [] } }] }, /: federationRelationships\[0\]\.trustDomainBundle must be a string of PEM certificates\n$/],
      [{ federationRelationships: [{ ...good, trustDomainBundle: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }] }, /^cannot parse the PEM bundle from federationRelationships\[0\]\.trustDomainBundle: /],
      [{ federationRelationships: [{ ...good, trustDomainBundlePath: 'b.json' }] }, /cannot parse the PEM bundle from ".*b\.json" \(federationRelationships\[0\]\): .*add -trustDomainBundleFormat spiffe/],
      [{ federationRelationships: [good, { ...good, trustDomain: 'spiffe://c.test' }] }, /: federationRelationships\[1\]: trust domain "c\.test" is also federationRelationships\[0\]\n$/],
      [{ federationRelationships: [{ ...good, colour: 'red' }] }, /: federationRelationships\[0\]: unknown field "colour"\n$/],
    ];
    for (const [doc, reason] of cases) {
      writeFileSync(file, typeof doc === 'string' ? doc : JSON.stringify(doc));
      for (const verb of ['create', 'update']) {
        const r = await federation(verb, '-data', file);
        assert.equal(r.code, 1, `${verb} ${JSON.stringify(doc)}: ${r.stderr}`);
        assert.equal(r.stdout, '');
        assert.match(r.stderr, reason, JSON.stringify(doc));
        assert.equal(r.stderr.split('\n').length, 2, `one line: ${r.stderr}`);
        assertNoStackTrace(r);
      }
    }
    assert.equal((await federation('list')).stdout, 'Found 0 federation relationships\n', 'nothing was created');

    const mixed = await federation('create', '-data', file, '-trustDomain', 'c.test');
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /-data cannot be combined with --trust-domain/);
    const noTd = await federation('update', '-bundleEndpointURL', bUrl);
    assert.equal(noTd.code, 2);
    assert.match(noTd.stderr, /missing required flag --trust-domain <td> \(or give -data\)/);
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

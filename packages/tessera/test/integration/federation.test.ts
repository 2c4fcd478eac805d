/**
 * Federation between two real servers (spec/spiffe.md §5): `startServer`
 * with SQLite in temp dirs, each with `startFederation` serving an
 * `https_spiffe` bundle endpoint on an ephemeral loopback port, and the
 * FederationAdmin service on its own Unix socket. One injected clock drives
 * both servers, so CA rotation, SVID re-minting and refresh schedules are
 * exercised without sleeping.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { SpiffeBundle } from '@tessera/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@tessera/spiffe/id';
import { verifyX509Svid } from '@tessera/spiffe/svid';
import { TestCa } from '@tessera/spiffe/testing';
import { authorizeId, createHttpsServer, httpsAgent } from '@tessera/spiffe/tls';
import { FederationAdmin } from '../../src/gen/tessera/v1/admin_pb.js';
import { serveGrpcOnUnixSocket, type UnixGrpcServer } from '../../src/grpc/unix-server.js';
import { unixSocketTransport } from '../../src/grpc/unix-client.js';
import { federationAdmin } from '../../src/server/api/federation-admin.js';
import { loadServerConfig } from '../../src/server/config.js';
import {
  isFederationError,
  refreshIntervalSeconds,
  retryDelaySeconds,
  startFederation,
  type BundleEndpointConfig,
  type RunningFederation,
} from '../../src/server/federation/index.js';
import { startServer, type RunningServer } from '../../src/server/server.js';

const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } };

/** One clock for both servers: handshakes between them are checked at the same instant. */
const clock = {
  t: Date.now(),
  now: (): Date => new Date(clock.t),
  advance(seconds: number): void {
    clock.t += seconds * 1000;
  },
};

interface Side {
  readonly td: TrustDomain;
  readonly srv: RunningServer;
  readonly fed: RunningFederation;
  readonly admin: Client<typeof FederationAdmin>;
  readonly url: string;
  readonly endpointId: string;
  close(): Promise<void>;
}

async function startSide(dir: string, name: string, extra: { webCaFile?: string } = {}): Promise<Side> {
  const dataDir = join(dir, name);
  const srv = await startServer(loadServerConfig({ flags: { trustDomain: name, dataDir, healthPort: 0, bindPort: 0, bindAddress: '127.0.0.1' } }), { logger: silent, tickSeconds: 0, now: clock.now });
  const fed = await startFederation({
    datastore: srv.datastore,
    ca: srv.ca,
    logger: silent,
    metrics: srv.metrics,
    now: clock.now,
    bundleEndpoint: { address: '127.0.0.1', port: 0 },
    tickSeconds: 0,
    fetchTimeoutMs: 5000,
    ...extra,
  });
  // Until the lead wires FederationAdmin into the server's own socket, it gets one of its own here.
  const grpc: UnixGrpcServer = await serveGrpcOnUnixSocket(join(dataDir, 'federation.sock'), (r) => r.service(FederationAdmin, federationAdmin(srv.datastore, srv.ca.trustDomain, fed)));
  return {
    td: srv.ca.trustDomain,
    srv,
    fed,
    admin: createClient(FederationAdmin, unixSocketTransport(grpc.path)),
    url: `https://127.0.0.1:${fed.bundleEndpointPort}/`,
    endpointId: `spiffe://${name}/tessera/server`,
    async close() {
      await grpc.close();
      await fed.close();
      await srv.close();
    },
  };
}

/** GET through a SPIFFE-verifying agent that accepts only `id`, verified against `bundle`. */
function spiffeGet(url: string, bundle: SpiffeBundle, id: string, method = 'GET'): Promise<{ status: number; type: string | undefined; body: string; allow: string | undefined }> {
  const agent = httpsAgent({ bundle, authorize: authorizeId(SpiffeId.parse(id)), clock: clock.now });
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        agent.destroy();
        resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body, allow: res.headers['allow'] });
      });
    });
    req.on('error', (e) => {
      agent.destroy();
      reject(e);
    });
    req.end();
  });
}

/** The serial of the certificate a TLS server presents. */
function presentedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.destroy();
      resolve(serial);
    });
    s.on('error', reject);
  });
}

/** Asserts that `p` rejects with a ConnectError of `code` whose message matches every pattern. */
async function rejectsWith(p: Promise<unknown>, code: Code, ...patterns: RegExp[]): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ConnectError, `expected a ConnectError, got ${String(e)}`);
    assert.equal(e.code, code, `code ${Code[e.code]} (${e.rawMessage})`);
    for (const re of patterns) assert.match(e.rawMessage, re);
    return e;
  }
  assert.fail('expected a rejection');
}

/** A throwaway HTTPS server answering every request with `respond`. */
async function fakeEndpoint(options: https.ServerOptions | { svid: ReturnType<TestCa['createX509Svid']> }, respond: (res: import('node:http').ServerResponse) => void): Promise<{ port: number; close(): Promise<void> }> {
  const handler = (_req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void => respond(res);
  const server = 'svid' in options ? createHttpsServer({ svid: options.svid }, handler) : https.createServer(options, handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

describe('federation between two servers', () => {
  let dir: string;
  let a: Side;
  let b: Side;
  /** A Web PKI CA (real time: Node checks Web PKI certificates against the real clock) and a cert for "localhost". */
  let webCa: TestCa;
  let webCert: { cert: string; key: string };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-federation-'));
    webCa = new TestCa({ trustDomain: 'webpki.test' });
    const f = webCa.createCertificate(undefined, { dnsNames: ['localhost'], subjectCommonName: 'localhost' });
    webCert = {
      cert: pem(f.certificates),
      key: f.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    };
    writeFileSync(join(dir, 'web-ca.pem'), pem([webCa.certificate]));
    writeFileSync(join(dir, 'web.crt'), webCert.cert);
    writeFileSync(join(dir, 'web.key'), webCert.key);
    a = await startSide(dir, 'a.test', { webCaFile: join(dir, 'web-ca.pem') });
    b = await startSide(dir, 'b.test');
  });
  after(async () => {
    await a?.close();
    await b?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the trust bundle at GET / with an X509-SVID for spiffe://<td>/tessera/server; other methods 405, other paths 404', async () => {
    const got = await spiffeGet(a.url, a.srv.ca.bundle(), a.endpointId);
    assert.equal(got.status, 200);
    assert.equal(got.type, 'application/json');
    assert.ok(SpiffeBundle.parse(a.td, got.body).equals(a.srv.ca.bundle()), 'the served bundle is the CA bundle');
    const head = await spiffeGet(a.url, a.srv.ca.bundle(), a.endpointId, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    for (const m of ['POST', 'PUT', 'DELETE']) {
      const r = await spiffeGet(a.url, a.srv.ca.bundle(), a.endpointId, m);
      assert.equal(r.status, 405, m);
      assert.equal(r.allow, 'GET, HEAD');
    }
    assert.equal((await spiffeGet(a.url + 'other', a.srv.ca.bundle(), a.endpointId)).status, 404);
    // Another trust domain's bundle cannot authenticate it, and the ID is checked exactly.
    await assert.rejects(spiffeGet(a.url, b.srv.ca.bundle(), a.endpointId), /certificate rejected/);
    await assert.rejects(spiffeGet(a.url, a.srv.ca.bundle(), 'spiffe://a.test/other'), /is not authorized/);
  });

  it('survives garbage: plaintext on the TLS port, a broken HTTP request, a client that hangs up', async () => {
    const port = a.fed.bundleEndpointPort;
    await new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.end('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.on('data', () => undefined);
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    });
    const answer = await new Promise<string>((resolve) => {
      let out = '';
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => s.write('\x00\x01garbage \r\n\r\n'));
      s.on('data', (d: Buffer) => (out += d.toString()));
      s.on('close', () => resolve(out));
      s.on('error', () => resolve(out));
    });
    assert.match(answer, /^HTTP\/1\.1 400/);
    await new Promise<void>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
        s.write('GET / HTTP/1.1\r\n');
        s.destroy();
        resolve();
      });
      s.on('error', () => resolve());
    });
    assert.equal((await spiffeGet(a.url, a.srv.ca.bundle(), a.endpointId)).status, 200, 'still serving');
  });

  it('both sides create https_spiffe relationships with bootstrap bundles; refresh stores the other side\'s CA bundle', async () => {
    // A bootstraps from B's SPIFFE bundle JSON, B from A's PEM roots (SPIRE's two -trustDomainBundleFormat values).
    const onA = await a.admin.createFederationRelationship({
      trustDomain: 'b.test',
      bundleEndpointUrl: b.url,
      profile: 'https_spiffe',
      endpointSpiffeId: b.endpointId,
      trustDomainBundle: b.srv.ca.bundle().marshal(),
    });
    assert.equal(onA.trustDomain, 'b.test');
    assert.equal(onA.profile, 'https_spiffe');
    assert.equal(onA.endpointSpiffeId, b.endpointId);
    assert.ok(SpiffeBundle.parse(b.td, onA.trustDomainBundle).equals(b.srv.ca.bundle()));
    await b.admin.createFederationRelationship({
      trustDomain: 'spiffe://a.test',
      bundleEndpointUrl: a.url,
      profile: 'https_spiffe',
      endpointSpiffeId: a.endpointId,
      trustDomainBundle: a.srv.ca.bundle().x509Bundle().marshal(),
    });
    const bootstrapped = await b.srv.datastore.getBundle('a.test');
    assert.equal(SpiffeBundle.parse(a.td, bootstrapped!.bundle).sequenceNumber, undefined, 'a PEM bootstrap has no sequence');

    const storedOnA = await a.fed.refreshNow('b.test');
    assert.ok(SpiffeBundle.parse(b.td, storedOnA.bundle).equals(b.srv.ca.bundle()), "A stores B's CA bundle");
    const viaApi = await b.admin.refreshBundle({ trustDomain: 'a.test' });
    assert.equal(viaApi.trustDomain, 'a.test');
    assert.equal(viaApi.sequenceNumber, BigInt(a.srv.ca.bundle().sequenceNumber!));
    const storedOnB = await b.srv.datastore.getBundle('a.test');
    assert.ok(SpiffeBundle.parse(a.td, storedOnB!.bundle).equals(a.srv.ca.bundle()), "B stores A's CA bundle, JWT authorities and sequence included");
    // Bundles stay under their own trust domain.
    assert.ok(SpiffeBundle.parse(a.td, (await a.srv.datastore.getBundle('a.test'))!.bundle).equals(a.srv.ca.bundle()), "A's own bundle is untouched");

    const listed = await a.admin.listFederationRelationships({});
    assert.deepEqual(listed.relationships.map((r) => r.trustDomain), ['b.test']);
    const shown = await a.admin.getFederationRelationship({ trustDomain: 'b.test' });
    assert.equal(shown.bundleEndpointUrl, b.url);
  });

  it("verifies an X509-SVID of server A with B's stored copy of A's bundle, and only with that", async () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const svid = await a.srv.ca.signX509Svid({ spiffeId: 'spiffe://a.test/workload/web', publicKey });
    const storedOnB = SpiffeBundle.parse(a.td, (await b.srv.datastore.getBundle('a.test'))!.bundle);
    const verified = verifyX509Svid(svid.certificates, storedOnB, { time: clock.now() });
    assert.equal(verified.id.toString(), 'spiffe://a.test/workload/web');
    // B's own bundle, or A's authorities filed under another trust domain name, do not verify it.
    assert.throws(() => verifyX509Svid(svid.certificates, b.srv.ca.bundle(), { time: clock.now() }), /bundle/i);
    const misfiled = SpiffeBundle.parse(b.td, storedOnB.marshal());
    assert.throws(() => verifyX509Svid(svid.certificates, misfiled, { time: clock.now() }), /bundle/i);
  });

  it('picks up a CA rotation on the other side: higher spiffe_sequence applied, endpoint SVID re-minted at half-life', async () => {
    const before = b.srv.ca.bundle().sequenceNumber!;
    const serialBefore = await presentedSerial(b.fed.bundleEndpointPort);
    clock.advance(13 * 3600); // past half of the 24 h CA lifetime: B prepares (and publishes) its next CA
    await a.srv.tick();
    await b.srv.tick();
    const after = b.srv.ca.bundle().sequenceNumber!;
    assert.ok(after > before, `B's bundle changed (${before} → ${after})`);
    await b.fed.tick(); // B's endpoint SVID (1 h) is long past half-life: re-minted
    assert.notEqual(await presentedSerial(b.fed.bundleEndpointPort), serialBefore, 'a new SVID is presented');
    await a.fed.tick(); // A's own endpoint too

    const stored = await a.fed.refreshNow('b.test');
    const got = SpiffeBundle.parse(b.td, stored.bundle);
    assert.equal(got.sequenceNumber, after);
    assert.ok(got.equals(b.srv.ca.bundle()));
    assert.equal(got.x509Authorities().length, 2, 'current and next CA');
  });

  it('wrong endpointSpiffeId: refresh fails with a clear error and the stored bundle is unchanged', async () => {
    const before = await a.srv.datastore.getBundle('b.test');
    await a.admin.updateFederationRelationship({ trustDomain: 'b.test', endpointSpiffeId: 'spiffe://b.test/not-the-server' });
    await rejectsWith(a.admin.refreshBundle({ trustDomain: 'b.test' }), Code.FailedPrecondition, /https_spiffe authentication/, /spiffe:\/\/b\.test\/tessera\/server is not authorized/, /expected spiffe:\/\/b\.test\/not-the-server/);
    assert.deepEqual(await a.srv.datastore.getBundle('b.test'), before);
    // An endpoint ID in another trust domain is verified with that trust domain's bundle, which A has not got.
    await a.admin.updateFederationRelationship({ trustDomain: 'b.test', endpointSpiffeId: 'spiffe://c.test/tessera/server' });
    await rejectsWith(a.admin.refreshBundle({ trustDomain: 'b.test' }), Code.FailedPrecondition, /no bundle of "c\.test"/);
    // A's own trust domain: verified with A's bundle, which did not sign B's SVID.
    await a.admin.updateFederationRelationship({ trustDomain: 'b.test', endpointSpiffeId: 'spiffe://a.test/tessera/server' });
    await rejectsWith(a.admin.refreshBundle({ trustDomain: 'b.test' }), Code.FailedPrecondition, /https_spiffe authentication/);
    assert.deepEqual(await a.srv.datastore.getBundle('b.test'), before);
    await a.admin.updateFederationRelationship({ trustDomain: 'b.test', endpointSpiffeId: b.endpointId });
    await a.fed.refreshNow('b.test');
  });

  it('a lower spiffe_sequence is not applied (nor a changed bundle with the same sequence)', async () => {
    const current = SpiffeBundle.parse(b.td, (await a.srv.datastore.getBundle('b.test'))!.bundle);
    // As if B had been restored from an old backup: what A holds is newer than what B serves.
    const newer = current.clone();
    newer.setSequenceNumber(current.sequenceNumber! + 100);
    const stored = await a.srv.datastore.setBundle('b.test', newer.marshal());
    await assert.rejects(a.fed.refreshNow('b.test'), (e: unknown) => {
      assert.ok(isFederationError(e, 'FEDERATION_BUNDLE_STALE'), String(e));
      assert.match(e.message, new RegExp(`spiffe_sequence ${current.sequenceNumber} is lower than the stored ${current.sequenceNumber! + 100}`));
      return true;
    });
    assert.deepEqual(await a.srv.datastore.getBundle('b.test'), stored);
    const same = current.clone();
    same.setRefreshHintSeconds(12345);
    const stored2 = await a.srv.datastore.setBundle('b.test', same.marshal());
    await assert.rejects(a.fed.refreshNow('b.test'), /spiffe_sequence stayed at/);
    assert.deepEqual(await a.srv.datastore.getBundle('b.test'), stored2);
    // Back to B's real bundle for the tests that follow.
    await a.srv.datastore.setBundle('b.test', b.srv.ca.bundle().marshal());
  });

  it('an endpoint serving garbage or an error: refresh fails, nothing is stored', async () => {
    const ca = new TestCa({ trustDomain: 'junk.test', now: clock.now });
    const svid = ca.createX509Svid('spiffe://junk.test/tessera/server');
    const bootstrap = ca.x509Bundle().marshal();
    const cases: [string, (res: import('node:http').ServerResponse) => void, Code, RegExp][] = [
      ['not JSON', (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('<html>hello</html>'), Code.FailedPrecondition, /invalid SPIFFE bundle: .*invalid JSON/],
      ['keys not an array', (res) => res.end('{"keys":{}}'), Code.FailedPrecondition, /"keys" is missing or not an array/],
      ['a non-CA certificate', (res) => res.end(JSON.stringify({ keys: [{ kty: 'EC', use: 'x509-svid', x5c: [svid.certificates[0]!.toString('base64')] }] })), Code.FailedPrecondition, /invalid SPIFFE bundle/],
      ['HTTP 500', (res) => res.writeHead(500).end('boom'), Code.Unavailable, /answered HTTP 500/],
      ['too large', (res) => res.end('{"keys":[' + ' '.repeat(2 * 1024 * 1024) + ']}'), Code.Unavailable, /at most|more than/],
    ];
    await a.admin.createFederationRelationship({ trustDomain: 'junk.test', bundleEndpointUrl: 'https://127.0.0.1:1/', profile: 'https_spiffe', endpointSpiffeId: 'spiffe://junk.test/tessera/server', trustDomainBundle: bootstrap });
    const before = await a.srv.datastore.getBundle('junk.test');
    for (const [what, respond, code, re] of cases) {
      const ep = await fakeEndpoint({ svid }, respond);
      try {
        await a.admin.updateFederationRelationship({ trustDomain: 'junk.test', bundleEndpointUrl: `https://127.0.0.1:${ep.port}/` });
        await rejectsWith(a.admin.refreshBundle({ trustDomain: 'junk.test' }), code, re);
        assert.deepEqual(await a.srv.datastore.getBundle('junk.test'), before, what);
      } finally {
        await ep.close();
      }
    }
    // Nobody listening.
    await a.admin.updateFederationRelationship({ trustDomain: 'junk.test', bundleEndpointUrl: 'https://127.0.0.1:1/' });
    await rejectsWith(a.admin.refreshBundle({ trustDomain: 'junk.test' }), Code.Unavailable, /ECONNREFUSED/);

    // https_web garbage with no bootstrap: nothing at all is stored.
    const web = await fakeEndpoint({ cert: webCert.cert, key: webCert.key }, (res) => res.end('garbage'));
    try {
      await a.admin.createFederationRelationship({ trustDomain: 'junkweb.test', bundleEndpointUrl: `https://localhost:${web.port}/`, profile: 'https_web' });
      await rejectsWith(a.admin.refreshBundle({ trustDomain: 'junkweb.test' }), Code.FailedPrecondition, /invalid SPIFFE bundle/);
      assert.equal(await a.srv.datastore.getBundle('junkweb.test'), undefined);
    } finally {
      await web.close();
    }
    await a.admin.deleteFederationRelationship({ trustDomain: 'junk.test' });
    await a.admin.deleteFederationRelationship({ trustDomain: 'junkweb.test' });
  });

  it('https_web: a Web PKI endpoint verified against the URL host with a test CA', async () => {
    const webConfig: BundleEndpointConfig = { profile: 'https_web', address: '127.0.0.1', port: 0, certFile: join(dir, 'web.crt'), keyFile: join(dir, 'web.key') };
    // A second endpoint for B, this one with a Web PKI certificate for "localhost".
    const bWeb = await startFederation({ datastore: b.srv.datastore, ca: b.srv.ca, logger: silent, now: clock.now, bundleEndpoint: webConfig, tickSeconds: 0 });
    try {
      await a.srv.datastore.deleteBundle('b.test', 'dissociate');
      const r = await a.admin.updateFederationRelationship({ trustDomain: 'b.test', profile: 'https_web', bundleEndpointUrl: `https://localhost:${bWeb.bundleEndpointPort}/` });
      assert.equal(r.profile, 'https_web');
      assert.equal(r.endpointSpiffeId, '', 'the endpoint ID goes with the https_spiffe profile');
      const stored = await a.fed.refreshNow('b.test');
      assert.ok(SpiffeBundle.parse(b.td, stored.bundle).equals(b.srv.ca.bundle()));
      // The same endpoint under a name its certificate does not carry: Web PKI rejects it.
      await a.admin.updateFederationRelationship({ trustDomain: 'b.test', bundleEndpointUrl: `https://127.0.0.1:${bWeb.bundleEndpointPort}/` });
      await rejectsWith(a.admin.refreshBundle({ trustDomain: 'b.test' }), Code.FailedPrecondition, /https_web authentication/, /ERR_TLS_CERT_ALTNAME_INVALID/);
      // B (no test CA configured) does not trust the test CA.
      await b.admin.updateFederationRelationship({ trustDomain: 'a.test', profile: 'https_web', bundleEndpointUrl: `https://localhost:${bWeb.bundleEndpointPort}/` });
      await rejectsWith(b.admin.refreshBundle({ trustDomain: 'a.test' }), Code.FailedPrecondition, /https_web authentication/);
    } finally {
      await bWeb.close();
      await a.admin.updateFederationRelationship({ trustDomain: 'b.test', profile: 'https_spiffe', bundleEndpointUrl: b.url, endpointSpiffeId: b.endpointId });
      await b.admin.updateFederationRelationship({ trustDomain: 'a.test', profile: 'https_spiffe', bundleEndpointUrl: a.url, endpointSpiffeId: a.endpointId });
    }
    await a.fed.refreshNow('b.test');
  });

  it('bad input is InvalidArgument with every reason; unknown relationships are NotFound', async () => {
    await rejectsWith(
      a.admin.createFederationRelationship({ trustDomain: 'a.test', bundleEndpointUrl: 'http://a.example/bundle', profile: 'https_spiffe' }),
      Code.InvalidArgument,
      /"a\.test" is the server's own trust domain/,
      /must use https \(got http\)/,
      /endpoint SPIFFE ID is required with profile https_spiffe/,
    );
    const bad: [Record<string, string>, RegExp][] = [
      [{ trustDomain: 'Bad_TD', bundleEndpointUrl: 'https://x', profile: 'https_web' }, /trust domain "Bad_TD" is invalid/],
      [{ trustDomain: 'c.test', bundleEndpointUrl: 'not a url', profile: 'https_web' }, /is not a valid URL/],
      [{ trustDomain: 'c.test', bundleEndpointUrl: 'https://u:p@c.test/', profile: 'https_web' }, /must not contain credentials/],
      [{ trustDomain: 'c.test', bundleEndpointUrl: 'https://c.test/', profile: 'https_mtls' }, /profile "https_mtls" is unknown/],
      [{ trustDomain: 'c.test', bundleEndpointUrl: 'https://c.test/', profile: '' }, /profile is required/],
      [{ trustDomain: 'c.test', bundleEndpointUrl: 'https://c.test/', profile: 'https_spiffe', endpointSpiffeId: 'spiffe://c.test' }, /must have a path/],
      [{ trustDomain: 'c.test', bundleEndpointUrl: 'https://c.test/', profile: 'https_spiffe', endpointSpiffeId: 'https://c.test/x' }, /endpoint SPIFFE ID "https:\/\/c\.test\/x" is invalid/],
      [{ trustDomain: 'c.test', bundleEndpointUrl: 'https://c.test/', profile: 'https_web', endpointSpiffeId: 'spiffe://c.test/x' }, /only used with profile https_spiffe/],
      [{ trustDomain: 'c.test', bundleEndpointUrl: 'https://c.test/', profile: 'https_web', trustDomainBundle: '{"keys":[{"kty":"XX","use":"x509-svid"}]}' }, /trust domain bundle of "c\.test" is invalid: .*unsupported key type/],
      [{ trustDomain: 'c.test', bundleEndpointUrl: 'https://c.test/', profile: 'https_web', trustDomainBundle: '{"keys":[]}' }, /holds no authority/],
    ];
    for (const [req, re] of bad) await rejectsWith(a.admin.createFederationRelationship(req), Code.InvalidArgument, re);
    await rejectsWith(a.admin.createFederationRelationship({ trustDomain: 'b.test', bundleEndpointUrl: 'https://b.test/', profile: 'https_web' }), Code.AlreadyExists);
    assert.equal((await a.admin.listFederationRelationships({})).relationships.length, 1, 'nothing half-created');
    await rejectsWith(a.admin.getFederationRelationship({ trustDomain: 'nope.test' }), Code.NotFound, /no federation relationship with trust domain "nope\.test"/);
    await rejectsWith(a.admin.refreshBundle({ trustDomain: 'nope.test' }), Code.NotFound);
    await rejectsWith(a.admin.deleteFederationRelationship({ trustDomain: 'nope.test' }), Code.NotFound);
    await rejectsWith(a.admin.updateFederationRelationship({ trustDomain: 'b.test', bundleEndpointUrl: 'http://b.test/' }), Code.InvalidArgument, /must use https/);
    await rejectsWith(a.admin.updateFederationRelationship({ trustDomain: 'b.test', profile: 'https_web', endpointSpiffeId: 'spiffe://b.test/x' }), Code.InvalidArgument, /only used with profile https_spiffe/);
    await rejectsWith(a.admin.refreshBundle({ trustDomain: 'a.test' }), Code.InvalidArgument, /own trust domain/);
  });

  it('schedules refreshes by spiffe_refresh_hint (clamped to [10 s, 1 h]) and backs off on failure', async () => {
    assert.equal(refreshIntervalSeconds(undefined), 300);
    assert.equal(refreshIntervalSeconds(0), 300);
    assert.equal(refreshIntervalSeconds(1), 10);
    assert.equal(refreshIntervalSeconds(600), 600);
    assert.equal(refreshIntervalSeconds(7 * 86400), 3600);
    assert.deepEqual([1, 2, 3, 4, 5, 6, 50].map(retryDelaySeconds), [10, 20, 40, 80, 160, 300, 300]);

    await a.fed.tick();
    const status = (td: string) => a.fed.status().find((s) => s.trustDomain === td)!;
    const last = status('b.test');
    assert.equal(last.consecutiveFailures, 0);
    // B publishes the CA default hint, 300 s.
    assert.equal(last.nextRefreshAt.getTime() - last.lastSuccessAt!.getTime(), 300_000);
    clock.advance(299);
    await a.fed.tick();
    assert.equal(status('b.test').lastSuccessAt!.getTime(), last.lastSuccessAt!.getTime(), 'not due yet');
    clock.advance(1);
    await a.fed.tick();
    assert.equal(status('b.test').lastSuccessAt!.getTime(), clock.t, 'refreshed when due');

    // A relationship whose endpoint is down: retried after 10 s, 20 s, 40 s ...
    await a.admin.createFederationRelationship({ trustDomain: 'down.test', bundleEndpointUrl: 'https://127.0.0.1:1/', profile: 'https_web' });
    await a.fed.tick(); // created on this server: due at once
    for (const [failures, delay] of [[1, 10], [2, 20], [3, 40]] as const) {
      const s = status('down.test');
      assert.equal(s.consecutiveFailures, failures);
      assert.match(s.lastError!, /ECONNREFUSED/);
      assert.equal(s.nextRefreshAt.getTime() - clock.t, delay * 1000);
      clock.advance(delay - 1);
      await a.fed.tick();
      assert.equal(status('down.test').consecutiveFailures, failures, 'not retried early');
      clock.advance(1);
      await a.fed.tick();
    }
    await a.admin.deleteFederationRelationship({ trustDomain: 'down.test' });
    await a.fed.tick();
    assert.equal(status('down.test'), undefined, 'a deleted relationship is forgotten');
    assert.equal(await a.srv.datastore.getBundle('down.test'), undefined);
  });

  it('a hanging endpoint times out, and close() aborts a running fetch at once', async () => {
    const hang = await fakeEndpoint({ cert: webCert.cert, key: webCert.key }, () => undefined);
    const fed = await startFederation({ datastore: a.srv.datastore, ca: a.srv.ca, logger: silent, now: clock.now, tickSeconds: 0, webCaFile: join(dir, 'web-ca.pem'), fetchTimeoutMs: 300 });
    try {
      await a.admin.createFederationRelationship({ trustDomain: 'hang.test', bundleEndpointUrl: `https://localhost:${hang.port}/`, profile: 'https_web' });
      await assert.rejects(fed.refreshNow('hang.test'), /cannot fetch the bundle from https:\/\/localhost:\d+\/: no complete answer within 300 ms/);
      const pending = fed.refreshNow('hang.test');
      const t0 = performance.now();
      await fed.close();
      await assert.rejects(pending, /shutting down/);
      assert.ok(performance.now() - t0 < 250, 'close did not wait for the fetch deadline');
    } finally {
      await fed.close();
      await hang.close();
      await a.admin.deleteFederationRelationship({ trustDomain: 'hang.test' });
    }
  });

  it('deleting a relationship keeps the stored bundle', async () => {
    await b.admin.deleteFederationRelationship({ trustDomain: 'spiffe://a.test' });
    assert.deepEqual((await b.admin.listFederationRelationships({})).relationships, []);
    assert.ok(await b.srv.datastore.getBundle('a.test'));
  });
});

/** PEM of DER certificates. */
function pem(ders: readonly Buffer[]): string {
  return ders.map((d) => `-----BEGIN CERTIFICATE-----\n${d.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`).join('');
}

import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import * as tls from 'node:tls';
import * as https from 'node:https';
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request as undiciRequest } from 'undici';
import { TestCa } from '../../src/testing/index.js';
import { SpiffeId, TrustDomain } from '../../src/id/index.js';
import { X509Svid } from '../../src/svid/x509-svid.js';
import type { X509BundleSource } from '../../src/bundle/source.js';
import type { X509Bundle } from '../../src/bundle/x509-bundle.js';
import { BundleError, isSpiffeError } from '../../src/errors/index.js';
import {
  authorizeAny,
  authorizeId,
  authorizeMemberOf,
  connectHttp2,
  connectTls,
  createHttp2Server,
  createHttpsServer,
  createTlsServer,
  httpsAgent,
  peerId,
  undiciConnector,
} from '../../src/tls/index.js';

const ca = new TestCa({ trustDomain: 'example.org' });
const bundle = ca.x509Bundle();
const serverId = SpiffeId.parse('spiffe://example.org/server');
const clientId = SpiffeId.parse('spiffe://example.org/client');
const serverSvid = ca.createX509Svid(serverId, { dnsNames: ['localhost'] });
const clientSvid = ca.createX509Svid(clientId);

function bundles(...bs: X509Bundle[]): X509BundleSource {
  return {
    getX509BundleForTrustDomain(td: TrustDomain): X509Bundle {
      const b = bs.find((x) => x.trustDomain.equals(td));
      if (!b) throw new BundleError('ERR_BUNDLE_NOT_FOUND', `no X.509 bundle found for trust domain "${td.name}"`);
      return b;
    },
  };
}

/** A source whose SVID the test can swap, as the Workload API source does on rotation. */
class RotatingSource {
  constructor(public svid: X509Svid) {}
  getX509Svid(): X509Svid {
    return this.svid;
  }
}

async function listen(server: tls.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** An echo server that records what reached application code. */
async function echoServer(config: Parameters<typeof createTlsServer>[0]) {
  const seen = { connections: 0, bytes: 0, closed: 0, ids: [] as string[], rejections: [] as Error[] };
  const server = createTlsServer(config, (socket) => {
    seen.connections++;
    seen.ids.push(String(peerId(socket)));
    socket.on('data', (d: Buffer) => {
      seen.bytes += d.length;
      socket.write(`echo ${peerId(socket)?.toString() ?? '-'}: ${d.toString()}`);
    });
    socket.on('error', () => undefined);
  });
  server.on('tlsClientError', (e: Error) => seen.rejections.push(e));
  server.on('connection', (raw: import('node:net').Socket) => raw.on('close', () => seen.closed++));
  const port = await listen(server);
  after(() => server.close());
  return { server, port, seen };
}

async function roundTrip(socket: tls.TLSSocket, msg: string): Promise<string> {
  socket.write(msg);
  const [data] = (await once(socket, 'data')) as [Buffer];
  return data.toString();
}

/** Waits until the server side has settled (a rejection or connection is recorded). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
}

describe('mTLS over node:tls', () => {
  test('authorized client and server exchange data and learn each other\'s IDs', async () => {
    const { port, seen } = await echoServer({ svid: serverSvid, bundle, authorize: authorizeId(clientId) });
    const socket = await connectTls({ svid: clientSvid, bundle, authorize: authorizeId(serverId) }, { host: '127.0.0.1', port });
    assert.equal(peerId(socket)?.toString(), serverId.toString());
    assert.equal(await roundTrip(socket, 'hi'), `echo ${clientId}: hi`);
    socket.destroy();
    assert.deepEqual(seen.ids, [clientId.toString()]);
  });

  test('server rejects an unauthorized client during the handshake: its handler never runs', async () => {
    const { port, seen } = await echoServer({ svid: serverSvid, bundle, authorize: authorizeId(SpiffeId.parse('spiffe://example.org/someone-else')) });
    const socket = await connectTls({ svid: clientSvid, bundle, authorize: authorizeAny() }, { host: '127.0.0.1', port }).catch((e: Error) => e);
    if (socket instanceof tls.TLSSocket) {
      socket.on('error', () => undefined);
      socket.write('secret request');
      await once(socket, 'close');
    }
    await until(() => seen.rejections.length > 0);
    assert.equal(seen.connections, 0, 'connection handler must not run');
    assert.equal(seen.bytes, 0);
    assert.equal(seen.rejections.length, 1);
    assert.ok(isSpiffeError(seen.rejections[0], 'ERR_TLS_PEER_REJECTED'));
    assert.match(seen.rejections[0]!.message, /client spiffe:\/\/example.org\/client is not authorized: unexpected ID/);
  });

  test('client rejects an unauthorized server and never sends its request', async () => {
    const { port, seen } = await echoServer({ svid: serverSvid, bundle, authorize: authorizeAny() });
    const err = await connectTls({ svid: clientSvid, bundle, authorize: authorizeId(SpiffeId.parse('spiffe://example.org/not-the-server')) }, { host: '127.0.0.1', port }).then(
      () => assert.fail('must reject'),
      (e: Error) => e,
    );
    assert.ok(isSpiffeError(err, 'ERR_TLS_PEER_REJECTED'), String(err));
    assert.match(err.message, /server spiffe:\/\/example.org\/server is not authorized/);
    await until(() => seen.closed > 0);
    assert.equal(seen.closed, 1, 'the server saw the connection end');
    assert.equal(seen.bytes, 0, 'no application data may reach the server');
  });

  test('client without a certificate is rejected by an mTLS server', async () => {
    const { port, seen } = await echoServer({ svid: serverSvid, bundle, authorize: authorizeAny() });
    const socket = await connectTls({ bundle, authorize: authorizeId(serverId) }, { host: '127.0.0.1', port });
    socket.on('error', () => undefined);
    socket.write('x');
    await once(socket, 'close');
    await until(() => seen.rejections.length > 0);
    assert.equal(seen.connections, 0);
    assert.match(seen.rejections[0]!.message, /client did not present a certificate/);
  });

  test('peer from another trust domain is rejected even when that trust domain\'s bundle is trusted elsewhere', async () => {
    const other = new TestCa({ trustDomain: 'other.org' });
    const otherClient = other.createX509Svid('spiffe://other.org/client');
    const { port, seen } = await echoServer({ svid: serverSvid, bundle, authorize: authorizeAny() });
    const s = await connectTls({ svid: otherClient, bundle, authorize: authorizeAny() }, { host: '127.0.0.1', port });
    s.on('error', () => undefined);
    await once(s, 'close');
    await until(() => seen.rejections.length > 0);
    assert.equal(seen.connections, 0);
    assert.match(seen.rejections[0]!.message, /no X.509 bundle found for trust domain "other.org"/);

    // A certificate claiming example.org but signed by other.org's root, with both bundles trusted.
    const forged = other.createX509Svid('spiffe://example.org/client');
    const { port: port2, seen: seen2 } = await echoServer({ svid: serverSvid, bundle: bundles(bundle, other.x509Bundle()), authorize: authorizeMemberOf(TrustDomain.parse('example.org')) });
    const s2 = await connectTls({ svid: forged, bundle, authorize: authorizeAny() }, { host: '127.0.0.1', port: port2 });
    s2.on('error', () => undefined);
    await once(s2, 'close');
    await until(() => seen2.rejections.length > 0);
    assert.equal(seen2.connections, 0);
    assert.match(seen2.rejections[0]!.message, /certificate signed by unknown authority/);
  });

  test('expired server SVID is rejected (injected clock)', async () => {
    const { port } = await echoServer({ svid: serverSvid, bundle, authorize: authorizeAny() });
    const later = () => new Date(serverSvid.expiresAt.getTime() + 1000);
    const err = await connectTls({ svid: clientSvid, bundle, authorize: authorizeAny(), clock: later }, { host: '127.0.0.1', port }).then(
      () => assert.fail('must reject'),
      (e: Error) => e,
    );
    assert.match(err.message, /leaf certificate has expired/);
  });

  test('rotated SVIDs are used by the next handshake, on both sides, without restart', async () => {
    const serverSource = new RotatingSource(serverSvid);
    const clientSource = new RotatingSource(clientSvid);
    const { port, seen } = await echoServer({ svid: serverSource, bundle, authorize: authorizeAny() });
    const config = { svid: clientSource, bundle, authorize: authorizeAny() };
    const s1 = await connectTls(config, { host: '127.0.0.1', port });
    const serial1 = s1.getPeerCertificate().serialNumber;
    assert.equal(await roundTrip(s1, 'a'), `echo ${clientId}: a`);

    serverSource.svid = ca.createX509Svid(serverId);
    clientSource.svid = ca.createX509Svid('spiffe://example.org/client-rotated');
    const s2 = await connectTls(config, { host: '127.0.0.1', port });
    const serial2 = s2.getPeerCertificate().serialNumber;
    assert.notEqual(serial1, serial2, 'server must present its new SVID');
    assert.equal(serial2.toLowerCase(), new X509Certificate(serverSource.svid.certificates[0]!).serialNumber.toLowerCase());
    assert.equal(await roundTrip(s2, 'b'), 'echo spiffe://example.org/client-rotated: b');
    // The existing connection is untouched.
    assert.equal(await roundTrip(s1, 'c'), `echo ${clientId}: c`);
    s1.destroy();
    s2.destroy();
    assert.deepEqual(seen.ids, [clientId.toString(), 'spiffe://example.org/client-rotated']);
  });

  test('chains with intermediates are verified on both sides', async () => {
    const inter = ca.createIntermediate();
    const { port } = await echoServer({ svid: inter.createX509Svid(serverId), bundle, authorize: authorizeAny() });
    const s = await connectTls({ svid: inter.createX509Svid(clientId), bundle, authorize: authorizeId(serverId) }, { host: '127.0.0.1', port });
    assert.equal(await roundTrip(s, 'i'), `echo ${clientId}: i`);
    s.destroy();
  });

  test('TLS mode: server presents its SVID, client authenticates it without a certificate', async () => {
    const { port, seen } = await echoServer({ svid: serverSvid });
    const s = await connectTls({ bundle, authorize: authorizeId(serverId) }, { host: '127.0.0.1', port });
    assert.equal(await roundTrip(s, 'z'), 'echo -: z');
    s.destroy();
    assert.deepEqual(seen.ids, ['undefined']);
  });
});

describe('mTLS over https, http2 and undici', () => {
  async function httpsServer(authorizeClient = authorizeId(clientId)) {
    const seen = { requests: 0, closed: 0, rejections: [] as Error[] };
    const server = createHttpsServer({ svid: serverSvid, bundle, authorize: authorizeClient }, (req, res) => {
      seen.requests++;
      res.end(`Hello, ${peerId(req)?.toString()}`);
    });
    server.on('tlsClientError', (e: Error) => seen.rejections.push(e));
    server.on('connection', (raw: import('node:net').Socket) => raw.on('close', () => seen.closed++));
    const port = await listen(server);
    after(() => server.close());
    return { port, seen };
  }

  function get(port: number, agent: https.Agent): Promise<string> {
    return new Promise((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve(body));
        })
        .on('error', reject);
    });
  }

  test('https: authorized request is answered with the client\'s ID', async () => {
    const { port } = await httpsServer();
    const agent = httpsAgent({ svid: clientSvid, bundle, authorize: authorizeId(serverId) });
    assert.equal(await get(port, agent), `Hello, ${clientId}`);
    agent.destroy();
  });

  test('https: unauthorized client never reaches the request handler', async () => {
    const { port, seen } = await httpsServer(authorizeId(serverId));
    const agent = httpsAgent({ svid: clientSvid, bundle, authorize: authorizeAny() });
    await assert.rejects(get(port, agent));
    await until(() => seen.rejections.length > 0);
    assert.equal(seen.requests, 0);
    assert.equal(seen.rejections.length, 1);
    agent.destroy();
  });

  test('https: unauthorized server never receives the request', async () => {
    const { port, seen } = await httpsServer();
    const agent = httpsAgent({ svid: clientSvid, bundle, authorize: authorizeId(clientId) });
    const err = await get(port, agent).then(() => assert.fail('must reject'), (e: Error) => e);
    assert.ok(isSpiffeError(err, 'ERR_TLS_PEER_REJECTED'));
    await until(() => seen.closed > 0);
    assert.equal(seen.closed, 1);
    assert.equal(seen.requests, 0);
    agent.destroy();
  });

  test('http2: request over a verified session, server reads peerId from the stream', async () => {
    const server = createHttp2Server({ svid: serverSvid, bundle, authorize: authorizeId(clientId) });
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      stream.end(`h2 hello ${peerId(stream)?.toString()}`);
    });
    const port = await listen(server);
    after(() => server.close());
    const session = await connectHttp2(`https://127.0.0.1:${port}`, { svid: clientSvid, bundle, authorize: authorizeId(serverId) });
    const req = session.request({ ':path': '/' });
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    await once(req, 'end');
    assert.equal(body, `h2 hello ${clientId}`);
    session.close();
  });

  test('undici: a dispatcher with the SPIFFE connector', async () => {
    const { port } = await httpsServer();
    // undici's connector type names its own socket classes; ours passes a TLSSocket.
    const dispatcher = new Agent({ connect: undiciConnector({ svid: clientSvid, bundle, authorize: authorizeId(serverId) }) as never });
    const res = await undiciRequest(`https://127.0.0.1:${port}/`, { dispatcher });
    assert.equal(await res.body.text(), `Hello, ${clientId}`);
    const bad = new Agent({ connect: undiciConnector({ svid: clientSvid, bundle, authorize: authorizeId(clientId) }) as never });
    await assert.rejects(undiciRequest(`https://127.0.0.1:${port}/`, { dispatcher: bad }), /not authorized/);
    await dispatcher.close();
    await bad.close();
  });
});

describe('interop with third-party TLS tools', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-tls-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, data: string): string => {
    const p = join(dir, name);
    writeFileSync(p, data);
    return p;
  };
  const client = clientSvid.marshal();
  const certFile = write('client.pem', client.certificates);
  const keyFile = write('client.key', client.privateKey);
  const bundleFile = write('bundle.pem', bundle.marshal());

    test('connectTls talks to openssl s_server, which demands and verifies our client SVID', async () => {
    const serverFiles = serverSvid.marshal();
    const sCert = write('server.pem', serverFiles.certificates);
    const sKey = write('server.key', serverFiles.privateKey);
    const probe = tls.createServer();
    const port = await listen(probe);
    await new Promise((r) => probe.close(r));
    const child = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', sCert, '-key', sKey, '-CAfile', bundleFile, '-Verify', '1', '-verify_return_error', '-rev', '-naccept', '1'], { stdio: ['pipe', 'pipe', 'pipe'] });
    after(() => child.kill());
    let out = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('ACCEPT')) resolve(); });
      child.once('exit', () => reject(new Error(`s_server exited: ${out}`)));
    });
    const socket = await connectTls({ svid: clientSvid, bundle, authorize: authorizeId(serverId) }, { host: '127.0.0.1', port });
    socket.write('hello\n');
    let reply = '';
    for await (const d of socket) {
      reply += (d as Buffer).toString();
      if (reply.includes('\n')) break;
    }
    assert.equal(reply.trim(), 'olleh');
    socket.destroy();
  });

  function run(cmd: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? ((err as NodeJS.ErrnoException & { code?: number }).code as unknown as number) ?? 1 : 0, stdout, stderr });
      });
      if (input !== undefined) child.stdin!.end(input);
    });
  }

  test('curl with the client SVID is served by the SPIFFE https server', async () => {
    const server = createHttpsServer({ svid: serverSvid, bundle, authorize: authorizeId(clientId) }, (req, res) => res.end(`Hello, ${peerId(req)?.toString()}`));
    const port = await listen(server);
    after(() => server.close());
    const r = await run('curl', ['-sS', '--cacert', bundleFile, '--cert', certFile, '--key', keyFile, `https://localhost:${port}/`]);
    assert.equal(r.stdout, `Hello, ${clientId}`, r.stderr);
    const anon = await run('curl', ['-sS', '--cacert', bundleFile, `https://localhost:${port}/`]);
    assert.notEqual(anon.code, 0, 'curl without a client certificate must fail');
    assert.equal(anon.stdout, '');
  });

  test('openssl s_client presenting the client SVID echoes through our mTLS server', async () => {
    const { port } = await echoServer({ svid: serverSvid, bundle, authorize: authorizeId(clientId) });
    // s_client verifies our server against the bundle (no hostname check), presents the client SVID, and we echo.
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-cert', certFile, '-key', keyFile, '-CAfile', bundleFile, '-verify_return_error', '-quiet'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const got = new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('ping')) resolve(); }));
    child.stdin.write('ping\n');
    await Promise.race([got, once(child, 'exit')]);
    child.kill();
    assert.match(out, new RegExp(`echo ${clientId}: ping`), err);
  });
});

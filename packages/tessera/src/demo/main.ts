/**
 * The quick-start demo (README): a trust domain's CA mints SVIDs for an echo
 * server and client, the `tessera svid` CLI inspects and verifies them, and
 * the two talk mTLS authorized by SPIFFE ID while an impostor is turned away
 * during the handshake. Everything runs on real certificates and real sockets
 * on loopback; files are written to a temporary directory and removed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { SpiffeId } from '@tessera/spiffe/id';
import { TestCa } from '@tessera/spiffe/testing';
import { authorizeId, connectTls, createTlsServer, peerId } from '@tessera/spiffe/tls';
import { main as cli } from '../cli/main.js';

const out = process.stdout;
const step = (s: string): void => void out.write(`\n== ${s}\n`);

async function run(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-demo-'));
  try {
    step('A CA for trust domain cluster.local mints X509-SVIDs (ECDSA P-256, 1h)');
    const ca = new TestCa({ trustDomain: 'cluster.local' });
    const serverId = SpiffeId.parse('spiffe://cluster.local/ns/backend/sa/echo-server');
    const clientId = SpiffeId.parse('spiffe://cluster.local/ns/frontend/sa/echo-client');
    const serverSvid = ca.createX509Svid(serverId);
    const clientSvid = ca.createX509Svid(clientId);
    const bundle = ca.x509Bundle();
    const write = (name: string, data: string): string => {
      const p = join(dir, name);
      writeFileSync(p, data, { mode: 0o600 });
      return p;
    };
    const serverPem = write('svid.0.pem', serverSvid.marshal().certificates);
    const serverKey = write('svid.0.key', serverSvid.marshal().privateKey);
    const bundlePem = write('bundle.0.pem', bundle.marshal());
    const broken = ca.createBrokenX509Svid('leaf-ca-true');
    const brokenPem = write('broken.pem', broken.certificates.map((c) => `-----BEGIN CERTIFICATE-----\n${c.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`).join(''));
    out.write(`wrote ${serverPem}, ${serverKey}, ${bundlePem}\n`);

    const io = { stdout: out, stderr: out, now: () => new Date() };
    step(`tessera svid inspect ${serverPem}`);
    await cli(['svid', 'inspect', serverPem], io);
    step(`tessera svid verify -bundle ${bundlePem} -key ${serverKey} ${serverPem}`);
    const ok = await cli(['svid', 'verify', '-bundle', bundlePem, '-key', serverKey, serverPem], io);
    step(`tessera svid verify -bundle ${bundlePem} ${brokenPem}   (a leaf with CA=true)`);
    const bad = await cli(['svid', 'verify', '-bundle', bundlePem, brokenPem], io);
    out.write(`exit codes: good SVID ${ok}, broken SVID ${bad}\n`);

    step('mTLS echo: the server accepts only the echo client, the client accepts only the echo server');
    const server = createTlsServer({ svid: serverSvid, bundle, authorize: authorizeId(clientId) }, (socket) => {
      socket.on('error', () => undefined);
      socket.on('data', () => socket.end(`Hello, ${peerId(socket)?.toString()}`));
    });
    let rejected = '';
    server.on('tlsClientError', (e: Error) => (rejected = e.message));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;

    const socket = await connectTls({ svid: clientSvid, bundle, authorize: authorizeId(serverId) }, { host: '127.0.0.1', port });
    out.write(`client: connected to ${peerId(socket)?.toString()}\n`);
    socket.write('hi');
    const [reply] = (await once(socket, 'data')) as [Buffer];
    out.write(`client: server answered "${reply.toString()}"\n`);
    socket.destroy();

    const impostor = ca.createX509Svid('spiffe://cluster.local/ns/frontend/sa/impostor');
    const s2 = await connectTls({ svid: impostor, bundle, authorize: authorizeId(serverId) }, { host: '127.0.0.1', port });
    s2.on('error', () => undefined);
    s2.write('let me in');
    await once(s2, 'close');
    out.write(`server: rejected during the handshake: ${rejected}\n`);
    server.close();

    const success = ok === 0 && bad === 1 && reply.toString() === `Hello, ${clientId.toString()}` && rejected.includes('not authorized');
    step(success ? 'demo finished: everything behaved as expected' : 'demo FAILED: see above');
    return success ? 0 : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = await run();

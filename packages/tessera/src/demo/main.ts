/**
 * The quick-start demo (README): runs a Tessera server for trust domain
 * cluster.local, registers the seed's entry with the SPIRE-style CLI, mints
 * X509-SVIDs for an echo server and client (keys made locally, CSRs signed by
 * the server's CA), inspects and verifies them, then runs an mTLS echo
 * authorized by SPIFFE ID while an impostor is turned away during the
 * handshake. Real processes' worth of parts on loopback and a temporary
 * directory, removed at the end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { SpiffeId, TrustDomain } from '@tessera/spiffe/id';
import { X509Bundle } from '@tessera/spiffe/bundle';
import { X509Svid } from '@tessera/spiffe/svid';
import { authorizeId, connectTls, createTlsServer, peerId } from '@tessera/spiffe/tls';
import { main as cli } from '../cli/main.js';
import { loadServerConfig } from '../server/config.js';
import { startServer } from '../server/server.js';
import { createLogger } from '../observe/logger.js';

const out = process.stdout;
const step = (s: string): void => void out.write(`\n== ${s}\n`);

async function run(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-demo-'));
  const io = { stdout: out, stderr: out, now: () => new Date() };
  const sh = async (...argv: string[]): Promise<number> => {
    out.write(`$ tessera ${argv.join(' ')}\n`);
    return cli(argv, io);
  };
  const server = await startServer(loadServerConfig({ flags: { trustDomain: 'cluster.local', dataDir: join(dir, 'server'), healthPort: 0, bindPort: 0, bindAddress: '127.0.0.1' } }), {
    logger: createLogger({ level: 'warn' }),
  });
  try {
    const sock = ['-socketPath', server.socketPath];
    step('tessera server run -trustDomain cluster.local (in this process): CA, datastore, Admin API');
    const checks: boolean[] = [];
    checks.push((await sh('server', 'healthcheck', ...sock)) === 0);

    step('Register the seed\'s workload entry, SPIRE spelling');
    checks.push(
      (await sh('server', 'entry', 'create', ...sock, '-spiffeID', 'spiffe://cluster.local/ns/backend/sa/default', '-parentID', 'spiffe://cluster.local/tessera/agent/join_token/node-1', '-selector', 'k8s:ns:backend', '-selector', 'k8s:sa:default')) === 0,
    );
    checks.push((await sh('server', 'entry', 'count', ...sock)) === 0);

    step('Mint X509-SVIDs for the echo server and client (keys stay here; the CA signs CSRs)');
    const serverDir = join(dir, 'echo-server');
    const clientDir = join(dir, 'echo-client');
    checks.push((await sh('server', 'x509', 'mint', ...sock, '-spiffeID', 'spiffe://cluster.local/ns/backend/sa/default', '-write', serverDir)) === 0);
    checks.push((await sh('server', 'x509', 'mint', ...sock, '-spiffeID', 'spiffe://cluster.local/ns/frontend/sa/default', '-write', clientDir)) === 0);

    step('Inspect and verify them as an operator would');
    checks.push((await sh('svid', 'inspect', join(serverDir, 'svid.pem'))) === 0);
    checks.push((await sh('svid', 'verify', '-bundle', join(serverDir, 'bundle.pem'), '-key', join(serverDir, 'key.pem'), join(serverDir, 'svid.pem'))) === 0);
    out.write('(and against a bundle given for another trust domain, which must fail:)\n');
    checks.push((await sh('svid', 'verify', '-bundle', join(serverDir, 'bundle.pem'), '-trustDomain', 'other.org', join(serverDir, 'svid.pem'))) === 1);

    step('mTLS echo: the server accepts only the frontend client, the client accepts only the backend server');
    const td = TrustDomain.parse('cluster.local');
    const bundle = X509Bundle.load(td, join(serverDir, 'bundle.pem'));
    const serverId = SpiffeId.parse('spiffe://cluster.local/ns/backend/sa/default');
    const clientId = SpiffeId.parse('spiffe://cluster.local/ns/frontend/sa/default');
    const echo = createTlsServer({ svid: X509Svid.load(join(serverDir, 'svid.pem'), join(serverDir, 'key.pem')), bundle, authorize: authorizeId(clientId) }, (socket) => {
      socket.on('error', () => undefined);
      socket.on('data', () => socket.end(`Hello, ${peerId(socket)?.toString()}`));
    });
    let rejected = '';
    echo.on('tlsClientError', (e: Error) => (rejected = e.message));
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    const port = (echo.address() as AddressInfo).port;
    const socket = await connectTls({ svid: X509Svid.load(join(clientDir, 'svid.pem'), join(clientDir, 'key.pem')), bundle, authorize: authorizeId(serverId) }, { host: '127.0.0.1', port });
    out.write(`client: connected to ${peerId(socket)?.toString()}\n`);
    socket.write('hi');
    const [reply] = (await once(socket, 'data')) as [Buffer];
    out.write(`client: server answered "${reply.toString()}"\n`);
    socket.destroy();
    checks.push(reply.toString() === `Hello, ${clientId.toString()}`);

    const impostorDir = join(dir, 'impostor');
    await cli(['server', 'x509', 'mint', ...sock, '-spiffeID', 'spiffe://cluster.local/ns/frontend/sa/impostor', '-write', impostorDir], { ...io, stdout: { write: () => true } });
    const s2 = await connectTls({ svid: X509Svid.load(join(impostorDir, 'svid.pem'), join(impostorDir, 'key.pem')), bundle, authorize: authorizeId(serverId) }, { host: '127.0.0.1', port });
    s2.on('error', () => undefined);
    s2.write('let me in');
    await once(s2, 'close');
    out.write(`server: rejected during the handshake: ${rejected}\n`);
    checks.push(rejected.includes('not authorized'));
    echo.close();

    const success = checks.every(Boolean);
    step(success ? 'demo finished: everything behaved as expected' : `demo FAILED: checks ${JSON.stringify(checks)}`);
    return success ? 0 : 1;
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = await run();

/**
 * The quick-start demo (README), Tessera's main job end to end in one
 * process: a Tessera server for trust domain cluster.local and a Tessera
 * agent that attests to it with a join token; registration entries made with
 * the SPIRE-style CLI (the seed's, and two for this process's uid); the
 * agent handing out X509-SVIDs over the SPIFFE Workload API; an mTLS echo
 * whose server and client take their SVIDs from the Workload API
 * (X509Source) and authorize each other by SPIFFE ID, while impostors are
 * turned away during the handshake; a JWT-SVID fetched and validated through
 * the agent. Real sockets on loopback and a temporary directory, removed at
 * the end. Exit 0 only if every check passed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { SpiffeId } from '@tessera/spiffe/id';
import type { X509Svid } from '@tessera/spiffe/svid';
import { authorizeId, connectTls, createTlsServer, peerId } from '@tessera/spiffe/tls';
import { WorkloadApiClient, X509Source } from '@tessera/spiffe/workload-api';
import { main as cli } from '../cli/main.js';
import { loadServerConfig } from '../server/config.js';
import { startServer, type RunningServer } from '../server/server.js';
import { loadAgentConfig } from '../agent/config.js';
import { startAgent, type RunningAgent } from '../agent/agent.js';
import { createLogger } from '../observe/logger.js';

const out = process.stdout;
const step = (s: string): void => void out.write(`\n== ${s}\n`);
const say = (s: string): void => void out.write(`${s}\n`);

/** Tokens and JWKS are hundreds of characters: shown shortened so the story stays readable. */
const shorten = (text: string): string =>
  text
    .replace(/(-----BEGIN CERTIFICATE-----\n)[A-Za-z0-9+/=\n]+(-----END CERTIFICATE-----)/g, '$1…\n$2')
    .replace(/[^\s"]{100,}/g, (t) => `${t.slice(0, 40)}…(${t.length} chars)`);

const SEED_ID = 'spiffe://cluster.local/ns/backend/sa/default';
const SERVER_ID = SpiffeId.parse('spiffe://cluster.local/ns/echo/sa/echo-server');
const CLIENT_ID = SpiffeId.parse('spiffe://cluster.local/ns/echo/sa/echo-client');

/** Both echo entries select this process's uid, so each side picks its own SVID among the two. */
const pick = (id: SpiffeId) => (svids: readonly X509Svid[]): X509Svid => {
  const svid = svids.find((s) => s.id.equals(id));
  if (svid === undefined) throw new Error(`no SVID for ${id.toString()} yet`);
  return svid;
};

async function run(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-demo-'));
  const checks: [string, boolean][] = [];
  const check = (what: string, ok: boolean): void => void checks.push([what, ok]);
  const io = { stdout: out, stderr: out, now: () => new Date() };
  /** Runs `tessera <argv>` in this process, echoing the command line and its output. */
  const sh = async (...argv: string[]): Promise<{ code: number; stdout: string }> => {
    let text = '';
    const capture = { write: (s: string) => ((text += s), true) };
    const code = await cli(argv, { ...io, stdout: capture, stderr: capture });
    out.write(shorten(`$ tessera ${argv.join(' ')}\n${text}`));
    return { code, stdout: text };
  };
  const logger = createLogger({ level: 'warn' });
  const cleanup: (() => Promise<void> | void)[] = [];
  let server: RunningServer | undefined;
  try {
    step('tessera server run -trustDomain cluster.local (in this process): CA, datastore, Admin API, Agent API');
    server = await startServer(
      loadServerConfig({ flags: { trustDomain: 'cluster.local', dataDir: join(dir, 'server'), healthPort: 0, bindPort: 0, bindAddress: '127.0.0.1' } }),
      { logger },
    );
    const srv = server;
    cleanup.push(() => srv.close());
    const sock = ['-socketPath', srv.socketPath];
    check('server healthcheck', (await sh('server', 'healthcheck', ...sock)).code === 0);

    step('Attest a node: a join token and the bootstrap bundle for the agent');
    const token = await sh('server', 'token', 'generate', ...sock);
    const joinToken = /^Token: (\S+)$/m.exec(token.stdout)?.[1];
    check('join token generated', token.code === 0 && joinToken !== undefined);
    const bundle = await sh('server', 'bundle', 'show', ...sock);
    check('bundle shown', bundle.code === 0 && bundle.stdout.includes('BEGIN CERTIFICATE'));
    const bootstrap = join(dir, 'bootstrap.pem');
    writeFileSync(bootstrap, bundle.stdout);

    const socketPath = join(dir, 'agent', 'public', 'api.sock');
    say(`$ tessera agent run -trustDomain cluster.local -serverAddress 127.0.0.1:${srv.agentApi.port} -trustBundle bootstrap.pem -joinToken ${joinToken ?? '?'} -socketPath ${socketPath}   (in this process)`);
    const agent: RunningAgent = await startAgent(
      loadAgentConfig({
        flags: {
          trustDomain: 'cluster.local',
          serverAddress: `127.0.0.1:${srv.agentApi.port}`,
          dataDir: join(dir, 'agent', 'data'),
          socketPath,
          adminSocketPath: join(dir, 'agent', 'admin.sock'),
          trustBundle: bootstrap,
          joinToken: joinToken ?? '',
        },
      }),
      { logger },
    );
    cleanup.unshift(() => agent.close());
    await agent.ready();
    say(`agent: attested as ${agent.spiffeId}; Workload API on ${agent.socketPath}`);
    check('agent attested with the join token', agent.spiffeId === `spiffe://cluster.local/tessera/agent/join_token/${joinToken ?? ''}`);
    check('server lists the agent', (await sh('server', 'agent', 'list', ...sock)).stdout.includes(agent.spiffeId));
    check('agent healthcheck', (await sh('agent', 'healthcheck', '-socketPath', socketPath)).code === 0);

    step("Register the seed's workload entry (SPIRE spelling) and two for this demo's uid");
    const uid = process.getuid?.() ?? 0;
    const created = async (spiffeId: string, ...selectors: string[]): Promise<boolean> =>
      (await sh('server', 'entry', 'create', ...sock, '-spiffeID', spiffeId, '-parentID', agent.spiffeId, ...selectors.flatMap((s) => ['-selector', s]))).code === 0;
    check('seed entry created', await created(SEED_ID, 'k8s:ns:backend', 'k8s:sa:default'));
    const registeredAt = Date.now();
    check('echo-server entry created', await created(SERVER_ID.toString(), `unix:uid:${uid}`));
    check('echo-client entry created', await created(CLIENT_ID.toString(), `unix:uid:${uid}`));
    check('three entries', /3 registration entries/.test((await sh('server', 'entry', 'count', ...sock)).stdout));

    step('The agent receives the entries over its Sync stream, makes keys here and has the CA sign them');
    const arrived = await waitForSvids(socketPath, [SERVER_ID, CLIENT_ID], 10_000);
    say(`(both SVIDs were on the Workload API ${Date.now() - registeredAt} ms after the entries were created)`);
    check('SVIDs delivered', arrived);
    say("(the seed's entry waits for a workload the endpoint attestor finds as k8s:ns:backend, k8s:sa:default: none runs here; docs/endpoints.md)");
    const fetched = await sh('agent', 'api', 'fetch', 'x509', '-socketPath', socketPath);
    check('fetch x509 shows both SVIDs', fetched.code === 0 && /Received 2 svids/.test(fetched.stdout) && fetched.stdout.includes(SERVER_ID.toString()) && fetched.stdout.includes(CLIENT_ID.toString()));
    const files = join(dir, 'svids');
    check('fetch x509 -write', (await sh('agent', 'api', 'fetch', 'x509', '-socketPath', socketPath, '-write', files, '-silent')).code === 0);

    step('Inspect and verify a written SVID as an operator would');
    check('svid inspect', (await sh('svid', 'inspect', join(files, 'svid.0.pem'))).code === 0);
    check('svid verify', (await sh('svid', 'verify', '-bundle', join(files, 'bundle.0.pem'), '-key', join(files, 'svid.0.key'), join(files, 'svid.0.pem'))).code === 0);
    say('(and against a bundle given for another trust domain, which must fail:)');
    check('svid verify for other.org fails', (await sh('svid', 'verify', '-bundle', join(files, 'bundle.0.pem'), '-trustDomain', 'other.org', join(files, 'svid.0.pem'))).code === 1);

    step('mTLS echo with SVIDs from the Workload API: the server accepts only echo-client, the client accepts only echo-server');
    const address = `unix://${socketPath}`;
    const serverSource = await X509Source.create({ address, picker: pick(SERVER_ID), timeoutMs: 10_000 });
    cleanup.unshift(() => serverSource.close());
    const clientSource = await X509Source.create({ address, picker: pick(CLIENT_ID), timeoutMs: 10_000 });
    cleanup.unshift(() => clientSource.close());
    say(`echo-server: X509Source serves ${serverSource.getX509Svid().id.toString()}`);
    say(`echo-client: X509Source serves ${clientSource.getX509Svid().id.toString()}`);
    const echo = createTlsServer({ svid: serverSource, bundle: serverSource, authorize: authorizeId(CLIENT_ID) }, (socket) => {
      socket.on('error', () => undefined);
      socket.on('data', () => socket.end(`Hello, ${peerId(socket)?.toString()}`));
    });
    const rejected: string[] = [];
    echo.on('tlsClientError', (e: Error) => rejected.push(e.message));
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    cleanup.unshift(() => void echo.close());
    const port = (echo.address() as AddressInfo).port;

    const socket = await connectTls({ svid: clientSource, bundle: clientSource, authorize: authorizeId(SERVER_ID) }, { host: '127.0.0.1', port });
    say(`echo-client: connected to ${peerId(socket)?.toString()}`);
    socket.write('hi');
    const reply = await replyOf(socket);
    say(`echo-client: server answered "${reply}"`);
    check('echo reply', reply === `Hello, ${CLIENT_ID.toString()}`);

    step('Impostors are turned away during the handshake');
    // A client that expects another server ID (the seed's backend) refuses the echo server.
    try {
      const s = await connectTls({ svid: clientSource, bundle: clientSource, authorize: authorizeId(SpiffeId.parse(SEED_ID)) }, { host: '127.0.0.1', port });
      s.destroy();
      say('client expecting the backend: connected — WRONG');
      check('client refuses an unexpected server', false);
    } catch (e) {
      say(`client expecting ${SEED_ID}: refused the server: ${(e as Error).message}`);
      check('client refuses an unexpected server', /not authorized/.test((e as Error).message));
    }
    // A caller presenting another identity (the echo-server's own SVID) is not the client the server authorizes.
    const impostor = await connectTls({ svid: serverSource, bundle: serverSource, authorize: authorizeId(SERVER_ID) }, { host: '127.0.0.1', port });
    impostor.write('let me in');
    const answered = await replyOf(impostor);
    // (The refused server above also sees a "socket hang up"; only authorization failures are of interest here.)
    const refusals = rejected.filter((m) => m.includes('is not authorized'));
    say(`echo-server: rejected during the handshake: ${refusals.join('; ') || '(nothing)'}`);
    check('server rejects an unauthorized client', answered === '' && refusals.some((m) => m.startsWith(`client ${SERVER_ID.toString()} is not authorized`)));

    step('A JWT-SVID fetched and validated through the agent');
    const jwt = await sh('agent', 'api', 'fetch', 'jwt', '-audience', 'demo', '-spiffeID', CLIENT_ID.toString(), '-socketPath', socketPath);
    const jwtToken = /^token\(([^)]+)\):\n\t(\S+)$/m.exec(jwt.stdout);
    check('fetch jwt', jwt.code === 0 && jwtToken?.[1] === CLIENT_ID.toString());
    const valid = await sh('agent', 'api', 'validate', 'jwt', '-audience', 'demo', '-svid', jwtToken?.[2] ?? '', '-socketPath', socketPath);
    check('validate jwt', valid.code === 0 && valid.stdout.includes(`SPIFFE ID : ${CLIENT_ID.toString()}`));
    say('(and for another audience, which must fail:)');
    check('validate jwt for another audience fails', (await sh('agent', 'api', 'validate', 'jwt', '-audience', 'someone-else', '-svid', jwtToken?.[2] ?? '', '-socketPath', socketPath)).code === 1);

    const failed = checks.filter(([, ok]) => !ok).map(([what]) => what);
    step(failed.length === 0 ? `demo finished: everything behaved as expected (${checks.length} checks)` : `demo FAILED: ${failed.join(', ')}`);
    return failed.length === 0 ? 0 : 1;
  } catch (e) {
    step(`demo FAILED: ${(e as Error).message}`);
    return 1;
  } finally {
    for (const close of cleanup) await close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Everything the peer sends until it closes the connection (or 5 s pass): '' when it hangs up without a word. */
async function replyOf(socket: TLSSocket): Promise<string> {
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString()));
  socket.on('error', () => undefined);
  socket.setTimeout(5000, () => socket.destroy());
  if (!socket.destroyed) await once(socket, 'close');
  return text;
}

/** Polls the Workload API (as this process) until it hands out SVIDs for all of `ids`. */
async function waitForSvids(socketPath: string, ids: readonly SpiffeId[], timeoutMs: number): Promise<boolean> {
  const client = new WorkloadApiClient({ address: `unix://${socketPath}` });
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      // PermissionDenied ("no identity issued") until the first SVID is signed.
      const have = await client.fetchX509Context().then((c) => c.svids.map((s) => s.id.toString()), (): string[] => []);
      if (ids.every((id) => have.includes(id.toString()))) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  } finally {
    client.close();
  }
}

process.exitCode = await run();

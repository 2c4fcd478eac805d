// The seed's echo-server and echo-client (examples/), run as real child
// processes against a real Workload API socket. Both run as this user, so the
// test's attestor tells them apart by pid: each child's selectors are
// registered the moment it is spawned, before it can connect.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { X509Svid } from '@tessera/spiffe/svid';
import { TestCa } from '@tessera/spiffe/testing';

import { InMemoryIdentityCache, startWorkloadApi } from '../../src/agent/workload-api/index.js';
import { peerCredentials } from '../../src/agent/workload-attestors/index.js';
import type { Selector } from '../../src/server/registration/index.js';

const EXAMPLES = fileURLToPath(new URL('../../../../../examples/dist/', import.meta.url));
const SERVER_ID = 'spiffe://example.org/ns/my-app/sa/echo-server-sa';
const CLIENT_ID = 'spiffe://example.org/ns/my-app/sa/echo-client-sa';
const SERVER: Selector[] = [{ type: 'k8s', value: 'sa:echo-server-sa' }];
const CLIENT: Selector[] = [{ type: 'k8s', value: 'sa:echo-client-sa' }];
/** Upper bound for anything a test waits for, so a broken example fails the test instead of hanging it. */
const WAIT_MS = 20_000;

const dir = mkdtempSync(join(tmpdir(), 'tessera-echo-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ca = new TestCa({ trustDomain: 'example.org' });
const selectorsByPid = new Map<number, Selector[]>();
const cache = new InMemoryIdentityCache({ bundle: { trustDomain: 'example.org', x509Authorities: [ca.certificate], jwks: ca.jwtBundle().marshal() } });
const socketPath = join(dir, 'api.sock');
const api = await startWorkloadApi({
  socketPath,
  cache,
  peer: peerCredentials,
  attest: (pid) => Promise.resolve(selectorsByPid.get(pid) ?? []),
});
after(() => api.close());

/** Issues (or rotates) the SVID of `id` for `selectors`; returns it. */
function issue(id: string, selectors: Selector[]): X509Svid {
  const svid = ca.createX509Svid(id);
  cache.setEntry(id, { selectors, svid: { spiffeId: id, certificates: [...svid.certificates], privateKey: svid.privateKey, hint: '', federatesWith: [] } });
  return svid;
}
const serialOf = (svid: X509Svid): string => new X509Certificate(svid.certificates[0]!).serialNumber.toUpperCase();

issue(SERVER_ID, SERVER);
issue(CLIENT_ID, CLIENT);

/** A running example: its stdout and stderr lines as they arrive, and its exit. */
class Example {
  readonly child: ChildProcess;
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<number | null>;
  readonly #waiters = new Set<() => void>();

  constructor(name: 'echo-server' | 'echo-client', selectors: Selector[], env: Record<string, string>) {
    const script = join(EXAMPLES, name, 'main.js');
    assert.ok(existsSync(script), `${script} is missing: build the examples with 'npx tsc -b examples'`);
    this.child = spawn(process.execPath, [script], {
      env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: `unix://${socketPath}`, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    selectorsByPid.set(this.child.pid!, selectors);
    this.exited = once(this.child, 'exit').then(([code]) => code as number | null);
    after(() => {
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
    });
    for (const [stream, lines] of [[this.child.stdout!, this.stdout], [this.child.stderr!, this.stderr]] as const) {
      let partial = '';
      stream.setEncoding('utf8').on('data', (chunk: string) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop()!;
        lines.push(...parts);
        for (const w of [...this.#waiters]) w();
      });
    }
  }

  /** Resolves with the `count`-th line of `lines` matching `re`; rejects after WAIT_MS or when the process exits first. */
  waitFor(lines: string[], re: RegExp, count = 1): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const hits = lines.filter((l) => re.test(l));
        if (hits.length < count) return;
        done();
        resolve(hits[count - 1]!);
      };
      const timer = setTimeout(() => (done(), reject(new Error(`no line matching ${re} within ${WAIT_MS} ms:\n${this.stderr.join('\n')}`))), WAIT_MS);
      // 'close' comes after the last output has been read.
      const onExit = (): void => (done(), reject(new Error(`exited before a line matching ${re}:\n${this.stderr.join('\n')}`)));
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        this.child.off('close', onExit);
      };
      this.#waiters.add(check);
      this.child.once('close', onExit);
      check();
    });
  }

  /** The exit code, failing the test if the process runs longer than WAIT_MS. */
  async exitCode(): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`still running after ${WAIT_MS} ms:\n${this.stderr.join('\n')}`)), WAIT_MS);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Starts an echo-server on an ephemeral loopback port. */
async function echoServer(env: Record<string, string> = {}): Promise<{ server: Example; address: string }> {
  const server = new Example('echo-server', SERVER, { LISTEN_ADDRESS: '127.0.0.1:0', ...env });
  const port = await server.waitFor(server.stdout, /^\d+$/);
  return { server, address: `127.0.0.1:${port}` };
}

test('the echo-client gets "Hello, <its SPIFFE ID>" over mTLS; the server logs who called', async () => {
  const { server, address } = await echoServer();
  await server.waitFor(server.stderr, new RegExp(`Server SVID: ${SERVER_ID}$`));
  const client = new Example('echo-client', CLIENT, { SERVER_ADDRESS: address, EXPECTED_SERVER_ID: SERVER_ID, INTERVAL_MS: '10', REQUESTS: '3' });
  assert.equal(await client.exitCode(), 0, client.stderr.join('\n'));
  assert.equal(client.stderr.filter((l) => l.includes(`Server response: Hello, ${CLIENT_ID} (server certificate `)).length, 3, client.stderr.join('\n'));
  assert.ok(client.stderr.some((l) => l.endsWith('3 requests, 0 failed')));
  await server.waitFor(server.stderr, new RegExp(`Received request from ${CLIENT_ID} \\(certificate [0-9A-F]+\\)$`));
});

test('a client expecting another server ID refuses the server; a server allowing another client ID refuses the client', async () => {
  const { server, address } = await echoServer();
  const wrongServer = new Example('echo-client', CLIENT, { SERVER_ADDRESS: address, EXPECTED_SERVER_ID: 'spiffe://example.org/ns/my-app/sa/impostor', INTERVAL_MS: '10', REQUESTS: '2' });
  assert.equal(await wrongServer.exitCode(), 1);
  assert.equal(wrongServer.stderr.filter((l) => /Error making request: .*server spiffe:\/\/example\.org\/ns\/my-app\/sa\/echo-server-sa is not authorized/.test(l)).length, 2, wrongServer.stderr.join('\n'));
  assert.ok(wrongServer.stderr.some((l) => l.endsWith('2 requests, 2 failed')));
  assert.ok(!server.stderr.some((l) => l.includes('Received request')), 'the client hung up before sending the request');

  const strict = await echoServer({ ALLOWED_CLIENT_ID: 'spiffe://example.org/ns/my-app/sa/someone-else' });
  const refused = new Example('echo-client', CLIENT, { SERVER_ADDRESS: strict.address, EXPECTED_SERVER_ID: SERVER_ID, INTERVAL_MS: '10', REQUESTS: '1' });
  assert.equal(await refused.exitCode(), 1, refused.stderr.join('\n'));
  await strict.server.waitFor(strict.server.stderr, new RegExp(`Rejected connection: client ${CLIENT_ID} is not authorized`));
  assert.ok(!strict.server.stderr.some((l) => l.includes('Received request')));
});

test('rotation under continuous traffic: both SVIDs rotated 4 times, zero failed requests, every new certificate used', async () => {
  const { server, address } = await echoServer();
  const serverSerials = [serialOf(issue(SERVER_ID, SERVER))];
  const clientSerials = [serialOf(issue(CLIENT_ID, CLIENT))];
  const client = new Example('echo-client', CLIENT, { SERVER_ADDRESS: address, EXPECTED_SERVER_ID: SERVER_ID, INTERVAL_MS: '20', REQUESTS: '30' });
  // Rotate after every 5th request the server logs: driven by the traffic, not by timers.
  for (const n of [5, 10, 15, 20]) {
    await server.waitFor(server.stderr, /Received request from/, n);
    serverSerials.push(serialOf(issue(SERVER_ID, SERVER)));
    clientSerials.push(serialOf(issue(CLIENT_ID, CLIENT)));
  }
  assert.equal(await client.exitCode(), 0, client.stderr.join('\n'));
  assert.ok(client.stderr.some((l) => l.endsWith('30 requests, 0 failed')), client.stderr.join('\n'));
  await server.waitFor(server.stderr, /Received request from/, 30);
  const usedByClient = new Set(server.stderr.map((l) => /Received request from .* \(certificate ([0-9A-F]+)\)$/.exec(l)?.[1]).filter((s) => s !== undefined));
  const presentedByServer = new Set(client.stderr.map((l) => /\(server certificate ([0-9A-F]+)\)$/.exec(l)?.[1]).filter((s) => s !== undefined));
  for (const s of clientSerials) assert.ok(usedByClient.has(s), `the server never saw client certificate ${s}: ${[...usedByClient].join(' ')}`);
  for (const s of serverSerials) assert.ok(presentedByServer.has(s), `the client never saw server certificate ${s}: ${[...presentedByServer].join(' ')}`);
});

/**
 * An in-test Workload API server: real gRPC (connect-node over node:http2)
 * on a real Unix socket, serving SVIDs minted by a TestCa. Tests steer it
 * (push rotations, queue failures) and read what it saw (security headers).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import * as net from 'node:net';
import { isSpiffeError, SourceError } from '../../src/errors/index.js';
import { authorizeId, authorizeMemberOf, connectTls, createTlsServer } from '../../src/tls/index.js';
import {
  BundleSource,
  JwtSource,
  WorkloadApiClient,
  WorkloadApiError,
  X509Source,
  parseWorkloadEndpoint,
  type Backoff,
  type Sleep,
  type X509Context,
} from '../../src/workload-api/index.js';
import * as http2 from 'node:http2';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Code, ConnectError, createClient, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import { connectNodeAdapter, createGrpcTransport } from '@connectrpc/connect-node';
import { TestCa, createJwtSvid, createBrokenJwtSvid, JWT_SVID_TEST_AUDIENCE } from '../../src/testing/index.js';
import { JwtSvid } from '../../src/svid/jwt-svid.js';
import type { X509Svid } from '../../src/svid/x509-svid.js';
import { SpiffeId, TrustDomain } from '../../src/id/index.js';
import { SpiffeWorkloadAPI } from '../../src/workload-api/gen/workload/workload_pb.js';

interface SvidInit {
  spiffeId: string;
  x509Svid: Uint8Array;
  x509SvidKey: Uint8Array;
  bundle: Uint8Array;
  hint: string;
}

function svidMessage(svid: { certificates: readonly Uint8Array[]; privateKey: import('node:crypto').KeyObject }, ca: TestCa, spiffeId: string, hint = ''): SvidInit {
  return {
    spiffeId,
    x509Svid: Buffer.concat(svid.certificates),
    x509SvidKey: svid.privateKey.export({ type: 'pkcs8', format: 'der' }),
    bundle: ca.x509Bundle().marshalDer(),
    hint,
  };
}

function x509Message(svid: X509Svid, ca: TestCa, hint = ''): SvidInit {
  return svidMessage(svid, ca, svid.id.toString(), hint);
}

class FakeAgent {
  readonly ca = new TestCa({ trustDomain: 'example.org' });
  readonly federated = new TestCa({ trustDomain: 'federated.test' });
  readonly id = SpiffeId.parse('spiffe://example.org/workload');
  readonly dir = mkdtempSync(join(tmpdir(), 'wlapi-'));
  readonly socketPath = join(this.dir, 'agent.sock');
  /** Full state sent on the X509SVID stream. */
  svids: SvidInit[];
  /** Failures thrown, one per stream opened, before serving (per method). */
  readonly failures: Record<string, ConnectError[]> = {};
  /** Value of the security header of every call, per method. */
  readonly headers: { method: string; value: string | null }[] = [];
  readonly opened: Record<string, number> = {};
  #version = 0;
  #waiters: (() => void)[] = [];
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly server: http2.Http2Server;

  constructor() {
    this.svids = [x509Message(this.ca.createX509Svid(this.id), this.ca)];
    const handler = connectNodeAdapter({ routes: (router) => router.service(SpiffeWorkloadAPI, workloadService(this)) });
    this.server = http2.createServer(handler);
    this.server.on('session', (s) => {
      this.#sessions.add(s);
      s.on('close', () => this.#sessions.delete(s));
    });
  }

  #tcpPort: number | undefined;

  /** Listens on the Unix socket, or on loopback TCP when `tcp` is set. */
  async start(tcp = false): Promise<this> {
    if (tcp) this.server.listen(0, '127.0.0.1');
    else this.server.listen(this.socketPath);
    await once(this.server, 'listening');
    if (tcp) this.#tcpPort = (this.server.address() as AddressInfo).port;
    return this;
  }

  get address(): string {
    return this.#tcpPort === undefined ? `unix://${this.socketPath}` : `tcp://127.0.0.1:${this.#tcpPort}`;
  }

  /** Replaces the X.509 state and pushes it to every open stream. */
  push(svids: SvidInit[]): void {
    this.svids = svids;
    this.#version++;
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  gate(method: string, ctx: HandlerContext): void {
    const value = ctx.requestHeader.get('workload.spiffe.io');
    this.headers.push({ method, value });
    if (value !== 'true') throw new ConnectError('security header missing from request', Code.InvalidArgument);
    this.opened[method] = (this.opened[method] ?? 0) + 1;
    const f = this.failures[method]?.shift();
    if (f) throw f;
  }

  async *stream<T>(ctx: HandlerContext, state: () => T): AsyncGenerator<T> {
    let sent = -1;
    while (!ctx.signal.aborted) {
      if (sent !== this.#version) {
        sent = this.#version;
        yield state();
      }
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    }
  }

  async stop(): Promise<void> {
    for (const s of this.#sessions) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The SpiffeWorkloadAPI implementation of a {@link FakeAgent}. */
function workloadService(agent: FakeAgent): Partial<ServiceImpl<typeof SpiffeWorkloadAPI>> {
  const gate = (method: string, ctx: HandlerContext): void => agent.gate(method, ctx);
  return {
    async *fetchX509SVID(_req, ctx) {
      gate('FetchX509SVID', ctx);
      yield* agent.stream(ctx, () => ({ svids: agent.svids, federatedBundles: { 'spiffe://federated.test': agent.federated.x509Bundle().marshalDer() } }));
    },
    async *fetchX509Bundles(_req, ctx) {
      gate('FetchX509Bundles', ctx);
      yield* agent.stream(ctx, () => ({
        bundles: { 'spiffe://example.org': agent.ca.x509Bundle().marshalDer(), 'spiffe://federated.test': agent.federated.x509Bundle().marshalDer() },
      }));
    },
    async *fetchJWTBundles(_req, ctx) {
      gate('FetchJWTBundles', ctx);
      yield* agent.stream(ctx, () => ({ bundles: { 'spiffe://example.org': Buffer.from(agent.ca.jwtBundle().marshal()) } }));
    },
    fetchJWTSVID(req, ctx) {
      gate('FetchJWTSVID', ctx);
      if (req.audience.length === 0) throw new ConnectError('audience must be specified', Code.InvalidArgument);
      if (req.spiffeId !== '' && req.spiffeId !== agent.id.toString()) throw new ConnectError('no identity issued', Code.PermissionDenied);
      return { svids: [{ spiffeId: agent.id.toString(), svid: createJwtSvid(agent.ca, agent.id, req.audience), hint: 'jwt-hint' }] };
    },
    validateJWTSVID(req, ctx) {
      gate('ValidateJWTSVID', ctx);
      try {
        const svid = JwtSvid.parseAndValidate(req.svid, agent.ca.jwtBundle(), req.audience);
        return { spiffeId: svid.id.toString() };
      } catch (e) {
        throw new ConnectError((e as Error).message, Code.InvalidArgument);
      }
    },
  };
}

// ---------------------------------------------------------------------------

const EXAMPLE = TrustDomain.parse('example.org');
const FEDERATED = TrustDomain.parse('federated.test');

/** A backoff whose delays the test reads; the injected sleep never waits. */
function recordingBackoff(): { delays: number[]; backoff: () => Backoff; sleep: Sleep } {
  const delays: number[] = [];
  let n = 0;
  return {
    delays,
    backoff: () => ({
      next: () => {
        const d = Math.min(30_000, 1000 * 2 ** n++);
        delays.push(d);
        return d;
      },
      reset: () => {
        n = 0;
      },
    }),
    sleep: () => new Promise((r) => setImmediate(r)),
  };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

function rejects(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => assert.fail('expected a rejection'),
    (e: Error) => e,
  );
}

describe('parseWorkloadEndpoint (go-spiffe address rules)', () => {
  const ok: [string, object][] = [
    ['unix:///run/spire/agent.sock', { network: 'unix', path: '/run/spire/agent.sock' }],
    ['unix:///tmp/a%20b.sock', { network: 'unix', path: '/tmp/a b.sock' }],
    ['tcp://127.0.0.1:8081', { network: 'tcp', host: '127.0.0.1', port: 8081 }],
    ['tcp://[::1]:8081', { network: 'tcp', host: '::1', port: 8081 }],
    ['TCP://10.0.0.1:1', { network: 'tcp', host: '10.0.0.1', port: 1 }],
  ];
  for (const [addr, want] of ok) {
    test(`accepts ${addr}`, () => assert.deepEqual({ ...parseWorkloadEndpoint(addr) }, want));
  }
  const bad: [string, RegExp][] = [
    ['unix:agent.sock', /must not be opaque/],
    ['unix:/run/agent.sock', /must not be opaque/],
    ['unix://relative/agent.sock', /absolute path and no host/],
    ['unix://', /must include a path/],
    ['unix:///', /must include a path/],
    ['unix:///a.sock?x=1', /query values/],
    ['unix:///a.sock#frag', /fragment/],
    ['unix://user@/a.sock', /user info/],
    ['tcp://localhost:8081', /must be an IP:port/],
    ['tcp://127.0.0.1', /must be an IP:port/],
    ['tcp://127.0.0.1:', /must include a port/],
    ['tcp://127.0.0.1:99999', /out of range/],
    ['tcp://127.0.0.1:8081/', /must not include a path/],
    ['tcp://127.0.0.1:8081/path', /must not include a path/],
    ['tcp://127.0.0.1:8081?x', /query values/],
    ['tcp://u:p@127.0.0.1:8081', /user info/],
    ['tcp:127.0.0.1:8081', /must not be opaque/],
    ['tcp://[127.0.0.1]:8081', /must be an IP:port/],
    ['http://127.0.0.1:8081', /"tcp" or "unix" scheme/],
    ['/run/spire/agent.sock', /has no scheme/],
  ];
  for (const [addr, want] of bad) {
    test(`refuses ${addr}`, () => {
      assert.throws(
        () => parseWorkloadEndpoint(addr),
        (e: Error) => isSpiffeError(e, 'ERR_INVALID_OPTIONS') && want.test(e.message),
      );
    });
  }
  test('defaults to SPIFFE_ENDPOINT_SOCKET, and says so when nothing is configured', () => {
    assert.deepEqual({ ...parseWorkloadEndpoint(undefined, { SPIFFE_ENDPOINT_SOCKET: 'unix:///x.sock' }) }, { network: 'unix', path: '/x.sock' });
    assert.throws(
      () => parseWorkloadEndpoint(undefined, {}),
      (e: Error) => isSpiffeError(e, 'ERR_INVALID_OPTIONS') && /workload endpoint socket address is not configured/.test(e.message),
    );
    const saved = process.env.SPIFFE_ENDPOINT_SOCKET;
    delete process.env.SPIFFE_ENDPOINT_SOCKET;
    try {
      assert.throws(() => new WorkloadApiClient(), /workload endpoint socket address is not configured/);
    } finally {
      if (saved !== undefined) process.env.SPIFFE_ENDPOINT_SOCKET = saved;
    }
  });
});

describe('WorkloadApiClient against a gRPC agent on a Unix socket', () => {
  let agent: FakeAgent;
  let client: WorkloadApiClient;
  before(async () => {
    agent = await new FakeAgent().start();
    client = new WorkloadApiClient({ address: agent.address });
  });
  after(async () => {
    client.close();
    await agent.stop();
  });

  test('fetchX509Svid / fetchX509Svids / fetchX509Context parse the SVIDs and bundles strictly', async () => {
    const second = agent.ca.createX509Svid('spiffe://example.org/second');
    agent.push([x509Message(agent.ca.createX509Svid(agent.id), agent.ca, 'internal'), x509Message(second, agent.ca, 'external')]);
    const svid = await client.fetchX509Svid();
    assert.equal(svid.id.toString(), agent.id.toString());
    assert.equal(svid.hint, 'internal');
    const all = await client.fetchX509Svids();
    assert.deepEqual(all.map((s) => s.id.toString()), [agent.id.toString(), 'spiffe://example.org/second']);
    const ctx = await client.fetchX509Context();
    assert.equal(ctx.svids.length, 2);
    assert.ok(ctx.bundles.get(EXAMPLE)?.equals(agent.ca.x509Bundle()));
    assert.ok(ctx.bundles.get(FEDERATED)?.equals(agent.federated.x509Bundle()));
  });

  test('duplicate hints: the first SVID with a hint wins', async () => {
    agent.push([x509Message(agent.ca.createX509Svid(agent.id), agent.ca, 'h'), x509Message(agent.ca.createX509Svid('spiffe://example.org/dup'), agent.ca, 'h')]);
    const all = await client.fetchX509Svids();
    assert.deepEqual(all.map((s) => s.id.toString()), [agent.id.toString()]);
  });

  test('fetchX509Bundles keys bundles by trust domain', async () => {
    const set = await client.fetchX509Bundles();
    assert.equal(set.len(), 2);
    assert.ok(set.getX509BundleForTrustDomain(EXAMPLE).equals(agent.ca.x509Bundle()));
    assert.ok(set.getX509BundleForTrustDomain(FEDERATED).equals(agent.federated.x509Bundle()));
  });

  test('fetchJwtSvid / fetchJwtBundles / validateJwtSvid', async () => {
    const svid = await client.fetchJwtSvid({ audience: JWT_SVID_TEST_AUDIENCE });
    assert.equal(svid.id.toString(), agent.id.toString());
    assert.deepEqual(svid.audience, [JWT_SVID_TEST_AUDIENCE]);
    assert.equal(svid.hint, 'jwt-hint');
    const bundles = await client.fetchJwtBundles();
    assert.ok(bundles.getJwtBundleForTrustDomain(EXAMPLE).equals(agent.ca.jwtBundle()));
    const validated = await client.validateJwtSvid(svid.token, JWT_SVID_TEST_AUDIENCE);
    assert.equal(validated.id.toString(), agent.id.toString());
    // The agent refuses an invalid token with InvalidArgument; the client surfaces it typed.
    const err = await rejects(client.validateJwtSvid(createBrokenJwtSvid(agent.ca, 'expired'), JWT_SVID_TEST_AUDIENCE));
    assert.ok(err instanceof WorkloadApiError && err.grpcStatus === 'InvalidArgument', String(err));
    assert.ok(isSpiffeError(err, 'ERR_SOURCE_UNAVAILABLE'));
    // spiffeId filter for an identity the workload does not have → PermissionDenied.
    const denied = await rejects(client.fetchJwtSvid({ audience: 'a', spiffeId: 'spiffe://example.org/not-mine' }));
    assert.ok(denied instanceof WorkloadApiError && denied.grpcStatus === 'PermissionDenied');
    await assert.rejects(client.fetchJwtSvid({ audience: [] }), (e: Error) => isSpiffeError(e, 'ERR_INVALID_OPTIONS'));
  });

  test('every call carries workload.spiffe.io: true; a call without it is refused with InvalidArgument', async () => {
    await client.fetchX509Bundles();
    assert.ok(agent.headers.length > 0);
    assert.ok(agent.headers.every((h) => h.value === 'true'), JSON.stringify(agent.headers));
    const raw = createClient(
      SpiffeWorkloadAPI,
      createGrpcTransport({ baseUrl: 'http://localhost', nodeOptions: { createConnection: () => net.connect(agent.socketPath) } }),
    );
    const err = await rejects(raw.fetchJWTSVID({ audience: ['x'] }));
    assert.ok(err instanceof ConnectError && err.code === Code.InvalidArgument);
    assert.equal((err as ConnectError).rawMessage, 'security header missing from request');
    assert.equal(agent.headers.at(-1)?.value, null);
  });

  test('a malformed SVID from the agent is a typed parse error', async () => {
    const broken = agent.ca.createBrokenX509Svid('key-mismatch');
    agent.push([svidMessage(broken, agent.ca, 'spiffe://example.org/workload')]);
    const err = await rejects(client.fetchX509Svid());
    assert.ok(isSpiffeError(err, 'ERR_X509SVID_INVALID'), String(err));
    agent.push([x509Message(agent.ca.createX509Svid(agent.id), agent.ca)]);
  });

  test('a response whose spiffe_id disagrees with the certificate is refused', async () => {
    agent.push([{ ...x509Message(agent.ca.createX509Svid(agent.id), agent.ca), spiffeId: 'spiffe://example.org/liar' }]);
    const err = await rejects(client.fetchX509Svid());
    assert.ok(isSpiffeError(err, 'ERR_X509SVID_INVALID'), String(err));
    agent.push([x509Message(agent.ca.createX509Svid(agent.id), agent.ca)]);
  });
});

test('the client also speaks gRPC over loopback TCP', async () => {
  const agent = await new FakeAgent().start(true);
  const client = new WorkloadApiClient({ address: agent.address });
  try {
    assert.equal(client.endpoint.network, 'tcp');
    assert.equal((await client.fetchX509Svid()).id.toString(), agent.id.toString());
  } finally {
    client.close();
    await agent.stop();
  }
});

test('a watcher that throws does not tear down the stream', async () => {
  const agent = await new FakeAgent().start();
  const rb = recordingBackoff();
  const client = new WorkloadApiClient({ address: agent.address, backoff: rb.backoff, sleep: rb.sleep });
  const errors: Error[] = [];
  let n = 0;
  const done = client.watchX509Context({
    onX509ContextUpdate: () => {
      n++;
      throw new Error('watcher bug');
    },
    onX509ContextWatchError: (e) => errors.push(e),
  });
  await until(() => n === 1, 'first update');
  agent.push([x509Message(agent.ca.createX509Svid(agent.id), agent.ca)]);
  await until(() => n === 2, 'second update on the same stream');
  assert.equal(agent.opened.FetchX509SVID, 1);
  assert.deepEqual(rb.delays, []);
  assert.equal(errors.length, 2);
  client.close();
  await done;
  await agent.stop();
});

describe('watches retry like go-spiffe', () => {
  let agent: FakeAgent;
  before(async () => {
    agent = await new FakeAgent().start();
  });
  after(() => agent.stop());

  test('PermissionDenied twice, then success: the watcher backs off exponentially and gets the SVID', async () => {
    agent.failures.FetchX509SVID = [
      new ConnectError('no identity issued', Code.PermissionDenied),
      new ConnectError('no identity issued', Code.PermissionDenied),
      new ConnectError('attestation failed', Code.Unavailable),
    ];
    const rb = recordingBackoff();
    const client = new WorkloadApiClient({ address: agent.address, backoff: rb.backoff, sleep: rb.sleep });
    const updates: X509Context[] = [];
    const errors: Error[] = [];
    const stop = new AbortController();
    const done = client.watchX509Context({ onX509ContextUpdate: (c) => updates.push(c), onX509ContextWatchError: (e) => errors.push(e) }, stop.signal);
    await until(() => updates.length === 1, 'the first update');
    assert.equal(updates[0]!.svids[0]!.id.toString(), agent.id.toString());
    assert.deepEqual(errors.map((e) => (e as WorkloadApiError).grpcStatus), ['PermissionDenied', 'PermissionDenied', 'Unavailable']);
    assert.deepEqual(rb.delays, [1000, 2000, 4000]);
    stop.abort();
    await done; // resolves on cancellation
    client.close();
  });

  test('InvalidArgument ends the watch without retrying', async () => {
    agent.failures.FetchJWTBundles = [new ConnectError('security header missing from request', Code.InvalidArgument)];
    const rb = recordingBackoff();
    const client = new WorkloadApiClient({ address: agent.address, backoff: rb.backoff, sleep: rb.sleep });
    const err = await rejects(client.watchJwtBundles({ onJwtBundlesUpdate: () => assert.fail('no update expected') }));
    assert.ok(err instanceof WorkloadApiError && err.grpcStatus === 'InvalidArgument');
    assert.deepEqual(rb.delays, []);
    client.close();
  });

  test('close() ends a running watch', async () => {
    const client = new WorkloadApiClient({ address: agent.address });
    let n = 0;
    const done = client.watchJwtBundles({ onJwtBundlesUpdate: () => n++ });
    await until(() => n === 1, 'first JWT bundles');
    client.close();
    await done;
    await assert.rejects(client.fetchX509Svid(), (e: Error) => isSpiffeError(e, 'ERR_SOURCE_UNAVAILABLE'));
  });
});

describe('X509Source', () => {
  let agent: FakeAgent;
  before(async () => {
    agent = await new FakeAgent().start();
  });
  after(() => agent.stop());

  test('rotation pushed by the agent applies to the next TLS handshake', async () => {
    const first = agent.ca.createX509Svid(agent.id);
    agent.push([x509Message(first, agent.ca)]);
    const source = await X509Source.create({ address: agent.address, timeoutMs: 5000 });
    assert.equal(source.getX509Svid().certificates[0]!.toString('hex'), first.certificates[0]!.toString('hex'));

    const server = createTlsServer({ svid: source, bundle: source, authorize: authorizeMemberOf(EXAMPLE) }, (s) => s.end('hi'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const clientSvid = agent.ca.createX509Svid('spiffe://example.org/client');
    const served = async (): Promise<string> => {
      const socket = await connectTls({ svid: clientSvid, bundle: source, authorize: authorizeId(agent.id) }, { host: '127.0.0.1', port });
      const der = socket.getPeerCertificate().raw.toString('hex');
      socket.destroy();
      return der;
    };
    try {
      assert.equal(await served(), first.certificates[0]!.toString('hex'));
      const second = agent.ca.createX509Svid(agent.id);
      const updated = once(source, 'update');
      agent.push([x509Message(second, agent.ca)]);
      await updated;
      assert.equal(source.getX509Svid().certificates[0]!.toString('hex'), second.certificates[0]!.toString('hex'));
      assert.equal(await served(), second.certificates[0]!.toString('hex'), 'the next handshake presents the rotated SVID');
    } finally {
      server.close();
      source.close();
    }
  });

  test('a malformed update is rejected with a typed error and the previous SVID stays', async () => {
    const good = agent.ca.createX509Svid(agent.id);
    agent.push([x509Message(good, agent.ca)]);
    const source = await X509Source.create({ address: agent.address, timeoutMs: 5000 });
    const errors: Error[] = [];
    source.on('watchError', (e) => errors.push(e));
    let updates = 0;
    source.on('update', () => updates++);
    for (const defect of ['key-mismatch', 'leaf-ca-true', 'root-path-id'] as const) {
      agent.push([svidMessage(agent.ca.createBrokenX509Svid(defect), agent.ca, agent.id.toString())]);
    }
    await until(() => errors.length >= 1, 'the rejection');
    assert.ok(errors.every((e) => isSpiffeError(e, 'ERR_X509SVID_INVALID')), errors.map(String).join());
    assert.equal(updates, 0);
    assert.equal(source.getX509Svid().certificates[0]!.toString('hex'), good.certificates[0]!.toString('hex'));
    // The stream stays up: a later good update is taken.
    const next = agent.ca.createX509Svid(agent.id);
    agent.push([x509Message(next, agent.ca)]);
    await until(() => updates === 1, 'the next good update');
    assert.equal(source.getX509Svid().certificates[0]!.toString('hex'), next.certificates[0]!.toString('hex'));
    source.close();
  });

  test('picker chooses among several SVIDs', async () => {
    agent.push([x509Message(agent.ca.createX509Svid(agent.id), agent.ca, 'a'), x509Message(agent.ca.createX509Svid('spiffe://example.org/b'), agent.ca, 'b')]);
    const source = await X509Source.create({ address: agent.address, picker: (svids) => svids.find((s) => s.hint === 'b')! });
    assert.equal(source.getX509Svid().id.toString(), 'spiffe://example.org/b');
    source.close();
  });

  test('after close every getter throws ERR_SOURCE_UNAVAILABLE', async () => {
    const source = await X509Source.create({ address: agent.address });
    source.close();
    assert.throws(() => source.getX509Svid(), (e: Error) => e instanceof SourceError && isSpiffeError(e, 'ERR_SOURCE_UNAVAILABLE'));
    assert.throws(() => source.getX509BundleForTrustDomain(EXAMPLE), (e: Error) => isSpiffeError(e, 'ERR_SOURCE_UNAVAILABLE'));
    await assert.rejects(source.waitUntilReady(10), (e: Error) => isSpiffeError(e, 'ERR_SOURCE_UNAVAILABLE'));
  });

  test('waitUntilReady times out while the agent denies; abort signal closes the source', async () => {
    agent.failures.FetchX509SVID = Array.from({ length: 1000 }, () => new ConnectError('no identity issued', Code.PermissionDenied));
    const rb = recordingBackoff();
    const stop = new AbortController();
    const pending = X509Source.create({ address: agent.address, backoff: rb.backoff, sleep: (_ms, s) => new Promise((r) => s.addEventListener('abort', () => r(), { once: true })), signal: stop.signal, timeoutMs: 50 });
    const err = await rejects(pending);
    assert.ok(isSpiffeError(err, 'ERR_SOURCE_UNAVAILABLE'), String(err));
    assert.match(err.message, /within 50 ms/);
    agent.failures.FetchX509SVID = [];
    stop.abort();
  });
});

describe('JwtSource and BundleSource', () => {
  let agent: FakeAgent;
  before(async () => {
    agent = await new FakeAgent().start();
  });
  after(() => agent.stop());

  test('JwtSource serves JWT bundles and fetches JWT-SVIDs that validate against them', async () => {
    const source = await JwtSource.create({ address: agent.address, timeoutMs: 5000 });
    const svid = await source.fetchJwtSvid({ audience: 'spiffe://example.org/api' });
    const validated = JwtSvid.parseAndValidate(svid.token, source, 'spiffe://example.org/api');
    assert.equal(validated.id.toString(), agent.id.toString());
    assert.throws(() => source.getJwtBundleForTrustDomain(FEDERATED), (e: Error) => isSpiffeError(e, 'ERR_BUNDLE_NOT_FOUND'));
    source.close();
    assert.throws(() => source.getJwtBundleForTrustDomain(EXAMPLE), (e: Error) => isSpiffeError(e, 'ERR_SOURCE_UNAVAILABLE'));
    await assert.rejects(source.fetchJwtSvid({ audience: 'x' }), (e: Error) => isSpiffeError(e, 'ERR_SOURCE_UNAVAILABLE'));
  });

  test('BundleSource serves both bundle kinds and plugs into connectTls', async () => {
    const source = await BundleSource.create({ address: agent.address, timeoutMs: 5000 });
    assert.ok(source.getX509BundleForTrustDomain(FEDERATED).equals(agent.federated.x509Bundle()));
    assert.ok(source.getJwtBundleForTrustDomain(EXAMPLE).equals(agent.ca.jwtBundle()));
    const serverSvid = agent.ca.createX509Svid('spiffe://example.org/server');
    const server = tls.createServer({ cert: serverSvid.marshal().certificates, key: serverSvid.marshal().privateKey }, (s) => s.end());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const socket = await connectTls({ bundle: source, authorize: authorizeId(serverSvid.id) }, { host: '127.0.0.1', port: (server.address() as AddressInfo).port });
      socket.destroy();
    } finally {
      server.close();
      source.close();
    }
    assert.throws(() => source.getX509BundleForTrustDomain(EXAMPLE), (e: Error) => isSpiffeError(e, 'ERR_SOURCE_UNAVAILABLE'));
  });
});

describe('WorkloadApiClient.close() against broken peers', () => {
  test('a peer that answers garbage: close() right after the failed call does not crash the process (HTTP/2 protocol error handled)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wl-garbage-'));
    const path = join(dir, 'garbage.sock');
    const srv = net.createServer((s) => {
      s.on('error', () => undefined);
      s.write('this is not HTTP/2\r\n\r\n');
    });
    srv.listen(path);
    await once(srv, 'listening');
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown): void => void uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      for (let i = 0; i < 5; i++) {
        const c = new WorkloadApiClient({ address: `unix://${path}` });
        await assert.rejects(c.fetchX509Context());
        c.close();
        await new Promise((r) => setTimeout(r, 30));
      }
      assert.deepEqual(uncaught.map((e) => (e as Error).message), []);
    } finally {
      process.off('uncaughtException', onUncaught);
      srv.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a peer that accepts and never answers: close() ends the connection', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wl-silent-'));
    const path = join(dir, 'silent.sock');
    const ended: Promise<unknown>[] = [];
    const srv = net.createServer((s) => {
      s.on('error', () => undefined);
      s.resume(); // read, so the end of the connection is seen
      ended.push(once(s, 'close'));
    });
    srv.listen(path);
    await once(srv, 'listening');
    try {
      const c = new WorkloadApiClient({ address: `unix://${path}` });
      const call = c.fetchX509Context().catch((e: unknown) => e);
      while (ended.length === 0) await new Promise((r) => setTimeout(r, 5));
      c.close();
      await Promise.race([Promise.all(ended), new Promise((_, reject) => setTimeout(() => reject(new Error('the connection outlived close()')), 2000))]);
      assert.ok(isSpiffeError(await call) || (await call) instanceof Error, 'the pending call fails');
    } finally {
      srv.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

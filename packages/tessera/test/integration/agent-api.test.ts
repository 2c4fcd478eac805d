// The Agent API end to end: real TLS on 127.0.0.1, a real SQLite datastore,
// a real ServerCa, and a small agent client (connect-node over HTTP/2 with the
// agent SVID as client certificate).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { once } from 'node:events';
import { createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { Code, ConnectError, createClient, type Client, type HandlerContext } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { create } from '@bufbuild/protobuf';
import { TrustDomain } from '@tessera/spiffe/id';
import { SpiffeBundle, X509Bundle } from '@tessera/spiffe/bundle';
import { JwtSvid, verifyX509Svid } from '@tessera/spiffe/svid';
import { buildCertificateRequest, Certificate } from '@tessera/spiffe/x509';
import { TestCa } from '@tessera/spiffe/testing';
import { AgentApi, AttestAgentRequestSchema, type AttestAgentRequest, type AttestAgentResponse_Result, type SyncResponse } from '../../src/gen/tessera/v1/agent_pb.js';
import { CreateJoinTokenRequestSchema } from '../../src/gen/tessera/v1/admin_pb.js';
import { openDatastore, type Datastore, type RegistrationEntry } from '../../src/server/datastore/index.js';
import { MemoryCaJournal, MemoryKeyManager, ServerCa } from '../../src/server/ca/index.js';
import { serverId } from '../../src/server/registration/index.js';
import { agentAdmin, joinTokenAgentId } from '../../src/server/api/agent-admin.js';
import { signX509popChallenge, x509popAgentId } from '../../src/server/attestation/index.js';
import { startAgentApi, type AgentApiServer } from '../../src/server/agent-api/index.js';
import { requestChannel } from '../../bench/agent-client.js';

const td = TrustDomain.parse('example.org');
const dir = mkdtempSync(join(tmpdir(), 'tessera-agent-api-'));
let ds: Datastore;
let ca: ServerCa;
let api: AgentApiServer;
const nodeCa = new TestCa({ trustDomain: 'nodes.test' });
const nodeIntermediate = nodeCa.createIntermediate();

before(async () => {
  ds = await openDatastore({ kind: 'sqlite', path: join(dir, 'datastore.sqlite3') });
  ca = await ServerCa.open({ trustDomain: td, keyManager: new MemoryKeyManager(), journal: new MemoryCaJournal() });
  // What server.ts does at start: publish the CA's bundle where agents' view comes from.
  await ds.setBundle(td.name, ca.bundle().marshal());
  const caFile = join(dir, 'x509pop-ca.pem');
  writeFileSync(caFile, new X509Certificate(nodeCa.certificate).toString());
  api = await startAgentApi({ trustDomain: td, datastore: ds, ca, bindAddress: '127.0.0.1', bindPort: 0, x509popCaFile: caFile, agentSvidTtlSeconds: 1800 });
});
after(async () => {
  await api?.close();
  await ds?.close();
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- agent client

const pem = (der: Uint8Array): string => new X509Certificate(der).toString();
const newKey = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const csrFor = (key: KeyObject, uris: string[] = []): Buffer => buildCertificateRequest(key, { uris });

interface AgentCreds {
  readonly certificates: readonly Uint8Array[];
  readonly key: KeyObject;
}

/**
 * An Agent API client. Node verifies the server's chain against the bundle
 * (`ca`); hostname verification is replaced by a check of the server's SPIFFE
 * ID with the library's strict SVID verification.
 */
function agentClient(creds?: AgentCreds): Client<typeof AgentApi> {
  const roots = ca.bundle().x509Authorities();
  const bundle = new X509Bundle(td, roots);
  return createClient(
    AgentApi,
    createGrpcTransport({
      baseUrl: `https://127.0.0.1:${api.port}`,
      nodeOptions: {
        ca: roots.map(pem),
        ...(creds ? { cert: creds.certificates.map(pem).join(''), key: creds.key.export({ type: 'pkcs8', format: 'pem' }) } : {}),
        checkServerIdentity: (_host: string, cert: { raw: Buffer }) => {
          try {
            const { id } = verifyX509Svid([cert.raw], bundle);
            return id.toString() === serverId(td.name) ? undefined : new Error(`unexpected server ID ${id.toString()}`);
          } catch (e) {
            return e as Error;
          }
        },
      },
    }),
  );
}

interface Attested extends AgentCreds {
  readonly result: AttestAgentResponse_Result;
}

/** Runs AttestAgent; answers an x509pop challenge with `answer(nonce)`. */
async function attest(type: string, payload: Uint8Array, opts: { answer?: (nonce: Uint8Array) => Uint8Array; csr?: Uint8Array; key?: KeyObject } = {}): Promise<Attested> {
  const key = opts.key ?? newKey();
  const reqs = requestChannel<AttestAgentRequest>();
  reqs.push(create(AttestAgentRequestSchema, { step: { case: 'params', value: { data: { type, payload }, csr: opts.csr ?? csrFor(key) } } }));
  try {
    for await (const res of agentClient().attestAgent(reqs)) {
      if (res.step.case === 'challenge') {
        assert.ok(opts.answer, 'unexpected challenge');
        assert.equal(res.step.value.length, 32);
        reqs.push(create(AttestAgentRequestSchema, { step: { case: 'challengeResponse', value: opts.answer(res.step.value) } }));
      } else if (res.step.case === 'result') {
        return { result: res.step.value, certificates: res.step.value.svid, key };
      }
    }
  } finally {
    reqs.end();
  }
  throw new Error('AttestAgent ended without a result');
}

const adminCtx = {} as HandlerContext;
const admin = () => agentAdmin(ds, { trustDomain: td, joinTokenTtlSeconds: 600, now: () => new Date() });
async function joinToken(agentAlias?: string): Promise<string> {
  const t = await admin().createJoinToken(create(CreateJoinTokenRequestSchema, agentAlias ? { agentAlias } : {}), adminCtx);
  assert.ok(t.value);
  return t.value;
}
async function attestWithToken(agentAlias?: string): Promise<Attested & { token: string }> {
  const token = await joinToken(agentAlias);
  return { ...(await attest('join_token', Buffer.from(token))), token };
}

async function rejection(p: Promise<unknown> | AsyncIterable<unknown>): Promise<ConnectError> {
  try {
    if (Symbol.asyncIterator in (p as object)) {
      for await (const _ of p as AsyncIterable<unknown>) void _;
    } else {
      await p;
    }
  } catch (e) {
    assert.ok(e instanceof ConnectError, `expected a ConnectError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected the call to fail');
}

const serialOf = (der: Uint8Array): string => new Certificate(der).serialHex;

/** Reads a Sync stream in the background, assembling updates (messages up to `more = false`). */
function syncReader(client: Client<typeof AgentApi>) {
  const abort = new AbortController();
  const updates: { at: number; msgs: SyncResponse[] }[] = [];
  let taken = 0;
  let error: unknown;
  let ended = false;
  let wake: (() => void) | undefined;
  void (async () => {
    let cur: SyncResponse[] = [];
    try {
      for await (const m of client.sync({}, { signal: abort.signal })) {
        cur.push(m);
        if (!m.more) {
          updates.push({ at: performance.now(), msgs: cur });
          cur = [];
          wake?.();
        }
      }
    } catch (e) {
      error = e;
    }
    ended = true;
    wake?.();
  })();
  const waitFor = async (cond: () => boolean, timeoutMs: number, what: string): Promise<void> => {
    const deadline = performance.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - performance.now();
      if (left <= 0) assert.fail(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, left).unref();
      });
    }
  };
  return {
    /** The next update, flattened. */
    async next(timeoutMs = 3000) {
      await waitFor(() => updates.length > taken || ended, timeoutMs, 'a Sync update');
      if (updates.length <= taken) throw error ?? new Error('stream ended');
      const u = updates[taken++]!;
      return {
        at: u.at,
        messages: u.msgs.length,
        full: u.msgs[0]!.full,
        revision: u.msgs[0]!.revision,
        entries: u.msgs.flatMap((m) => m.upsertedEntries),
        removed: u.msgs.flatMap((m) => m.removedEntryIds),
        bundles: u.msgs.flatMap((m) => m.upsertedBundles),
        removedBundles: u.msgs.flatMap((m) => m.removedBundles),
      };
    },
    async ended(timeoutMs = 3000): Promise<unknown> {
      await waitFor(() => ended, timeoutMs, 'the Sync stream to end');
      return error;
    },
    pending: () => updates.length - taken,
    close: () => abort.abort(),
  };
}

const entry = (spiffePath: string, parentId: string, extra: Partial<Parameters<Datastore['createEntry']>[0]> = {}): Promise<RegistrationEntry> =>
  ds.createEntry({ spiffeId: `spiffe://${td.name}${spiffePath}`, parentId, selectors: [{ type: 'unix', value: `uid:${Math.floor(Math.random() * 1e9)}` }], ...extra });

// ---------------------------------------------------------------- attestation

test('join_token: attestation yields a verifiable agent SVID; the token is one-time; expired tokens are refused', async () => {
  const a = await attestWithToken();
  const agentId = joinTokenAgentId(td, a.token);
  assert.equal(a.result.spiffeId, agentId);
  const { id } = verifyX509Svid(a.certificates, ca.bundle());
  assert.equal(id.toString(), agentId);
  assert.equal(a.result.bundle?.trustDomain, td.name);
  assert.deepEqual(a.result.bundle?.x509Authorities.map((d) => Buffer.from(d).toString('hex')), ca.bundle().x509Authorities().map((d) => d.toString('hex')));
  const lifetime = Number(a.result.expiresAt) - Math.floor(Date.now() / 1000);
  assert.ok(lifetime > 1700 && lifetime <= 1800, `agent SVID TTL from deps (1800 s), got ${lifetime}`);
  const record = await ds.getAgent(agentId);
  assert.ok(record);
  assert.equal(record.attestationType, 'join_token');
  assert.equal(record.certSerial, serialOf(a.certificates[0]!));
  assert.equal(record.certExpiresAt, Number(a.result.expiresAt));
  assert.equal(record.canReattest, false);
  assert.deepEqual(record.selectors, [{ type: 'join_token', value: a.token }]);

  const reuse = await rejection(attest('join_token', Buffer.from(a.token)));
  assert.equal(reuse.code, Code.PermissionDenied);
  assert.match(reuse.rawMessage, /does not exist or has already been used/);

  await ds.createJoinToken({ token: 'expired-token-1', expiresAt: Math.floor(Date.now() / 1000) - 5 });
  const expired = await rejection(attest('join_token', Buffer.from('expired-token-1')));
  assert.equal(expired.code, Code.PermissionDenied);
  assert.match(expired.rawMessage, /expired/);

  // A token re-created with the same value after use cannot re-attest its agent (join_token never re-attests).
  await admin().createJoinToken(create(CreateJoinTokenRequestSchema, { token: a.token }), adminCtx);
  const again = await rejection(attest('join_token', Buffer.from(a.token)));
  assert.equal(again.code, Code.PermissionDenied);
  assert.match(again.rawMessage, /already attested/);
});

test('attestation bad input: garbage CSR (token kept), CSR for another ID, unknown type, malformed token → InvalidArgument', async () => {
  const token = await joinToken();
  const garbage = await rejection(attest('join_token', Buffer.from(token), { csr: Buffer.from('not a CSR at all') }));
  assert.equal(garbage.code, Code.InvalidArgument);
  assert.match(garbage.rawMessage, /invalid CSR/);
  const key = newKey();
  const wrongId = await rejection(attest('join_token', Buffer.from(token), { key, csr: csrFor(key, [`spiffe://${td.name}/not-me`]) }));
  assert.equal(wrongId.code, Code.InvalidArgument);
  assert.match(wrongId.rawMessage, /attests as/);
  const unknown = await rejection(attest('tpm', Buffer.from('x')));
  assert.equal(unknown.code, Code.InvalidArgument);
  assert.match(unknown.rawMessage, /not enabled/);
  const badToken = await rejection(attest('join_token', Buffer.from('bad token/../x')));
  assert.equal(badToken.code, Code.InvalidArgument);
  // Out-of-order and missing messages.
  const outOfOrder = requestChannel<AttestAgentRequest>();
  outOfOrder.push(create(AttestAgentRequestSchema, { step: { case: 'challengeResponse', value: new Uint8Array([1]) } }));
  outOfOrder.end();
  const oo = await rejection(agentClient().attestAgent(outOfOrder));
  assert.equal(oo.code, Code.InvalidArgument);
  assert.match(oo.rawMessage, /first AttestAgent message must carry "params"/);
  const empty = requestChannel<AttestAgentRequest>();
  empty.end();
  assert.equal((await rejection(agentClient().attestAgent(empty))).code, Code.InvalidArgument);
  // x509pop: the stream ends instead of answering the challenge.
  const node = nodeCa.createCertificate(undefined, { subjectCommonName: 'quitter' });
  const quitter = requestChannel<AttestAgentRequest>();
  quitter.push(create(AttestAgentRequestSchema, { step: { case: 'params', value: { data: { type: 'x509pop', payload: node.certificates[0]! }, csr: csrFor(newKey()) } } }));
  const q = agentClient().attestAgent(quitter);
  const err = await rejection(
    (async function* () {
      for await (const m of q) {
        assert.equal(m.step.case, 'challenge');
        quitter.end();
        yield m;
      }
    })(),
  );
  assert.equal(err.code, Code.InvalidArgument);
  assert.match(err.rawMessage, /ended before the challenge response/);
  // The garbage CSR did not burn the token... but the CSR-for-another-ID did (it is checked once the ID is known).
  const fresh = await joinToken();
  const ok = await attest('join_token', Buffer.from(fresh), { key, csr: csrFor(key, [joinTokenAgentId(td, fresh)]) });
  assert.equal(ok.result.spiffeId, joinTokenAgentId(td, fresh));
});

test('x509pop: node certificate chaining to the configured CA, proof of possession, selectors, re-attestation', async () => {
  const node = nodeIntermediate.createCertificate(undefined, { subjectCommonName: 'node-1', dnsNames: ['node-1.example', 'n1.example'] });
  const payload = Buffer.concat(node.certificates);
  const a = await attest('x509pop', payload, { answer: (n) => signX509popChallenge(node.privateKey, n) });
  const agentId = x509popAgentId(td, node.certificates[0]!);
  assert.match(agentId, /^spiffe:\/\/example\.org\/tessera\/agent\/x509pop\/[0-9a-f]{40}$/);
  assert.equal(a.result.spiffeId, agentId);
  assert.equal(a.result.reattested, false);
  assert.equal(verifyX509Svid(a.certificates, ca.bundle()).id.toString(), agentId);
  const record = (await ds.getAgent(agentId))!;
  assert.equal(record.attestationType, 'x509pop');
  assert.equal(record.canReattest, true);
  const sha1 = (der: Uint8Array) => new X509Certificate(der).fingerprint.replaceAll(':', '').toLowerCase();
  const values = record.selectors.map((s) => `${s.type}:${s.value}`);
  for (const want of [
    'x509pop:subject:cn:node-1',
    'x509pop:san:dns:node-1.example',
    'x509pop:san:dns:n1.example',
    `x509pop:ca:fingerprint:${sha1(nodeCa.certificate)}`,
    `x509pop:ca:fingerprint:${sha1(nodeIntermediate.certificate)}`,
    `x509pop:serialnumber:${serialOf(node.certificates[0]!)}`,
  ]) {
    assert.ok(values.includes(want), `missing selector ${want} in ${values.join(', ')}`);
  }

  // Same node again: re-attestation of a non-banned x509pop agent is allowed and issues a new SVID.
  const b = await attest('x509pop', payload, { answer: (n) => signX509popChallenge(node.privateKey, n) });
  assert.equal(b.result.reattested, true);
  assert.equal((await ds.getAgent(agentId))!.certSerial, serialOf(b.certificates[0]!));

  // Wrong proof: signed with another key; a signature over the bare nonce (no context string).
  const wrong = await rejection(attest('x509pop', payload, { answer: (n) => signX509popChallenge(newKey(), n) }));
  assert.equal(wrong.code, Code.PermissionDenied);
  assert.match(wrong.rawMessage, /proof of possession failed/);
  const { sign } = await import('node:crypto');
  const bare = await rejection(attest('x509pop', payload, { answer: (n) => sign('sha256', n, node.privateKey) }));
  assert.equal(bare.code, Code.PermissionDenied);

  // A node certificate from another CA, and one whose intermediate is missing.
  const stranger = new TestCa({ trustDomain: 'nodes.test' }).createCertificate(undefined, { subjectCommonName: 'node-x' });
  const other = await rejection(attest('x509pop', Buffer.concat(stranger.certificates), { answer: (n) => signX509popChallenge(stranger.privateKey, n) }));
  assert.equal(other.code, Code.PermissionDenied);
  assert.match(other.rawMessage, /does not chain to a configured x509pop CA/);
  const noIntermediate = await rejection(attest('x509pop', node.certificates[0]!, { answer: (n) => signX509popChallenge(node.privateKey, n) }));
  assert.equal(noIntermediate.code, Code.PermissionDenied);

  // A banned x509pop agent cannot come back by re-attesting.
  await ds.banAgent(agentId);
  const banned = await rejection(attest('x509pop', payload, { answer: (n) => signX509popChallenge(node.privateKey, n) }));
  assert.equal(banned.code, Code.PermissionDenied);
  assert.match(banned.rawMessage, /banned/);
});

// ---------------------------------------------------------------- authentication

test('authentication: no certificate → Unauthenticated; foreign CA → Unauthenticated; non-agent SVID → PermissionDenied', async () => {
  const anon = await rejection(agentClient().sync({}));
  assert.equal(anon.code, Code.Unauthenticated);
  assert.match(anon.rawMessage, /no client certificate/);
  assert.equal((await rejection(agentClient().getBundle({}))).code, Code.Unauthenticated);

  const impostorCa = new TestCa({ trustDomain: td });
  const fake = impostorCa.createX509Svid(`spiffe://${td.name}/tessera/agent/join_token/fake`);
  const foreign = await rejection(agentClient({ certificates: fake.certificates, key: fake.privateKey }).getBundle({}));
  assert.equal(foreign.code, Code.Unauthenticated);

  const key = newKey();
  const workload = await ca.signX509Svid({ spiffeId: `spiffe://${td.name}/workload`, csr: csrFor(key) });
  const notAgent = await rejection(agentClient({ certificates: workload.certificates, key }).getBundle({}));
  assert.equal(notAgent.code, Code.PermissionDenied);
  assert.match(notAgent.rawMessage, /is not an agent/);

  // An agent ID the CA signed but that never attested (no record).
  const ghost = await ca.signX509Svid({ spiffeId: `spiffe://${td.name}/tessera/agent/join_token/ghost`, csr: csrFor(key) });
  assert.equal((await rejection(agentClient({ certificates: ghost.certificates, key }).getBundle({}))).code, Code.PermissionDenied);
});

test('renew: new serial; old SVID works until the new one is used, then is refused', async () => {
  const a = await attestWithToken();
  const agentId = a.result.spiffeId;
  const oldClient = agentClient(a);
  const key = newKey();
  const renewed = await oldClient.renewAgent({ csr: csrFor(key) });
  const fresh = { certificates: renewed.svid, key };
  assert.equal(verifyX509Svid(renewed.svid, ca.bundle()).id.toString(), agentId);
  const newSerial = serialOf(renewed.svid[0]!);
  assert.notEqual(newSerial, serialOf(a.certificates[0]!));
  let record = (await ds.getAgent(agentId))!;
  assert.equal(record.certSerial, serialOf(a.certificates[0]!));
  assert.equal(record.newCertSerial, newSerial);
  assert.equal(record.newCertExpiresAt, Number(renewed.expiresAt));

  // Not used yet: the old SVID still works.
  assert.equal((await agentClient(a).getBundle({})).trustDomain, td.name);
  // First use of the new one makes it current...
  assert.equal((await agentClient(fresh).getBundle({})).trustDomain, td.name);
  record = (await ds.getAgent(agentId))!;
  assert.equal(record.certSerial, newSerial);
  assert.equal(record.newCertSerial, '');
  // ...and the old one is refused from then on.
  const stale = await rejection(agentClient(a).getBundle({}));
  assert.equal(stale.code, Code.PermissionDenied);
  assert.match(stale.rawMessage, /superseded/);

  // A renewal CSR for another ID is refused.
  const other = await rejection(agentClient(fresh).renewAgent({ csr: csrFor(key, [`spiffe://${td.name}/tessera/agent/join_token/someone-else`]) }));
  assert.equal(other.code, Code.InvalidArgument);
  assert.equal((await rejection(agentClient(fresh).renewAgent({ csr: new Uint8Array() }))).code, Code.InvalidArgument);
});

test('banned and evicted agents can no longer renew, sync or sign; an open Sync stream is ended', async () => {
  const a = await attestWithToken();
  const e = await entry('/banned/workload', a.result.spiffeId);
  const reader = syncReader(agentClient(a));
  assert.deepEqual((await reader.next()).entries.map((x) => x.id), [e.id]);
  await ds.banAgent(a.result.spiffeId);
  const ended = (await reader.ended()) as ConnectError;
  assert.ok(ended instanceof ConnectError);
  assert.equal(ended.code, Code.PermissionDenied);
  const c = agentClient(a);
  const calls = [() => c.sync({}), () => c.renewAgent({ csr: csrFor(a.key) }), () => c.batchNewX509Svid({ params: [{ entryId: e.id, csr: csrFor(newKey()) }] }), () => c.newJwtSvid({ entryId: e.id, audience: ['x'] })];
  for (const call of calls) {
    const err = await rejection(call());
    assert.equal(err.code, Code.PermissionDenied);
    assert.match(err.rawMessage, /banned/);
  }

  const b = await attestWithToken();
  const readerB = syncReader(agentClient(b));
  await readerB.next();
  await ds.deleteAgent(b.result.spiffeId);
  assert.equal(((await readerB.ended()) as ConnectError).code, Code.PermissionDenied);
  const evicted = await rejection(agentClient(b).renewAgent({ csr: csrFor(b.key) }));
  assert.equal(evicted.code, Code.PermissionDenied);
  assert.match(evicted.rawMessage, /not attested/);
});

// ---------------------------------------------------------------- Sync

test('Sync: snapshot via parent, node alias and descendants; deltas for create, update, delete and bundles; push latency', async (t) => {
  const alias = `spiffe://${td.name}/node/sync-alias`;
  const a = await attestWithToken(alias);
  const agentId = a.result.spiffeId;
  const direct = await entry('/sync/direct', agentId);
  const viaAlias = await entry('/sync/via-alias', alias);
  const child = await entry('/sync/child-of-direct', direct.spiffeId);
  const grandchild = await entry('/sync/grandchild', child.spiffeId);
  await entry('/sync/unrelated', `spiffe://${td.name}/tessera/agent/join_token/someone-else`);
  await entry('/sync/expired', agentId, { expiresAt: Math.floor(Date.now() / 1000) - 10 });
  const aliasEntry = (await ds.listEntries({ parentId: serverId(td.name) })).items.find((x) => x.spiffeId === alias)!;

  const reader = syncReader(agentClient(a));
  const first = await reader.next();
  assert.equal(first.full, true);
  assert.deepEqual(first.entries.map((x) => x.id).sort(), [aliasEntry.id, direct.id, viaAlias.id, child.id, grandchild.id].sort());
  assert.deepEqual(first.bundles.map((b) => b.trustDomain), [td.name]);
  assert.ok(first.revision > 0n);

  // Create → delta, measured from the commit to the agent's receipt.
  const latencies: number[] = [];
  let last = first.revision;
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    const e = await entry(`/sync/new-${i}`, agentId);
    const u = await reader.next(1000);
    latencies.push(u.at - t0);
    assert.equal(u.full, false);
    assert.deepEqual(u.entries.map((x) => x.id), [e.id]);
    assert.deepEqual(u.removed, []);
    assert.ok(u.revision > last);
    last = u.revision;
  }
  latencies.sort((x, y) => x - y);
  const p50 = latencies[10]!;
  const max = latencies.at(-1)!;
  t.diagnostic(`entry create → agent receives: p50 ${p50.toFixed(1)} ms, max ${max.toFixed(1)} ms (20 creates)`);
  assert.ok(max < 1000, `push latency must be well under 1 s, got ${max} ms`);

  // An unrelated entry wakes nobody: the next update is the one that concerns the agent.
  await entry('/sync/unrelated-2', `spiffe://${td.name}/tessera/agent/join_token/nobody`);
  const upd = await ds.updateEntry(child.id, { dnsNames: ['child.example'] });
  let u = await reader.next();
  assert.deepEqual(u.entries.map((x) => [x.id, x.dnsNames, x.revisionNumber]), [[child.id, ['child.example'], BigInt(upd.revisionNumber)]]);

  // Delete → removal pushed; the descendants of a deleted entry go too.
  await ds.deleteEntry(direct.id);
  u = await reader.next();
  assert.deepEqual(u.removed.sort(), [direct.id, child.id, grandchild.id].sort());
  assert.deepEqual(u.entries, []);

  // Federated bundle: delivered when an entitled entry federates with it, updated, then dropped.
  const fed = new TestCa({ trustDomain: 'partner.test' });
  await ds.setBundle('partner.test', SpiffeBundle.fromX509Bundle(fed.x509Bundle()).marshal());
  const federating = await entry('/sync/federating', agentId, { federatesWith: ['partner.test'] });
  u = await reader.next();
  assert.deepEqual(u.entries.map((x) => x.id), [federating.id]);
  assert.deepEqual(u.bundles.map((b) => b.trustDomain), ['partner.test']);
  const fed2 = new TestCa({ trustDomain: 'partner.test' });
  await ds.setBundle('partner.test', SpiffeBundle.fromX509Bundle(fed2.x509Bundle()).marshal());
  u = await reader.next();
  assert.deepEqual(u.entries, []);
  assert.equal(u.bundles.length, 1);
  assert.deepEqual(u.bundles[0]!.x509Authorities.map((d) => Buffer.from(d).toString('hex')), [fed2.certificate.toString('hex')]);
  await ds.deleteEntry(federating.id);
  u = await reader.next();
  assert.deepEqual(u.removed, [federating.id]);
  assert.deepEqual(u.removedBundles, ['partner.test']);

  // The alias stops matching (its entry deleted): alias-parented entries go away.
  await ds.deleteEntry(aliasEntry.id);
  u = await reader.next();
  assert.deepEqual(u.removed.sort(), [aliasEntry.id, viaAlias.id].sort());
  reader.close();
});

test('Sync: an initial snapshot of 10,000 entries is chunked and fast', async (t) => {
  const a = await attestWithToken();
  const inputs = Array.from({ length: 10_000 }, (_, i) => ({
    spiffeId: `spiffe://${td.name}/bulk/w${i}`,
    parentId: a.result.spiffeId,
    selectors: [{ type: 'unix', value: `uid:${i}` }],
  }));
  let t0 = performance.now();
  await ds.createEntries(inputs);
  t.diagnostic(`createEntries(10,000): ${(performance.now() - t0).toFixed(0)} ms`);
  t0 = performance.now();
  const target = await ds.currentRevision();
  while (api.syncRevision() < target) await new Promise((r) => setTimeout(r, 5));
  t.diagnostic(`hub applied the 10,000 changes: ${(performance.now() - t0).toFixed(0)} ms`);
  t0 = performance.now();
  const reader = syncReader(agentClient(a));
  const first = await reader.next(10_000);
  const ms = performance.now() - t0;
  t.diagnostic(`initial Sync of ${first.entries.length} entries: ${ms.toFixed(0)} ms in ${first.messages} messages`);
  assert.equal(first.entries.length, 10_000);
  assert.equal(first.messages, 10);
  assert.equal(first.full, true);
  // A change next to 10,000 entries is still a one-entry delta.
  const t1 = performance.now();
  const e = await entry('/bulk/extra', a.result.spiffeId);
  const u = await reader.next();
  t.diagnostic(`delta next to 10,000 entries: ${(u.at - t1).toFixed(1)} ms`);
  assert.deepEqual(u.entries.map((x) => x.id), [e.id]);
  reader.close();
});

// ---------------------------------------------------------------- signing

test('BatchNewX509Svid: entitled entries only, exact URI SAN, valid CSR; JWT-SVIDs for entitled entries', async () => {
  const a = await attestWithToken();
  const c = agentClient(a);
  const web = await entry('/sign/web', a.result.spiffeId, { dnsNames: ['web.example', 'www.example'], x509SvidTtl: 600 });
  const nested = await entry('/sign/nested', web.spiffeId);
  const foreignEntry = await entry('/sign/not-mine', `spiffe://${td.name}/tessera/agent/join_token/other`);
  const k1 = newKey();
  const k2 = newKey();
  const res = await c.batchNewX509Svid({
    params: [
      { entryId: web.id, csr: csrFor(k1) },
      { entryId: nested.id, csr: csrFor(k2, [nested.spiffeId]) },
      { entryId: foreignEntry.id, csr: csrFor(newKey()) },
      { entryId: web.id, csr: csrFor(newKey(), [`spiffe://${td.name}/sign/other`]) },
      { entryId: web.id, csr: Buffer.from('garbage') },
      { entryId: 'no-such-entry', csr: csrFor(newKey()) },
      { entryId: '', csr: csrFor(newKey()) },
    ],
  });
  const codes = res.results.map((r) => r.status?.code);
  assert.deepEqual(codes, [0, 0, Code.PermissionDenied, Code.InvalidArgument, Code.InvalidArgument, Code.PermissionDenied, Code.InvalidArgument]);
  assert.match(res.results[2]!.status!.message, /not entitled/);
  assert.match(res.results[3]!.status!.message, /URI SAN/);
  assert.match(res.results[4]!.status!.message, /CSR/);

  const svid = res.results[0]!;
  const v = verifyX509Svid(svid.svid, ca.bundle());
  assert.equal(v.id.toString(), web.spiffeId);
  assert.equal(svid.spiffeId, web.spiffeId);
  const leaf = new Certificate(svid.svid[0]!);
  assert.deepEqual(leaf.subjectAltNames.dnsNames, ['web.example', 'www.example']);
  const ttl = (leaf.notAfter.getTime() - Date.now()) / 1000;
  assert.ok(ttl > 590 && ttl <= 600, `entry x509SvidTtl honoured, got ${ttl}`);
  assert.ok(leaf.publicKey.equals(createPublicKey(k1)), 'the certificate is for the key of the CSR');
  assert.equal(verifyX509Svid(res.results[1]!.svid, ca.bundle()).id.toString(), nested.spiffeId);

  // An entry created a moment ago is signable at once (the index catches up).
  const justNow = await entry('/sign/just-now', a.result.spiffeId);
  const r2 = await c.batchNewX509Svid({ params: [{ entryId: justNow.id, csr: csrFor(newKey()) }] });
  assert.equal(r2.results[0]!.status!.code, 0);

  assert.equal((await rejection(c.batchNewX509Svid({ params: [] }))).code, Code.InvalidArgument);
  const tooMany = await rejection(c.batchNewX509Svid({ params: Array.from({ length: 501 }, () => ({ entryId: web.id, csr: new Uint8Array([1]) })) }));
  assert.equal(tooMany.code, Code.InvalidArgument);

  // JWT-SVIDs.
  const jwt = await c.newJwtSvid({ entryId: web.id, audience: ['reports', 'billing'] });
  const parsed = JwtSvid.parseAndValidate(jwt.token, ca.bundle(), 'reports');
  assert.equal(parsed.id.toString(), web.spiffeId);
  assert.deepEqual([...parsed.audience], ['reports', 'billing']);
  assert.equal(jwt.spiffeId, web.spiffeId);
  assert.equal(BigInt(Math.floor(parsed.expiresAt.getTime() / 1000)), jwt.expiresAt);
  assert.equal((await rejection(c.newJwtSvid({ entryId: web.id, audience: [] }))).code, Code.InvalidArgument);
  assert.equal((await rejection(c.newJwtSvid({ entryId: foreignEntry.id, audience: ['x'] }))).code, Code.PermissionDenied);
  assert.equal((await rejection(c.newJwtSvid({ entryId: '', audience: ['x'] }))).code, Code.InvalidArgument);

  // GetBundle.
  const b = await c.getBundle({});
  assert.equal(b.trustDomain, td.name);
  assert.deepEqual(b.x509Authorities.map((d) => Buffer.from(d).toString('hex')), ca.bundle().x509Authorities().map((d) => d.toString('hex')));
});

// ---------------------------------------------------------------- transport

test('transport: server SVID rotation, oversize requests, garbage on the port', async () => {
  const a = await attestWithToken();
  const before = api.serverSvid();
  assert.equal(before.id.toString(), serverId(td.name));
  await api.rotateServerSvid();
  const rotated = api.serverSvid();
  assert.notEqual(serialOf(rotated.certificates[0]!), serialOf(before.certificates[0]!));
  // A new connection sees the new certificate and is still asked for its client certificate.
  const socket = tlsConnect({ host: '127.0.0.1', port: api.port, ALPNProtocols: ['h2'], rejectUnauthorized: false, cert: a.certificates.map(pem).join(''), key: a.key.export({ type: 'pkcs8', format: 'pem' }) });
  await once(socket, 'secureConnect');
  assert.equal(serialOf(socket.getPeerCertificate().raw), serialOf(rotated.certificates[0]!));
  socket.destroy();
  assert.equal((await agentClient(a).getBundle({})).trustDomain, td.name);

  const big = await rejection(agentClient(a).batchNewX509Svid({ params: [{ entryId: 'x', csr: new Uint8Array(2 * 1024 * 1024) }] }));
  assert.equal(big.code, Code.ResourceExhausted);

  const raw = tlsConnect({ host: '127.0.0.1', port: api.port, rejectUnauthorized: false });
  raw.on('error', () => undefined);
  await once(raw, 'secureConnect');
  raw.write(Buffer.from('GET / HTTP/1.1\r\n\r\n\x00\xff garbage'));
  raw.resume();
  await once(raw, 'close');
  const plain = (await import('node:net')).connect(api.port, '127.0.0.1');
  plain.on('error', () => undefined);
  await once(plain, 'connect');
  plain.write(Buffer.from('\x16\x03\x01\x00\x05hello garbage'));
  plain.resume();
  await once(plain, 'close');
  assert.equal((await agentClient(a).getBundle({})).trustDomain, td.name);
});

test('BatchNewX509Svid, a large mixed batch: every good CSR signed for its own key, every bad one refused with its own reason', async () => {
  const a = await attestWithToken();
  const c = agentClient(a);
  const web = await entry('/pool/web', a.result.spiffeId, { dnsNames: ['pool.example'] });
  const foreignEntry = await entry('/pool/not-mine', `spiffe://${td.name}/tessera/agent/join_token/other`);
  const forged = Buffer.from(csrFor(newKey(), [web.spiffeId]));
  forged[forged.length - 3]! ^= 0xff;
  const cases: { csr: Uint8Array; entryId?: string; code: number; message?: RegExp }[] = [
    { csr: Buffer.from('garbage'), code: Code.InvalidArgument, message: /^invalid CSR: malformed certificate request:/ },
    { csr: forged, code: Code.InvalidArgument, message: /signature does not verify/ },
    { csr: csrFor(generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey), code: Code.InvalidArgument, message: /unsupported certificate request key/ },
    { csr: csrFor(newKey(), [`spiffe://${td.name}/pool/other`]), code: Code.InvalidArgument, message: /URI SAN/ },
    { csr: csrFor(newKey()), entryId: foreignEntry.id, code: Code.PermissionDenied, message: /not entitled/ },
    { csr: csrFor(newKey()), entryId: '', code: Code.InvalidArgument, message: /entry_id is required/ },
  ];
  const keys: KeyObject[] = [];
  const params: { entryId: string; csr: Uint8Array }[] = [];
  const expected: { code: number; message?: RegExp; key?: KeyObject }[] = [];
  for (let i = 0; i < 60; i++) {
    const bad = i % 5 === 2 ? cases[(i / 5) % cases.length | 0] : undefined;
    if (bad) {
      params.push({ entryId: bad.entryId ?? web.id, csr: bad.csr });
      expected.push({ code: bad.code, ...(bad.message ? { message: bad.message } : {}) });
    } else {
      const k = newKey();
      keys.push(k);
      params.push({ entryId: web.id, csr: csrFor(k, i % 2 === 0 ? [web.spiffeId] : []) });
      expected.push({ code: 0, key: k });
    }
  }
  const res = await c.batchNewX509Svid({ params });
  assert.equal(res.results.length, params.length);
  res.results.forEach((r, i) => {
    const want = expected[i]!;
    assert.equal(r.status?.code, want.code, `result ${i}: ${r.status?.message}`);
    if (want.message) assert.match(r.status!.message, want.message, `result ${i}`);
    if (want.key) {
      assert.equal(r.entryId, web.id);
      assert.equal(verifyX509Svid(r.svid, ca.bundle()).id.toString(), web.spiffeId);
      const leaf = new Certificate(r.svid[0]!);
      assert.ok(leaf.publicKey.equals(createPublicKey(want.key)), `result ${i}: the certificate is for the key of its own CSR`);
      assert.deepEqual(leaf.subjectAltNames.dnsNames, ['pool.example']);
    }
  });
  assert.equal(res.results.filter((r) => r.status?.code === 0).length, 48);
});

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sign, X509Certificate } from 'node:crypto';
import { TrustDomain } from '@tessera/spiffe/id';
import { TestCa, generateKey } from '@tessera/spiffe/testing';
import { KeyUsage } from '@tessera/spiffe/x509';
import { DatastoreError, type JoinToken } from '../../src/server/datastore/index.js';
import {
  AttestationError,
  JoinTokenAttestor,
  X509PopAttestor,
  signX509popChallenge,
  x509popAgentId,
  x509popSignedData,
  type AttestationStep,
  type AttestationResult,
} from '../../src/server/attestation/index.js';

const td = TrustDomain.parse('example.org');
const nodeCa = new TestCa({ trustDomain: 'nodes.test' });
const intermediate = nodeCa.createIntermediate();
const NONCE = Buffer.alloc(32, 7);

function attestor(options: { now?: () => Date } = {}): X509PopAttestor {
  return new X509PopAttestor({ trustDomain: td, caCertificates: [nodeCa.certificate], randomBytes: () => Buffer.from(NONCE), ...options });
}

function isError(code: AttestationError['code'], re: RegExp) {
  return (e: unknown) => e instanceof AttestationError && e.code === code && re.test(e.message);
}

async function finish(step: AttestationStep, answer: (nonce: Buffer) => Uint8Array): Promise<AttestationResult> {
  assert.equal(step.kind, 'challenge');
  if (step.kind !== 'challenge') throw new Error('unreachable');
  assert.deepEqual(step.challenge, NONCE);
  const done = await step.respond(answer(step.challenge));
  assert.equal(done.kind, 'done');
  if (done.kind !== 'done') throw new Error('unreachable');
  return done.result;
}

describe('x509pop', () => {
  test('a chain through an intermediate: agent ID, selectors, re-attestable', async () => {
    const node = intermediate.createCertificate(undefined, { subjectCommonName: 'worker-7', dnsNames: ['worker-7.lan'] });
    const r = await finish(await attestor().begin(Buffer.concat(node.certificates)), (n) => signX509popChallenge(node.privateKey, n));
    assert.equal(r.agentId, x509popAgentId(td, node.certificates[0]!));
    assert.equal(r.agentId, `spiffe://example.org/tessera/agent/x509pop/${new X509Certificate(node.certificates[0]!).fingerprint.replaceAll(':', '').toLowerCase()}`);
    assert.equal(r.attestationType, 'x509pop');
    assert.equal(r.canReattest, true);
    const values = r.selectors.map((s) => `${s.type}:${s.value}`);
    assert.equal(values[0], 'x509pop:subject:cn:worker-7');
    assert.equal(values.filter((v) => v.startsWith('x509pop:ca:fingerprint:')).length, 2, 'intermediate and root');
    assert.ok(values.includes('x509pop:san:dns:worker-7.lan'));
  });

  for (const keyType of ['rsa-2048', 'ed25519', 'ec-p384'] as const) {
    test(`proof of possession with a ${keyType} node key`, async () => {
      const node = nodeCa.createCertificate(undefined, { keyType, subjectCommonName: 'n' });
      const r = await finish(await attestor().begin(node.certificates[0]!), (n) => signX509popChallenge(node.privateKey, n));
      assert.equal(r.agentId, x509popAgentId(td, node.certificates[0]!));
    });
  }

  test('wrong proofs are denied; malformed answers are invalid', async () => {
    const node = nodeCa.createCertificate(undefined, { subjectCommonName: 'n' });
    const step = await attestor().begin(node.certificates[0]!);
    assert.equal(step.kind, 'challenge');
    if (step.kind !== 'challenge') return;
    await assert.rejects(step.respond(signX509popChallenge(generateKey(), NONCE)), isError('ATTESTATION_DENIED', /proof of possession failed/));
    await assert.rejects(step.respond(sign('sha256', NONCE, node.privateKey)), isError('ATTESTATION_DENIED', /proof of possession/), 'the bare nonce (no context string)');
    await assert.rejects(step.respond(signX509popChallenge(node.privateKey, Buffer.alloc(32, 8))), isError('ATTESTATION_DENIED', /proof of possession/), 'another nonce');
    await assert.rejects(step.respond(new Uint8Array()), isError('ATTESTATION_INVALID', /signature/));
    await assert.rejects(step.respond(new Uint8Array(4096)), isError('ATTESTATION_INVALID', /signature/));
    assert.ok(x509popSignedData(NONCE).subarray(0, 28).toString('latin1').startsWith('tessera-x509pop-challenge-v1'));
  });

  test('untrusted, incomplete, CA-as-leaf, no digitalSignature, expired, not yet valid', async () => {
    const a = attestor();
    const stranger = new TestCa({ trustDomain: 'nodes.test' }).createCertificate(undefined, { subjectCommonName: 'x' });
    assert.throws(() => a.verifyChain(stranger.certificates[0]!), isError('ATTESTATION_DENIED', /does not chain/));
    const viaIntermediate = intermediate.createCertificate(undefined, {});
    assert.throws(() => a.verifyChain(viaIntermediate.certificates[0]!), isError('ATTESTATION_DENIED', /does not chain/), 'intermediate not sent');
    const badIntermediate = nodeCa.createIntermediate({ caFlag: false }).createCertificate(undefined, {});
    assert.throws(() => a.verifyChain(Buffer.concat(badIntermediate.certificates)), isError('ATTESTATION_DENIED', /does not chain/), 'intermediate with CA=false');
    assert.throws(() => a.verifyChain(nodeCa.createCertificate(undefined, { ca: true }).certificates[0]!), isError('ATTESTATION_DENIED', /CA certificate/));
    assert.throws(() => a.verifyChain(nodeCa.createCertificate(undefined, { keyUsage: KeyUsage.keyEncipherment }).certificates[0]!), isError('ATTESTATION_DENIED', /digitalSignature/));
    const now = Date.now();
    const expired = nodeCa.createCertificate(undefined, { notBefore: new Date(now - 7_200_000), notAfter: new Date(now - 3_600_000) });
    assert.throws(() => a.verifyChain(expired.certificates[0]!), isError('ATTESTATION_DENIED', /expired/));
    const future = nodeCa.createCertificate(undefined, { notBefore: new Date(now + 3_600_000), notAfter: new Date(now + 7_200_000) });
    assert.throws(() => a.verifyChain(future.certificates[0]!), isError('ATTESTATION_DENIED', /not valid before/));
    // The injected clock decides: two days later even the CA has expired.
    const later = attestor({ now: () => new Date(now + 2 * 86_400_000) });
    assert.throws(() => later.verifyChain(nodeCa.createCertificate(undefined, { ttlSeconds: 5 * 86_400 }).certificates[0]!), isError('ATTESTATION_DENIED', /CA certificate expired/));
  });

  test('malformed payloads are invalid, never a crash', () => {
    const a = attestor();
    for (const p of [new Uint8Array(), Buffer.from('garbage'), Buffer.from([0x30, 0x82, 0xff, 0xff, 0x00]), new Uint8Array(70_000)]) {
      assert.throws(() => a.verifyChain(p), isError('ATTESTATION_INVALID', /x509pop/));
    }
    const long = Buffer.concat(Array.from({ length: 9 }, () => nodeCa.createCertificate(undefined, {}).certificates[0]!));
    assert.throws(() => a.verifyChain(long), isError('ATTESTATION_INVALID', /at most 8/));
  });

  test('the CA bundle must hold CA certificates; a missing file is a one-line error', () => {
    assert.throws(() => new X509PopAttestor({ trustDomain: td, caCertificates: [nodeCa.createCertificate(undefined, {}).certificates[0]!] }), /not a CA certificate/);
    assert.throws(() => new X509PopAttestor({ trustDomain: td, caCertificates: [] }), /no certificate/);
    assert.throws(() => X509PopAttestor.fromCaFile('/nonexistent/ca.pem', { trustDomain: td }), /cannot read CA bundle "\/nonexistent\/ca.pem"/);
    const dir = mkdtempSync(join(tmpdir(), 'tessera-x509pop-'));
    try {
      writeFileSync(join(dir, 'bad.pem'), 'not pem');
      assert.throws(() => X509PopAttestor.fromCaFile(join(dir, 'bad.pem'), { trustDomain: td }), /invalid CA bundle/);
      writeFileSync(join(dir, 'ok.pem'), new X509Certificate(nodeCa.certificate).toString());
      assert.equal(X509PopAttestor.fromCaFile(join(dir, 'ok.pem'), { trustDomain: td }).type, 'x509pop');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('join_token', () => {
  const store = (behaviour: (token: string, now?: number) => Promise<JoinToken>) => ({ consumeJoinToken: behaviour });
  const now = () => new Date(1_700_000_000_000);

  test('consumes the token; agent ID and node selector; never re-attestable', async () => {
    const seen: [string, number | undefined][] = [];
    const a = new JoinTokenAttestor(store(async (t, n) => (seen.push([t, n]), { token: t, expiresAt: 1_700_000_600 })), td, now);
    const step = await a.begin(Buffer.from('tok-123'));
    assert.equal(step.kind, 'done');
    if (step.kind !== 'done') return;
    assert.deepEqual(step.result, { agentId: 'spiffe://example.org/tessera/agent/join_token/tok-123', attestationType: 'join_token', selectors: [{ type: 'join_token', value: 'tok-123' }], canReattest: false });
    assert.deepEqual(seen, [['tok-123', 1_700_000_000]]);
  });

  test('unknown, used and expired tokens are denied with the reason; malformed ones are invalid', async () => {
    const notFound = new JoinTokenAttestor(store(async () => Promise.reject(new DatastoreError('NOT_FOUND', 'join token does not exist or has already been used'))), td, now);
    await assert.rejects(notFound.begin(Buffer.from('tok-1')), isError('ATTESTATION_DENIED', /does not exist or has already been used/));
    const expired = new JoinTokenAttestor(store(async () => Promise.reject(new DatastoreError('EXPIRED', 'join token expired at 2023-11-14T22:13:20.000Z'))), td, now);
    await assert.rejects(expired.begin(Buffer.from('tok-1')), isError('ATTESTATION_DENIED', /expired at/));
    const never = new JoinTokenAttestor(store(async () => assert.fail('must not be consumed')), td, now);
    for (const p of [new Uint8Array(), Buffer.from([0xff, 0xfe]), Buffer.from('a/b'), Buffer.from('x'.repeat(129))]) {
      await assert.rejects(never.begin(p), isError('ATTESTATION_INVALID', /join token/));
    }
    const broken = new JoinTokenAttestor(store(async () => Promise.reject(new Error('disk on fire'))), td, now);
    await assert.rejects(broken.begin(Buffer.from('tok-1')), /disk on fire/, 'other failures propagate (INTERNAL / UNAVAILABLE upstream)');
  });
});

/**
 * CA rotation on SPIRE's schedule with an injected clock (spec/spiffe.md §6):
 * prepare at 1/2, activate at 5/6, retire until the authority's NotAfter,
 * `spiffe_sequence` bumped exactly once per bundle change; SVIDs signed on
 * either side of an activation keep verifying for their whole life; state
 * survives a restart through the journal; a tick is all or nothing.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { SpiffeBundle } from '@tessera/spiffe/bundle';
import { JwtSvid, X509Svid, verifyX509Svid } from '@tessera/spiffe/svid';
import { Certificate } from '@tessera/spiffe/x509';
import {
  activationTime,
  CaError,
  MemoryCaJournal,
  MemoryKeyManager,
  planRotation,
  preparationTime,
  ServerCa,
  type CaJournal,
  type KeyManager,
  type Lifetime,
  type SignedX509Svid,
} from '../../src/server/ca/index.js';

const T0 = Date.parse('2031-03-01T00:00:00.000Z');
const H = 3600_000;
const TD = 'example.org';
const WEB = 'spiffe://example.org/web';

interface Rig {
  ca: ServerCa;
  clock: { t: number };
  keys: KeyManager;
  journal: CaJournal;
}

async function rig(o: { keys?: KeyManager; journal?: CaJournal; clock?: { t: number }; caTtlSeconds?: number } = {}): Promise<Rig> {
  const clock = o.clock ?? { t: T0 };
  const keys = o.keys ?? new MemoryKeyManager();
  const journal = o.journal ?? new MemoryCaJournal();
  const ca = await ServerCa.open({ trustDomain: TD, keyManager: keys, journal, now: () => new Date(clock.t), caTtlSeconds: o.caTtlSeconds });
  return { ca, clock, keys, journal };
}

/** The bundle's content without its sequence number, to detect content changes independently of the CA. */
function content(b: SpiffeBundle): string {
  const doc = JSON.parse(b.marshal()) as Record<string, unknown>;
  delete doc['spiffe_sequence'];
  return JSON.stringify(doc);
}

function lifetimeOf(der: Buffer): Lifetime {
  const c = new Certificate(der);
  return { notBefore: c.notBefore, notAfter: c.notAfter };
}

function akiOf(s: SignedX509Svid): string {
  return new Certificate(s.certificates[0]!).authorityKeyId!.toString('hex');
}

function skiOf(der: Buffer): string {
  return new Certificate(der).subjectKeyId!.toString('hex');
}

const p256 = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;

describe('SPIRE schedule', () => {
  test('prepare at 1/2 (published at once), activate at 5/6, retire until NotAfter, then remove', async () => {
    const { ca, clock } = await rig();
    const a = ca.bundle().x509Authorities()[0]!;
    const aLife = lifetimeOf(a);
    const aKid = [...ca.bundle().jwtAuthorities().keys()][0]!;
    assert.equal(ca.bundle().sequenceNumber, 1);

    // Just before half-life: nothing happens.
    const prepareAt = preparationTime(aLife);
    assert.equal(ca.nextRotationAt()!.getTime(), Math.ceil(prepareAt));
    clock.t = Math.ceil(prepareAt) - 1;
    let r = await ca.tick();
    assert.deepEqual([r.prepared, r.activated, r.bundleChanged, r.bundleSequence], [[], [], false, 1]);

    // Half-life: next CA and next JWT key are prepared and published together (one sequence bump).
    clock.t = Math.ceil(prepareAt);
    r = await ca.tick();
    assert.deepEqual([r.prepared, r.activated, r.bundleChanged, r.bundleSequence], [['x509', 'jwt'], [], true, 2]);
    const bundle2 = ca.bundle();
    assert.equal(bundle2.x509Authorities().length, 2);
    assert.equal(bundle2.jwtAuthorities().size, 2);
    const b = bundle2.x509Authorities().find((d) => !d.equals(a))!;
    const bKid = [...bundle2.jwtAuthorities().keys()].find((k) => k !== aKid)!;
    // Prepared is not active: signing still uses A.
    const key = p256();
    const beforeActivation = await ca.signX509Svid({ spiffeId: WEB, publicKey: key, ttlSeconds: 10 * 3600 });
    assert.equal(akiOf(beforeActivation), skiOf(a));
    assert.equal(ca.signJwtSvid({ spiffeId: WEB, audience: 'x' }).keyId, aKid);
    // The longest-lived SVID A can sign: capped at A's NotAfter.
    const lastOfA = await ca.signX509Svid({ spiffeId: WEB, publicKey: key, ttlSeconds: 7 * 86400 });
    assert.equal(lastOfA.expiresAt.getTime(), aLife.notAfter.getTime());
    const jwtOfA = ca.signJwtSvid({ spiffeId: WEB, audience: 'x', ttlSeconds: 10 * 3600 });

    // Five sixths: activation, with no bundle change.
    const activateAt = Math.ceil(activationTime(aLife));
    assert.equal(ca.nextRotationAt()!.getTime(), activateAt);
    clock.t = activateAt - 1;
    r = await ca.tick();
    assert.deepEqual(r.activated, []);
    clock.t = activateAt;
    r = await ca.tick();
    assert.deepEqual([r.prepared, r.activated, r.bundleChanged, r.bundleSequence], [[], ['x509', 'jwt'], false, 2]);
    const afterActivation = await ca.signX509Svid({ spiffeId: WEB, publicKey: key });
    assert.equal(akiOf(afterActivation), skiOf(b), 'SVIDs signed after activation chain to the new CA');
    const jwtOfB = ca.signJwtSvid({ spiffeId: WEB, audience: 'x' });
    assert.equal(jwtOfB.keyId, bKid);
    const now = new Date(clock.t);
    for (const s of [beforeActivation, lastOfA, afterActivation]) verifyX509Svid(s.certificates, ca.bundle(), { time: now });
    X509Svid.fromParts(afterActivation.certificates, key);
    for (const t of [jwtOfA, jwtOfB]) JwtSvid.parseAndValidate(t.token, ca.bundle(), 'x', { time: now });

    // A stays published through its NotAfter: its last SVID verifies at that very second.
    const status = ca.status();
    assert.equal(status.x509.retired.length, 1);
    clock.t = aLife.notAfter.getTime();
    r = await ca.tick();
    assert.ok(ca.bundle().hasX509Authority(a));
    verifyX509Svid(lastOfA.certificates, ca.bundle(), { time: new Date(clock.t) });
    const seqBeforeRemoval = ca.bundle().sequenceNumber!;

    // One millisecond later every SVID A signed has expired: A (and its JWT key) leave the bundle.
    clock.t = aLife.notAfter.getTime() + 1;
    r = await ca.tick();
    assert.ok(r.bundleChanged);
    assert.ok(r.removed >= 2);
    assert.ok(!ca.bundle().hasX509Authority(a));
    assert.ok(!ca.bundle().hasJwtAuthority(aKid));
    assert.equal(ca.bundle().sequenceNumber, seqBeforeRemoval + 1);
    assert.throws(() => verifyX509Svid(lastOfA.certificates, ca.bundle(), { time: new Date(clock.t) }), { code: 'ERR_X509SVID_UNTRUSTED' });
    const fresh = await ca.signX509Svid({ spiffeId: WEB, publicKey: key });
    assert.equal(akiOf(fresh), skiOf(b));
    verifyX509Svid(fresh.certificates, ca.bundle(), { time: new Date(clock.t) });
  });

  test('five days of ticks every 5 minutes: every live SVID always verifies, sequence bumps exactly on content changes, subjects unique', async () => {
    const { ca, clock } = await rig();
    const key = p256();
    const live: SignedX509Svid[] = [];
    const jwts: { token: string; expiresAt: Date }[] = [];
    const subjects = new Set<string>();
    const seenCas = new Set<string>();
    let lastContent = content(ca.bundle());
    let lastSeq = ca.bundle().sequenceNumber!;
    let changes = 0;
    let activations = 0;
    const end = T0 + 5 * 24 * H;
    for (let step = 0; clock.t < end; step++) {
      clock.t += 5 * 60_000;
      const r = await ca.tick();
      assert.deepEqual(r.errors, []);
      if (r.activated.includes('x509')) activations++;
      const bundle = ca.bundle();
      const c = content(bundle);
      if (c !== lastContent) {
        changes++;
        assert.equal(bundle.sequenceNumber, lastSeq + 1, `content changed at ${new Date(clock.t).toISOString()}: sequence must go up by one`);
        assert.ok(r.bundleChanged);
      } else {
        assert.equal(bundle.sequenceNumber, lastSeq, 'no content change, no bump');
        assert.ok(!r.bundleChanged);
      }
      lastContent = c;
      lastSeq = bundle.sequenceNumber!;
      assert.ok(bundle.x509Authorities().length <= 3 && bundle.jwtAuthorities().size <= 3, 'retired + current + next at most');
      for (const der of bundle.x509Authorities()) {
        const cert = new Certificate(der);
        assert.ok(cert.notAfter.getTime() >= clock.t - 5 * 60_000, 'expired authorities leave within one tick');
        if (!seenCas.has(cert.serialHex)) {
          seenCas.add(cert.serialHex);
          const subject = cert.subjectRaw.toString('hex');
          assert.ok(!subjects.has(subject), 'every CA has its own subject');
          subjects.add(subject);
        }
      }
      const now = new Date(clock.t);
      if (step % 4 === 0) {
        live.push(await ca.signX509Svid({ spiffeId: WEB, publicKey: key, ttlSeconds: [600, 3600, 4 * 3600][step % 3] }));
        jwts.push(ca.signJwtSvid({ spiffeId: WEB, audience: 'aud', ttlSeconds: 1800 }));
      }
      for (const s of live.filter((x) => x.expiresAt.getTime() >= clock.t)) verifyX509Svid(s.certificates, bundle, { time: now });
      for (const j of jwts.filter((x) => x.expiresAt.getTime() > clock.t)) JwtSvid.parseAndValidate(j.token, bundle, 'aud', { time: now });
    }
    // Steady state: each CA is prepared 12 h into its predecessor's life and signs from 20 h to 32 h of it — an activation every 12 h.
    assert.ok(activations >= 9 && activations <= 10, `${activations} activations in five days`);
    assert.ok(changes >= 2 * activations, `${changes} bundle changes`);
    assert.equal(lastSeq, 1 + changes);
  });

  test('a server down for three days replaces its expired CA and JWT key at once', async () => {
    const { ca, clock } = await rig();
    const old = ca.bundle().x509Authorities()[0]!;
    clock.t = T0 + 3 * 24 * H;
    const r = await ca.tick();
    assert.deepEqual([r.prepared, r.activated, r.bundleChanged, r.bundleSequence], [['x509', 'jwt'], ['x509', 'jwt'], true, 2]);
    const b = ca.bundle();
    assert.equal(b.x509Authorities().length, 1);
    assert.ok(!b.hasX509Authority(old));
    assert.equal(b.jwtAuthorities().size, 1);
    const key = p256();
    verifyX509Svid((await ca.signX509Svid({ spiffeId: WEB, publicKey: key })).certificates, b, { time: new Date(clock.t) });
  });

  test('concurrent ticks are serialized: one preparation, one bump', async () => {
    const { ca, clock } = await rig();
    clock.t = ca.nextRotationAt()!.getTime();
    const [r1, r2] = await Promise.all([ca.tick(), ca.tick()]);
    assert.deepEqual(r1.prepared, ['x509', 'jwt']);
    assert.deepEqual(r2.prepared, []);
    assert.equal(ca.bundle().sequenceNumber, 2);
    assert.equal(ca.bundle().x509Authorities().length, 2);
  });
});

describe('persistence through the journal', () => {
  test('a restart keeps the CA, the prepared next CA, the bundle and its sequence', async () => {
    const first = await rig();
    first.clock.t = first.ca.nextRotationAt()!.getTime();
    await first.ca.tick();
    const key = p256();
    const before = await first.ca.signX509Svid({ spiffeId: WEB, publicKey: key });
    const jwtBefore = first.ca.signJwtSvid({ spiffeId: WEB, audience: 'a' });
    const second = await rig({ keys: first.keys, journal: first.journal, clock: first.clock });
    assert.deepEqual(second.ca.warnings, []);
    assert.equal(second.ca.bundle().marshal(), first.ca.bundle().marshal());
    assert.deepEqual(second.ca.status(), first.ca.status());
    const after = await second.ca.signX509Svid({ spiffeId: WEB, publicKey: key });
    assert.equal(akiOf(after), akiOf(before), 'same active CA key after the restart');
    assert.equal(second.ca.signJwtSvid({ spiffeId: WEB, audience: 'a' }).keyId, jwtBefore.keyId);
    // The next CA activates on schedule after the restart.
    second.clock.t = second.ca.nextRotationAt()!.getTime();
    const r = await second.ca.tick();
    assert.deepEqual(r.activated, ['x509', 'jwt']);
    assert.notEqual(akiOf(await second.ca.signX509Svid({ spiffeId: WEB, publicKey: key })), akiOf(before));
  });

  test('lost keys: the old authorities stay trusted (retired), new ones take over, one sequence bump', async () => {
    const first = await rig();
    const key = p256();
    const before = await first.ca.signX509Svid({ spiffeId: WEB, publicKey: key });
    const second = await rig({ keys: new MemoryKeyManager(), journal: first.journal, clock: first.clock });
    assert.equal(second.ca.warnings.length, 2);
    assert.match(second.ca.warnings[0]!, /X\.509 authority ca-x509-[0-9a-f]{32}: its key is missing; retired it/);
    const b = second.ca.bundle();
    assert.equal(b.x509Authorities().length, 2);
    assert.equal(b.jwtAuthorities().size, 2);
    assert.equal(b.sequenceNumber, 2);
    verifyX509Svid(before.certificates, b, { time: new Date(first.clock.t) });
    const after = await second.ca.signX509Svid({ spiffeId: WEB, publicKey: key });
    assert.notEqual(akiOf(after), akiOf(before));
  });

  test('retired and dropped keys are deleted from the key manager; leftovers are collected at open', async () => {
    const { ca, clock, keys, journal } = await rig();
    assert.equal((await keys.listKeys()).length, 2);
    clock.t = ca.nextRotationAt()!.getTime();
    await ca.tick();
    assert.equal((await keys.listKeys()).length, 4, 'current + next, X.509 and JWT');
    clock.t = ca.nextRotationAt()!.getTime();
    await ca.tick();
    assert.equal((await keys.listKeys()).length, 2, 'retired authorities keep no private key');
    await keys.generateKey('ca-x509-orphan', 'ec-p256');
    await keys.generateKey('agent-svid', 'ec-p256');
    await rig({ keys, journal, clock });
    const left = await keys.listKeys();
    assert.ok(!left.includes('ca-x509-orphan'));
    assert.ok(left.includes('agent-svid'), 'keys that are not the CA\'s are left alone');
  });

  test('a journal that cannot be saved fails the tick and changes nothing', async () => {
    const journal = new MemoryCaJournal();
    const { ca, clock, keys } = await rig({ journal });
    const status = ca.status();
    const bundle = ca.bundle().marshal();
    const keysBefore = await keys.listKeys();
    journal.save = () => Promise.reject(new Error('disk full'));
    clock.t = ca.nextRotationAt()!.getTime();
    await assert.rejects(ca.tick(), (e: unknown) => e instanceof CaError && e.code === 'CA_JOURNAL_INVALID' && /disk full/.test(e.message));
    assert.deepEqual(ca.status().x509, status.x509);
    assert.equal(ca.bundle().marshal(), bundle);
    assert.deepEqual(await keys.listKeys(), keysBefore, 'keys generated for the failed tick are deleted');
    delete (journal as { save?: unknown }).save;
    assert.deepEqual((await ca.tick()).prepared, ['x509', 'jwt'], 'the next tick retries');
  });

  test('a journal of another trust domain, or a malformed one, is CA_JOURNAL_INVALID', async () => {
    const { journal } = await rig();
    const doc = (await journal.load())!;
    const other = new MemoryCaJournal();
    await other.save(doc.replace('"trustDomain": "example.org"', '"trustDomain": "other.org"'));
    await assert.rejects(rig({ journal: other }), (e: unknown) => e instanceof CaError && e.code === 'CA_JOURNAL_INVALID' && /belongs to trust domain "other.org"/.test(e.message));
    for (const bad of ['{', '[]', '{"version":2}', doc.replace(/"certificate": "[^"]+"/, '"certificate": "AAAA"')]) {
      const j = new MemoryCaJournal();
      await j.save(bad);
      await assert.rejects(rig({ journal: j }), (e: unknown) => e instanceof CaError && e.code === 'CA_JOURNAL_INVALID', bad.slice(0, 30));
    }
  });
});

describe('planRotation', () => {
  const life = (fromH: number, toH: number): Lifetime => ({ notBefore: new Date(T0 + fromH * H), notAfter: new Date(T0 + toH * H) });
  test('thresholds and decisions', () => {
    const cur = life(0, 24);
    assert.equal(preparationTime(cur), T0 + 12 * H);
    assert.equal(activationTime(cur), T0 + 20 * H);
    const empty = { current: undefined, next: undefined, retired: [] };
    assert.deepEqual(planRotation(empty, T0), { prepare: true, activate: true, dropNext: false, expired: [] });
    const one = { current: cur, next: undefined, retired: [] };
    assert.equal(planRotation(one, T0 + 12 * H - 1).prepare, false);
    assert.deepEqual(planRotation(one, T0 + 12 * H), { prepare: true, activate: false, dropNext: false, expired: [] });
    const two = { current: cur, next: life(12, 36), retired: [] };
    assert.deepEqual(planRotation(two, T0 + 19 * H), { prepare: false, activate: false, dropNext: false, expired: [] });
    assert.deepEqual(planRotation(two, T0 + 20 * H), { prepare: false, activate: true, dropNext: false, expired: [] });
    // Next missing at activation time (preparation failed): prepare and activate at once.
    assert.deepEqual(planRotation(one, T0 + 21 * H), { prepare: true, activate: true, dropNext: false, expired: [] });
    // Retired ones expire strictly after their NotAfter.
    const old = life(-20, 4);
    const withOld = { current: cur, next: undefined, retired: [old] };
    assert.deepEqual(planRotation(withOld, T0 + 4 * H).expired, []);
    assert.deepEqual(planRotation(withOld, T0 + 4 * H + 1).expired, [old]);
    // A next that expired unused is dropped and replaced.
    assert.deepEqual(planRotation({ current: undefined, next: life(0, 1), retired: [] }, T0 + 2 * H), { prepare: true, activate: true, dropNext: true, expired: [] });
  });
});

describe('MemoryKeyManager', () => {
  test('generate, get, list, delete; duplicate and invalid IDs are CA_KEY_UNAVAILABLE', async () => {
    const km = new MemoryKeyManager();
    const k = await km.generateKey('ca-x509-1', 'ec-p384');
    assert.equal(k.asymmetricKeyDetails?.namedCurve, 'secp384r1');
    assert.equal(await km.getKey('ca-x509-1'), k);
    assert.equal(await km.getKey('nope'), undefined);
    assert.deepEqual(await km.listKeys(), ['ca-x509-1']);
    await assert.rejects(km.generateKey('ca-x509-1', 'ec-p256'), (e: unknown) => e instanceof CaError && e.code === 'CA_KEY_UNAVAILABLE' && /already exists/.test(e.message));
    for (const bad of ['', '../x', 'A', '.hidden', 'a/b', 'x'.repeat(129)]) {
      await assert.rejects(km.generateKey(bad, 'ec-p256'), (e: unknown) => e instanceof CaError && e.code === 'CA_KEY_UNAVAILABLE', bad);
    }
    await km.deleteKey('ca-x509-1');
    await km.deleteKey('ca-x509-1');
    assert.deepEqual(await km.listKeys(), []);
    assert.equal((await km.generateKey('r', 'rsa-2048')).asymmetricKeyDetails?.modulusLength, 2048);
  });
});

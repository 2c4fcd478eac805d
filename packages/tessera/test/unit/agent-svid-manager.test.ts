// The agent's SvidManager with an in-memory fake signer (a TestCa that signs
// the manager's CSRs into real X.509 certificates with the entry's SPIFFE ID
// and TTL, like the server's BatchNewX509Svid) and an injected clock: updates
// of entries and bundles, selector matching, rotation timing, retries and
// backoff, refusals, expiry, change notifications and the JWT-SVID cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { TrustDomain } from '@tessera/spiffe/id';
import { SpiffeBundle } from '@tessera/spiffe/bundle';
import { TestCa, createJwtSvid } from '@tessera/spiffe/testing';
import { basicConstraintsExt, buildCertificate, Certificate, encodeName, keyUsageExt, KeyUsage, OID, parseCertificateRequest, subjectAltNameExt } from '@tessera/spiffe/x509';
import { EntrySchema, SelectorSchema, type Entry } from '../../src/gen/tessera/v1/types_pb.js';
import type { Selector } from '../../src/server/registration/index.js';
import { SvidManager, type EntitlementUpdate, type SigningRequest, type SigningResult, type SvidManagerOptions, type SvidSigner } from '../../src/agent/svid/svid-manager.js';
import { rotationTime } from '../../src/agent/svid/rotation.js';
import type { CachedSvid, MintedJwtSvid } from '../../src/agent/workload-api/identity-cache.js';

const td = TrustDomain.parse('td');
const AGENT = 'spiffe://td/tessera/agent/join_token/node-1';
const SERVER = 'spiffe://td/tessera/server';
/** Whole seconds: X.509 validity has second precision, so notBefore is exactly the clock. */
const T0 = Date.parse('2030-01-01T00:00:00Z');
const UID = { type: 'unix', value: 'uid:1000' } as const;
const GID = { type: 'unix', value: 'gid:50' } as const;

/**
 * The fake signer: what the server's BatchNewX509Svid and NewJwtSvid do, in
 * memory. It looks entries up in its own view (`server`) like the server
 * does, signs the CSR's key with its TestCa for the entry's SPIFFE ID, DNS
 * names and TTL (default 3600 s), and can be told to fail, refuse or lie.
 */
class FakeSigner implements SvidSigner {
  readonly ca: TestCa;
  readonly server = new Map<string, Entry>();
  /** Entry IDs of every signX509 call (also the failed ones). */
  readonly calls: string[][] = [];
  readonly jwtCalls: { entryId: string; audience: string[] }[] = [];
  /** Set: signX509 rejects (server unreachable). */
  down: Error | undefined;
  jwtDown: Error | undefined;
  readonly refuse = new Set<string>();
  /** Entry IDs answered with an SVID for another SPIFFE ID. */
  readonly wrongId = new Set<string>();
  jwtTtlSeconds = 300;
  /** When set, mintJwt waits for it after minting (to hold an answer in flight). */
  jwtGate: Promise<void> | undefined;
  readonly #now: () => Date;
  readonly #caSubject: Buffer;

  constructor(now: () => Date) {
    this.#now = now;
    this.ca = new TestCa({ trustDomain: td, now, ttlSeconds: 10 * 365 * 86_400 });
    this.#caSubject = new Certificate(this.ca.certificate).subjectRaw;
  }

  async signX509(requests: readonly SigningRequest[]): Promise<SigningResult[]> {
    this.calls.push(requests.map((r) => r.entryId));
    if (this.down) throw this.down;
    return requests.map((r): SigningResult => {
      const e = this.server.get(r.entryId);
      if (e === undefined) return { entryId: r.entryId, ok: false, reason: 'NotFound: no such entry' };
      if (this.refuse.has(r.entryId)) return { entryId: r.entryId, ok: false, reason: 'PermissionDenied: not entitled' };
      const csr = parseCertificateRequest(r.csr);
      const notBefore = this.#now();
      const notAfter = new Date(notBefore.getTime() + (e.x509SvidTtl || 3600) * 1000);
      const leaf = buildCertificate({
        issuer: this.#caSubject,
        subject: encodeName([{ oid: OID.organization, value: 'SPIRE' }]),
        notBefore,
        notAfter,
        publicKey: csr.subjectPublicKey.spki,
        extensions: [basicConstraintsExt(false), keyUsageExt(KeyUsage.digitalSignature | KeyUsage.keyEncipherment), subjectAltNameExt({ uris: [this.wrongId.has(r.entryId) ? `${e.spiffeId}-impostor` : e.spiffeId], dnsNames: [...e.dnsNames] })],
        signingKey: this.ca.key,
      });
      return { entryId: r.entryId, ok: true, certificates: [leaf] };
    });
  }

  async mintJwt(entryId: string, audience: readonly string[]): Promise<MintedJwtSvid> {
    this.jwtCalls.push({ entryId, audience: [...audience] });
    if (this.jwtDown) throw this.jwtDown;
    const e = this.server.get(entryId);
    if (e === undefined) throw new Error('NotFound: no such entry');
    const token = createJwtSvid(this.ca, e.spiffeId, audience, { ttlSeconds: this.jwtTtlSeconds });
    const expiresAt = new Date(this.#now().getTime() + this.jwtTtlSeconds * 1000);
    // Minted; the answer is on its way back (a removal can overtake it).
    if (this.jwtGate) await this.jwtGate;
    return { token, expiresAt };
  }
}

interface EntryOptions {
  selectors?: readonly Selector[];
  parentId?: string;
  ttl?: number;
  dnsNames?: string[];
  hint?: string;
  federatesWith?: string[];
}

function entry(id: string, path: string, o: EntryOptions = {}): Entry {
  return create(EntrySchema, {
    id,
    spiffeId: `spiffe://td${path}`,
    parentId: o.parentId ?? AGENT,
    selectors: (o.selectors ?? [UID]).map((s) => create(SelectorSchema, { type: s.type, value: s.value })),
    x509SvidTtl: o.ttl ?? 3600,
    dnsNames: o.dnsNames ?? [],
    hint: o.hint ?? '',
    federatesWith: o.federatesWith ?? [],
  });
}

/** The manager with the fake signer, a settable clock, a counter of change notifications and captured warnings. */
class Harness {
  clock = T0;
  readonly now = (): Date => new Date(this.clock);
  readonly signer = new FakeSigner(this.now);
  readonly warnings: string[] = [];
  readonly mgr: SvidManager;
  changes = 0;

  constructor(options: Partial<SvidManagerOptions> = {}) {
    const quiet = (): void => undefined;
    this.mgr = new SvidManager({
      trustDomain: td,
      signer: this.signer,
      now: this.now,
      random: () => 0.5,
      logger: { debug: quiet, info: quiet, warn: (msg: string) => void this.warnings.push(msg) },
      ...options,
    });
    this.mgr.onChange(() => this.changes++);
  }

  /** Applies an update, keeping the fake server's view in step (as the real server's datastore would be). */
  apply(u: Partial<EntitlementUpdate> & { full: boolean }): void {
    if (u.full) this.signer.server.clear();
    for (const e of u.upsertedEntries ?? []) this.signer.server.set(e.id, e);
    for (const id of u.removedEntryIds ?? []) this.signer.server.delete(id);
    this.mgr.apply({ upsertedEntries: [], removedEntryIds: [], upsertedBundles: [], removedBundles: [], ...u });
  }

  ownBundle(): SpiffeBundle {
    return SpiffeBundle.fromX509Bundle(this.signer.ca.x509Bundle());
  }

  /** SVIDs a caller with `selectors` gets, by SPIFFE ID. */
  served(selectors: readonly Selector[] = [UID]): Map<string, CachedSvid> {
    return new Map(this.mgr.identitiesFor(selectors).svids.map((s) => [s.spiffeId, s]));
  }

  ids(selectors: readonly Selector[] = [UID]): string[] {
    return [...this.served(selectors).keys()].sort();
  }

  leaf(spiffeId: string, selectors: readonly Selector[] = [UID]): Certificate {
    const s = this.served(selectors).get(spiffeId);
    assert.ok(s, `${spiffeId} is served`);
    return new Certificate(s.certificates[0]!);
  }

  get signCalls(): number {
    return this.signer.calls.length;
  }
}

const partnerBundle = (ca = new TestCa({ trustDomain: 'partner.test' })): SpiffeBundle => SpiffeBundle.fromX509Bundle(ca.x509Bundle());
const keyBytes = (s: CachedSvid): string => String(s.privateKey.export({ format: 'jwk' }).d);

test('fake signer: SVIDs are real certificates for the entry\'s ID, DNS names and TTL, signed by the fake\'s CA, each with its own key made by the manager', async () => {
  const h = new Harness();
  h.apply({ full: true, upsertedEntries: [entry('a', '/web', { ttl: 600, dnsNames: ['web.example'] }), entry('b', '/db', { ttl: 7200 })], upsertedBundles: [h.ownBundle()] });
  await h.mgr.tick();
  assert.deepEqual(h.ids(), ['spiffe://td/db', 'spiffe://td/web']);
  const caKey = new X509Certificate(h.signer.ca.certificate).publicKey;
  for (const [id, svid] of h.served()) {
    const x = new X509Certificate(svid.certificates[0]!);
    assert.ok(x.verify(caKey), `${id} is signed by the CA`);
    assert.ok(x.checkPrivateKey(svid.privateKey), `${id}'s key matches its certificate`);
  }
  const web = h.leaf('spiffe://td/web');
  assert.deepEqual(web.subjectAltNames.uris, ['spiffe://td/web']);
  assert.deepEqual(web.subjectAltNames.dnsNames, ['web.example']);
  assert.equal(web.notBefore.getTime(), T0);
  assert.equal(web.notAfter.getTime() - web.notBefore.getTime(), 600_000);
  assert.equal(h.leaf('spiffe://td/db').notAfter.getTime() - T0, 7_200_000);
  assert.notEqual(keyBytes(h.served().get('spiffe://td/web')!), keyBytes(h.served().get('spiffe://td/db')!));
});

test('full update then deltas: entries added, changed and removed; a full update drops what it does not list (fake signer)', async () => {
  const h = new Harness();
  assert.equal(h.mgr.synced, false);
  h.apply({ full: false, upsertedEntries: [entry('early', '/early')] });
  assert.equal(h.mgr.synced, false, 'a delta is not the whole entitlement');
  h.apply({ full: true, upsertedEntries: [entry('a', '/a'), entry('b', '/b'), entry('c', '/c')], upsertedBundles: [h.ownBundle()] });
  assert.equal(h.mgr.synced, true);
  assert.deepEqual(h.mgr.counts, { entries: 3, svids: 0, jwtSvids: 0 }, 'the full update replaced the earlier delta');
  assert.deepEqual(h.ids(), [], 'nothing served before signing');
  await h.mgr.tick();
  assert.deepEqual(h.signer.calls.map((c) => [...c].sort()), [['a', 'b', 'c']]);
  assert.deepEqual(h.ids(), ['spiffe://td/a', 'spiffe://td/b', 'spiffe://td/c']);

  // Delta: d added, b removed (gone at once, before any tick).
  h.apply({ full: false, upsertedEntries: [entry('d', '/d')], removedEntryIds: ['b'] });
  assert.deepEqual(h.ids(), ['spiffe://td/a', 'spiffe://td/c']);
  await h.mgr.tick();
  assert.deepEqual(h.signer.calls.at(-1), ['d'], 'only the new entry is signed');
  assert.deepEqual(h.ids(), ['spiffe://td/a', 'spiffe://td/c', 'spiffe://td/d']);

  // Removing an unknown entry changes nothing.
  const changes = h.changes;
  h.apply({ full: false, removedEntryIds: ['nope'] });
  assert.equal(h.changes, changes);
  assert.equal(h.mgr.counts.entries, 3);

  // A full update that lists a and e only: c and d go, e is signed, a is kept as is.
  const aSerial = h.leaf('spiffe://td/a').serialHex;
  h.apply({ full: true, upsertedEntries: [entry('a', '/a'), entry('e', '/e')], upsertedBundles: [h.ownBundle()] });
  assert.deepEqual(h.ids(), ['spiffe://td/a']);
  await h.mgr.tick();
  assert.deepEqual(h.signer.calls.at(-1), ['e']);
  assert.deepEqual(h.ids(), ['spiffe://td/a', 'spiffe://td/e']);
  assert.equal(h.leaf('spiffe://td/a').serialHex, aSerial, 'an unchanged entry keeps its SVID across a full update');
  assert.deepEqual(h.mgr.counts, { entries: 2, svids: 2, jwtSvids: 0 });
});

test('bundles: own and federated ones added, changed and removed by deltas; a full update drops unlisted federated bundles, never the own one', () => {
  const h = new Harness();
  assert.deepEqual(h.mgr.bundle().x509Authorities, [], 'no bundle yet: an empty one');
  h.mgr.setBundle(h.ownBundle());
  assert.equal(h.changes, 1);
  assert.deepEqual(h.mgr.bundle().x509Authorities, [h.signer.ca.certificate]);
  assert.equal(h.mgr.bundle().trustDomain, 'td');

  const partnerCa = new TestCa({ trustDomain: 'partner.test' });
  h.apply({ full: false, upsertedBundles: [partnerBundle(partnerCa)] });
  assert.equal(h.changes, 2);
  assert.deepEqual([...h.mgr.federatedBundles().keys()], ['partner.test']);
  assert.deepEqual(h.mgr.federatedBundles().get('partner.test')!.x509Authorities, [partnerCa.certificate]);
  // The same content again (a new object): no change.
  h.apply({ full: false, upsertedBundles: [partnerBundle(partnerCa)] });
  assert.equal(h.changes, 2);
  // New content: a change.
  const rotated = new TestCa({ trustDomain: 'partner.test' });
  h.apply({ full: false, upsertedBundles: [partnerBundle(rotated)] });
  assert.equal(h.changes, 3);
  assert.deepEqual(h.mgr.federatedBundles().get('partner.test')!.x509Authorities, [rotated.certificate]);
  assert.ok(!h.mgr.federatedBundles().has('td'), 'the own bundle is not a federated one');

  // Removal by ID form or by name; removing the own trust domain or an unknown one does nothing.
  h.apply({ full: false, upsertedBundles: [partnerBundle(new TestCa({ trustDomain: 'third.test' }))] });
  assert.equal(h.changes, 4);
  h.apply({ full: false, removedBundles: ['spiffe://partner.test'] });
  assert.equal(h.changes, 5);
  assert.deepEqual([...h.mgr.federatedBundles().keys()], ['third.test']);
  h.apply({ full: false, removedBundles: ['td', 'spiffe://td', 'unknown.test'] });
  assert.equal(h.changes, 5);
  assert.deepEqual(h.mgr.bundle().x509Authorities, [h.signer.ca.certificate]);

  // Full update listing only fourth.test: third goes, fourth comes, own stays although unlisted.
  h.apply({ full: true, upsertedBundles: [partnerBundle(new TestCa({ trustDomain: 'fourth.test' }))] });
  assert.equal(h.changes, 6, 'one notification for the whole update');
  assert.deepEqual([...h.mgr.federatedBundles().keys()], ['fourth.test']);
  assert.deepEqual(h.mgr.bundle().x509Authorities, [h.signer.ca.certificate]);
  assert.ok(h.mgr.ownBundle?.equals(h.ownBundle()));

  // A changed own bundle arrives by delta.
  const own2 = new SpiffeBundle(td, { x509Authorities: [...h.ownBundle().certificates(), ...new TestCa({ trustDomain: td }).x509Bundle().certificates()] });
  h.apply({ full: false, upsertedBundles: [own2] });
  assert.equal(h.changes, 7);
  assert.equal(h.mgr.bundle().x509Authorities.length, 2);
});

test('identitiesFor: an entry matches when its selectors are a subset of the caller\'s; entries without selectors and node alias entries get no SVID', async () => {
  const h = new Harness();
  h.apply({
    full: true,
    upsertedEntries: [
      entry('both', '/both', { selectors: [UID, GID] }),
      entry('uid', '/uid', { selectors: [UID] }),
      entry('none', '/none', { selectors: [] }),
      entry('alias', '/node/alias', { parentId: SERVER, selectors: [UID] }),
    ],
  });
  await h.mgr.tick();
  assert.deepEqual(h.signer.calls.map((c) => [...c].sort()), [['both', 'uid']], 'only workload entries are signed');
  assert.equal(h.mgr.counts.svids, 2);
  assert.deepEqual(h.ids([UID]), ['spiffe://td/uid']);
  assert.deepEqual(h.ids([GID, UID, { type: 'unix', value: 'user:alice' }]), ['spiffe://td/both', 'spiffe://td/uid']);
  assert.deepEqual(h.ids([GID]), []);
  assert.deepEqual(h.ids([]), []);
  assert.deepEqual(h.ids([{ type: 'unix', value: 'uid:10000' }]), [], 'no prefix matching');
  assert.deepEqual(h.ids([{ type: 'k8s', value: 'uid:1000' }]), [], 'the type is part of the selector');

  // A change of selectors keeps the SVID (nothing in it changes) but moves who gets it.
  const serial = h.leaf('spiffe://td/uid').serialHex;
  const uid2 = { type: 'unix', value: 'uid:2000' };
  h.apply({ full: false, upsertedEntries: [entry('uid', '/uid', { selectors: [uid2] })] });
  assert.deepEqual(h.ids([UID]), []);
  assert.equal(h.leaf('spiffe://td/uid', [uid2]).serialHex, serial);
  await h.mgr.tick();
  assert.equal(h.signCalls, 1, 'no re-signing for a selector change');

  // A workload entry re-parented to the server becomes a node alias: its SVID is no longer served.
  h.apply({ full: false, upsertedEntries: [entry('both', '/both', { selectors: [UID, GID], parentId: SERVER })] });
  assert.deepEqual(h.ids([UID, GID]), [], 'a node alias entry is not a workload identity');
  // And an entry whose selectors were all removed no longer matches anyone.
  h.apply({ full: false, upsertedEntries: [entry('uid', '/uid', { selectors: [] })] });
  assert.deepEqual(h.ids([uid2]), []);
});

for (const [r, share] of [
  [0, 0.4],
  [0.5, 0.5],
  [0.999, 0.6],
] as const) {
  test(`rotation: random() = ${r} → renewed at ${share * 100} % of the lifetime, nothing before, a new key and serial after (fake signer)`, async () => {
    const h = new Harness({ random: () => r });
    h.apply({ full: true, upsertedEntries: [entry('a', '/a', { ttl: 1000 })] });
    await h.mgr.tick();
    const first = h.served().get('spiffe://td/a')!;
    const leaf = h.leaf('spiffe://td/a');
    const life = leaf.notAfter.getTime() - leaf.notBefore.getTime();
    assert.equal(life, 1_000_000);
    const at = h.mgr.nextWakeAt()!.getTime();
    assert.equal(at, T0 + Math.trunc(life * (0.5 + (2 * r - 1) * 0.1)), 'the exact ½ TTL ± 10 % formula');
    assert.ok(Math.abs(at - (T0 + life * share)) <= life * 0.0005, `≈ ${share * 100} % of the lifetime`);

    h.clock = at - 1;
    await h.mgr.tick();
    assert.equal(h.signCalls, 1, 'nothing 1 ms before the rotation time');
    assert.equal(h.leaf('spiffe://td/a').serialHex, leaf.serialHex);
    const changes = h.changes;

    h.clock = at;
    await h.mgr.tick();
    assert.equal(h.signCalls, 2);
    const next = h.served().get('spiffe://td/a')!;
    const nextLeaf = new Certificate(next.certificates[0]!);
    assert.notEqual(nextLeaf.serialHex, leaf.serialHex, 'a new serial');
    assert.notEqual(keyBytes(next), keyBytes(first), 'a new key');
    assert.equal(h.changes, changes + 1, 'watchers told once');
    // The next rotation counts from when the SVID arrived (the clock, past the truncated notBefore).
    const from = Math.max(nextLeaf.notBefore.getTime(), h.clock);
    assert.equal(h.mgr.nextWakeAt()!.getTime(), from + Math.trunc((nextLeaf.notAfter.getTime() - from) * (0.5 + (2 * r - 1) * 0.1)));
  });
}

test('rotationTime: always within ½ TTL ± 10 % and monotonic in random() (property check over 20,000 seeded draws)', () => {
  // mulberry32: deterministic, so a failure reproduces.
  let seed = 0x5eed;
  const rand = (): number => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = 0; i < 20_000; i++) {
    const nb = T0 + Math.floor(rand() * 1e10);
    const life = 1 + Math.floor(rand() * 90 * 86_400_000);
    const r = rand();
    const at = rotationTime(new Date(nb), new Date(nb + life), () => r).getTime();
    assert.ok(at >= nb + Math.floor(life * 0.4) && at <= nb + Math.ceil(life * 0.6), `draw ${i}: r=${r} life=${life} → ${at - nb}`);
    const r2 = Math.min(r + rand() * (1 - r), 0.999999);
    assert.ok(rotationTime(new Date(nb), new Date(nb + life), () => r2).getTime() >= at, `draw ${i}: monotonic`);
  }
  // Out-of-range random() values are clamped into the window; a negative lifetime rotates at once.
  const nb = new Date(T0);
  const na = new Date(T0 + 1000);
  assert.equal(rotationTime(nb, na, () => -5).getTime(), T0 + 400);
  assert.equal(rotationTime(nb, na, () => 7).getTime(), T0 + 600);
  assert.equal(rotationTime(nb, na, () => NaN).getTime(), T0 + 500, 'NaN: the middle, never an Invalid Date');
  assert.equal(rotationTime(na, nb, () => 0.5).getTime(), na.getTime());
});

test('nextWakeAt: undefined when nothing is held, now when entries wait, the earliest rotation, and expiry when a retry would come too late', async () => {
  const h = new Harness({ retryInitialMs: 60_000, retryMaxMs: 60_000 });
  assert.equal(h.mgr.nextWakeAt(), undefined);
  h.apply({ full: true, upsertedEntries: [entry('none', '/none', { selectors: [] }), entry('alias', '/alias', { parentId: SERVER })] });
  assert.equal(h.mgr.nextWakeAt(), undefined, 'entries that get no SVID need no wake-up');
  h.apply({ full: false, upsertedEntries: [entry('long', '/long', { ttl: 1000 }), entry('short', '/short', { ttl: 10 })] });
  assert.ok(h.mgr.nextWakeAt()!.getTime() <= h.clock, 'unsigned entries: due now');
  await h.mgr.tick();
  assert.equal(h.mgr.nextWakeAt()!.getTime(), T0 + 5_000, 'the earliest rotation (short: ½ of 10 s)');

  // short's rotation fails; its retry (60 s) would come after its expiry (10 s): wake at the expiry.
  h.signer.down = new Error('unavailable');
  h.clock = T0 + 5_000;
  await h.mgr.tick();
  assert.equal(h.mgr.nextWakeAt()!.getTime(), T0 + 10_000);
  h.clock = T0 + 10_000;
  await h.mgr.tick();
  assert.equal(h.mgr.counts.svids, 1, 'short expired and was dropped');
  // short, now without an SVID, waits for the retry at 5 s + 60 s (long rotates later, at 500 s).
  assert.equal(h.mgr.nextWakeAt()!.getTime(), T0 + 65_000);
});

test('batches: batchSize 3 with 7 entries → 3 signing calls of 3, 3 and 1 CSRs, one change notification each (fake signer)', async () => {
  const h = new Harness({ batchSize: 3 });
  const entries = Array.from({ length: 7 }, (_, i) => entry(`e${i}`, `/w/${i}`));
  h.apply({ full: true, upsertedEntries: entries });
  const before = h.changes;
  await h.mgr.tick();
  assert.deepEqual(h.signer.calls.map((c) => c.length), [3, 3, 1]);
  assert.deepEqual(h.signer.calls.flat().sort(), entries.map((e) => e.id).sort());
  assert.equal(h.ids().length, 7);
  assert.equal(h.changes - before, 3);
  for (const bad of [0, -1, 1.5, NaN]) assert.throws(() => new Harness({ batchSize: bad }), /batchSize must be a positive integer/);
});

test('signer down (fake rejects): held SVIDs are kept and served; retries after retryInitialMs, doubling up to retryMaxMs; reset after a success', async () => {
  const h = new Harness({ retryInitialMs: 1000, retryMaxMs: 8000 });
  h.apply({ full: true, upsertedEntries: [entry('a', '/a', { ttl: 3600 })] });
  await h.mgr.tick();
  const serial = h.leaf('spiffe://td/a').serialHex;
  h.signer.down = new Error('connect ECONNREFUSED');
  h.clock = T0 + 1_800_000; // rotation time (random 0.5)
  const delays: number[] = [];
  for (let i = 0; i < 6; i++) {
    const calls = h.signCalls;
    await h.mgr.tick();
    assert.equal(h.signCalls, calls + 1, `attempt ${i}`);
    assert.equal(h.leaf('spiffe://td/a').serialHex, serial, 'the old SVID is still served');
    const wake = h.mgr.nextWakeAt()!.getTime();
    delays.push(wake - h.clock);
    // Nothing happens before the retry is due.
    h.clock = wake - 1;
    await h.mgr.tick();
    assert.equal(h.signCalls, calls + 1, `no attempt before the retry ${i} is due`);
    h.clock = wake;
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 8000, 8000]);
  assert.ok(h.warnings.some((w) => /cannot get workload SVIDs signed/.test(w)));
  assert.equal(h.changes, 1, 'failed rounds change nothing visible');

  // Back: rotated; the next failure starts again at retryInitialMs.
  h.signer.down = undefined;
  await h.mgr.tick();
  const rotated = h.leaf('spiffe://td/a');
  assert.notEqual(rotated.serialHex, serial);
  h.signer.down = new Error('unavailable');
  h.clock = h.mgr.nextWakeAt()!.getTime();
  await h.mgr.tick();
  assert.equal(h.mgr.nextWakeAt()!.getTime() - h.clock, 1000);

  // A new entitlement is tried at once, even while a retry is pending.
  h.apply({ full: false, upsertedEntries: [entry('b', '/b')] });
  assert.ok(h.mgr.nextWakeAt()!.getTime() <= h.clock);
  h.signer.down = undefined;
  await h.mgr.tick();
  assert.deepEqual(h.ids(), ['spiffe://td/a', 'spiffe://td/b']);
});

test('per-item refusals (fake signer): the others are served, the refused entry is retried after retryMaxMs only, and a refused rotation keeps the old SVID', async () => {
  const h = new Harness({ retryInitialMs: 1000, retryMaxMs: 30_000 });
  h.signer.refuse.add('b');
  h.apply({ full: true, upsertedEntries: [entry('a', '/a'), entry('b', '/b'), entry('c', '/c')] });
  await h.mgr.tick();
  assert.deepEqual(h.ids(), ['spiffe://td/a', 'spiffe://td/c']);
  assert.ok(h.warnings.some((w) => /refused/.test(w)));
  assert.equal(h.mgr.nextWakeAt()!.getTime(), T0 + 30_000);
  h.clock = T0 + 29_999;
  await h.mgr.tick();
  assert.equal(h.signCalls, 1, 'no hammering of the server');
  h.clock = T0 + 30_000;
  h.signer.refuse.clear();
  await h.mgr.tick();
  assert.deepEqual(h.signer.calls.at(-1), ['b'], 'only the refused entry is asked again');
  assert.deepEqual(h.ids(), ['spiffe://td/a', 'spiffe://td/b', 'spiffe://td/c']);

  // A refused rotation (the server no longer signs for a): the old SVID stays until it expires.
  const serial = h.leaf('spiffe://td/a').serialHex;
  h.signer.refuse.add('a');
  h.clock = T0 + 1_800_000;
  await h.mgr.tick();
  assert.ok(h.signer.calls.at(-1)!.includes('a'));
  assert.equal(h.leaf('spiffe://td/a').serialHex, serial);
});

test('an SVID the fake signer returns for a different SPIFFE ID is rejected, not served', async () => {
  const h = new Harness();
  h.signer.wrongId.add('a');
  h.apply({ full: true, upsertedEntries: [entry('a', '/a'), entry('b', '/b')] });
  await h.mgr.tick();
  assert.deepEqual(h.ids(), ['spiffe://td/b']);
  assert.equal(h.mgr.counts.svids, 1);
  assert.ok(h.warnings.some((w) => /another ID/.test(w)));
  assert.ok(h.mgr.identitiesFor([UID]).svids.every((s) => new Certificate(s.certificates[0]!).subjectAltNames.uris[0] === s.spiffeId));
});

test('an SVID past its notAfter is not served, and the next tick drops it and tells watchers (fake signer down)', async () => {
  const h = new Harness({ retryInitialMs: 1000, retryMaxMs: 1000 });
  h.apply({ full: true, upsertedEntries: [entry('a', '/a', { ttl: 100 })] });
  await h.mgr.tick();
  h.signer.down = new Error('unavailable');
  h.clock = T0 + 99_999;
  await h.mgr.tick();
  assert.deepEqual(h.ids(), ['spiffe://td/a'], 'still valid 1 ms before expiry');
  const changes = h.changes;
  h.clock = T0 + 100_000;
  assert.deepEqual(h.ids(), [], 'not served once expired, even before a tick');
  await h.mgr.tick();
  assert.equal(h.mgr.counts.svids, 0);
  assert.equal(h.changes, changes + 1);
  assert.ok(h.warnings.some((w) => /expired/.test(w)));
  await h.mgr.tick();
  assert.equal(h.changes, changes + 1, 'dropped once');
  h.signer.down = undefined;
  h.clock = h.mgr.nextWakeAt()!.getTime();
  await h.mgr.tick();
  assert.deepEqual(h.ids(), ['spiffe://td/a'], 'signed again once the server is back');
});

test('change notifications fire exactly when what a workload can see changes (counted)', async () => {
  const h = new Harness();
  let other = 0;
  h.mgr.onChange(() => {
    throw new Error('a broken listener');
  });
  const unsubscribe = h.mgr.onChange(() => other++);
  const steps: [string, () => unknown, number][] = [
    ['setBundle', () => h.mgr.setBundle(h.ownBundle()), 1],
    ['full update with an equal own bundle and unsigned entries', () => h.apply({ full: true, upsertedEntries: [entry('a', '/a'), entry('b', '/b'), entry('alias', '/alias', { parentId: SERVER })], upsertedBundles: [h.ownBundle()] }), 0],
    ['first signing round', () => h.mgr.tick(), 1],
    ['a tick with nothing due', () => h.mgr.tick(), 0],
    ['an identical entry again', () => h.apply({ full: false, upsertedEntries: [entry('a', '/a')] }), 0],
    ['dnsNames added: the SVID is still served until re-signed', () => h.apply({ full: false, upsertedEntries: [entry('b', '/b', { dnsNames: ['y.example', 'x.example'] })] }), 0],
    ['signing b again', () => h.mgr.tick(), 1],
    ['the same dnsNames in another order', () => h.apply({ full: false, upsertedEntries: [entry('b', '/b', { dnsNames: ['x.example', 'y.example'] })] }), 0],
    ['a tick after it', () => h.mgr.tick(), 0],
    ['hint change', () => h.apply({ full: false, upsertedEntries: [entry('a', '/a', { hint: 'primary' })] }), 1],
    ['refresh()', () => h.mgr.refresh(), 1],
    ['removing the node alias (no SVID)', () => h.apply({ full: false, removedEntryIds: ['alias'] }), 0],
    ['removing a', () => h.apply({ full: false, removedEntryIds: ['a'] }), 1],
    ['removing a again', () => h.apply({ full: false, removedEntryIds: ['a'] }), 0],
  ];
  for (const [name, step, expected] of steps) {
    const before = h.changes;
    await step();
    assert.equal(h.changes - before, expected, name);
  }
  assert.equal(other, h.changes, 'a throwing listener does not stop the others');
  unsubscribe();
  h.mgr.refresh();
  assert.equal(other, h.changes - 1, 'unsubscribed');
});

test('entry changes: spiffeId, TTL or dnsNames → re-signed; hint or federatesWith → same SVID, new metadata (fake signer)', async () => {
  const h = new Harness();
  h.apply({ full: true, upsertedEntries: [entry('a', '/a', { ttl: 600 })] });
  await h.mgr.tick();
  const leaf0 = h.leaf('spiffe://td/a');

  h.apply({ full: false, upsertedEntries: [entry('a', '/a2', { ttl: 600 })] });
  assert.deepEqual(h.ids(), [], 'the SVID for the old ID is not served any more');
  await h.mgr.tick();
  assert.deepEqual(h.ids(), ['spiffe://td/a2']);
  assert.deepEqual(h.leaf('spiffe://td/a2').subjectAltNames.uris, ['spiffe://td/a2']);

  h.apply({ full: false, upsertedEntries: [entry('a', '/a2', { ttl: 1200 })] });
  await h.mgr.tick();
  const l2 = h.leaf('spiffe://td/a2');
  assert.equal(l2.notAfter.getTime() - l2.notBefore.getTime(), 1_200_000);

  h.apply({ full: false, upsertedEntries: [entry('a', '/a2', { ttl: 1200, dnsNames: ['a.example'] })] });
  await h.mgr.tick();
  assert.deepEqual(h.leaf('spiffe://td/a2').subjectAltNames.dnsNames, ['a.example']);
  assert.equal(h.signCalls, 4, 'one signing per SVID-relevant change');
  assert.notEqual(h.leaf('spiffe://td/a2').serialHex, leaf0.serialHex);

  const serial = h.leaf('spiffe://td/a2').serialHex;
  h.apply({ full: false, upsertedEntries: [entry('a', '/a2', { ttl: 1200, dnsNames: ['a.example'], hint: 'internal', federatesWith: ['partner.test'] })] });
  await h.mgr.tick();
  assert.equal(h.signCalls, 4, 'no re-signing for hint / federatesWith');
  const s = h.served().get('spiffe://td/a2')!;
  assert.equal(new Certificate(s.certificates[0]!).serialHex, serial);
  assert.equal(s.hint, 'internal');
  assert.deepEqual(s.federatesWith, ['partner.test']);
  h.apply({ full: false, upsertedEntries: [entry('a', '/a2', { ttl: 1200, dnsNames: ['a.example'], hint: 'internal', federatesWith: ['partner.test', 'third.test'] })] });
  assert.deepEqual(h.served().get('spiffe://td/a2')!.federatesWith, ['partner.test', 'third.test']);
  assert.equal(h.signCalls, 4);
});

async function jwtHarness(options: Partial<SvidManagerOptions> = {}): Promise<Harness> {
  const h = new Harness(options);
  h.apply({ full: true, upsertedEntries: [entry('a', '/a', { ttl: 86_400 }), entry('b', '/b', { ttl: 86_400 })] });
  await h.mgr.tick();
  return h;
}

test('JWT-SVIDs (fake signer): cached per (SPIFFE ID, sorted audience), re-minted after half their lifetime', async () => {
  const h = await jwtHarness();
  const t1 = await h.mgr.fetchJwtSvid('spiffe://td/a', ['b-aud', 'a-aud']);
  const t2 = await h.mgr.fetchJwtSvid('spiffe://td/a', ['a-aud', 'b-aud']);
  assert.equal(t2.token, t1.token, 'audience order does not matter');
  assert.equal(h.signer.jwtCalls.length, 1);
  assert.deepEqual(h.signer.jwtCalls[0], { entryId: 'a', audience: ['b-aud', 'a-aud'] });
  assert.notEqual((await h.mgr.fetchJwtSvid('spiffe://td/a', ['a-aud'])).token, t1.token, 'another audience set: another token');
  assert.notEqual((await h.mgr.fetchJwtSvid('spiffe://td/b', ['a-aud', 'b-aud'])).token, t1.token, 'another ID: another token');
  assert.equal(h.signer.jwtCalls.length, 3);
  assert.equal(h.mgr.counts.jwtSvids, 3);

  // 300 s tokens: cached for 150 s.
  h.clock = T0 + 149_999;
  assert.equal((await h.mgr.fetchJwtSvid('spiffe://td/a', ['a-aud', 'b-aud'])).token, t1.token);
  assert.equal(h.signer.jwtCalls.length, 3);
  h.clock = T0 + 150_000;
  const t3 = await h.mgr.fetchJwtSvid('spiffe://td/a', ['a-aud', 'b-aud']);
  assert.equal(h.signer.jwtCalls.length, 4);
  assert.notEqual(t3.token, t1.token);
  assert.equal(t3.expiresAt.getTime(), T0 + 450_000);
  assert.equal((await h.mgr.fetchJwtSvid('spiffe://td/a', ['b-aud', 'a-aud'])).token, t3.token, 'the new one is cached');

  // No SVID held for the ID: refused without asking the server.
  await assert.rejects(h.mgr.fetchJwtSvid('spiffe://td/unknown', ['x']), /no entry for spiffe:\/\/td\/unknown/);
  assert.equal(h.signer.jwtCalls.length, 4);
});

test('JWT-SVIDs (fake signer): concurrent fetches share one mint; a failed mint is not cached', async () => {
  const h = await jwtHarness();
  let release!: () => void;
  h.signer.jwtGate = new Promise<void>((r) => (release = r));
  const p = [h.mgr.fetchJwtSvid('spiffe://td/a', ['x', 'y']), h.mgr.fetchJwtSvid('spiffe://td/a', ['y', 'x']), h.mgr.fetchJwtSvid('spiffe://td/a', ['x', 'y'])];
  release();
  const tokens = await Promise.all(p);
  assert.equal(h.signer.jwtCalls.length, 1);
  assert.equal(new Set(tokens.map((t) => t.token)).size, 1);

  h.signer.jwtGate = undefined;
  h.signer.jwtDown = new Error('unavailable');
  await assert.rejects(h.mgr.fetchJwtSvid('spiffe://td/b', ['x']), /unavailable/);
  h.signer.jwtDown = undefined;
  await h.mgr.fetchJwtSvid('spiffe://td/b', ['x']);
  assert.equal(h.signer.jwtCalls.length, 3, 'tried again after the failure');
});

test('JWT-SVIDs (fake signer down): the cached token is returned while still valid, an error once it expired', async () => {
  const h = await jwtHarness();
  const t1 = await h.mgr.fetchJwtSvid('spiffe://td/a', ['x']);
  h.signer.jwtDown = new Error('connect ECONNREFUSED');
  h.clock = T0 + 200_000; // past half-life: a re-mint is attempted
  assert.equal((await h.mgr.fetchJwtSvid('spiffe://td/a', ['x'])).token, t1.token);
  assert.equal(h.signer.jwtCalls.length, 2);
  h.clock = T0 + 299_999;
  assert.equal((await h.mgr.fetchJwtSvid('spiffe://td/a', ['x'])).token, t1.token);
  h.clock = T0 + 300_000;
  await assert.rejects(h.mgr.fetchJwtSvid('spiffe://td/a', ['x']), /ECONNREFUSED/);
});

test('JWT-SVIDs (fake signer): removing an entry drops its tokens, also one being minted at that moment; the cache is bounded', async () => {
  const h = await jwtHarness({ maxJwtSvids: 2 });
  await h.mgr.fetchJwtSvid('spiffe://td/a', ['x']);
  await h.mgr.fetchJwtSvid('spiffe://td/b', ['x']);
  assert.equal(h.mgr.counts.jwtSvids, 2);
  h.apply({ full: false, removedEntryIds: ['a'] });
  assert.equal(h.mgr.counts.jwtSvids, 1);
  await assert.rejects(h.mgr.fetchJwtSvid('spiffe://td/a', ['x']), /no entry/);

  // Removal while a mint is in flight: the late token must not be cached for the removed entry.
  let release!: () => void;
  h.signer.jwtGate = new Promise<void>((r) => (release = r));
  const inFlight = h.mgr.fetchJwtSvid('spiffe://td/b', ['late']);
  h.apply({ full: false, removedEntryIds: ['b'] });
  release();
  assert.ok((await inFlight).token, 'the caller that asked before the removal gets its answer');
  h.signer.jwtGate = undefined;
  assert.equal(h.mgr.counts.jwtSvids, 0);
  await assert.rejects(h.mgr.fetchJwtSvid('spiffe://td/b', ['late']), /no entry/);

  // Bounded: the oldest goes first.
  h.apply({ full: false, upsertedEntries: [entry('c', '/c', { ttl: 86_400 })] });
  await h.mgr.tick();
  for (const aud of ['1', '2', '3']) await h.mgr.fetchJwtSvid('spiffe://td/c', [aud]);
  assert.equal(h.mgr.counts.jwtSvids, 2);
  const calls = h.signer.jwtCalls.length;
  await h.mgr.fetchJwtSvid('spiffe://td/c', ['3']);
  assert.equal(h.signer.jwtCalls.length, calls, 'the newest is cached');
  await h.mgr.fetchJwtSvid('spiffe://td/c', ['1']);
  assert.equal(h.signer.jwtCalls.length, calls + 1, 'the oldest was dropped');
});

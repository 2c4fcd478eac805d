/**
 * Several servers sharing a database: each keeps its own CA and JWT keys and
 * contributes its authorities; the published bundle is the union, with
 * `spiffe_sequence` bumped only when the union changes (SPIFFE Trust Domain
 * and Bundle §4). SVIDs of every server verify against the merged bundle.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { SpiffeBundle } from '@tessera/spiffe/bundle';
import { TrustDomain } from '@tessera/spiffe/id';
import { JwtSvid, verifyX509Svid } from '@tessera/spiffe/svid';
import {
  CaError,
  marshalBundleContribution,
  MemoryCaJournal,
  MemoryKeyManager,
  mergeBundleContributions,
  parseBundleContribution,
  ServerCa,
  type BundleContribution,
} from '../../src/server/ca/index.js';

const T0 = Date.parse('2031-03-01T00:00:00.000Z');
const td = TrustDomain.parse('example.org');
const WEB = 'spiffe://example.org/web';

async function server(clock: { t: number }): Promise<ServerCa> {
  return ServerCa.open({ trustDomain: td, keyManager: new MemoryKeyManager(), journal: new MemoryCaJournal(), now: () => new Date(clock.t) });
}

describe('mergeBundleContributions', () => {
  test('two servers: the union verifies SVIDs and JWT-SVIDs of both; the sequence moves only on change', async () => {
    const clock = { t: T0 };
    const a = await server(clock);
    const b = await server(clock);
    const first = mergeBundleContributions(td, [a.bundleContribution(), b.bundleContribution()], { refreshHintSeconds: 300 });
    assert.ok(first.changed);
    assert.equal(first.bundle.sequenceNumber, 1);
    assert.equal(first.bundle.x509Authorities().length, 2);
    assert.equal(first.bundle.jwtAuthorities().size, 2);
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    for (const ca of [a, b]) {
      verifyX509Svid((await ca.signX509Svid({ spiffeId: WEB, publicKey: key })).certificates, first.bundle, { time: new Date(clock.t) });
      JwtSvid.parseAndValidate(ca.signJwtSvid({ spiffeId: WEB, audience: 'db' }).token, first.bundle, 'db', { time: new Date(clock.t) });
    }

    // Same contributions, other order: unchanged, same sequence, same document.
    const again = mergeBundleContributions(td, [b.bundleContribution(), a.bundleContribution()], { previous: first.bundle });
    assert.equal(again.changed, false);
    assert.equal(again.bundle.sequenceNumber, 1);
    assert.equal(again.bundle.marshal(), first.bundle.marshal());

    // Server A rotates (prepares): one bump.
    clock.t = a.nextRotationAt()!.getTime();
    await a.tick();
    const third = mergeBundleContributions(td, [a.bundleContribution(), b.bundleContribution()], { previous: again.bundle });
    assert.ok(third.changed);
    assert.equal(third.bundle.sequenceNumber, 2);
    assert.equal(third.bundle.x509Authorities().length, 3);
    assert.equal(third.bundle.refreshHintSeconds, 300, 'kept from the previous bundle');
  });

  test('duplicates count once; expired authorities of a stale contribution are dropped when `now` is given', async () => {
    const clock = { t: T0 };
    const a = await server(clock);
    const c = a.bundleContribution();
    const merged = mergeBundleContributions(td, [c, c]);
    assert.equal(merged.bundle.x509Authorities().length, 1);
    assert.equal(merged.bundle.jwtAuthorities().size, 1);
    const later = mergeBundleContributions(td, [c], { now: new Date(T0 + 3 * 86400_000), previous: merged.bundle });
    assert.ok(later.changed);
    assert.ok(later.bundle.isEmpty());
    assert.equal(later.bundle.sequenceNumber, 2);
  });

  test('one kid with two different keys is CA_BUNDLE_CONFLICT', async () => {
    const clock = { t: T0 };
    const a = (await server(clock)).bundleContribution();
    const b = (await server(clock)).bundleContribution();
    const forged: BundleContribution = { x509Authorities: [], jwtAuthorities: [{ ...b.jwtAuthorities[0]!, keyId: a.jwtAuthorities[0]!.keyId }] };
    assert.throws(() => mergeBundleContributions(td, [a, forged]), (e: unknown) => e instanceof CaError && e.code === 'CA_BUNDLE_CONFLICT');
  });

  test('a previous bundle without a sequence number starts at 1; unchanged content keeps any sequence', async () => {
    const c = (await server({ t: T0 })).bundleContribution();
    const m = mergeBundleContributions(td, [c]);
    const previous = m.bundle.clone();
    previous.setSequenceNumber(41);
    assert.equal(mergeBundleContributions(td, [c], { previous }).bundle.sequenceNumber, 41);
    const noSeq = new SpiffeBundle(td, { x509Authorities: m.bundle.x509Authorities() });
    assert.equal(mergeBundleContributions(td, [c], { previous: noSeq }).bundle.sequenceNumber, 1);
  });
});

test('contributions round-trip through JSON for the datastore; malformed JSON is CA_JOURNAL_INVALID', async () => {
  const c = (await server({ t: T0 })).bundleContribution();
  const back = parseBundleContribution(marshalBundleContribution(c));
  assert.deepEqual(back.x509Authorities, c.x509Authorities);
  assert.equal(back.jwtAuthorities[0]!.keyId, c.jwtAuthorities[0]!.keyId);
  assert.ok(back.jwtAuthorities[0]!.publicKey.equals(c.jwtAuthorities[0]!.publicKey));
  assert.equal(back.jwtAuthorities[0]!.expiresAt.getTime(), c.jwtAuthorities[0]!.expiresAt.getTime());
  assert.equal(mergeBundleContributions(td, [back]).bundle.marshal(), mergeBundleContributions(td, [c]).bundle.marshal());
  for (const bad of ['', '{}', '{"x509Authorities":["AAAA"],"jwtAuthorities":[]}', '{"x509Authorities":[],"jwtAuthorities":[{"keyId":"k"}]}']) {
    assert.throws(() => parseBundleContribution(bad), (e: unknown) => e instanceof CaError && e.code === 'CA_JOURNAL_INVALID', bad);
  }
});

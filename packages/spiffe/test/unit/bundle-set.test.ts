import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { TestCa } from '../../src/testing/index.js';
import { TrustDomain } from '../../src/id/index.js';
import { JwtBundleSet, SpiffeBundle, SpiffeBundleSet, X509BundleSet } from '../../src/bundle/index.js';
import { verifyX509Svid } from '../../src/svid/index.js';

const a = new TestCa({ trustDomain: 'a.example' });
const b = new TestCa({ trustDomain: 'b.example' });
const c = new TestCa({ trustDomain: 'c.example' });
const tdA = TrustDomain.parse('a.example');
const tdB = TrustDomain.parse('b.example');
const tdC = TrustDomain.parse('c.example');
const missing = TrustDomain.parse('missing.example');

const notFound = (kind: string) => ({ name: 'BundleError', code: 'ERR_BUNDLE_NOT_FOUND', message: `no ${kind} bundle found for trust domain "missing.example"` });

function spiffeBundle(ca: TestCa): SpiffeBundle {
  return new SpiffeBundle(ca.trustDomain, { x509Authorities: [ca.certificate], jwtAuthorities: ca.jwtBundle().jwtAuthorities(), sequenceNumber: 1 });
}

describe('X509BundleSet', () => {
  test('holds one bundle per trust domain, listed sorted by name', () => {
    const set = new X509BundleSet(c.x509Bundle(), a.x509Bundle(), b.x509Bundle());
    assert.equal(set.len(), 3);
    assert.deepEqual(set.bundles().map((x) => x.trustDomain.name), ['a.example', 'b.example', 'c.example']);
    assert.ok(set.has(tdB));
    assert.ok(!set.has(missing));
    assert.equal(set.get(missing), undefined);
    assert.ok(set.get(tdA)?.equals(a.x509Bundle()));
  });

  test('add replaces the bundle of the same trust domain', () => {
    const replacement = new TestCa({ trustDomain: 'a.example' }).x509Bundle();
    const set = new X509BundleSet(a.x509Bundle());
    set.add(replacement);
    assert.equal(set.len(), 1);
    assert.equal(set.get(tdA), replacement);
    assert.equal(new X509BundleSet(a.x509Bundle(), replacement).get(tdA), replacement);
  });

  test('remove drops a trust domain; removing an absent one is a no-op', () => {
    const set = new X509BundleSet(a.x509Bundle(), b.x509Bundle());
    set.remove(tdA);
    set.remove(missing);
    assert.equal(set.len(), 1);
    assert.ok(!set.has(tdA));
    assert.ok(set.has(tdB));
  });

  test('source lookups', () => {
    const bundleB = b.x509Bundle();
    const set = new X509BundleSet(a.x509Bundle(), bundleB);
    assert.equal(set.getX509BundleForTrustDomain(tdB), bundleB);
    assert.throws(() => set.getX509BundleForTrustDomain(missing), notFound('X.509'));
  });

  test('verifies SVIDs of every trust domain it holds, and only those', () => {
    const set = new X509BundleSet(a.x509Bundle(), b.x509Bundle());
    const svid = b.createX509Svid('spiffe://b.example/web');
    assert.equal(verifyX509Svid(svid.certificates, set).id.toString(), 'spiffe://b.example/web');
    const foreign = c.createX509Svid('spiffe://c.example/web');
    assert.throws(() => verifyX509Svid(foreign.certificates, set));
  });
});

describe('JwtBundleSet', () => {
  test('add, has, get, remove, bundles, len', () => {
    const set = new JwtBundleSet(b.jwtBundle());
    set.add(a.jwtBundle());
    assert.equal(set.len(), 2);
    assert.deepEqual(set.bundles().map((x) => x.trustDomain.name), ['a.example', 'b.example']);
    assert.ok(set.get(tdA)?.hasJwtAuthority(a.jwtKeyId));
    set.remove(tdA);
    assert.ok(!set.has(tdA));
    assert.equal(set.get(tdA), undefined);
  });

  test('source lookups', () => {
    const bundleA = a.jwtBundle();
    const set = new JwtBundleSet(bundleA);
    assert.equal(set.getJwtBundleForTrustDomain(tdA), bundleA);
    assert.throws(() => set.getJwtBundleForTrustDomain(missing), notFound('JWT'));
  });

  test('an empty set finds nothing', () => {
    const set = new JwtBundleSet();
    assert.equal(set.len(), 0);
    assert.deepEqual(set.bundles(), []);
    assert.throws(() => set.getJwtBundleForTrustDomain(tdA), { code: 'ERR_BUNDLE_NOT_FOUND' });
  });
});

describe('SpiffeBundleSet', () => {
  test('add replaces, bundles sorted', () => {
    const set = new SpiffeBundleSet(spiffeBundle(c), spiffeBundle(a));
    const newer = spiffeBundle(a);
    newer.setSequenceNumber(2);
    set.add(newer);
    assert.equal(set.len(), 2);
    assert.deepEqual(set.bundles().map((x) => x.trustDomain.name), ['a.example', 'c.example']);
    assert.equal(set.get(tdA)?.sequenceNumber, 2);
    assert.ok(set.has(tdC));
  });

  test('serves SPIFFE, X.509 and JWT bundles by converting', () => {
    const sb = spiffeBundle(b);
    const set = new SpiffeBundleSet(spiffeBundle(a), sb);
    assert.equal(set.getSpiffeBundleForTrustDomain(tdB), sb);
    assert.ok(set.getX509BundleForTrustDomain(tdB).equals(b.x509Bundle()));
    assert.ok(set.getJwtBundleForTrustDomain(tdB).equals(b.jwtBundle()));
  });

  test('lookups for an absent trust domain throw ERR_BUNDLE_NOT_FOUND', () => {
    const set = new SpiffeBundleSet(spiffeBundle(a));
    assert.throws(() => set.getSpiffeBundleForTrustDomain(missing), notFound('SPIFFE'));
    assert.throws(() => set.getX509BundleForTrustDomain(missing), notFound('X.509'));
    assert.throws(() => set.getJwtBundleForTrustDomain(missing), notFound('JWT'));
  });

  test('usable as an X509BundleSource for SVID verification', () => {
    const set = new SpiffeBundleSet(spiffeBundle(a));
    const svid = a.createX509Svid('spiffe://a.example/db');
    assert.equal(verifyX509Svid(svid.certificates, set).id.toString(), 'spiffe://a.example/db');
    set.remove(tdA);
    assert.throws(() => verifyX509Svid(svid.certificates, set));
  });
});

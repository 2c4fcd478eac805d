import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCa } from '../../src/testing/index.js';
import { TrustDomain } from '../../src/id/index.js';
import { X509Bundle } from '../../src/bundle/index.js';
import { encodePem } from '../../src/internal/pem.js';

const td = TrustDomain.parse('example.org');
const other = TrustDomain.parse('other.org');
const ca1 = new TestCa({ trustDomain: td });
const ca2 = new TestCa({ trustDomain: td, keyType: 'rsa-2048' });
const dir = mkdtempSync(join(tmpdir(), 'x509-bundle-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const invalid = (message?: RegExp) => ({ name: 'BundleError', code: 'ERR_BUNDLE_INVALID', ...(message ? { message } : {}) });

describe('X509Bundle parse and marshal', () => {
  test('PEM round trip keeps every authority in order', () => {
    const b = new X509Bundle(td, [ca1.certificate, ca2.certificate]);
    const pem = b.marshal();
    assert.equal(pem.match(/-----BEGIN CERTIFICATE-----/g)?.length, 2);
    const parsed = X509Bundle.parse(td, pem);
    assert.deepEqual(parsed.x509Authorities(), [ca1.certificate, ca2.certificate]);
    assert.ok(parsed.equals(b));
    assert.equal(parsed.marshal(), pem);
  });

  test('PEM given as bytes parses the same as text', () => {
    const pem = new X509Bundle(td, [ca1.certificate]).marshal();
    assert.deepEqual(X509Bundle.parse(td, Buffer.from(pem)).x509Authorities(), [ca1.certificate]);
  });

  test('DER round trip of concatenated certificates (Workload API form)', () => {
    const b = new X509Bundle(td, [ca1.certificate, ca2.certificate]);
    const der = b.marshalDer();
    assert.deepEqual(der, Buffer.concat([ca1.certificate, ca2.certificate]));
    const parsed = X509Bundle.parseDer(td, der);
    assert.deepEqual(parsed.x509Authorities(), [ca1.certificate, ca2.certificate]);
    assert.deepEqual(parsed.marshalDer(), der);
  });

  test('empty input is an empty bundle', () => {
    assert.ok(X509Bundle.parse(td, '').isEmpty());
    assert.ok(X509Bundle.parseDer(td, Buffer.alloc(0)).isEmpty());
    assert.equal(new X509Bundle(td).marshal(), '');
  });

  test('a non-CERTIFICATE PEM block is rejected', () => {
    const pem = encodePem('CERTIFICATE', ca1.certificate) + encodePem('PRIVATE KEY', Buffer.from([0x30, 0x00]));
    assert.throws(() => X509Bundle.parse(td, pem), invalid(/"PRIVATE KEY"/));
  });

  test('text without PEM blocks is rejected', () => {
    assert.throws(() => X509Bundle.parse(td, 'not a bundle'), invalid(/no PEM blocks/));
  });

  test('a PEM block that is not base64 is rejected', () => {
    assert.throws(() => X509Bundle.parse(td, '-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n'), invalid());
  });

  test('a CERTIFICATE block holding garbage is rejected', () => {
    assert.throws(() => X509Bundle.parse(td, encodePem('CERTIFICATE', Buffer.from('garbage'))), invalid());
  });

  test('garbage DER is rejected', () => {
    assert.throws(() => X509Bundle.parseDer(td, Buffer.from([0x30, 0x82, 0xff])), invalid());
    assert.throws(() => X509Bundle.parseDer(td, Buffer.concat([ca1.certificate, Buffer.from([0x01])])), invalid());
  });

  test('load reads PEM and DER files', () => {
    const b = new X509Bundle(td, [ca1.certificate, ca2.certificate]);
    const pemPath = join(dir, 'bundle.pem');
    const derPath = join(dir, 'bundle.der');
    writeFileSync(pemPath, b.marshal());
    writeFileSync(derPath, b.marshalDer());
    assert.ok(X509Bundle.load(td, pemPath).equals(b));
    assert.ok(X509Bundle.load(td, derPath).equals(b));
  });

  test('load of a missing file is ERR_BUNDLE_INVALID naming the path', () => {
    const missing = join(dir, 'missing.pem');
    assert.throws(() => X509Bundle.load(td, missing), invalid(/missing\.pem/));
  });
});

describe('X509Bundle content', () => {
  test('add ignores duplicates; has and remove work by DER', () => {
    const b = new X509Bundle(td);
    b.addX509Authority(ca1.certificate);
    b.addX509Authority(Buffer.from(ca1.certificate));
    assert.equal(b.x509Authorities().length, 1);
    assert.ok(b.hasX509Authority(ca1.certificate));
    assert.ok(!b.hasX509Authority(ca2.certificate));
    b.removeX509Authority(ca1.certificate);
    assert.ok(b.isEmpty());
  });

  test('add rejects a malformed certificate', () => {
    assert.throws(() => new X509Bundle(td).addX509Authority(Buffer.from('nope')), invalid());
  });

  test('equals ignores order but not trust domain or content', () => {
    const a = new X509Bundle(td, [ca1.certificate, ca2.certificate]);
    assert.ok(a.equals(new X509Bundle(td, [ca2.certificate, ca1.certificate])));
    assert.ok(!a.equals(new X509Bundle(other, [ca1.certificate, ca2.certificate])));
    assert.ok(!a.equals(new X509Bundle(td, [ca1.certificate])));
  });

  test('clone is independent', () => {
    const a = new X509Bundle(td, [ca1.certificate]);
    const c = a.clone();
    c.addX509Authority(ca2.certificate);
    assert.equal(a.x509Authorities().length, 1);
    assert.equal(c.x509Authorities().length, 2);
  });
});

describe('X509Bundle as a source', () => {
  test('returns itself for its own trust domain', () => {
    const b = ca1.x509Bundle();
    assert.equal(b.getX509BundleForTrustDomain(TrustDomain.parse('example.org')), b);
  });

  test('throws ERR_BUNDLE_NOT_FOUND for another trust domain', () => {
    assert.throws(() => ca1.x509Bundle().getX509BundleForTrustDomain(other), {
      name: 'BundleError',
      code: 'ERR_BUNDLE_NOT_FOUND',
      message: 'no X.509 bundle found for trust domain "other.org"',
    });
  });
});

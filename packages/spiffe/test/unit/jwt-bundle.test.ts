import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCa, generateKey } from '../../src/testing/index.js';
import { TrustDomain } from '../../src/id/index.js';
import { JwtBundle } from '../../src/bundle/index.js';

const td = TrustDomain.parse('example.org');
const other = TrustDomain.parse('other.org');
const ca = new TestCa({ trustDomain: td });
const rsa = createPublicKey(generateKey('rsa-2048'));
const ed = createPublicKey(generateKey('ed25519'));
const dir = mkdtempSync(join(tmpdir(), 'jwt-bundle-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const invalid = (message?: RegExp) => ({ name: 'BundleError', code: 'ERR_BUNDLE_INVALID', ...(message ? { message } : {}) });

function keysOf(json: string): Record<string, unknown>[] {
  return (JSON.parse(json) as { keys: Record<string, unknown>[] }).keys;
}

describe('JwtBundle parse and marshal', () => {
  test('round trip of EC, RSA and Ed25519 keys', () => {
    const b = new JwtBundle(td, [['ec', createPublicKey(ca.jwtKey)], ['rsa', rsa], ['ed', ed]]);
    const json = b.marshal();
    const keys = keysOf(json);
    assert.deepEqual(keys.map((k) => [k['kid'], k['kty'], k['use']]), [
      ['ec', 'EC', 'jwt-svid'],
      ['rsa', 'RSA', 'jwt-svid'],
      ['ed', 'OKP', 'jwt-svid'],
    ]);
    const parsed = JwtBundle.parse(td, json);
    assert.ok(parsed.equals(b));
    assert.equal(parsed.marshal(), json);
    assert.ok(parsed.findJwtAuthority('rsa')?.equals(rsa));
  });

  test('bytes parse the same as text', () => {
    const json = ca.jwtBundle().marshal();
    assert.ok(JwtBundle.parse(td, Buffer.from(json)).equals(ca.jwtBundle()));
  });

  test('empty key set is an empty bundle', () => {
    assert.ok(JwtBundle.parse(td, '{"keys":[]}').isEmpty());
  });

  test('garbage is rejected', () => {
    assert.throws(() => JwtBundle.parse(td, 'not json'), invalid(/invalid JSON/));
    assert.throws(() => JwtBundle.parse(td, '[]'), invalid(/not a JSON object/));
    assert.throws(() => JwtBundle.parse(td, '{"keys":{}}'), invalid(/"keys" must be an array/));
    assert.throws(() => JwtBundle.parse(td, '{}'), invalid(/"keys" must be an array/));
    assert.throws(() => JwtBundle.parse(td, '{"keys":[1]}'), invalid(/key 0 is not an object/));
  });

  test('a key without kid is rejected', () => {
    const [k] = keysOf(ca.jwtBundle().marshal());
    delete k!['kid'];
    assert.throws(() => JwtBundle.parse(td, JSON.stringify({ keys: [k] })), invalid(/key 0 .*"kid"/));
  });

  test('a duplicate kid is rejected', () => {
    const [k] = keysOf(ca.jwtBundle().marshal());
    assert.throws(() => JwtBundle.parse(td, JSON.stringify({ keys: [k, k] })), invalid(/duplicate key ID/));
  });

  test('private key material is rejected', () => {
    const jwk = { ...(ca.jwtKey.export({ format: 'jwk' }) as Record<string, unknown>), kid: 'k', use: 'jwt-svid' };
    assert.throws(() => JwtBundle.parse(td, JSON.stringify({ keys: [jwk] })), invalid(/private key material/));
  });

  test('an unsupported key type is rejected', () => {
    assert.throws(() => JwtBundle.parse(td, '{"keys":[{"kty":"oct","k":"AAAA","kid":"k"}]}'), invalid(/unsupported key type "oct"/));
  });

  test('an EC key with a missing coordinate is rejected', () => {
    const [k] = keysOf(ca.jwtBundle().marshal());
    delete k!['y'];
    assert.throws(() => JwtBundle.parse(td, JSON.stringify({ keys: [k] })), invalid(/"x" and "y"/));
  });

  test('load reads a JWKS file; a missing file is ERR_BUNDLE_INVALID', () => {
    const p = join(dir, 'jwks.json');
    writeFileSync(p, ca.jwtBundle().marshal());
    assert.ok(JwtBundle.load(td, p).equals(ca.jwtBundle()));
    assert.throws(() => JwtBundle.load(td, join(dir, 'absent.json')), invalid(/absent\.json/));
  });
});

describe('JwtBundle content', () => {
  test('add stores only the public half of a private key', () => {
    const b = new JwtBundle(td);
    b.addJwtAuthority('k', ca.jwtKey);
    assert.equal(b.findJwtAuthority('k')?.type, 'public');
    assert.ok(b.findJwtAuthority('k')?.equals(createPublicKey(ca.jwtKey)));
  });

  test('add rejects an empty key ID', () => {
    assert.throws(() => new JwtBundle(td).addJwtAuthority('', rsa), invalid(/must not be empty/));
  });

  test('has, remove, equals and clone', () => {
    const a = new JwtBundle(td, [['a', rsa]]);
    const c = a.clone();
    c.addJwtAuthority('b', ed);
    assert.ok(a.hasJwtAuthority('a') && !a.hasJwtAuthority('b'));
    assert.ok(!a.equals(c));
    c.removeJwtAuthority('b');
    assert.ok(a.equals(c));
    assert.ok(!a.equals(new JwtBundle(td, [['a', ed]])));
    assert.ok(!a.equals(new JwtBundle(other, [['a', rsa]])));
  });
});

describe('JwtBundle as a source', () => {
  test('returns itself for its own trust domain', () => {
    const b = ca.jwtBundle();
    assert.equal(b.getJwtBundleForTrustDomain(TrustDomain.parse('example.org')), b);
  });

  test('throws ERR_BUNDLE_NOT_FOUND for another trust domain', () => {
    assert.throws(() => ca.jwtBundle().getJwtBundleForTrustDomain(other), {
      name: 'BundleError',
      code: 'ERR_BUNDLE_NOT_FOUND',
      message: 'no JWT bundle found for trust domain "other.org"',
    });
  });
});

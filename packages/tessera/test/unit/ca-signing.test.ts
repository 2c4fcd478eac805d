/**
 * X509-SVID and JWT-SVID signing by the server CA: the exact certificate
 * profile (X509-SVID §4, spec/spiffe.md §2, SPIRE's leaf), every issued SVID
 * passing the library's strict parse (`X509Svid.fromParts`) and verification
 * (`verifyX509Svid`) against the CA's own bundle, every CA and workload key
 * type, JWT-SVIDs validating against the published JWT keys, and typed
 * errors for every bad request. Clock injected; keys and journal in memory.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SpiffeId } from '@tessera/spiffe/id';
import { JwtSvid, X509Svid, verifyX509Svid } from '@tessera/spiffe/svid';
import { buildCertificateRequest, Certificate, encodeSubjectPublicKeyInfo, keyIdentifier, KeyUsage, OID } from '@tessera/spiffe/x509';
import { CaError, MemoryCaJournal, MemoryKeyManager, ServerCa, type CaKeyType, type ServerCaOptions, type SignedX509Svid } from '../../src/server/ca/index.js';

const T0 = Date.parse('2031-03-01T12:00:00.250Z');
const TD = 'example.org';
const WEB = 'spiffe://example.org/ns/prod/sa/web';

async function openCa(extra: Partial<ServerCaOptions> = {}, clock = { t: T0 }): Promise<{ ca: ServerCa; clock: { t: number } }> {
  const ca = await ServerCa.open({ trustDomain: TD, keyManager: new MemoryKeyManager(), journal: new MemoryCaJournal(), now: () => new Date(clock.t), ...extra });
  return { ca, clock };
}

const p256 = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;

/** Parses with the key (go-spiffe's rules) and verifies against the CA's bundle at `time`. */
function assertValidSvid(ca: ServerCa, signed: SignedX509Svid, key: KeyObject, id: string, time: Date): Certificate {
  const svid = X509Svid.fromParts(signed.certificates, key);
  assert.equal(svid.id.toString(), id);
  const verified = verifyX509Svid(signed.certificates, ca.bundle(), { time });
  assert.equal(verified.id.toString(), id);
  return new Certificate(signed.certificates[0]!);
}

function rejectsWith(code: CaError['code'], re: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof CaError, `expected CaError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, re);
    return true;
  };
}

describe('X509-SVID profile', () => {
  test('a CSR-signed SVID carries exactly SPIRE\'s leaf profile and verifies', async () => {
    const { ca } = await openCa();
    const key = p256();
    const signed = await ca.signX509Svid({ spiffeId: WEB, csr: buildCertificateRequest(key, { uris: [WEB] }), dnsNames: ['web.prod.svc', 'web'] });
    const leaf = assertValidSvid(ca, signed, key, WEB, new Date(T0));
    assert.equal(signed.certificates.length, 1, 'self-signed root: only the leaf is sent');
    const root = new Certificate(ca.bundle().x509Authorities()[0]!);
    assert.equal(leaf.version, 3);
    assert.equal(leaf.serial.length, 16);
    assert.ok(leaf.serial[0]! > 0 && leaf.serial[0]! < 0x80, 'positive, minimal 16-octet serial');
    assert.deepEqual(leaf.subject, [
      { oid: OID.country, value: 'US' },
      { oid: OID.organization, value: 'SPIRE' },
      { oid: OID.commonName, value: 'web.prod.svc' },
    ]);
    assert.deepEqual(leaf.issuerRaw, root.subjectRaw);
    assert.deepEqual(leaf.subjectAltNames.uris, [WEB]);
    assert.deepEqual(leaf.subjectAltNames.dnsNames, ['web.prod.svc', 'web']);
    assert.deepEqual(leaf.basicConstraints, { critical: true, ca: false, pathLen: undefined });
    assert.deepEqual(leaf.keyUsage, { critical: true, bits: KeyUsage.digitalSignature | KeyUsage.keyEncipherment | KeyUsage.keyAgreement });
    assert.deepEqual(leaf.extKeyUsage, [OID.serverAuth, OID.clientAuth]);
    assert.deepEqual(leaf.subjectKeyId, keyIdentifier(encodeSubjectPublicKeyInfo(key)));
    assert.deepEqual(leaf.authorityKeyId, root.subjectKeyId);
    assert.equal(leaf.signatureAlgorithm, OID.ecdsaWithSha256);
    assert.equal(leaf.notBefore.getTime(), Math.floor(T0 / 1000) * 1000 - 10_000, 'backdated 10 s');
    assert.equal(leaf.notAfter.getTime(), Math.floor((T0 + 3600_000) / 1000) * 1000, 'default TTL 1 h');
    assert.equal(signed.expiresAt.getTime(), leaf.notAfter.getTime());
    assert.deepEqual(leaf.extensions.map((e) => e.oid), [OID.keyUsage, OID.extKeyUsage, OID.basicConstraints, OID.authorityKeyIdentifier, OID.subjectKeyIdentifier, OID.subjectAltName]);
  });

  test('without DNS names the subject is C=US, O=SPIRE; a DNS name over 64 characters is a SAN but not the CN', async () => {
    const { ca } = await openCa();
    const key = p256();
    const plain = new Certificate((await ca.signX509Svid({ spiffeId: WEB, publicKey: key })).certificates[0]!);
    assert.deepEqual(plain.subject.map((a) => a.value), ['US', 'SPIRE']);
    assert.deepEqual(plain.subjectAltNames.dnsNames, []);
    const long = `${'a'.repeat(60)}.example`;
    const c = new Certificate((await ca.signX509Svid({ spiffeId: WEB, publicKey: key, dnsNames: [long] })).certificates[0]!);
    assert.deepEqual(c.subject.map((a) => a.value), ['US', 'SPIRE']);
    assert.deepEqual(c.subjectAltNames.dnsNames, [long]);
  });

  test('serials are unique across 2000 SVIDs', async () => {
    const { ca } = await openCa();
    const key = createPublicKey(p256());
    const serials = new Set<string>();
    for (let i = 0; i < 2000; i++) serials.add(new Certificate((await ca.signX509Svid({ spiffeId: WEB, publicKey: key })).certificates[0]!).serialHex);
    assert.equal(serials.size, 2000);
  });

  test('TTL: explicit, 0 = default, capped at the CA\'s NotAfter', async () => {
    const { ca } = await openCa();
    const key = p256();
    const caNotAfter = new Certificate(ca.bundle().x509Authorities()[0]!).notAfter;
    const s1 = await ca.signX509Svid({ spiffeId: WEB, publicKey: key, ttlSeconds: 120 });
    assert.equal(s1.expiresAt.getTime(), Math.floor((T0 + 120_000) / 1000) * 1000);
    const s0 = await ca.signX509Svid({ spiffeId: WEB, publicKey: key, ttlSeconds: 0 });
    assert.equal(s0.expiresAt.getTime(), Math.floor((T0 + 3600_000) / 1000) * 1000);
    const sLong = await ca.signX509Svid({ spiffeId: WEB, publicKey: key, ttlSeconds: 7 * 86400 });
    assert.equal(sLong.expiresAt.getTime(), caNotAfter.getTime());
    assertValidSvid(ca, sLong, key, WEB, new Date(caNotAfter.getTime()));
    const custom = await openCa({ x509SvidTtlSeconds: 600 });
    assert.equal((await custom.ca.signX509Svid({ spiffeId: WEB, publicKey: key })).expiresAt.getTime(), Math.floor((T0 + 600_000) / 1000) * 1000);
  });

  test('the key may come as a CSR, a KeyObject (public or private) or SPKI DER — same certified key', async () => {
    const { ca } = await openCa();
    const key = p256();
    const spki = encodeSubjectPublicKeyInfo(key);
    for (const request of [{ csr: buildCertificateRequest(key) }, { publicKey: createPublicKey(key) }, { publicKey: key }, { publicKey: spki }]) {
      const signed = await ca.signX509Svid({ spiffeId: WEB, ...request });
      assert.deepEqual(assertValidSvid(ca, signed, key, WEB, new Date(T0)).spki, spki);
    }
  });

  test('csrVerification "inline" checks CSRs on the event loop, with the same results and errors', async () => {
    const { ca } = await openCa({ csrVerification: 'inline' });
    const key = p256();
    const csr = buildCertificateRequest(key, { uris: [WEB] });
    assertValidSvid(ca, await ca.signX509Svid({ spiffeId: WEB, csr }), key, WEB, new Date(T0));
    const forged = Buffer.from(csr);
    forged[forged.length - 3]! ^= 0xff;
    await assert.rejects(ca.signX509Svid({ spiffeId: WEB, csr: forged }), rejectsWith('CA_INVALID_REQUEST', /signature does not verify/));
    await assert.rejects(openCa({ csrVerification: 'sometimes' as 'inline' }), rejectsWith('CA_INVALID_CONFIG', /"csrVerification"/));
  });

  test('a SpiffeId object is accepted as well as a string', async () => {
    const { ca } = await openCa();
    const key = p256();
    assertValidSvid(ca, await ca.signX509Svid({ spiffeId: SpiffeId.parse(WEB), publicKey: key }), key, WEB, new Date(T0));
  });
});

describe('key types', () => {
  const workloadKeys: [string, () => KeyObject][] = [
    ['EC P-256', p256],
    ['EC P-384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey],
    ['RSA 2048', () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey],
    ['Ed25519', () => generateKeyPairSync('ed25519').privateKey],
  ];
  for (const caKeyType of ['ec-p256', 'ec-p384', 'rsa-2048'] as CaKeyType[]) {
    test(`CA key ${caKeyType}: SVIDs for every workload key type verify; JWT-SVIDs with a ${caKeyType} JWT key validate`, async () => {
      const { ca } = await openCa({ caKeyType, jwtKeyType: caKeyType });
      const root = new Certificate(ca.bundle().x509Authorities()[0]!);
      const expectedAlg = { 'ec-p256': OID.ecdsaWithSha256, 'ec-p384': OID.ecdsaWithSha384, 'rsa-2048': OID.sha256WithRsa }[caKeyType];
      assert.equal(root.signatureAlgorithm, expectedAlg);
      for (const [name, make] of workloadKeys) {
        const key = make();
        const signed = await ca.signX509Svid({ spiffeId: WEB, csr: buildCertificateRequest(key, { uris: [WEB] }) });
        const leaf = assertValidSvid(ca, signed, key, WEB, new Date(T0));
        assert.equal(leaf.signatureAlgorithm, expectedAlg, name);
      }
      const jwt = ca.signJwtSvid({ spiffeId: WEB, audience: ['spiffe://example.org/db'] });
      const header = JSON.parse(Buffer.from(jwt.token.split('.')[0]!, 'base64url').toString()) as Record<string, string>;
      assert.equal(header['alg'], { 'ec-p256': 'ES256', 'ec-p384': 'ES384', 'rsa-2048': 'RS256' }[caKeyType]);
      const v = JwtSvid.parseAndValidate(jwt.token, ca.bundle(), 'spiffe://example.org/db', { time: new Date(T0) });
      assert.equal(v.id.toString(), WEB);
    });
  }

  test('unsupported workload keys are CA_INVALID_REQUEST: RSA 1024, P-521 (KeyObject, SPKI and CSR)', async () => {
    const { ca } = await openCa();
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey;
    await assert.rejects(ca.signX509Svid({ spiffeId: WEB, publicKey: rsa1024 }), rejectsWith('CA_INVALID_REQUEST', /unsupported public key \(rsa 1024\)/));
    await assert.rejects(ca.signX509Svid({ spiffeId: WEB, publicKey: p521 }), rejectsWith('CA_INVALID_REQUEST', /unsupported public key \(ec secp521r1\)/));
    await assert.rejects(ca.signX509Svid({ spiffeId: WEB, publicKey: encodeSubjectPublicKeyInfo(p521) }), rejectsWith('CA_INVALID_REQUEST', /invalid public key: unsupported public key: EC curve P-521/));
    await assert.rejects(ca.signX509Svid({ spiffeId: WEB, csr: buildCertificateRequest(rsa1024) }), (e: unknown) => {
      rejectsWith('CA_INVALID_REQUEST', /invalid CSR: unsupported certificate request key: RSA key of 1024 bits/)(e);
      assert.equal(((e as CaError).cause as { code: string }).code, 'ERR_KEY_INVALID');
      return true;
    });
  });
});

describe('refused requests', () => {
  test('IDs outside the trust domain, the trust domain itself, malformed IDs', async () => {
    const { ca } = await openCa();
    const key = p256();
    await assert.rejects(ca.signX509Svid({ spiffeId: 'spiffe://other.org/web', publicKey: key }), rejectsWith('CA_INVALID_REQUEST', /not in trust domain "example.org"/));
    await assert.rejects(ca.signX509Svid({ spiffeId: 'spiffe://example.org', publicKey: key }), rejectsWith('CA_INVALID_REQUEST', /must have a path/));
    await assert.rejects(ca.signX509Svid({ spiffeId: 'spiffe://example.org/a//b', publicKey: key }), rejectsWith('CA_INVALID_REQUEST', /empty segments/));
    assert.throws(() => ca.signJwtSvid({ spiffeId: 'spiffe://other.org/web', audience: 'x' }), rejectsWith('CA_INVALID_REQUEST', /not in trust domain/));
  });

  test('key sources: none, both, wrong type', async () => {
    const { ca } = await openCa();
    const key = p256();
    await assert.rejects(ca.signX509Svid({ spiffeId: WEB }), rejectsWith('CA_INVALID_REQUEST', /"csr" or "publicKey" is required/));
    await assert.rejects(ca.signX509Svid({ spiffeId: WEB, publicKey: key, csr: buildCertificateRequest(key) }), rejectsWith('CA_INVALID_REQUEST', /not both/));
    await assert.rejects(ca.signX509Svid({ spiffeId: WEB, csr: 'abc' as unknown as Uint8Array }), rejectsWith('CA_INVALID_REQUEST', /DER bytes/));
  });

  test('CSRs: garbage, forged signature, a different requested ID', async () => {
    const { ca } = await openCa();
    const key = p256();
    await assert.rejects(ca.signX509Svid({ spiffeId: WEB, csr: Buffer.from('not a csr') }), rejectsWith('CA_INVALID_REQUEST', /^invalid CSR: malformed certificate request:/));
    const forged = Buffer.from(buildCertificateRequest(key, { uris: [WEB] }));
    forged[forged.length - 3]! ^= 0xff;
    await assert.rejects(ca.signX509Svid({ spiffeId: WEB, csr: forged }), rejectsWith('CA_INVALID_REQUEST', /signature does not verify/));
    const other = buildCertificateRequest(key, { uris: ['spiffe://example.org/admin'] });
    await assert.rejects(ca.signX509Svid({ spiffeId: WEB, csr: other }), rejectsWith('CA_INVALID_REQUEST', /asks for URI SAN "spiffe:\/\/example.org\/admin"/));
    const two = buildCertificateRequest(key, { uris: [WEB, 'spiffe://example.org/admin'] });
    await assert.rejects(ca.signX509Svid({ spiffeId: WEB, csr: two }), rejectsWith('CA_INVALID_REQUEST', /asks for URI SAN/));
    // DNS names in a CSR are hints the entry overrides, not a reason to refuse.
    const dns = await ca.signX509Svid({ spiffeId: WEB, csr: buildCertificateRequest(key, { dnsNames: ['evil.example'] }) });
    assert.deepEqual(new Certificate(dns.certificates[0]!).subjectAltNames.dnsNames, []);
  });

  test('TTLs and DNS names', async () => {
    const { ca } = await openCa();
    const key = p256();
    for (const ttlSeconds of [-1, 1.5, Number.NaN, 'x' as unknown as number, 20 * 365 * 86400]) {
      await assert.rejects(ca.signX509Svid({ spiffeId: WEB, publicKey: key, ttlSeconds }), rejectsWith('CA_INVALID_REQUEST', /"ttlSeconds"/));
    }
    for (const bad of ['', 'a..b', '-a.b', 'a b', 'é.example', 'x'.repeat(64), `${'a.'.repeat(130)}b`, '*.*.a']) {
      await assert.rejects(ca.signX509Svid({ spiffeId: WEB, publicKey: key, dnsNames: [bad] }), rejectsWith('CA_INVALID_REQUEST', /invalid DNS name/), bad);
    }
    await assert.rejects(ca.signX509Svid({ spiffeId: WEB, publicKey: key, dnsNames: Array.from({ length: 101 }, (_, i) => `h${i}.x`) }), rejectsWith('CA_INVALID_REQUEST', /at most 100/));
    const ok = await ca.signX509Svid({ spiffeId: WEB, publicKey: key, dnsNames: ['*.web.example', 'WEB.Example', 'a_b.internal'] });
    assert.deepEqual(new Certificate(ok.certificates[0]!).subjectAltNames.dnsNames, ['*.web.example', 'WEB.Example', 'a_b.internal']);
  });

  test('CA_NOT_READY once the active CA has expired and no tick replaced it', async () => {
    const { ca, clock } = await openCa({ caTtlSeconds: 3600 });
    clock.t = T0 + 3600_000 + 1000;
    await assert.rejects(ca.signX509Svid({ spiffeId: WEB, publicKey: p256() }), rejectsWith('CA_NOT_READY', /cannot sign until the next tick/));
    assert.throws(() => ca.signJwtSvid({ spiffeId: WEB, audience: 'a' }), rejectsWith('CA_NOT_READY', /JWT key expires/));
    await ca.tick();
    const key = p256();
    assertValidSvid(ca, await ca.signX509Svid({ spiffeId: WEB, publicKey: key }), key, WEB, new Date(clock.t));
  });

  test('invalid options are CA_INVALID_CONFIG', async () => {
    const base = { trustDomain: TD, keyManager: new MemoryKeyManager(), journal: new MemoryCaJournal() };
    await assert.rejects(ServerCa.open({ ...base, trustDomain: 'Bad Domain' }), rejectsWith('CA_INVALID_CONFIG', /invalid trust domain/));
    await assert.rejects(ServerCa.open({ ...base, caTtlSeconds: 0 }), rejectsWith('CA_INVALID_CONFIG', /"caTtlSeconds"/));
    await assert.rejects(ServerCa.open({ ...base, caKeyType: 'ec-p521' as CaKeyType }), rejectsWith('CA_INVALID_CONFIG', /"caKeyType" must be one of ec-p256, ec-p384, rsa-2048/));
    await assert.rejects(ServerCa.open({ ...base, bundleRefreshHintSeconds: -5 }), rejectsWith('CA_INVALID_CONFIG', /bundleRefreshHintSeconds/));
  });
});

describe('CA certificates and bundle', () => {
  test('the CA certificate: unique subject with the serial, URI SAN, critical CA constraints and key usage, SKI = AKI, 24 h + backdate', async () => {
    const { ca } = await openCa({ caSubject: { organization: 'Acme', commonName: 'Acme Mesh CA' } });
    const root = new Certificate(ca.bundle().x509Authorities()[0]!);
    assert.deepEqual(root.subject, [
      { oid: OID.country, value: 'US' },
      { oid: OID.organization, value: 'Acme' },
      { oid: OID.commonName, value: 'Acme Mesh CA' },
      { oid: OID.serialNumber, value: BigInt('0x' + root.serialHex).toString() },
    ]);
    assert.ok(root.selfIssued);
    assert.deepEqual(root.subjectAltNames.uris, ['spiffe://example.org']);
    assert.deepEqual(root.basicConstraints, { critical: true, ca: true, pathLen: undefined });
    assert.deepEqual(root.keyUsage, { critical: true, bits: KeyUsage.keyCertSign | KeyUsage.cRLSign });
    assert.ok(root.subjectKeyId !== undefined);
    assert.deepEqual(root.authorityKeyId, root.subjectKeyId);
    assert.deepEqual(root.subjectKeyId, keyIdentifier(root.spki));
    assert.equal(root.notAfter.getTime() - root.notBefore.getTime(), 86400_000 + 10_000);
  });

  test('the bundle: one X.509 and one JWT authority, spiffe_sequence 1, refresh hint 300 s', async () => {
    const { ca } = await openCa();
    const b = ca.bundle();
    assert.equal(b.x509Authorities().length, 1);
    assert.equal(b.jwtAuthorities().size, 1);
    assert.equal(b.sequenceNumber, 1);
    assert.equal(b.refreshHintSeconds, 300);
    const doc = JSON.parse(b.marshal()) as { keys: { use: string; kid?: string }[] };
    assert.deepEqual(doc.keys.map((k) => k.use), ['x509-svid', 'jwt-svid']);
    assert.match(doc.keys[1]!.kid!, /^[0-9a-f]{32}$/);
  });
});

describe('JWT-SVIDs', () => {
  test('ES256 with the published kid; default TTL 5 min; validate with JwtSvid.parseAndValidate', async () => {
    const { ca } = await openCa();
    const s = ca.signJwtSvid({ spiffeId: WEB, audience: 'spiffe://example.org/db' });
    const [h, p] = s.token.split('.').slice(0, 2).map((x) => JSON.parse(Buffer.from(x, 'base64url').toString()) as Record<string, unknown>);
    assert.deepEqual(h, { alg: 'ES256', kid: s.keyId, typ: 'JWT' });
    assert.ok(ca.bundle().jwtAuthorities().has(s.keyId));
    assert.equal(p!['sub'], WEB);
    assert.deepEqual(p!['aud'], ['spiffe://example.org/db']);
    assert.equal(p!['iat'], Math.floor(T0 / 1000));
    assert.equal(p!['exp'], Math.floor(T0 / 1000) + 300);
    assert.equal(s.expiresAt.getTime(), (Math.floor(T0 / 1000) + 300) * 1000);
    const v = JwtSvid.parseAndValidate(s.token, ca.bundle(), 'spiffe://example.org/db', { time: new Date(T0 + 299_000) });
    assert.equal(v.id.toString(), WEB);
    assert.throws(() => JwtSvid.parseAndValidate(s.token, ca.bundle(), 'spiffe://example.org/db', { time: new Date(T0 + 300_000) }), { code: 'ERR_JWTSVID_EXPIRED' });
  });

  test('several audiences, explicit TTL, TTL capped at the key\'s lifetime; no audience is refused', async () => {
    const { ca } = await openCa({ caTtlSeconds: 600 });
    const s = ca.signJwtSvid({ spiffeId: WEB, audience: ['a', 'b'], ttlSeconds: 60 });
    assert.equal(s.expiresAt.getTime(), Math.floor(T0 / 1000) * 1000 + 60_000);
    JwtSvid.parseAndValidate(s.token, ca.bundle(), 'b', { time: new Date(T0) });
    const capped = ca.signJwtSvid({ spiffeId: WEB, audience: 'a', ttlSeconds: 3600 });
    assert.ok(capped.expiresAt.getTime() <= T0 + 600_000);
    for (const audience of ['', [], [''], [1 as unknown as string]]) {
      assert.throws(() => ca.signJwtSvid({ spiffeId: WEB, audience }), rejectsWith('CA_INVALID_REQUEST', /"audience"/));
    }
  });
});

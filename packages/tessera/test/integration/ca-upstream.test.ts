/**
 * Upstream CA mode (SPIRE's `disk` UpstreamAuthority) and OpenSSL interop.
 * With an upstream, each CA key is an intermediate signed by it, the bundle
 * holds the upstream root, every SVID chain carries the intermediate, and
 * `openssl verify -CAfile bundle.pem -untrusted intermediate.pem leaf.pem`
 * accepts the SVIDs. Unusable upstreams are refused with
 * CA_UPSTREAM_INVALID before anything is signed. Self-signed mode is checked
 * against OpenSSL too, with a CSR made by `openssl req`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Svid, verifyX509Svid } from '@tessera/spiffe/svid';
import { TestCa } from '@tessera/spiffe/testing';
import { buildCertificateRequest, Certificate, parsePemCertificates } from '@tessera/spiffe/x509';
import { CaError, loadUpstreamAuthority, MemoryCaJournal, MemoryKeyManager, ServerCa, type ServerCaOptions, type UpstreamFiles } from '../../src/server/ca/index.js';

const TD = 'example.org';
const WEB = 'spiffe://example.org/web';
let dir: string;
let n = 0;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-upstream-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function pem(ders: readonly Buffer[]): string {
  return ders.map((d) => `-----BEGIN CERTIFICATE-----\n${d.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`).join('');
}

function write(name: string, content: string): string {
  const p = join(dir, `${n++}-${name}`);
  writeFileSync(p, content);
  return p;
}

function files(certs: readonly Buffer[], key: KeyObject, bundle?: readonly Buffer[]): UpstreamFiles {
  return {
    certFile: write('upstream.pem', pem(certs)),
    keyFile: write('upstream.key', key.export({ type: 'pkcs8', format: 'pem' }) as string),
    ...(bundle ? { bundleFile: write('bundle.pem', pem(bundle)) } : {}),
  };
}

function open(extra: Partial<ServerCaOptions>, clock = { t: Date.now() }): Promise<ServerCa> {
  return ServerCa.open({ trustDomain: TD, keyManager: new MemoryKeyManager(), journal: new MemoryCaJournal(), now: () => new Date(clock.t), ...extra });
}

/** `openssl verify` exit status and output. */
function opensslVerify(bundle: readonly Buffer[], chain: readonly Buffer[]): string {
  const args = ['verify', '-CAfile', write('bundle.pem', pem(bundle))];
  if (chain.length > 1) args.push('-untrusted', write('intermediate.pem', pem(chain.slice(1))));
  args.push(write('leaf.pem', pem(chain.slice(0, 1))));
  return execFileSync('openssl', args, { encoding: 'utf8' });
}

const p256 = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;

describe('upstream CA', () => {
  test('the bundle holds the upstream root; SVID chains carry the intermediate; library and openssl verify', async () => {
    const upstream = new TestCa({ trustDomain: TD, ttlSeconds: 7 * 86400 });
    const ca = await open({ upstream: loadUpstreamAuthority(files([upstream.certificate], upstream.key)) });
    assert.deepEqual(ca.bundle().x509Authorities(), [upstream.certificate]);
    const key = p256();
    const signed = await ca.signX509Svid({ spiffeId: WEB, csr: buildCertificateRequest(key, { uris: [WEB] }), dnsNames: ['web.example.org'] });
    assert.equal(signed.certificates.length, 2);
    const intermediate = new Certificate(signed.certificates[1]!);
    assert.ok(intermediate.isCa);
    assert.deepEqual(intermediate.issuerRaw, new Certificate(upstream.certificate).subjectRaw);
    assert.deepEqual(intermediate.authorityKeyId, new Certificate(upstream.certificate).subjectKeyId);
    assert.deepEqual(intermediate.subjectAltNames.uris, ['spiffe://example.org']);
    assert.equal(X509Svid.fromParts(signed.certificates, key).id.toString(), WEB);
    assert.equal(verifyX509Svid(signed.certificates, ca.bundle()).id.toString(), WEB);
    assert.match(opensslVerify(ca.bundle().x509Authorities(), signed.certificates), /leaf\.pem: OK/);
  });

  test('an upstream that is itself an intermediate: its chain is sent too, the root comes from the cert file or a bundle file', async () => {
    const rootCa = new TestCa({ trustDomain: TD, ttlSeconds: 7 * 86400 });
    const mid = rootCa.createIntermediate({ ttlSeconds: 5 * 86400 });
    for (const f of [files([mid.certificate, rootCa.certificate], mid.key), files([mid.certificate], mid.key, [rootCa.certificate])]) {
      const ca = await open({ upstream: loadUpstreamAuthority(f) });
      assert.deepEqual(ca.bundle().x509Authorities(), [rootCa.certificate]);
      const key = p256();
      const signed = await ca.signX509Svid({ spiffeId: WEB, publicKey: key });
      assert.equal(signed.certificates.length, 3);
      assert.deepEqual(signed.certificates[2], mid.certificate);
      X509Svid.fromParts(signed.certificates, key);
      verifyX509Svid(signed.certificates, ca.bundle());
      assert.match(opensslVerify(ca.bundle().x509Authorities(), signed.certificates), /OK/);
    }
  });

  test('an OpenSSL-made upstream root', async () => {
    const keyFile = join(dir, 'ossl-up.key');
    const certFile = join(dir, 'ossl-up.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '3',
      '-subj', '/O=Upstream Root', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { stdio: 'ignore' });
    const ca = await open({ upstream: loadUpstreamAuthority({ certFile, keyFile }) });
    const key = p256();
    const signed = await ca.signX509Svid({ spiffeId: WEB, publicKey: key });
    verifyX509Svid(signed.certificates, ca.bundle());
    assert.deepEqual(ca.bundle().x509Authorities(), parsePemCertificates(readFileSync(certFile)).map((c) => c.der));
    assert.match(opensslVerify(ca.bundle().x509Authorities(), signed.certificates), /OK/);
  });

  test('CA lifetime is capped at the upstream\'s; rotation changes intermediates, not the bundle', async () => {
    const clock = { t: Date.now() };
    const upstream = new TestCa({ trustDomain: TD, ttlSeconds: 6 * 3600 });
    const upNotAfter = new Certificate(upstream.certificate).notAfter;
    const ca = await open({ upstream: loadUpstreamAuthority(files([upstream.certificate], upstream.key)) }, clock);
    const first = ca.status().x509.current!;
    assert.equal(first.notAfter.getTime(), upNotAfter.getTime());
    const key = p256();
    const before = await ca.signX509Svid({ spiffeId: WEB, publicKey: key, ttlSeconds: 86400 });
    assert.equal(before.expiresAt.getTime(), upNotAfter.getTime(), 'SVIDs are capped too');
    clock.t = ca.nextRotationAt()!.getTime();
    // The capped CA rotates on its own, shorter schedule; JWT keys keep theirs.
    let r = await ca.tick();
    assert.deepEqual(r.prepared, ['x509']);
    assert.equal(r.bundleChanged, false, 'the new intermediate chains to the same upstream root');
    assert.equal(ca.bundle().x509Authorities().length, 1);
    assert.equal(ca.bundle().sequenceNumber, 1);
    clock.t = ca.nextRotationAt()!.getTime();
    r = await ca.tick();
    assert.deepEqual(r.activated, ['x509']);
    const after = await ca.signX509Svid({ spiffeId: WEB, publicKey: key });
    assert.notDeepEqual(after.certificates[1], before.certificates[1]);
    verifyX509Svid(after.certificates, ca.bundle(), { time: new Date(clock.t) });
    verifyX509Svid(before.certificates, ca.bundle(), { time: new Date(clock.t) });
  });
});

describe('unusable upstreams are CA_UPSTREAM_INVALID', () => {
  const rejects = async (f: () => Promise<unknown>, re: RegExp): Promise<void> => {
    await assert.rejects(f(), (e: unknown) => e instanceof CaError && e.code === 'CA_UPSTREAM_INVALID' && re.test(e.message));
  };

  test('key mismatch, expired, not a CA, pathLen 0, name constraints that exclude the trust domain', async () => {
    const good = new TestCa({ trustDomain: TD });
    const other = new TestCa({ trustDomain: TD });
    await rejects(() => open({ upstream: loadUpstreamAuthority(files([good.certificate], other.key)) }), /private key does not belong/);
    const past = new TestCa({ trustDomain: TD, now: () => new Date(Date.now() - 86400_000), ttlSeconds: 3600 });
    await rejects(() => open({ upstream: loadUpstreamAuthority(files([past.certificate], past.key)) }), /expired at/);
    const leaf = good.createCertificate(undefined, { uris: [] as string[], dnsNames: ['x.example'] });
    await rejects(() => open({ upstream: { certificates: [leaf.certificates[0]!], privateKey: leaf.privateKey, roots: [good.certificate] } }), /not a CA/);
    const pathLen0 = new TestCa({ trustDomain: TD, pathLen: 0 });
    await rejects(() => open({ upstream: loadUpstreamAuthority(files([pathLen0.certificate], pathLen0.key)) }), /pathLen 0/);
    const excluding = new TestCa({ trustDomain: TD, excludedUris: [TD] });
    await rejects(() => open({ upstream: loadUpstreamAuthority(files([excluding.certificate], excluding.key)) }), /would not issue verifiable SVIDs/);
  });

  test('files: missing, not PEM, no root determinable', () => {
    const up = new TestCa({ trustDomain: TD });
    const mid = up.createIntermediate();
    const throwsUpstream = (f: () => unknown, re: RegExp): void => assert.throws(f, (e: unknown) => e instanceof CaError && e.code === 'CA_UPSTREAM_INVALID' && re.test(e.message));
    throwsUpstream(() => loadUpstreamAuthority({ certFile: join(dir, 'missing.pem'), keyFile: join(dir, 'missing.key') }), /cannot read certificate file/);
    throwsUpstream(() => loadUpstreamAuthority({ certFile: write('garbage.pem', 'hello'), keyFile: write('k', '') }), /no PEM data/);
    throwsUpstream(() => loadUpstreamAuthority(files([mid.certificate], mid.key)), /not self-signed; give the upstream roots in a bundle file/);
  });
});

describe('self-signed mode with OpenSSL', () => {
  test('a CSR made by `openssl req` is signed; `openssl verify` accepts the SVID; `openssl req -verify` accepts our CSRs', async () => {
    const ca = await open({});
    const keyFile = join(dir, 'wl.key');
    const csrFile = join(dir, 'wl.csr');
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csrFile, '-outform', 'DER',
      '-subj', '/CN=ignored', '-addext', `subjectAltName=URI:${WEB}`], { stdio: 'ignore' });
    const signed = await ca.signX509Svid({ spiffeId: WEB, csr: readFileSync(csrFile) });
    assert.equal(X509Svid.parse(pem(signed.certificates), readFileSync(keyFile)).id.toString(), WEB);
    assert.match(opensslVerify(ca.bundle().x509Authorities(), signed.certificates), /leaf\.pem: OK/);
    for (const key of [p256(), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, generateKeyPairSync('ed25519').privateKey]) {
      const f = write('ours.csr', '');
      writeFileSync(f, buildCertificateRequest(key, { uris: [WEB], dnsNames: ['web.example.org'] }));
      const out = execFileSync('openssl', ['req', '-inform', 'DER', '-in', f, '-verify', '-noout', '-text'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      assert.match(out, /URI:spiffe:\/\/example\.org\/web/);
    }
  });
});

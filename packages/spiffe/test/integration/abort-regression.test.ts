/**
 * Process-abort regressions, one child process per case.
 *
 * Node 20 (OpenSSL 3) imports some EC keys that OpenSSL cannot convert to
 * its EC_KEY form — a public key that is the point at infinity (BIT STRING
 * 00 00), a private scalar longer than the curve order — and then aborts the
 * whole process (C++ assertion "(ec) != nullptr", SIGABRT) when their
 * `asymmetricKeyDetails` are read or they are exported as a JWK. The library
 * used to do both on untrusted input (a SPIFFE bundle from a federation
 * endpoint, an SVID's private key); it now rejects such keys with typed
 * errors.
 *
 * An abort cannot be caught, and it takes the whole test file's report with
 * it, so every case here runs in its own child process, which prints the
 * outcome. test/unit/robustness.test.ts feeds the same shapes (and mutations
 * of them) to the parsers in-process; if that file dies with SIGABRT, this one
 * says which parser aborted.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import * as der from '../../src/internal/asn1/der-writer.js';
import { encodePem } from '../../src/internal/pem.js';
import { Certificate, KeyUsage } from '../../src/internal/x509/certificate.js';
import { basicConstraintsExt, buildCertificate, encodeName, keyUsageExt, subjectAltNameExt } from '../../src/internal/x509/builder.js';
import { TestCa, generateKey } from '../../src/testing/index.js';

// ---------------------------------------------------------------- fixtures

const P256 = '1.2.840.10045.3.1.7';
const EC_ALGORITHM = der.seq(der.oid('1.2.840.10045.2.1'), der.oid(P256));
/** The point at infinity as an EC public key: BIT STRING 00 00. */
const AT_INFINITY = der.bitString(Buffer.from([0x00]));
const INFINITY_SPKI = der.seq(EC_ALGORITHM, AT_INFINITY);

/** A SEC1 ECPrivateKey (RFC 5915) for P-256. */
const ecPrivateKey = (scalar: Buffer, publicKey: Buffer, withCurve: boolean): Buffer =>
  der.seq(der.smallInteger(1), der.octetString(scalar), ...(withCurve ? [der.explicit(0, der.oid(P256))] : []), der.explicit(1, publicKey));
/** A PKCS#8 PrivateKeyInfo around a P-256 ECPrivateKey. */
const pkcs8 = (ecKey: Buffer): Buffer => der.seq(der.smallInteger(0), EC_ALGORITHM, der.octetString(ecKey));

const now = Date.now();
const validity = { notBefore: new Date(now - 3_600_000), notAfter: new Date(now + 3_600_000) };
const caExtensions = [basicConstraintsExt(true), keyUsageExt(KeyUsage.keyCertSign)];
const leafExtensions = [basicConstraintsExt(false), keyUsageExt(KeyUsage.digitalSignature), subjectAltNameExt({ uris: ['spiffe://example.org/x'] })];

const rootCa = new TestCa({ trustDomain: 'example.org' });
const interCa = rootCa.createIntermediate();
const chainedSvid = interCa.createX509Svid('spiffe://example.org/db');
const directSvid = rootCa.createX509Svid('spiffe://example.org/web', { keyType: 'ec-p256' });

const infinityName = encodeName([{ oid: '2.5.4.10', value: 'point at infinity' }]);
/** A self-signed CA certificate whose public key is the point at infinity. */
const infinityCa = buildCertificate({ issuer: infinityName, subject: infinityName, ...validity, publicKey: INFINITY_SPKI, signingKey: generateKey('ec-p256'), extensions: caExtensions });
/** A leaf issued (in name) by infinityCa. */
const leafUnderInfinityCa = buildCertificate({ issuer: infinityName, subject: encodeName([{ oid: '2.5.4.10', value: 'leaf' }]), ...validity,
  publicKey: createPublicKey(generateKey('ec-p256')), signingKey: generateKey('ec-p256'), extensions: leafExtensions });
/** interCa's certificate, re-issued by the root with the point at infinity as its key. */
const infinityIntermediate = buildCertificate({ issuer: new Certificate(rootCa.certificate).subjectRaw, subject: new Certificate(interCa.certificate).subjectRaw,
  ...validity, publicKey: INFINITY_SPKI, signingKey: rootCa.key, extensions: caExtensions });

const jwk = createPublicKey(generateKey('ec-p256')).export({ format: 'jwk' });
/** About 0.5 KB, as a federation endpoint could serve it. */
const infinityBundleJson = JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, use: 'x509-svid', x5c: [infinityCa.toString('base64')] }] });

const scalar = Buffer.from(directSvid.privateKey.export({ format: 'jwk' }).d!, 'base64url');
const point = (createPublicKey(directSvid.privateKey).export({ type: 'spki', format: 'der' }) as Buffer).subarray(-65);
const keyWithInfinity = pkcs8(ecPrivateKey(scalar, AT_INFINITY, false));
const keyWithLongScalar = pkcs8(ecPrivateKey(Buffer.concat([Buffer.from([0x01]), Buffer.alloc(44, 0xab)]), der.bitString(point), false));
const sec1PemWithInfinity = encodePem('EC PRIVATE KEY', ecPrivateKey(scalar, AT_INFINITY, true));

// ----------------------------------------------------------------- harness

const moduleUrl = (path: string): string => new URL(`../../src/${path}`, import.meta.url).href;

/** Imports for the child scripts, plus `arg(name)` (a string) and `bytes(name)` (hex → Buffer) over the JSON input. */
const PRELUDE = `
import { Certificate } from ${JSON.stringify(moduleUrl('internal/x509/certificate.js'))};
import { SpiffeBundle } from ${JSON.stringify(moduleUrl('bundle/spiffe-bundle.js'))};
import { X509Bundle } from ${JSON.stringify(moduleUrl('bundle/x509-bundle.js'))};
import { TrustDomain } from ${JSON.stringify(moduleUrl('id/index.js'))};
import { X509Svid } from ${JSON.stringify(moduleUrl('svid/x509-svid.js'))};
import { verifyX509Svid } from ${JSON.stringify(moduleUrl('svid/x509-verify.js'))};
import { createPrivateKey, createPublicKey } from 'node:crypto';
const input = JSON.parse(process.env.TESSERA_INPUT);
const arg = (name) => input[name];
const bytes = (name) => Buffer.from(input[name], 'hex');
const td = TrustDomain.parse('example.org');
`;

interface ChildResult {
  readonly status: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runChild(body: string, input: Record<string, string>): Promise<ChildResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', PRELUDE + body],
      { env: { ...process.env, TESSERA_INPUT: JSON.stringify(input) }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = (err as { code?: unknown } | null)?.code;
        resolve({ status: err === null ? 0 : typeof code === 'number' ? code : null, signal: err?.signal ?? null, stdout, stderr });
      },
    );
  });
}

/** The lines of a child's stderr that say what happened (Node's assertion, the JavaScript frames). */
const stderrGist = (stderr: string): string =>
  stderr.split('\n').filter((l) => /Assertion failed|node::crypto|^\s*\d+: (get |file:|[A-Za-z#.]+ \()/.test(l)).slice(0, 8).join('\n') || stderr.slice(0, 800);

/** Runs `call` in a child process and asserts it throws a typed error `expected` ("<name> <code>"), without aborting. */
async function expectTypedInChild(t: TestContext, call: string, input: Record<string, string>, expected: string): Promise<void> {
  const r = await runChild(
    `try { ${call}; console.log('accepted'); }
     catch (e) { console.log(e && typeof e.code === 'string' ? 'typed ' + e.name + ' ' + e.code : 'untyped ' + String(e)); }`,
    input,
  );
  const got = r.stdout.trim();
  t.diagnostic(`child: ${got || '(no output)'}; exit ${r.status}, signal ${r.signal}`);
  assert.ok(r.signal !== 'SIGABRT', `the child process aborted (SIGABRT): the library handed Node a key it cannot use.\n${stderrGist(r.stderr)}`);
  assert.equal(got, `typed ${expected}`, `exit ${r.status}, signal ${r.signal}\n${stderrGist(r.stderr)}`);
}

// ------------------------------------------------------------------- tests

describe('keys Node imports but cannot use are rejected with typed errors, without aborting the process (child processes)', { concurrency: true }, () => {
  it('Certificate.publicKey: a certificate whose key is the point at infinity → EncodingError ERR_CERTIFICATE_INVALID', async (t) => {
    await expectTypedInChild(t, 'new Certificate(bytes("cert")).publicKey', { cert: infinityCa.toString('hex') }, 'EncodingError ERR_CERTIFICATE_INVALID');
  });

  it(`SpiffeBundle.parse: a ${infinityBundleJson.length}-byte bundle whose x5c CA key is the point at infinity → BundleError ERR_BUNDLE_INVALID`, async (t) => {
    await expectTypedInChild(t, 'SpiffeBundle.parse(td, arg("doc"))', { doc: infinityBundleJson }, 'BundleError ERR_BUNDLE_INVALID');
  });

  it('X509Svid.parseRaw: a PKCS#8 key whose embedded public key is the point at infinity → X509SvidError ERR_X509SVID_INVALID', async (t) => {
    await expectTypedInChild(t, 'X509Svid.parseRaw(bytes("certs"), bytes("key"))',
      { certs: Buffer.concat(directSvid.certificates).toString('hex'), key: keyWithInfinity.toString('hex') }, 'X509SvidError ERR_X509SVID_INVALID');
  });

  it('X509Svid.parseRaw: a PKCS#8 key with a 45-byte private scalar → X509SvidError ERR_X509SVID_INVALID', async (t) => {
    await expectTypedInChild(t, 'X509Svid.parseRaw(bytes("certs"), bytes("key"))',
      { certs: Buffer.concat(directSvid.certificates).toString('hex'), key: keyWithLongScalar.toString('hex') }, 'X509SvidError ERR_X509SVID_INVALID');
  });

  it('X509Svid.parse: a SEC1 "EC PRIVATE KEY" whose embedded public key is the point at infinity → X509SvidError ERR_X509SVID_INVALID', async (t) => {
    await expectTypedInChild(t, 'X509Svid.parse(arg("certs"), arg("key"))',
      { certs: directSvid.certificates.map((c) => encodePem('CERTIFICATE', c)).join(''), key: sec1PemWithInfinity }, 'X509SvidError ERR_X509SVID_INVALID');
  });

  it('verifyX509Svid: an intermediate whose key is the point at infinity → X509SvidError ERR_X509SVID_UNTRUSTED', async (t) => {
    await expectTypedInChild(t, 'verifyX509Svid([bytes("leaf"), bytes("inter")], X509Bundle.parseDer(td, bytes("root")))',
      { leaf: chainedSvid.certificates[0]!.toString('hex'), inter: infinityIntermediate.toString('hex'), root: rootCa.certificate.toString('hex') },
      'X509SvidError ERR_X509SVID_UNTRUSTED');
  });

  it('verifyX509Svid: a bundle authority whose key is the point at infinity → X509SvidError ERR_X509SVID_UNTRUSTED', async (t) => {
    await expectTypedInChild(t, 'verifyX509Svid([bytes("leaf")], X509Bundle.parseDer(td, bytes("root")))',
      { leaf: leafUnderInfinityCa.toString('hex'), root: infinityCa.toString('hex') }, 'X509SvidError ERR_X509SVID_UNTRUSTED');
  });

  it('control (diagnostic only): whether this Node itself still aborts on these keys, i.e. whether the cases above test anything', async (t) => {
    const probes: [string, string, Record<string, string>][] = [
      ['public key at infinity', 'createPublicKey({ key: bytes("spki"), format: "der", type: "spki" }).asymmetricKeyDetails', { spki: INFINITY_SPKI.toString('hex') }],
      ['45-byte private scalar', 'createPrivateKey({ key: bytes("key"), format: "der", type: "pkcs8" }).asymmetricKeyDetails', { key: keyWithLongScalar.toString('hex') }],
    ];
    const results = await Promise.all(probes.map(([, expr, input]) => runChild(`try { ${expr}; console.log('ok'); } catch (e) { console.log('throws ' + e.message); }`, input)));
    probes.forEach(([name], i) => {
      const r = results[i]!;
      t.diagnostic(`node:crypto, ${name}: ${r.signal === 'SIGABRT' ? 'aborts the process (SIGABRT)' : `does not abort (${r.stdout.trim()})`}`);
    });
  });
});

/**
 * `tessera svid inspect|verify` end to end: the real bin as a child process
 * (exit codes, streams), and `main()` in-process with a fixed clock for
 * exact time-left output. Certificates are minted by the library's TestCa
 * into a temporary directory; openssl cross-checks the serial.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SpiffeBundle } from '@tessera/spiffe/bundle';
import { TestCa, type X509SvidDefect } from '@tessera/spiffe/testing';
import { main } from '../../src/cli/main.js';

const BIN = fileURLToPath(new URL('../../../bin/tessera.js', import.meta.url));

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `tessera` bin. */
function runBin(args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

/** Calls `main()` in-process with a fixed clock. */
async function runMain(args: string[], now: Date): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    now: () => now,
  });
  return { code, stdout, stderr };
}

function toPem(ders: readonly Uint8Array[]): string {
  return ders
    .map((d) => {
      const b64 = Buffer.from(d).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
      return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
    })
    .join('');
}

function assertNoStackTrace(r: RunResult): void {
  assert.doesNotMatch(r.stderr + r.stdout, /^\s+at /m, 'output must not contain a stack trace');
}

/** The value of a `  Name:  value` line of text output. */
function field(text: string, name: string): string {
  const m = new RegExp(`^\\s+${name}:\\s+(.*)$`, 'm').exec(text);
  assert.ok(m, `no "${name}" line in:\n${text}`);
  return m[1]!;
}

describe('tessera svid (CLI)', () => {
  let dir: string;
  let ca: TestCa;
  const file = (name: string): string => join(dir, name);
  const write = (name: string, data: string | Uint8Array): string => {
    writeFileSync(file(name), data);
    return file(name);
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-cli-svid-'));
    ca = new TestCa({ trustDomain: 'example.org' });
    const svid = ca.createIntermediate().createX509Svid('spiffe://example.org/web', { dnsNames: ['web.example.org'] });
    const m = svid.marshal();
    write('svid.pem', m.certificates);
    write('svid.key', m.privateKey);
    write('svid.der', svid.certificates[0]!);
    write('chain.der', Buffer.concat(svid.certificates));
    write('bundle.pem', ca.x509Bundle().marshal());
    write('bundle.der', ca.x509Bundle().marshalDer());
    write('bundle.json', SpiffeBundle.fromX509Bundle(ca.x509Bundle()).marshal());
    write('garbage.pem', 'this is not a certificate\n');
    write('empty.pem', '');
    write('broken.pem', '-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n');
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  describe('inspect', () => {
    it('shows the ID, serial, key usages and EKUs of a valid SVID', async () => {
      const r = await runBin(['svid', 'inspect', file('svid.pem')]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      // node:crypto (OpenSSL) reads the first certificate of the PEM file: the leaf.
      const leaf = new X509Certificate(readFileSync(file('svid.pem')));
      assert.equal(field(r.stdout, 'SPIFFE ID'), 'spiffe://example.org/web');
      assert.equal(field(r.stdout, 'Serial'), leaf.serialNumber.toUpperCase().replace(/^(00)+(?=.)/, ''));
      assert.equal(field(r.stdout, 'Key usage'), 'digitalSignature, keyEncipherment, keyAgreement (critical)');
      assert.equal(field(r.stdout, 'Ext key usage'), 'serverAuth, clientAuth');
      assert.equal(field(r.stdout, 'Public key'), 'EC P-256');
      assert.equal(field(r.stdout, 'SANs'), 'URI:spiffe://example.org/web, DNS:web.example.org');
      assert.equal(field(r.stdout, 'Subject'), 'C=US, O=SPIRE');
      assert.match(field(r.stdout, 'CA'), /^false/);
      assert.match(r.stdout, /Chain certificate 1 \(intermediate\)/);
      assert.match(r.stdout, /CA:\s+true/);
    });

    it('prints the same serial as openssl', async (t) => {
      const ossl = await new Promise<{ ok: boolean; out: string }>((resolve) => {
        execFile('openssl', ['x509', '-noout', '-serial', '-in', file('svid.pem')], (err, stdout) => resolve({ ok: !err, out: stdout }));
      });
      if (!ossl.ok) {
        t.skip('openssl is not available');
        return;
      }
      const r = await runBin(['svid', 'inspect', file('svid.pem')]);
      assert.equal(r.code, 0, r.stderr);
      const m = /^serial=([0-9A-F]+)$/m.exec(ossl.out);
      assert.ok(m, ossl.out);
      assert.equal(field(r.stdout, 'Serial'), m[1]);
    });

    it('reads DER and prints JSON with -output json', async () => {
      const r = await runBin(['svid', 'inspect', file('svid.der'), '-output', 'json']);
      assert.equal(r.code, 0, r.stderr);
      const doc = JSON.parse(r.stdout) as { certificates: { role: string; spiffeId: string; keyUsage: { names: string[]; critical: boolean } }[] };
      assert.equal(doc.certificates.length, 1);
      assert.equal(doc.certificates[0]!.role, 'leaf');
      assert.equal(doc.certificates[0]!.spiffeId, 'spiffe://example.org/web');
      assert.deepEqual(doc.certificates[0]!.keyUsage, { names: ['digitalSignature', 'keyEncipherment', 'keyAgreement'], critical: true });
    });

    it('computes the time left from the injected clock', async () => {
      const t0 = new Date('2030-01-01T00:00:00Z');
      const fixedCa = new TestCa({ trustDomain: 'example.org', now: () => t0 });
      // Leaf valid from t0-10s to t0+1h (TestCa defaults).
      const pem = write('fixed.pem', toPem(fixedCa.createX509Svid('spiffe://example.org/fixed').certificates));

      const valid = await runMain(['svid', 'inspect', pem], new Date(t0.getTime() + 10 * 60_000));
      assert.equal(valid.code, 0, valid.stderr);
      assert.equal(field(valid.stdout, 'Not after'), '2030-01-01T01:00:00Z (expires in 50m)');
      assert.equal(field(valid.stdout, 'Not before'), '2029-12-31T23:59:50Z');

      const expired = await runMain(['svid', 'inspect', pem], new Date(t0.getTime() + 4 * 3_600_000));
      assert.equal(expired.code, 0, expired.stderr);
      assert.equal(field(expired.stdout, 'Not after'), '2030-01-01T01:00:00Z (expired 3h ago)');

      const early = await runMain(['svid', 'inspect', '--output=json', pem], new Date(t0.getTime() - 3_600_000));
      const doc = JSON.parse(early.stdout) as { certificates: { validity: { status: string; secondsLeft: number; text: string } }[] };
      assert.deepEqual(doc.certificates[0]!.validity, { status: 'not-yet-valid', text: 'not yet valid: starts in 59m 50s', secondsLeft: 7200 });
    });

    it('notes a certificate without a SPIFFE ID', async () => {
      const f = ca.createBrokenX509Svid('no-uri-san');
      const r = await runMain(['svid', 'inspect', write('no-uri.pem', toPem(f.certificates))], new Date());
      assert.equal(r.code, 0, r.stderr);
      assert.equal(field(r.stdout, 'SPIFFE ID'), 'none: the certificate has no URI SAN');
    });

    for (const [name, expected] of [
      ['garbage.pem', /cannot parse certificate file ".*garbage\.pem": /],
      ['empty.pem', /cannot parse certificate file ".*empty\.pem": the file is empty/],
      ['broken.pem', /cannot parse certificate file ".*broken\.pem": malformed certificate/],
      ['svid.key', /cannot parse certificate file ".*svid\.key": PEM block 1 is a "PRIVATE KEY", expected "CERTIFICATE"/],
      ['missing.pem', /cannot read certificate file ".*missing\.pem": no such file or directory/],
    ] as const) {
      it(`fails with exit 1 and a one-line message on ${name}`, async () => {
        const r = await runBin(['svid', 'inspect', file(name)]);
        assert.equal(r.code, 1);
        assert.equal(r.stdout, '');
        assert.match(r.stderr, expected);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assertNoStackTrace(r);
      });
    }
  });

  describe('verify', () => {
    it('prints the SPIFFE ID of a valid SVID first and exits 0', async () => {
      const r = await runBin(['svid', 'verify', '--bundle', file('bundle.pem'), file('svid.pem')]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      const lines = r.stdout.trimEnd().split('\n');
      assert.equal(lines[0], 'spiffe://example.org/web');
      assert.match(lines[1]!, /^verified against the bundle of example\.org \(1 authority, PEM\), chain length 3$/);
    });

    it('accepts SPIRE and GNU flag spellings alike', async () => {
      for (const args of [
        ['-bundle', file('bundle.pem'), file('svid.pem')],
        [`--bundle=${file('bundle.pem')}`, file('svid.pem')],
        [file('svid.pem'), '-trustDomain', 'example.org', '-bundle', file('bundle.pem')],
        ['--trust-domain=example.org', `-bundle=${file('bundle.pem')}`, '--', file('svid.pem')],
      ]) {
        const r = await runMain(['svid', 'verify', ...args], new Date());
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
        assert.equal(r.stdout.split('\n')[0], 'spiffe://example.org/web');
      }
    });

    it('verifies against a SPIFFE bundle (JWKS JSON) and a DER bundle', async () => {
      const json = await runBin(['svid', 'verify', '-bundle', file('bundle.json'), file('svid.pem')]);
      assert.equal(json.code, 0, json.stderr);
      assert.equal(json.stdout.split('\n')[0], 'spiffe://example.org/web');
      assert.match(json.stdout, /\(1 authority, SPIFFE bundle\)/);

      const der = await runMain(['svid', 'verify', '-bundle', file('bundle.der'), file('svid.der')], new Date());
      // svid.der has only the leaf: its intermediate is missing, so the chain cannot be built.
      assert.equal(der.code, 1);
      assert.match(der.stderr, /^verification failed: .*certificate signed by unknown authority/);
      const leafOnly = ca.createX509Svid('spiffe://example.org/direct');
      const r = await runMain(['svid', 'verify', '-bundle', file('bundle.der'), write('direct.der', leafOnly.certificates[0]!)], new Date());
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^spiffe:\/\/example\.org\/direct\n.*\(1 authority, DER\), chain length 2/);
    });

    it('verifies against a hand-built JWKS with x5c and matching EC parameters (spec §4)', async () => {
      const root = new X509Certificate(ca.certificate);
      const jwk = root.publicKey.export({ format: 'jwk' });
      const doc = { keys: [{ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, use: 'x509-svid', x5c: [ca.certificate.toString('base64')] }], spiffe_sequence: 1 };
      const r = await runBin(['svid', 'verify', '-bundle', write('handmade.json', `  \n${JSON.stringify(doc)}`), file('svid.pem')]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.split('\n')[0], 'spiffe://example.org/web');
    });

    const defects: [X509SvidDefect, RegExp][] = [
      ['leaf-ca-true', /leaf certificate must not have CA flag set to true/],
      ['leaf-key-cert-sign', /leaf certificate must not have 'keyCertSign' set as key usage/],
      ['no-uri-san', /certificate contains no URI SAN/],
      ['expired', /leaf certificate has expired/],
      ['signed-by-other-trust-domain', /certificate signed by unknown authority/],
      ['intermediate-not-sent', /certificate signed by unknown authority/],
    ];
    for (const [defect, expected] of defects) {
      it(`rejects an SVID with defect ${defect}`, async () => {
        const f = ca.createBrokenX509Svid(defect);
        const svid = write(`${defect}.pem`, toPem(f.certificates));
        const r = await runBin(['svid', 'verify', '-bundle', file('bundle.pem'), svid]);
        assert.equal(r.code, 1, r.stdout);
        assert.equal(r.stdout, '');
        assert.match(r.stderr, /^verification failed: /);
        assert.match(r.stderr, expected);
        assertNoStackTrace(r);
      });
    }

    it("never uses another trust domain's bundle, even when given it", async () => {
      const f = ca.createBrokenX509Svid('signed-by-other-trust-domain');
      const svid = write('other-td.pem', toPem(f.certificates));
      const other = write('other-bundle.pem', f.extraBundles[0]!.marshal());
      const r = await runMain(['svid', 'verify', '-bundle', other, '-trustDomain', 'other-example.org', svid], new Date());
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^verification failed: .*no X\.509 bundle found for trust domain "example\.org"/);
    });

    it('reports a --trust-domain that is not the SVID\'s', async () => {
      const r = await runBin(['svid', 'verify', '--bundle', file('bundle.pem'), '--trust-domain', 'td2.example', file('svid.pem')]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^verification failed: .*no X\.509 bundle found for trust domain "example\.org"/);
      assert.match(r.stderr, /^hint: the SVID belongs to trust domain "example\.org", but the bundle was given for "td2\.example"/m);
    });

    it('checks the private key with --key', async () => {
      const ok = await runBin(['svid', 'verify', '-bundle', file('bundle.pem'), '-key', file('svid.key'), file('svid.pem')]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /^private key matches the leaf certificate \(EC P-256\)$/m);
      const der = await runMain(['svid', 'verify', '-bundle', file('bundle.pem'), '-key', file('svid.key'), file('chain.der')], new Date());
      assert.equal(der.code, 0, der.stderr);
      assert.match(der.stdout, /^spiffe:\/\/example\.org\/web\n.*chain length 3\n(.*\n)*private key matches/);

      const f = ca.createBrokenX509Svid('key-mismatch');
      const svid = write('mismatch.pem', toPem(f.certificates));
      const key = write('mismatch.key', f.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
      const bad = await runBin(['svid', 'verify', '-bundle', file('bundle.pem'), '--key', key, svid]);
      assert.equal(bad.code, 1);
      assert.equal(bad.stdout, '');
      assert.equal(bad.stderr, 'verification failed: private key does not match certificate public key\n');
    });

    it('fails with exit 1 on an unreadable or malformed bundle', async () => {
      const missing = await runMain(['svid', 'verify', '-bundle', file('nope.pem'), file('svid.pem')], new Date());
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /^cannot read bundle file ".*nope\.pem": no such file or directory\n$/);
      const bad = await runMain(['svid', 'verify', '-bundle', write('bad.json', '{"keys": 3}'), file('svid.pem')], new Date());
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^cannot parse bundle file ".*bad\.json": /);
      const garbage = await runMain(['svid', 'verify', '-bundle', file('bundle.pem'), file('garbage.pem')], new Date());
      assert.equal(garbage.code, 1);
      assert.match(garbage.stderr, /^verification failed: cannot parse SVID file/);
    });
  });

  describe('command line', () => {
    it('exits 2 on an unknown flag, naming it', async () => {
      const r = await runBin(['svid', 'verify', '-bundel', file('bundle.pem'), file('svid.pem')]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /unknown flag: -bundel \(did you mean --bundle\?\)/);
      assert.match(r.stderr, /Run 'tessera svid verify --help' for usage\./);
      assertNoStackTrace(r);
    });

    it('exits 2 on an unknown command, a missing argument or a missing required flag', async () => {
      for (const [args, expected] of [
        [['svid', 'frobnicate'], /unknown command "frobnicate" for "tessera svid"/],
        [['nope'], /unknown command "nope" for "tessera"/],
        [['svid', 'inspect'], /missing argument: <cert\.pem>/],
        [['svid', 'verify', file('svid.pem')], /missing required flag --bundle <file>/],
        [['svid', 'inspect', '-output', 'yaml', file('svid.pem')], /invalid value "yaml" for -output/],
        [['svid', 'verify', '-bundle', file('bundle.pem'), '-trustDomain', 'Bad Domain', file('svid.pem')], /invalid --trust-domain "Bad Domain"/],
        [['svid'], /Usage: tessera svid <command>/],
      ] as const) {
        const r = await runMain([...args], new Date());
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, expected);
      }
    });

    it('prints help with exit 0 at every level', async () => {
      const root = await runBin(['--help']);
      assert.equal(root.code, 0);
      assert.match(root.stdout, /^Usage: tessera <command>/);
      assert.match(root.stdout, /svid\s+Inspect and verify X509-SVIDs/);

      for (const args of [['svid', '-h'], ['svid', 'verify', '--help'], ['svid', 'inspect', '-help'], ['help', 'svid', 'verify'], ['svid', 'verify', '-h', '-bundel']]) {
        const r = await runMain(args, new Date());
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
        assert.equal(r.stderr, '');
        assert.match(r.stdout, /^Usage: tessera svid/);
      }
      const verify = await runMain(['svid', 'verify', '--help'], new Date());
      assert.match(verify.stdout, /--bundle <file>/);
      assert.match(verify.stdout, /--trust-domain <td>/);
      assert.match(verify.stdout, /-h, --help/);
    });
  });
});

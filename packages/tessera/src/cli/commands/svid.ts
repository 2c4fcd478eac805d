/**
 * `tessera svid …`: look at X509-SVIDs on disk and check them the way a
 * peer would (X509-SVID §4–§5), without any daemon.
 */
import { type X509Bundle, type X509BundleSource } from '@tessera/spiffe/bundle';
import { BundleError, SpiffeError } from '@tessera/spiffe/errors';
import { TrustDomain } from '@tessera/spiffe/id';
import { X509Svid, verifyX509Svid } from '@tessera/spiffe/svid';
import { describeKey, type Certificate } from '@tessera/spiffe/x509';
import { describeCertificate, renderCertificateReports } from '../certificate-report.js';
import type { Command, CommandContext, CommandGroup } from '../command.js';
import { CommandError, ExitCode, UsageError } from '../errors.js';
import { OUTPUT_FLAG } from '../flags.js';
import { loadX509BundleFile, parseCertificateFile, readInputFile } from '../input-files.js';
import { describeValidity, formatTime } from '../time-format.js';


const inspect: Command = {
  name: 'inspect',
  summary: 'Show what an X509-SVID (or any certificate chain) contains',
  description: [
    'Shows the leaf certificate of a PEM or DER file: SPIFFE ID, serial, subject, issuer,',
    'validity with the time left, key type, SANs, key usages, extended key usages and CA flag;',
    'then a summary of every other certificate in the chain. Nothing is verified: use',
    "'tessera svid verify' for that.",
  ].join('\n'),
  args: [{ name: 'cert.pem', description: 'Certificate chain, leaf first (PEM or DER)' }],
  flags: [OUTPUT_FLAG],
  examples: ['tessera svid inspect svid.0.pem', 'tessera svid inspect svid.0.pem -output json'],
  run({ io, flags, args }: CommandContext): number {
    const file = args[0]!;
    const { certificates } = parseCertificateFile(readInputFile(file, 'certificate file'), file, 'certificate file');
    const now = io.now();
    const reports = certificates.map((c, i) => describeCertificate(c, i, now));
    if (flags.string('output') === 'json') {
      io.stdout.write(JSON.stringify({ file, checkedAt: formatTime(now), certificates: reports }, null, 2) + '\n');
    } else {
      io.stdout.write(renderCertificateReports(reports, file));
    }
    return ExitCode.ok;
  },
};

/** The trust domain of the leaf's SPIFFE ID, if it has a usable one. */
function leafTrustDomain(leaf: Certificate): TrustDomain | undefined {
  const uris = leaf.subjectAltNames.uris;
  if (uris.length !== 1) return undefined;
  try {
    return TrustDomain.parse(uris[0]!);
  } catch {
    return undefined;
  }
}

/** A source with no bundle at all: verification then fails on the leaf's own defects first. */
const NO_BUNDLE: X509BundleSource = {
  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle {
    throw new BundleError('ERR_BUNDLE_NOT_FOUND', `no X.509 bundle found for trust domain "${td.name}"`);
  },
};

function failure(message: string, hint?: string): CommandError {
  return new CommandError(`verification failed: ${message}${hint === undefined ? '' : `\nhint: ${hint}`}`);
}

const verify: Command = {
  name: 'verify',
  summary: 'Verify an X509-SVID against a trust bundle',
  description: [
    "Verifies an X509-SVID chain as a peer would (X509-SVID §5): the leaf's SPIFFE ID and key",
    "usages, then a path to an authority in the bundle of the leaf's trust domain, valid now.",
    'With --key, also checks that the private key belongs to the leaf.',
    '',
    'The bundle file may hold PEM or DER certificates, or a SPIFFE bundle (JWK Set JSON).',
    "It is taken to be the bundle of --trust-domain if given, else of the SVID's own trust",
    'domain. On success the first line printed is the SPIFFE ID; on failure the reason is',
    "printed as 'verification failed: <reason>' and the exit code is 1.",
  ].join('\n'),
  args: [{ name: 'svid.pem', description: 'Certificate chain, leaf first (PEM or DER)' }],
  flags: [
    { name: 'bundle', kind: 'string', valueName: 'file', required: true, description: 'Trust bundle: PEM/DER certificates or SPIFFE bundle JSON' },
    { name: 'trust-domain', kind: 'string', valueName: 'td', description: "Trust domain the bundle belongs to (default: the SVID's)" },
    { name: 'key', kind: 'string', valueName: 'key.pem', description: 'Private key of the SVID (PEM, or PKCS#8 DER); checks that it belongs to the leaf' },
  ],
  examples: [
    'tessera svid verify -bundle bundle.0.pem svid.0.pem',
    'tessera svid verify --bundle=bundle.json --trust-domain example.org --key svid.0.key svid.0.pem',
  ],
  run({ io, flags, args }: CommandContext): number {
    const svidFile = args[0]!;
    let tdFlag: TrustDomain | undefined;
    const tdName = flags.string('trust-domain');
    if (tdName !== undefined) {
      try {
        tdFlag = TrustDomain.parse(tdName);
      } catch (e) {
        throw new UsageError(`invalid --trust-domain "${tdName}": ${(e as Error).message}`);
      }
    }
    const svidData = readInputFile(svidFile, 'SVID file');
    let parsed;
    try {
      parsed = parseCertificateFile(svidData, svidFile, 'SVID file');
    } catch (e) {
      throw failure((e as Error).message);
    }
    const leaf = parsed.certificates[0]!;
    const svidTd = leafTrustDomain(leaf);
    const bundleTd = tdFlag ?? svidTd;
    const loaded = bundleTd === undefined ? undefined : loadX509BundleFile(flags.string('bundle')!, bundleTd);
    const now = io.now();

    let result;
    try {
      result = verifyX509Svid(parsed.certificates.map((c) => c.der), loaded?.bundle ?? NO_BUNDLE, { time: now });
    } catch (e) {
      if (!(e instanceof SpiffeError)) throw e;
      let hint: string | undefined;
      if (tdFlag !== undefined && svidTd !== undefined && !tdFlag.equals(svidTd)) {
        hint = `the SVID belongs to trust domain "${svidTd.name}", but the bundle was given for "${tdFlag.name}" (--trust-domain)`;
      } else if (loaded !== undefined && loaded.bundle.isEmpty()) {
        hint = `the bundle file holds no X.509 authorities for "${loaded.bundle.trustDomain.name}"`;
      }
      throw failure(e.message, hint);
    }

    let keyLine: string | undefined;
    const keyFile = flags.string('key');
    if (keyFile !== undefined) {
      const keyData = readInputFile(keyFile, 'key file');
      try {
        const svid =
          parsed.format === 'PEM' ? X509Svid.parse(svidData, keyData) : X509Svid.parseRaw(Buffer.concat(parsed.certificates.map((c) => c.der)), keyData);
        keyLine = `private key matches the leaf certificate (${describeKey(svid.privateKey)})`;
      } catch (e) {
        if (!(e instanceof SpiffeError)) throw e;
        throw failure(e.message);
      }
    }

    // Verification only succeeds once the leaf has a SPIFFE ID, so a bundle was loaded for its trust domain.
    if (loaded === undefined) throw new Error('verified an SVID without loading a bundle');
    const chain = result.verifiedChains[0]!;
    const bundle = loaded.bundle;
    const n = bundle.x509Authorities().length;
    io.stdout.write(
      [
        result.id.toString(),
        `verified against the bundle of ${bundle.trustDomain.name} (${n} ${n === 1 ? 'authority' : 'authorities'}, ${loaded.format}), chain length ${chain.length}`,
        `valid until ${formatTime(leaf.notAfter)} (${describeValidity(leaf.notBefore, leaf.notAfter, now).text})`,
        ...(keyLine === undefined ? [] : [keyLine]),
      ].join('\n') + '\n',
    );
    return ExitCode.ok;
  },
};

/** The `svid` command group. */
export const svidCommands: CommandGroup = {
  name: 'svid',
  summary: 'Inspect and verify X509-SVIDs on disk',
  commands: [inspect, verify],
};

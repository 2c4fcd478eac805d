/**
 * What `tessera svid inspect` shows about each certificate of a chain, as
 * a plain object (the `-output json` form) and as aligned text.
 */
import { SpiffeId } from '@tessera/spiffe/id';
import { describeKey, keyUsageNames, oidName, signatureAlgorithmName, type AttributeValue, type Certificate } from '@tessera/spiffe/x509';
import { describeValidity, formatTime, type ValidityStatus } from './time-format.js';

/** One certificate as `svid inspect` reports it. */
export interface CertificateReport {
  /** Position in the file, 0 = leaf. */
  readonly index: number;
  /** `leaf` for the first certificate; later ones `root` when self-issued, else `intermediate`. */
  readonly role: 'leaf' | 'intermediate' | 'root';
  /** The SPIFFE ID of the single URI SAN, or `null` when there is none or it is invalid. */
  readonly spiffeId: string | null;
  /** Why `spiffeId` is null, or a warning about it; absent when all is well. */
  readonly spiffeIdNote?: string;
  /** Serial number in upper-case hex, as `openssl x509 -serial` prints it. */
  readonly serial: string;
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly validity: {
    readonly status: ValidityStatus;
    /** Seconds until NotAfter (negative once expired). */
    readonly secondsLeft: number;
    readonly text: string;
  };
  readonly publicKey: string;
  readonly signatureAlgorithm: string;
  readonly subjectAltNames: { readonly uris: string[]; readonly dnsNames: string[]; readonly ipAddresses: string[]; readonly emails: string[] };
  readonly keyUsage: { readonly names: string[]; readonly critical: boolean } | null;
  readonly extKeyUsage: string[] | null;
  readonly basicConstraints: { readonly ca: boolean; readonly pathLen: number | null; readonly critical: boolean } | null;
}

/** `C=US, O=SPIRE, CN=web`, with `,` and `=` in values escaped as in RFC 4514. */
export function formatName(attrs: readonly AttributeValue[]): string {
  if (attrs.length === 0) return '(empty)';
  return attrs.map((a) => `${oidName(a.oid)}=${a.value.replace(/[,=+\\]/g, (c) => '\\' + c)}`).join(', ');
}

function spiffeIdOf(cert: Certificate, isLeaf: boolean): { spiffeId: string | null; spiffeIdNote?: string } {
  const uris = cert.subjectAltNames.uris;
  if (uris.length === 0) return { spiffeId: null, spiffeIdNote: 'none: the certificate has no URI SAN' };
  if (uris.length > 1) {
    return { spiffeId: null, spiffeIdNote: `invalid: the certificate has ${uris.length} URI SANs; an X509-SVID has exactly one` };
  }
  let id: SpiffeId;
  try {
    id = SpiffeId.parse(uris[0]!);
  } catch (e) {
    return { spiffeId: null, spiffeIdNote: `invalid: URI SAN "${uris[0]}" is not a SPIFFE ID: ${(e as Error).message}` };
  }
  if (isLeaf && id.isRoot()) return { spiffeId: id.toString(), spiffeIdNote: 'a leaf X509-SVID needs a non-root path' };
  return { spiffeId: id.toString() };
}

function publicKeyOf(cert: Certificate): string {
  try {
    return describeKey(cert.publicKey);
  } catch {
    const curve = cert.publicKeyCurve === undefined ? '' : ` ${oidName(cert.publicKeyCurve)}`;
    return `unsupported (${oidName(cert.publicKeyAlgorithm)}${curve})`;
  }
}

/**
 * Describes `cert`, the `index`-th certificate of a chain, with validity
 * relative to `now`.
 * @example
 * ```ts
 * const reports = certs.map((c, i) => describeCertificate(c, i, io.now()));
 * ```
 */
export function describeCertificate(cert: Certificate, index: number, now: Date): CertificateReport {
  const validity = describeValidity(cert.notBefore, cert.notAfter, now);
  const san = cert.subjectAltNames;
  return {
    index,
    role: index === 0 ? 'leaf' : cert.selfIssued ? 'root' : 'intermediate',
    ...spiffeIdOf(cert, index === 0),
    serial: cert.serialHex.toUpperCase(),
    subject: formatName(cert.subject),
    issuer: formatName(cert.issuer),
    notBefore: formatTime(cert.notBefore),
    notAfter: formatTime(cert.notAfter),
    validity: { ...validity, secondsLeft: Math.floor((cert.notAfter.getTime() - now.getTime()) / 1000) },
    publicKey: publicKeyOf(cert),
    signatureAlgorithm: signatureAlgorithmName(cert.signatureAlgorithm),
    subjectAltNames: { uris: [...san.uris], dnsNames: [...san.dnsNames], ipAddresses: [...san.ipAddresses], emails: [...san.emails] },
    keyUsage: cert.keyUsage ? { names: keyUsageNames(cert.keyUsage.bits), critical: cert.keyUsage.critical } : null,
    extKeyUsage: cert.extKeyUsage ? cert.extKeyUsage.map(oidName) : null,
    basicConstraints: cert.basicConstraints
      ? { ca: cert.basicConstraints.ca, pathLen: cert.basicConstraints.pathLen ?? null, critical: cert.basicConstraints.critical }
      : null,
  };
}

function rows(pairs: [string, string][]): string {
  return pairs.map(([k, v]) => `  ${(k + ':').padEnd(16)}${v}`).join('\n');
}

function spiffeIdText(r: CertificateReport): string {
  if (r.spiffeId === null) return r.spiffeIdNote ?? 'none';
  return r.spiffeIdNote === undefined ? r.spiffeId : `${r.spiffeId} (${r.spiffeIdNote})`;
}

function caText(r: CertificateReport): string {
  const bc = r.basicConstraints;
  if (bc === null) return 'no basicConstraints extension';
  const pathLen = bc.pathLen === null ? '' : `, pathLen ${bc.pathLen}`;
  return `${bc.ca ? 'true' : 'false'}${pathLen}${bc.critical ? ' (critical)' : ''}`;
}

function sanText(r: CertificateReport): string {
  const s = r.subjectAltNames;
  const all = [...s.uris.map((u) => `URI:${u}`), ...s.dnsNames.map((d) => `DNS:${d}`), ...s.ipAddresses.map((i) => `IP:${i}`), ...s.emails.map((e) => `email:${e}`)];
  return all.length === 0 ? 'none' : all.join(', ');
}

/**
 * Renders reports as text: every field of the leaf, and a summary of each
 * other certificate of the chain.
 * @example
 * ```ts
 * io.stdout.write(renderCertificateReports(reports, 'svid.pem'));
 * ```
 */
export function renderCertificateReports(reports: readonly CertificateReport[], source: string): string {
  const out: string[] = [];
  const count = reports.length === 1 ? '1 certificate' : `${reports.length} certificates`;
  out.push(`${source}: ${count}`, '');
  for (const r of reports) {
    const validity: [string, string][] = [
      ['Not before', r.notBefore],
      ['Not after', `${r.notAfter} (${r.validity.text})`],
    ];
    if (r.role === 'leaf') {
      out.push(
        'Leaf certificate',
        rows([
          ['SPIFFE ID', spiffeIdText(r)],
          ['Serial', r.serial],
          ['Subject', r.subject],
          ['Issuer', r.issuer],
          ...validity,
          ['Public key', r.publicKey],
          ['Signature', r.signatureAlgorithm],
          ['SANs', sanText(r)],
          ['Key usage', r.keyUsage === null ? 'none' : `${r.keyUsage.names.join(', ') || '(no bits set)'}${r.keyUsage.critical ? ' (critical)' : ' (not critical)'}`],
          ['Ext key usage', r.extKeyUsage === null ? 'none' : r.extKeyUsage.join(', ')],
          ['CA', caText(r)],
        ]),
        '',
      );
    } else {
      out.push(
        `Chain certificate ${r.index} (${r.role})`,
        rows([
          ['SPIFFE ID', spiffeIdText(r)],
          ['Serial', r.serial],
          ['Subject', r.subject],
          ['Issuer', r.issuer],
          ...validity,
          ['Public key', r.publicKey],
          ['CA', caText(r)],
        ]),
        '',
      );
    }
  }
  return out.join('\n');
}

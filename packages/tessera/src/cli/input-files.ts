/**
 * Reading the files CLI commands are pointed at — certificate chains, trust
 * bundles, keys — with one-line errors ({@link CommandError}) instead of
 * stack traces.
 */
import { readFileSync } from 'node:fs';
import { X509Bundle, SpiffeBundle } from '@tessera/spiffe/bundle';
import type { TrustDomain } from '@tessera/spiffe/id';
import { parseDerCertificates, parsePemCertificates, type Certificate } from '@tessera/spiffe/x509';
import { CommandError } from './errors.js';

const FS_REASONS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EISDIR: 'is a directory',
  ENOTDIR: 'not a directory',
};

/**
 * Reads a whole file.
 * @param what - what the file is, for the message (`certificate file`).
 * @throws {@link CommandError} `cannot read <what> "<path>": <reason>`
 * @example
 * ```ts
 * const data = readInputFile('svid.pem', 'certificate file');
 * ```
 */
export function readInputFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const reason = (err.code !== undefined ? FS_REASONS[err.code] : undefined) ?? err.message;
    throw new CommandError(`cannot read ${what} "${path}": ${reason}`);
  }
}

/** Whether file content is PEM text rather than DER. */
export function looksLikePem(data: Uint8Array): boolean {
  return Buffer.from(data.subarray(0, 64 * 1024)).toString('latin1').includes('-----BEGIN ');
}

/**
 * Parses a certificate file: PEM `CERTIFICATE` blocks, or concatenated DER.
 * @throws {@link CommandError} `cannot parse <what> "<path>": <reason>`, also when it holds no certificate.
 * @example
 * ```ts
 * const [leaf, ...intermediates] = parseCertificateFile(readInputFile(f, 'SVID'), f, 'SVID');
 * ```
 */
export function parseCertificateFile(data: Buffer, path: string, what: string): { certificates: Certificate[]; format: 'PEM' | 'DER' } {
  const format = looksLikePem(data) ? 'PEM' : 'DER';
  let certificates: Certificate[];
  try {
    if (data.length === 0 || data.toString('latin1').trim().length === 0) throw new Error('the file is empty');
    certificates = format === 'PEM' ? parsePemCertificates(data) : parseDerCertificates(data);
  } catch (e) {
    const hint = format === 'DER' ? ' (expected PEM "-----BEGIN CERTIFICATE-----" blocks or DER certificates)' : '';
    throw new CommandError(`cannot parse ${what} "${path}": ${(e as Error).message}${hint}`);
  }
  if (certificates.length === 0) throw new CommandError(`cannot parse ${what} "${path}": no certificates found`);
  return { certificates, format };
}

/** A trust bundle read from a file, and the form it was in. */
export interface LoadedBundle {
  readonly bundle: X509Bundle;
  /** `PEM`, `DER` or `SPIFFE bundle`. */
  readonly format: string;
}

/**
 * Loads the X.509 authorities of `td` from a bundle file: a SPIFFE bundle
 * (JWK Set JSON, recognised by its first non-blank character `{`, SPIFFE
 * Trust Domain and Bundle §4), PEM certificates, or concatenated DER
 * certificates (the Workload API's form).
 * @throws {@link CommandError} when the file cannot be read or parsed.
 * @example
 * ```ts
 * const { bundle } = loadX509BundleFile('bundle.json', TrustDomain.parse('example.org'));
 * ```
 */
export function loadX509BundleFile(path: string, td: TrustDomain): LoadedBundle {
  const data = readInputFile(path, 'bundle file');
  const text = data.toString('utf8').trimStart();
  try {
    if (text.startsWith('{')) return { bundle: SpiffeBundle.parse(td, data).x509Bundle(), format: 'SPIFFE bundle' };
    if (text.length === 0) throw new Error('the file is empty');
    if (looksLikePem(data)) return { bundle: X509Bundle.parse(td, data), format: 'PEM' };
    return { bundle: X509Bundle.parseDer(td, data), format: 'DER' };
  } catch (e) {
    throw new CommandError(`cannot parse bundle file "${path}": ${(e as Error).message}`);
  }
}

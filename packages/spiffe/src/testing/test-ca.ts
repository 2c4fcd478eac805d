import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { SpiffeId, TrustDomain } from '../id/index.js';
import { X509Bundle } from '../bundle/x509-bundle.js';
import { JwtBundle } from '../bundle/jwt-bundle.js';
import { X509Svid } from '../svid/x509-svid.js';
import { OptionsError } from '../errors/index.js';
import { KeyUsage, type Extension } from '../internal/x509/certificate.js';
import { OID } from '../internal/x509/oids.js';
import {
  authorityKeyIdentifierExt,
  basicConstraintsExt,
  buildCertificate,
  encodeName,
  extKeyUsageExt,
  keyUsageExt,
  nameConstraintsExt,
  randomSerial,
  subjectAltNameExt,
  subjectKeyIdentifierExt,
} from '../internal/x509/builder.js';
import { keyIdentifier } from '../internal/x509/signature.js';
import { generateKey, type TestKeyType } from './keys.js';

/** Options of {@link TestCa}. */
export interface TestCaOptions {
  /** Trust domain of the CA (name or `TrustDomain`). */
  readonly trustDomain: TrustDomain | string;
  /** CA key type; default `ec-p256`. */
  readonly keyType?: TestKeyType;
  /** Clock for validity periods; default: real time. */
  readonly now?: () => Date;
  /** CA certificate lifetime in seconds; default 1 day. */
  readonly ttlSeconds?: number;
  /** Path length constraint of the CA certificate; default none. */
  readonly pathLen?: number;
  /** Name constraints to put in the CA certificate. */
  readonly permittedUris?: readonly string[];
  readonly excludedUris?: readonly string[];
  /** Parent CA: makes this CA an intermediate signed by it. */
  readonly parent?: TestCa;
  /** Override basic constraints / key usage of the CA certificate (for broken CAs). */
  readonly caFlag?: boolean;
  readonly keyUsage?: number;
}

/** Options for {@link TestCa.createX509Svid} and {@link TestCa.createCertificate}. */
export interface TestCertificateOptions {
  readonly ttlSeconds?: number;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly keyType?: TestKeyType;
  readonly key?: KeyObject;
  readonly dnsNames?: readonly string[];
  /** URI SANs to put in the certificate instead of the ID (for broken SVIDs). */
  readonly uris?: readonly string[];
  readonly ca?: boolean;
  readonly keyUsage?: number;
  readonly keyUsageCritical?: boolean;
  /** Extra extensions (raw), e.g. an unknown critical one. */
  readonly extraExtensions?: readonly Extension[];
  readonly subjectCommonName?: string;
}

/** A certificate chain and key as a test fixture. */
export interface TestX509Fixture {
  /** The chain as a peer would send it, leaf first (DER). */
  readonly certificates: Buffer[];
  readonly privateKey: KeyObject;
}

/** Every X509-SVID defect of X509-SVID §4–§5 the test CA can mint, named after the defect (spec/spiffe.md §2). */
export type X509SvidDefect =
  | 'leaf-ca-true'
  | 'leaf-key-cert-sign'
  | 'leaf-crl-sign'
  | 'leaf-no-digital-signature'
  | 'leaf-no-key-usage'
  | 'leaf-key-usage-not-critical'
  | 'no-uri-san'
  | 'two-uri-sans'
  | 'https-uri'
  | 'uppercase-trust-domain'
  | 'root-path-id'
  | 'expired'
  | 'not-yet-valid'
  | 'signed-by-other-trust-domain'
  | 'unknown-trust-domain'
  | 'intermediate-not-sent'
  | 'intermediate-ca-false'
  | 'intermediate-no-key-cert-sign'
  | 'root-pathlen-zero-with-intermediate'
  | 'name-constraint-excludes-trust-domain'
  | 'peer-presents-ca'
  | 'key-mismatch'
  | 'unknown-critical-extension';

/** All defects, for table-driven tests. */
export const X509_SVID_DEFECTS: readonly X509SvidDefect[] = [
  'leaf-ca-true', 'leaf-key-cert-sign', 'leaf-crl-sign', 'leaf-no-digital-signature', 'leaf-no-key-usage',
  'leaf-key-usage-not-critical', 'no-uri-san', 'two-uri-sans', 'https-uri', 'uppercase-trust-domain', 'root-path-id',
  'expired', 'not-yet-valid', 'signed-by-other-trust-domain', 'unknown-trust-domain', 'intermediate-not-sent',
  'intermediate-ca-false', 'intermediate-no-key-cert-sign', 'root-pathlen-zero-with-intermediate',
  'name-constraint-excludes-trust-domain', 'peer-presents-ca', 'key-mismatch', 'unknown-critical-extension',
];

const LEAF_USAGE = KeyUsage.digitalSignature | KeyUsage.keyEncipherment | KeyUsage.keyAgreement;
const CA_USAGE = KeyUsage.keyCertSign | KeyUsage.cRLSign | KeyUsage.digitalSignature;

/**
 * An in-code certificate authority for tests: mints CA chains, X509-SVIDs,
 * JWT-SVIDs and every broken variant of spec X509-SVID §4–§5, so tests (the
 * project's and users') never need fixture files. Like go-spiffe's
 * `test/spiffetest` CA. Not for production use: keys live in memory.
 *
 * @example
 * ```ts
 * const ca = new TestCa({ trustDomain: 'example.org' });
 * const svid = ca.createX509Svid('spiffe://example.org/web');
 * const bundle = ca.x509Bundle();
 * ```
 */
export class TestCa {
  readonly trustDomain: TrustDomain;
  readonly key: KeyObject;
  /** This CA's certificate (DER). */
  readonly certificate: Buffer;
  readonly parent: TestCa | undefined;
  /** JWT signing key and its key ID. */
  readonly jwtKey: KeyObject;
  readonly jwtKeyId: string;
  readonly now: () => Date;
  readonly #subject: Buffer;
  readonly #keyId: Buffer;

  constructor(options: TestCaOptions) {
    if (options === null || typeof options !== 'object') throw new OptionsError('TestCa: options are required');
    this.trustDomain = typeof options.trustDomain === 'string' ? TrustDomain.parse(options.trustDomain) : options.trustDomain;
    this.now = options.now ?? (() => new Date());
    this.parent = options.parent;
    this.key = generateKey(options.keyType ?? 'ec-p256');
    const pub = createPublicKey(this.key);
    const serial = randomSerial();
    this.#subject = encodeName([
      { oid: OID.country, value: 'US' },
      { oid: OID.organization, value: 'Tessera Test CA' },
      { oid: OID.serialNumber, value: BigInt('0x' + serial.toString('hex')).toString() },
    ]);
    const spki = pub.export({ type: 'spki', format: 'der' }) as Buffer;
    this.#keyId = keyIdentifier(spki);
    const now = this.now();
    const exts: Extension[] = [
      basicConstraintsExt(options.caFlag ?? true, options.pathLen),
      keyUsageExt(options.keyUsage ?? CA_USAGE),
      subjectKeyIdentifierExt(spki),
      subjectAltNameExt({ uris: [this.trustDomain.idString()] }),
    ];
    if (options.permittedUris || options.excludedUris) {
      exts.push(nameConstraintsExt({ permittedUris: options.permittedUris ?? [], excludedUris: options.excludedUris ?? [] }));
    }
    if (this.parent) exts.push(authorityKeyIdentifierExt(this.parent.#keyId));
    this.certificate = buildCertificate({
      serial,
      issuer: this.parent ? this.parent.#subject : this.#subject,
      subject: this.#subject,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + (options.ttlSeconds ?? 86_400) * 1000),
      publicKey: spki,
      extensions: exts,
      signingKey: this.parent ? this.parent.key : this.key,
    });
    this.jwtKey = generateKey('ec-p256');
    this.jwtKeyId = randomBytes(16).toString('hex');
  }

  /** The root of this CA's hierarchy. */
  get root(): TestCa {
    return this.parent ? this.parent.root : this;
  }

  /** Intermediates from this CA up to (not including) the root, as a peer sends them. */
  chain(): Buffer[] {
    return this.parent ? [this.certificate, ...this.parent.chain()] : [];
  }

  /** The X.509 bundle holding this hierarchy's root. */
  x509Bundle(): X509Bundle {
    return new X509Bundle(this.trustDomain, [this.root.certificate]);
  }

  /** The JWT bundle holding this CA's JWT key. */
  jwtBundle(): JwtBundle {
    return new JwtBundle(this.trustDomain, [[this.jwtKeyId, createPublicKey(this.jwtKey)]]);
  }

  /** A child CA (intermediate) of this one. */
  createIntermediate(options: Omit<TestCaOptions, 'trustDomain' | 'parent'> = {}): TestCa {
    return new TestCa({ now: this.now, ...options, trustDomain: this.trustDomain, parent: this });
  }

  /** A certificate signed by this CA with full control over its content (for broken variants). */
  createCertificate(id: SpiffeId | string | undefined, options: TestCertificateOptions = {}): TestX509Fixture {
    const key = options.key ?? generateKey(options.keyType ?? 'ec-p256');
    const spki = createPublicKey(key).export({ type: 'spki', format: 'der' }) as Buffer;
    const now = this.now();
    const notBefore = options.notBefore ?? new Date(now.getTime() - 10_000);
    const notAfter = options.notAfter ?? new Date(now.getTime() + (options.ttlSeconds ?? 3600) * 1000);
    const uris = options.uris ?? (id === undefined ? [] : [id.toString()]);
    const exts: Extension[] = [
      ...(options.ca ? [basicConstraintsExt(true)] : [basicConstraintsExt(false)]),
      ...(options.keyUsage === 0 ? [] : [keyUsageExt(options.keyUsage ?? LEAF_USAGE, options.keyUsageCritical ?? true)]),
      extKeyUsageExt([OID.serverAuth, OID.clientAuth]),
      subjectKeyIdentifierExt(spki),
      authorityKeyIdentifierExt(this.#keyId),
      ...(uris.length || options.dnsNames?.length ? [subjectAltNameExt({ uris, dnsNames: options.dnsNames ?? [] }, false)] : []),
      ...(options.extraExtensions ?? []),
    ];
    const cert = buildCertificate({
      issuer: this.#subject,
      subject: encodeName([
        { oid: OID.country, value: 'US' },
        { oid: OID.organization, value: 'SPIRE' },
        ...(options.subjectCommonName ? [{ oid: OID.commonName, value: options.subjectCommonName }] : []),
      ]),
      notBefore,
      notAfter,
      publicKey: spki,
      extensions: exts,
      signingKey: this.key,
    });
    return { certificates: [cert, ...this.chain()], privateKey: key };
  }

  /** A valid X509-SVID for `id`, signed by this CA. */
  createX509Svid(id: SpiffeId | string, options: TestCertificateOptions = {}): X509Svid {
    const sid = typeof id === 'string' ? SpiffeId.parse(id) : id;
    const f = this.createCertificate(sid, options);
    return X509Svid.fromParts(f.certificates, f.privateKey);
  }

  /**
   * Mints an X509-SVID carrying exactly one defect, for tests of parsers and
   * verifiers. Verify it against {@link TestCa.x509Bundle} of this CA (for
   * `signed-by-other-trust-domain`, add the returned `extraBundles`, so the
   * test proves the wrong trust domain's root is not used).
   */
  createBrokenX509Svid(defect: X509SvidDefect): TestX509Fixture & { extraBundles: X509Bundle[] } {
    const td = this.trustDomain.name;
    const id = SpiffeId.parse(`spiffe://${td}/workload`);
    const now = this.now();
    const plain = (o: TestCertificateOptions = {}): TestX509Fixture => this.createCertificate(id, o);
    const none: X509Bundle[] = [];
    switch (defect) {
      case 'leaf-ca-true':
        return { ...plain({ ca: true }), extraBundles: none };
      case 'leaf-key-cert-sign':
        return { ...plain({ keyUsage: LEAF_USAGE | KeyUsage.keyCertSign }), extraBundles: none };
      case 'leaf-crl-sign':
        return { ...plain({ keyUsage: LEAF_USAGE | KeyUsage.cRLSign }), extraBundles: none };
      case 'leaf-no-digital-signature':
        return { ...plain({ keyUsage: KeyUsage.keyEncipherment }), extraBundles: none };
      case 'leaf-no-key-usage':
        return { ...plain({ keyUsage: 0 }), extraBundles: none };
      case 'leaf-key-usage-not-critical':
        return { ...plain({ keyUsageCritical: false }), extraBundles: none };
      case 'no-uri-san':
        return { ...plain({ uris: [], dnsNames: ['workload.example'] }), extraBundles: none };
      case 'two-uri-sans':
        return { ...plain({ uris: [id.toString(), `spiffe://${td}/other`] }), extraBundles: none };
      case 'https-uri':
        return { ...plain({ uris: [`https://${td}/workload`] }), extraBundles: none };
      case 'uppercase-trust-domain':
        return { ...plain({ uris: [`spiffe://${td.toUpperCase()}/workload`] }), extraBundles: none };
      case 'root-path-id':
        return { ...plain({ uris: [`spiffe://${td}`] }), extraBundles: none };
      case 'expired':
        return { ...plain({ notBefore: new Date(now.getTime() - 7_200_000), notAfter: new Date(now.getTime() - 3_600_000) }), extraBundles: none };
      case 'not-yet-valid':
        return { ...plain({ notBefore: new Date(now.getTime() + 3_600_000), notAfter: new Date(now.getTime() + 7_200_000) }), extraBundles: none };
      case 'signed-by-other-trust-domain': {
        const other = new TestCa({ trustDomain: `other-${td}`, now: this.now });
        return { ...other.createCertificate(id), extraBundles: [other.x509Bundle()] };
      }
      case 'unknown-trust-domain': {
        const other = new TestCa({ trustDomain: `unknown-${td}`, now: this.now });
        return { ...other.createCertificate(SpiffeId.parse(`spiffe://unknown-${td}/workload`)), extraBundles: none };
      }
      case 'intermediate-not-sent': {
        const f = this.createIntermediate().createCertificate(id);
        return { certificates: f.certificates.slice(0, 1), privateKey: f.privateKey, extraBundles: none };
      }
      case 'intermediate-ca-false':
        return { ...this.createIntermediate({ caFlag: false }).createCertificate(id), extraBundles: none };
      case 'intermediate-no-key-cert-sign':
        return { ...this.createIntermediate({ keyUsage: KeyUsage.digitalSignature | KeyUsage.cRLSign }).createCertificate(id), extraBundles: none };
      case 'root-pathlen-zero-with-intermediate': {
        if (this.parent) throw new OptionsError('root-pathlen-zero-with-intermediate needs a root TestCa');
        const root = new TestCa({ trustDomain: this.trustDomain, now: this.now, pathLen: 0 });
        const f = root.createIntermediate().createCertificate(id);
        return { ...f, extraBundles: [root.x509Bundle()] };
      }
      case 'name-constraint-excludes-trust-domain': {
        const root = new TestCa({ trustDomain: this.trustDomain, now: this.now, excludedUris: [td] });
        return { ...root.createCertificate(id), extraBundles: [root.x509Bundle()] };
      }
      case 'peer-presents-ca':
        return { certificates: [this.certificate, ...(this.parent ? this.parent.chain() : [])], privateKey: this.key, extraBundles: none };
      case 'key-mismatch': {
        const f = plain();
        return { certificates: f.certificates, privateKey: generateKey('ec-p256'), extraBundles: none };
      }
      case 'unknown-critical-extension':
        return {
          ...plain({ extraExtensions: [{ oid: '1.3.6.1.4.1.99999.1', critical: true, value: Buffer.from([0x05, 0x00]) }] }),
          extraBundles: none,
        };
    }
  }
}

import type { X509BundleSource } from '../bundle/source.js';
import type { X509SvidSource } from '../svid/x509-svid.js';
import { OptionsError } from '../errors/index.js';
import type { Authorizer } from './authorizer.js';

/**
 * What a SPIFFE TLS endpoint needs. Which fields are required depends on the
 * mode (go-spiffe's `tlsconfig` modes):
 * - mTLS server / mTLS client: `svid`, `bundle`, `authorize`;
 * - TLS client (server authenticated by SPIFFE, no client certificate): `bundle`, `authorize`;
 * - TLS server (presents its SVID, does not ask for a client certificate): `svid`.
 */
export interface SpiffeTlsConfig {
  /** Source of our own X509-SVID; read on every new handshake, so rotation needs no restart. */
  readonly svid?: X509SvidSource;
  /** Source of the trust bundles used to verify the peer; read on every handshake. */
  readonly bundle?: X509BundleSource;
  /** Decides whether the verified peer is acceptable. */
  readonly authorize?: Authorizer;
  /** Clock for certificate validity checks; default real time. */
  readonly clock?: () => Date;
}

export type TlsMode = 'mtls-server' | 'mtls-client' | 'tls-client' | 'tls-server';

/** @internal Validates a config for `mode` at construction (fails fast with a helpful message). */
export function checkConfig(config: SpiffeTlsConfig, mode: TlsMode): Required<Pick<SpiffeTlsConfig, 'clock'>> & SpiffeTlsConfig {
  if (config === null || typeof config !== 'object') throw new OptionsError(`${mode}: a config object is required`);
  const needSvid = mode !== 'tls-client';
  const needPeer = mode !== 'tls-server';
  if (needSvid && (config.svid === undefined || typeof config.svid.getX509Svid !== 'function')) {
    throw new OptionsError(`${mode}: "svid" must be an X509SvidSource (an X509Svid, or a Workload API X509Source)`);
  }
  if (needPeer && (config.bundle === undefined || typeof config.bundle.getX509BundleForTrustDomain !== 'function')) {
    throw new OptionsError(`${mode}: "bundle" must be an X509BundleSource (an X509Bundle, a bundle set, or a Workload API source)`);
  }
  if (needPeer && typeof config.authorize !== 'function') {
    throw new OptionsError(`${mode}: "authorize" is required (e.g. authorizeId(id), authorizeMemberOf(td), or authorizeAny())`);
  }
  if (config.clock !== undefined && typeof config.clock !== 'function') throw new OptionsError(`${mode}: "clock" must be a function returning a Date`);
  return { ...config, clock: config.clock ?? (() => new Date()) };
}

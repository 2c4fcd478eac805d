import { createSecureContext, type SecureContext } from 'node:tls';
import { constants } from 'node:crypto';
import type { X509Svid } from '../svid/x509-svid.js';
import { encodePem } from '../internal/pem.js';

/** TLS versions: TLS 1.2 and up, like go-spiffe's tlsconfig. */
export const MIN_TLS_VERSION = 'TLSv1.2';

/**
 * Session tickets are off: a resumed session carries no certificate, and
 * every connection must present (and verify) the current SVIDs.
 */
export const SECURE_OPTIONS = constants.SSL_OP_NO_TICKET;

export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
}

const materials = new WeakMap<X509Svid, TlsMaterial>();
const contexts = new WeakMap<X509Svid, SecureContext>();

/** PEM chain and key of an SVID, encoded once per SVID object. @internal */
export function tlsMaterial(svid: X509Svid): TlsMaterial {
  let m = materials.get(svid);
  if (m === undefined) {
    m = {
      cert: svid.certificates.map((c) => encodePem('CERTIFICATE', c)).join(''),
      key: svid.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    };
    materials.set(svid, m);
  }
  return m;
}

/** A client secure context presenting `svid`, built once per SVID object (reuse makes handshakes ~2x cheaper). @internal */
export function clientContext(svid: X509Svid | undefined): SecureContext {
  if (svid === undefined) return (noCertContext ??= createSecureContext({ minVersion: MIN_TLS_VERSION, secureOptions: SECURE_OPTIONS }));
  let ctx = contexts.get(svid);
  if (ctx === undefined) {
    ctx = createSecureContext({ ...tlsMaterial(svid), minVersion: MIN_TLS_VERSION, secureOptions: SECURE_OPTIONS });
    contexts.set(svid, ctx);
  }
  return ctx;
}
let noCertContext: SecureContext | undefined;

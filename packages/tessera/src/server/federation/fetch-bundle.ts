/**
 * The client side of a bundle endpoint (SPIFFE Federation §5; spec/spiffe.md
 * §5): one HTTPS GET, authenticated as the relationship's profile says —
 * `https_web` by Web PKI against the URL's host, `https_spiffe` by the
 * endpoint's X509-SVID, which must carry exactly the configured SPIFFE ID
 * and chain to the bundle of *that ID's* trust domain. No redirects, a size
 * cap and an overall deadline, so a hostile endpoint costs us little.
 */
import * as https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { X509BundleSource } from '@tessera/spiffe/bundle';
import { isSpiffeError } from '@tessera/spiffe/errors';
import type { SpiffeId } from '@tessera/spiffe/id';
import { authorizeId, httpsAgent } from '@tessera/spiffe/tls';
import { FederationError } from './errors.js';

/** Where and how to fetch. */
export type BundleEndpointTarget =
  | { readonly url: string; readonly profile: 'https_web' }
  | {
      readonly url: string;
      readonly profile: 'https_spiffe';
      /** The only ID the endpoint may present. */
      readonly endpointSpiffeId: SpiffeId;
      /** Holds the bundle of the endpoint ID's trust domain, and only that one. */
      readonly endpointBundle: X509BundleSource;
    };

/** Limits and trust anchors of a fetch. */
export interface FetchOptions {
  /** Clock for validity checks of the endpoint's X509-SVID. */
  readonly now: () => Date;
  /** `https_web` only: CA certificates (PEM) to trust instead of Node's Web PKI roots. For tests. */
  readonly webCa?: string | Buffer;
  /** Overall deadline (connect, handshake, response); default 10 s. */
  readonly timeoutMs?: number;
  /** Largest body accepted; default 1 MiB. */
  readonly maxBytes?: number;
  /** Aborts the fetch (server shutdown). */
  readonly signal?: AbortSignal;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_BYTES = 1024 * 1024;

/** Node's codes for a Web PKI certificate that failed verification. */
const WEB_PKI_REJECTIONS = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'HOSTNAME_MISMATCH',
]);

/** The failure as a one-line {@link FederationError}. */
function describe(e: unknown, target: BundleEndpointTarget): FederationError {
  if (e instanceof FederationError) return e;
  const err = e as NodeJS.ErrnoException;
  if (isSpiffeError(e) && e.code === 'ERR_TLS_PEER_REJECTED') {
    const expected = target.profile === 'https_spiffe' ? ` (expected ${target.endpointSpiffeId.toString()})` : '';
    return new FederationError('FEDERATION_ENDPOINT_REJECTED', `bundle endpoint ${target.url} failed https_spiffe authentication: ${err.message}${expected}`, { cause: e });
  }
  if (typeof err.code === 'string' && WEB_PKI_REJECTIONS.has(err.code)) {
    return new FederationError('FEDERATION_ENDPOINT_REJECTED', `bundle endpoint ${target.url} failed https_web authentication: ${err.message} (${err.code})`, { cause: e });
  }
  const code = typeof err.code === 'string' ? ` (${err.code})` : '';
  return new FederationError('FEDERATION_FETCH_FAILED', `cannot fetch the bundle from ${target.url}: ${err.message}${code}`, { cause: e });
}

/**
 * GETs the bundle document from the endpoint and returns the body (not yet
 * parsed: the caller parses it for the relationship's trust domain).
 * @throws {@link FederationError} `FEDERATION_ENDPOINT_REJECTED` (authentication) or `FEDERATION_FETCH_FAILED` (anything else).
 * @example
 * ```ts
 * const body = await fetchBundleDocument(
 *   { url: 'https://b.test:8443', profile: 'https_spiffe', endpointSpiffeId, endpointBundle: storedBundleOfB },
 *   { now: () => new Date() },
 * );
 * ```
 */
export function fetchBundleDocument(target: BundleEndpointTarget, options: FetchOptions): Promise<Buffer> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  let agent: https.Agent | undefined;
  try {
    agent =
      target.profile === 'https_spiffe'
        ? httpsAgent({ bundle: target.endpointBundle, authorize: authorizeId(target.endpointSpiffeId), clock: options.now }, { keepAlive: false })
        : undefined;
  } catch (e) {
    return Promise.reject(describe(e, target));
  }
  return new Promise<Buffer>((resolve, reject) => {
    let settled = false;
    let req: ReturnType<typeof https.request> | undefined;
    const finish = (err: unknown, body?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      options.signal?.removeEventListener('abort', onAbort);
      req?.destroy();
      agent?.destroy();
      if (err !== undefined) reject(describe(err, target));
      else resolve(body!);
    };
    const deadline = setTimeout(() => finish(new Error(`no complete answer within ${timeoutMs < 1000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`}`)), timeoutMs);
    deadline.unref();
    const onAbort = (): void => finish(new Error('aborted: the server is shutting down'));
    if (options.signal?.aborted) {
      onAbort();
      return;
    }
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const onResponse = (res: IncomingMessage): void => {
      if (res.statusCode !== 200) {
        res.resume();
        finish(new FederationError('FEDERATION_FETCH_FAILED', `bundle endpoint ${target.url} answered HTTP ${res.statusCode ?? '?'} ${res.statusMessage ?? ''}`.trimEnd()));
        return;
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) {
        finish(new FederationError('FEDERATION_FETCH_FAILED', `bundle endpoint ${target.url} sent ${declared} bytes; at most ${maxBytes} are accepted`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) finish(new FederationError('FEDERATION_FETCH_FAILED', `bundle endpoint ${target.url} sent more than ${maxBytes} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => finish(undefined, Buffer.concat(chunks)));
      res.on('error', (e) => finish(e));
      res.on('aborted', () => finish(new Error('the response was cut short')));
    };
    const requestOptions: https.RequestOptions = {
      method: 'GET',
      headers: { accept: 'application/json' },
      ...(agent ? { agent } : { agent: false, ...(options.webCa !== undefined ? { ca: options.webCa } : {}) }),
    };
    try {
      req = https.request(target.url, requestOptions, onResponse);
    } catch (e) {
      finish(e);
      return;
    }
    req.on('error', (e) => finish(e));
    req.end();
  });
}

/**
 * The server side of SPIFFE Federation (§5; spec/spiffe.md §5): an HTTPS
 * endpoint answering `GET /` with this trust domain's bundle as SPIFFE
 * bundle JSON (`application/json`), without client authentication. Two
 * profiles: `https_spiffe` presents an X509-SVID minted by our own CA
 * ({@link EndpointSvid}); `https_web` presents a configured Web PKI
 * certificate, re-read when its files change (so an ACME renewal needs no
 * restart). Anyone on the network can call it, so it never touches the
 * database per request: the document is cached and reloaded when the change
 * feed says our bundle changed (or after {@link MAX_DOCUMENT_AGE_MS}).
 */
import * as https from 'node:https';
import { createSecureContext } from 'node:tls';
import { once } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { SpiffeId } from '@tessera/spiffe/id';
import { createHttpsServer } from '@tessera/spiffe/tls';
import type { Logger } from '../../observe/logger.js';
import type { MetricsRegistry } from '../../observe/metrics.js';
import { EndpointSvid, type SvidMinter } from './endpoint-svid.js';
import { FederationError } from './errors.js';

/** How the bundle endpoint authenticates itself to its clients. */
export type BundleEndpointConfig =
  | {
      readonly profile?: 'https_spiffe';
      /** Listen address; default 0.0.0.0. */
      readonly address?: string;
      /** Port; 0 picks a free one (see `bundleEndpointPort`). */
      readonly port: number;
    }
  | {
      readonly profile: 'https_web';
      readonly address?: string;
      readonly port: number;
      /** Serving certificate chain (PEM), valid for the host name in the relationships' URLs. */
      readonly certFile: string;
      /** Its private key (PEM). */
      readonly keyFile: string;
    };

/** What the endpoint needs from the server. */
export interface BundleEndpointDeps {
  /** Our bundle as SPIFFE bundle JSON (the datastore's copy, which agents and replicas also read). */
  readonly loadDocument: () => Promise<string>;
  /** Mints the `https_spiffe` SVID. */
  readonly ca: SvidMinter;
  /** The ID the `https_spiffe` SVID carries. */
  readonly endpointSpiffeId: SpiffeId;
  readonly logger: Logger;
  readonly metrics?: MetricsRegistry;
  readonly now: () => Date;
}

/** Longest time a cached bundle document is served without reloading, as a safety net under change-feed invalidation. */
export const MAX_DOCUMENT_AGE_MS = 30_000;
const REQUEST_TIMEOUT_MS = 10_000;

interface WebCertificate {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** `mtimeMs` of both files when read. */
  readonly stamp: string;
}

function readWebCertificate(certFile: string, keyFile: string): WebCertificate {
  let cert: Buffer;
  let key: Buffer;
  let stamp: string;
  try {
    stamp = `${statSync(certFile).mtimeMs}/${statSync(keyFile).mtimeMs}`;
    cert = readFileSync(certFile);
    key = readFileSync(keyFile);
  } catch (e) {
    throw new FederationError('FEDERATION_INVALID_CONFIG', `cannot read the bundle endpoint's serving certificate: ${(e as Error).message}`, { cause: e });
  }
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    throw new FederationError('FEDERATION_INVALID_CONFIG', `the bundle endpoint's serving certificate "${certFile}" and key "${keyFile}" are unusable: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return { cert, key, stamp };
}

function fileStamp(certFile: string, keyFile: string): string | undefined {
  try {
    return `${statSync(certFile).mtimeMs}/${statSync(keyFile).mtimeMs}`;
  } catch {
    return undefined;
  }
}

/** A running bundle endpoint. */
export class BundleEndpoint {
  /** The port actually bound. */
  readonly port: number;
  readonly #server: https.Server;
  readonly #config: BundleEndpointConfig;
  readonly #deps: BundleEndpointDeps;
  readonly #svid: EndpointSvid | undefined;
  #web: WebCertificate | undefined;
  #document: { json: string; loadedAt: number } | undefined;
  #loading: Promise<string> | undefined;
  #generation = 0;

  private constructor(server: https.Server, port: number, config: BundleEndpointConfig, deps: BundleEndpointDeps, svid: EndpointSvid | undefined, web: WebCertificate | undefined) {
    this.#server = server;
    this.port = port;
    this.#config = config;
    this.#deps = deps;
    this.#svid = svid;
    this.#web = web;
  }

  /**
   * Mints or loads the serving certificate and starts listening.
   * @throws {@link FederationError} `FEDERATION_INVALID_CONFIG` (certificate files, port in use), or the CA's error when the SVID cannot be minted.
   */
  static async start(config: BundleEndpointConfig, deps: BundleEndpointDeps): Promise<BundleEndpoint> {
    let svid: EndpointSvid | undefined;
    let web: WebCertificate | undefined;
    let server: https.Server;
    // The handler needs the endpoint, which needs the listening server: bind late.
    const bound: { endpoint?: BundleEndpoint } = {};
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      if (bound.endpoint) bound.endpoint.#handle(req, res);
      else res.writeHead(503).end();
    };
    const serverOptions: https.ServerOptions = { requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS };
    if (config.profile === 'https_web') {
      web = readWebCertificate(config.certFile, config.keyFile);
      server = https.createServer({ ...serverOptions, cert: web.cert, key: web.key, minVersion: 'TLSv1.2' }, handler);
    } else {
      svid = await EndpointSvid.mint(deps.ca, deps.endpointSpiffeId, deps.now);
      // TLS server mode: presents the SVID, asks for no client certificate (§5: no client authentication).
      server = createHttpsServer({ svid }, handler, serverOptions);
    }
    // Broken clients must never take the server down: answer 400 if the socket still can, and hang up.
    server.on('clientError', (e: NodeJS.ErrnoException, socket: Socket) => {
      if (socket.writable && e.code !== 'ECONNRESET') socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
    server.on('tlsClientError', (e: Error) => deps.logger.debug('bundle endpoint: TLS handshake failed', { error: e }));
    server.listen(config.port, config.address ?? '0.0.0.0');
    try {
      await Promise.race([once(server, 'listening'), once(server, 'error').then(([e]) => Promise.reject(e as Error))]);
    } catch (e) {
      throw new FederationError('FEDERATION_INVALID_CONFIG', `cannot serve the bundle endpoint on ${config.address ?? '0.0.0.0'}:${config.port}: ${(e as Error).message}`, { cause: e });
    }
    server.on('error', (e: Error) => deps.logger.error('bundle endpoint server error', { error: e }));
    const endpoint = new BundleEndpoint(server, (server.address() as AddressInfo).port, config, deps, svid, web);
    bound.endpoint = endpoint;
    deps.logger.info('bundle endpoint started', { port: endpoint.port, profile: config.profile ?? 'https_spiffe', ...(svid ? { spiffeId: svid.id.toString() } : {}) });
    return endpoint;
  }

  /** Our bundle changed (change feed): the next request reloads it. */
  invalidate(): void {
    this.#document = undefined;
    this.#generation++;
  }

  /**
   * Periodic upkeep: re-mints the SVID at half-life (`https_spiffe`), reloads
   * changed certificate files (`https_web`) and drops the cached bundle
   * document, so the next request serves what the datastore holds now.
   * Failures are logged; the current certificate stays in use.
   */
  async tick(): Promise<void> {
    this.invalidate();
    if (this.#svid) {
      try {
        if (await this.#svid.rotateIfDue()) {
          this.#deps.logger.info('bundle endpoint SVID rotated', { spiffeId: this.#svid.id.toString(), expiresAt: this.#svid.getX509Svid().expiresAt.toISOString() });
        }
      } catch (e) {
        this.#deps.logger.error('bundle endpoint SVID rotation failed; still serving the current one', { error: e as Error });
      }
    }
    if (this.#web && this.#config.profile === 'https_web') {
      const { certFile, keyFile } = this.#config;
      const stamp = fileStamp(certFile, keyFile);
      if (stamp !== undefined && stamp !== this.#web.stamp) {
        try {
          const next = readWebCertificate(certFile, keyFile);
          this.#server.setSecureContext({ cert: next.cert, key: next.key, minVersion: 'TLSv1.2' });
          this.#web = next;
          this.#deps.logger.info('bundle endpoint certificate reloaded', { certFile });
        } catch (e) {
          this.#deps.logger.error('bundle endpoint certificate reload failed; still serving the previous one', { error: e as Error });
        }
      }
    }
  }

  /** Stops listening and closes open connections. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }

  /** The bundle document, from the cache or (once for concurrent requests) from the datastore. */
  #currentDocument(): Promise<string> {
    const now = this.#deps.now().getTime();
    const d = this.#document;
    if (d !== undefined && now - d.loadedAt < MAX_DOCUMENT_AGE_MS && now >= d.loadedAt) return Promise.resolve(d.json);
    if (this.#loading === undefined) {
      const generation = this.#generation;
      this.#loading = this.#deps
        .loadDocument()
        .then((json) => {
          // A load that raced with an invalidation serves its caller but is not cached.
          if (generation === this.#generation) this.#document = { json, loadedAt: now };
          return json;
        })
        .finally(() => {
          this.#loading = undefined;
        });
    }
    return this.#loading;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    res.on('error', () => undefined);
    req.resume();
    const count = (code: number): void => this.#deps.metrics?.inc('tessera_server_bundle_endpoint_requests_total', 'Requests to the federation bundle endpoint by status', { code: String(code) });
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      count(405);
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('only GET is supported\n');
      return;
    }
    if (path !== '/') {
      count(404);
      res.writeHead(404, { 'content-type': 'text/plain' }).end('the bundle is served at /\n');
      return;
    }
    this.#currentDocument().then(
      (json) => {
        const body = Buffer.from(json, 'utf8');
        count(200);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (e: unknown) => {
        this.#deps.logger.warn('bundle endpoint cannot load the bundle', { error: e as Error });
        count(503);
        res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '10' }).end('the bundle is temporarily unavailable\n');
      },
    );
  }
}

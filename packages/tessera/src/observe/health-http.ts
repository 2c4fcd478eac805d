import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { MetricsRegistry } from './metrics.js';

/** A running health/metrics HTTP endpoint. */
export interface HealthHttp {
  /** The port actually bound. */
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves `GET /live` (200 while the process runs), `/ready` (200 or 503 with
 * the JSON of `ready()`), `/metrics` (Prometheus text of `metrics`) on
 * `address:port` (port 0: any). Other methods 405, other paths 404.
 * @throws the listen error (port in use, bad address).
 */
export async function serveHealthHttp(options: { port: number; address?: string; ready: () => Promise<{ ready: boolean }>; metrics: MetricsRegistry }): Promise<HealthHttp> {
  const http: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/live') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"live":true}\n');
    } else if (path === '/ready') {
      void options.ready().then(
        (h) => res.writeHead(h.ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(h) + '\n'),
        (e: unknown) => res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ ready: false, error: String(e) }) + '\n'),
      );
    } else if (path === '/metrics') {
      void options.metrics.render().then((t) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(t));
    } else {
      res.writeHead(404).end();
    }
  });
  http.listen(options.port, options.address ?? '127.0.0.1');
  await Promise.race([once(http, 'listening'), once(http, 'error').then(([e]) => Promise.reject(e as Error))]);
  return {
    port: (http.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => http.close(() => r())),
  };
}

// The seed's Go echo-client with @tessera/spiffe: calls the echo-server over
// mTLS with the SVID from the Workload API, accepting only a server whose
// SPIFFE ID is exactly EXPECTED_SERVER_ID, every INTERVAL_MS.
//   SPIFFE_ENDPOINT_SOCKET  Workload API address (unix:///path)
//   SERVER_ADDRESS          host:port of the echo-server
//   EXPECTED_SERVER_ID      the server's SPIFFE ID
//   INTERVAL_MS             pause between requests, default 5000
//   REQUESTS                stop after n requests; exit 1 if any failed (default: loop forever)
import { get } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { SpiffeId } from '@tessera/spiffe/id';
import { authorizeId, httpsAgent } from '@tessera/spiffe/tls';
import { X509Source } from '@tessera/spiffe/workload-api';

const log = (msg: string): void => void process.stderr.write(`${new Date().toISOString()} ${msg}\n`);
const fatal = (msg: string): never => {
  log(msg);
  process.exit(1);
};

const { SERVER_ADDRESS: server, EXPECTED_SERVER_ID: expected, INTERVAL_MS = '5000', REQUESTS } = process.env;
if (!server || !expected) fatal('SERVER_ADDRESS and EXPECTED_SERVER_ID must be set');
const serverId = SpiffeId.parse(expected!);

const source = await X509Source.create({ timeoutMs: 30_000 }).catch((e: Error) => fatal(`Unable to create X509Source: ${e.message}`));
log(`Client SVID: ${source.getX509Svid().id}`);

// The server is verified against the bundle and must be exactly serverId before
// the request is written. No keep-alive: every request is a new handshake with
// the source's current SVID, so rotations apply at once.
const agent = httpsAgent({ svid: source, bundle: source, authorize: authorizeId(serverId) });

function request(): Promise<string> {
  return new Promise((resolve, reject) => {
    get(`https://${server}/`, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
      res.on('end', () => (res.statusCode === 200 ? resolve(`${body} (server certificate ${serial})`) : reject(new Error(`HTTP ${res.statusCode}: ${body}`))));
    }).on('error', reject);
  });
}

const total = REQUESTS === undefined ? Infinity : Number(REQUESTS);
let failed = 0;
for (let i = 0; i < total; i++) {
  if (i > 0) await sleep(Number(INTERVAL_MS));
  try {
    log(`Server response: ${await request()}`);
  } catch (e) {
    failed++;
    log(`Error making request: ${(e as Error).message}`);
  }
}
log(`${total} requests, ${failed} failed`);
source.close();
process.exitCode = failed > 0 ? 1 : 0;

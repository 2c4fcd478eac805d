// The seed's Go echo-server with @tessera/spiffe: an HTTPS server whose
// identity comes from the Workload API and which accepts only mTLS clients
// of its trust domain (or exactly ALLOWED_CLIENT_ID), answering "Hello, <id>".
//   SPIFFE_ENDPOINT_SOCKET  Workload API address (unix:///path)
//   LISTEN_ADDRESS          host:port, default 127.0.0.1:8443 (port 0: any free port, printed on stdout)
//   ALLOWED_CLIENT_ID       authorize only this client SPIFFE ID
import type { TLSSocket } from 'node:tls';
import { SpiffeId } from '@tessera/spiffe/id';
import { authorizeId, authorizeMemberOf, createHttpsServer, peerId } from '@tessera/spiffe/tls';
import { X509Source } from '@tessera/spiffe/workload-api';

const log = (msg: string): void => void process.stderr.write(`${new Date().toISOString()} ${msg}\n`);
const fatal = (msg: string): never => {
  log(msg);
  process.exit(1);
};

// Blocks until the agent hands out an SVID; the source then follows every rotation.
const source = await X509Source.create({ timeoutMs: 30_000 }).catch((e: Error) => fatal(`Unable to create X509Source: ${e.message}`));
const me = source.getX509Svid().id;
log(`Server SVID: ${me}`);

const allowed = process.env['ALLOWED_CLIENT_ID'];
const authorize = allowed ? authorizeId(SpiffeId.parse(allowed)) : authorizeMemberOf(me.trustDomain);

// Each new connection gets the source's current SVID, and the client's SVID is
// verified and authorized before the request handler runs.
const server = createHttpsServer({ svid: source, bundle: source, authorize }, (req, res) => {
  const clientId = peerId(req)!.toString();
  // The serial shows which of the client's (rotating) certificates it used.
  log(`Received request from ${clientId} (certificate ${(req.socket as TLSSocket).getPeerCertificate().serialNumber})`);
  res.end(`Hello, ${clientId}`);
});
server.on('tlsClientError', (e: Error) => log(`Rejected connection: ${e.message}`));

const [, host = '127.0.0.1', port = '8443'] = /^\[?(.*?)\]?:(\d+)$/.exec(process.env['LISTEN_ADDRESS'] ?? '') ?? [];
server.listen(Number(port), host, () => {
  const addr = server.address();
  const bound = typeof addr === 'object' && addr !== null ? addr.port : Number(port);
  log(`Server listening on ${host}:${bound}...`);
  if (port === '0') process.stdout.write(`${bound}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close();
    server.closeAllConnections();
    source.close();
  });
}

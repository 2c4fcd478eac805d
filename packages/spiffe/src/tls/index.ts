/**
 * SPIFFE TLS for `node:tls`, `node:https`, `node:http2` and undici: servers and
 * clients that present X509-SVIDs, verify peers by SPIFFE rules
 * (X509-SVID §5, no hostname verification) and authorize them by SPIFFE ID
 * during connection set-up. Like go-spiffe's `spiffetls/tlsconfig`.
 * @module
 */
export { authorizeAny, authorizeId, authorizeOneOf, authorizeMemberOf, adaptMatcher, type Authorizer } from './authorizer.js';
export type { SpiffeTlsConfig } from './config.js';
export { serverOptions, secureServer, createTlsServer, createHttpsServer, createHttp2Server } from './server.js';
export { clientOptions, connectTls, httpsAgent, connectHttp2, undiciConnector, type UndiciConnectOptions } from './client.js';
export { peerId, peerChain as peerCertificates } from './peer.js';

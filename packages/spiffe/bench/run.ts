/**
 * Library benchmarks: `npm run bench` writes bench/results/spiffe.json.
 * Throughputs are measured for a fixed wall-clock budget; the mTLS figures
 * compare the helpers with plain node:tls on the same certificates, in
 * interleaved rounds of the same run, so the ratio is robust to a noisy machine.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tls from 'node:tls';
import { constants } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { TestCa, createJwtSvid } from '../src/testing/index.js';
import { SpiffeId } from '../src/id/index.js';
import { verifyX509Svid, JwtSvid } from '../src/svid/index.js';
import { authorizeId, connectTls, createTlsServer } from '../src/tls/index.js';

function rate(budgetMs: number, fn: () => void): { opsPerSec: number; ops: number } {
  let ops = 0;
  const start = performance.now();
  let now = start;
  while (now - start < budgetMs) {
    for (let i = 0; i < 50; i++) fn();
    ops += 50;
    now = performance.now();
  }
  return { opsPerSec: Math.round((ops * 1000) / (now - start)), ops };
}

async function listen(server: tls.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

async function handshakes(n: number, concurrency: number, connect: () => Promise<tls.TLSSocket>): Promise<number> {
  let next = 0;
  const start = performance.now();
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      const s = await connect();
      s.destroy();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return (n * 1000) / (performance.now() - start);
}

async function main(): Promise<void> {
  const budget = Number(process.env['BENCH_BUDGET_MS'] ?? 1500);
  const ca = new TestCa({ trustDomain: 'example.org' });
  const bundle = ca.x509Bundle();
  const results: Record<string, unknown> = { node: process.version, date: new Date().toISOString() };

  const ids = ['spiffe://example.org/ns/backend/sa/default', 'spiffe://cluster.local/identity/256', 'spiffe://a.b.c/x/y/z/.hidden/...'];
  let k = 0;
  results['spiffeIdParse'] = rate(budget, () => SpiffeId.parse(ids[k++ % 3]!));

  const svid = ca.createX509Svid('spiffe://example.org/web');
  results['x509SvidVerify'] = rate(budget, () => verifyX509Svid(svid.certificates, bundle));
  const inter = ca.createIntermediate();
  const svid2 = inter.createX509Svid('spiffe://example.org/web');
  results['x509SvidVerifyWithIntermediate'] = rate(budget, () => verifyX509Svid(svid2.certificates, bundle));
  // The same with 1000 leaves in turn (many distinct peers), more than the verification caches
  // hold: shows that the figures above do not depend on the leaf being seen before (only CA
  // certificates and their signature checks are cached).
  const leaves = Array.from({ length: 1000 }, (_, i) => ca.createX509Svid(`spiffe://example.org/w${i}`).certificates);
  const leaves2 = Array.from({ length: 1000 }, (_, i) => inter.createX509Svid(`spiffe://example.org/w${i}`).certificates);
  let n = 0;
  results['x509SvidVerifyDistinctLeaves'] = rate(budget, () => verifyX509Svid(leaves[n++ % leaves.length]!, bundle));
  n = 0;
  results['x509SvidVerifyWithIntermediateDistinctLeaves'] = rate(budget, () => verifyX509Svid(leaves2[n++ % leaves2.length]!, bundle));

  const jwtBundle = ca.jwtBundle();
  const token = createJwtSvid(ca, 'spiffe://example.org/web', ['spiffe://example.org/db'], { ttlSeconds: 3600 });
  results['jwtSvidValidate'] = rate(budget, () => JwtSvid.parseAndValidate(token, jwtBundle, 'spiffe://example.org/db'));

  // mTLS handshakes: helpers vs plain node:tls, same certificates, same server CPU.
  const serverId = SpiffeId.parse('spiffe://example.org/server');
  const clientId = SpiffeId.parse('spiffe://example.org/client');
  const serverSvid = ca.createX509Svid(serverId);
  const clientSvid = ca.createX509Svid(clientId);
  const sm = serverSvid.marshal();
  const cm = clientSvid.marshal();
  const ca_pem = bundle.marshal();

  const spiffeServer = createTlsServer({ svid: serverSvid, bundle, authorize: authorizeId(clientId) }, (s) => s.on('error', () => undefined));
  const plainServer = tls.createServer(
    { cert: sm.certificates, key: sm.privateKey, ca: ca_pem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' },
    (s) => s.on('error', () => undefined),
  );
  // Same as plainServer but without TLS 1.3 session tickets, which the helpers
  // turn off (a resumed session would carry no certificate to verify).
  const plainNoTicketServer = tls.createServer(
    { cert: sm.certificates, key: sm.privateKey, ca: ca_pem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET },
    (s) => s.on('error', () => undefined),
  );
  const spiffePort = await listen(spiffeServer);
  const plainPort = await listen(plainServer);
  const plainNoTicketPort = await listen(plainNoTicketServer);
  const clientConfig = { svid: clientSvid, bundle, authorize: authorizeId(serverId) };
  const plainContext = tls.createSecureContext({ cert: cm.certificates, key: cm.privateKey, ca: ca_pem, minVersion: 'TLSv1.2' });
  const spiffeConnect = (): Promise<tls.TLSSocket> => connectTls(clientConfig, { host: '127.0.0.1', port: spiffePort });
  const plainConnectTo = (port: number) => (): Promise<tls.TLSSocket> =>
    new Promise((res, rej) => {
      const s = tls.connect({ host: '127.0.0.1', port, secureContext: plainContext, checkServerIdentity: () => undefined }, () => res(s));
      s.once('error', rej);
    });
  const plainConnect = plainConnectTo(plainPort);
  const plainNoTicketConnect = plainConnectTo(plainNoTicketPort);

  const rounds = Number(process.env['BENCH_TLS_ROUNDS'] ?? 4);
  const perRound = Number(process.env['BENCH_TLS_HANDSHAKES'] ?? 150);
  for (const concurrency of [1, 8]) {
    await handshakes(30, concurrency, spiffeConnect);
    await handshakes(30, concurrency, plainConnect);
    const spiffe: number[] = [];
    const plain: number[] = [];
    const plainNoTicket: number[] = [];
    for (let r = 0; r < rounds; r++) {
      plain.push(await handshakes(perRound, concurrency, plainConnect));
      spiffe.push(await handshakes(perRound, concurrency, spiffeConnect));
      plainNoTicket.push(await handshakes(perRound, concurrency, plainNoTicketConnect));
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    results[`mtlsHandshakes_c${concurrency}`] = {
      helpersPerSec: Math.round(median(spiffe)),
      plainNodeTlsPerSec: Math.round(median(plain)),
      ratio: Number((median(spiffe) / median(plain)).toFixed(3)),
      plainNoTicketsPerSec: Math.round(median(plainNoTicket)),
      ratioVsNoTickets: Number((median(spiffe) / median(plainNoTicket)).toFixed(3)),
      roundsHelpers: spiffe.map(Math.round),
      roundsPlain: plain.map(Math.round),
    };
  }
  spiffeServer.close();
  plainServer.close();
  plainNoTicketServer.close();

  const out = resolve(dirname(fileURLToPath(import.meta.url)), '../../../../bench/results/spiffe.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
  console.log(JSON.stringify(results, null, 2));
  console.log(`written to ${out}`);
}

await main();

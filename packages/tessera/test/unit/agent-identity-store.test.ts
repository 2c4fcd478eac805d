// The agent's persisted identity (agent SVID chain, its key, the trust
// bundle) in a temporary data directory: round trip, file modes, and every
// broken state read back as AGENT_STATE_INVALID, never as a crash.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrustDomain } from '@tessera/spiffe/id';
import { SpiffeBundle } from '@tessera/spiffe/bundle';
import { TestCa } from '@tessera/spiffe/testing';
import { agentDataFiles } from '../../src/agent/config.js';
import { AgentError } from '../../src/agent/errors.js';
import { agentSvidFrom, IdentityStore, type AgentSvid } from '../../src/agent/node/identity-store.js';

const td = TrustDomain.parse('td');
const AGENT_ID = 'spiffe://td/tessera/agent/join_token/abc';
const root = mkdtempSync(join(tmpdir(), 'tessera-identity-store-'));
after(() => rmSync(root, { recursive: true, force: true }));
const ca = new TestCa({ trustDomain: td });
const intermediate = ca.createIntermediate();
const bundle = SpiffeBundle.fromX509Bundle(ca.x509Bundle());

let n = 0;
/** A fresh data directory (not created: the store must cope). */
const dataDir = (): string => join(root, `d${n++}`);

function agentSvid(issuer: TestCa = intermediate, id: string = AGENT_ID): AgentSvid {
  const f = issuer.createCertificate(id);
  return agentSvidFrom(f.certificates, f.privateKey);
}

/** Saves a good identity in `dir` and returns the store and the SVID. */
async function saved(dir = dataDir()): Promise<{ store: IdentityStore; svid: AgentSvid; dir: string; files: ReturnType<typeof agentDataFiles> }> {
  const store = new IdentityStore(dir, td);
  const svid = agentSvid();
  await store.saveBundle(bundle);
  await store.saveSvid(svid);
  return { store, svid, dir, files: agentDataFiles(dir) };
}

async function rejectsInvalid(store: IdentityStore, re: RegExp): Promise<void> {
  await assert.rejects(store.load(), (e: unknown) => e instanceof AgentError && e.code === 'AGENT_STATE_INVALID' && re.test(e.message), String(re));
}

test('nothing saved (no directory, or an empty one) → undefined', async () => {
  const dir = dataDir();
  assert.equal(await new IdentityStore(dir, td).load(), undefined);
  mkdirSync(dir);
  assert.equal(await new IdentityStore(dir, td).load(), undefined);
});

test('save → load round trip: the chain (leaf and intermediate), the key, validity and the bundle', async () => {
  const { svid, dir } = await saved();
  const loaded = await new IdentityStore(dir, td).load();
  assert.ok(loaded);
  assert.equal(loaded.svid.spiffeId, AGENT_ID);
  assert.equal(loaded.svid.certificates.length, 2);
  assert.deepEqual(loaded.svid.certificates, svid.certificates);
  assert.deepEqual(loaded.svid.certificates[1], intermediate.certificate);
  assert.deepEqual(loaded.svid.key.export({ format: 'jwk' }), svid.key.export({ format: 'jwk' }));
  assert.equal(loaded.svid.notBefore.getTime(), svid.notBefore.getTime());
  assert.equal(loaded.svid.notAfter.getTime(), svid.notAfter.getTime());
  assert.ok(loaded.bundle.equals(bundle));
  assert.equal(loaded.bundle.trustDomain.name, 'td');
});

test('the key file is mode 0600 (also after a renewal replaced it); a renewed SVID replaces the old one', async () => {
  const { store, files, dir } = await saved();
  assert.equal(statSync(files.key).mode & 0o777, 0o600);
  assert.match(readFileSync(files.key, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
  const renewed = agentSvid();
  await store.saveSvid(renewed);
  assert.equal(statSync(files.key).mode & 0o777, 0o600);
  const loaded = await new IdentityStore(dir, td).load();
  assert.deepEqual(loaded?.svid.certificates, renewed.certificates);
  assert.deepEqual(loaded?.svid.key.export({ format: 'jwk' }), renewed.key.export({ format: 'jwk' }));
});

test('an SVID with its key or its bundle missing → AGENT_STATE_INVALID naming the missing file', async () => {
  const a = await saved();
  rmSync(a.files.key);
  await rejectsInvalid(a.store, new RegExp(`${a.files.key.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is missing`));
  const b = await saved();
  rmSync(b.files.bundle);
  await rejectsInvalid(b.store, /bundle\.json is missing/);
});

test('a key that does not belong to the certificate (e.g. a crash between the two writes) → AGENT_STATE_INVALID', async () => {
  const { store, files } = await saved();
  // What a crash after the key write and before the certificate write leaves: the new key, the old certificate.
  const other = agentSvid();
  writeFileSync(files.key, other.key.export({ type: 'pkcs8', format: 'pem' }));
  await rejectsInvalid(store, /key does not match the certificate/);
});

const garbage: [string, keyof ReturnType<typeof agentDataFiles>, string | Buffer, RegExp][] = [
  ['random bytes as the SVID', 'svid', randomBytes(300), /agent-svid\.pem/],
  ['an SVID file that is not PEM', 'svid', 'hello\n', /agent-svid\.pem/],
  ['an empty SVID file', 'svid', '', /empty certificate chain/],
  ['a PEM certificate block with a broken body', 'svid', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', /agent-svid\.pem/],
  ['a private key PEM in the SVID file', 'svid', '', /agent-svid\.pem|certificate/],
  ['random bytes as the key', 'key', randomBytes(200), /agent-svid\.pem/],
  ['a certificate in the key file', 'key', '', /agent-svid\.pem/],
  ['bundle.json that is not JSON', 'bundle', '{"keys": [', /agent-svid\.pem/],
  ['bundle.json that is a JSON array', 'bundle', '[]', /agent-svid\.pem/],
  ['bundle.json with a key of an unknown kind', 'bundle', '{"keys":[{"use":"x509-svid","kty":"EC","x5c":["AAAA"]}]}', /agent-svid\.pem/],
];

for (const [name, which, content, re] of garbage) {
  test(`garbage: ${name} → AGENT_STATE_INVALID, not a crash`, async () => {
    const { store, files, svid } = await saved();
    let data = content;
    if (name === 'a private key PEM in the SVID file') data = svid.key.export({ type: 'pkcs8', format: 'pem' }) as string;
    if (name === 'a certificate in the key file') data = readFileSync(files.svid);
    writeFileSync(files[which], data);
    await rejectsInvalid(store, re);
  });
}

test('a data file that is a directory → AGENT_STATE_INVALID', async () => {
  const { store, files } = await saved();
  rmSync(files.bundle);
  mkdirSync(files.bundle);
  await rejectsInvalid(store, /bundle\.json/);
});

test('an agent SVID of another trust domain, or without a SPIFFE ID, is rejected', async () => {
  const dir = dataDir();
  const foreign = new TestCa({ trustDomain: 'other.td' });
  const store = new IdentityStore(dir, td);
  await store.saveBundle(bundle);
  await store.saveSvid(agentSvid(foreign, 'spiffe://other.td/tessera/agent/join_token/abc'));
  await rejectsInvalid(store, /spiffe:\/\/other\.td\/tessera\/agent\/join_token\/abc is not in trust domain td/);

  // A trust domain whose name is a prefix of another's is not the same one.
  const lookalike = new TestCa({ trustDomain: 'td2' });
  await store.saveSvid(agentSvid(lookalike, 'spiffe://td2/tessera/agent/join_token/abc'));
  await rejectsInvalid(store, /not in trust domain td$/);

  const noId = ca.createCertificate(undefined, { dnsNames: ['node.example'] });
  assert.throws(() => agentSvidFrom(noId.certificates, noId.privateKey), (e: unknown) => e instanceof AgentError && e.code === 'AGENT_STATE_INVALID' && /no SPIFFE ID/.test(e.message));
  assert.throws(() => agentSvidFrom([], noId.privateKey), (e: unknown) => e instanceof AgentError && e.code === 'AGENT_STATE_INVALID' && /empty certificate chain/.test(e.message));
});

test('clear() forgets the SVID and its key (load → undefined), keeps the bundle, and is idempotent', async () => {
  const { store, files, dir } = await saved();
  await store.clear();
  assert.ok(!existsSync(files.svid) && !existsSync(files.key));
  assert.ok(existsSync(files.bundle), 'the bundle still verifies the server at the next attestation');
  assert.equal(await store.load(), undefined);
  await store.clear();
  assert.equal(await new IdentityStore(dir, td).load(), undefined);
  await new IdentityStore(dataDir(), td).clear();
});

/**
 * The server CA across restarts on a real filesystem: DiskKeyManager (PKCS#8
 * PEM, 0600 files in a 0700 directory, atomic writes) and FileCaJournal.
 * A restart finds the same keys, certificates, bundle and sequence; broken
 * key files stop the server with CA_KEY_UNAVAILABLE; a lost key is replaced
 * while its certificate stays trusted.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyX509Svid } from '@tessera/spiffe/svid';
import { Certificate } from '@tessera/spiffe/x509';
import { CaError, DiskKeyManager, FileCaJournal, ServerCa } from '../../src/server/ca/index.js';

const WEB = 'spiffe://example.org/web';
let root: string;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'tessera-ca-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

function paths(name: string): { dir: string; keys: string; journal: string } {
  const dir = join(root, name);
  return { dir, keys: join(dir, 'keys'), journal: join(dir, 'ca-journal.json') };
}

function open(name: string, clock: { t: number }): Promise<ServerCa> {
  const p = paths(name);
  return ServerCa.open({ trustDomain: 'example.org', keyManager: new DiskKeyManager(p.keys), journal: new FileCaJournal(p.journal), now: () => new Date(clock.t) });
}

const mode = (p: string): number => statSync(p).mode & 0o777;

describe('restart with DiskKeyManager and FileCaJournal', () => {
  test('same keys, same CA, same bundle and sequence; files are 0600 in a 0700 directory; nothing temporary left', async () => {
    const clock = { t: Date.now() };
    const first = await open('restart', clock);
    clock.t = first.nextRotationAt()!.getTime();
    await first.tick();
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const before = await first.signX509Svid({ spiffeId: WEB, publicKey: key });
    const p = paths('restart');
    const keyFiles = readdirSync(p.keys);
    assert.equal(keyFiles.length, 4, 'current and next, X.509 and JWT');
    assert.ok(keyFiles.every((f) => /^ca-(x509|jwt)-[0-9a-f]{32}\.pem$/.test(f)), keyFiles.join());
    assert.equal(mode(p.keys), 0o700);
    for (const f of keyFiles) assert.equal(mode(join(p.keys, f)), 0o600, f);
    assert.equal(mode(p.journal), 0o600);
    assert.deepEqual(readdirSync(p.dir).sort(), ['ca-journal.json', 'keys']);
    // The key files are standard PKCS#8 that OpenSSL reads.
    execFileSync('openssl', ['pkey', '-in', join(p.keys, keyFiles[0]!), '-noout']);

    const second = await open('restart', clock);
    assert.deepEqual(second.warnings, []);
    assert.equal(second.bundle().marshal(), first.bundle().marshal());
    assert.equal(second.bundle().sequenceNumber, 2);
    assert.deepEqual(second.status(), first.status());
    const after = await second.signX509Svid({ spiffeId: WEB, publicKey: key });
    assert.deepEqual(new Certificate(after.certificates[0]!).authorityKeyId, new Certificate(before.certificates[0]!).authorityKeyId);
    verifyX509Svid(after.certificates, first.bundle(), { time: new Date(clock.t) });
    assert.deepEqual(readdirSync(p.keys).sort(), keyFiles.sort());
  });

  test('a lost key file: its CA is retired (still trusted), a new one signs, the sequence bumps once', async () => {
    const clock = { t: Date.now() };
    const first = await open('lost', clock);
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const before = await first.signX509Svid({ spiffeId: WEB, publicKey: key });
    const p = paths('lost');
    for (const f of readdirSync(p.keys)) if (f.startsWith('ca-x509-')) unlinkSync(join(p.keys, f));
    const second = await open('lost', clock);
    assert.equal(second.warnings.length, 1);
    assert.match(second.warnings[0]!, /its key is missing/);
    assert.equal(second.bundle().sequenceNumber, 2);
    assert.equal(second.bundle().x509Authorities().length, 2);
    verifyX509Svid(before.certificates, second.bundle(), { time: new Date(clock.t) });
    const after = await second.signX509Svid({ spiffeId: WEB, publicKey: key });
    assert.notDeepEqual(new Certificate(after.certificates[0]!).authorityKeyId, new Certificate(before.certificates[0]!).authorityKeyId);
  });

  test('a key file readable by others, or not a key, stops the server with CA_KEY_UNAVAILABLE', async () => {
    const clock = { t: Date.now() };
    await open('perms', clock);
    const p = paths('perms');
    const file = join(p.keys, readdirSync(p.keys).find((f) => f.startsWith('ca-x509-'))!);
    chmodSync(file, 0o644);
    await assert.rejects(open('perms', clock), (e: unknown) => e instanceof CaError && e.code === 'CA_KEY_UNAVAILABLE' && /mode 644\); run chmod 600/.test(e.message));
    chmodSync(file, 0o600);
    writeFileSync(file, 'garbage');
    await assert.rejects(open('perms', clock), (e: unknown) => e instanceof CaError && e.code === 'CA_KEY_UNAVAILABLE' && /does not hold a usable private key/.test(e.message));
  });

  test('a corrupted journal stops the server with CA_JOURNAL_INVALID', async () => {
    const clock = { t: Date.now() };
    await open('journal', clock);
    writeFileSync(paths('journal').journal, '{"version":1,');
    await assert.rejects(open('journal', clock), (e: unknown) => e instanceof CaError && e.code === 'CA_JOURNAL_INVALID');
  });
});

describe('DiskKeyManager', () => {
  test('generate, read back in a new instance, list, delete; refuses duplicates and path-like IDs', async () => {
    const dir = join(root, 'km', 'nested');
    const km = new DiskKeyManager(dir);
    assert.deepEqual(await km.listKeys(), [], 'a missing directory lists nothing');
    const k = await km.generateKey('ca-x509-a', 'rsa-2048');
    const again = await new DiskKeyManager(dir).getKey('ca-x509-a');
    assert.ok(again !== undefined && again.equals(k));
    assert.equal(await km.getKey('ca-x509-b'), undefined);
    await km.generateKey('ca-jwt-b', 'ec-p384');
    assert.deepEqual(await km.listKeys(), ['ca-jwt-b', 'ca-x509-a']);
    await assert.rejects(km.generateKey('ca-x509-a', 'ec-p256'), (e: unknown) => e instanceof CaError && e.code === 'CA_KEY_UNAVAILABLE' && /already exists/.test(e.message));
    for (const bad of ['../escape', 'a/b', '.x', '']) {
      await assert.rejects(km.generateKey(bad, 'ec-p256'), (e: unknown) => e instanceof CaError && e.code === 'CA_KEY_UNAVAILABLE', bad);
    }
    await km.deleteKey('ca-x509-a');
    await km.deleteKey('ca-x509-a');
    assert.deepEqual(await km.listKeys(), ['ca-jwt-b']);
    assert.deepEqual(readdirSync(dir), ['ca-jwt-b.pem']);
  });
});

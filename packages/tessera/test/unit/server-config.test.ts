import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadServerConfig } from '../../src/server/config.js';
import { ConfigError, parseDuration } from '../../src/config/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-config-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

test('defaults are SPIRE\'s (spec §6)', () => {
  const c = loadServerConfig({ flags: { trustDomain: 'example.org' } });
  assert.equal(c.trustDomain.name, 'example.org');
  assert.equal(c.bindPort, 8081);
  assert.equal(c.caTtlSeconds, 86400);
  assert.equal(c.defaultX509SvidTtlSeconds, 3600);
  assert.equal(c.defaultJwtSvidTtlSeconds, 300);
  assert.equal(c.joinTokenTtlSeconds, 600);
  assert.deepEqual(c.datastore, { kind: 'sqlite', path: join('./.data', 'datastore.sqlite3') });
  assert.equal(c.socketPath, join('./.data', 'server.sock'));
  assert.ok(Object.isFrozen(c));
});

test('file < environment < flags', () => {
  const f = file('a.yaml', 'trustDomain: file.org\nbindPort: 9000\nlogLevel: debug\ncaTtl: 12h\n');
  const c = loadServerConfig({ configFile: f, env: { TESSERA_TRUST_DOMAIN: 'env.org' }, flags: { bindPort: '9100' } });
  assert.equal(c.trustDomain.name, 'env.org');
  assert.equal(c.bindPort, 9100);
  assert.equal(c.logLevel, 'debug');
  assert.equal(c.caTtlSeconds, 12 * 3600);
});

test('postgres datastore URL switches the datastore', () => {
  const c = loadServerConfig({ flags: { trustDomain: 'example.org', datastore: 'postgres://u@127.0.0.1:5432/tessera' } });
  assert.deepEqual(c.datastore, { kind: 'postgres', url: 'postgres://u@127.0.0.1:5432/tessera' });
});

for (const [name, opts, re] of [
  ['unknown key in the file, with a suggestion', { configFile: 'bad1.yaml:trustdomain: x.org\n' }, /unknown key "trustdomain" \(did you mean "trustDomain"\?\)/],
  ['missing trust domain', { flags: {} }, /trustDomain is required/],
  ['invalid trust domain', { flags: { trustDomain: 'Example.ORG' } }, /flags: trustDomain: trust domain characters/],
  ['a SPIFFE ID for the trust domain', { flags: { trustDomain: 'spiffe://example.org' } }, /bare trust domain name/],
  ['port out of range', { flags: { trustDomain: 'x.org', bindPort: 70000 } }, /bindPort: must be at most 65535/],
  ['bad duration', { flags: { trustDomain: 'x.org', caTtl: 'forever' } }, /caTtl: "forever" is not a duration/],
  ['bad enum', { flags: { trustDomain: 'x.org', caKeyType: 'dsa' } }, /caKeyType: "dsa" must be one of ec-p256, ec-p384, rsa-2048/],
  ['bad datastore', { flags: { trustDomain: 'x.org', datastore: 'mysql://x' } }, /datastore: must be "sqlite"/],
  ['upstream cert without key', { flags: { trustDomain: 'x.org', upstreamCertFile: 'a.pem' } }, /given together/],
  ['not YAML', { configFile: 'bad2.yaml:a: [1, 2\n' }, /is not valid YAML/],
  ['nested section', { configFile: 'bad3.yaml:ca:\n  ttl: 1h\n' }, /"ca" must be a plain value/],
  ['missing file', { configFile: '/nonexistent/tessera.yaml' }, /cannot read config file "\/nonexistent\/tessera.yaml": ENOENT/],
] as const) {
  test(`config error: ${name}`, () => {
    let o: { configFile?: string; flags?: Record<string, unknown> } = opts as never;
    if (o.configFile && o.configFile.includes(':') && !o.configFile.startsWith('/')) {
      const [n, text] = [o.configFile.slice(0, o.configFile.indexOf(':')), o.configFile.slice(o.configFile.indexOf(':') + 1)];
      o = { ...o, configFile: file(n, text) };
    }
    assert.throws(() => loadServerConfig(o), (e: unknown) => e instanceof ConfigError && re.test(e.message), String(re));
  });
}

test('durations', () => {
  assert.equal(parseDuration('90', 'k'), 90);
  assert.equal(parseDuration('5m', 'k'), 300);
  assert.equal(parseDuration('24h', 'k'), 86400);
  assert.equal(parseDuration('7d', 'k'), 604800);
  assert.throws(() => parseDuration('-1s', 'k'), ConfigError);
});

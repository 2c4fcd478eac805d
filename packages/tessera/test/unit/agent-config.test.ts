// `tessera agent run` configuration: defaults, every class of bad value with a
// ConfigError naming the key, file < environment < flags, server addresses.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { agentDataFiles, DEFAULT_AGENT_ADMIN_SOCKET, DEFAULT_AGENT_SOCKET, loadAgentConfig, parseServerAddresses } from '../../src/agent/config.js';
import { ConfigError } from '../../src/config/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-agent-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

test('defaults: one local server, SPIRE-like socket paths, pem bootstrap format, no attestation configured, frozen', () => {
  const c = loadAgentConfig({ flags: { trustDomain: 'example.org' } });
  assert.equal(c.trustDomain.name, 'example.org');
  assert.deepEqual(c.serverAddresses, [{ host: '127.0.0.1', port: 8081 }]);
  assert.equal(c.dataDir, resolve('./.agent-data'), 'dataDir is made absolute');
  assert.equal(c.socketPath, DEFAULT_AGENT_SOCKET);
  assert.equal(c.adminSocketPath, DEFAULT_AGENT_ADMIN_SOCKET);
  assert.equal(c.trustBundle, undefined);
  assert.equal(c.insecureBootstrap, false);
  assert.equal(c.attestation, undefined);
  assert.equal(c.nodeName, hostname());
  assert.equal(c.workloadKeyType, 'ec-p256');
  assert.equal(c.healthPort, 0);
  assert.equal(c.logLevel, 'info');
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.serverAddresses));
  assert.deepEqual(agentDataFiles('/d'), { svid: '/d/agent-svid.pem', key: '/d/agent-key.pem', bundle: '/d/bundle.json' });
});

test('node attestation: join token, or x509pop cert and key; a trust bundle with its format', () => {
  assert.deepEqual(loadAgentConfig({ flags: { trustDomain: 'example.org', joinToken: 'tok-1' } }).attestation, { type: 'join_token', token: 'tok-1' });
  assert.deepEqual(loadAgentConfig({ flags: { trustDomain: 'example.org', x509popCertFile: '/n/cert.pem', x509popKeyFile: '/n/key.pem' } }).attestation, {
    type: 'x509pop',
    certFile: '/n/cert.pem',
    keyFile: '/n/key.pem',
  });
  assert.deepEqual(loadAgentConfig({ flags: { trustDomain: 'example.org', trustBundle: '/b.json', trustBundleFormat: 'spiffe' } }).trustBundle, { path: '/b.json', format: 'spiffe' });
  assert.deepEqual(loadAgentConfig({ flags: { trustDomain: 'example.org', trustBundle: '/b.pem' } }).trustBundle, { path: '/b.pem', format: 'pem' });
  assert.equal(loadAgentConfig({ flags: { trustDomain: 'example.org', insecureBootstrap: 'true' } }).insecureBootstrap, true);
});

test('several server addresses are kept in order (failover order); IPv6 in brackets, host names and spaces around commas accepted', () => {
  const c = loadAgentConfig({ flags: { trustDomain: 'example.org', serverAddress: 'spire-0.example:8081, [::1]:9000,10.0.0.7:443 , [fd00::1:2]:1' } });
  assert.deepEqual(c.serverAddresses, [
    { host: 'spire-0.example', port: 8081 },
    { host: '::1', port: 9000 },
    { host: '10.0.0.7', port: 443 },
    { host: 'fd00::1:2', port: 1 },
  ]);
  assert.deepEqual(parseServerAddresses('h:65535'), [{ host: 'h', port: 65535 }]);
  // SPIRE's separate -serverPort: parts without a port take it (8081 by default).
  assert.deepEqual(parseServerAddresses('h,[::1],g:9'), [{ host: 'h', port: 8081 }, { host: '::1', port: 8081 }, { host: 'g', port: 9 }]);
  assert.deepEqual(loadAgentConfig({ flags: { trustDomain: 'example.org', serverAddress: '10.0.0.1', serverPort: '9091' } }).serverAddresses, [{ host: '10.0.0.1', port: 9091 }]);
  assert.throws(() => loadAgentConfig({ flags: { trustDomain: 'example.org', serverPort: '0' } }), (e: unknown) => e instanceof ConfigError && /serverPort/.test(e.message));
});

for (const bad of ['', ' ', 'h:0', 'h:70000', 'h:65536', 'h:', ':8081', '::1:8081', '[::1]:0', '[example.org]:80', 'h:80,', 'h:80,,g:81', 'h:-1', 'h:8o', 'a b:80', 'http://h:80', 'h:80/path']) {
  test(`serverAddress ${JSON.stringify(bad)} is refused with a ConfigError naming serverAddress`, () => {
    assert.throws(
      () => loadAgentConfig({ flags: { trustDomain: 'example.org', serverAddress: bad } }),
      (e: unknown) => e instanceof ConfigError && /serverAddress/.test(e.message) && /host:port|empty/.test(e.message),
    );
    assert.throws(() => parseServerAddresses(bad), ConfigError);
  });
}

for (const [name, flags, re] of [
  ['missing trust domain', {}, /^trustDomain is required/],
  ['a SPIFFE ID for the trust domain', { trustDomain: 'spiffe://example.org' }, /trustDomain: .*bare trust domain name/],
  ['invalid trust domain characters', { trustDomain: 'Example.ORG' }, /flags: trustDomain: /],
  ['a relative socket path', { socketPath: 'agent.sock' }, /^socketPath: "agent.sock" must be an absolute path/],
  ['a relative admin socket path', { adminSocketPath: './run/admin.sock' }, /^adminSocketPath: ".\/run\/admin.sock" must be an absolute path/],
  ['joinToken and x509pop together', { joinToken: 't', x509popCertFile: '/c.pem', x509popKeyFile: '/k.pem' }, /joinToken and x509popCertFile/],
  ['x509pop cert without key', { x509popCertFile: '/c.pem' }, /x509popCertFile and x509popKeyFile must be given together/],
  ['x509pop key without cert', { x509popKeyFile: '/k.pem' }, /x509popCertFile and x509popKeyFile must be given together/],
  ['trustBundle and insecureBootstrap together', { trustBundle: '/b.pem', insecureBootstrap: true }, /trustBundle and insecureBootstrap exclude each other/],
  ['an empty join token', { joinToken: '' }, /^joinToken: empty/],
  ['a bad trust bundle format', { trustBundleFormat: 'der' }, /trustBundleFormat: "der" must be one of pem, spiffe/],
  ['a bad workload key type', { workloadKeyType: 'dsa' }, /workloadKeyType: "dsa" must be one of ec-p256, ec-p384, rsa-2048/],
  ['a health port out of range', { healthPort: 70000 }, /healthPort: must be at most 65535/],
  ['a non-boolean insecureBootstrap', { insecureBootstrap: 'yes' }, /insecureBootstrap: "yes" is not true or false/],
  ['an unknown flag', { joinTokn: 'x' }, /flags: unknown key "joinTokn"/],
] as const) {
  test(`config error: ${name}`, () => {
    const f: Record<string, unknown> = { ...flags };
    if (name !== 'missing trust domain' && !('trustDomain' in f)) f.trustDomain = 'example.org';
    assert.throws(() => loadAgentConfig({ flags: f }), (e: unknown) => e instanceof ConfigError && e.code === 'CONFIG_INVALID' && re.test(e.message), String(re));
  });
}

test('config file: unknown keys are an error naming the key and the file (with a suggestion for a wrong case)', () => {
  const f1 = file('unknown.yaml', 'trustDomain: example.org\nserverAdress: 127.0.0.1:8081\n');
  assert.throws(() => loadAgentConfig({ configFile: f1 }), (e: unknown) => e instanceof ConfigError && e.message === `config file "${f1}": unknown key "serverAdress"`);
  const f2 = file('case.yaml', 'trustdomain: example.org\n');
  assert.throws(() => loadAgentConfig({ configFile: f2 }), (e: unknown) => e instanceof ConfigError && /unknown key "trustdomain" \(did you mean "trustDomain"\?\)/.test(e.message));
  const f3 = file('bad-port.yaml', 'trustDomain: example.org\nserverAddress: "server:0"\n');
  assert.throws(() => loadAgentConfig({ configFile: f3 }), (e: unknown) => e instanceof ConfigError && e.message.startsWith(`config file "${f3}": serverAddress: `));
});

test('file < environment < flags; TESSERA_* variables set the trust domain, servers, data dir, socket and join token', () => {
  const f = file('agent.yaml', 'trustDomain: file.org\nserverAddress: file-server:8081\nlogLevel: debug\nnodeName: node-from-file\njoinToken: file-token\n');
  const env = {
    TESSERA_TRUST_DOMAIN: 'env.org',
    TESSERA_SERVER_ADDRESS: 'env-a:1,env-b:2',
    TESSERA_AGENT_DATA_DIR: '/var/lib/tessera-agent',
    TESSERA_AGENT_SOCKET: '/run/tessera/api.sock',
    TESSERA_JOIN_TOKEN: 'env-token',
  };
  const c = loadAgentConfig({ configFile: f, env });
  assert.equal(c.trustDomain.name, 'env.org');
  assert.deepEqual(c.serverAddresses, [
    { host: 'env-a', port: 1 },
    { host: 'env-b', port: 2 },
  ]);
  assert.equal(c.dataDir, '/var/lib/tessera-agent');
  assert.equal(c.socketPath, '/run/tessera/api.sock');
  assert.deepEqual(c.attestation, { type: 'join_token', token: 'env-token' });
  assert.equal(c.logLevel, 'debug', 'the file still applies where nothing overrides it');
  assert.equal(c.nodeName, 'node-from-file');

  const flagged = loadAgentConfig({ configFile: f, env, flags: { trustDomain: 'flag.org', joinToken: 'flag-token', serverAddress: '[::1]:7' } });
  assert.equal(flagged.trustDomain.name, 'flag.org');
  assert.deepEqual(flagged.attestation, { type: 'join_token', token: 'flag-token' });
  assert.deepEqual(flagged.serverAddresses, [{ host: '::1', port: 7 }]);

  // An empty variable is as if unset.
  assert.equal(loadAgentConfig({ configFile: f, env: { TESSERA_JOIN_TOKEN: '' } }).attestation?.type, 'join_token');
  assert.deepEqual(loadAgentConfig({ configFile: f, env: { TESSERA_JOIN_TOKEN: '' } }).attestation, { type: 'join_token', token: 'file-token' });
  // A bad value from the environment names the variable.
  assert.throws(() => loadAgentConfig({ flags: { trustDomain: 'example.org' }, env: { TESSERA_SERVER_ADDRESS: 'no pe' } }), (e: unknown) => e instanceof ConfigError && /environment TESSERA_SERVER_ADDRESS: serverAddress: "no pe" is not host:port/.test(e.message));
  // The process environment is not read unless passed.
  process.env.TESSERA_TRUST_DOMAIN = 'from-process.org';
  try {
    assert.equal(loadAgentConfig({ flags: { trustDomain: 'example.org' } }).trustDomain.name, 'example.org');
  } finally {
    delete process.env.TESSERA_TRUST_DOMAIN;
  }
});

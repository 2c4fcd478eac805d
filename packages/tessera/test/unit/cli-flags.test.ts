import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags, type FlagSpec } from '../../src/cli/flags.js';
import { UsageError } from '../../src/cli/errors.js';
import { describeValidity, formatDuration } from '../../src/cli/time-format.js';

const SPECS: FlagSpec[] = [
  { name: 'bundle', kind: 'string', description: 'bundle', valueName: 'file' },
  { name: 'trust-domain', kind: 'string', description: 'td' },
  { name: 'spiffe-id', kind: 'string', description: 'id', aliases: ['spiffeID'] },
  { name: 'selector', kind: 'string', description: 'selector', multiple: true },
  { name: 'verbose', kind: 'boolean', description: 'verbose', aliases: ['v'] },
  { name: 'output', kind: 'string', description: 'out', choices: ['text', 'json'], default: 'text' },
];

function usageError(argv: string[], specs: FlagSpec[], message: RegExp): void {
  assert.throws(() => parseFlags(argv, specs), (e: unknown) => e instanceof UsageError && message.test(e.message));
}

describe('parseFlags', () => {
  it('accepts -flag v, --flag v, -flag=v and --flag=v', () => {
    for (const argv of [['-bundle', 'b.pem'], ['--bundle', 'b.pem'], ['-bundle=b.pem'], ['--bundle=b.pem']]) {
      assert.equal(parseFlags(argv, SPECS).string('bundle'), 'b.pem', argv.join(' '));
    }
  });

  it("matches SPIRE's camelCase names and declared aliases", () => {
    const f = parseFlags(['-trustDomain', 'example.org', '-spiffeID', 'spiffe://example.org/a'], SPECS);
    assert.equal(f.string('trust-domain'), 'example.org');
    assert.equal(f.string('spiffe-id'), 'spiffe://example.org/a');
    assert.equal(parseFlags(['--trust-domain=x.org'], SPECS).string('trust-domain'), 'x.org');
  });

  it('keeps positionals in order, interleaved with flags, and everything after --', () => {
    const f = parseFlags(['a.pem', '-bundle', 'b.pem', 'c.pem', '-', '--', '-bundle', '--x'], SPECS);
    assert.deepEqual(f.positionals, ['a.pem', 'c.pem', '-', '-bundle', '--x']);
    assert.equal(f.string('bundle'), 'b.pem');
  });

  it('takes the next argument as the value even when it starts with a dash', () => {
    assert.equal(parseFlags(['-bundle', '-odd-name.pem'], SPECS).string('bundle'), '-odd-name.pem');
  });

  it('handles boolean flags with and without =true/=false', () => {
    assert.equal(parseFlags([], SPECS).boolean('verbose'), false);
    assert.equal(parseFlags(['-verbose'], SPECS).boolean('verbose'), true);
    assert.equal(parseFlags(['-v', 'x'], SPECS).boolean('verbose'), true);
    assert.equal(parseFlags(['--verbose=false'], SPECS).boolean('verbose'), false);
    usageError(['--verbose=maybe'], SPECS, /invalid value "maybe" for boolean flag --verbose/);
  });

  it('collects repeated flags in order', () => {
    const f = parseFlags(['-selector', 'unix:uid:0', '--selector=k8s:ns:a', '-selector', 'k8s:sa:b'], SPECS);
    assert.deepEqual(f.strings('selector'), ['unix:uid:0', 'k8s:ns:a', 'k8s:sa:b']);
    assert.deepEqual(parseFlags([], SPECS).strings('selector'), []);
  });

  it('refuses a single-valued flag given twice', () => {
    usageError(['-bundle', 'a', '--bundle', 'b'], SPECS, /flag --bundle given more than once/);
  });

  it('refuses unknown flags and suggests a near one', () => {
    usageError(['-bundel', 'x'], SPECS, /^unknown flag: -bundel \(did you mean --bundle\?\)$/);
    usageError(['--zzz'], SPECS, /^unknown flag: --zzz$/);
    usageError(['--=x'], SPECS, /^unknown flag: --=x$/);
  });

  it('refuses a missing value, a value outside choices and a missing required flag', () => {
    usageError(['-bundle'], SPECS, /^flag needs a value: -bundle <file>$/);
    usageError(['-output', 'yaml'], SPECS, /must be one of text, json/);
    usageError([], [{ name: 'bundle', kind: 'string', description: '', required: true, valueName: 'file' }], /missing required flag --bundle <file>/);
  });

  it('applies defaults', () => {
    assert.equal(parseFlags([], SPECS).string('output'), 'text');
    assert.equal(parseFlags([], SPECS).has('output'), false);
    assert.equal(parseFlags(['-output', 'json'], SPECS).string('output'), 'json');
  });

  it('lets help win over other errors', () => {
    for (const argv of [['-h'], ['--help'], ['-help'], ['--nope', '-h'], ['-h', '-bundle']]) {
      assert.equal(parseFlags(argv, SPECS).help, true, argv.join(' '));
    }
  });

  it('rejects declarations whose spellings collide, and undeclared reads', () => {
    assert.throws(() => parseFlags([], [{ name: 'trust-domain', kind: 'string', description: '' }, { name: 'trustdomain', kind: 'string', description: '' }]), /collides/);
    assert.throws(() => parseFlags([], SPECS).string('nope'), /not declared/);
    assert.throws(() => parseFlags([], SPECS).string('selector'), /not declared as a string flag/);
  });
});

describe('time formatting', () => {
  it('shows the two largest units, rounded down', () => {
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatDuration(999), '0s');
    assert.equal(formatDuration(45_000), '45s');
    assert.equal(formatDuration(3_590_000), '59m 50s');
    assert.equal(formatDuration(3 * 3_600_000), '3h');
    assert.equal(formatDuration(3 * 3_600_000 + 59_999), '3h');
    assert.equal(formatDuration(3 * 3_600_000 + 60_000), '3h 1m');
    assert.equal(formatDuration(2 * 86_400_000 + 4 * 3_600_000 + 5_000), '2d 4h');
    assert.equal(formatDuration(-90_000), '1m 30s');
  });

  it('describes validity relative to now', () => {
    const nb = new Date('2030-01-01T00:00:00Z');
    const na = new Date('2030-01-01T01:00:00Z');
    assert.deepEqual(describeValidity(nb, na, new Date('2030-01-01T00:30:00Z')), { status: 'valid', text: 'expires in 30m' });
    assert.deepEqual(describeValidity(nb, na, new Date('2030-01-01T04:00:00Z')), { status: 'expired', text: 'expired 3h ago' });
    assert.deepEqual(describeValidity(nb, na, new Date('2029-12-31T22:00:00Z')), { status: 'not-yet-valid', text: 'not yet valid: starts in 2h' });
  });
});

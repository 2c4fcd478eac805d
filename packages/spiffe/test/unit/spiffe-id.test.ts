/**
 * SPIFFE ID and trust domain rules (spec/spiffe.md §1, SPIFFE-ID.md §2),
 * table-driven, with go-spiffe v2's error texts, plus the ID matchers.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  SpiffeId,
  TrustDomain,
  matchAny,
  matchId,
  matchMemberOf,
  matchOneOf,
  validatePath,
  validatePathSegment,
  type Matcher,
} from '../../src/id/index.js';
import { AuthorizationError, SpiffeError, SpiffeIdError, isSpiffeError, type ErrorCode } from '../../src/errors/index.js';

// go-spiffe's texts, copied from the spec rather than imported, so a change in
// the library's constants cannot silently change what these tests expect.
const EMPTY = 'cannot be empty';
const SCHEME = 'scheme is missing or invalid';
const MISSING_TD = 'trust domain is missing';
const TD_CHARS = 'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores';
const PATH_CHARS = 'path segment characters are limited to letters, numbers, dots, dashes, and underscores';
const EMPTY_SEGMENT = 'path cannot contain empty segments';
const DOT_SEGMENT = 'path cannot contain dot segments';
const TRAILING_SLASH = 'path cannot have a trailing slash';
const LEADING_SLASH = 'path must have a leading slash';

const ID_INVALID: ErrorCode = 'ERR_SPIFFEID_INVALID';
const TD_INVALID: ErrorCode = 'ERR_TRUST_DOMAIN_INVALID';

/** Asserts `fn` throws a {@link SpiffeIdError} with `code` whose message contains `text`. */
function assertIdError(fn: () => unknown, code: ErrorCode, text: string | RegExp): SpiffeIdError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, `expected a ${code} error (${String(text)}), but nothing was thrown`);
  assert.ok(caught instanceof SpiffeIdError, `expected a SpiffeIdError, got ${String(caught)}`);
  assert.ok(caught instanceof SpiffeError && caught instanceof Error);
  assert.equal(caught.name, 'SpiffeIdError');
  assert.equal(caught.code, code);
  assert.ok(isSpiffeError(caught, code));
  if (typeof text === 'string') assert.ok(caught.message.includes(text), `message ${JSON.stringify(caught.message)} should contain ${JSON.stringify(text)}`);
  else assert.match(caught.message, text);
  return caught;
}

/** Asserts `matcher` refuses `id` with an {@link AuthorizationError}. */
function assertRefused(matcher: Matcher, id: SpiffeId): void {
  assert.throws(
    () => matcher(id),
    (e: unknown) => e instanceof AuthorizationError && isSpiffeError(e, 'ERR_ID_NOT_AUTHORIZED') && e.name === 'AuthorizationError',
  );
}

/** Renders a string with its control and non-ASCII characters escaped, for test names. */
const show = (s: string): string => JSON.stringify(s).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

const TD_ALLOWED = 'abcdefghijklmnopqrstuvwxyz0123456789._-';
const PATH_ALLOWED = TD_ALLOWED + 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
/** Characters outside every ASCII class: Latin-1, BMP, fullwidth, astral, lone surrogate. */
const NON_ASCII = ['é', '\u00a0', 'ı', '\u0100', '\uff41', '😀', '\ud800'];

describe('SpiffeId.parse accepts valid IDs (SPIFFE-ID §2)', () => {
  const valid: { id: string; td: string; path: string }[] = [
    { id: 'spiffe://example.org', td: 'example.org', path: '' },
    { id: 'spiffe://example.org/ns/backend/sa/default', td: 'example.org', path: '/ns/backend/sa/default' },
    { id: 'spiffe://a', td: 'a', path: '' },
    { id: 'spiffe://1.2.3.4/x', td: '1.2.3.4', path: '/x' },
    { id: 'spiffe://under_score-dash.td/x', td: 'under_score-dash.td', path: '/x' },
    { id: 'spiffe://-._/-._', td: '-._', path: '/-._' },
    { id: 'spiffe://example.org/.hidden', td: 'example.org', path: '/.hidden' },
    { id: 'spiffe://example.org/..x', td: 'example.org', path: '/..x' },
    { id: 'spiffe://example.org/x..', td: 'example.org', path: '/x..' },
    { id: 'spiffe://example.org/...', td: 'example.org', path: '/...' },
    { id: 'spiffe://example.org/a/.../b', td: 'example.org', path: '/a/.../b' },
    { id: 'spiffe://example.org/MiXeD/CASE', td: 'example.org', path: '/MiXeD/CASE' },
    { id: 'spiffe://example.org/0/_/-', td: 'example.org', path: '/0/_/-' },
  ];
  for (const v of valid) {
    it(`parses ${v.id}`, () => {
      const id = SpiffeId.parse(v.id);
      assert.equal(id.trustDomain.name, v.td);
      assert.equal(id.path, v.path);
      assert.equal(id.isRoot(), v.path === '');
      assert.equal(id.toString(), v.id);
      assert.equal(String(id), v.id);
      assert.equal(id.toJSON(), v.id);
      assert.equal(JSON.stringify({ id }), JSON.stringify({ id: v.id }));
      assert.ok(SpiffeId.parse(id.toString()).equals(id), 'toString() round-trips');
      assert.ok(SpiffeId.fromPath(v.td, v.path).equals(id), 'fromPath builds the same ID');
      assert.equal(SpiffeId.fromPath(v.td, v.path).toString(), v.id);
    });
  }
});

describe('SpiffeId.parse rejects invalid IDs with go-spiffe error texts', () => {
  const invalid: { name: string; id: string; text: string }[] = [
    { name: 'empty', id: '', text: EMPTY },
    { name: 'uppercase scheme SPIFFE://', id: 'SPIFFE://example.org/a', text: SCHEME },
    { name: 'mixed-case scheme Spiffe://', id: 'Spiffe://example.org', text: SCHEME },
    { name: 'one slash spiffe:/x', id: 'spiffe:/x', text: SCHEME },
    { name: 'no slashes spiffe:example.org', id: 'spiffe:example.org', text: SCHEME },
    { name: 'http scheme', id: 'http://example.org/a', text: SCHEME },
    { name: 'bare http://', id: 'http://', text: SCHEME },
    { name: 'https scheme', id: 'https://example.org', text: SCHEME },
    { name: 'missing scheme', id: 'example.org/a', text: SCHEME },
    { name: 'scheme-relative //', id: '//example.org/a', text: SCHEME },
    { name: 'leading space (nothing trimmed)', id: ' spiffe://example.org/a', text: SCHEME },
    { name: 'leading tab (nothing trimmed)', id: '\tspiffe://example.org', text: SCHEME },
    { name: 'missing trust domain spiffe://', id: 'spiffe://', text: MISSING_TD },
    { name: 'missing trust domain spiffe:///path', id: 'spiffe:///path', text: MISSING_TD },
    { name: 'missing trust domain spiffe:////', id: 'spiffe:////', text: MISSING_TD },
    { name: 'uppercase trust domain', id: 'spiffe://Example.org/a', text: TD_CHARS },
    { name: 'all-uppercase trust domain', id: 'spiffe://EXAMPLE.ORG', text: TD_CHARS },
    { name: 'port', id: 'spiffe://example.org:8080/a', text: TD_CHARS },
    { name: 'empty port', id: 'spiffe://example.org:', text: TD_CHARS },
    { name: 'userinfo', id: 'spiffe://user@example.org/a', text: TD_CHARS },
    { name: 'userinfo with password', id: 'spiffe://user:pass@example.org', text: TD_CHARS },
    { name: 'IPv6 literal [::1]', id: 'spiffe://[::1]/a', text: TD_CHARS },
    { name: 'IPv6 literal with port', id: 'spiffe://[::1]:8443', text: TD_CHARS },
    { name: 'percent-encoded trust domain', id: 'spiffe://exa%41mple.org', text: TD_CHARS },
    { name: 'percent-encoding only', id: 'spiffe://%41', text: TD_CHARS },
    { name: 'non-ASCII trust domain é', id: 'spiffe://exémple.org/a', text: TD_CHARS },
    { name: 'punycode-less IDN', id: 'spiffe://bücher.example', text: TD_CHARS },
    { name: 'space in trust domain', id: 'spiffe://exa mple.org', text: TD_CHARS },
    { name: 'trailing space after trust domain (nothing trimmed)', id: 'spiffe://example.org ', text: TD_CHARS },
    { name: 'trailing newline after trust domain', id: 'spiffe://example.org\n', text: TD_CHARS },
    { name: 'query on the trust domain', id: 'spiffe://example.org?x=1', text: TD_CHARS },
    { name: 'fragment on the trust domain', id: 'spiffe://example.org#f', text: TD_CHARS },
    { name: 'backslash', id: 'spiffe://example.org\\a', text: TD_CHARS },
    { name: 'empty segment //', id: 'spiffe://example.org//', text: EMPTY_SEGMENT },
    { name: 'empty segment at start', id: 'spiffe://example.org//a', text: EMPTY_SEGMENT },
    { name: 'empty segment in the middle', id: 'spiffe://example.org/a//b', text: EMPTY_SEGMENT },
    { name: 'dot segment /.', id: 'spiffe://example.org/.', text: DOT_SEGMENT },
    { name: 'dot-dot segment /..', id: 'spiffe://example.org/..', text: DOT_SEGMENT },
    { name: 'dot segment in the middle', id: 'spiffe://example.org/a/./b', text: DOT_SEGMENT },
    { name: 'dot-dot segment in the middle', id: 'spiffe://example.org/a/../b', text: DOT_SEGMENT },
    { name: 'trailing dot segment', id: 'spiffe://example.org/a/.', text: DOT_SEGMENT },
    { name: 'trailing dot-dot segment', id: 'spiffe://example.org/a/..', text: DOT_SEGMENT },
    { name: 'trailing slash on the root', id: 'spiffe://example.org/', text: TRAILING_SLASH },
    { name: 'trailing slash on a path', id: 'spiffe://example.org/a/', text: TRAILING_SLASH },
    { name: 'percent in path', id: 'spiffe://example.org/a%20b', text: PATH_CHARS },
    { name: 'lone percent in path', id: 'spiffe://example.org/%', text: PATH_CHARS },
    { name: 'query', id: 'spiffe://example.org/a?x=1', text: PATH_CHARS },
    { name: 'bare question mark', id: 'spiffe://example.org/a?', text: PATH_CHARS },
    { name: 'fragment', id: 'spiffe://example.org/a#frag', text: PATH_CHARS },
    { name: 'bare hash', id: 'spiffe://example.org/a#', text: PATH_CHARS },
    { name: 'space in path', id: 'spiffe://example.org/a b', text: PATH_CHARS },
    { name: 'trailing space in path (nothing trimmed)', id: 'spiffe://example.org/a ', text: PATH_CHARS },
    { name: 'trailing CRLF in path', id: 'spiffe://example.org/a\r\n', text: PATH_CHARS },
    { name: 'non-ASCII path é', id: 'spiffe://example.org/caf\u00e9', text: PATH_CHARS },
    { name: 'colon in path', id: 'spiffe://example.org/a:b', text: PATH_CHARS },
    { name: 'at sign in path', id: 'spiffe://example.org/a@b', text: PATH_CHARS },
    { name: 'NUL in path', id: 'spiffe://example.org/a\u0000', text: PATH_CHARS },
  ];
  for (const c of invalid) {
    it(`rejects ${c.name}: ${show(c.id)}`, () => {
      assertIdError(() => SpiffeId.parse(c.id), ID_INVALID, c.text);
    });
  }

  it('rejects every ASCII character outside [a-z0-9._-] in the trust domain, and accepts every one inside', () => {
    for (let code = 0; code < 128; code++) {
      const c = String.fromCharCode(code);
      const id = `spiffe://a${c}b/x`;
      if (c === '/') continue; // ends the trust domain: `spiffe://a` + path `//b/x`
      if (TD_ALLOWED.includes(c)) assert.equal(SpiffeId.parse(id).trustDomain.name, `a${c}b`);
      else assertIdError(() => SpiffeId.parse(id), ID_INVALID, TD_CHARS);
    }
    for (const c of NON_ASCII) assertIdError(() => SpiffeId.parse(`spiffe://a${c}b/x`), ID_INVALID, TD_CHARS);
  });

  it('rejects every ASCII character outside [a-zA-Z0-9._-] in a path segment, and accepts every one inside', () => {
    for (let code = 0; code < 128; code++) {
      const c = String.fromCharCode(code);
      if (c === '/') continue;
      const id = `spiffe://example.org/a${c}b`;
      if (PATH_ALLOWED.includes(c)) assert.equal(SpiffeId.parse(id).path, `/a${c}b`);
      else assertIdError(() => SpiffeId.parse(id), ID_INVALID, PATH_CHARS);
    }
    for (const c of NON_ASCII) assertIdError(() => SpiffeId.parse(`spiffe://example.org/a${c}b`), ID_INVALID, PATH_CHARS);
  });

  it('rejects non-string input from JavaScript callers with a typed error', () => {
    for (const v of [undefined, null, 42, {}, ['spiffe://example.org']]) {
      assertIdError(() => SpiffeId.parse(v as unknown as string), ID_INVALID, EMPTY);
    }
  });
});

describe('trust domain length (SPIFFE-ID §2.1: at most 255 bytes)', () => {
  const td255 = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`;
  const td256 = td255 + 'e';
  it('has 255- and 256-byte fixtures', () => {
    assert.equal(Buffer.byteLength(td255), 255);
    assert.equal(Buffer.byteLength(td256), 256);
  });
  it('accepts a 255-byte trust domain in an ID and as a bare name', () => {
    assert.equal(SpiffeId.parse(`spiffe://${td255}/workload`).trustDomain.name, td255);
    assert.equal(SpiffeId.parse(`spiffe://${td255}`).trustDomain.name, td255);
    assert.equal(TrustDomain.parse(td255).name, td255);
    assert.equal(TrustDomain.fromIdString(`spiffe://${td255}`).name, td255);
  });
  it('rejects a 256-byte trust domain, saying the limit is 255', () => {
    assertIdError(() => SpiffeId.parse(`spiffe://${td256}/workload`), ID_INVALID, /255/);
    assertIdError(() => SpiffeId.parse(`spiffe://${td256}`), ID_INVALID, /255/);
    assertIdError(() => TrustDomain.parse(td256), TD_INVALID, /255/);
    assertIdError(() => TrustDomain.parse(`spiffe://${td256}/x`), ID_INVALID, /255/);
    assertIdError(() => SpiffeId.fromPath(td256, '/x'), TD_INVALID, /255/);
  });
  it('rejects a 100 000-byte trust domain', () => {
    assertIdError(() => SpiffeId.parse(`spiffe://${'a'.repeat(100_000)}`), ID_INVALID, /255/);
  });
});

describe('ID length (SPIFFE-ID §2.3: IDs up to 2048 bytes must be accepted)', () => {
  it('accepts a 2048-byte ID', () => {
    const head = 'spiffe://example.org';
    let id = head;
    while (id.length + 16 <= 2048) id += '/' + 'p'.repeat(15);
    id += '/' + 'q'.repeat(2048 - id.length - 1);
    assert.equal(Buffer.byteLength(id), 2048);
    const parsed = SpiffeId.parse(id);
    assert.equal(parsed.toString(), id);
    assert.equal(parsed.path.length, 2048 - head.length);
  });
  it('accepts a 2048-byte ID with a 255-byte trust domain', () => {
    const td = 't'.repeat(255);
    const id = `spiffe://${td}/${'s'.repeat(2048 - 9 - 255 - 1)}`;
    assert.equal(id.length, 2048);
    assert.equal(SpiffeId.parse(id).toString(), id);
  });
});

describe('paths are case-sensitive and never normalised', () => {
  it('keeps the path as written', () => {
    assert.equal(SpiffeId.parse('spiffe://example.org/A').path, '/A');
  });
  it('equals is false for /A vs /a', () => {
    const upper = SpiffeId.parse('spiffe://example.org/A');
    const lower = SpiffeId.parse('spiffe://example.org/a');
    assert.equal(upper.equals(lower), false);
    assert.equal(lower.equals(upper), false);
  });
  it('equals is true for separately parsed equal IDs, and for parse vs fromPath vs fromSegments', () => {
    const a = SpiffeId.parse('spiffe://example.org/ns/Web');
    const b = SpiffeId.parse('spiffe://example.org/ns/Web');
    assert.ok(a.equals(b));
    assert.ok(a.equals(SpiffeId.fromPath('example.org', '/ns/Web')));
    assert.ok(a.equals(SpiffeId.fromSegments(TrustDomain.parse('example.org'), 'ns', 'Web')));
  });
  it('equals is false across trust domains and across paths', () => {
    const a = SpiffeId.parse('spiffe://example.org/web');
    assert.equal(a.equals(SpiffeId.parse('spiffe://example.com/web')), false);
    assert.equal(a.equals(SpiffeId.parse('spiffe://example.org/web2')), false);
    assert.equal(a.equals(SpiffeId.parse('spiffe://example.org')), false);
  });
});

describe('TrustDomain.parse', () => {
  const ok: { input: string; name: string }[] = [
    { input: 'example.org', name: 'example.org' },
    { input: 'a', name: 'a' },
    { input: 'under_score-dash.0', name: 'under_score-dash.0' },
    { input: 'spiffe://example.org', name: 'example.org' },
    { input: 'spiffe://example.org/x', name: 'example.org' },
    { input: 'spiffe://example.org/ns/backend/sa/Default', name: 'example.org' },
  ];
  for (const c of ok) {
    it(`parses ${c.input} as ${c.name}`, () => {
      const td = TrustDomain.parse(c.input);
      assert.equal(td.name, c.name);
      assert.equal(td.toString(), c.name);
      assert.equal(td.toJSON(), c.name);
      assert.equal(td.idString(), `spiffe://${c.name}`);
      assert.equal(td.id().toString(), `spiffe://${c.name}`);
      assert.ok(td.id().isRoot());
      assert.ok(td.equals(TrustDomain.parse(c.name)));
    });
  }

  it('interns equal trust domains, whether parsed from a name or an ID', () => {
    assert.equal(TrustDomain.parse('example.org'), TrustDomain.parse('spiffe://example.org/x'));
    assert.equal(SpiffeId.parse('spiffe://example.org/y').trustDomain, TrustDomain.parse('example.org'));
  });

  it('orders by name', () => {
    assert.ok(TrustDomain.parse('a.org').compare(TrustDomain.parse('b.org')) < 0);
    assert.ok(TrustDomain.parse('b.org').compare(TrustDomain.parse('a.org')) > 0);
    assert.equal(TrustDomain.parse('a.org').compare(TrustDomain.parse('a.org')), 0);
  });

  const bad: { name: string; input: string; code: ErrorCode; text: string }[] = [
    { name: 'empty', input: '', code: TD_INVALID, text: MISSING_TD },
    { name: 'uppercase', input: 'Example.org', code: TD_INVALID, text: TD_CHARS },
    { name: 'port', input: 'example.org:8080', code: TD_INVALID, text: TD_CHARS },
    { name: 'userinfo', input: 'user@example.org', code: TD_INVALID, text: TD_CHARS },
    { name: 'IPv6 literal', input: '[::1]', code: TD_INVALID, text: TD_CHARS },
    { name: 'percent-encoding', input: '%41', code: TD_INVALID, text: TD_CHARS },
    { name: 'non-ASCII é', input: 'exémple.org', code: TD_INVALID, text: TD_CHARS },
    { name: 'space', input: 'exa mple.org', code: TD_INVALID, text: TD_CHARS },
    { name: 'leading space', input: ' example.org', code: TD_INVALID, text: TD_CHARS },
    { name: 'trailing newline', input: 'example.org\n', code: TD_INVALID, text: TD_CHARS },
    { name: 'a name with a path but no scheme', input: 'example.org/path', code: TD_INVALID, text: TD_CHARS },
    { name: 'an ID with an uppercase scheme', input: 'SPIFFE://example.org', code: ID_INVALID, text: SCHEME },
    { name: 'an ID with a wrong scheme', input: 'https://example.org', code: ID_INVALID, text: SCHEME },
    { name: 'an ID with an uppercase trust domain', input: 'spiffe://Example.org/x', code: ID_INVALID, text: TD_CHARS },
    { name: 'an ID without a trust domain', input: 'spiffe:///x', code: ID_INVALID, text: MISSING_TD },
    { name: 'an ID with an invalid path (the whole ID is validated)', input: 'spiffe://example.org/a//b', code: ID_INVALID, text: EMPTY_SEGMENT },
    { name: 'an ID with a trailing slash', input: 'spiffe://example.org/', code: ID_INVALID, text: TRAILING_SLASH },
  ];
  for (const c of bad) {
    it(`rejects ${c.name}: ${show(c.input)}`, () => {
      assertIdError(() => TrustDomain.parse(c.input), c.code, c.text);
    });
  }

  it('rejects every ASCII character outside [a-z0-9._-] in a bare name', () => {
    for (let code = 0; code < 128; code++) {
      const c = String.fromCharCode(code);
      if (TD_ALLOWED.includes(c)) assert.equal(TrustDomain.parse(`a${c}b`).name, `a${c}b`);
      else assertIdError(() => TrustDomain.parse(`a${c}b`), TD_INVALID, TD_CHARS);
    }
  });
});

describe('TrustDomain.fromIdString', () => {
  it('parses a trust domain ID', () => {
    assert.equal(TrustDomain.fromIdString('spiffe://example.org').name, 'example.org');
  });
  it('rejects an ID with a path', () => {
    const e = assertIdError(() => TrustDomain.fromIdString('spiffe://example.org/x'), ID_INVALID, /path/);
    assert.ok(e.message.includes('spiffe://example.org/x'), 'names the offending ID');
  });
  const bad: { name: string; input: string; text: string }[] = [
    { name: 'empty', input: '', text: EMPTY },
    { name: 'a bare name', input: 'example.org', text: SCHEME },
    { name: 'uppercase scheme', input: 'SPIFFE://example.org', text: SCHEME },
    { name: 'missing trust domain', input: 'spiffe://', text: MISSING_TD },
    { name: 'uppercase trust domain', input: 'spiffe://Example.org', text: TD_CHARS },
    { name: 'trailing slash', input: 'spiffe://example.org/', text: TRAILING_SLASH },
  ];
  for (const c of bad) {
    it(`rejects ${c.name}: ${show(c.input)}`, () => {
      assertIdError(() => TrustDomain.fromIdString(c.input), ID_INVALID, c.text);
    });
  }
});

describe('SpiffeId.fromPath', () => {
  const td = TrustDomain.parse('example.org');
  it('builds the root ID from an empty path', () => {
    const id = SpiffeId.fromPath(td, '');
    assert.ok(id.isRoot());
    assert.equal(id.toString(), 'spiffe://example.org');
  });
  it('builds an ID from a TrustDomain or from a name', () => {
    assert.equal(SpiffeId.fromPath(td, '/a/b').toString(), 'spiffe://example.org/a/b');
    assert.equal(SpiffeId.fromPath('example.org', '/a/b').toString(), 'spiffe://example.org/a/b');
    assert.equal(SpiffeId.fromPath('spiffe://example.org/ignored', '/a').toString(), 'spiffe://example.org/a');
  });
  const bad: { name: string; path: string; text: string }[] = [
    { name: 'no leading slash', path: 'a', text: LEADING_SLASH },
    { name: 'no leading slash, two segments', path: 'a/b', text: LEADING_SLASH },
    { name: 'a lone slash', path: '/', text: TRAILING_SLASH },
    { name: 'trailing slash', path: '/a/', text: TRAILING_SLASH },
    { name: 'empty segment', path: '//a', text: EMPTY_SEGMENT },
    { name: 'dot segment', path: '/./a', text: DOT_SEGMENT },
    { name: 'dot-dot segment', path: '/a/..', text: DOT_SEGMENT },
    { name: 'query', path: '/a?b', text: PATH_CHARS },
    { name: 'fragment', path: '/a#b', text: PATH_CHARS },
    { name: 'percent', path: '/a%2fb', text: PATH_CHARS },
    { name: 'non-ASCII', path: '/é', text: PATH_CHARS },
  ];
  for (const c of bad) {
    it(`rejects ${c.name}: ${show(c.path)}`, () => {
      assertIdError(() => SpiffeId.fromPath(td, c.path), ID_INVALID, c.text);
    });
  }
  it('validates a trust domain given as a string', () => {
    assertIdError(() => SpiffeId.fromPath('Example.org', '/a'), TD_INVALID, TD_CHARS);
    assertIdError(() => SpiffeId.fromPath('', '/a'), TD_INVALID, MISSING_TD);
  });
});

describe('SpiffeId.fromSegments and append', () => {
  const td = TrustDomain.parse('example.org');
  it('joins segments with slashes', () => {
    assert.equal(SpiffeId.fromSegments(td, 'ns', 'backend').toString(), 'spiffe://example.org/ns/backend');
    assert.equal(SpiffeId.fromSegments('example.org', '.hidden', '..x', '...').path, '/.hidden/..x/...');
  });
  it('builds the root ID from no segments', () => {
    assert.ok(SpiffeId.fromSegments(td).isRoot());
  });
  const bad: { name: string; segment: string; text: string }[] = [
    { name: 'a segment containing a slash', segment: 'a/b', text: PATH_CHARS },
    { name: 'a segment that is only a slash', segment: '/', text: PATH_CHARS },
    { name: 'a dot segment', segment: '.', text: DOT_SEGMENT },
    { name: 'a dot-dot segment', segment: '..', text: DOT_SEGMENT },
    { name: 'a space', segment: 'a b', text: PATH_CHARS },
    { name: 'a query', segment: 'a?b', text: PATH_CHARS },
    { name: 'non-ASCII', segment: 'é', text: PATH_CHARS },
  ];
  for (const c of bad) {
    it(`fromSegments rejects ${c.name}: ${show(c.segment)}`, () => {
      assertIdError(() => SpiffeId.fromSegments(td, 'ok', c.segment), ID_INVALID, c.text);
      assertIdError(() => validatePathSegment(c.segment), ID_INVALID, c.text);
    });
    it(`append rejects ${c.name}: ${show(c.segment)}`, () => {
      assertIdError(() => SpiffeId.parse('spiffe://example.org/a').append(c.segment), ID_INVALID, c.text);
    });
  }
  it('rejects an empty segment as an empty segment, not as a trailing slash', () => {
    assertIdError(() => validatePathSegment(''), ID_INVALID, EMPTY_SEGMENT);
    assertIdError(() => SpiffeId.fromSegments(td, ''), ID_INVALID, EMPTY_SEGMENT);
    assertIdError(() => SpiffeId.fromSegments('example.org', ''), ID_INVALID, EMPTY_SEGMENT);
    assertIdError(() => SpiffeId.fromSegments(td, 'a', '', 'b'), ID_INVALID, EMPTY_SEGMENT);
    assertIdError(() => SpiffeId.fromSegments(td, 'a', ''), ID_INVALID, EMPTY_SEGMENT);
    assertIdError(() => SpiffeId.parse('spiffe://example.org/a').append(''), ID_INVALID, EMPTY_SEGMENT);
    assertIdError(() => SpiffeId.parse('spiffe://example.org/a').append('b', ''), ID_INVALID, EMPTY_SEGMENT);
    const e = assertIdError(() => validatePathSegment(''), ID_INVALID, EMPTY_SEGMENT);
    assert.doesNotMatch(e.message, /trailing slash/);
  });
  it('validatePathSegment returns the segment when valid', () => {
    assert.equal(validatePathSegment('.hidden'), '.hidden');
    assert.equal(validatePathSegment('...'), '...');
  });
  it('append returns a new ID and leaves the original unchanged', () => {
    const base = SpiffeId.parse('spiffe://example.org/a');
    const child = base.append('b', 'C');
    assert.equal(child.toString(), 'spiffe://example.org/a/b/C');
    assert.equal(base.toString(), 'spiffe://example.org/a');
    assert.equal(child.trustDomain, base.trustDomain);
    assert.ok(base.append().equals(base));
    assert.equal(SpiffeId.fromSegments(td).append('x').toString(), 'spiffe://example.org/x');
  });
});

describe('validatePath', () => {
  const ok = ['', '/a', '/a/b', '/.hidden', '/..x', '/...', '/A-Z_0.9'];
  for (const p of ok) {
    it(`accepts ${show(p)}`, () => {
      validatePath(p);
    });
  }
  const bad: { path: string; text: string }[] = [
    { path: 'a', text: LEADING_SLASH },
    { path: ' /a', text: LEADING_SLASH },
    { path: '/', text: TRAILING_SLASH },
    { path: '/a/', text: TRAILING_SLASH },
    { path: '//', text: EMPTY_SEGMENT },
    { path: '/a//b', text: EMPTY_SEGMENT },
    { path: '/.', text: DOT_SEGMENT },
    { path: '/..', text: DOT_SEGMENT },
    { path: '/a/./b', text: DOT_SEGMENT },
    { path: '/a%20', text: PATH_CHARS },
    { path: '/a?', text: PATH_CHARS },
    { path: '/a#', text: PATH_CHARS },
    { path: '/a ', text: PATH_CHARS },
  ];
  for (const c of bad) {
    it(`rejects ${show(c.path)}`, () => {
      assertIdError(() => validatePath(c.path), ID_INVALID, c.text);
    });
  }
});

describe('memberOf', () => {
  const td = TrustDomain.parse('example.org');
  const cases: { id: string; member: boolean }[] = [
    { id: 'spiffe://example.org', member: true },
    { id: 'spiffe://example.org/web', member: true },
    { id: 'spiffe://example.org/a/b/c', member: true },
    { id: 'spiffe://example.com/web', member: false },
    { id: 'spiffe://example.org.evil/web', member: false },
    { id: 'spiffe://evil.example.org/web', member: false },
    { id: 'spiffe://example.or/web', member: false },
  ];
  for (const c of cases) {
    it(`${c.id} is ${c.member ? '' : 'not '}a member of example.org`, () => {
      assert.equal(SpiffeId.parse(c.id).memberOf(td), c.member);
    });
  }
});

describe('every SPIFFE ID error is typed', () => {
  const throwers: [string, () => unknown][] = [
    ['SpiffeId.parse', () => SpiffeId.parse('spiffe://Bad')],
    ['TrustDomain.parse', () => TrustDomain.parse('Bad')],
    ['TrustDomain.fromIdString', () => TrustDomain.fromIdString('spiffe://td/x')],
    ['SpiffeId.fromPath', () => SpiffeId.fromPath('td', 'x')],
    ['SpiffeId.fromSegments', () => SpiffeId.fromSegments('td', 'a/b')],
    ['SpiffeId.append', () => SpiffeId.parse('spiffe://td').append('..')],
    ['validatePath', () => validatePath('/a/')],
    ['validatePathSegment', () => validatePathSegment('.')],
  ];
  for (const [name, fn] of throwers) {
    it(`${name} throws a SpiffeIdError with a code`, () => {
      try {
        fn();
      } catch (e) {
        assert.ok(e instanceof SpiffeIdError && e instanceof SpiffeError && e instanceof Error);
        assert.ok(e.code === ID_INVALID || e.code === TD_INVALID, `unexpected code ${e.code}`);
        assert.ok(isSpiffeError(e));
        assert.ok(e.message.length > 0);
        return;
      }
      assert.fail(`${name} did not throw`);
    });
  }
});

describe('matchers', () => {
  const web = SpiffeId.parse('spiffe://example.org/web');
  const db = SpiffeId.parse('spiffe://example.org/db');
  const otherTd = SpiffeId.parse('spiffe://example.com/web');
  const root = SpiffeId.parse('spiffe://example.org');

  it('matchAny accepts every ID', () => {
    const m = matchAny();
    for (const id of [web, db, otherTd, root]) m(id);
  });

  it('matchId accepts the expected ID (also when parsed separately) and refuses others', () => {
    const m = matchId(web);
    m(web);
    m(SpiffeId.parse('spiffe://example.org/web'));
    for (const id of [db, otherTd, root, SpiffeId.parse('spiffe://example.org/Web'), SpiffeId.parse('spiffe://example.org/web/x')]) {
      assertRefused(m, id);
    }
  });

  it('matchId names the refused ID in its error', () => {
    assert.throws(() => matchId(web)(db), (e: unknown) => e instanceof AuthorizationError && e.message.includes('spiffe://example.org/db'));
  });

  it('matchOneOf accepts any of the expected IDs and refuses others', () => {
    const m = matchOneOf(web, db);
    m(web);
    m(SpiffeId.parse('spiffe://example.org/db'));
    for (const id of [otherTd, root, SpiffeId.parse('spiffe://example.org/DB')]) assertRefused(m, id);
  });

  it('matchOneOf with no IDs refuses everything', () => {
    const m = matchOneOf();
    for (const id of [web, db, otherTd, root]) assertRefused(m, id);
  });

  it('matchMemberOf accepts every ID of the trust domain, including its root ID, and refuses others', () => {
    const m = matchMemberOf(TrustDomain.parse('example.org'));
    for (const id of [web, db, root]) m(id);
    for (const id of [otherTd, SpiffeId.parse('spiffe://example.org.evil/web'), SpiffeId.parse('spiffe://sub.example.org/web')]) {
      assertRefused(m, id);
    }
  });

  it('matchMemberOf names the refused trust domain in its error', () => {
    assert.throws(
      () => matchMemberOf(TrustDomain.parse('example.org'))(otherTd),
      (e: unknown) => e instanceof AuthorizationError && e.message.includes('example.com'),
    );
  });
});

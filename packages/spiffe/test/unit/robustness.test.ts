/**
 * Robustness: random and mutated inputs into every parser produce typed
 * errors, never crashes or hangs.
 *
 * Each parser gets (a) random strings/bytes and (b) mutations of valid inputs
 * minted by TestCa: bit flips, byte inserts/deletes, truncation at every
 * length, DER length/tag corruption at every TLV header, structural DER edits
 * re-encoded with correct lengths, PEM block edits, and JSON member edits.
 * Every call must return or throw an error for which `isSpiffeError(e)` holds
 * (with a code the parser documents); anything else fails the test and
 * reports the input in hex.
 *
 * Reproducing: the mutation sequence is a pure function of the seed (printed
 * in the suite name; override with TESSERA_FUZZ_SEED=<uint32>|random, and
 * the per-campaign budget with TESSERA_FUZZ_ITERATIONS). The valid inputs
 * are minted fresh each run (TestCa draws keys and serials from the system
 * RNG), which is why a failure prints the offending input itself.
 *
 * Some inputs here are EC keys that Node 20/OpenSSL 3 accept but cannot use
 * (a point at infinity, an over-long private scalar): reading their details
 * once aborted the whole process. The library now rejects them with typed
 * errors, so the campaigns feed them to it in-process; should that regress,
 * this file dies with SIGABRT and loses its report, and
 * test/integration/abort-regression.test.ts (one child process per shape)
 * says which parser aborted.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { SpiffeId, TrustDomain } from '../../src/id/index.js';
import { BundleError, EncodingError, X509SvidError, isSpiffeError, type ErrorCode } from '../../src/errors/index.js';
import { DerError, decodeTime } from '../../src/internal/asn1/der-reader.js';
import { decodePem, encodePem } from '../../src/internal/pem.js';
import { Certificate, KeyUsage } from '../../src/internal/x509/certificate.js';
import { basicConstraintsExt, buildCertificate, encodeName, keyUsageExt, subjectAltNameExt } from '../../src/internal/x509/builder.js';
import { X509Bundle } from '../../src/bundle/x509-bundle.js';
import { JwtBundle } from '../../src/bundle/jwt-bundle.js';
import { SpiffeBundle } from '../../src/bundle/spiffe-bundle.js';
import { X509Svid } from '../../src/svid/x509-svid.js';
import { verifyParsed, verifyX509Svid } from '../../src/svid/x509-verify.js';
import { JwtSvid, signJwtSvid } from '../../src/svid/jwt-svid.js';
import { TestCa, generateKey } from '../../src/testing/index.js';

// ------------------------------------------------------------------ config

const DEFAULT_SEED = 0x5eed_f022;

function seedFromEnv(v: string | undefined): number {
  if (v === undefined || v === '') return DEFAULT_SEED;
  if (v === 'random') return randomBytes(4).readUInt32BE(0);
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) {
    throw new Error(`TESSERA_FUZZ_SEED must be an unsigned 32-bit integer (decimal or 0x-hex) or "random", got ${JSON.stringify(v)}`);
  }
  return n;
}

function iterationsFromEnv(v: string | undefined): number {
  if (v === undefined || v === '') return 1000;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`TESSERA_FUZZ_ITERATIONS must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

const SEED = seedFromEnv(process.env['TESSERA_FUZZ_SEED']);
/** Random or mutated inputs per campaign; each parser runs two to four campaigns, 2 000–5 000 calls in all. */
const N = iterationsFromEnv(process.env['TESSERA_FUZZ_ITERATIONS']);
const SEED_HEX = `0x${SEED.toString(16).padStart(8, '0')}`;
const MIB = 1024 * 1024;
/** Generous bound for one call on 1 MiB: a guard against hangs, not a benchmark. */
const HANG_LIMIT_MS = 2000;

// -------------------------------------------------------------------- PRNG

/** mulberry32: tiny, fast, good enough to drive mutations reproducibly. */
class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  u32(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform-ish integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }
  chance(p: number): boolean {
    return this.u32() < p * 0x1_0000_0000;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.u32();
      for (let j = 0; j < 4 && i + j < n; j++) b[i + j] = (v >>> (j * 8)) & 0xff;
    }
    return b;
  }
  /** A length biased towards short values, occasionally up to `max`. */
  length(max: number): number {
    const r = this.int(10);
    return r < 5 ? this.int(Math.min(17, max + 1)) : r < 8 ? this.int(Math.min(257, max + 1)) : this.int(max + 1);
  }
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** One independent stream per campaign, so adding a campaign never shifts another's inputs. */
const rngFor = (campaign: string): Rng => new Rng(SEED ^ fnv1a(campaign));

// ----------------------------------------------------------------- harness

type Input = string | Uint8Array;
type Outcome = 'accepted' | 'rejected' | 'crashed';

function hex(input: Input, max = 4096): string {
  const b = typeof input === 'string' ? Buffer.from(input, 'utf8') : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  return b.length <= max ? b.toString('hex') : `${b.subarray(0, max).toString('hex')}… (${b.length} bytes in all)`;
}

function describeError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    const where = (e.stack ?? '').split('\n').slice(1, 4).join('\n');
    return `${e.constructor.name}${code === undefined ? '' : ` [${String(code)}]`}: ${e.message}\n${where}`;
  }
  return `non-Error value ${typeof e}: ${String(e)}`;
}

/**
 * Runs inputs through one parser, counting outcomes and recording the first
 * few failures with their inputs in hex.
 */
class Campaign {
  calls = 0;
  accepted = 0;
  failed = 0;
  readonly codes = new Map<string, number>();
  readonly #failures: string[] = [];
  readonly #allowed: ReadonlySet<ErrorCode> | undefined;

  constructor(
    readonly parser: string,
    allowed?: readonly ErrorCode[],
  ) {
    this.#allowed = allowed === undefined ? undefined : new Set(allowed);
  }

  /**
   * Calls `fn`. A typed error (with an allowed code) is a rejection; any
   * other throw is a failure. When `fn` returns, `invariant` (if given) must
   * hold for the result.
   */
  run<T>(input: Input, how: string, fn: () => T, invariant?: (result: T) => void): Outcome {
    this.calls++;
    let result: T;
    try {
      result = fn();
    } catch (e) {
      if (isSpiffeError(e)) {
        this.codes.set(e.code, (this.codes.get(e.code) ?? 0) + 1);
        if (this.#allowed !== undefined && !this.#allowed.has(e.code)) {
          this.fail(input, how, `threw undocumented code ${e.code} (expected ${[...this.#allowed].join(' or ')}): ${describeError(e)}`);
          return 'crashed';
        }
        return 'rejected';
      }
      this.fail(input, how, `threw an untyped error: ${describeError(e)}`);
      return 'crashed';
    }
    this.accepted++;
    if (invariant !== undefined) {
      try {
        invariant(result);
      } catch (e) {
        this.fail(input, how, `accepted the input but broke an invariant: ${describeError(e)}`);
        return 'crashed';
      }
    }
    return 'accepted';
  }

  fail(input: Input, how: string, problem: string): void {
    this.failed++;
    if (this.#failures.length < 5) {
      const len = typeof input === 'string' ? `${input.length} chars` : `${input.length} bytes`;
      this.#failures.push(`[${this.parser}] ${how}: ${problem}\n  input (${len}, hex): ${hex(input)}`);
    }
  }

  /** Prints the outcome counts and fails the test if any input failed. */
  finish(t: TestContext): void {
    const codes = [...this.codes].map(([c, n]) => `${c}×${n}`).join(', ');
    t.diagnostic(`${this.parser}: ${this.calls} calls, ${this.accepted} accepted, ${this.calls - this.accepted - this.failed} typed rejections (${codes || 'none'}), ${this.failed} failures`);
    assert.ok(this.calls > 0, 'the campaign made no calls');
    if (this.failed > 0) {
      assert.fail(`${this.failed} of ${this.calls} inputs into ${this.parser} failed (seed ${SEED_HEX}); first ${this.#failures.length}:\n\n${this.#failures.join('\n\n')}`);
    }
  }
}

// -------------------------------------------------------------- generators

const PRINTABLE = Array.from({ length: 95 }, (_, i) => String.fromCharCode(0x20 + i)).join('');
const ALPHABETS = [
  'abcdefghijklmnopqrstuvwxyz0123456789._-',
  'ABCXYZabcxyz019._-/:%?#@[] \t\r\n',
  'spiffe:/.',
  PRINTABLE,
  'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n-',
  'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.',
  '{}[]":,.-0123456789eE truefalsn\\u',
];
const ODD_CHARS = ['é', '\u00a0', 'ı', '\u0100', '\uff41', '😀', '\ud800', '\udfff', '\u0000', '\u2028', '\ufeff'];

function randomString(rng: Rng, max: number): string {
  const len = rng.length(max);
  const r = rng.int(10);
  if (r === 0) {
    let s = '';
    for (let i = 0; i < len; i++) s += String.fromCharCode(rng.int(0x10000));
    return s;
  }
  const alphabet = rng.pick(ALPHABETS);
  let s = '';
  for (let i = 0; i < len; i++) s += r === 1 && rng.chance(0.2) ? rng.pick(ODD_CHARS) : alphabet[rng.int(alphabet.length)]!;
  return s;
}

const splice = (b: Uint8Array, at: number, del: number, ins: Uint8Array = Buffer.alloc(0)): Buffer =>
  Buffer.concat([b.subarray(0, at), ins, b.subarray(Math.min(b.length, at + del))]);

const INTERESTING_BYTES = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x1f, 0x20, 0x30, 0x31, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x85, 0xa0, 0xa3, 0xff];

type ByteOp = (rng: Rng, b: Buffer) => Buffer;
const BYTE_OPS: readonly [string, ByteOp][] = [
  ['flip', (r, b) => {
    if (b.length === 0) return b;
    const c = Buffer.from(b);
    const i = r.int(c.length);
    c[i] = c[i]! ^ (1 << r.int(8));
    return c;
  }],
  ['set', (r, b) => {
    if (b.length === 0) return b;
    const c = Buffer.from(b);
    c[r.int(c.length)] = r.int(256);
    return c;
  }],
  ['interesting', (r, b) => {
    if (b.length === 0) return b;
    const c = Buffer.from(b);
    c[r.int(c.length)] = r.pick(INTERESTING_BYTES);
    return c;
  }],
  ['insert', (r, b) => splice(b, r.int(b.length + 1), 0, r.bytes(1 + r.int(8)))],
  ['delete', (r, b) => splice(b, r.int(b.length + 1), 1 + r.int(8))],
  ['duplicate', (r, b) => {
    if (b.length === 0) return b;
    const i = r.int(b.length);
    const n = 1 + r.int(Math.min(64, b.length - i));
    return splice(b, r.int(b.length + 1), 0, b.subarray(i, i + n));
  }],
  ['truncate', (r, b) => b.subarray(0, r.int(b.length + 1))],
  ['fill-run', (r, b) => {
    if (b.length === 0) return b;
    const c = Buffer.from(b);
    const i = r.int(c.length);
    c.fill(r.pick([0x00, 0xff, 0x80]), i, Math.min(c.length, i + 1 + r.int(16)));
    return c;
  }],
];

/** One to four stacked byte-level mutations. */
function mutateBytes(rng: Rng, input: Uint8Array): { out: Buffer; op: string } {
  let out: Buffer = Buffer.from(input);
  const ops: string[] = [];
  const rounds = rng.chance(0.75) ? 1 : 2 + rng.int(3);
  for (let i = 0; i < rounds; i++) {
    const [name, op] = rng.pick(BYTE_OPS);
    out = op(rng, out);
    ops.push(name);
  }
  return { out, op: ops.join('+') };
}

const STRING_POOL = ['/', '.', '..', '//', '%', '%41', '?', '#', '@', ':', '[', ']', ' ', '\t', '\n', 'A', 'Z', 'a', '0', '-', '_',
  'spiffe://', 'SPIFFE', ...ODD_CHARS];

type StringOp = (rng: Rng, s: string) => string;
const STRING_OPS: readonly [string, StringOp][] = [
  ['insert', (r, s) => { const i = r.int(s.length + 1); return s.slice(0, i) + r.pick(STRING_POOL) + s.slice(i); }],
  ['delete', (r, s) => { const i = r.int(s.length + 1); return s.slice(0, i) + s.slice(i + 1 + r.int(3)); }],
  ['replace', (r, s) => { const i = r.int(s.length); return s.slice(0, i) + r.pick(STRING_POOL) + s.slice(i + 1); }],
  ['duplicate', (r, s) => { const i = r.int(s.length); const j = i + 1 + r.int(8); const k = r.int(s.length + 1); return s.slice(0, k) + s.slice(i, j) + s.slice(k); }],
  ['truncate', (r, s) => s.slice(0, r.int(s.length + 1))],
  ['case', (r, s) => { const i = r.int(s.length); const c = s.charAt(i); const f = c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase(); return s.slice(0, i) + f + s.slice(i + 1); }],
  ['random-char', (r, s) => { const i = r.int(s.length + 1); return s.slice(0, i) + String.fromCharCode(r.int(0x80)) + s.slice(i); }],
];

function mutateString(rng: Rng, input: string): { out: string; op: string } {
  let out = input;
  const ops: string[] = [];
  const rounds = rng.chance(0.7) ? 1 : 2 + rng.int(3);
  for (let i = 0; i < rounds; i++) {
    const [name, op] = rng.pick(STRING_OPS);
    out = op(rng, out);
    ops.push(name);
  }
  return { out, op: ops.join('+') };
}

// --------------------------------------------------------- DER structure

/**
 * A decoded TLV. Constructed values, and OCTET/BIT STRINGs that hold DER
 * (extension values, signatures), keep their children so mutations can reach
 * inside them and re-encode with correct lengths.
 */
interface DerNode {
  tag: number;
  /** Bytes before the children inside the value (a BIT STRING's unused-bits octet). */
  prefix: Buffer;
  children: DerNode[] | undefined;
  content: Buffer;
}

function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function encodeNode(n: DerNode): Buffer {
  const body = n.children === undefined ? n.content : Buffer.concat([n.prefix, ...n.children.map(encodeNode)]);
  return Buffer.concat([Buffer.from([n.tag]), encodeLength(body.length), body]);
}

interface RawTlv {
  tag: number;
  start: number;
  lenAt: number;
  content: number;
  end: number;
}

/** Reads one TLV of valid DER (inputs here are minted, so this is minimal). */
function readTlv(b: Buffer, pos: number, end: number): RawTlv | undefined {
  if (pos + 2 > end) return undefined;
  const tag = b[pos]!;
  if ((tag & 0x1f) === 0x1f) return undefined;
  let p = pos + 1;
  const first = b[p++]!;
  let len = first;
  if (first >= 0x80) {
    const k = first & 0x7f;
    if (k === 0 || k > 3 || p + k > end) return undefined;
    len = 0;
    for (let i = 0; i < k; i++) len = len * 256 + b[p++]!;
  }
  if (p + len > end) return undefined;
  return { tag, start: pos, lenAt: pos + 1, content: p, end: p + len };
}

function readAll(b: Buffer, start: number, end: number): RawTlv[] | undefined {
  const out: RawTlv[] = [];
  for (let p = start; p < end; ) {
    const t = readTlv(b, p, end);
    if (t === undefined) return undefined;
    out.push(t);
    p = t.end;
  }
  return out;
}

/** Where a primitive string holds nested DER: start of the nested DER, or undefined. */
function encapsulatedStart(b: Buffer, t: RawTlv): number | undefined {
  if (t.tag !== 0x04 && t.tag !== 0x03) return undefined;
  const from = t.tag === 0x03 ? t.content + 1 : t.content;
  if (from >= t.end || ![0x30, 0x31, 0x03, 0x04, 0x02, 0x06].includes(b[from]!)) return undefined;
  const kids = readAll(b, from, t.end);
  return kids !== undefined && kids.length > 0 ? from : undefined;
}

function toNode(b: Buffer, t: RawTlv): DerNode {
  const content = b.subarray(t.content, t.end);
  const primitive: DerNode = { tag: t.tag, prefix: Buffer.alloc(0), children: undefined, content };
  const from = (t.tag & 0x20) !== 0 ? t.content : encapsulatedStart(b, t);
  const kids = from === undefined ? undefined : readAll(b, from, t.end);
  if (from === undefined || kids === undefined) return primitive;
  const node: DerNode = { tag: t.tag, prefix: b.subarray(t.content, from), children: kids.map((k) => toNode(b, k)), content };
  // Bytes that only look like DER (a key scalar, say) may not re-encode to themselves: keep those opaque.
  return encodeNode(node).equals(b.subarray(t.start, t.end)) ? node : primitive;
}

function parseDerTree(der: Buffer): DerNode {
  const t = readTlv(der, 0, der.length);
  assert.ok(t !== undefined && t.end === der.length, 'fixture is not a single DER value');
  const node = toNode(der, t);
  assert.ok(encodeNode(node).equals(der), 'fixture does not re-encode to itself');
  return node;
}

function cloneNode(n: DerNode): DerNode {
  return { tag: n.tag, prefix: n.prefix, content: n.content, children: n.children?.map(cloneNode) };
}

interface Slot {
  node: DerNode;
  siblings: DerNode[] | undefined;
  index: number;
}

function slots(root: DerNode): Slot[] {
  const out: Slot[] = [{ node: root, siblings: undefined, index: 0 }];
  const walk = (n: DerNode): void => {
    n.children?.forEach((c, i) => {
      out.push({ node: c, siblings: n.children, index: i });
      walk(c);
    });
  };
  walk(root);
  return out;
}

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
const CONTENT_BY_TAG: Record<number, Buffer[]> = {
  0x01: [Buffer.alloc(0), Buffer.from([0x01]), Buffer.from([0, 0]), Buffer.from([0xff, 0xff])],
  0x02: [Buffer.alloc(0), Buffer.from([0]), Buffer.from([0x80]), Buffer.from([0, 1]), Buffer.from([0xff, 0x80]), Buffer.alloc(21, 0x7f), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])],
  0x03: [Buffer.alloc(0), Buffer.from([8]), Buffer.from([7, 0xff]), Buffer.from([0]), Buffer.from([1, 0x01])],
  0x06: [Buffer.alloc(0), Buffer.from([0x80, 0x01]), Buffer.from([0x2a, 0x86]), Buffer.alloc(12, 0xff), Buffer.from([0x55, 0x1d, 0x13]), Buffer.from([0x55, 0x1d, 0x0f]), Buffer.from([0x55, 0x1d, 0x11])],
  0x17: [ascii('991231235960Z'), ascii('000229000000Z'), ascii('49123123595Z'), ascii('4912312359590'), ascii('491231235959+0000'), ascii('4x1231235959Z'), ascii('')],
  0x18: [ascii('20501301000000Z'), ascii('00000101000000Z'), ascii('99991231235959Z'), ascii('2050010100000Z'), ascii('20500101000000.5Z')],
  0x86: [ascii('spiffe://example.org/other'), ascii('spiffe://EXAMPLE.org/x'), ascii('spiffe://example.org'), ascii('spiffe://example.org/a\u00e9'),
    ascii('https://example.org/x'), ascii(''), ascii('spiffe://example.org/a\n'), Buffer.from([0xff, 0xfe])],
};

type TreeOp = (rng: Rng, root: DerNode, pool: Slot[]) => boolean;
const TREE_OPS: readonly [string, TreeOp][] = [
  ['delete-child', (r, _root, pool) => {
    const s = r.pick(pool);
    if (s.siblings === undefined) return false;
    s.siblings.splice(s.index, 1);
    return true;
  }],
  ['duplicate-child', (r, _root, pool) => {
    const s = r.pick(pool);
    if (s.siblings === undefined) return false;
    s.siblings.splice(s.index, 0, cloneNode(s.node));
    return true;
  }],
  ['swap-siblings', (r, _root, pool) => {
    const s = r.pick(pool);
    if (s.siblings === undefined || s.siblings.length < 2) return false;
    const j = r.int(s.siblings.length);
    [s.siblings[s.index], s.siblings[j]] = [s.siblings[j]!, s.siblings[s.index]!];
    return true;
  }],
  ['graft', (r, _root, pool) => {
    const s = r.pick(pool);
    if (s.siblings === undefined) return false;
    s.siblings[s.index] = cloneNode(r.pick(pool).node);
    return true;
  }],
  ['retag', (r, _root, pool) => {
    const s = r.pick(pool);
    s.node.tag = r.pick([s.node.tag ^ 0x20, s.node.tag ^ 0x80, 0x05, 0x30, 0x31, 0xa0, 0xa3, 0x80, 0x86, 0x02, 0x04, 0x0c, r.int(256) & ~0x1f]);
    return true;
  }],
  ['empty', (r, _root, pool) => {
    const s = r.pick(pool);
    if (s.node.children !== undefined) s.node.children = [];
    else s.node.content = Buffer.alloc(0);
    return true;
  }],
  ['content', (r, _root, pool) => {
    const leaves = pool.filter((s) => s.node.children === undefined);
    if (leaves.length === 0) return false;
    const n = r.pick(leaves).node;
    const special = CONTENT_BY_TAG[n.tag];
    n.content = special !== undefined && r.chance(0.6) ? r.pick(special) : mutateBytes(r, n.content).out;
    return true;
  }],
  ['random-content', (r, _root, pool) => {
    const n = r.pick(pool).node;
    n.children = undefined;
    n.content = r.bytes(r.length(64));
    return true;
  }],
];

/** One to three structural edits, re-encoded as DER with correct lengths. */
function mutateDer(rng: Rng, tree: DerNode): { out: Buffer; op: string } {
  const root = cloneNode(tree);
  const ops: string[] = [];
  const rounds = rng.chance(0.7) ? 1 : 2 + rng.int(2);
  for (let i = 0; i < rounds; i++) {
    const [name, op] = rng.pick(TREE_OPS);
    if (op(rng, root, slots(root))) ops.push(name);
  }
  return { out: encodeNode(root), op: `der:${ops.join('+') || 'none'}` };
}

/**
 * Every TLV header of `der` corrupted in every way that matters to a strict
 * DER reader: lengths off by one, zero, indefinite, non-minimal, huge, and
 * tags made constructed/primitive, high-tag-number or zero.
 */
function headerCorruptions(der: Buffer): { out: Buffer; op: string }[] {
  const headers: RawTlv[] = [];
  const walk = (start: number, end: number): void => {
    for (const t of readAll(der, start, end) ?? []) {
      headers.push(t);
      if ((t.tag & 0x20) !== 0) walk(t.content, t.end);
      const inner = encapsulatedStart(der, t);
      if (inner !== undefined) walk(inner, t.end);
    }
  };
  walk(0, der.length);
  const out: { out: Buffer; op: string }[] = [];
  for (const t of headers) {
    const len = t.end - t.content;
    const lenBytes = t.content - t.lenAt;
    const withLen = (bytes: Buffer, name: string): void => {
      out.push({ out: splice(der, t.lenAt, lenBytes, bytes), op: `length@${t.start}:${name}` });
    };
    withLen(encodeLength(len + 1), '+1');
    if (len > 0) withLen(encodeLength(len - 1), '-1');
    withLen(encodeLength(0), 'zero');
    withLen(encodeLength(len + 0x80), '+128');
    withLen(Buffer.from([0x80]), 'indefinite');
    // One more length octet than needed: a leading zero (or the long form for a short length).
    withLen(len < 0x80 ? Buffer.from([0x81, len]) : Buffer.concat([Buffer.from([0x80 | lenBytes, 0]), der.subarray(t.lenAt + 1, t.content)]), 'non-minimal');
    withLen(Buffer.from([0x84, 0xff, 0xff, 0xff, 0xff]), '0xffffffff');
    withLen(Buffer.from([0x85, 0x01, 0x00, 0x00, 0x00, 0x00]), '5-octet');
    withLen(Buffer.from([0xff]), 'reserved-0xff');
    const withTag = (tag: number, name: string): void => {
      const c = Buffer.from(der);
      c[t.start] = tag;
      out.push({ out: c, op: `tag@${t.start}:${name}` });
    };
    withTag(t.tag ^ 0x20, 'constructed-bit');
    withTag((t.tag & 0xe0) | 0x1f, 'high-tag');
    withTag(0x00, 'zero');
  }
  return out;
}

// ------------------------------------------------------------------- PEM

type PemOp = (rng: Rng, pem: string) => string;
const PEM_OPS: readonly [string, PemOp][] = [
  ['duplicate-block', (r, p) => {
    const blocks = p.match(/-----BEGIN [^-]+-----[\s\S]*?-----END [^-]+-----\n?/g) ?? [];
    return blocks.length ? p + r.pick(blocks) : p + p;
  }],
  ['duplicate-begin', (_r, p) => p.replace(/(-----BEGIN [^-]+-----\n)/, '$1$1')],
  ['duplicate-end', (_r, p) => p.replace(/(-----END [^-]+-----\n?)/, '$1$1')],
  ['drop-end', (_r, p) => p.replace(/-----END [^-]+-----/, '')],
  ['drop-begin', (_r, p) => p.replace(/-----BEGIN [^-]+-----/, '')],
  ['mismatched-end', (_r, p) => p.replace(/-----END CERTIFICATE-----/, '-----END PRIVATE KEY-----').replace(/-----END PRIVATE KEY-----/, '-----END CERTIFICATE-----')],
  ['type', (r, p) => p.replace(/-----(BEGIN|END) ([^-]+)-----/g, (_m, w: string) => `-----${w} ${r.pick(['certificate', 'X509 CRL', 'PRIVATE KEY', 'CERTIFICATE ', 'CERT1FICATE', 'EC PRIVATE KEY', 'PUBLIC KEY'])}-----`)],
  ['header', (_r, p) => p.replace(/(-----BEGIN [^-]+-----\n)/, '$1Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n')],
  ['body-char', (r, p) => {
    const i = p.indexOf('-----\n') + 6 + r.int(64);
    return p.slice(0, i) + r.pick(['=', '==', '-', '*', ' ', '\t', '\r', '\u0000', 'é', '+', '/', 'A', '\n\n']) + p.slice(i + (r.chance(0.5) ? 1 : 0));
  }],
  ['body-delete', (r, p) => {
    const i = p.indexOf('-----\n') + 6 + r.int(p.length);
    return p.slice(0, i) + p.slice(i + 1 + r.int(4));
  }],
  ['crlf', (_r, p) => p.replace(/\n/g, '\r\n')],
  ['cr-only', (_r, p) => p.replace(/\n/g, '\r')],
  ['rewrap', (r, p) => {
    const width = 1 + r.int(100);
    return p.replace(/-----\n([A-Za-z0-9+/=\n]+)\n-----/g, (_m, body: string) => `-----\n${(body.replace(/\n/g, '').match(new RegExp(`.{1,${width}}`, 'g')) ?? []).join('\n')}\n-----`);
  }],
  ['unwrapped', (_r, p) => p.replace(/-----\n([A-Za-z0-9+/=\n]+)\n-----/g, (_m, body: string) => `-----${body.replace(/\n/g, '')}-----`)],
  ['garbage-around', (r, p) => randomString(r, 64) + p + randomString(r, 64)],
  ['text-bytes', (r, p) => mutateBytes(r, Buffer.from(p, 'latin1')).out.toString('latin1')],
];

function mutatePem(rng: Rng, pem: string): { out: string; op: string } {
  const [name, op] = rng.pick(PEM_OPS);
  return { out: op(rng, pem), op: `pem:${name}` };
}

const pemOf = (type: string, ders: readonly Uint8Array[]): string => ders.map((d) => encodePem(type, d)).join('');

// ------------------------------------------------------------------ JSON

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const RETYPES: readonly Json[] = [null, true, false, 0, -1, 1.5, 1e308, 2 ** 53 + 1, -0, '', 'x', 'AAAA', 'EC', 'RSA', 'OKP', 'oct', 'P-256', 'P-384',
  'Ed25519', 'x509-svid', 'jwt-svid', 'A'.repeat(3000), [], {}, [null], [''], { keys: [] }, ['AAAA'], [[]]];
const RENAMES = ['KTY', 'kid ', '', '__proto__', 'constructor', 'toString', 'use', 'x5c', 'kid', 'd', 'alg', 'keys', 'spiffe_sequence'];
const ADDED_MEMBERS = ['d', 'p', 'q', 'x5c', 'kid', 'use', 'kty', 'crv', 'n', 'e', 'x', 'y', 'alg', 'keys', 'spiffe_sequence', 'spiffe_refresh_hint', '__proto__'];

interface JsonSlot {
  parent: Json[] | { [k: string]: Json };
  key: string | number;
}

function jsonSlots(v: Json, out: JsonSlot[] = []): JsonSlot[] {
  if (Array.isArray(v)) {
    v.forEach((c, i) => {
      out.push({ parent: v, key: i });
      jsonSlots(c, out);
    });
  } else if (v !== null && typeof v === 'object') {
    for (const k of Object.keys(v)) {
      out.push({ parent: v, key: k });
      jsonSlots(v[k]!, out);
    }
  }
  return out;
}

const getSlot = (s: JsonSlot): Json => (Array.isArray(s.parent) ? s.parent[s.key as number]! : s.parent[s.key as string]!);
function setSlot(s: JsonSlot, v: Json): void {
  if (Array.isArray(s.parent)) s.parent[s.key as number] = v;
  else Object.defineProperty(s.parent, s.key, { value: v, enumerable: true, writable: true, configurable: true });
}

type JsonOp = (rng: Rng, doc: { root: Json }) => void;
const JSON_OPS: readonly [string, JsonOp][] = [
  ['delete', (r, d) => {
    const s = jsonSlots(d.root);
    if (!s.length) return;
    const t = r.pick(s);
    if (Array.isArray(t.parent)) t.parent.splice(t.key as number, 1);
    else delete t.parent[t.key as string];
  }],
  ['rename', (r, d) => {
    const s = jsonSlots(d.root).filter((x) => !Array.isArray(x.parent));
    if (!s.length) return;
    const t = r.pick(s);
    const v = getSlot(t);
    delete (t.parent as Record<string, Json>)[t.key as string];
    setSlot({ parent: t.parent, key: r.pick(RENAMES) }, v);
  }],
  ['retype', (r, d) => {
    const s = jsonSlots(d.root);
    if (!s.length || r.chance(0.05)) d.root = structuredClone(r.pick(RETYPES));
    else setSlot(r.pick(s), structuredClone(r.pick(RETYPES)));
  }],
  ['duplicate-element', (r, d) => {
    const s = jsonSlots(d.root).filter((x) => Array.isArray(x.parent));
    if (!s.length) return;
    const t = r.pick(s);
    (t.parent as Json[]).splice(t.key as number, 0, structuredClone(getSlot(t)));
  }],
  ['swap-values', (r, d) => {
    const s = jsonSlots(d.root);
    if (s.length < 2) return;
    const a = r.pick(s);
    const b = r.pick(s);
    const va = structuredClone(getSlot(a));
    setSlot(a, structuredClone(getSlot(b)));
    setSlot(b, va);
  }],
  ['string-edit', (r, d) => {
    const s = jsonSlots(d.root).filter((x) => typeof getSlot(x) === 'string');
    if (!s.length) return;
    const t = r.pick(s);
    setSlot(t, mutateString(r, getSlot(t) as string).out);
  }],
  ['add-member', (r, d) => {
    const objs = [d.root, ...jsonSlots(d.root).map(getSlot)].filter((v): v is { [k: string]: Json } => v !== null && typeof v === 'object' && !Array.isArray(v));
    if (!objs.length) return;
    const o = r.pick(objs);
    setSlot({ parent: o, key: r.pick(ADDED_MEMBERS) }, structuredClone(r.pick(RETYPES)));
  }],
];

/** One to three edits of the parsed document: deleted, renamed, retyped, duplicated or swapped members. */
function mutateJson(rng: Rng, json: string): { out: string; op: string } {
  const doc = { root: JSON.parse(json) as Json };
  const ops: string[] = [];
  const rounds = rng.chance(0.6) ? 1 : 2 + rng.int(2);
  for (let i = 0; i < rounds; i++) {
    const [name, op] = rng.pick(JSON_OPS);
    op(rng, doc);
    ops.push(name);
  }
  return { out: JSON.stringify(doc.root) ?? 'undefined', op: `json:${ops.join('+')}` };
}

// --------------------------------------------------------------- fixtures

/** Every fixture lives at this instant (clock injected into TestCa and the verifiers). */
const NOW = new Date('2030-06-15T12:00:00Z');
const clock = (): Date => NOW;
const TD = TrustDomain.parse('example.org');
const rootCa = new TestCa({ trustDomain: TD, now: clock });
const interCa = rootCa.createIntermediate();
const edCa = new TestCa({ trustDomain: 'ed.example', keyType: 'ed25519', now: clock });
const rsaKey = generateKey('rsa-2048');

const directSvid = rootCa.createX509Svid('spiffe://example.org/web');
const chainedSvid = interCa.createX509Svid('spiffe://example.org/db', { key: rsaKey });
const edSvid = edCa.createX509Svid('spiffe://ed.example/x', { keyType: 'ed25519' });

const leafDer = directSvid.certificates[0]!;
const leafTree = parseDerTree(leafDer);
const rootTree = parseDerTree(rootCa.certificate);
const certTrees = [leafTree, rootTree, parseDerTree(chainedSvid.certificates[0]!), parseDerTree(interCa.certificate), parseDerTree(edSvid.certificates[0]!)];

const pkcs8 = (k: KeyObject): Buffer => k.export({ type: 'pkcs8', format: 'der' }) as Buffer;
const pkcs8Pem = (k: KeyObject): string => k.export({ type: 'pkcs8', format: 'pem' }) as string;
const keyDers = [pkcs8(directSvid.privateKey), pkcs8(chainedSvid.privateKey), pkcs8(edSvid.privateKey)];
const keyTrees = keyDers.map(parseDerTree);

interface SvidFixture {
  readonly name: string;
  readonly svid: X509Svid;
  readonly bundle: X509Bundle;
  readonly keyPems: readonly string[];
}
const svidFixtures: readonly SvidFixture[] = [
  { name: 'EC P-256 leaf signed by the root', svid: directSvid, bundle: rootCa.x509Bundle(),
    keyPems: [pkcs8Pem(directSvid.privateKey), directSvid.privateKey.export({ type: 'sec1', format: 'pem' }) as string] },
  { name: 'RSA leaf + intermediate', svid: chainedSvid, bundle: rootCa.x509Bundle(),
    keyPems: [pkcs8Pem(rsaKey), rsaKey.export({ type: 'pkcs1', format: 'pem' }) as string] },
  { name: 'Ed25519 leaf and root', svid: edSvid, bundle: edCa.x509Bundle(), keyPems: [pkcs8Pem(edSvid.privateKey)] },
];

const jwtBundleJson = new JwtBundle(TD, [
  [rootCa.jwtKeyId, createPublicKey(rootCa.jwtKey)],
  ['rsa-key', createPublicKey(rsaKey)],
  ['ed-key', createPublicKey(edSvid.privateKey)],
]).marshal();

/** Short valid documents, truncated at every length. */
const shortJwks = new JwtBundle(TD, [[rootCa.jwtKeyId, createPublicKey(rootCa.jwtKey)]]).marshal();
const shortSpiffeBundleJson = new SpiffeBundle(TD, { jwtAuthorities: [['k', createPublicKey(rootCa.jwtKey)]], sequenceNumber: 1 }).marshal();

const spiffeBundleJson = new SpiffeBundle(TD, {
  x509Authorities: [rootCa.certificate],
  jwtAuthorities: [[rootCa.jwtKeyId, createPublicKey(rootCa.jwtKey)], ['rsa-key', createPublicKey(rsaKey)]],
  sequenceNumber: 7,
  refreshHintSeconds: 300,
}).marshal();

const AUDIENCE = 'spiffe://example.org/api';
const jwtSource = rootCa.jwtBundle();
const validToken = signJwtSvid({
  id: SpiffeId.parse('spiffe://example.org/web'),
  audience: [AUDIENCE, 'other'],
  key: rootCa.jwtKey,
  keyId: rootCa.jwtKeyId,
  issuedAt: NOW,
  expiresAt: new Date(NOW.getTime() + 300_000),
});

/** Signs header and payload JSON as a JWS with the test CA's ES256 JWT key, so claim checks are reached. */
function signRawJwt(header: string, payload: string): string {
  const input = `${Buffer.from(header).toString('base64url')}.${Buffer.from(payload).toString('base64url')}`;
  const sig = sign('sha256', Buffer.from(input), { key: rootCa.jwtKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

const b64urlJson = (part: string): string => Buffer.from(part, 'base64url').toString('utf8');

/** Whether the private key of an accepted SVID really signs for its leaf. */
function keySignsForLeaf(svid: X509Svid): boolean {
  const probe = Buffer.from('tessera robustness probe');
  const leafKey = new Certificate(svid.certificates[0]!).publicKey;
  const alg = svid.privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256';
  return verify(alg, probe, leafKey, sign(alg, probe, svid.privateKey));
}

// ------------------------------------------ keys Node accepts but cannot use

/*
 * Node 20 with OpenSSL 3 accepts EC keys that OpenSSL cannot convert to its
 * legacy EC_KEY form, and then aborts the whole process (a C++ assertion,
 * not an exception) on `asymmetricKeyDetails` or a JWK export of the key.
 * Two such shapes: a point at infinity (public key BIT STRING 00 00) in an
 * SPKI or embedded in a private key, and a private scalar longer than the
 * curve order (a 45-byte OCTET STRING for P-256). The library used to reach
 * both calls on untrusted input; it must now reject such keys with typed
 * errors, so the campaigns below feed them, and mutations of them, to it.
 */

/** An SPKI (P-256) whose public key is the point at infinity. */
function infinitySpki(): Buffer {
  const spki = createPublicKey(generateKey('ec-p256')).export({ type: 'spki', format: 'der' }) as Buffer;
  const tree = parseDerTree(spki);
  tree.children![1] = { tag: 0x03, prefix: Buffer.alloc(0), children: undefined, content: Buffer.from([0x00, 0x00]) };
  return encodeNode(tree);
}

/** An SPKI (P-256) whose point is not on the curve (one bit of X flipped): Node refuses to import it. */
function offCurveSpki(): Buffer {
  const spki = createPublicKey(generateKey('ec-p256')).export({ type: 'spki', format: 'der' }) as Buffer;
  spki[spki.length - 40]! ^= 0x01;
  return spki;
}

/** A self-signed CA certificate whose public key is the point at infinity. */
function infinityCaCertificate(): Buffer {
  const name = encodeName([{ oid: '2.5.4.10', value: 'point at infinity' }]);
  return buildCertificate({
    issuer: name,
    subject: name,
    notBefore: new Date(NOW.getTime() - 60_000),
    notAfter: new Date(NOW.getTime() + 3_600_000),
    publicKey: infinitySpki(),
    signingKey: generateKey('ec-p256'),
    extensions: [basicConstraintsExt(true), keyUsageExt(KeyUsage.keyCertSign)],
  });
}

/** `der` (a certificate) with its SubjectPublicKeyInfo replaced by `spki`; names are kept, the signature breaks. */
function withSpki(der: Uint8Array, spki: Buffer): Buffer {
  const tree = parseDerTree(Buffer.from(der));
  const old = new Certificate(der).spki;
  const tbs = tree.children![0]!.children!;
  const at = tbs.findIndex((n) => encodeNode(n).equals(old));
  assert.ok(at >= 0, 'SubjectPublicKeyInfo not found in the TBSCertificate');
  tbs[at] = parseDerTree(spki);
  return encodeNode(tree);
}

/** `der` (a P-256 PKCS#8 or SEC1 key) with its embedded public key replaced by the point at infinity. */
function withInfinityPublicKey(der: Buffer): Buffer {
  const tree = parseDerTree(der);
  const slot = slots(tree).find((x) => x.node.tag === 0xa1);
  assert.ok(slot !== undefined, 'no [1] publicKey in the EC private key');
  slot.node.children = [{ tag: 0x03, prefix: Buffer.alloc(0), children: undefined, content: Buffer.from([0x00, 0x00]) }];
  return encodeNode(tree);
}

/** `der` (a P-256 PKCS#8 key) with a 45-byte private scalar, longer than the curve order. */
function withOverlongScalar(der: Buffer): Buffer {
  const tree = parseDerTree(der);
  // ECPrivateKey ::= SEQUENCE { version INTEGER, privateKey OCTET STRING, ... }: the OCTET STRING after an INTEGER.
  const slot = slots(tree).find((x) => x.node.tag === 0x04 && x.index === 1 && x.siblings?.[0]?.tag === 0x02);
  assert.ok(slot !== undefined, 'no privateKey OCTET STRING in the PKCS#8 key');
  slot.node.children = undefined;
  slot.node.content = Buffer.concat([Buffer.from([0x01]), Buffer.alloc(44, 0xab)]);
  return encodeNode(tree);
}

const infinityCa = infinityCaCertificate();
const infinityCaTree = parseDerTree(infinityCa);
/** Certificates whose keys Node cannot use, in the roles the library meets them. */
const unusableKeyCerts: readonly (readonly [string, Buffer])[] = [
  ['self-signed CA, key at infinity', infinityCa],
  ['intermediate, key at infinity', withSpki(interCa.certificate, infinitySpki())],
  ['intermediate, key off the curve', withSpki(interCa.certificate, offCurveSpki())],
  ['leaf, key at infinity', withSpki(leafDer, infinitySpki())],
];
/** A SPIFFE bundle of about 0.5 KB (as a federation endpoint could serve it) whose x5c CA key is the point at infinity. */
const infinityBundleJson = (() => {
  const jwk = createPublicKey(generateKey('ec-p256')).export({ format: 'jwk' });
  return JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, use: 'x509-svid', x5c: [infinityCa.toString('base64')] }] });
})();
/** Private keys for directSvid's (P-256) leaf that Node cannot use: [name, PKCS#8 DER or undefined, PEM]. */
const unusablePrivateKeys: readonly (readonly [string, Buffer | undefined, string])[] = (() => {
  const infinity = withInfinityPublicKey(keyDers[0]!);
  const long = withOverlongScalar(keyDers[0]!);
  const sec1 = withInfinityPublicKey(directSvid.privateKey.export({ type: 'sec1', format: 'der' }) as Buffer);
  return [
    ['PKCS#8, embedded public key at infinity', infinity, encodePem('PRIVATE KEY', infinity)],
    ['PKCS#8, 45-byte private scalar', long, encodePem('PRIVATE KEY', long)],
    ['SEC1, embedded public key at infinity', undefined, encodePem('EC PRIVATE KEY', sec1)],
  ];
})();
const unusableKeyTrees = unusablePrivateKeys.flatMap(([, der]) => (der === undefined ? [] : [parseDerTree(der)]));

// -------------------------------------------------------- reference oracle

const REF_ID = /^spiffe:\/\/([a-z0-9._-]+)((?:\/[a-zA-Z0-9._-]+)*)$/;

/** An independent statement of SPIFFE-ID §2 (spec §1), for differential checks. */
function referenceId(s: string): { td: string; path: string } | undefined {
  const m = REF_ID.exec(s);
  if (m === null || m[1]!.length > 255) return undefined;
  const path = m[2]!;
  if (path.split('/').some((seg) => seg === '.' || seg === '..')) return undefined;
  return { td: m[1]!, path };
}

function referenceTrustDomain(s: string): string | undefined {
  if (s.includes(':/')) return referenceId(s)?.td;
  return /^[a-z0-9._-]{1,255}$/.test(s) ? s : undefined;
}

function randomValidId(rng: Rng): string {
  const tdChars = 'abcdefghijklmnopqrstuvwxyz0123456789._-';
  const pathChars = tdChars + 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  const word = (chars: string, max: number): string => Array.from({ length: 1 + rng.int(max) }, () => chars[rng.int(chars.length)]!).join('');
  let id = `spiffe://${word(tdChars, 20)}`;
  for (let i = rng.int(5); i > 0; i--) {
    let seg = word(pathChars, 10);
    if (seg === '.' || seg === '..') seg += 'x';
    id += '/' + seg;
  }
  return id;
}

// ------------------------------------------------------------------ tests

describe(`robustness: random and mutated inputs produce typed errors, never crashes or hangs (seed ${SEED_HEX}; override with TESSERA_FUZZ_SEED)`, () => {
  it('the fixtures are valid, so mutations start from accepted inputs', () => {
    for (const f of svidFixtures) {
      const { id } = verifyX509Svid(f.svid.certificates, f.bundle, { time: NOW });
      assert.ok(id.equals(f.svid.id), f.name);
      const raw = f.svid.marshalRaw();
      assert.ok(X509Svid.parseRaw(raw.certificates, raw.privateKey).id.equals(f.svid.id));
      for (const k of f.keyPems) assert.ok(X509Svid.parse(pemOf('CERTIFICATE', f.svid.certificates), k).id.equals(f.svid.id));
    }
    assert.equal(JwtBundle.parse(TD, jwtBundleJson).jwtAuthorities().size, 3);
    assert.equal(SpiffeBundle.parse(TD, spiffeBundleJson).x509Authorities().length, 1);
    assert.equal(JwtSvid.parseAndValidate(validToken, jwtSource, AUDIENCE, { time: NOW }).id.toString(), 'spiffe://example.org/web');
  });

  it('the unusable-key fixtures are keys Node cannot export (those it imports are the ones that aborted the process)', (t) => {
    const imported: string[] = [];
    const check = (name: string, load: () => KeyObject, exportAs: 'spki' | 'sec1'): void => {
      let key: KeyObject;
      try {
        key = load();
      } catch {
        return;
      }
      imported.push(name);
      assert.throws(() => key.export({ type: exportAs, format: 'der' }), `${name}: Node exports it, so it is not an unusable key`);
    };
    for (const [name, der] of unusableKeyCerts) check(name, () => createPublicKey({ key: Buffer.from(new Certificate(der).spki), format: 'der', type: 'spki' }), 'spki');
    for (const [name, , pem] of unusablePrivateKeys) check(name, () => createPrivateKey(pem), 'sec1');
    t.diagnostic(`Node imports ${imported.length} of ${unusableKeyCerts.length + unusablePrivateKeys.length} unusable-key fixtures: ${imported.join('; ')}`);
  });

  describe('SpiffeId.parse and TrustDomain.parse', () => {
    it('random strings: typed errors, and exactly the IDs an independent reference accepts', (t) => {
      const rng = rngFor('SpiffeId.parse/random');
      const c = new Campaign('SpiffeId.parse', ['ERR_SPIFFEID_INVALID']);
      const prefixes = ['', 'spiffe://', 'spiffe://', 'spiffe://example.org/', 'SPIFFE://', 'spiffe:/', 'spiffe:'];
      for (let i = 0; i < N * 2; i++) {
        const s = rng.pick(prefixes) + randomString(rng, 300);
        checkId(c, s, `random #${i}`);
      }
      c.finish(t);
    });

    it('mutations of valid IDs: typed errors, and exactly the IDs an independent reference accepts', (t) => {
      const rng = rngFor('SpiffeId.parse/mutations');
      const c = new Campaign('SpiffeId.parse', ['ERR_SPIFFEID_INVALID']);
      for (let i = 0; i < N * 2; i++) {
        const { out, op } = mutateString(rng, randomValidId(rng));
        checkId(c, out, `${op} #${i}`);
      }
      const short = 'spiffe://example.org/ns/backend';
      for (let len = 0; len <= short.length; len++) checkId(c, short.slice(0, len), `truncated to ${len}`);
      c.finish(t);
    });

    it('TrustDomain.parse on random and mutated names and IDs agrees with the reference', (t) => {
      const rng = rngFor('TrustDomain.parse');
      const c = new Campaign('TrustDomain.parse', ['ERR_TRUST_DOMAIN_INVALID', 'ERR_SPIFFEID_INVALID']);
      for (let i = 0; i < N * 2; i++) {
        const base = rng.chance(0.5) ? randomValidId(rng) : randomValidId(rng).slice('spiffe://'.length).split('/')[0]!;
        const s = rng.chance(0.2) ? randomString(rng, 300) : mutateString(rng, base).out;
        const expected = referenceTrustDomain(s);
        const outcome = c.run(s, `#${i}`, () => TrustDomain.parse(s), (td) => {
          assert.equal(td.name, expected, 'accepted a trust domain the reference rejects, or returned the wrong name');
        });
        if (outcome === 'rejected' && expected !== undefined) c.fail(s, `#${i}`, `rejected valid input (reference: "${expected}")`);
      }
      c.finish(t);
    });
  });

  describe('decodePem', () => {
    const pem = pemOf('CERTIFICATE', [leafDer]) + pkcs8Pem(directSvid.privateKey);
    it('random text', (t) => {
      const rng = rngFor('decodePem/random');
      const c = new Campaign('decodePem', ['ERR_PEM_INVALID']);
      const markers = ['-----BEGIN CERTIFICATE-----\n', '-----END CERTIFICATE-----\n', '-----BEGIN ', '-----', '\n'];
      for (let i = 0; i < N; i++) {
        let s = randomString(rng, 400);
        for (let k = rng.int(4); k > 0; k--) {
          const at = rng.int(s.length + 1);
          s = s.slice(0, at) + rng.pick(markers) + s.slice(at);
        }
        c.run(s, `random #${i}`, () => decodePem(s));
        const b = rng.bytes(rng.length(400));
        c.run(b, `random bytes #${i}`, () => decodePem(b));
      }
      c.finish(t);
    });
    it('mutated PEM, and truncation at every length', (t) => {
      const rng = rngFor('decodePem/mutations');
      const c = new Campaign('decodePem', ['ERR_PEM_INVALID']);
      for (let i = 0; i < N; i++) {
        const { out, op } = mutatePem(rng, pem);
        c.run(out, `${op} #${i}`, () => decodePem(out));
      }
      for (let len = 0; len <= pem.length; len++) {
        const s = pem.slice(0, len);
        c.run(s, `truncated to ${len}`, () => decodePem(s));
      }
      c.finish(t);
    });
  });

  describe('new Certificate(der)', () => {
    const parse = (c: Campaign, der: Uint8Array, how: string): void => {
      c.run(der, how, () => new Certificate(der), (cert) => {
        // The public key and the names are decoded lazily; bad ones must be typed too.
        c.run(der, `${how} (publicKey)`, () => cert.publicKey);
        c.run(der, `${how} (subject)`, () => cert.subject);
        c.run(der, `${how} (issuer)`, () => cert.issuer);
      });
    };
    it('random bytes, and random bytes inside a SEQUENCE', (t) => {
      const rng = rngFor('Certificate/random');
      const c = new Campaign('Certificate', ['ERR_CERTIFICATE_INVALID']);
      for (let i = 0; i < N; i++) {
        const body = rng.bytes(rng.length(600));
        parse(c, body, `random #${i}`);
        parse(c, Buffer.concat([Buffer.from([0x30]), encodeLength(body.length), body]), `random in SEQUENCE #${i}`);
      }
      c.finish(t);
    });
    it('byte mutations and structural DER mutations of valid certificates and of one whose key is the point at infinity', (t) => {
      const rng = rngFor('Certificate/mutations');
      const c = new Campaign('Certificate', ['ERR_CERTIFICATE_INVALID']);
      const trees = [...certTrees, infinityCaTree];
      for (let i = 0; i < N; i++) {
        const tree = rng.pick(trees);
        const { out, op } = rng.chance(0.5) ? mutateBytes(rng, encodeNode(tree)) : mutateDer(rng, tree);
        parse(c, out, `${op} #${i}`);
      }
      c.finish(t);
    });
    it('truncation at every length, corruption of every TLV header, keys Node cannot use', (t) => {
      const c = new Campaign('Certificate', ['ERR_CERTIFICATE_INVALID']);
      for (let len = 0; len < leafDer.length; len++) parse(c, leafDer.subarray(0, len), `truncated to ${len}`);
      for (const { out, op } of headerCorruptions(leafDer)) parse(c, out, op);
      for (const [name, der] of unusableKeyCerts) {
        parse(c, der, name);
        assert.throws(() => new Certificate(der).publicKey, (e: unknown) => isSpiffeError(e, 'ERR_CERTIFICATE_INVALID'), name);
      }
      c.finish(t);
    });
  });

  describe('X509Bundle.parse and parseDer', () => {
    const bundlePem = pemOf('CERTIFICATE', [rootCa.certificate, interCa.certificate]);
    const bundleDer = Buffer.concat([rootCa.certificate, interCa.certificate]);
    const roundTrips = (b: X509Bundle): void => {
      assert.ok(X509Bundle.parse(TD, b.marshal()).equals(b), 'PEM round trip');
      assert.ok(X509Bundle.parseDer(TD, b.marshalDer()).equals(b), 'DER round trip');
    };
    it('random text and bytes', (t) => {
      const rng = rngFor('X509Bundle/random');
      const pemC = new Campaign('X509Bundle.parse', ['ERR_BUNDLE_INVALID']);
      const derC = new Campaign('X509Bundle.parseDer', ['ERR_BUNDLE_INVALID']);
      for (let i = 0; i < N; i++) {
        const s = rng.chance(0.5) ? randomString(rng, 400) : `-----BEGIN CERTIFICATE-----\n${randomString(rng, 400)}\n-----END CERTIFICATE-----\n`;
        pemC.run(s, `random #${i}`, () => X509Bundle.parse(TD, s), roundTrips);
        const b = rng.bytes(rng.length(800));
        derC.run(b, `random #${i}`, () => X509Bundle.parseDer(TD, b), roundTrips);
      }
      pemC.finish(t);
      derC.finish(t);
    });
    it('mutated PEM bundles', (t) => {
      const rng = rngFor('X509Bundle.parse/mutations');
      const c = new Campaign('X509Bundle.parse', ['ERR_BUNDLE_INVALID']);
      for (let i = 0; i < N; i++) {
        const m = rng.chance(0.5)
          ? mutatePem(rng, bundlePem)
          : (() => {
              const d = mutateDer(rng, rng.pick([rootTree, certTrees[3]!]));
              return { out: pemOf('CERTIFICATE', [d.out, rootCa.certificate]), op: d.op };
            })();
        c.run(m.out, `${m.op} #${i}`, () => X509Bundle.parse(TD, m.out), roundTrips);
      }
      c.finish(t);
    });
    it('mutated DER bundles, truncation at every length, corruption of every TLV header', (t) => {
      const rng = rngFor('X509Bundle.parseDer/mutations');
      const c = new Campaign('X509Bundle.parseDer', ['ERR_BUNDLE_INVALID']);
      for (let i = 0; i < N; i++) {
        const { out, op } = rng.chance(0.5) ? mutateBytes(rng, bundleDer) : mutateDer(rng, rootTree);
        c.run(out, `${op} #${i}`, () => X509Bundle.parseDer(TD, out), roundTrips);
      }
      for (let len = 0; len < rootCa.certificate.length; len++) {
        const d = rootCa.certificate.subarray(0, len);
        c.run(d, `truncated to ${len}`, () => X509Bundle.parseDer(TD, d), roundTrips);
      }
      for (const { out, op } of headerCorruptions(rootCa.certificate)) c.run(out, op, () => X509Bundle.parseDer(TD, out), roundTrips);
      c.finish(t);
    });
  });

  describe('JwtBundle.parse', () => {
    const roundTrips = (b: JwtBundle): void => {
      assert.ok(b.trustDomain.equals(TD));
      for (const k of b.jwtAuthorities().values()) assert.equal(k.type, 'public');
      assert.ok(JwtBundle.parse(TD, b.marshal()).equals(b), 'marshal() round trip');
    };
    it('random text and random JSON-ish text', (t) => {
      const rng = rngFor('JwtBundle/random');
      const c = new Campaign('JwtBundle.parse', ['ERR_BUNDLE_INVALID']);
      for (let i = 0; i < N; i++) {
        const s = rng.chance(0.5) ? randomString(rng, 400) : `{"keys":[${randomString(rng, 300)}]}`;
        c.run(s, `random #${i}`, () => JwtBundle.parse(TD, s), roundTrips);
        const b = rng.bytes(rng.length(300));
        c.run(b, `random bytes #${i}`, () => JwtBundle.parse(TD, b), roundTrips);
      }
      c.finish(t);
    });
    it('JSON mutations of a valid JWKS (deleted, renamed, retyped members), text mutations, truncation at every length', (t) => {
      const rng = rngFor('JwtBundle/mutations');
      const c = new Campaign('JwtBundle.parse', ['ERR_BUNDLE_INVALID']);
      for (let i = 0; i < N * 1.5; i++) {
        const { out, op } = rng.chance(0.75) ? mutateJson(rng, jwtBundleJson) : mutateString(rng, jwtBundleJson);
        c.run(out, `${op} #${i}`, () => JwtBundle.parse(TD, out), roundTrips);
      }
      for (let len = 0; len < shortJwks.length; len++) {
        const s = shortJwks.slice(0, len);
        c.run(s, `truncated to ${len}`, () => JwtBundle.parse(TD, s), roundTrips);
      }
      c.finish(t);
    });
  });

  describe('SpiffeBundle.parse', () => {
    const roundTrips = (b: SpiffeBundle): void => {
      assert.ok(SpiffeBundle.parse(TD, b.marshal()).equals(b), 'marshal() round trip');
    };
    const parseSpiffeBundle = (c: Campaign, json: string, how: string): void => {
      c.run(json, how, () => SpiffeBundle.parse(TD, json), roundTrips);
    };
    it('random text', (t) => {
      const rng = rngFor('SpiffeBundle/random');
      const c = new Campaign('SpiffeBundle.parse', ['ERR_BUNDLE_INVALID']);
      for (let i = 0; i < N; i++) {
        const s = rng.chance(0.5) ? randomString(rng, 400) : `{"keys":[${randomString(rng, 300)}],"spiffe_sequence":${randomString(rng, 8)}}`;
        parseSpiffeBundle(c, s, `random #${i}`);
      }
      c.finish(t);
    });
    it('JSON mutations, mutated x5c certificates (some with a key at infinity), text mutations, truncation at every length', (t) => {
      const rng = rngFor('SpiffeBundle/mutations');
      const c = new Campaign('SpiffeBundle.parse', ['ERR_BUNDLE_INVALID']);
      const doc = JSON.parse(spiffeBundleJson) as { keys: { x5c?: string[] }[] };
      for (let i = 0; i < N * 1.5; i++) {
        let m: { out: string; op: string };
        const r = rng.int(4);
        if (r < 2) m = mutateJson(rng, rng.chance(0.2) ? infinityBundleJson : spiffeBundleJson);
        else if (r === 2) m = mutateString(rng, spiffeBundleJson);
        else {
          const d = structuredClone(doc);
          const [tree, der0] = rng.chance(0.25) ? [infinityCaTree, infinityCa] : [rootTree, rootCa.certificate];
          const der = rng.chance(0.5) ? mutateDer(rng, tree) : mutateBytes(rng, der0);
          d.keys[0]!.x5c = [der.out.toString('base64')];
          m = { out: JSON.stringify(d), op: `x5c:${der.op}` };
        }
        parseSpiffeBundle(c, m.out, `${m.op} #${i}`);
      }
      parseSpiffeBundle(c, infinityBundleJson, 'x5c key at infinity');
      const both = structuredClone(doc);
      both.keys.push({ ...JSON.parse(infinityBundleJson).keys[0] as { x5c: string[] } });
      parseSpiffeBundle(c, JSON.stringify(both), 'valid bundle plus an x5c key at infinity');
      for (let len = 0; len < shortSpiffeBundleJson.length; len++) {
        const s = shortSpiffeBundleJson.slice(0, len);
        parseSpiffeBundle(c, s, `truncated to ${len}`);
      }
      c.finish(t);
    });
  });

  describe('X509Svid.parse and parseRaw', () => {
    const sameId = (f: SvidFixture) => (s: X509Svid): void => {
      assert.ok(s.id.equals(SpiffeId.parse(s.id.toString())), 'the ID does not round-trip');
      assert.ok(s.certificates.length > 0);
      if (s.certificates[0]!.equals(f.svid.certificates[0]!)) assert.ok(s.id.equals(f.svid.id), 'same leaf, different ID');
    };
    /** An accepted SVID must also be usable: its key signs for its leaf. */
    const usable = (f: SvidFixture) => (s: X509Svid): void => {
      sameId(f)(s);
      assert.ok(keySignsForLeaf(s), 'accepted an SVID whose key does not sign for its leaf');
    };
    it('random text and bytes', (t) => {
      const rng = rngFor('X509Svid/random');
      const pemC = new Campaign('X509Svid.parse', ['ERR_X509SVID_INVALID']);
      const rawC = new Campaign('X509Svid.parseRaw', ['ERR_X509SVID_INVALID']);
      const f = svidFixtures[0]!;
      const raw = f.svid.marshalRaw();
      const certsPem = pemOf('CERTIFICATE', f.svid.certificates);
      for (let i = 0; i < N * 2; i++) {
        const s = rng.chance(0.5) ? randomString(rng, 400) : `-----BEGIN ${rng.pick(['CERTIFICATE', 'PRIVATE KEY'])}-----\n${randomString(rng, 300)}\n-----END ${rng.pick(['CERTIFICATE', 'PRIVATE KEY'])}-----\n`;
        const b = rng.bytes(rng.length(600));
        switch (i % 4) {
          case 0:
            pemC.run(s, `random certs #${i}`, () => X509Svid.parse(s, f.keyPems[0]!));
            break;
          case 1:
            pemC.run(s, `random key #${i}`, () => X509Svid.parse(certsPem, s));
            break;
          case 2:
            rawC.run(b, `random certs #${i}`, () => X509Svid.parseRaw(b, raw.privateKey));
            break;
          default:
            rawC.run(b, `random key #${i}`, () => X509Svid.parseRaw(raw.certificates, b));
        }
      }
      pemC.finish(t);
      rawC.finish(t);
    });
    it('mutated certificates with a valid key', (t) => {
      const rng = rngFor('X509Svid/mutated-certs');
      const pemC = new Campaign('X509Svid.parse', ['ERR_X509SVID_INVALID']);
      const rawC = new Campaign('X509Svid.parseRaw', ['ERR_X509SVID_INVALID']);
      for (let i = 0; i < N; i++) {
        const f = rng.pick(svidFixtures);
        const chain = [...f.svid.certificates];
        const at = rng.int(chain.length);
        const m = rng.chance(0.5) ? mutateDer(rng, parseDerTree(chain[at]!)) : mutateBytes(rng, chain[at]!);
        chain[at] = m.out;
        const keyPem = rng.pick(f.keyPems);
        if (rng.chance(0.5)) {
          const p = rng.chance(0.3) ? mutatePem(rng, pemOf('CERTIFICATE', f.svid.certificates)) : { out: pemOf('CERTIFICATE', chain), op: m.op };
          pemC.run(p.out, `${p.op} cert ${at} #${i}`, () => X509Svid.parse(p.out, keyPem), usable(f));
        } else {
          const raw = rng.chance(0.2) ? mutateBytes(rng, Buffer.concat(f.svid.certificates)) : { out: Buffer.concat(chain), op: m.op };
          rawC.run(raw.out, `${raw.op} cert ${at} #${i}`, () => X509Svid.parseRaw(raw.out, pkcs8(f.svid.privateKey)), usable(f));
        }
      }
      const f = svidFixtures[0]!;
      const raw = f.svid.marshalRaw();
      for (let len = 0; len < raw.certificates.length; len++) {
        const d = raw.certificates.subarray(0, len);
        rawC.run(d, `truncated to ${len}`, () => X509Svid.parseRaw(d, raw.privateKey));
      }
      pemC.finish(t);
      rawC.finish(t);
    });
    it('mutated keys (and keys Node cannot use) with valid certificates: typed errors, or a key that signs for the leaf', (t) => {
      const rng = rngFor('X509Svid/mutated-keys');
      const pemC = new Campaign('X509Svid.parse', ['ERR_X509SVID_INVALID']);
      const rawC = new Campaign('X509Svid.parseRaw', ['ERR_X509SVID_INVALID']);
      for (let i = 0; i < N; i++) {
        const k = rng.int(svidFixtures.length);
        const f = svidFixtures[k]!;
        if (rng.chance(0.5)) {
          const m = rng.chance(0.5) ? mutatePem(rng, rng.pick(f.keyPems)) : (() => {
            const d = rng.chance(0.5) ? mutateDer(rng, keyTrees[k]!) : mutateBytes(rng, keyDers[k]!);
            return { out: encodePem('PRIVATE KEY', d.out), op: d.op };
          })();
          pemC.run(m.out, `${m.op} key #${i}`, () => X509Svid.parse(pemOf('CERTIFICATE', f.svid.certificates), m.out), usable(f));
        } else {
          const m = rng.chance(0.5) ? mutateDer(rng, keyTrees[k]!) : mutateBytes(rng, keyDers[k]!);
          rawC.run(m.out, `${m.op} key #${i}`, () => X509Svid.parseRaw(Buffer.concat(f.svid.certificates), m.out), usable(f));
        }
      }
      const certs = Buffer.concat(directSvid.certificates);
      const certsPem = pemOf('CERTIFICATE', directSvid.certificates);
      const key = keyDers[0]!;
      for (let len = 0; len < key.length; len++) {
        const d = key.subarray(0, len);
        rawC.run(d, `key truncated to ${len}`, () => X509Svid.parseRaw(certs, d));
      }
      for (const { out, op } of headerCorruptions(key)) rawC.run(out, `key ${op}`, () => X509Svid.parseRaw(certs, out));
      // Keys Node imports but cannot use, as they are and mutated (their own stream, so the campaign above keeps its inputs).
      for (const [name, der, pem] of unusablePrivateKeys) {
        if (der !== undefined) assert.equal(rawC.run(der, name, () => X509Svid.parseRaw(certs, der)), 'rejected', `${name} (parseRaw)`);
        assert.equal(pemC.run(pem, name, () => X509Svid.parse(certsPem, pem)), 'rejected', `${name} (parse)`);
      }
      const urng = rngFor('X509Svid/unusable-keys');
      for (let i = 0; i < N / 5; i++) {
        const tree = urng.pick(unusableKeyTrees);
        const m = urng.chance(0.5) ? mutateDer(urng, tree) : mutateBytes(urng, encodeNode(tree));
        const f = svidFixtures[0]!;
        if (urng.chance(0.5)) rawC.run(m.out, `unusable key ${m.op} #${i}`, () => X509Svid.parseRaw(certs, m.out), usable(f));
        else {
          const pem = encodePem('PRIVATE KEY', m.out);
          pemC.run(pem, `unusable key ${m.op} #${i}`, () => X509Svid.parse(certsPem, pem), usable(f));
        }
      }
      pemC.finish(t);
      rawC.finish(t);
    });
  });

  describe('verifyX509Svid', () => {
    it('mutated chains (some with keys Node cannot use): documented errors, or success only when every signed byte is intact', (t) => {
      const rng = rngFor('verifyX509Svid');
      const c = new Campaign('verifyX509Svid', ['ERR_X509SVID_INVALID', 'ERR_X509SVID_UNTRUSTED']);
      const badSpkis = [infinitySpki(), offCurveSpki()];
      for (let i = 0; i < N * 2; i++) {
        const f = rng.pick(svidFixtures);
        const original = f.svid.certificates;
        let chain: Buffer[] = [...original];
        let op: string;
        const r = rng.int(10);
        if (r < 4) {
          const at = rng.int(chain.length);
          const m = mutateDer(rng, parseDerTree(chain[at]!));
          chain[at] = m.out;
          op = `${m.op} cert ${at}`;
        } else if (r < 8) {
          const at = rng.int(chain.length);
          const m = mutateBytes(rng, chain[at]!);
          chain[at] = m.out;
          op = `${m.op} cert ${at}`;
        } else {
          const [name, edit] = rng.pick<[string, (ch: Buffer[]) => Buffer[]]>([
            ['drop', (ch) => ch.filter((_, j) => j !== rng.int(ch.length))],
            ['duplicate', (ch) => [...ch, rng.pick(ch)]],
            ['reverse', (ch) => [...ch].reverse()],
            ['append-root', (ch) => [...ch, ...f.bundle.x509Authorities()]],
            ['append-random', (ch) => [...ch, rng.bytes(rng.length(300))]],
            ['only-root', () => f.bundle.x509Authorities()],
            ['empty', () => []],
            ['unusable-key', (ch) => {
              const at = rng.int(ch.length);
              return ch.map((d, j) => (j === at ? withSpki(d, rng.pick(badSpkis)) : d));
            }],
            ['add-unusable', (ch) => {
              const at = 1 + rng.int(ch.length);
              return [...ch.slice(0, at), rng.pick(unusableKeyCerts)[1], ...ch.slice(at)];
            }],
          ]);
          chain = edit(chain);
          op = `chain:${name}`;
        }
        const tbsOf = (d: Uint8Array): Buffer => new Certificate(d).tbs;
        // A peer may also send the bundle's own root as an intermediate: leaf → root → root is a valid path.
        const originalTbs = [...original, ...f.bundle.x509Authorities()].map(tbsOf);
        c.run(Buffer.concat(chain), `${op} #${i} (input is the concatenated chain)`, () => verifyX509Svid(chain, f.bundle, { time: NOW }), (v) => {
          assert.ok(v.id.equals(f.svid.id), `verified a different ID: ${v.id.toString()}`);
          for (const vc of v.verifiedChains) {
            assert.ok(f.bundle.hasX509Authority(vc[vc.length - 1]!), 'chain does not end at a bundle authority');
            for (const cert of vc.slice(0, -1)) {
              const tbs = tbsOf(cert);
              assert.ok(originalTbs.some((o) => o.equals(tbs)), 'a verified certificate has signed bytes that neither the original chain nor the bundle had');
            }
          }
        });
      }
      c.finish(t);
    });
  });

  describe('JwtSvid.parseAndValidate', () => {
    const accepted = (resigned: boolean, token: string) => (s: JwtSvid): void => {
      if (!resigned) assert.equal(s.token, validToken, 'accepted a token whose signed bytes changed');
      assert.ok(s.audience.includes(AUDIENCE), 'accepted a token without the expected audience');
      assert.ok(s.expiresAt.getTime() > NOW.getTime(), 'accepted an expired token');
      assert.equal(s.id.toString(), (JSON.parse(b64urlJson(token.split('.')[1]!)) as { sub: unknown }).sub);
    };
    const codes: ErrorCode[] = ['ERR_JWTSVID_INVALID', 'ERR_JWTSVID_UNTRUSTED', 'ERR_JWTSVID_EXPIRED', 'ERR_JWTSVID_AUDIENCE'];
    it('random tokens', (t) => {
      const rng = rngFor('JwtSvid/random');
      const c = new Campaign('JwtSvid.parseAndValidate', codes);
      for (let i = 0; i < N; i++) {
        const s = rng.chance(0.5)
          ? randomString(rng, 400)
          : [0, 1, 2].map(() => Buffer.from(randomString(rng, 100)).toString('base64url')).join('.');
        c.run(s, `random #${i}`, () => JwtSvid.parseAndValidate(s, jwtSource, AUDIENCE, { time: NOW }), accepted(false, s));
      }
      c.finish(t);
    });
    it('mutated tokens, and mutated headers and claims re-signed so claim checks are reached', (t) => {
      const rng = rngFor('JwtSvid/mutations');
      const c = new Campaign('JwtSvid.parseAndValidate', codes);
      const [h, p] = validToken.split('.').slice(0, 2).map(b64urlJson) as [string, string];
      for (let i = 0; i < N * 2; i++) {
        let token: string;
        let op: string;
        let resigned = false;
        const r = rng.int(10);
        if (r < 3) ({ out: token, op } = mutateString(rng, validToken));
        else if (r < 4) {
          const parts = validToken.split('.');
          const edits: [string, () => string[]][] = [
            ['drop-part', () => parts.filter((_, j) => j !== rng.int(3))],
            ['extra-part', () => [...parts, parts[rng.int(3)]!]],
            ['swap-parts', () => [parts[1]!, parts[0]!, parts[2]!]],
            ['empty-signature', () => [parts[0]!, parts[1]!, '']],
            ['padded', () => parts.map((x) => x + '=')],
            ['standard-base64', () => parts.map((x) => Buffer.from(x, 'base64url').toString('base64'))],
          ];
          const [name, edit] = rng.pick(edits);
          token = edit().join('.');
          op = `token:${name}`;
        } else {
          resigned = true;
          const mutateHeader = r < 6;
          const m = mutateHeader ? mutateJson(rng, h) : mutateJson(rng, p);
          token = mutateHeader ? signRawJwt(m.out, p) : signRawJwt(h, m.out);
          op = `${mutateHeader ? 'header' : 'claims'} ${m.op} (re-signed)`;
        }
        c.run(token, `${op} #${i}`, () => JwtSvid.parseAndValidate(token, jwtSource, AUDIENCE, { time: NOW }), accepted(resigned, token));
      }
      for (let len = 0; len < validToken.length; len++) {
        const s = validToken.slice(0, len);
        c.run(s, `truncated to ${len}`, () => JwtSvid.parseAndValidate(s, jwtSource, AUDIENCE, { time: NOW }));
      }
      c.finish(t);
    });
  });

  describe('hang guard: one call on 1 MiB of random input returns or throws typed', () => {
    const rng = rngFor('hang-guard');
    const bytes = rng.bytes(MIB);
    const text = bytes.toString('latin1');
    const b64 = bytes.toString('base64').slice(0, MIB);
    const guards: [string, Input, () => unknown][] = [
      ['SpiffeId.parse', text, () => SpiffeId.parse(text)],
      ['SpiffeId.parse (spiffe:// + 1 MiB path)', '', () => SpiffeId.parse('spiffe://example.org' + '/ab'.repeat(MIB / 3))],
      ['TrustDomain.parse', text, () => TrustDomain.parse(text)],
      ['TrustDomain.parse (1 MiB of name characters)', '', () => TrustDomain.parse('a'.repeat(MIB))],
      ['decodePem', bytes, () => decodePem(bytes)],
      ['decodePem (1 MiB base64 body)', '', () => decodePem(`-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`)],
      ['new Certificate', bytes, () => new Certificate(bytes)],
      ['new Certificate (1 MiB inside a SEQUENCE)', '', () => new Certificate(Buffer.concat([Buffer.from([0x30]), encodeLength(MIB), bytes]))],
      ['X509Bundle.parse', bytes, () => X509Bundle.parse(TD, bytes)],
      ['X509Bundle.parseDer', bytes, () => X509Bundle.parseDer(TD, bytes)],
      ['X509Bundle.parseDer (1 MiB of one repeated authority)', '', () => X509Bundle.parseDer(TD, Buffer.concat(Array(Math.floor(MIB / rootCa.certificate.length)).fill(rootCa.certificate) as Buffer[]))],
      ['JwtBundle.parse', bytes, () => JwtBundle.parse(TD, bytes)],
      ['JwtBundle.parse (JSON nested 500 000 deep)', '', () => JwtBundle.parse(TD, `{"keys":${'['.repeat(500_000)}${']'.repeat(500_000)}}`)],
      ['SpiffeBundle.parse', bytes, () => SpiffeBundle.parse(TD, bytes)],
      ['SpiffeBundle.parse (JSON nested 500 000 deep)', '', () => SpiffeBundle.parse(TD, `{"keys":[],"x":${'['.repeat(500_000)}${']'.repeat(500_000)}}`)],
      ['X509Svid.parse', bytes, () => X509Svid.parse(bytes, bytes)],
      ['X509Svid.parseRaw', bytes, () => X509Svid.parseRaw(bytes, bytes)],
      ['verifyX509Svid', bytes, () => verifyX509Svid([bytes], rootCa.x509Bundle(), { time: NOW })],
      ['JwtSvid.parseAndValidate', text, () => JwtSvid.parseAndValidate(text, jwtSource, AUDIENCE, { time: NOW })],
    ];
    for (const [name, input, fn] of guards) {
      it(name, (t) => {
        const c = new Campaign(name);
        const start = performance.now();
        c.run(input, '1 MiB', fn);
        const ms = performance.now() - start;
        t.diagnostic(`${name}: ${ms.toFixed(1)} ms`);
        c.finish(t);
        assert.ok(ms < HANG_LIMIT_MS, `${name} took ${ms.toFixed(0)} ms on 1 MiB (limit ${HANG_LIMIT_MS} ms)`);
      });
    }
  });

  describe('regressions: defects this suite found, now fixed', () => {
    /** Asserts `fn` throws an instance of `type` with `code`, and returns it. */
    const throwsTyped = <E extends Error>(fn: () => unknown, type: abstract new (...args: never[]) => E, code: ErrorCode, what: string): E => {
      let caught: unknown;
      try {
        fn();
      } catch (e) {
        caught = e;
      }
      assert.ok(caught !== undefined, `${what}: accepted, expected ${type.name} ${code}`);
      assert.ok(caught instanceof type && isSpiffeError(caught, code), `${what}: expected ${type.name} ${code}, got ${describeError(caught)}`);
      return caught;
    };

    // The process-abort shapes (point at infinity, over-long scalar). If one of these aborts the
    // process, this file reports nothing; test/integration/abort-regression.test.ts names the case.
    it('Certificate.publicKey rejects EC keys Node cannot use (point at infinity, point off the curve) with ERR_CERTIFICATE_INVALID', () => {
      for (const [name, der] of unusableKeyCerts) {
        const cert = new Certificate(der);
        throwsTyped(() => cert.publicKey, EncodingError, 'ERR_CERTIFICATE_INVALID', name);
        throwsTyped(() => cert.publicKey, EncodingError, 'ERR_CERTIFICATE_INVALID', `${name} (second read)`);
      }
    });

    it('SpiffeBundle.parse rejects a ~0.5 KB bundle whose x5c CA key is the point at infinity with BundleError ERR_BUNDLE_INVALID', (t) => {
      t.diagnostic(`bundle: ${infinityBundleJson.length} bytes`);
      throwsTyped(() => SpiffeBundle.parse(TD, infinityBundleJson), BundleError, 'ERR_BUNDLE_INVALID', 'SpiffeBundle.parse');
    });

    it('X509Svid.parseRaw and parse reject EC private keys Node cannot use with ERR_X509SVID_INVALID', () => {
      const certsPem = pemOf('CERTIFICATE', directSvid.certificates);
      for (const [name, der, pem] of unusablePrivateKeys) {
        if (der !== undefined) throwsTyped(() => X509Svid.parseRaw(Buffer.concat(directSvid.certificates), der), X509SvidError, 'ERR_X509SVID_INVALID', `${name} (parseRaw)`);
        throwsTyped(() => X509Svid.parse(certsPem, pem), X509SvidError, 'ERR_X509SVID_INVALID', `${name} (parse)`);
      }
    });

    it('X509Svid.parseRaw/parse reject a key whose private scalar was tampered with but whose embedded public key is intact', () => {
      const certs = Buffer.concat(directSvid.certificates);
      const certsPem = pemOf('CERTIFICATE', directSvid.certificates);
      // PKCS#8 and SEC1 encodings of a P-256 key both hold ... 02 01 01 04 20 <32-byte private scalar> ... a1 44 03 42 00 04 <X> <Y>.
      const encodings: [string, Buffer, (key: Buffer) => X509Svid][] = [
        ['PKCS#8 DER (parseRaw)', keyDers[0]!, (key) => X509Svid.parseRaw(certs, key)],
        ['PKCS#8 PEM (parse)', keyDers[0]!, (key) => X509Svid.parse(certsPem, encodePem('PRIVATE KEY', key))],
        ['SEC1 PEM (parse)', directSvid.privateKey.export({ type: 'sec1', format: 'der' }) as Buffer, (key) => X509Svid.parse(certsPem, encodePem('EC PRIVATE KEY', key))],
      ];
      for (const [name, original, parse] of encodings) {
        const at = original.indexOf(Buffer.from([0x02, 0x01, 0x01, 0x04, 0x20])) + 5;
        assert.ok(at > 5, `${name}: private scalar not found`);
        assert.ok(parse(original).id.equals(directSvid.id), `${name}: the untampered key is refused`);
        for (let i = 0; i < 32; i++) {
          const key = Buffer.from(original);
          key[at + i]! ^= 0x01;
          const e = throwsTyped(() => parse(key), X509SvidError, 'ERR_X509SVID_INVALID', `${name} with scalar byte ${i} ^= 1 (key ${key.toString('hex')})`);
          assert.match(e.message, /private key does not match certificate public key/, name);
        }
      }
    });

    it('verifyX509Svid reports an issuer key Node cannot use as X509SvidError ERR_X509SVID_UNTRUSTED/INVALID, not EncodingError ERR_CERTIFICATE_INVALID', (t) => {
      const [leaf, inter] = chainedSvid.certificates as [Buffer, Buffer];
      const check = (name: string, chain: Buffer[], bundle: X509Bundle): void => {
        let caught: unknown;
        try {
          verifyX509Svid(chain, bundle, { time: NOW });
        } catch (e) {
          caught = e;
        }
        assert.ok(caught !== undefined, `${name}: verified`);
        assert.ok(
          caught instanceof X509SvidError && (isSpiffeError(caught, 'ERR_X509SVID_UNTRUSTED') || isSpiffeError(caught, 'ERR_X509SVID_INVALID')),
          `${name}: expected X509SvidError ERR_X509SVID_UNTRUSTED or ERR_X509SVID_INVALID, got ${describeError(caught)}`,
        );
        assert.match(caught.message, /public key/, `${name}: the reason is lost`);
        t.diagnostic(`${name}: ${caught.code}: ${caught.message}`);
      };
      for (const [name, spki] of [['intermediate key off the curve', offCurveSpki()], ['intermediate key at infinity', infinitySpki()]] as const) {
        const bad = withSpki(inter, spki);
        throwsTyped(() => new Certificate(bad).publicKey, EncodingError, 'ERR_CERTIFICATE_INVALID', name);
        check(name, [leaf, bad], rootCa.x509Bundle());
      }
      // A bundle authority (say, from a federation endpoint's PEM bundle) whose key is the point at infinity.
      const underInfinity = buildCertificate({
        issuer: new Certificate(infinityCa).subjectRaw,
        subject: encodeName([{ oid: '2.5.4.10', value: 'leaf' }]),
        notBefore: new Date(NOW.getTime() - 60_000),
        notAfter: new Date(NOW.getTime() + 3_600_000),
        publicKey: createPublicKey(generateKey('ec-p256')),
        signingKey: generateKey('ec-p256'),
        extensions: [basicConstraintsExt(false), keyUsageExt(KeyUsage.digitalSignature), subjectAltNameExt({ uris: ['spiffe://example.org/x'] })],
      });
      check('bundle authority key at infinity', [underInfinity], new X509Bundle(TD, [infinityCa]));
    });

    describe('verifyX509Svid bounds its chain search (Go: CVE-2018-16875)', () => {
      const validity = { notBefore: new Date(NOW.getTime() - 60_000), notAfter: new Date(NOW.getTime() + 3_600_000) };
      const loopName = encodeName([{ oid: '2.5.4.10', value: 'loop' }]);
      const caExtensions = [basicConstraintsExt(true), keyUsageExt(KeyUsage.keyCertSign)];
      /** A leaf and `n` self-issued CA certificates sharing one name and key, so that each signs every other. */
      const selfIssuedLoop = (n: number): Certificate[] => {
        const signer = generateKey('ec-p256');
        const loops = Array.from({ length: n }, () =>
          buildCertificate({ issuer: loopName, subject: loopName, ...validity, publicKey: createPublicKey(signer), signingKey: signer, extensions: caExtensions }));
        const leaf = buildCertificate({ issuer: loopName, subject: encodeName([{ oid: '2.5.4.10', value: 'leaf' }]), ...validity,
          publicKey: createPublicKey(generateKey('ec-p256')), signingKey: signer,
          extensions: [basicConstraintsExt(false), keyUsageExt(KeyUsage.digitalSignature), subjectAltNameExt({ uris: ['spiffe://example.org/x'] })] });
        return [leaf, ...loops].map((d) => new Certificate(d));
      };
      /** Counts reads of `prop` on `certs`. */
      const countReads = (certs: readonly Certificate[], prop: 'publicKey' | 'issuerRaw'): { count: number } => {
        const counter = { count: 0 };
        for (const cert of certs) {
          const value: unknown = cert[prop];
          Object.defineProperty(cert, prop, {
            configurable: true,
            get: () => {
              counter.count++;
              return value;
            },
          });
        }
        return counter;
      };
      /** Counts signature checks: the verifier reads an issuer's key once per check it makes. */
      const countKeyReads = (certs: readonly Certificate[]): { count: number } => countReads(certs, 'publicKey');
      const rejects = (t: TestContext, what: string, certs: Certificate[], bundle: X509Bundle, keyHolders: readonly Certificate[], code: ErrorCode): void => {
        const reads = countKeyReads(keyHolders);
        // Each candidate issuer is matched by name against the issuer name of the chain built so far, so these
        // reads measure the partial chains explored (at most 1000, with 10 candidates each: about 10 000 reads).
        const nameReads = countReads(certs, 'issuerRaw');
        const start = performance.now();
        assert.throws(() => verifyParsed(certs, bundle, { time: NOW }), (e: unknown) => isSpiffeError(e, code), `${what}: expected ${code}`);
        const ms = performance.now() - start;
        t.diagnostic(`${what}: ${code} after ${reads.count} signature checks and ${nameReads.count} issuer-name reads in ${ms.toFixed(1)} ms`);
        assert.ok(reads.count <= 100, `${what}: ${reads.count} signature checks (${ms.toFixed(0)} ms); the verifier must stop at 100`);
        assert.ok(nameReads.count <= 50_000, `${what}: ${nameReads.count} issuer-name reads (${ms.toFixed(0)} ms): the search explores too many partial chains (limit 1000)`);
        assert.ok(ms < HANG_LIMIT_MS, `${what}: took ${ms.toFixed(0)} ms (limit ${HANG_LIMIT_MS} ms)`);
      };

      /**
       * Set once the 7-certificate case passes. An unbounded search fails that case in about a second, but
       * would run for minutes on the larger ones, so they refuse to start without it.
       */
      let bounded = false;
      const requireBounded = (): void => {
        assert.ok(bounded, 'not run: the 7-certificate case failed, and against an unbounded search this one would run for minutes');
      };

      it('a leaf and 6 self-issued CAs that sign each other (the unbounded search took ~1 s) is rejected fast', (t) => {
        const certs = selfIssuedLoop(6);
        rejects(t, '7-certificate chain', certs, rootCa.x509Bundle(), certs.slice(1), 'ERR_X509SVID_UNTRUSTED');
        bounded = true;
      });

      it('the same with 9 self-issued CAs, the longest chain accepted (the unbounded search took minutes)', (t) => {
        requireBounded();
        const certs = selfIssuedLoop(9);
        rejects(t, '10-certificate chain', certs, rootCa.x509Bundle(), certs.slice(1), 'ERR_X509SVID_UNTRUSTED');
      });

      it('a chain of 11 certificates is refused as ERR_X509SVID_INVALID before any signature check', (t) => {
        const certs = selfIssuedLoop(10);
        const reads = countKeyReads(certs.slice(1));
        assert.throws(() => verifyParsed(certs, rootCa.x509Bundle(), { time: NOW }), (e: unknown) => isSpiffeError(e, 'ERR_X509SVID_INVALID') && /at most 10/.test((e as Error).message));
        t.diagnostic(`11-certificate chain: ${reads.count} signature checks`);
        assert.equal(reads.count, 0);
      });

      it('at most 100 signature checks when 20 bundle roots share the name every certificate in the chain is issued by', (t) => {
        requireBounded();
        const certs = selfIssuedLoop(9);
        const roots = Array.from({ length: 20 }, () => {
          const k = generateKey('ec-p256');
          return new Certificate(buildCertificate({ issuer: loopName, subject: loopName, ...validity, publicKey: createPublicKey(k), signingKey: k, extensions: caExtensions }));
        });
        rejects(t, '10-certificate chain, 20 candidate roots', certs, new X509Bundle(TD, roots), [...certs.slice(1), ...roots], 'ERR_X509SVID_UNTRUSTED');
      });
    });

    it('JwtSvid.parseAndValidate and parseInsecure handle claims nested deeper than the call stack: typed error or success, never RangeError', (t) => {
      const exp = NOW.getTime() / 1000 + 300;
      const deep: [string, number, (depth: number) => string][] = [
        ['arrays', 20_000, (d) => `${'['.repeat(d)}${']'.repeat(d)}`],
        ['objects', 7_000, (d) => `${'{"a":'.repeat(d)}1${'}'.repeat(d)}`],
      ];
      for (const [kind, depth, nest] of deep) {
        const payload = `{"sub":"spiffe://example.org/web","aud":["${AUDIENCE}"],"exp":${exp},"x":${nest(depth)}}`;
        const token = signRawJwt(JSON.stringify({ alg: 'ES256', kid: rootCa.jwtKeyId, typ: 'JWT' }), payload);
        assert.ok(token.length <= 64 * 1024, `the ${kind} token (${token.length} chars) is over the 64 KiB limit, so it tests nothing`);
        const calls: [string, () => JwtSvid][] = [
          ['parseAndValidate', () => JwtSvid.parseAndValidate(token, jwtSource, AUDIENCE, { time: NOW })],
          ['parseInsecure', () => JwtSvid.parseInsecure(token, AUDIENCE, { time: NOW })],
        ];
        for (const [name, call] of calls) {
          let svid: JwtSvid;
          try {
            svid = call();
          } catch (e) {
            assert.ok(!(e instanceof RangeError), `${name}, ${kind} ${depth} deep: ${describeError(e)}`);
            assert.ok(isSpiffeError(e), `${name}, ${kind} ${depth} deep: ${describeError(e)}`);
            t.diagnostic(`${name}, ${kind} ${depth} deep (${token.length} chars): ${e.code}`);
            continue;
          }
          // Accepted: the claims must be frozen all the way down.
          let v: unknown = svid.claims['x'];
          let levels = 0;
          while (v !== null && typeof v === 'object') {
            assert.ok(Object.isFrozen(v), `${name}, ${kind}: level ${levels} of the claim is not frozen`);
            v = Array.isArray(v) ? v[0] : (v as Record<string, unknown>)['a'];
            levels++;
          }
          assert.equal(levels, depth, `${name}, ${kind}: the claim lost levels`);
          t.diagnostic(`${name}, ${kind} ${depth} deep (${token.length} chars): accepted, frozen to the bottom`);
        }
      }
    });

    it('decodeTime reads GeneralizedTime years 0000–0099 as written, not as 1900–1999', () => {
      const decode = (tag: number, text: string): Date => {
        const buf = Buffer.concat([Buffer.from([tag, text.length]), Buffer.from(text, 'latin1')]);
        return decodeTime(buf, { tag, start: 0, content: 2, end: buf.length }, 'test time');
      };
      const GT = 0x18;
      const UT = 0x17;
      assert.equal(decode(GT, '00500101000000Z').toISOString(), '0050-01-01T00:00:00.000Z');
      assert.equal(decode(GT, '00000229120000Z').toISOString(), '0000-02-29T12:00:00.000Z');
      assert.equal(decode(GT, '00991231235959Z').toISOString(), '0099-12-31T23:59:59.000Z');
      assert.equal(decode(GT, '01000101000000Z').toISOString(), '0100-01-01T00:00:00.000Z');
      assert.equal(decode(GT, '20500101000000Z').toISOString(), '2050-01-01T00:00:00.000Z');
      assert.equal(decode(UT, '500101000000Z').toISOString(), '1950-01-01T00:00:00.000Z');
      assert.equal(decode(UT, '491231235959Z').toISOString(), '2049-12-31T23:59:59.000Z');
      // 0050 is not a leap year (2000, used internally as a scratch year, is).
      assert.throws(() => decode(GT, '00500229000000Z'), DerError);
      // End to end: a certificate valid from year 50 to year 99.
      const k = generateKey('ec-p256');
      const der = buildCertificate({ issuer: encodeName([{ oid: '2.5.4.10', value: 'old' }]), subject: encodeName([{ oid: '2.5.4.10', value: 'old' }]),
        notBefore: new Date('0050-01-01T00:00:00Z'), notAfter: new Date('0099-12-31T23:59:59Z'), publicKey: createPublicKey(k), signingKey: k,
        extensions: [basicConstraintsExt(true), keyUsageExt(KeyUsage.keyCertSign)] });
      const cert = new Certificate(der);
      assert.equal(cert.notBefore.toISOString(), '0050-01-01T00:00:00.000Z');
      assert.equal(cert.notAfter.toISOString(), '0099-12-31T23:59:59.000Z');
    });

    it('Certificate.subject and .issuer report a malformed name as EncodingError ERR_CERTIFICATE_INVALID, not a raw DerError', () => {
      // SEQUENCE { SET { INTEGER 1 } }: a well-formed TLV where a Name's AttributeTypeAndValue should be.
      const badName = Buffer.from('30053103020101', 'hex');
      const k = generateKey('ec-p256');
      const der = buildCertificate({ issuer: badName, subject: badName, notBefore: new Date(NOW.getTime() - 60_000), notAfter: new Date(NOW.getTime() + 3_600_000),
        publicKey: createPublicKey(k), signingKey: k, extensions: [basicConstraintsExt(true), keyUsageExt(KeyUsage.keyCertSign)] });
      const cert = new Certificate(der);
      throwsTyped(() => cert.subject, EncodingError, 'ERR_CERTIFICATE_INVALID', 'subject');
      throwsTyped(() => cert.issuer, EncodingError, 'ERR_CERTIFICATE_INVALID', 'issuer');
    });
  });
});

/** Parses `s` with SpiffeId.parse and compares with the reference. */
function checkId(c: Campaign, s: string, how: string): void {
  const expected = referenceId(s);
  const outcome = c.run(s, how, () => SpiffeId.parse(s), (id) => {
    assert.ok(expected !== undefined, 'accepted an ID the reference rejects');
    assert.equal(id.trustDomain.name, expected.td);
    assert.equal(id.path, expected.path);
    assert.equal(id.toString(), s, 'toString() does not round-trip');
  });
  if (outcome === 'rejected' && expected !== undefined) c.fail(s, how, 'rejected an ID the reference accepts');
}

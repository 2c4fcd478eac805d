/**
 * The @tessera/ecdsa-verify addon against node:crypto: for valid signatures
 * (P-256 and P-384, SHA-256/384/512), every single-byte corruption of data,
 * signature and key, non-canonical DER, high-S signatures, points off the
 * curve, and a seeded random campaign, both give the same verdict (the
 * addon's BAD_KEY where node:crypto cannot import the key). The sync and
 * thread-pool forms agree; the thread-pool form copies its inputs; malformed
 * arguments are typed errors, from the wrapper and from the binding itself.
 *
 * Reproducing the campaign: TESSERA_FUZZ_SEED=<uint32> (printed in the
 * suite name).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import * as ecdsa from '@tessera/ecdsa-verify';
import type { EcdsaCheck, EcdsaCurve, EcdsaHash } from '@tessera/ecdsa-verify';

const SEED = process.env['TESSERA_FUZZ_SEED'] !== undefined ? Number(process.env['TESSERA_FUZZ_SEED']) >>> 0 : randomBytes(4).readUInt32BE(0);

/** mulberry32, for reproducible mutations. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ORDER: Record<EcdsaCurve, bigint> = {
  'P-256': 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  'P-384': 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
};

interface Signed {
  readonly check: EcdsaCheck;
  readonly publicKey: KeyObject;
}

function signed(curve: EcdsaCurve, hash: EcdsaHash, size = 300): Signed {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
  const data = randomBytes(size);
  const point = publicKey.export({ format: 'der', type: 'spki' }).subarray(curve === 'P-256' ? -65 : -97);
  return { check: { curve, hash, point: Buffer.from(point), data, signature: sign(hash, data, privateKey) }, publicKey };
}

/** What node:crypto says of a check: VALID / BAD_SIGNATURE, or BAD_KEY when the point cannot be imported. */
function nodeVerdict(c: EcdsaCheck): number {
  const size = c.curve === 'P-256' ? 32 : 48;
  let key: KeyObject;
  try {
    if (c.point.length !== 1 + 2 * size || c.point[0] !== 4) return ecdsa.BAD_KEY;
    const b = Buffer.from(c.point);
    key = createPublicKey({ key: { kty: 'EC', crv: c.curve, x: b.subarray(1, 1 + size).toString('base64url'), y: b.subarray(1 + size).toString('base64url') }, format: 'jwk' });
  } catch {
    return ecdsa.BAD_KEY;
  }
  try {
    return verify(c.hash, c.data, key, c.signature) ? ecdsa.VALID : ecdsa.BAD_SIGNATURE;
  } catch {
    return ecdsa.BAD_SIGNATURE;
  }
}

/** Both forms of the addon against node:crypto, check by check. */
async function assertAgree(checks: readonly EcdsaCheck[], what: string): Promise<Uint8Array> {
  const sync = ecdsa.verifyEcdsa(checks);
  const async = await ecdsa.verifyEcdsaAsync(checks);
  assert.equal(sync.length, checks.length);
  assert.deepEqual(async, sync, `${what}: sync and thread-pool forms agree`);
  checks.forEach((c, i) => assert.equal(sync[i], nodeVerdict(c), `${what}, check ${i}: addon ${sync[i]} vs node:crypto ${nodeVerdict(c)}`));
  return sync;
}

function flip(b: Uint8Array, at: number, mask = 0x01): Buffer {
  const out = Buffer.from(b);
  out[at]! ^= mask;
  return out;
}

/** DER ECDSA-Sig-Value of (r, s), minimal unless told otherwise. */
function derSig(r: bigint, s: bigint, opts: { padR?: boolean; longLength?: boolean; trailing?: boolean } = {}): Buffer {
  const int = (v: bigint, pad: boolean): Buffer => {
    let hex = v.toString(16);
    if (hex.length % 2) hex = '0' + hex;
    let b = Buffer.from(hex, 'hex');
    if (b[0]! & 0x80) b = Buffer.concat([Buffer.of(0), b]);
    if (pad) b = Buffer.concat([Buffer.of(0), b]);
    return Buffer.concat([Buffer.of(0x02, b.length), b]);
  };
  const body = Buffer.concat([int(r, opts.padR ?? false), int(s, false)]);
  const head = opts.longLength ? Buffer.of(0x30, 0x81, body.length) : Buffer.of(0x30, body.length);
  return Buffer.concat([head, body, opts.trailing ? Buffer.of(0) : Buffer.alloc(0)]);
}

function rsOf(sig: Uint8Array): [bigint, bigint] {
  const b = Buffer.from(sig);
  let at = b[1]! & 0x80 ? 3 : 2;
  const rLen = b[at + 1]!;
  const r = BigInt('0x' + b.subarray(at + 2, at + 2 + rLen).toString('hex'));
  at += 2 + rLen;
  const sLen = b[at + 1]!;
  const s = BigInt('0x' + b.subarray(at + 2, at + 2 + sLen).toString('hex'));
  return [r, s];
}

describe('@tessera/ecdsa-verify', () => {
  test('the addon is built and loads (npm ci builds it; nothing here may skip)', () => {
    assert.equal(ecdsa.available, true, ecdsa.loadError?.message);
    assert.match(ecdsa.addonPath ?? '', /ecdsa_verify\.node$/);
  });

  test('valid signatures on both curves with every digest verify', async () => {
    const checks = (['P-256', 'P-384'] as const).flatMap((curve) => (['sha256', 'sha384', 'sha512'] as const).map((hash) => signed(curve, hash).check));
    checks.push(signed('P-256', 'sha256', 0).check, signed('P-384', 'sha384', 70_000).check); // empty and large data
    const r = await assertAgree(checks, 'valid');
    assert.deepEqual([...r], checks.map(() => ecdsa.VALID));
  });

  test('every single-byte change of data, signature or point is caught as node:crypto catches it', async () => {
    for (const curve of ['P-256', 'P-384'] as const) {
      const { check } = signed(curve, curve === 'P-256' ? 'sha256' : 'sha384', 64);
      const mutants: EcdsaCheck[] = [];
      for (let i = 0; i < check.data.length; i++) mutants.push({ ...check, data: flip(check.data, i) });
      for (let i = 0; i < check.signature.length; i++) mutants.push({ ...check, signature: flip(check.signature, i) }, { ...check, signature: flip(check.signature, i, 0x80) });
      for (let i = 0; i < check.point.length; i++) mutants.push({ ...check, point: flip(check.point, i) });
      const r = await assertAgree(mutants, `${curve} mutants`);
      assert.equal(r.filter((v) => v === ecdsa.VALID).length, 0, 'no corruption verifies');
      assert.ok(r.filter((v) => v === ecdsa.BAD_KEY).length >= check.point.length - 1, 'a changed coordinate leaves the curve');
    }
  });

  test('only canonical DER signatures verify; high-S verifies (as with OpenSSL and Go)', async () => {
    for (const curve of ['P-256', 'P-384'] as const) {
      const { check } = signed(curve, 'sha256');
      const [r, s] = rsOf(check.signature);
      const variants = {
        canonical: derSig(r, s),
        highS: derSig(r, ORDER[curve] - s),
        paddedR: derSig(r, s, { padR: true }),
        longLength: derSig(r, s, { longLength: true }),
        trailingByte: derSig(r, s, { trailing: true }),
        sEqualsOrder: derSig(r, ORDER[curve]),
        zeroR: derSig(0n, s),
        truncated: check.signature.subarray(0, check.signature.length - 1),
        empty: Buffer.alloc(0),
        rawRS: Buffer.concat([Buffer.from(r.toString(16).padStart(curve === 'P-256' ? 64 : 96, '0'), 'hex'), Buffer.from(s.toString(16).padStart(curve === 'P-256' ? 64 : 96, '0'), 'hex')]),
      };
      const names = Object.keys(variants);
      const got = await assertAgree(Object.values(variants).map((signature) => ({ ...check, signature })), `${curve} encodings`);
      const verdict = Object.fromEntries(names.map((n, i) => [n, got[i]]));
      assert.deepEqual(verdict, {
        canonical: ecdsa.VALID,
        highS: ecdsa.VALID,
        paddedR: ecdsa.BAD_SIGNATURE,
        longLength: ecdsa.BAD_SIGNATURE,
        trailingByte: ecdsa.BAD_SIGNATURE,
        sEqualsOrder: ecdsa.BAD_SIGNATURE,
        zeroR: ecdsa.BAD_SIGNATURE,
        truncated: ecdsa.BAD_SIGNATURE,
        empty: ecdsa.BAD_SIGNATURE,
        rawRS: ecdsa.BAD_SIGNATURE,
      });
    }
  });

  test('points: off the curve, compressed, infinity, wrong length or the other curve are BAD_KEY', async () => {
    const { check } = signed('P-256', 'sha256');
    const compressed = Buffer.concat([Buffer.of(2 + (check.point[64]! & 1)), check.point.subarray(1, 33)]);
    const other = signed('P-384', 'sha384').check;
    const bad: EcdsaCheck[] = [
      { ...check, point: flip(check.point, 64) },
      { ...check, point: compressed },
      { ...check, point: Buffer.of(0) },
      { ...check, point: Buffer.alloc(0) },
      { ...check, point: Buffer.concat([Buffer.of(4), Buffer.alloc(64)]) },
      { ...check, point: check.point.subarray(0, 64) },
      { ...check, point: Buffer.concat([check.point, Buffer.of(0)]) },
      { ...check, point: Buffer.concat([Buffer.of(6), check.point.subarray(1)]) }, // hybrid form
      { ...check, curve: 'P-384' },
      { ...other, curve: 'P-256' },
    ];
    const got = await assertAgree(bad, 'bad points');
    assert.deepEqual([...got], bad.map(() => ecdsa.BAD_KEY));
  });

  test(`seeded campaign (seed 0x${SEED.toString(16)}): random corruptions of 2,000 checks agree with node:crypto`, async () => {
    const next = rng(SEED);
    const base = [signed('P-256', 'sha256'), signed('P-256', 'sha512'), signed('P-384', 'sha384'), signed('P-384', 'sha256')].map((s) => s.check);
    const checks: EcdsaCheck[] = [];
    for (let i = 0; i < 2000; i++) {
      const c = base[Math.floor(next() * base.length)]!;
      const field = (['data', 'signature', 'point', 'none'] as const)[Math.floor(next() * 4)]!;
      if (field === 'none') {
        checks.push(c);
        continue;
      }
      const b = Buffer.from(c[field]);
      const edits = 1 + Math.floor(next() * 3);
      for (let e = 0; e < edits && b.length > 0; e++) b[Math.floor(next() * b.length)] = Math.floor(next() * 256);
      checks.push({ ...c, [field]: next() < 0.1 ? b.subarray(0, Math.floor(next() * b.length)) : b });
    }
    const got = await assertAgree(checks, `seed 0x${SEED.toString(16)}`);
    assert.ok(got.some((v) => v === ecdsa.VALID) && got.some((v) => v === ecdsa.BAD_SIGNATURE), 'the campaign covers both verdicts');
  });

  test('the thread-pool form copies its inputs: changing them after the call changes nothing', async () => {
    const checks = Array.from({ length: 200 }, () => signed('P-256', 'sha256').check);
    const pending = ecdsa.verifyEcdsaAsync(checks);
    for (const c of checks) (c.signature as Buffer).fill(0);
    assert.deepEqual([...(await pending)], checks.map(() => ecdsa.VALID));
    assert.deepEqual([...ecdsa.verifyEcdsa(checks)], checks.map(() => ecdsa.BAD_SIGNATURE), 'and the zeroed signatures are refused afterwards');
  });

  test('many batches in flight at once all come back right', async () => {
    const good = Array.from({ length: 40 }, () => signed('P-256', 'sha256').check);
    const batches = Array.from({ length: 16 }, (_, b) => good.map((c, i) => ((i + b) % 5 === 0 ? { ...c, data: flip(c.data, 0) } : c)));
    const results = await Promise.all(batches.map((b) => ecdsa.verifyEcdsaAsync(b)));
    results.forEach((r, b) => assert.deepEqual([...r], good.map((_, i) => ((i + b) % 5 === 0 ? ecdsa.BAD_SIGNATURE : ecdsa.VALID)), `batch ${b}`));
    assert.deepEqual([...(await ecdsa.verifyEcdsaAsync([]))], []);
  });

  test('malformed arguments are TypeErrors from the wrapper, RangeErrors from the binding', async () => {
    const { check } = signed('P-256', 'sha256');
    const bad: unknown[] = [
      'x',
      [null],
      [{ ...check, curve: 'P-521' }],
      [{ ...check, curve: 'toString' }],
      [{ ...check, hash: 'md5' }],
      [{ ...check, point: 'abc' }],
      [{ ...check, data: undefined }],
      [{ ...check, signature: [1, 2] }],
    ];
    for (const b of bad) {
      assert.throws(() => ecdsa.verifyEcdsa(b as EcdsaCheck[]), TypeError, JSON.stringify(b));
      await assert.rejects(ecdsa.verifyEcdsaAsync(b as EcdsaCheck[]), TypeError);
    }
    const binding = createRequire(import.meta.url)(ecdsa.addonPath!) as { verify: (d: unknown, x: unknown) => Buffer; verifyAsync: (d: unknown, x: unknown) => Promise<Buffer> };
    const data = new Uint8Array(10);
    const cases: [unknown, unknown, ErrorConstructor][] = [
      [new Uint32Array(7), data, RangeError],
      [Uint32Array.of(1, 1, 0, 5, 5, 5, 8, 3), data, RangeError], // signature runs past the data
      [Uint32Array.of(3, 1, 0, 1, 0, 1, 0, 1), data, RangeError], // unknown curve
      [Uint32Array.of(1, 4, 0, 1, 0, 1, 0, 1), data, RangeError], // unknown hash
      [Uint32Array.of(1, 1, 0xffffffff, 2, 0, 1, 0, 1), data, RangeError], // offset + length overflows 32 bits
      [new Uint8Array(8), data, TypeError],
      [new Uint32Array(8), new Uint16Array(4), TypeError],
      [undefined, undefined, TypeError],
    ];
    for (const [d, x, E] of cases) {
      assert.throws(() => binding.verify(d, x), E);
      assert.throws(() => binding.verifyAsync(d, x), E);
    }
    // A well-formed descriptor over garbage, or with empty fields, is a verdict, not an error.
    assert.deepEqual([...binding.verify(Uint32Array.of(1, 1, 0, 1, 0, 10, 0, 10), data)], [ecdsa.BAD_KEY]);
    assert.deepEqual([...binding.verify(Uint32Array.of(1, 1, 0, 0, 0, 0, 0, 0), data)], [ecdsa.BAD_KEY]);
    assert.deepEqual([...(await binding.verifyAsync(Uint32Array.of(2, 3, 10, 0, 10, 0, 10, 0), data))], [ecdsa.BAD_KEY]);
  });
});

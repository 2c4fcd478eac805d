/**
 * A strict DER reader (ITU-T X.690 §10): definite, minimal lengths only,
 * low tag numbers only. Every failure is a `DerError` with the offset, so
 * callers can wrap it in their own typed error.
 * @internal
 */

export class DerError extends Error {
  constructor(message: string, offset: number) {
    super(`${message} at offset ${offset}`);
    this.name = 'DerError';
  }
}

/** One decoded tag-length-value. `start` is the offset of the tag, `content` of the value. */
export interface Tlv {
  /** The full identifier octet (class, constructed bit and tag number). */
  readonly tag: number;
  readonly start: number;
  readonly content: number;
  readonly end: number;
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Context-specific tag helpers. */
export const ctx = (n: number, constructed: boolean): number => 0x80 | (constructed ? 0x20 : 0) | n;

const MAX_DEPTH_LEN = 0x7fffffff;

export class DerReader {
  readonly buf: Uint8Array;
  pos: number;
  readonly end: number;

  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  /** A reader over the content of `tlv`. */
  static of(buf: Uint8Array, tlv: Tlv): DerReader {
    return new DerReader(buf, tlv.content, tlv.end);
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  /** Fails unless every byte has been consumed. */
  expectDone(what: string): void {
    if (this.pos !== this.end) throw new DerError(`trailing data after ${what}`, this.pos);
  }

  peekTag(): number | undefined {
    return this.pos < this.end ? this.buf[this.pos] : undefined;
  }

  /** Reads the next TLV whatever its tag. */
  read(): Tlv {
    const start = this.pos;
    const buf = this.buf;
    if (start >= this.end) throw new DerError('unexpected end of data', start);
    const tag = buf[start]!;
    if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not supported', start);
    let p = start + 1;
    if (p >= this.end) throw new DerError('truncated length', p);
    const first = buf[p++]!;
    let len: number;
    if (first < 0x80) {
      len = first;
    } else {
      const n = first & 0x7f;
      if (n === 0) throw new DerError('indefinite length is not allowed in DER', p - 1);
      if (n > 4) throw new DerError('length too large', p - 1);
      if (p + n > this.end) throw new DerError('truncated length', p);
      if (buf[p] === 0) throw new DerError('non-minimal length encoding', p);
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buf[p++]!;
      if (len < 0x80) throw new DerError('non-minimal length encoding', p - n);
      if (len > MAX_DEPTH_LEN) throw new DerError('length too large', p - n);
    }
    const end = p + len;
    if (end > this.end) throw new DerError('value runs past the end of its container', p);
    this.pos = end;
    return { tag, start, content: p, end };
  }

  /** Reads the next TLV and checks its tag. */
  expect(tag: number, what: string): Tlv {
    const at = this.pos;
    const tlv = this.read();
    if (tlv.tag !== tag) {
      throw new DerError(`expected ${what} (tag 0x${tag.toString(16)}), found tag 0x${tlv.tag.toString(16)}`, at);
    }
    return tlv;
  }

  /** Reads the next TLV if it has `tag`, otherwise returns undefined without moving. */
  optional(tag: number): Tlv | undefined {
    return this.peekTag() === tag ? this.read() : undefined;
  }

  bytes(tlv: Tlv): Uint8Array {
    return this.buf.subarray(tlv.content, tlv.end);
  }

  raw(tlv: Tlv): Uint8Array {
    return this.buf.subarray(tlv.start, tlv.end);
  }

  sequence(what: string): DerReader {
    return DerReader.of(this.buf, this.expect(TAG.SEQUENCE, what));
  }

  /** An INTEGER's content octets, checked for minimal encoding. */
  integerBytes(what: string): Uint8Array {
    const tlv = this.expect(TAG.INTEGER, what);
    const b = this.bytes(tlv);
    if (b.length === 0) throw new DerError(`empty ${what}`, tlv.start);
    if (b.length > 1 && ((b[0] === 0 && (b[1]! & 0x80) === 0) || (b[0] === 0xff && (b[1]! & 0x80) !== 0))) {
      throw new DerError(`non-minimal ${what}`, tlv.start);
    }
    return b;
  }

  /** A small non-negative INTEGER as a number. */
  smallInteger(what: string): number {
    const b = this.integerBytes(what);
    if ((b[0]! & 0x80) !== 0) throw new DerError(`negative ${what}`, this.pos);
    if (b.length > 4) throw new DerError(`${what} too large`, this.pos);
    let v = 0;
    for (const x of b) v = v * 256 + x;
    return v;
  }

  boolean(what: string): boolean {
    const tlv = this.expect(TAG.BOOLEAN, what);
    if (tlv.end - tlv.content !== 1) throw new DerError(`invalid ${what}`, tlv.start);
    const v = this.buf[tlv.content];
    if (v === 0) return false;
    if (v === 0xff) return true;
    throw new DerError(`non-DER boolean ${what}`, tlv.start);
  }

  oid(what: string): string {
    return decodeOid(this.buf, this.expect(TAG.OID, what));
  }

  octetString(what: string): Uint8Array {
    return this.bytes(this.expect(TAG.OCTET_STRING, what));
  }

  /** A BIT STRING's bits, requiring unused bits to be zero. */
  bitString(what: string): { bytes: Uint8Array; unusedBits: number } {
    const tlv = this.expect(TAG.BIT_STRING, what);
    return decodeBitString(this.buf, tlv, what);
  }

  time(what: string): Date {
    const tlv = this.read();
    return decodeTime(this.buf, tlv, what);
  }
}

export function decodeBitString(buf: Uint8Array, tlv: Tlv, what: string): { bytes: Uint8Array; unusedBits: number } {
  if (tlv.end === tlv.content) throw new DerError(`empty ${what}`, tlv.start);
  const unused = buf[tlv.content]!;
  if (unused > 7) throw new DerError(`invalid unused bits in ${what}`, tlv.start);
  const bytes = buf.subarray(tlv.content + 1, tlv.end);
  if (bytes.length === 0 && unused !== 0) throw new DerError(`invalid unused bits in ${what}`, tlv.start);
  if (unused !== 0 && (bytes[bytes.length - 1]! & ((1 << unused) - 1)) !== 0) {
    throw new DerError(`non-zero padding bits in ${what}`, tlv.start);
  }
  return { bytes, unusedBits: unused };
}

export function decodeOid(buf: Uint8Array, tlv: Tlv): string {
  const { content, end } = tlv;
  if (content === end) throw new DerError('empty object identifier', tlv.start);
  const parts: number[] = [];
  let v = 0;
  let started = false;
  for (let i = content; i < end; i++) {
    const b = buf[i]!;
    if (!started && b === 0x80) throw new DerError('non-minimal object identifier', i);
    started = true;
    v = v * 128 + (b & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) throw new DerError('object identifier arc too large', i);
    if ((b & 0x80) === 0) {
      parts.push(v);
      v = 0;
      started = false;
    }
  }
  if (started) throw new DerError('truncated object identifier', end);
  const first = parts[0]!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...parts.slice(1)].join('.');
}

function digits(buf: Uint8Array, from: number, n: number, tlv: Tlv, what: string): number {
  let v = 0;
  for (let i = from; i < from + n; i++) {
    const c = buf[i]!;
    if (c < 0x30 || c > 0x39) throw new DerError(`invalid ${what}`, tlv.start);
    v = v * 10 + (c - 0x30);
  }
  return v;
}

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), as RFC 5280 §4.1.2.5 requires. */
export function decodeTime(buf: Uint8Array, tlv: Tlv, what: string): Date {
  const len = tlv.end - tlv.content;
  let p = tlv.content;
  let year: number;
  if (tlv.tag === TAG.UTC_TIME) {
    if (len !== 13) throw new DerError(`invalid ${what}`, tlv.start);
    const yy = digits(buf, p, 2, tlv, what);
    year = yy < 50 ? 2000 + yy : 1900 + yy;
    p += 2;
  } else if (tlv.tag === TAG.GENERALIZED_TIME) {
    if (len !== 15) throw new DerError(`invalid ${what}`, tlv.start);
    year = digits(buf, p, 4, tlv, what);
    p += 4;
  } else {
    throw new DerError(`expected a time for ${what}`, tlv.start);
  }
  const month = digits(buf, p, 2, tlv, what);
  const day = digits(buf, p + 2, 2, tlv, what);
  const hour = digits(buf, p + 4, 2, tlv, what);
  const minute = digits(buf, p + 6, 2, tlv, what);
  const second = digits(buf, p + 8, 2, tlv, what);
  if (buf[p + 10] !== 0x5a) throw new DerError(`${what} must be in UTC (Z)`, tlv.start);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) {
    throw new DerError(`invalid ${what}`, tlv.start);
  }
  const d = new Date(Date.UTC(2000, month - 1, day, hour, minute, second));
  // Date.UTC maps years 0–99 to 1900–1999; set the year explicitly.
  d.setUTCFullYear(year, month - 1, day);
  if (d.getUTCDate() !== day) throw new DerError(`invalid ${what}`, tlv.start);
  return d;
}

/**
 * The few DER encoders the SVID hot path needs (ITU-T X.690 §10), each
 * writing its result with one allocation. The library's writer is internal
 * to `@tessera/spiffe`; these cover only what changes per certificate.
 */

/** Bytes taken by the tag and length of a value of `len` bytes. */
function headerSize(len: number): number {
  return len < 0x80 ? 2 : len < 0x100 ? 3 : len < 0x10000 ? 4 : 5;
}

function writeHeader(out: Buffer, at: number, tag: number, len: number): number {
  out[at++] = tag;
  if (len < 0x80) {
    out[at++] = len;
  } else if (len < 0x100) {
    out[at++] = 0x81;
    out[at++] = len;
  } else if (len < 0x10000) {
    out[at++] = 0x82;
    out[at++] = len >> 8;
    out[at++] = len & 0xff;
  } else {
    out[at++] = 0x83;
    out[at++] = len >> 16;
    out[at++] = (len >> 8) & 0xff;
    out[at++] = len & 0xff;
  }
  return at;
}

/** A TLV of `tag` around the concatenation of `parts`. */
export function tlv(tag: number, parts: readonly Uint8Array[]): Buffer {
  let len = 0;
  for (const p of parts) len += p.length;
  if (len >= 0x1000000) throw new RangeError('DER value too large');
  const out = Buffer.allocUnsafe(headerSize(len) + len);
  let at = writeHeader(out, 0, tag, len);
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const SEQUENCE = 0x30;
export const OCTET_STRING = 0x04;
export const BIT_STRING = 0x03;

/** A SEQUENCE of `parts`. */
export const seq = (...parts: Uint8Array[]): Buffer => tlv(SEQUENCE, parts);

/** A BIT STRING with no unused bits. */
export const bitString = (b: Uint8Array): Buffer => tlv(BIT_STRING, [ZERO, b]);
const ZERO = Buffer.from([0]);

/** An Extension (RFC 5280 §4.1): `extnID`, `critical` only when true (DER), `extnValue`. */
export function extension(oidDer: Uint8Array, critical: boolean, value: Uint8Array): Buffer {
  return critical ? seq(oidDer, TRUE, tlv(OCTET_STRING, [value])) : seq(oidDer, tlv(OCTET_STRING, [value]));
}
const TRUE = Buffer.from([0x01, 0x01, 0xff]);

/** The DER of a dotted OID. */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [];
  const push = (v: number): void => {
    const tmp = [v & 0x7f];
    for (v = Math.floor(v / 128); v > 0; v = Math.floor(v / 128)) tmp.unshift((v & 0x7f) | 0x80);
    out.push(...tmp);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return tlv(0x06, [Uint8Array.from(out)]);
}

function two(out: Buffer, at: number, n: number): void {
  out[at] = 0x30 + Math.floor(n / 10);
  out[at + 1] = 0x30 + (n % 10);
}

/**
 * A Time (RFC 5280 §4.1.2.5): UTCTime through 2049, GeneralizedTime from
 * 2050, to the second.
 */
export function time(d: Date): Buffer {
  const y = d.getUTCFullYear();
  const utc = y >= 1950 && y < 2050;
  const out = Buffer.allocUnsafe(utc ? 15 : 17);
  out[0] = utc ? 0x17 : 0x18;
  out[1] = utc ? 13 : 15;
  let at = 2;
  if (!utc) {
    two(out, at, Math.floor(y / 100));
    at += 2;
  }
  two(out, at, y % 100);
  two(out, at + 2, d.getUTCMonth() + 1);
  two(out, at + 4, d.getUTCDate());
  two(out, at + 6, d.getUTCHours());
  two(out, at + 8, d.getUTCMinutes());
  two(out, at + 10, d.getUTCSeconds());
  out[at + 12] = 0x5a;
  return out;
}

/**
 * PEM (RFC 7468) encoding and strict decoding.
 * @internal
 */
import { EncodingError } from '../errors/index.js';

export interface PemBlock {
  readonly type: string;
  readonly der: Buffer;
}

const BEGIN = /-----BEGIN ([A-Z0-9 ]+)-----/g;
const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Decodes every PEM block in `text`. Text outside blocks is ignored (as
 * OpenSSL and Go do); a broken block is an error.
 * @throws EncodingError `ERR_PEM_INVALID`
 */
export function decodePem(text: string | Uint8Array): PemBlock[] {
  const s = typeof text === 'string' ? text : Buffer.from(text).toString('latin1');
  const out: PemBlock[] = [];
  BEGIN.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = BEGIN.exec(s)) !== null) {
    const type = m[1]!;
    const endMarker = `-----END ${type}-----`;
    const bodyStart = m.index + m[0].length;
    const endAt = s.indexOf(endMarker, bodyStart);
    if (endAt < 0) throw new EncodingError('ERR_PEM_INVALID', `PEM block "${type}" has no END line`);
    const lines = s.slice(bodyStart, endAt).split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
    if (lines.some((l) => l.includes(':'))) throw new EncodingError('ERR_PEM_INVALID', `PEM block "${type}" has headers, which are not supported`);
    const body = lines.join('');
    if (body.length === 0 || body.length % 4 !== 0 || !B64.test(body)) {
      throw new EncodingError('ERR_PEM_INVALID', `PEM block "${type}" is not valid base64`);
    }
    out.push({ type, der: Buffer.from(body, 'base64') });
    BEGIN.lastIndex = endAt + endMarker.length;
  }
  return out;
}

/** Encodes DER as one PEM block with 64-character lines. */
export function encodePem(type: string, der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  let out = `-----BEGIN ${type}-----\n`;
  for (let i = 0; i < b64.length; i += 64) out += b64.slice(i, i + 64) + '\n';
  return out + `-----END ${type}-----\n`;
}

/** Whether the bytes look like PEM text rather than DER. */
export function looksLikePem(data: string | Uint8Array): boolean {
  const s = typeof data === 'string' ? data : Buffer.from(data.subarray(0, 4096)).toString('latin1');
  return s.includes('-----BEGIN ');
}

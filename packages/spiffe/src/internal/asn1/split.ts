import { DerError, DerReader, TAG } from './der-reader.js';

/**
 * Splits concatenated DER SEQUENCEs (certificates, as the Workload API
 * sends chains and bundles) into their parts.
 * @throws Error describing the first malformed element.
 * @internal
 */
export function splitDerSequence(data: Uint8Array): Uint8Array[] {
  const r = new DerReader(data);
  const out: Uint8Array[] = [];
  try {
    while (!r.done()) out.push(r.raw(r.expect(TAG.SEQUENCE, 'certificate')));
  } catch (e) {
    if (e instanceof DerError) throw new Error(`malformed DER: ${e.message}`, { cause: e });
    throw e;
  }
  return out;
}

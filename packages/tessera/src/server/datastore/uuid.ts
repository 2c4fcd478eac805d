import { randomBytes } from 'node:crypto';

/**
 * Returns a generator of version 7 UUIDs (RFC 9562 §5.7): 48 bits of epoch
 * milliseconds, a 12-bit counter (method 1 of §6.2, so IDs made by one
 * process are strictly increasing even within a millisecond), 62 random bits.
 * Entry IDs therefore list in creation order and index inserts stay local.
 * @param clock epoch milliseconds
 * @param random source of random bytes
 * @example
 * ```ts
 * const newId = uuidV7Source();
 * newId(); // '0190a6f2-3b1c-7000-8f3e-…'
 * ```
 */
export function uuidV7Source(clock: () => number = Date.now, random: (n: number) => Uint8Array = randomBytes): () => string {
  let lastMs = -1;
  let counter = 0;
  return () => {
    let ms = Math.max(0, Math.floor(clock()));
    if (ms > lastMs) {
      lastMs = ms;
      counter = 0;
    } else {
      counter++;
      if (counter > 0xfff) {
        lastMs++;
        counter = 0;
      }
      ms = lastMs;
    }
    const b = Buffer.alloc(16);
    b.writeUIntBE(ms % 2 ** 48, 0, 6);
    b[6] = 0x70 | (counter >> 8);
    b[7] = counter & 0xff;
    b.set(random(8).subarray(0, 8), 8);
    b[8] = 0x80 | (b[8]! & 0x3f);
    const h = b.toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  };
}

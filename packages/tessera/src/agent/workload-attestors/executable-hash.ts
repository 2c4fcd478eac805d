import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';

/**
 * SHA-256 of executables, for `unix:sha256:` selectors. Hashing a 100 MB
 * binary on every Workload API call would be the agent's hot path, so results
 * are cached by file identity: (dev, ino, mtime ns, size) from fstat of the
 * open file. A rewritten binary changes mtime or size; a replaced one changes
 * the inode. Files over `maxBytes` are not hashed at all (no selector) rather
 * than failing attestation: an entry that names a sha256 then simply does not match.
 */
export interface ExecutableHasher {
  /** Hex SHA-256 of the open file, or undefined if it is larger than the cap. */
  hash(file: FileHandle): Promise<string | undefined>;
  /**
   * What {@link hash} would answer for the file with this identity (from
   * stat(2)), if that is known without reading it: the cached hash, or
   * undefined for a file over the cap. Returns undefined (not a promise) when
   * the file must be opened and hashed. Optional, so other hashers need not have it.
   */
  known?(file: ExecutableIdentity): Promise<string | undefined> | undefined;
}

/** The fields of a stat(2) (`{ bigint: true }`) that identify a file's content for the cache. */
export interface ExecutableIdentity {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly mtimeNs: bigint;
  readonly size: bigint;
}

export interface ExecutableHasherOptions {
  /** Largest file hashed, in bytes. Default 256 MiB. */
  readonly maxBytes?: number;
  /** Entries kept (least recently used dropped first). Default 256. */
  readonly cacheSize?: number;
}

export function executableHasher(options: ExecutableHasherOptions = {}): ExecutableHasher {
  const maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
  const cacheSize = options.cacheSize ?? 256;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError('executableHasher: maxBytes must be a non-negative integer');
  if (!Number.isSafeInteger(cacheSize) || cacheSize < 1) throw new RangeError('executableHasher: cacheSize must be a positive integer');
  // Promises, so concurrent callers for the same binary share one read.
  const cache = new Map<string, Promise<string | undefined>>();
  const keyOf = (st: ExecutableIdentity): string => `${st.dev}:${st.ino}:${st.mtimeNs}:${st.size}`;
  const hit = (key: string): Promise<string | undefined> | undefined => {
    const entry = cache.get(key);
    if (entry !== undefined) {
      cache.delete(key); // re-insert: Map order is the LRU order
      cache.set(key, entry);
    }
    return entry;
  };

  return {
    known(st) {
      if (st.size > BigInt(maxBytes)) return Promise.resolve(undefined);
      return hit(keyOf(st));
    },
    async hash(file) {
      const st = await file.stat({ bigint: true });
      if (st.size > BigInt(maxBytes)) return undefined;
      const key = keyOf(st);
      let entry = hit(key);
      if (entry !== undefined) return entry;
      entry = digest(file, Number(st.size));
      cache.set(key, entry);
      entry.catch(() => cache.delete(key));
      while (cache.size > cacheSize) cache.delete(cache.keys().next().value as string);
      return entry;
    },
  };
}

async function digest(file: FileHandle, size: number): Promise<string> {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1024 * 1024);
  let pos = 0;
  // Read by position, not to EOF: the fstat size is what the cache key names.
  while (pos < size) {
    const { bytesRead } = await file.read(buf, 0, Math.min(buf.length, size - pos), pos);
    if (bytesRead === 0) break;
    h.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return h.digest('hex');
}

/**
 * Where the CA records its certificates and slot states between restarts.
 * Keys stay in the {@link KeyManager}; the journal holds only public data
 * (certificates, JWT public keys, key IDs, the last published bundle), so it
 * can live in the datastore as well as in a file.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CaError } from './errors.js';

/**
 * Persistence of the CA's state as one JSON document.
 *
 * @example
 * ```ts
 * const journal: CaJournal = new FileCaJournal(join(dataDir, 'ca-journal.json'));
 * ```
 */
export interface CaJournal {
  /** The last saved document, or `undefined` before the first save. */
  load(): Promise<string | undefined>;
  /** Replaces the document; must be atomic (all or nothing). */
  save(json: string): Promise<void>;
}

/**
 * A journal in memory: for tests, and to share one journal between two
 * `ServerCa` instances to simulate a restart.
 *
 * @example
 * ```ts
 * const journal = new MemoryCaJournal();
 * ```
 */
export class MemoryCaJournal implements CaJournal {
  #doc: string | undefined;

  async load(): Promise<string | undefined> {
    return this.#doc;
  }

  async save(json: string): Promise<void> {
    this.#doc = json;
  }
}

/**
 * A journal file, mode 0600, replaced atomically (temporary file, fsync,
 * rename, directory fsync).
 *
 * @example
 * ```ts
 * const journal = new FileCaJournal('/var/lib/tessera/server/ca-journal.json');
 * ```
 */
export class FileCaJournal implements CaJournal {
  readonly path: string;

  constructor(path: string) {
    if (typeof path !== 'string' || path.length === 0) throw new CaError('CA_INVALID_CONFIG', 'FileCaJournal: a path is required');
    this.path = path;
  }

  async load(): Promise<string | undefined> {
    try {
      return await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new CaError('CA_JOURNAL_INVALID', `cannot read CA journal "${this.path}": ${(e as Error).message}`, { cause: e });
    }
  }

  async save(json: string): Promise<void> {
    const dir = dirname(this.path);
    const tmp = join(dir, `.ca-journal.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const f = await open(tmp, 'wx', 0o600);
      try {
        await f.writeFile(json, 'utf8');
        await f.sync();
      } finally {
        await f.close();
      }
      await rename(tmp, this.path);
      const d = await open(dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw new CaError('CA_JOURNAL_INVALID', `cannot write CA journal "${this.path}": ${(e as Error).message}`, { cause: e });
    }
  }
}

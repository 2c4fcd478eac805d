/**
 * Where the CA's private keys live. The CA asks a {@link KeyManager} for keys
 * by stable string IDs (recorded in the CA journal), so a restart finds the
 * same keys; SPIRE's `disk` and `memory` KeyManager plugins are the model.
 */
import { createPrivateKey, generateKeyPair, randomBytes, type KeyObject } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parsePrivateKey } from '@tessera/spiffe/svid';
import { CaError } from './errors.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** Key types the CA can generate for its X.509 and JWT authorities (spec/spiffe.md §2: ECDSA P-256 by default). */
export type CaKeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048';

/** Every {@link CaKeyType}, for config validation. */
export const CA_KEY_TYPES: readonly CaKeyType[] = ['ec-p256', 'ec-p384', 'rsa-2048'];

/**
 * Stores and hands out the CA's private keys.
 *
 * @example
 * ```ts
 * const keys = new DiskKeyManager('/var/lib/tessera/server/keys');
 * const key = await keys.generateKey('ca-x509-4f1c…', 'ec-p256');
 * ```
 */
export interface KeyManager {
  /**
   * Generates and stores a key under `id`.
   * @throws {@link CaError} `CA_KEY_UNAVAILABLE` when `id` is taken, invalid, or the key cannot be stored.
   */
  generateKey(id: string, type: CaKeyType): Promise<KeyObject>;
  /** The key stored under `id`, or `undefined`. @throws {@link CaError} `CA_KEY_UNAVAILABLE` when it exists but cannot be read. */
  getKey(id: string): Promise<KeyObject | undefined>;
  /** Deletes the key under `id`; absent keys are ignored. */
  deleteKey(id: string): Promise<void>;
  /** The IDs of every stored key. */
  listKeys(): Promise<string[]>;
}

const KEY_ID = /^[a-z0-9][a-z0-9._-]{0,127}$/;

function checkId(id: string): void {
  if (typeof id !== 'string' || !KEY_ID.test(id)) {
    throw new CaError('CA_KEY_UNAVAILABLE', `invalid key ID ${JSON.stringify(id)}: use 1–128 characters of [a-z0-9._-], starting with a letter or digit`);
  }
}

/**
 * A new key, as a key object of its own. On Node 20 an EC or RSA JWK export
 * (the bundle and the journal do that for JWT keys) of a key from
 * `generateKeyPairSync` can hang the process: the export holds the key's
 * lock while allocating, and the garbage collection that finalizes the
 * generation job takes the same lock in `~KeyPairGenConfig`. The async
 * `generateKeyPair` used here is not affected (its job is destroyed right
 * after its callback), but a PKCS#8 round trip (that export is safe) makes
 * every key handed out independent of how it was generated; see docs/ca.md.
 */
async function newKey(type: CaKeyType): Promise<KeyObject> {
  let generated: KeyObject;
  switch (type) {
    case 'ec-p256':
      generated = (await generateKeyPairAsync('ec', { namedCurve: 'P-256' })).privateKey;
      break;
    case 'ec-p384':
      generated = (await generateKeyPairAsync('ec', { namedCurve: 'P-384' })).privateKey;
      break;
    case 'rsa-2048':
      generated = (await generateKeyPairAsync('rsa', { modulusLength: 2048, publicExponent: 65537 })).privateKey;
      break;
    default:
      throw new CaError('CA_KEY_UNAVAILABLE', `unsupported key type ${JSON.stringify(type)}; use one of ${CA_KEY_TYPES.join(', ')}`);
  }
  return createPrivateKey({ key: generated.export({ type: 'pkcs8', format: 'der' }), format: 'der', type: 'pkcs8' });
}

/**
 * Keys in memory only: for tests, and for servers that prefer a new CA on
 * every start (as SPIRE's `memory` KeyManager).
 *
 * @example
 * ```ts
 * const ca = await ServerCa.open({ trustDomain: 'example.org', keyManager: new MemoryKeyManager(), journal: new MemoryCaJournal() });
 * ```
 */
export class MemoryKeyManager implements KeyManager {
  readonly #keys = new Map<string, KeyObject>();

  async generateKey(id: string, type: CaKeyType): Promise<KeyObject> {
    checkId(id);
    if (this.#keys.has(id)) throw new CaError('CA_KEY_UNAVAILABLE', `a key with ID "${id}" already exists`);
    const key = await newKey(type);
    this.#keys.set(id, key);
    return key;
  }

  async getKey(id: string): Promise<KeyObject | undefined> {
    checkId(id);
    return this.#keys.get(id);
  }

  async deleteKey(id: string): Promise<void> {
    checkId(id);
    this.#keys.delete(id);
  }

  async listKeys(): Promise<string[]> {
    return [...this.#keys.keys()].sort();
  }
}

/**
 * Keys as PKCS#8 PEM files `<dir>/<id>.pem`, mode 0600 in a 0700 directory.
 * Each file is written to a temporary name, fsynced and renamed into place
 * (then the directory is fsynced), so a crash leaves either no key or the
 * whole key, never a torn file. Key files readable by group or others are
 * refused, as ssh refuses such identity files.
 *
 * @example
 * ```ts
 * const keys = new DiskKeyManager(join(dataDir, 'keys'));
 * ```
 */
export class DiskKeyManager implements KeyManager {
  readonly dir: string;
  #ready: Promise<void> | undefined;

  constructor(dir: string) {
    if (typeof dir !== 'string' || dir.length === 0) throw new CaError('CA_INVALID_CONFIG', 'DiskKeyManager: a key directory is required');
    this.dir = dir;
  }

  #ensureDir(): Promise<void> {
    this.#ready ??= mkdir(this.dir, { recursive: true, mode: 0o700 }).then(
      () => undefined,
      (e: unknown) => {
        this.#ready = undefined;
        throw new CaError('CA_KEY_UNAVAILABLE', `cannot create key directory "${this.dir}": ${(e as Error).message}`, { cause: e });
      },
    );
    return this.#ready;
  }

  #path(id: string): string {
    return join(this.dir, `${id}.pem`);
  }

  async generateKey(id: string, type: CaKeyType): Promise<KeyObject> {
    checkId(id);
    await this.#ensureDir();
    if ((await this.#exists(id)) === true) throw new CaError('CA_KEY_UNAVAILABLE', `a key with ID "${id}" already exists in "${this.dir}"`);
    const key = await newKey(type);
    const pem = key.export({ type: 'pkcs8', format: 'pem' }) as string;
    const tmp = join(this.dir, `.${id}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const f = await open(tmp, 'wx', 0o600);
      try {
        await f.writeFile(pem, 'utf8');
        await f.sync();
      } finally {
        await f.close();
      }
      await rename(tmp, this.#path(id));
      await this.#syncDir();
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw new CaError('CA_KEY_UNAVAILABLE', `cannot store key "${id}" in "${this.dir}": ${(e as Error).message}`, { cause: e });
    }
    return key;
  }

  async getKey(id: string): Promise<KeyObject | undefined> {
    checkId(id);
    const path = this.#path(id);
    let data: Buffer;
    try {
      const st = await stat(path);
      if ((st.mode & 0o077) !== 0) {
        throw new CaError('CA_KEY_UNAVAILABLE', `key file "${path}" is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 on it`);
      }
      data = await readFile(path);
    } catch (e) {
      if (e instanceof CaError) throw e;
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new CaError('CA_KEY_UNAVAILABLE', `cannot read key file "${path}": ${(e as Error).message}`, { cause: e });
    }
    try {
      return parsePrivateKey(data);
    } catch (e) {
      throw new CaError('CA_KEY_UNAVAILABLE', `key file "${path}" does not hold a usable private key: ${(e as Error).message}`, { cause: e });
    }
  }

  async deleteKey(id: string): Promise<void> {
    checkId(id);
    try {
      await unlink(this.#path(id));
      await this.#syncDir();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new CaError('CA_KEY_UNAVAILABLE', `cannot delete key "${id}" from "${this.dir}": ${(e as Error).message}`, { cause: e });
    }
  }

  async listKeys(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new CaError('CA_KEY_UNAVAILABLE', `cannot list key directory "${this.dir}": ${(e as Error).message}`, { cause: e });
    }
    return names
      .filter((n) => n.endsWith('.pem'))
      .map((n) => n.slice(0, -4))
      .filter((id) => KEY_ID.test(id))
      .sort();
  }

  async #exists(id: string): Promise<boolean> {
    try {
      await stat(this.#path(id));
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw new CaError('CA_KEY_UNAVAILABLE', `cannot check key "${id}": ${(e as Error).message}`, { cause: e });
    }
  }

  /** fsync the directory so a rename or unlink survives a crash. */
  async #syncDir(): Promise<void> {
    const d = await open(this.dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }
}

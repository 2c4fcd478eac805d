// Loader and argument packing for the ECDSA verification addon built by
// `node-gyp rebuild` (the package's install script, run by `npm ci` at the
// repository root). See ecdsa_verify.c for what is checked and how.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const candidates = [join(here, 'build', 'Release', 'ecdsa_verify.node'), join(here, 'build', 'Debug', 'ecdsa_verify.node')];
const found = candidates.find((p) => existsSync(p));

let binding;
let error;
if (found === undefined) {
  error = new Error(
    `@tessera/ecdsa-verify: native addon not built (looked for ${candidates.join(', ')}). ` +
      'Run `npm rebuild @tessera/ecdsa-verify` (or `npm ci`) at the repository root; it needs node-gyp, a C compiler ' +
      'and Node headers (npm config nodedir=/usr), and the root package.json must allow its install script ("allowScripts").',
  );
} else {
  try {
    binding = createRequire(import.meta.url)(found);
  } catch (cause) {
    error = new Error(`@tessera/ecdsa-verify: failed to load ${found}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}
if (error) error.code = 'ERR_ECDSA_VERIFY_NOT_AVAILABLE';

export const available = binding !== undefined;
export const loadError = error;
/** Path of the loaded .node file, or undefined. */
export const addonPath = binding !== undefined ? found : undefined;

export const BAD_SIGNATURE = 0;
export const VALID = 1;
export const BAD_KEY = 2;
export const ERROR = 3;

const CURVES = { 'P-256': 1, 'P-384': 2 };
const HASHES = { sha256: 1, sha384: 2, sha512: 3 };
const WORDS = 8;

function bytes(v, what, i) {
  if (!(v instanceof Uint8Array)) throw new TypeError(`checks[${i}].${what} must be a Uint8Array`);
  return v;
}

/** Packs the checks into the addon's (desc, data) form. */
function pack(checks) {
  if (!Array.isArray(checks)) throw new TypeError('checks must be an array');
  const desc = new Uint32Array(WORDS * checks.length);
  let total = 0;
  checks.forEach((c, i) => {
    if (c === null || typeof c !== 'object') throw new TypeError(`checks[${i}] must be an object`);
    const curve = Object.hasOwn(CURVES, c.curve) ? CURVES[c.curve] : undefined;
    const hash = Object.hasOwn(HASHES, c.hash) ? HASHES[c.hash] : undefined;
    if (curve === undefined) throw new TypeError(`checks[${i}].curve must be "P-256" or "P-384"`);
    if (hash === undefined) throw new TypeError(`checks[${i}].hash must be "sha256", "sha384" or "sha512"`);
    desc[WORDS * i] = curve;
    desc[WORDS * i + 1] = hash;
    total += bytes(c.point, 'point', i).length + bytes(c.data, 'data', i).length + bytes(c.signature, 'signature', i).length;
  });
  if (total > 0xffffffff) throw new RangeError('checks: more than 4 GiB of data');
  const data = Buffer.allocUnsafe(total);
  let at = 0;
  checks.forEach((c, i) => {
    let f = WORDS * i + 2;
    for (const v of [c.point, c.data, c.signature]) {
      data.set(v, at);
      desc[f++] = at;
      desc[f++] = v.length;
      at += v.length;
    }
  });
  return [desc, data];
}

function need() {
  if (binding === undefined) throw error;
  return binding;
}

/** Checks the signatures on this thread; one result code per check. */
export function verifyEcdsa(checks) {
  const b = need();
  const [desc, data] = pack(checks);
  return new Uint8Array(b.verify(desc, data));
}

/** Checks the signatures on libuv's thread pool; one result code per check. */
export async function verifyEcdsaAsync(checks) {
  const b = need();
  const [desc, data] = pack(checks);
  return new Uint8Array(await b.verifyAsync(desc, data));
}

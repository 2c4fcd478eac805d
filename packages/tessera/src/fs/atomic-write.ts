import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Replaces `path` with `data` so that a crash leaves either the old or the
 * new content, never a mix: a temporary file in the same directory (mode
 * exactly `mode` whatever the umask, default 0600), fsync, rename over
 * `path`, fsync of the directory.
 * The directory is created (0700) if missing.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    const f = await open(tmp, 'wx', mode);
    try {
      await f.chmod(mode); // open()'s mode is masked by the umask
      await f.writeFile(data);
      await f.sync();
    } finally {
      await f.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

import { chmod, link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Creates a directory (and parents) readable only by the owner (0700). */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

/**
 * Writes a file readable only by the owner (0600), atomically (a synced temp file renamed into
 * place), creating its directory with 0700. `exclusive` refuses to replace an existing file
 * (EEXIST): the temp file is then hard-linked into place, which fails if the name exists, so a
 * concurrent reader sees either no file or the whole of it, and of two writers exactly one wins.
 */
export async function writePrivateFile(path: string, content: string, options: { exclusive?: boolean } = {}): Promise<void> {
  await ensurePrivateDir(dirname(path));
  const temp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(content, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    if (options.exclusive) await link(temp, path);
    else await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  if (options.exclusive) await rm(temp, { force: true }); // the name now holds the file
  await chmod(path, 0o600);
}

/** Reads a UTF-8 file, or null when it does not exist. */
export async function readOptionalFile(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** True when group or others may read the file (a private key should be 0600). */
export async function isGroupOrWorldReadable(path: string): Promise<boolean> {
  if (process.platform === 'win32') return false;
  return ((await stat(path)).mode & 0o077) !== 0;
}

/**
 * Files on the host, for the library's own file work (backup directories, the virtual card's state): read with a clear
 * "not found", written atomically (temp file in the same directory, fsync, rename, directory
 * fsync). Every failure is an ScHsmError: HOST_FILE_NOT_FOUND, FILE_EXISTS or IO_ERROR, with the
 * Node.js error as `cause`. node:fs/promises is loaded on first use, not at import: importing the
 * library stays cheap (cold-start benchmark, bench/startup.bench.ts).
 */
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { ScHsmError } from '../errors.js';

function errnoOf(e: unknown): string {
  return (e as NodeJS.ErrnoException)?.code ?? 'error';
}

/** The whole file; HOST_FILE_NOT_FOUND when it is missing, IO_ERROR when it cannot be read. */
export async function readHostFile(path: string, what = 'file'): Promise<Uint8Array> {
  const { readFile } = await import('node:fs/promises');
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'ENOENT')
      throw new ScHsmError('HOST_FILE_NOT_FOUND', `${what} ${path} does not exist`, { cause: e });
    throw new ScHsmError('IO_ERROR', `cannot read ${what} ${path} (${code})`, { cause: e });
  }
}

export async function hostFileExists(path: string): Promise<boolean> {
  const { access } = await import('node:fs/promises');
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** FILE_EXISTS unless `force` when `path` exists. */
export async function refuseHostOverwrite(
  path: string,
  force: boolean | undefined,
  what = 'file',
): Promise<void> {
  if (!force && (await hostFileExists(path)))
    throw new ScHsmError('FILE_EXISTS', `${what} ${path} already exists; it was left unchanged`);
}

/** Creates `dir` and its parents (IO_ERROR when that fails). */
export async function makeHostDirectory(dir: string): Promise<void> {
  const { mkdir } = await import('node:fs/promises');
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new ScHsmError('IO_ERROR', `cannot create the directory ${dir} (${errnoOf(e)})`, { cause: e });
  }
}

/**
 * Writes `data` to `path` atomically: a reader sees the old file or the complete new one, never a
 * part. A temp file in the same directory (created with `mode`, never an existing file), fsync,
 * rename over `path`, then fsync of the directory where the platform allows it.
 */
export async function writeAtomic(path: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  const { open, rename, unlink } = await import('node:fs/promises');
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    const err = e as NodeJS.ErrnoException;
    throw new ScHsmError(
      'IO_ERROR',
      `cannot write ${path}: ${err.syscall ?? 'write'} failed: ${errnoOf(e)}`,
      { cause: e },
    );
  }
  try {
    const dh = await open(dirname(path), 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // directory fsync is not supported everywhere (e.g. Windows); the rename itself is atomic
  }
}

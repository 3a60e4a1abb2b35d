/** Host files: read with a clear "not found", written atomically (temp file, fsync, rename). */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CliError } from './exit-codes.js';

export async function readHostFile(path: string, what = 'file'): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CliError('HOST_FILE_NOT_FOUND', `${what} ${path} does not exist`);
    throw new CliError(
      'USAGE_ERROR',
      `cannot read ${what} ${path} (${code ?? 'error'})`,
      'check the path and its permissions',
    );
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** Refuses to replace an existing file unless `force` (exit 7). */
export async function refuseOverwrite(
  path: string,
  force: boolean | undefined,
  what = 'file',
): Promise<void> {
  if (!force && (await exists(path))) {
    throw new CliError('FILE_EXISTS', `${what} ${path} already exists; it was left unchanged`);
  }
}

/** Writes `data` to `path` atomically: a reader sees the old file or the complete new one. */
export async function writeAtomic(path: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

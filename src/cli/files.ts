/** Host files: read with a clear "not found", written atomically (temp file, fsync, rename). */
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
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

/** Writes `data` to `path` atomically (the library's: temp file, fsync, rename; IO_ERROR on failure). */
export { writeAtomic } from '../util/host-files.js';

/**
 * Host files: read with a clear "not found", written atomically (temp file, fsync, then rename to
 * replace or link to create exclusively).
 */
import { readFile } from 'node:fs/promises';
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

/**
 * The library's host-file helpers: whether a file exists, FILE_EXISTS (exit 7) unless `force`,
 * atomic writes that replace (`writeAtomic`) or never replace (`writeAtomicExclusive`: FILE_EXISTS
 * when the file appeared meanwhile); IO_ERROR on failure.
 */
export {
  hostFileExists as exists,
  refuseHostOverwrite as refuseOverwrite,
  writeAtomic,
  writeAtomicExclusive,
} from '../util/host-files.js';

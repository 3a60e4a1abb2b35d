/**
 * Host files: read with a clear "not found", written atomically (temp file, fsync, then rename to
 * replace or link to create exclusively).
 */
import { dirname, join, resolve } from 'node:path';
import { ScHsmError } from '../errors.js';
import {
  HOST_FILE_MAX_BYTES,
  readHostFile as readLibraryHostFile,
  refuseHostOverwrite,
  writeAtomic,
  writeAtomicExclusive,
} from '../util/host-files.js';
import { CliError } from './exit-codes.js';
import type { CliIo, Output } from './io.js';

/**
 * The whole file, at most `max` bytes ({@link HOST_FILE_MAX_BYTES}: a device such as /dev/zero or a
 * larger file is refused after reading one byte more): HOST_FILE_NOT_FOUND when it is missing,
 * USAGE_ERROR naming the file and the bound when it holds more, or cannot be read.
 */
export async function readHostFile(
  path: string,
  what = 'file',
  max: number = HOST_FILE_MAX_BYTES.file,
): Promise<Uint8Array> {
  try {
    return await readLibraryHostFile(path, what, max);
  } catch (e) {
    if (!(e instanceof ScHsmError)) throw e;
    if (e.code === 'HOST_FILE_NOT_FOUND') throw new CliError('HOST_FILE_NOT_FOUND', e.message);
    // unreadable or too large: the operator's input, a usage error with its fix
    throw new CliError('USAGE_ERROR', e.message, e.fix ?? 'check the path and its permissions');
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

/**
 * Where an `--out` goes, checked before anything is sent to the card ({@link prepareOutput}):
 * standard output (`-`), a device or FIFO written in place, or a regular file written atomically.
 */
export interface OutputTarget {
  path: string;
  kind: 'stdout' | 'in-place' | 'file';
  force: boolean;
  what: string;
}

/** What {@link prepareOutput} needs of the command's context. */
export interface OutputCtx {
  io: CliIo;
  g: { json: boolean };
  out: Output;
}

/**
 * Checks `--out PATH` before the PIN is sent or the card used (every command's --out, one rule):
 * - `-`: standard output, when it is not a terminal and not taken by --json; the command's own
 *   text then goes to standard error. Refused otherwise.
 * - a symbolic link: refused, naming its target (replacing the link or writing through it are
 *   both surprises; `--out /dev/stdout` is pointed to `--out -`).
 * - a character device or FIFO (`/dev/null`, a named pipe): written in place, as `--trace` does,
 *   never replaced by a file; a block device, socket or directory: refused.
 * - a regular file: FILE_EXISTS unless `force`; a missing or non-directory parent: refused.
 */
export async function prepareOutput(
  ctx: OutputCtx,
  path: string,
  o: { force?: boolean; what?: string; option?: string } = {},
): Promise<OutputTarget> {
  const what = o.what ?? 'output file';
  const opt = o.option ?? '--out';
  const force = o.force === true;
  if (path === '-') {
    if ((ctx.io.stdout as { isTTY?: boolean }).isTTY === true)
      throw new CliError(
        'USAGE_ERROR',
        `${opt} - writes to standard output, which is a terminal here: binary data is not written to a terminal; nothing was sent`,
        `redirect it (${opt} - > FILE, or | another program) or name a file with ${opt} FILE`,
      );
    if (ctx.g.json)
      throw new CliError(
        'USAGE_ERROR',
        `${opt} - and --json both write to standard output; nothing was sent`,
        `name a file with ${opt} FILE, or leave out --json`,
      );
    ctx.out.textToStderr = true;
    return { path, kind: 'stdout', force, what };
  }
  const { lstat, readlink, stat } = await import('node:fs/promises');
  let st: Awaited<ReturnType<typeof lstat>> | undefined;
  try {
    st = await lstat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT')
      throw new CliError(
        'USAGE_ERROR',
        `cannot examine ${opt} ${path} (${code ?? 'error'}); nothing was sent`,
      );
  }
  if (!st) {
    const dir = dirname(resolve(path));
    const d = await stat(dir).catch(() => undefined);
    if (!d)
      throw new CliError(
        'HOST_FILE_NOT_FOUND',
        `the directory of ${opt} ${path} (${dir}) does not exist; nothing was sent`,
        'create the directory first, or name a file in an existing one',
      );
    if (!d.isDirectory())
      throw new CliError('USAGE_ERROR', `${opt} ${path}: ${dir} is not a directory; nothing was sent`);
    const { access } = await import('node:fs/promises');
    const { constants } = await import('node:fs');
    const denied = await access(dir, constants.W_OK).then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e.code ?? 'error',
    );
    if (denied)
      throw new CliError(
        'USAGE_ERROR',
        `${opt} ${path}: files cannot be created in ${dir} (${denied}); nothing was sent`,
        'name a file in a directory you can write to',
      );
    return { path, kind: 'file', force, what };
  }
  if (st.isSymbolicLink()) {
    const target = await readlink(path).catch(() => '?');
    const stdoutHint = /^\/dev\/(stdout|fd\/1)$/.test(path) ? `; for standard output use ${opt} -` : '';
    throw new CliError(
      'USAGE_ERROR',
      `${opt} ${path} is a symbolic link to ${target}: not written through nor replaced; nothing was sent`,
      `name the file itself (${opt} ${target})${stdoutHint}, or another file`,
    );
  }
  if (st.isDirectory())
    throw new CliError(
      'USAGE_ERROR',
      `${opt} ${path} is a directory; nothing was sent`,
      `name a file, e.g. ${opt} ${join(path, 'out.bin')}`,
    );
  if (st.isCharacterDevice() || st.isFIFO()) return { path, kind: 'in-place', force, what };
  if (!st.isFile())
    throw new CliError(
      'USAGE_ERROR',
      `${opt} ${path} is ${st.isBlockDevice() ? 'a block device' : 'a socket or other special file'}: refused; nothing was sent`,
      'name a regular file',
    );
  await refuseHostOverwrite(path, force, what);
  return { path, kind: 'file', force, what };
}

/**
 * Writes `data` where {@link prepareOutput} said: standard output; a device or FIFO in place
 * (opened for writing without create or truncate); a file atomically (replacing only with force,
 * otherwise created exclusively: a file that appeared meanwhile is kept).
 */
export async function writeOutput(
  ctx: OutputCtx,
  t: OutputTarget,
  data: Uint8Array | string,
  mode = 0o600,
): Promise<void> {
  if (t.kind === 'stdout') {
    await new Promise<void>((res, rej) => ctx.io.stdout.write(data, (e) => (e ? rej(e) : res())));
    return;
  }
  if (t.kind === 'in-place') {
    const { open } = await import('node:fs/promises');
    const { constants } = await import('node:fs');
    try {
      const h = await open(t.path, constants.O_WRONLY | (constants.O_NOFOLLOW ?? 0));
      try {
        await h.writeFile(data);
      } finally {
        await h.close();
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      throw new CliError('IO_ERROR', `cannot write ${t.what} ${t.path} (${code})`);
    }
    return;
  }
  if (t.force) await writeAtomic(t.path, data, mode);
  else await writeAtomicExclusive(t.path, data, mode, t.what);
}

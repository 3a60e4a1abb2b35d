/**
 * Files on the host, for the library's own file work (backup directories, the virtual card's state,
 * the command's output files): read with a clear "not found", written atomically (temp file in the
 * same directory, fsync, rename or link, directory fsync). Every failure is an ScHsmError:
 * HOST_FILE_NOT_FOUND, FILE_EXISTS or IO_ERROR, with the Node.js error as `cause`.
 * node:fs/promises is loaded on first use, not at import: importing the library stays cheap
 * (cold-start benchmark, bench/startup.bench.ts); node:fs itself is part of Node's bootstrap.
 *
 * Temp files are named `.NAME.<12 hex digits>.tmp` beside the target NAME and are created with the
 * target's final mode, so the temp of a secret file (0600) is never readable by others;
 * {@link removeStaleTemps} removes those a killed process left behind.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ScHsmError } from '../errors.js';

/** The temp file beside `path` that an atomic write goes through. */
function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function errnoOf(e: unknown): string {
  return (e as NodeJS.ErrnoException)?.code ?? 'error';
}

/**
 * The most bytes one host file may hold, named once for every reader: a file beyond its bound (or a
 * device such as /dev/zero, a pipe that does not end) is refused after reading one byte more, never
 * read into memory whole. `secret`: a `file:` PIN or password; `file`: a DKEK share file, a wrap
 * file, a PEM key, a certificate, a backup manifest or record (all a few KiB).
 */
export const HOST_FILE_MAX_BYTES = { secret: 64 * 1024, file: 1024 * 1024 } as const;

/**
 * At most `max` bytes of `path`, read in chunks from one open (a regular file, a FIFO or a device
 * alike); `'too-large'` when the file holds more. Node's own errors (ENOENT, EISDIR…) are thrown as
 * they are, for the caller to name.
 */
export async function readHostBytes(path: string, max: number): Promise<Uint8Array | 'too-large'> {
  const { open } = await import('node:fs/promises');
  const h = await open(path, 'r');
  try {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const buf = new Uint8Array(Math.min(64 * 1024, max + 1 - total));
      const { bytesRead } = await h.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      parts.push(buf.subarray(0, bytesRead));
      total += bytesRead;
      if (total > max) return 'too-large';
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  } finally {
    await h.close();
  }
}

/**
 * The whole file, at most `max` bytes ({@link HOST_FILE_MAX_BYTES}); HOST_FILE_NOT_FOUND when it is
 * missing, INVALID_ARGUMENT when it holds more than `max` bytes, IO_ERROR when it cannot be read.
 */
export async function readHostFile(
  path: string,
  what = 'file',
  max: number = HOST_FILE_MAX_BYTES.file,
): Promise<Uint8Array> {
  let r: Uint8Array | 'too-large';
  try {
    r = await readHostBytes(path, max);
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'ENOENT')
      throw new ScHsmError('HOST_FILE_NOT_FOUND', `${what} ${path} does not exist`, { cause: e });
    throw new ScHsmError('IO_ERROR', `cannot read ${what} ${path} (${code})`, { cause: e });
  }
  if (r === 'too-large')
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `${what} ${path} holds more than ${max} bytes, the most a ${what} may hold: not read further`,
      { fix: `name the ${what} itself (not a device, a pipe or another large file)` },
    );
  return r;
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

/** IO_ERROR for a failed write of `path`, naming the system call and the errno. */
function writeError(path: string, e: unknown): ScHsmError {
  if (e instanceof ScHsmError) return e;
  const err = e as NodeJS.ErrnoException;
  return new ScHsmError('IO_ERROR', `cannot write ${path}: ${err.syscall ?? 'write'} failed: ${errnoOf(e)}`, {
    cause: e,
  });
}

/** fsync of the directory, where the platform allows it (not on Windows); the rename/link itself is atomic. */
async function syncDirectory(dir: string): Promise<void> {
  const { open } = await import('node:fs/promises');
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // not supported everywhere
  }
}

/** Writes the temp file: created exclusively with `mode`, written, fsynced, closed. */
async function writeTemp(tmp: string, data: Uint8Array | string, mode: number): Promise<void> {
  const { open } = await import('node:fs/promises');
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes `data` to `path` atomically, REPLACING any file there: a reader sees the old file or the
 * complete new one, never a part. A temp file in the same directory (created with `mode`, never an
 * existing file), fsync, rename over `path`, then fsync of the directory where the platform allows
 * it. For a file that must not replace another, use {@link writeAtomicExclusive}.
 */
export async function writeAtomic(path: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  const { rename, unlink } = await import('node:fs/promises');
  const tmp = tempPathFor(path);
  try {
    await writeTemp(tmp, data, mode);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw writeError(path, e);
  }
  await syncDirectory(dirname(path));
}

/** link() errors of file systems without hard links (FAT/exFAT report EPERM, some FUSE ENOSYS). */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']);

/**
 * Creates `path` with `data` atomically and EXCLUSIVELY: it never replaces anything, not even a
 * file that appeared after the caller checked (two concurrent `dkek create F` cannot both succeed).
 * The data goes to a temp file in the same directory (created with `mode`), is fsynced, and the
 * temp is then hard-linked to `path` — `link()` fails with EEXIST where `rename()` would replace —
 * and unlinked; then the directory is fsynced. A reader sees no file or the complete one.
 *
 * Throws FILE_EXISTS ("WHAT PATH already exists; it was left unchanged") when `path` exists at
 * that final step, IO_ERROR on any other failure; the temp file is always removed. On a file system
 * without hard links (FAT, exFAT: `link()` answers EPERM) the file is created with O_EXCL and
 * written in place instead: still exclusive, but a crash during the write can leave it partial
 * (callers that must be sure read it back).
 *
 * Used for every output that must not replace an existing file: `dkek create`, `wrap --out`,
 * `--trace FILE`, and the backup files.
 */
export async function writeAtomicExclusive(
  path: string,
  data: Uint8Array | string,
  mode = 0o644,
  what = 'file',
): Promise<void> {
  const { link, open, unlink } = await import('node:fs/promises');
  const exists = (e: unknown) =>
    new ScHsmError('FILE_EXISTS', `${what} ${path} already exists; it was left unchanged`, { cause: e });
  const tmp = tempPathFor(path);
  try {
    await writeTemp(tmp, data, mode);
    try {
      await link(tmp, path);
    } catch (e) {
      const code = errnoOf(e);
      if (code === 'EEXIST') throw exists(e);
      if (!NO_HARD_LINKS.has(code)) throw e;
      let fh: Awaited<ReturnType<typeof open>>;
      try {
        fh = await open(path, 'wx', mode);
      } catch (e2) {
        throw errnoOf(e2) === 'EEXIST' ? exists(e2) : e2;
      }
      try {
        await fh.writeFile(data);
        await fh.sync();
      } catch (e2) {
        await fh.close().catch(() => undefined);
        await unlink(path).catch(() => undefined);
        throw e2;
      }
      await fh.close();
    }
  } catch (e) {
    throw writeError(path, e);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  await syncDirectory(dirname(path));
}

/**
 * {@link writeAtomic} without yielding to the event loop: the virtual card saves its state with it
 * before it answers an APDU that changed the state, as real firmware writes EEPROM before it sends
 * the status word. IO_ERROR on failure; the temp file is removed.
 */
export function writeAtomicSync(path: string, data: Uint8Array | string, mode = 0o644): void {
  const tmp = tempPathFor(path);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx', mode);
    writeFileSync(fd, data);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // already failing
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      // not created
    }
    throw writeError(path, e);
  }
  try {
    const dfd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // directory fsync is not supported everywhere; the rename itself is atomic
  }
}

/**
 * Removes the temp files of {@link writeAtomic}'s naming (`.NAME.<12 hex>.tmp`) that a killed
 * process left beside `path`, and returns their names. Call it only while no other process can be
 * writing `path` (e.g. under the virtual card's state lock): a live writer's temp looks the same.
 */
export function removeStaleTemps(path: string): string[] {
  const dir = dirname(path);
  const re = new RegExp(`^\\.${escapeRegExp(basename(path))}\\.[0-9a-f]{12}\\.tmp$`);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    if (!re.test(n)) continue;
    try {
      unlinkSync(join(dir, n));
      removed.push(n);
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed;
}

/** What is at `path` (symbolic links followed): nothing, a regular file, a directory, or something else (device, FIFO, socket). */
export async function hostPathKind(path: string): Promise<'absent' | 'file' | 'directory' | 'other'> {
  const { stat } = await import('node:fs/promises');
  try {
    const st = await stat(path);
    return st.isFile() ? 'file' : st.isDirectory() ? 'directory' : 'other';
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'ENOENT') return 'absent';
    throw new ScHsmError('IO_ERROR', `cannot examine ${path} (${code})`, { cause: e });
  }
}

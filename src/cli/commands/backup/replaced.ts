/**
 * What `unwrap --force` and `restore --force` do with the keys they replace: the options
 * `--save-replaced DIR` and `--i-understand-the-old-key-is-lost`, the wrapped copy of each
 * replaced key written to a file, and the error that says exactly what a failed replace lost and
 * where its copy is.
 *
 * The session wraps every key before it replaces it and puts it back when the new one is refused
 * (UnwrapOptions). That copy is always written to a host file before anything of the old key is
 * deleted — the only way back if the process dies or the card is pulled in the middle — into the
 * directory named with `--save-replaced`, else beside the input (the wrap file's directory for
 * `unwrap`, the backup directory for `restore`, the key file's for `import-key`); the command says
 * where before it deletes and again when done. It is the `.bin` format of `wrap`, mode 0600,
 * fsynced: encrypted under the device's DKEK like every backup file. A copy that cannot be written
 * stops the replace with nothing changed.
 */
import { dirname, join } from 'node:path';
import { inspectKeyBlob } from '../../../dkek/key-blob.js';
import { decodeWrapFile } from '../../../dkek/wrap-file.js';
import { isScHsmError, ScHsmError } from '../../../errors.js';
import type { DeviceIdentity } from '../../../sc-hsm/backup.js';
import { KeyReplaceError, type ReplacedKey } from '../../../sc-hsm/session.js';
import { toHex } from '../../../util/bytes.js';
import { hostPathKind } from '../../../util/host-files.js';
import { flag, str, type Values } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { writeAtomicExclusive } from '../../files.js';

export const ALLOW_LOSS = 'i-understand-the-old-key-is-lost';

/** The next step after REPLACE_UNSAFE in `unwrap`, naming its options. */
export const UNSAFE_FIX = `choose a free key reference (\`sc-hsm-ts keys\` lists the used ones); or, only if the old key may be lost, repeat with --${ALLOW_LOSS}`;

/** The next step after REPLACE_UNSAFE in `restore`. */
export const UNSAFE_RESTORE_FIX = `restore onto a device whose key references are free; or, only if those keys may be lost, repeat with --${ALLOW_LOSS}`;

export interface ReplaceChoices {
  force: boolean;
  allowKeyLoss: boolean;
  /** `--save-replaced DIR`, checked to be a directory. */
  saveDir?: string;
}

/** The replace options, checked before the device is opened (usage errors, exit 2). */
export async function replaceChoices(v: Values): Promise<ReplaceChoices> {
  const force = flag(v, 'force');
  const allowKeyLoss = flag(v, ALLOW_LOSS);
  const saveDir = str(v, 'save-replaced');
  if ((allowKeyLoss || saveDir !== undefined) && !force) {
    throw new CliError(
      'USAGE_ERROR',
      `--${allowKeyLoss ? ALLOW_LOSS : 'save-replaced'} only applies to a replace: it needs --force`,
      'add --force to replace a key, or leave the option out',
    );
  }
  const c: ReplaceChoices = { force, allowKeyLoss };
  if (saveDir !== undefined) {
    if (saveDir === '' || (await hostPathKind(saveDir)) !== 'directory') {
      throw new CliError(
        'USAGE_ERROR',
        `--save-replaced ${saveDir} is not a directory: nothing was changed`,
        'create the directory first (keep it as safe as the backups: it receives wrapped keys)',
      );
    }
    c.saveDir = saveDir;
  }
  return c;
}

/** `replaced-key-001-UTVH1234567-20250102T030405Z.bin`. */
function copyName(keyRef: number, device: DeviceIdentity): string {
  const serial = (device.serial ?? 'device').replace(/[^A-Za-z0-9]/g, '_');
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
  return `replaced-key-${String(keyRef).padStart(3, '0')}-${serial}-${stamp}.bin`;
}

/** Writes a replaced key's wrapped copy into `dir` (exclusively, 0600); returns its path. */
export async function saveReplacedKey(
  dir: string,
  old: ReplacedKey,
  device: DeviceIdentity,
): Promise<string> {
  let path = join(dir, copyName(old.keyRef, device));
  for (let i = 2; ; i++) {
    try {
      await writeAtomicExclusive(path, old.bin, 0o600, 'replaced key copy');
      return path;
    } catch (e) {
      if (!isScHsmError(e, 'FILE_EXISTS') || i > 9) throw e;
      path = join(dir, copyName(old.keyRef, device).replace(/\.bin$/, `-${i}.bin`));
    }
  }
}

/** Where replaced keys' copies go: `--save-replaced DIR`, else `beside` (the input's directory). */
export function copyDir(c: Pick<ReplaceChoices, 'saveDir'>, beside: string): string {
  return c.saveDir ?? beside;
}

/**
 * The hook for UnwrapOptions.onReplaced: writes each replaced key's wrapped copy into `o.dir`
 * before the key is touched, records where (`saved`) and says so on standard error. A copy that
 * cannot be written stops the replace with nothing changed (IO_ERROR with `o.fix`).
 */
export function replacedKeySaver(
  device: DeviceIdentity,
  saved: Map<number, string>,
  o: { dir: string; fix: string; say: (line: string) => void },
): (old: ReplacedKey) => Promise<void> {
  return async (old) => {
    let path: string;
    try {
      path = await saveReplacedKey(o.dir, old, device);
    } catch (e) {
      throw new CliError(
        'IO_ERROR',
        `the wrapped copy of key ${old.keyRef} could not be written to ${o.dir} (${(e as Error).message.replace(/\.\s*$/, '')}), so it is not replaced: nothing was changed`,
        o.fix,
      );
    }
    saved.set(old.keyRef, path);
    const name = `key ${old.keyRef}${old.label !== undefined ? ` ${JSON.stringify(old.label)}` : ''}${old.id ? ` (ID ${toHex(old.id)})` : ''}`;
    o.say(
      `${name} is about to be replaced; its wrapped copy (${underWhich(old.bin)}, 0600) is ${path} (put it back with: sc-hsm-ts unwrap ${path} --key-ref ${old.keyRef} --force)`,
    );
  };
}

/** Which DKEK a replaced key's wrapped copy is under: its key domain's, told by the blob's KCV. */
function underWhich(bin: Uint8Array | undefined): string {
  try {
    return `under the DKEK with key check value ${toHex(inspectKeyBlob(decodeWrapFile(bin!).blob).kcv).toUpperCase()} (its key domain's)`;
  } catch {
    return "under the DKEK of the key's domain";
  }
}

/**
 * The error a command reports for a failed forced replace: REPLACE_UNSAFE with this command's
 * options in its fix; a KeyReplaceError with where the old key's wrapped copy is (written now,
 * beside `input`, when it is not in the --save-replaced directory yet); others unchanged.
 */
export async function replaceFailure(
  e: unknown,
  o: {
    choices: ReplaceChoices;
    device: DeviceIdentity;
    saved: Map<number, string>;
    input: string;
    /** The fix for REPLACE_UNSAFE, naming the command's options; absent: the library's. */
    unsafeFix?: string;
  },
): Promise<unknown> {
  if (isScHsmError(e, 'REPLACE_UNSAFE') && o.unsafeFix !== undefined) {
    return new ScHsmError('REPLACE_UNSAFE', e.message, {
      cause: e,
      ...(e.keyRef === undefined ? {} : { keyRef: e.keyRef }),
      fix: o.unsafeFix,
    });
  }
  if (!(e instanceof KeyReplaceError) || e.keyRef === undefined) return e;
  const keyRef = e.keyRef;
  let where = o.saved.get(keyRef);
  let note: string | undefined;
  if (!e.oldKey) note = 'no wrapped copy of it exists (it could not be wrapped)';
  else {
    if (where === undefined) {
      const dir = o.choices.saveDir ?? o.input;
      try {
        where = await saveReplacedKey(dir, { keyRef, bin: e.oldKey }, o.device);
      } catch (w) {
        note = `its wrapped copy could not be written to ${dir} either (${(w as Error).message}): it is lost`;
      }
    }
    note ??= `its wrapped copy (${underWhich(e.oldKey)}, 0600) is ${where}`;
  }
  const fix =
    where === undefined
      ? 'restore the key from a backup, if there is one'
      : `put it back when the device works again: sc-hsm-ts unwrap ${where} --key-ref ${keyRef} --force`;
  return new CliError(e.code, `${e.message.replace(/\.\s*$/, '')}; ${note}`, fix);
}

/** Where `unwrap FILE` writes a rescue copy without --save-replaced: beside FILE. */
export function besideInput(file: string): string {
  return dirname(file);
}

/**
 * What `unwrap --force` and `restore --force` do with the keys they replace: the options
 * `--save-replaced DIR` and `--i-understand-the-old-key-is-lost`, the wrapped copy of each
 * replaced key written to a file, and the error that says exactly what a failed replace lost and
 * where its copy is.
 *
 * The session wraps every key before it replaces it and puts it back when the new one is refused
 * (UnwrapOptions). A copy reaches a host file only (a) before the key is deleted, in the directory
 * the operator named with `--save-replaced`, or (b) when even putting it back failed (KEY_LOST):
 * then into that directory, else beside the input (the wrap file's directory for `unwrap`, the
 * backup directory for `restore`). It is the `.bin` format of `wrap`, mode 0600: encrypted under
 * the device's DKEK like every backup file.
 */
import { dirname, join } from 'node:path';
import { isScHsmError, ScHsmError } from '../../../errors.js';
import type { DeviceIdentity } from '../../../sc-hsm/backup.js';
import { KeyReplaceError, type ReplacedKey } from '../../../sc-hsm/session.js';
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

/**
 * The hook for UnwrapOptions.onReplaced with `--save-replaced`, recording where each copy went.
 * Without the option: no hook (the copy stays in memory, for a put-back).
 */
export function replacedKeySaver(
  c: ReplaceChoices,
  device: DeviceIdentity,
  saved: Map<number, string>,
): ((old: ReplacedKey) => Promise<void>) | undefined {
  const dir = c.saveDir;
  if (dir === undefined) return undefined;
  return async (old) => {
    saved.set(old.keyRef, await saveReplacedKey(dir, old, device));
  };
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
    note ??= `its wrapped copy (under the device's DKEK, 0600) is ${where}`;
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

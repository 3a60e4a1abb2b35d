import { isScHsmError } from '../../../errors.js';
import { deviceIdentity, deviceText } from '../../../sc-hsm/backup.js';
import { dkekKcvUnknown, type UnwrapOptions } from '../../../sc-hsm/session.js';
import { wrapFileInfo } from '../../../sc-hsm/wrap-info.js';
import { bytesEqual, toHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { reqInt } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { readHostFile } from '../../files.js';
import { kcvText, printable } from '../../format.js';
import { unwrapSpec } from '../meta.js';
import { besideInput, replaceChoices, replacedKeySaver, replaceFailure, UNSAFE_FIX } from './replaced.js';

export const unwrap: Command = {
  ...unwrapSpec,
  async run(ctx, v, [file]) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const choices = await replaceChoices(v);
    const bin = await readHostFile(file!, 'wrap file');
    const info = wrapFileInfo(bin);
    const hsm = await ctx.hsm();
    const device = await deviceIdentity(hsm);
    const dkek = await hsm.dkekStatus();
    if (!dkek) throw new CliError('NO_DKEK', 'the device has no DKEK: nothing was changed');
    if (dkek.outstanding > 0)
      throw new CliError(
        'DKEK_INCOMPLETE',
        `the device still misses ${dkek.outstanding} DKEK share(s): nothing was changed`,
      );
    const checkKcv = (kcv: Uint8Array) => {
      if (!bytesEqual(kcv, info.header.kcv)) {
        throw new CliError(
          'KCV_MISMATCH',
          `${file} was wrapped under another DKEK (key check value ${kcvText(info.header.kcv)}, this device ${kcvText(kcv)}): nothing was changed`,
        );
      }
    };
    // zeros from a complete DKEK: firmware that shows the KCV only after login (checked below)
    const kcvUnknown = dkekKcvUnknown(dkek);
    if (!kcvUnknown) checkKcv(dkek.kcv);
    const present = (await hsm.listKeys()).find((k) => k.keyRef === keyRef);
    if (present && !choices.force) {
      throw new CliError(
        'KEY_REF_OCCUPIED',
        `key reference ${keyRef} holds key "${printable(present.label)}" (ID ${toHex(present.id)}): nothing was changed`,
      );
    }
    await ctx.login(hsm, v);
    if (kcvUnknown) {
      const again = await hsm.dkekStatus();
      if (again && !dkekKcvUnknown(again)) checkKcv(again.kcv);
      else ctx.out.note('the device does not show its DKEK key check value: the card checks the wrapped key');
    }
    const saved = new Map<number, string>();
    const failure = (e: unknown) =>
      replaceFailure(e, {
        choices,
        device,
        saved,
        input: choices.saveDir ?? besideInput(file!),
        unsafeFix: UNSAFE_FIX,
      });
    if (present) {
      // can the old key be put back if the new one is refused? (WRAP KEY changes nothing)
      let wrappable = true;
      try {
        await hsm.backupKey(keyRef);
      } catch (e) {
        if (!isScHsmError(e, 'ALGORITHM_NOT_ALLOWED')) throw e;
        wrappable = false;
        if (!choices.allowKeyLoss) {
          throw new CliError(
            'REPLACE_UNSAFE',
            `key ${keyRef} "${printable(present.label)}" may not be wrapped (its algorithm list lacks WRAP), so it could not be put back if the new key were refused: it is not replaced. Nothing was changed.`,
            UNSAFE_FIX,
          );
        }
      }
      const keep = choices.saveDir ? `; its wrapped copy is kept in ${choices.saveDir}` : '';
      await ctx.confirm(
        `--force replaces key ${keyRef} "${printable(present.label)}" (ID ${toHex(present.id)}) on device ${deviceText(device)}${
          wrappable
            ? `: it is wrapped first and put back if the new key is refused${keep}`
            : ': it may not be wrapped, so if the new key is refused it is lost'
        }.`,
      );
    }
    const opts: UnwrapOptions = {
      force: choices.force,
      allowKeyLoss: choices.allowKeyLoss,
      authenticate: () => ctx.login(hsm, v),
    };
    const onReplaced = replacedKeySaver(choices, device, saved);
    if (onReplaced) opts.onReplaced = onReplaced;
    try {
      await hsm.restoreKey(bin, keyRef, opts);
    } catch (e) {
      throw await failure(e);
    }
    const k = await hsm.keyInfo(keyRef);
    ctx.out.ok(`key restored to key reference ${keyRef} ("${printable(k.label)}", ID ${toHex(k.id)})`);
    ctx.out.kv('Device', printable(deviceText(device)));
    const replaced = present
      ? { id: present.id, label: present.label, savedTo: saved.get(keyRef) }
      : undefined;
    if (replaced)
      ctx.out.line(
        `  replaced key "${printable(replaced.label)}" (ID ${toHex(replaced.id)})${replaced.savedTo ? `: its wrapped copy is ${replaced.savedTo}` : ''}`,
      );
    return {
      keyRef,
      file,
      id: k.id,
      label: k.label,
      type: k.type,
      bits: k.bits,
      curve: k.curve,
      device,
      replaced,
    };
  },
};

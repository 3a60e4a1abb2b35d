import { deviceIdentity, deviceText } from '../../../sc-hsm/backup.js';
import { wrapFileInfo } from '../../../sc-hsm/wrap-info.js';
import type { Command } from '../../command.js';
import { flag, reqInt, reqStr } from '../../context.js';
import { prepareOutput, writeOutput } from '../../files.js';
import { kcvText, printable, sha256Hex } from '../../format.js';
import { wrapSpec } from '../meta.js';

export const wrap: Command = {
  ...wrapSpec,
  async run(ctx, v) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const out = reqStr(v, 'out', 'the .bin file to write');
    const target = await prepareOutput(ctx, out, { force: flag(v, 'force') });
    const hsm = await ctx.hsm();
    // named in the output: a scripted wrap after a card swap says which device it read
    const device = await deviceIdentity(hsm);
    const k = await hsm.keyInfo(keyRef);
    // an algorithm list without WRAP is refused before the PIN
    await ctx.login(hsm, v, () => hsm.backupKey(keyRef));
    const bin = await hsm.backupKey(keyRef);
    const info = wrapFileInfo(bin);
    // --force replaces; otherwise a file that appeared since the check above is kept
    await writeOutput(ctx, target, bin);
    ctx.out.ok(`key ${keyRef} wrapped into ${out}`);
    ctx.out.kv('DKEK key check value', kcvText(info.header.kcv));
    ctx.out.kv('Device', printable(deviceText(device)));
    // the blob carries no key use counter (spec §3.16): the copy's uses are not limited
    const warnings =
      k.useCounter === undefined
        ? []
        : [
            `key ${keyRef} has a key use counter (${k.useCounter} use(s) left): the wrapped copy does not carry it, so a key unwrapped from ${out} can be used without limit`,
          ];
    for (const w of warnings) ctx.out.warn(w);
    return {
      keyRef,
      file: out,
      kcv: info.header.kcv,
      keyType: info.header.keyType,
      sha256: sha256Hex(bin),
      device,
      ...(warnings.length && { warnings }),
    };
  },
};

import { deviceIdentity, deviceText } from '../../../sc-hsm/backup.js';
import { wrapFileInfo } from '../../../sc-hsm/wrap-info.js';
import type { Command } from '../../command.js';
import { flag, reqInt, reqStr } from '../../context.js';
import { refuseOverwrite, writeAtomic, writeAtomicExclusive } from '../../files.js';
import { kcvText, printable, sha256Hex } from '../../format.js';
import { wrapSpec } from '../meta.js';

export const wrap: Command = {
  ...wrapSpec,
  async run(ctx, v) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const out = reqStr(v, 'out', 'the .bin file to write');
    await refuseOverwrite(out, flag(v, 'force'), 'output file');
    const hsm = await ctx.hsm();
    // named in the output: a scripted wrap after a card swap says which device it read
    const device = await deviceIdentity(hsm);
    await hsm.keyInfo(keyRef);
    await ctx.login(hsm, v);
    const bin = await hsm.backupKey(keyRef);
    const info = wrapFileInfo(bin);
    // --force replaces; otherwise a file that appeared since the check above is kept
    if (flag(v, 'force')) await writeAtomic(out, bin, 0o600);
    else await writeAtomicExclusive(out, bin, 0o600, 'output file');
    ctx.out.ok(`key ${keyRef} wrapped into ${out}`);
    ctx.out.kv('DKEK key check value', kcvText(info.header.kcv));
    ctx.out.kv('Device', printable(deviceText(device)));
    return {
      keyRef,
      file: out,
      kcv: info.header.kcv,
      keyType: info.header.keyType,
      sha256: sha256Hex(bin),
      device,
    };
  },
};

import { wrapFileInfo } from '../../../sc-hsm/wrap-info.js';
import type { Command } from '../../command.js';
import { flag, reqInt, reqStr } from '../../context.js';
import { refuseOverwrite, writeAtomic } from '../../files.js';
import { kcvText, sha256Hex } from '../../format.js';
import { wrapSpec } from '../meta.js';

export const wrap: Command = {
  ...wrapSpec,
  async run(ctx, v) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const out = reqStr(v, 'out', 'the .bin file to write');
    await refuseOverwrite(out, flag(v, 'force'), 'output file');
    const hsm = await ctx.hsm();
    await hsm.keyInfo(keyRef);
    await ctx.login(hsm, v);
    const bin = await hsm.backupKey(keyRef);
    const info = wrapFileInfo(bin);
    await writeAtomic(out, bin, 0o600);
    ctx.out.ok(`key ${keyRef} wrapped into ${out}`);
    ctx.out.kv('DKEK key check value', kcvText(info.header.kcv));
    return { keyRef, file: out, kcv: info.header.kcv, keyType: info.header.keyType, sha256: sha256Hex(bin) };
  },
};

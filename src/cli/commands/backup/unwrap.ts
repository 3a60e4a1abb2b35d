import { wrapFileInfo } from '../../../sc-hsm/wrap-info.js';
import { bytesEqual, toHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { flag, reqInt } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { readHostFile } from '../../files.js';
import { kcvText } from '../../format.js';
import { unwrapSpec } from '../meta.js';

export const unwrap: Command = {
  ...unwrapSpec,
  async run(ctx, v, [file]) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const force = flag(v, 'force');
    const bin = await readHostFile(file!, 'wrap file');
    const info = wrapFileInfo(bin);
    const hsm = await ctx.hsm();
    const dkek = await hsm.dkekStatus();
    if (!dkek) throw new CliError('NO_DKEK', 'the device has no DKEK: nothing was changed');
    if (dkek.outstanding > 0)
      throw new CliError(
        'DKEK_INCOMPLETE',
        `the device still misses ${dkek.outstanding} DKEK share(s): nothing was changed`,
      );
    if (!bytesEqual(dkek.kcv, info.header.kcv)) {
      throw new CliError(
        'KCV_MISMATCH',
        `${file} was wrapped under another DKEK (key check value ${kcvText(info.header.kcv)}, this device ${kcvText(dkek.kcv)}): nothing was changed`,
      );
    }
    const present = (await hsm.listKeys()).find((k) => k.keyRef === keyRef);
    if (present && !force) {
      throw new CliError(
        'KEY_REF_OCCUPIED',
        `key reference ${keyRef} holds key "${present.label ?? ''}" (ID ${toHex(present.id)}): nothing was changed`,
      );
    }
    await ctx.login(hsm, v);
    if (present)
      await ctx.confirm(`--force replaces key ${keyRef} "${present.label ?? ''}" (ID ${toHex(present.id)}).`);
    await hsm.restoreKey(bin, keyRef, { force });
    const k = await hsm.keyInfo(keyRef);
    ctx.out.ok(`key restored to key reference ${keyRef} ("${k.label ?? ''}", ID ${toHex(k.id)})`);
    return { keyRef, file, id: k.id, label: k.label, type: k.type, bits: k.bits, curve: k.curve };
  },
};

import { keyCheckValue } from '../../../dkek/index.js';
import { bytesEqual, wipe } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { list, str } from '../../context.js';
import { readDkekShare } from '../../dkek-input.js';
import { CliError } from '../../exit-codes.js';
import { kcvText } from '../../format.js';
import { dkekImportSpec } from '../meta.js';

export const dkekImport: Command = {
  ...dkekImportSpec,
  async run(ctx, v, [file]) {
    const shareFiles = list(v, 'shares');
    if (shareFiles.length > 0 && v.password !== undefined) {
      throw new CliError('USAGE_ERROR', '--password and --shares exclude each other');
    }
    const hsm = await ctx.hsm();
    const before = await hsm.dkekStatus();
    if (!before) {
      throw new CliError('NO_DKEK', 'the device was not initialized for DKEK shares; nothing was imported');
    }
    if (before.outstanding === 0) {
      throw new CliError(
        'DKEK_SHARE_REPEATED',
        `all ${before.total} DKEK share(s) are already imported (key check value ${kcvText(before.kcv)}); nothing was imported`,
        'to start over, re-initialize the device (this erases its keys)',
      );
    }
    const share = await readDkekShare(ctx, file!, { passwordSpec: str(v, 'password'), shareFiles });
    const imported = before.total - before.outstanding;
    if (imported === 1 && bytesEqual(keyCheckValue(share), before.kcv)) {
      wipe(share);
      throw new CliError(
        'DKEK_SHARE_REPEATED',
        'this share was already imported (its key check value equals the device\u2019s); importing it twice would cancel it out. Nothing was imported.',
        'import the other share file(s)',
      );
    }
    let st: Awaited<ReturnType<typeof hsm.importDkekShare>>;
    try {
      st = await hsm.importDkekShare(share);
    } finally {
      wipe(share);
    }
    const o = ctx.out;
    o.ok(`DKEK share imported from ${file}`);
    o.kv('DKEK shares', st.total);
    if (st.outstanding > 0) o.line(`DKEK import pending, ${st.outstanding} share(s) still missing`);
    else o.kv('DKEK key check value', kcvText(st.kcv));
    return { file, dkek: st };
  },
};

import { keyCheckValue } from '../../../dkek/index.js';
import { wipe } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { list, str } from '../../context.js';
import { readDkekShare } from '../../dkek-input.js';
import { kcvText } from '../../format.js';
import { dkekInspectSpec } from '../meta.js';

export const dkekInspect: Command = {
  ...dkekInspectSpec,
  async run(ctx, v, [file]) {
    const share = await readDkekShare(ctx, file!, {
      passwordSpec: str(v, 'password'),
      shareFiles: list(v, 'shares'),
    });
    const kcv = keyCheckValue(share);
    wipe(share);
    ctx.out.ok(`${file}: the password is right and the file is intact`);
    ctx.out.kv('Share key check value', kcvText(kcv));
    return { file, kcv };
  },
};

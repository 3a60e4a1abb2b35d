import { keyCheckValue, resplitPassword } from '../../../dkek/index.js';
import { wipe } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { list, reqInt } from '../../context.js';
import { formatCustodianShare, readCustodianShares, readDkekShare } from '../../dkek-input.js';
import { CliError } from '../../exit-codes.js';
import { kcvText } from '../../format.js';
import { dkekResplitSpec } from '../meta.js';

export const dkekResplit: Command = {
  ...dkekResplitSpec,
  async run(ctx, v, [file]) {
    const shareFiles = list(v, 'shares');
    if (shareFiles.length < 2)
      throw new CliError('USAGE_ERROR', 'give at least two old password shares with --shares FILE');
    const threshold = reqInt(v, 'threshold', 2, 255);
    const total = reqInt(v, 'total', 3, 255);
    if (threshold > total) throw new CliError('USAGE_ERROR', '--threshold must not exceed --total');
    const share = await readDkekShare(ctx, file!, { shareFiles });
    const kcv = keyCheckValue(share);
    wipe(share);
    const fresh = resplitPassword(await readCustodianShares(shareFiles), threshold, total);
    const o = ctx.out;
    o.ok(`the old shares open ${file} (share key check value ${kcvText(kcv)})`);
    o.line(
      o.paint(
        'bold',
        `New password shares: ${total}, any ${threshold} recover the password. Shown only this once.`,
      ),
    );
    for (const s of fresh) {
      o.line('');
      o.line(formatCustodianShare(s, threshold, total));
    }
    return {
      file,
      kcv,
      threshold,
      total,
      passwordShares: fresh.map((s) => ({ id: s.id, prime: s.prime, value: s.value, length: s.length })),
    };
  },
};

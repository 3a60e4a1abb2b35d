import { keyCheckValue, resplitPassword } from '../../../dkek/index.js';
import { wipe } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { list, reqInt } from '../../context.js';
import { formatCustodianShare, readCustodianShares, readDkekShare } from '../../dkek-input.js';
import { CliError } from '../../exit-codes.js';
import { kcvText } from '../../format.js';

export const dkekResplit: Command = {
  name: 'dkek resplit',
  args: 'FILE.pbe',
  positionals: [1, 1],
  summary:
    'New custodian set: rebuild the password from old password shares and split it anew. The share file is untouched.',
  description:
    'The old shares are first checked by decrypting FILE.pbe with the rebuilt password; only then are\n' +
    'the new shares printed. The old shares stay valid too: destroy them after the handover.',
  options: {
    shares: {
      type: 'string',
      multiple: true,
      arg: 'FILE',
      help: 'an old custodian\u2019s password share (text file)',
    },
    threshold: { type: 'string', arg: 'T', help: 'new threshold (2..N)' },
    total: { type: 'string', arg: 'N', help: 'new number of shares (at least 3)' },
  },
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

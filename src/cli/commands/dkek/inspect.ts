import { keyCheckValue } from '../../../dkek/index.js';
import { wipe } from '../../../util/bytes.js';
import { type Command, SECRET_HELP } from '../../command.js';
import { list, str } from '../../context.js';
import { readDkekShare } from '../../dkek-input.js';
import { kcvText } from '../../format.js';

export const dkekInspect: Command = {
  name: 'dkek inspect',
  args: 'FILE.pbe',
  positionals: [1, 1],
  summary: 'Check a DKEK share file offline: decrypt it and print its key check value (no device needed).',
  description:
    'For a DKEK of one share this is the KCV `status` shows; for several shares compare after importing all.',
  options: {
    password: { type: 'string', arg: 'SECRET', help: `password of the share file (${SECRET_HELP})` },
    shares: {
      type: 'string',
      multiple: true,
      arg: 'FILE',
      help: 'a custodian\u2019s password share (text file)',
    },
  },
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

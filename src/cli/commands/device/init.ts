import { randomBytes } from 'node:crypto';
import { checkLabel, checkRetryCounter, parseSoPin, parseUserPin } from '../../../sc-hsm/validate.js';
import { type Command, SECRET_HELP } from '../../command.js';
import { flag, int, reqStr } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { printStatus } from './status.js';

export const init: Command = {
  name: 'init',
  summary: 'Initialize (or re-initialize) the device: SO-PIN, user PIN, label, DKEK shares. ERASES ALL KEYS.',
  description: [
    'Everything is checked on this computer before anything is sent: the SO-PIN is exactly 16 hex',
    'characters (a malformed SO-PIN would make the device unusable), the user PIN 6-15 characters, the',
    'retry counter at most 3/5/10 for PINs of 6/7/8+ characters. On a device that is already initialized',
    '--so-pin must be the current SO-PIN (it cannot be changed here: use so-pin change).',
    '',
    '--dkek-shares N  N >= 1: the DKEK is made of N share files (dkek create / dkek import): keys can be',
    '                 backed up and restored onto a replacement device. 0: the card makes a random DKEK:',
    '                 keys can never leave this device. Omitted: no DKEK at all, no backup possible.',
    'With PC/SC the reader must be named (--reader) because this step erases the device.',
  ].join('\n'),
  options: {
    'so-pin': { type: 'string', arg: 'SECRET', help: `SO-PIN, 16 hex characters (${SECRET_HELP})` },
    pin: { type: 'string', arg: 'SECRET', help: `initial user PIN, 6-15 characters (${SECRET_HELP})` },
    label: { type: 'string', arg: 'LABEL', help: 'token label (1-32 bytes)' },
    'dkek-shares': {
      type: 'string',
      arg: 'N',
      help: 'number of DKEK shares (0 = random DKEK, keys never leave the device)',
    },
    'pin-retry': { type: 'string', arg: 'N', help: 'user PIN retry counter (default 3)' },
    'generate-so-pin': {
      type: 'boolean',
      help: 'generate a random SO-PIN and print it once (first initialization only)',
    },
  },
  examples: ['sc-hsm-ts init --reader 0 --so-pin env:SO_PIN --pin env:PIN --label CA-1 --dkek-shares 1'],
  async run(ctx, v) {
    const label = reqStr(v, 'label', 'the token label');
    checkLabel(label, 'token label');
    const dkekShares = int(v, 'dkek-shares', 0, 255);
    const retry = int(v, 'pin-retry', 1, 10);
    const generate = flag(v, 'generate-so-pin');
    if (generate && v['so-pin'] !== undefined) {
      throw new CliError('USAGE_ERROR', '--generate-so-pin and --so-pin exclude each other');
    }
    // every value is checked before the device is touched
    const soPin = generate
      ? randomBytes(8).toString('hex').toUpperCase()
      : await ctx.secret(v['so-pin'], {
          option: 'so-pin',
          prompt: 'SO-PIN (16 hex characters; the current one if the device is initialized)',
          confirm: true,
        });
    parseSoPin(soPin);
    const pin = await ctx.secret(v.pin, {
      option: 'pin',
      prompt: 'New user PIN (6-15 characters)',
      confirm: true,
    });
    const pinBytes = parseUserPin(pin);
    checkRetryCounter(retry ?? 3, pinBytes.length);
    const d = await ctx.open({ destructive: true });
    const before = await d.hsm.status();
    if (generate && before.initialized) {
      throw new CliError(
        'USAGE_ERROR',
        '--generate-so-pin only works on an uninitialized device: re-initialization needs the current SO-PIN',
        'give the current SO-PIN with --so-pin; change it afterwards with so-pin change',
      );
    }

    if (dkekShares === 0) {
      ctx.out.warn(
        '--dkek-shares 0: the card makes a random DKEK that nobody knows. Keys can be wrapped but only ever restored onto THIS device; a hardware failure loses them.',
      );
    } else if (dkekShares === undefined) {
      ctx.out.warn(
        'no --dkek-shares: the device gets no DKEK, keys can NEVER be backed up or moved to a replacement device. Use --dkek-shares 1 (or more) for a CA.',
      );
    }
    let keys = 0;
    if (before.initialized) {
      try {
        keys = (await d.hsm.listKeys()).length;
      } catch {
        keys = -1;
      }
    }
    await ctx.confirm(
      before.initialized
        ? `initializing ${d.reader} ERASES ALL ${keys >= 0 ? `${keys} KEY(S), ` : 'KEYS, '}certificates and data objects on it (label "${before.label ?? ''}").`
        : `initializing ${d.reader}: this sets the SO-PIN for the life of the device (write it down; 15 wrong tries lock the device for good).`,
    );
    const opts: Parameters<typeof d.hsm.initialize>[0] = { soPin, userPin: pin, label, force: ctx.g.lastTry };
    if (retry !== undefined) opts.retryCounter = retry;
    if (dkekShares !== undefined) opts.dkekShares = dkekShares;
    await d.hsm.initialize(opts);
    const st = await d.hsm.status();
    ctx.out.ok(`initialized ${d.reader}`);
    if (generate) {
      ctx.out.line('');
      ctx.out.line(ctx.out.paint('bold', `SO-PIN: ${soPin}`));
      ctx.out.line('Write the SO-PIN down now and keep it safe: it is shown only this once.');
      ctx.out.line('');
    }
    printStatus(ctx, st);
    if (st.dkek && st.dkek.outstanding > 0) {
      ctx.out.line('');
      ctx.out.line(
        `Next: import the DKEK share(s): sc-hsm-ts dkek import FILE.pbe (${st.dkek.outstanding} outstanding)`,
      );
    }
    const out: Record<string, unknown> = { initialized: true, reader: d.reader, status: st };
    if (generate) out.soPin = soPin;
    return out;
  },
};

import { parseSoPin, parseUserPin } from '../../../sc-hsm/validate.js';
import { type Command, SECRET_HELP } from '../../command.js';
import { flag } from '../../context.js';
import { CliError } from '../../exit-codes.js';

const PIN = { type: 'string', arg: 'SECRET', help: `user PIN (${SECRET_HELP})` } as const;
const SO_PIN = { type: 'string', arg: 'SECRET', help: `SO-PIN, 16 hex characters (${SECRET_HELP})` } as const;

export const pinStatus: Command = {
  name: 'pin status',
  summary: 'Tries left for the user PIN and the SO-PIN (costs no try).',
  async run(ctx) {
    const st = await (await ctx.hsm()).status();
    const o = ctx.out;
    if (!st.initialized) o.line('The device is not initialized: no PINs are set.');
    else {
      const u = st.userPin;
      o.kv(
        'User PIN',
        u.blocked
          ? 'BLOCKED: sc-hsm-ts pin unblock'
          : u.transportPin
            ? 'transport PIN active: sc-hsm-ts pin change'
            : `${u.triesLeft} tries left`,
      );
      o.kv('SO-PIN', st.soPin.blocked ? 'BLOCKED' : `${st.soPin.triesLeft} tries left`);
    }
    return { initialized: st.initialized, userPin: st.userPin, soPin: st.soPin };
  },
};

export const pinVerify: Command = {
  name: 'pin verify',
  summary: 'Check the user PIN. The tries left are read first; a blocked PIN or one try left is not sent.',
  options: { pin: PIN },
  async run(ctx, v) {
    const hsm = await ctx.hsm();
    await ctx.login(hsm, v);
    ctx.out.ok('the user PIN is correct');
    return { verified: true };
  },
};

export const pinChange: Command = {
  name: 'pin change',
  summary: 'Change the user PIN (also replaces a transport PIN).',
  options: {
    pin: { ...PIN, help: `current user PIN (${SECRET_HELP})` },
    'new-pin': { ...PIN, help: `new user PIN, 6-15 characters (${SECRET_HELP})` },
  },
  async run(ctx, v) {
    const old = await ctx.secret(v.pin, { option: 'pin', prompt: 'Current user PIN' });
    parseUserPin(old, 'current user PIN');
    const next = await ctx.secret(v['new-pin'], {
      option: 'new-pin',
      prompt: 'New user PIN (6-15 characters)',
      confirm: true,
    });
    parseUserPin(next, 'new user PIN');
    const hsm = await ctx.hsm();
    await hsm.changePin(old, next, { force: ctx.g.lastTry });
    ctx.out.ok('the user PIN was changed');
    return { changed: true };
  },
};

export const pinUnblock: Command = {
  name: 'pin unblock',
  summary:
    'Unblock the user PIN with the SO-PIN and set a new user PIN (pkcs11-tool --login-type so --init-pin).',
  description:
    'With --reset-only the retry counter is reset and the old PIN stays. The SO-PIN has 15 tries and a\n' +
    'blocked SO-PIN cannot be recovered: its tries left are checked first and one try left is refused\n' +
    'without --last-try.',
  options: {
    'so-pin': SO_PIN,
    'new-pin': { ...PIN, help: `new user PIN, 6-15 characters (${SECRET_HELP})` },
    'reset-only': { type: 'boolean', help: 'only reset the retry counter, keep the current user PIN' },
  },
  async run(ctx, v) {
    const resetOnly = flag(v, 'reset-only');
    if (resetOnly && v['new-pin'] !== undefined)
      throw new CliError('USAGE_ERROR', '--reset-only and --new-pin exclude each other');
    const so = await ctx.secret(v['so-pin'], { option: 'so-pin', prompt: 'SO-PIN' });
    parseSoPin(so);
    let newPin: string | undefined;
    if (!resetOnly) {
      newPin = await ctx.secret(v['new-pin'], {
        option: 'new-pin',
        prompt: 'New user PIN (6-15 characters)',
        confirm: true,
      });
      parseUserPin(newPin, 'new user PIN');
    }
    const hsm = await ctx.hsm();
    await hsm.unblockPin(
      newPin === undefined
        ? { soPin: so, force: ctx.g.lastTry }
        : { soPin: so, newPin, force: ctx.g.lastTry },
    );
    const st = await hsm.status();
    ctx.out.ok(
      resetOnly
        ? 'the user PIN retry counter was reset'
        : 'the user PIN was unblocked and set to the new PIN',
    );
    ctx.out.kv('User PIN tries left', st.userPin.triesLeft ?? '?');
    return { unblocked: true, newPin: !resetOnly, userPin: st.userPin };
  },
};

export const soPinChange: Command = {
  name: 'so-pin change',
  summary: 'Change the SO-PIN (both exactly 16 hex characters).',
  description: 'Record the new SO-PIN before you run this: a lost SO-PIN cannot be recovered.',
  options: {
    'so-pin': { ...SO_PIN, help: `current SO-PIN (${SECRET_HELP})` },
    'new-so-pin': { ...SO_PIN, help: `new SO-PIN, 16 hex characters (${SECRET_HELP})` },
  },
  async run(ctx, v) {
    const old = await ctx.secret(v['so-pin'], { option: 'so-pin', prompt: 'Current SO-PIN' });
    parseSoPin(old, 'current SO-PIN');
    const next = await ctx.secret(v['new-so-pin'], {
      option: 'new-so-pin',
      prompt: 'New SO-PIN (16 hex characters)',
      confirm: true,
    });
    parseSoPin(next, 'new SO-PIN');
    const hsm = await ctx.hsm();
    await hsm.changeSoPin(old, next, { force: ctx.g.lastTry });
    ctx.out.ok('the SO-PIN was changed; keep the new one safe');
    return { changed: true };
  },
};

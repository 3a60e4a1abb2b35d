import { parseSoPin, parseUserPin } from '../../../sc-hsm/validate.js';
import type { Command } from '../../command.js';
import { flag } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { pinChangeSpec, pinStatusSpec, pinUnblockSpec, pinVerifySpec, soPinChangeSpec } from '../meta.js';

export const pinStatus: Command = {
  ...pinStatusSpec,
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
  ...pinVerifySpec,
  async run(ctx, v) {
    const hsm = await ctx.hsm();
    await ctx.login(hsm, v);
    ctx.out.ok('the user PIN is correct');
    return { verified: true };
  },
};

export const pinChange: Command = {
  ...pinChangeSpec,
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
  ...pinUnblockSpec,
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
  ...soPinChangeSpec,
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

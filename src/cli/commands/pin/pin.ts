import { OPTION } from '../../../protocol/constants.js';
import { parseSoPin, parseUserPin } from '../../../sc-hsm/validate.js';
import type { Command } from '../../command.js';
import { flag, reqStr } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { prepareOutput, writeOutput } from '../../files.js';
import { pinStateText } from '../../format.js';
import { applyKnownRetryCounter } from '../../pin-retry.js';
import {
  pinChangeSpec,
  pinSessionSpec,
  pinStatusSpec,
  pinUnblockSpec,
  pinVerifySpec,
  soPinChangeSpec,
} from '../meta.js';

const NEW_PIN_PROMPT = 'New user PIN (6-15 ASCII characters)';

export const pinStatus: Command = {
  ...pinStatusSpec,
  async run(ctx) {
    const hsm = await ctx.hsm();
    const st = await hsm.status();
    const o = ctx.out;
    if (!st.initialized) o.line('The device is not initialized: no PINs are set.');
    else {
      await applyKnownRetryCounter(ctx.io, hsm, st.userPin.triesLeft);
      const replaced =
        st.pka && !st.userPin.verified && st.userPin.triesLeft === undefined && !st.transportPin;
      o.kv(
        'User PIN',
        replaced
          ? 'not used: the custodians\u2019 public keys replace it (sc-hsm-ts pka authenticate)'
          : pinStateText(st.userPin, 'user-pin', hsm.userPinRetryCounter),
      );
      o.kv('SO-PIN', pinStateText(st.soPin, 'so-pin', 15));
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

export const pinSession: Command = {
  ...pinSessionSpec,
  async run(ctx, v) {
    const out = reqStr(v, 'out', 'the file to create for the session PIN');
    if (!ctx.g.secure)
      throw new CliError(
        'USAGE_ERROR',
        'the card gives a session PIN only inside secure messaging; nothing was sent',
        'add --secure',
      );
    const target = await prepareOutput(ctx, out, { what: 'session PIN file' });
    const hsm = await ctx.hsm();
    // the device's options are public (SELECT's FCP, tag 85): without 0004 the card refuses GET
    // SESSION PIN (6A81) only after the PIN was verified, so a wrong PIN would cost a try for nothing
    if ((hsm.info.options & OPTION.SESSION_PIN) === 0)
      throw new CliError(
        'NOT_SUPPORTED',
        `the device was initialized without the session PIN (option 0004; its options are ${hsm.info.options.toString(16).padStart(4, '0')}): it gives none. Nothing was sent that needs the PIN.`,
        'initialize the device with it (sc-hsm-ts init … --session-pin; init erases the device), or log in with --pin',
      );
    await ctx.login(hsm, v);
    const sp = await hsm.getSessionPin();
    try {
      await writeOutput(ctx, target, `${Buffer.from(sp).toString('hex')}\n`, 0o600);
    } finally {
      sp.fill(0);
    }
    ctx.out.ok(
      out === '-'
        ? 'printed the session PIN on standard output: keep it in a file (mode 0600) or an environment variable and give it with --secure --session-pin file:PATH or env:NAME until the card is reset'
        : `wrote the session PIN to ${out}: use it with --secure --session-pin file:${out} until the card is reset`,
    );
    return { out };
  },
};

export const pinChange: Command = {
  ...pinChangeSpec,
  async run(ctx, v) {
    const old = await ctx.secret(v.pin, { option: 'pin', prompt: 'Current user PIN' });
    parseUserPin(old, 'current user PIN');
    const next = await ctx.secret(v['new-pin'], { option: 'new-pin', prompt: NEW_PIN_PROMPT, confirm: true });
    parseUserPin(next, 'new user PIN');
    const hsm = await ctx.hsm();
    // --pka-and-pin: changing the PIN (old PIN checked by the card itself) authorizes nothing, so it
    // needs no custodians, as a transport PIN's first change must not
    await applyKnownRetryCounter(ctx.io, hsm);
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
      newPin = await ctx.secret(v['new-pin'], { option: 'new-pin', prompt: NEW_PIN_PROMPT, confirm: true });
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
    await applyKnownRetryCounter(ctx.io, hsm);
    ctx.out.kv('User PIN', pinStateText(st.userPin, 'user-pin', hsm.userPinRetryCounter));
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

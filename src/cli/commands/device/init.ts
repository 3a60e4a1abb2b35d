import { randomBytes } from 'node:crypto';
import { checkLabel, checkRetryCounter, parseSoPin, parseUserPin } from '../../../sc-hsm/validate.js';
import type { Command } from '../../command.js';
import { flag, int, reqStr } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { printable } from '../../format.js';
import { recordRetryCounter, retryRecordPath } from '../../pin-retry.js';
import { initSpec } from '../meta.js';
import { printStatus } from './status.js';

export const init: Command = {
  ...initSpec,
  async run(ctx, v) {
    const transportPin = flag(v, 'transport-pin');
    const pkaTotal = int(v, 'pka', 1, 90);
    const pkaRequired = int(v, 'required', 1, 90);
    const pkaAndPin = flag(v, 'pka-and-pin');
    if (pkaTotal === undefined && (pkaRequired !== undefined || pkaAndPin))
      throw new CliError(
        'USAGE_ERROR',
        `--${pkaRequired !== undefined ? 'required' : 'pka-and-pin'} needs --pka N`,
      );
    if (pkaTotal !== undefined && pkaRequired === undefined)
      throw new CliError('USAGE_ERROR', '--pka N needs --required M (how many custodians must authenticate)');
    if (pkaTotal !== undefined && pkaRequired! > pkaTotal)
      throw new CliError(
        'USAGE_ERROR',
        `--required ${pkaRequired} exceeds --pka ${pkaTotal}: M must be at most N`,
      );
    // without option 0010 the custodians' keys replace the user PIN: a transport PIN would be unused
    if (transportPin && pkaTotal !== undefined && !pkaAndPin)
      throw new CliError(
        'USAGE_ERROR',
        "--transport-pin with --pka but without --pka-and-pin: the custodians' keys replace the user PIN on that device, so a transport PIN would never be used",
        'add --pka-and-pin (the PIN and the custodians are both needed), or leave --transport-pin out',
      );
    // EF.TokenInfo can only be written by an authenticated user, which neither mode has after init
    const noLabel = transportPin || pkaTotal !== undefined;
    if (noLabel && v.label !== undefined)
      throw new CliError(
        'USAGE_ERROR',
        `--label cannot be set with --${transportPin ? 'transport-pin' : 'pka'}: the label file can only be written by an authenticated user, which the device has no one for after this init`,
        'leave --label out',
      );
    const label = noLabel ? undefined : reqStr(v, 'label', 'the token label');
    if (label !== undefined) checkLabel(label, 'token label');
    const dkekShares = int(v, 'dkek-shares', 0, 255);
    const keyDomains = int(v, 'key-domains', 1, 255);
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
      prompt: 'New user PIN (6-15 ASCII characters)',
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
    } else if (dkekShares === undefined && keyDomains !== undefined && keyDomains > 1) {
      ctx.out.warn(
        `no --dkek-shares: key domain 0 gets no DKEK, so keys generated without a key domain (sc-hsm-ts keygen --domain N) can NEVER be backed up or moved; keys of domains 1..${keyDomains - 1} can, once a domain is created with its shares (sc-hsm-ts domain create, domain import).`,
      );
    } else if (dkekShares === undefined) {
      ctx.out.warn(
        'no --dkek-shares: the device gets no DKEK, keys can NEVER be backed up or moved to a replacement device. Use --dkek-shares 1 (or more) for a CA.',
      );
    }
    if (retry === 1) {
      ctx.out.warn(
        '--pin-retry 1: a single wrong user PIN blocks it (only the SO-PIN can unblock it). The card does not report this setting, so a command that sends the user PIN sees "1 try left" every time: on this computer init records the device so that no --last-try is needed; elsewhere every command needs --last-try.',
      );
    } else if (retry === 2) {
      ctx.out.warn(
        '--pin-retry 2: after one wrong user PIN the next one blocks it; commands then refuse to send the PIN without --last-try.',
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
        ? `initializing ${d.reader} ERASES ALL ${keys >= 0 ? `${keys} KEY(S), ` : 'KEYS, '}certificates and data objects on it (label "${printable(before.label)}").`
        : `initializing ${d.reader}: this sets the SO-PIN for the life of the device (write it down: after 15 wrong tries the SO-PIN is blocked for good, and the device can never be re-initialized nor its user PIN unblocked).`,
    );
    const opts: Parameters<typeof d.hsm.initialize>[0] = { soPin, userPin: pin, force: ctx.g.lastTry };
    if (label !== undefined) opts.label = label;
    if (transportPin) opts.transportPin = true;
    if (pkaTotal !== undefined) opts.publicKeyAuth = { total: pkaTotal, required: pkaRequired! };
    if (pkaAndPin) opts.combinedAuth = true;
    if (flag(v, 'session-pin')) opts.sessionPin = true;
    if (retry !== undefined) opts.retryCounter = retry;
    if (dkekShares !== undefined) opts.dkekShares = dkekShares;
    if (keyDomains !== undefined) opts.keyDomains = keyDomains;
    await d.hsm.initialize(opts);
    const st = await d.hsm.status();
    let record: string | undefined;
    try {
      record = await recordRetryCounter(ctx.io, d.hsm, retry ?? 3);
      if (retry === 1) {
        if (record) ctx.out.note(`recorded the user PIN retry counter of 1 for this device in ${record}`);
        else
          ctx.out.warn(
            'neither XDG_CONFIG_HOME nor HOME is set: nothing was recorded, commands will need --last-try',
          );
      }
    } catch (e) {
      ctx.out.warn(
        `the user PIN retry counter of this device could not be recorded on this computer (${(e as Error).message}); remove or fix ${retryRecordPath(ctx.io.env)}`,
      );
    }
    ctx.out.ok(`initialized ${d.reader}`);
    if (generate) {
      ctx.out.line('');
      ctx.out.line(ctx.out.paint('bold', `SO-PIN: ${soPin}`));
      ctx.out.line('Write the SO-PIN down now and keep it safe: it is shown only this once.');
      ctx.out.line('');
    }
    printStatus(ctx, st);
    if (transportPin) {
      ctx.out.line('');
      ctx.out.line(
        'Next: the owner sets their own PIN: sc-hsm-ts pin change --pin TRANSPORT-PIN --new-pin NEW',
      );
    }
    if (st.pka) {
      ctx.out.line('');
      ctx.out.line(
        `Next: register ${st.pka.total} custodian key(s): sc-hsm-ts pka register FILE (from sc-hsm-ts pka export / sc-hsm-tool --export-for-pub-key-auth)`,
      );
    }
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

import type { DeviceStatus } from '../../../sc-hsm/session.js';
import type { Command } from '../../command.js';
import type { Ctx } from '../../context.js';
import { kcvText, printable } from '../../format.js';
import { applyKnownRetryCounter } from '../../pin-retry.js';
import { domainJson, domainText } from '../domain/format.js';
import { statusSpec } from '../meta.js';

const OPTION_TEXT: [number, string][] = [
  [0x0001, 'User PIN reset with SO-PIN enabled'],
  [0x0002, 'Transport-PIN mode enabled'],
  [0x0004, 'Session-PIN enabled'],
  [0x0008, 'Replacement of public key authentication keys allowed'],
  [0x0010, 'Combined authentication (user PIN and public key authentication)'],
  [0x0020, 'Reset retry counter resets only the counter'],
];

/** What `status` and `dump` say while the transport PIN is active (option 0002, spec §3.6). */
export const TRANSPORT_PIN_TEXT = 'transport PIN active \u2014 set your own PIN with `pin change`';

export function optionLines(options: number): string[] {
  return OPTION_TEXT.filter(([b]) => options & b).map(([, t]) => t);
}

/** Prints a status block the way bare `sc-hsm-tool` does (plus label and serial). */
export function printStatus(ctx: Ctx, st: DeviceStatus, reader?: string): void {
  const o = ctx.out;
  if (reader) o.kv('Reader', reader);
  o.kv('Version', `${st.version.major}.${st.version.minor}`);
  if (!st.initialized) {
    o.line(
      o.paint('yellow', 'Device has not been initialized (uninitialized): run `sc-hsm-ts init --help`.'),
    );
    if (st.serial) o.kv('Serial', printable(st.serial));
    return;
  }
  const opts = optionLines(st.options);
  o.kv('Config options', opts.length ? '' : 'none');
  for (const l of opts) o.line(`  ${l}`);
  o.kv(
    'SO-PIN tries left',
    st.soPin.blocked
      ? 'BLOCKED for good (the device can no longer be re-initialized nor its user PIN unblocked)'
      : (st.soPin.triesLeft ?? '?'),
  );
  const u = st.userPin;
  o.kv(
    'User PIN tries left',
    u.blocked
      ? 'BLOCKED (unblock with the SO-PIN: sc-hsm-ts pin unblock)'
      : u.transportPin
        ? TRANSPORT_PIN_TEXT
        : st.pka && !u.verified && u.triesLeft === undefined
          ? 'not used: the custodians\u2019 public keys replace it (sc-hsm-ts pka authenticate)'
          : u.verified && u.triesLeft === undefined
            ? 'all (the PIN is verified in this session, so its counter is full)'
            : `${u.triesLeft ?? '?'}${u.verified ? ' (verified)' : ''}`,
  );
  if (st.pka) {
    o.kv(
      'Public key auth',
      `${st.pka.required} of ${st.pka.total} keys required, ${st.pka.missing} not registered, ${st.pka.authenticated} authenticated (sc-hsm-ts pka status)`,
    );
  }
  if (st.dkek) {
    o.kv('DKEK shares', st.dkek.total);
    if (st.dkek.outstanding > 0) {
      o.line(`DKEK import pending, ${st.dkek.outstanding} share(s) still missing`);
    } else {
      o.kv('DKEK key check value', kcvText(st.dkek.kcv));
      if (st.dkek.allZero) warnZeroDkek(ctx);
    }
  } else {
    o.kv('DKEK', 'none (keys cannot be backed up)');
  }
  if (st.label !== undefined) o.kv('Label', printable(st.label));
  if (st.serial) o.kv('Serial', printable(st.serial));
}

/**
 * The loud line for a device whose DKEK is 32 zero bytes (its shares cancelled out): beside the KCV,
 * or on stderr under --json (whose document carries `dkek.allZero: true`).
 */
export function warnZeroDkek(ctx: Ctx): void {
  const text =
    'the DKEK is 32 zero bytes (its shares cancelled out, e.g. one share imported twice): anything wrapped or backed up under it can be unwrapped by anyone. Re-initialize the device and import distinct shares.';
  if (ctx.g.json) ctx.out.warn(text);
  else ctx.out.line(ctx.out.paint('red', `WARNING: ${text}`));
}

export const status: Command = {
  ...statusSpec,
  async run(ctx) {
    const d = await ctx.open();
    const st = await d.hsm.status();
    // a stale `--pin-retry 1` record of this device is dropped as soon as the card contradicts it
    if (st.initialized) await applyKnownRetryCounter(ctx.io, d.hsm, st.userPin.triesLeft);
    printStatus(ctx, st, d.reader);
    if (!st.initialized) return { reader: d.reader, ...st };
    // every key domain with its KCV (spec §3.10); one line each on a device with key domains
    const kd = await d.hsm.listKeyDomains();
    if (kd.slots > 1) {
      ctx.out.kv('Key domains', kd.slots);
      for (const x of kd.domains) ctx.out.kv(`  domain ${x.domain}`, domainText(x));
    }
    // `dkek` is the default key domain's (0), named as in dump and `domain status`
    const dkek = st.dkek && { domain: 0, ...st.dkek };
    return { reader: d.reader, ...st, dkek, keyDomains: kd.slots, domains: kd.domains.map(domainJson) };
  },
};

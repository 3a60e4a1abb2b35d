import { ScHsmError } from '../../../errors.js';
import { PIN_SO } from '../../../protocol/constants.js';
import { pinTryOf, refuseUnsafeTry } from '../../../sc-hsm/pin-guard.js';
import { maskedCommandHex } from '../../../sc-hsm/transcript-mask.js';
import { toHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { CliError } from '../../exit-codes.js';
import { parseHexArg } from '../../format.js';
import { applyKnownRetryCounter } from '../../pin-retry.js';
import { apduSpec } from '../meta.js';

export const apdu: Command = {
  ...apduSpec,
  async run(ctx, _v, hexes) {
    const cmds = hexes.map((h, i) => {
      const b = parseHexArg(h);
      if (!b || b.length < 4)
        throw new CliError('USAGE_ERROR', `APDU #${i + 1} is not hex of at least 4 bytes`);
      return b;
    });
    // raw APDUs go to the reader as typed: secure messaging could not protect them, and the card
    // would end its secure channel at the first plain one
    if (ctx.g.secure)
      throw new CliError(
        'USAGE_ERROR',
        'apdu sends the APDUs as typed, unprotected: it cannot run with --secure; nothing was sent',
        'run apdu without --secure',
      );
    const hsm = await ctx.hsm();
    if (cmds.some((c) => pinTryOf(c))) await applyKnownRetryCounter(ctx.io, hsm);
    const results: { command: string; sw: string; data: Uint8Array }[] = [];
    for (const [i, c] of cmds.entries()) {
      // A raw VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER or INITIALIZE with data obeys the
      // same guard as the verbs: the tries left are read first (free), one try left needs --last-try.
      const tried = pinTryOf(c);
      if (tried) {
        let st: Awaited<ReturnType<typeof hsm.pinStatus>>;
        try {
          st = await hsm.pinStatus(tried.ref);
        } catch (e) {
          throw new ScHsmError(
            'CARD_ERROR',
            `APDU #${i + 1} (${tried.command}) can cost a PIN try, and the tries left could not be read first (${(e as Error).message}); it was not sent`,
            { cause: e },
          );
        }
        // a blocked PIN costs nothing more: the card answers for itself
        if (st.state !== 'blocked' && !(tried.ref !== PIN_SO && st.state === 'transport-pin')) {
          refuseUnsafeTry(tried.ref, st, `${tried.command} (APDU #${i + 1})`, {
            force: ctx.g.lastTry,
            userPinRetryCounter: hsm.userPinRetryCounter,
            requireInitialized: false,
          });
        }
      }
      let r = await hsm.channel.transport.transmit(c);
      let data = r.subarray(0, r.length - 2);
      let sw = (r[r.length - 2]! << 8) | r[r.length - 1]!;
      while ((sw & 0xff00) === 0x6100) {
        r = await hsm.channel.transport.transmit(Uint8Array.of(0x00, 0xc0, 0x00, 0x00, sw & 0xff));
        data = Buffer.concat([data, r.subarray(0, r.length - 2)]);
        sw = (r[r.length - 2]! << 8) | r[r.length - 1]!;
      }
      const swText = sw.toString(16).toUpperCase().padStart(4, '0');
      results.push({ command: maskedCommandHex(c), sw: swText, data: new Uint8Array(data) });
      ctx.out.line(`=> ${maskedCommandHex(c)}`);
      ctx.out.line(`<= SW ${swText}${data.length ? ` data ${toHex(data)}` : ''}`);
    }
    return { responses: results };
  },
};

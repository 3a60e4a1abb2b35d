import { maskedHex } from '../../../apdu/transcript.js';
import { toHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { CliError } from '../../exit-codes.js';
import { parseHexArg } from '../../format.js';
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
    const hsm = await ctx.hsm();
    const results: { command: string; sw: string; data: Uint8Array }[] = [];
    for (const c of cmds) {
      let r = await hsm.channel.transport.transmit(c);
      let data = r.subarray(0, r.length - 2);
      let sw = (r[r.length - 2]! << 8) | r[r.length - 1]!;
      while ((sw & 0xff00) === 0x6100) {
        r = await hsm.channel.transport.transmit(Uint8Array.of(0x00, 0xc0, 0x00, 0x00, sw & 0xff));
        data = Buffer.concat([data, r.subarray(0, r.length - 2)]);
        sw = (r[r.length - 2]! << 8) | r[r.length - 1]!;
      }
      const swText = sw.toString(16).toUpperCase().padStart(4, '0');
      results.push({ command: maskedHex(c), sw: swText, data: new Uint8Array(data) });
      ctx.out.line(`=> ${maskedHex(c)}`);
      ctx.out.line(`<= SW ${swText}${data.length ? ` data ${toHex(data)}` : ''}`);
    }
    return { responses: results };
  },
};

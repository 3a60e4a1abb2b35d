/**
 * `verify-device`: checks the device certificate chain in EF 2F02 against CardContact's
 * production root (SRCA, spec §5.3). OpenSC never checks it. Work done in src/x509/device-auth.ts.
 */
import { verifyDeviceAuthenticity } from '../../x509/device-auth.js';
import type { Command } from '../command.js';
import { EXIT } from '../exit-codes.js';
import { printable } from '../format.js';
import { verifyDeviceSpec } from './meta.js';

export const verifyDevice: Command = {
  ...verifyDeviceSpec,
  async run(ctx) {
    const d = await ctx.open();
    const r = await verifyDeviceAuthenticity(d.hsm);
    const o = ctx.out;
    const colour = r.verdict === 'genuine' ? 'green' : r.verdict === 'virtual' ? 'yellow' : 'red';
    o.kv('Reader', printable(d.reader));
    if (r.deviceChr) o.kv('Device', printable(r.deviceChr));
    o.kv('Verdict', o.paint(colour, r.verdict.toUpperCase()));
    for (const c of r.chain)
      o.line(
        `  ${c.valid ? '✔' : '✘'} ${printable(c.chr)}${c.car && c.car !== c.chr ? ` (issued by ${printable(c.car)})` : ' (root)'}`,
      );
    o.line(printable(r.reason));
    if (!(r.verdict === 'genuine' || (r.verdict === 'virtual' && d.virtual))) ctx.exitCode = EXIT.FAILED;
    return { reader: d.reader, ...r };
  },
};

/**
 * `verify-device`: checks the device certificate chain in EF 2F02 against CardContact's
 * production root (SRCA, spec §5.3). OpenSC never checks it. Work done in src/x509/device-auth.ts.
 */
import { verifyDeviceAuthenticity } from '../../x509/device-auth.js';
import type { Command } from '../command.js';
import { EXIT } from '../exit-codes.js';

export const verifyDevice: Command = {
  name: 'verify-device',
  summary:
    'Check that the device is a genuine SmartCard-HSM: its certificate chain up to the SmartCard-HSM Root CA.',
  description:
    'Verdicts: genuine (chain verifies up to DESRCACC100001), virtual (the sc-hsm-ts virtual card),\n' +
    'untrusted (ends at an unknown root), broken (a signature does not verify). Exit 0 for genuine,\n' +
    'and for virtual when the device is the virtual card (--sim); otherwise exit 1. Needs no PIN.',
  examples: ['sc-hsm-ts verify-device', 'sc-hsm-ts verify-device --json'],
  async run(ctx) {
    const d = await ctx.open();
    const r = await verifyDeviceAuthenticity(d.hsm);
    const o = ctx.out;
    const colour = r.verdict === 'genuine' ? 'green' : r.verdict === 'virtual' ? 'yellow' : 'red';
    o.kv('Reader', d.reader);
    if (r.deviceChr) o.kv('Device', r.deviceChr);
    o.kv('Verdict', o.paint(colour, r.verdict.toUpperCase()));
    for (const c of r.chain)
      o.line(
        `  ${c.valid ? '✔' : '✘'} ${c.chr}${c.car && c.car !== c.chr ? ` (issued by ${c.car})` : ' (root)'}`,
      );
    o.line(r.reason);
    if (!(r.verdict === 'genuine' || (r.verdict === 'virtual' && d.virtual))) ctx.exitCode = EXIT.FAILED;
    return { reader: d.reader, ...r };
  },
};

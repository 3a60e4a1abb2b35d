import { join } from 'node:path';
import { backupDevice, deviceText, MANIFEST } from '../../../sc-hsm/backup.js';
import { fromHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { flag } from '../../context.js';
import { refuseOverwrite } from '../../files.js';
import { kcvText, printable } from '../../format.js';
import { backupSpec } from '../meta.js';

export const backup: Command = {
  ...backupSpec,
  async run(ctx, v, [dir]) {
    const d = dir!;
    const force = flag(v, 'force');
    // before the device is opened (backupDevice checks it again)
    await refuseOverwrite(join(d, MANIFEST), force, 'backup manifest');
    const hsm = await ctx.hsm();
    let p: ReturnType<typeof ctx.progress> | undefined;
    const r = await backupDevice(hsm, d, {
      force,
      authenticate: () => ctx.login(hsm, v),
      onProgress: (done, total) => {
        p ??= ctx.progress(`Wrapping ${total} key(s)`);
        p.update(done / Math.max(1, total));
      },
    });
    p?.done();
    const { manifest } = r;
    const entries = manifest.keys;
    const o = ctx.out;
    if (entries.length === 0) o.warn('the device holds no keys: the backup is empty');
    o.ok(`${entries.length} key(s) backed up to ${d} and verified`);
    o.kv('DKEK key check value', kcvText(fromHex(manifest.device.kcv)));
    o.kv('Device', printable(deviceText(r.device)));
    if (r.removedTemps.length)
      o.note(`removed ${r.removedTemps.length} temp file(s) an interrupted backup left in ${d}`);
    for (const e of entries)
      o.line(`  key ref ${e.keyRef}  ${printable(e.file)}  "${printable(e.label)}"  ID ${printable(e.id)}`);
    o.line(
      'Restoring needs a device with the same DKEK (import the same share files), then: sc-hsm-ts restore DIR',
    );
    return { dir: d, verified: r.verified, device: r.device, manifest };
  },
};

import { join } from 'node:path';
import { isScHsmError } from '../../../errors.js';
import { backupDevice, deviceText, MANIFEST } from '../../../sc-hsm/backup.js';
import { fromHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { flag } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { exists } from '../../files.js';
import { kcvText, printable } from '../../format.js';
import { backupSpec } from '../meta.js';

/** A rerun into a directory that holds a complete backup: what --force really does there. */
function completeBackupThere(dir: string): CliError {
  return new CliError(
    'FILE_EXISTS',
    `${printable(dir)} already holds a complete backup (${MANIFEST}); it was left unchanged and nothing was written`,
    `back up into a new or empty directory, or add --force to write this device\u2019s backup over the one in ${printable(dir)} (a backup of another device there is refused all the same)`,
  );
}

export const backup: Command = {
  ...backupSpec,
  async run(ctx, v, [dir]) {
    const d = dir!;
    const force = flag(v, 'force');
    // before the device is opened (backupDevice checks it again)
    if (!force && (await exists(join(d, MANIFEST)))) throw completeBackupThere(d);
    const hsm = await ctx.hsm();
    let p: ReturnType<typeof ctx.progress> | undefined;
    let r: Awaited<ReturnType<typeof backupDevice>>;
    try {
      r = await backupDevice(hsm, d, {
        force,
        skipUnwrappable: flag(v, 'skip-unwrappable'),
        authenticate: () => ctx.login(hsm, v),
        onProgress: (done, total) => {
          p ??= ctx.progress(`Wrapping ${total} key(s)`);
          p.update(done / Math.max(1, total));
        },
      });
    } catch (e) {
      // the manifest appeared meanwhile; FILE_EXISTS with a fix of its own (another device's files) stays
      if (isScHsmError(e, 'FILE_EXISTS') && e.fix === undefined && !force) throw completeBackupThere(d);
      throw e;
    }
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
    const warnings = [
      ...r.skipped.map(
        (s) =>
          `key ref ${s.keyRef} "${s.label ?? ''}" was NOT backed up: it may not be wrapped (its algorithm list lacks WRAP); the manifest lists it as skipped`,
      ),
      ...r.counted.map(
        (c) =>
          `key ref ${c.keyRef} "${c.label ?? ''}" has a key use counter (${c.useCounter} use(s) left): the backup does not carry it, so a key restored from it can be used without limit`,
      ),
    ];
    for (const w of warnings) o.warn(w);
    o.line(
      'Restoring needs a device with the same DKEK (import the same share files), then: sc-hsm-ts restore DIR',
    );
    return {
      dir: d,
      verified: r.verified,
      device: r.device,
      manifest,
      ...(r.skipped.length && { skipped: r.skipped }),
      ...(warnings.length && { warnings }),
    };
  },
};

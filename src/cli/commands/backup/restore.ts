import {
  checkBackup,
  deviceIdentity,
  deviceText,
  type RestoreOptions,
  restoreDevice,
} from '../../../sc-hsm/backup.js';
import type { Command } from '../../command.js';
import { printable } from '../../format.js';
import { restoreSpec } from '../meta.js';
import { copyDir, replaceChoices, replacedKeySaver, replaceFailure, UNSAFE_RESTORE_FIX } from './replaced.js';

const DONE = {
  restore: 'restored',
  present: 'already present, left as it is',
  complete: 'completed',
  replace: 'replaced',
} as const;
/** An AES key with the backup's label, ID, type and size (RestoreStep.unverified). */
const UNVERIFIED =
  "on the device, left as it is (an AES key: its value cannot be compared with the backup's)";

export const restore: Command = {
  ...restoreSpec,
  async run(ctx, v, [dir]) {
    const d = dir!;
    const choices = await replaceChoices(v);
    // the backup's files and hashes are checked before the device is opened
    const checked = await checkBackup(d);
    // keys the backup could not hold (backup --skip-unwrappable): they will be missing here
    for (const k of checked.manifest.skipped ?? [])
      ctx.out.warn(
        `the backup does not hold key ref ${k.keyRef} "${k.label ?? ''}" of its device: it may not be wrapped and was skipped`,
      );
    const hsm = await ctx.hsm();
    const device = await deviceIdentity(hsm);
    const o = ctx.out;
    const saved = new Map<number, string>();
    // the wrapped copies of replaced keys: --save-replaced DIR, else the backup directory
    const copies = copyDir(choices, d);
    let p: ReturnType<typeof ctx.progress> | undefined;
    const opts: RestoreOptions = {
      force: choices.force,
      allowKeyLoss: choices.allowKeyLoss,
      authenticate: () => ctx.login(hsm, v),
      confirmReplace: async (conflicts) => {
        await ctx.confirm(
          `--force replaces on device ${deviceText(device)}: ${conflicts.map((c) => printable(c.text)).join('; ')} (the wrapped copy of each is written into ${copies} before it is deleted, and it is put back if restoring over it fails)`,
        );
        return true;
      },
      onInterrupted: (elsewhere) => {
        for (const e of elsewhere)
          o.warn(
            `a restore of ${d} onto device ${deviceText(e)}${e.started ? ` (started ${printable(e.started)})` : ''} was not completed there; this run restores onto device ${deviceText(device)}`,
          );
      },
      onProgress: (done, total) => {
        p ??= ctx.progress(`Restoring ${total} key(s)`);
        p.update(done / total);
      },
    };
    opts.onReplaced = replacedKeySaver(device, saved, {
      dir: copies,
      fix: 'name a writable directory for the copies: --save-replaced DIR',
      say: (line) => o.note(line),
    });
    let r: Awaited<ReturnType<typeof restoreDevice>>;
    try {
      r = await restoreDevice(hsm, checked, opts);
    } catch (e) {
      throw await replaceFailure(e, {
        choices,
        device,
        saved,
        input: copies,
        unsafeFix: UNSAFE_RESTORE_FIX,
      });
    }
    p?.done();
    // labels come from the manifest, a file: escaped (printable)
    for (const s of r.keys) if (s.note) o.warn(s.note);
    for (const s of r.keys) {
      const copy = saved.get(s.keyRef);
      o.line(
        `  key ref ${s.keyRef}  "${printable(s.entry.label)}"  ${s.unverified ? UNVERIFIED : DONE[s.action]}${copy ? ` (the replaced key's wrapped copy: ${copy})` : ''}`,
      );
    }
    const unverified = r.keys.filter((s) => s.unverified).length;
    o.ok(
      `restore complete: ${r.written} written, ${r.keys.length - r.written} already present${unverified ? ` (${unverified} of them AES key(s) that could not be compared with the backup's: --force replaces them)` : ''}`,
    );
    o.kv('Device', printable(deviceText(r.device)));
    return {
      dir: d,
      kcv: r.kcv,
      device: r.device,
      interrupted: r.interrupted,
      keys: r.keys.map((s) => {
        const copy = saved.get(s.keyRef);
        return {
          keyRef: s.keyRef,
          action: s.action,
          ...(s.unverified && { unverified: true }),
          ...(copy && { replacedSavedTo: copy }),
          ...(s.note && { note: s.note }),
        };
      }),
    };
  },
};

import { checkBackup, restoreDevice } from '../../../sc-hsm/backup.js';
import type { Command } from '../../command.js';
import { flag } from '../../context.js';
import { restoreSpec } from '../meta.js';

const DONE = {
  restore: 'restored',
  present: 'already present, left as it is',
  complete: 'completed',
  replace: 'replaced',
} as const;

export const restore: Command = {
  ...restoreSpec,
  async run(ctx, v, [dir]) {
    const d = dir!;
    // the backup's files and hashes are checked before the device is opened
    const checked = await checkBackup(d);
    const hsm = await ctx.hsm();
    let p: ReturnType<typeof ctx.progress> | undefined;
    const r = await restoreDevice(hsm, checked, {
      force: flag(v, 'force'),
      authenticate: () => ctx.login(hsm, v),
      confirmReplace: async (conflicts) => {
        await ctx.confirm(`--force replaces: ${conflicts.map((c) => c.text).join('; ')}`);
        return true;
      },
      onProgress: (done, total) => {
        p ??= ctx.progress(`Restoring ${total} key(s)`);
        p.update(done / total);
      },
    });
    p?.done();
    const o = ctx.out;
    for (const s of r.keys) o.line(`  key ref ${s.keyRef}  "${s.entry.label ?? ''}"  ${DONE[s.action]}`);
    o.ok(`restore complete: ${r.written} written, ${r.keys.length - r.written} already present`);
    return { dir: d, kcv: r.kcv, keys: r.keys.map((s) => ({ keyRef: s.keyRef, action: s.action })) };
  },
};

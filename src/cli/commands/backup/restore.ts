import { join } from 'node:path';
import { bytesEqual, fromHex, toHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { flag } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { readHostFile } from '../../files.js';
import { kcvText, sha256Hex } from '../../format.js';
import { type WrapFileInfo, wrapFileInfo } from '../../wrapfile-info.js';
import { restoreSpec } from '../meta.js';
import { type ManifestKey, readManifest } from './manifest.js';

type Action = 'restore' | 'present' | 'complete' | 'replace';

export const restore: Command = {
  ...restoreSpec,
  async run(ctx, v, [dir]) {
    const d = dir!;
    const force = flag(v, 'force');
    const m = await readManifest(d);
    const files = new Map<number, { entry: ManifestKey; bin: Uint8Array; info: WrapFileInfo }>();
    for (const e of m.keys) {
      const bin = await readHostFile(join(d, e.file), 'backup file');
      if (sha256Hex(bin) !== e.sha256) {
        throw new CliError(
          'BACKUP_INVALID',
          `${e.file} does not match its SHA-256 in the manifest (damaged or replaced): nothing was changed`,
        );
      }
      const info = wrapFileInfo(bin);
      if (toHex(info.header.kcv) !== m.device.kcv.toLowerCase()) {
        throw new CliError(
          'BACKUP_INVALID',
          `${e.file} was wrapped under another DKEK than the manifest says: nothing was changed`,
        );
      }
      files.set(e.keyRef, { entry: e, bin, info });
    }
    const hsm = await ctx.hsm();
    const dkek = await hsm.dkekStatus();
    if (!dkek)
      throw new CliError(
        'NO_DKEK',
        'this device has no DKEK: initialize it with --dkek-shares and import the shares first. Nothing was changed.',
      );
    if (dkek.outstanding > 0)
      throw new CliError(
        'DKEK_INCOMPLETE',
        `this device still misses ${dkek.outstanding} DKEK share(s): nothing was changed`,
      );
    if (!bytesEqual(dkek.kcv, fromHex(m.device.kcv))) {
      throw new CliError(
        'KCV_MISMATCH',
        `the backup was made under DKEK ${kcvText(fromHex(m.device.kcv))}, this device has ${kcvText(dkek.kcv)}: import the same DKEK share files. Nothing was changed.`,
      );
    }
    const present = new Map((await hsm.listKeys()).map((k) => [k.keyRef, k]));
    const plan: { keyRef: number; action: Action }[] = [];
    const conflicts: string[] = [];
    for (const [keyRef, f] of files) {
      const k = present.get(keyRef);
      let action: Action = 'restore';
      if (k) {
        if (k.publicKey && f.info.publicKey)
          action = bytesEqual(k.publicKey, f.info.publicKey) ? 'present' : 'replace';
        else if (!k.publicKey && (!k.description || bytesEqual(k.id, fromHex(f.entry.id))))
          action = 'complete';
        else action = 'replace';
        if (action === 'replace')
          conflicts.push(
            `key ref ${keyRef} holds "${k.label ?? ''}" (ID ${toHex(k.id)}), the backup has "${f.entry.label ?? ''}"`,
          );
      }
      plan.push({ keyRef, action });
    }
    if (conflicts.length && !force) {
      throw new CliError(
        'KEY_REF_OCCUPIED',
        `key references are occupied by other keys: ${conflicts.join('; ')}. Nothing was changed.`,
      );
    }
    const todo = plan.filter((p) => p.action !== 'present');
    if (todo.length) {
      await ctx.login(hsm, v);
      if (conflicts.length) await ctx.confirm(`--force replaces: ${conflicts.join('; ')}`);
    }
    const p = ctx.progress(`Restoring ${todo.length} key(s)`);
    let n = 0;
    for (const step of todo) {
      const f = files.get(step.keyRef)!;
      await hsm.restoreKey(f.bin, step.keyRef, { force: step.action !== 'restore' });
      p.update(++n / todo.length);
    }
    p.done();
    const o = ctx.out;
    for (const step of plan) {
      const f = files.get(step.keyRef)!;
      const what = {
        restore: 'restored',
        present: 'already present, left as it is',
        complete: 'completed',
        replace: 'replaced',
      }[step.action];
      o.line(`  key ref ${step.keyRef}  "${f.entry.label ?? ''}"  ${what}`);
    }
    o.ok(`restore complete: ${todo.length} written, ${plan.length - todo.length} already present`);
    return { dir: d, kcv: dkek.kcv, keys: plan.map((s) => ({ keyRef: s.keyRef, action: s.action })) };
  },
};

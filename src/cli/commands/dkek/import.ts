import { keyCheckValue } from '../../../dkek/index.js';
import { isScHsmError } from '../../../errors.js';
import { wipe } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { list, str } from '../../context.js';
import {
  type Ceremony,
  fileFingerprint,
  loadCeremony,
  recordedKcvs,
  recordedShare,
  removeCeremony,
  saveCeremony,
} from '../../dkek-ceremony.js';
import { readDkekShare } from '../../dkek-input.js';
import { CliError } from '../../exit-codes.js';
import { readHostFile } from '../../files.js';
import { kcvText, printable } from '../../format.js';
import { dkekImportSpec } from '../meta.js';

function repeated(c: Ceremony, earlier: { file: string }, how: string): CliError {
  return new CliError(
    'DKEK_SHARE_REPEATED',
    `${how} ${printable(earlier.file)}, which was already imported into this device's DKEK; importing a share twice cancels it out (the DKEK would become 32 zero bytes or one custodian's share). Nothing was sent.`,
    `import the other share file(s)${c.path ? `; if the device was re-initialized with another tool since, remove ${printable(c.path)}` : ''}`,
  );
}

export const dkekImport: Command = {
  ...dkekImportSpec,
  async run(ctx, v, [file]) {
    const shareFiles = list(v, 'shares');
    if (shareFiles.length > 0 && v.password !== undefined) {
      throw new CliError('USAGE_ERROR', '--password and --shares exclude each other');
    }
    const hsm = await ctx.hsm();
    const before = await hsm.dkekStatus();
    if (!before) {
      throw new CliError('NO_DKEK', 'the device was not initialized for DKEK shares; nothing was imported');
    }
    if (before.outstanding === 0) {
      throw new CliError(
        'DKEK_SHARE_REPEATED',
        `all ${before.total} DKEK share(s) are already imported (key check value ${kcvText(before.kcv)}); nothing was imported`,
        'to start over, re-initialize the device (this erases its keys)',
      );
    }
    const chr = await hsm.deviceChr();
    const serial = chr ? (chr.length > 5 ? chr.slice(0, -5) : chr) : 'unknown';
    const ceremony = await loadCeremony(ctx, serial, before);
    if (!ceremony.path)
      ctx.out.warn(
        'no HOME or XDG_STATE_HOME: the shares imported by this command are not recorded, so a share imported twice is recognised only after the last one',
      );
    else if (!ceremony.complete)
      ctx.out.warn(
        `${before.total - before.outstanding} share(s) were imported without a record on this host: a repeated share is recognised only after the last one`,
      );
    // the same file again is refused before its password is asked or its key derived
    const bytes = await readHostFile(file!, 'DKEK share file');
    const sameFile = recordedShare(ceremony, { fileSha256: fileFingerprint(bytes) });
    if (sameFile) throw repeated(ceremony, sameFile, `${printable(file!)} holds the same share file as`);
    const share = await readDkekShare(ctx, file!, {
      passwordSpec: str(v, 'password'),
      shareFiles,
      bytes,
    });
    const kcv = keyCheckValue(share);
    let st: Awaited<ReturnType<typeof hsm.importDkekShare>>;
    try {
      const sameShare = recordedShare(ceremony, { kcv });
      if (sameShare) throw repeated(ceremony, sameShare, `${printable(file!)} holds the same share as`);
      st = await hsm.importDkekShare(share, { importedShareKcvs: recordedKcvs(ceremony) });
    } catch (e) {
      // after the last share the card holds the degenerate DKEK: the record has done its work
      if (isScHsmError(e, 'DKEK_DEGENERATE')) {
        const now = await hsm.dkekStatus().catch(() => undefined);
        if (now?.outstanding === 0) await removeCeremony(ceremony);
      }
      throw e;
    } finally {
      wipe(share);
    }
    // recorded before anything is printed: a later command must know this share
    if (st.outstanding > 0) {
      try {
        await saveCeremony(ceremony, { file: file!, bytes, kcv });
      } catch (e) {
        // the share is on the card: that is not undone by a host file that could not be written
        ctx.out.warn(
          `the share was imported, but the record of this import could not be written (${(e as Error).message}): a repeat of this share is recognised only after the last one`,
        );
      }
    } else await removeCeremony(ceremony);
    const o = ctx.out;
    o.ok(`DKEK share imported from ${printable(file!)}`);
    o.kv('DKEK shares', st.total);
    if (st.outstanding > 0) o.line(`DKEK import pending, ${st.outstanding} share(s) still missing`);
    else o.kv('DKEK key check value', kcvText(st.kcv));
    return { file, dkek: st };
  },
};

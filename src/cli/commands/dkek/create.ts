import { createDkekShareFile, randomSharePassword, splitPassword } from '../../../dkek/index.js';
import { bytesEqual, wipe } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { int } from '../../context.js';
import { formatCustodianShare } from '../../dkek-input.js';
import { CliError } from '../../exit-codes.js';
import { readHostFile, refuseOverwrite, writeAtomicExclusive } from '../../files.js';
import { kcvText } from '../../format.js';
import { dkekCreateSpec } from '../meta.js';

export const dkekCreate: Command = {
  ...dkekCreateSpec,
  async run(ctx, v, [file]) {
    const path = file!;
    const threshold = int(v, 'threshold', 2, 255);
    const total = int(v, 'total', 3, 255);
    if ((threshold === undefined) !== (total === undefined)) {
      throw new CliError('USAGE_ERROR', '--threshold and --total go together');
    }
    if (threshold !== undefined && total !== undefined && threshold > total) {
      throw new CliError('USAGE_ERROR', '--threshold must not exceed --total');
    }
    if (threshold !== undefined && v.password !== undefined) {
      throw new CliError(
        'USAGE_ERROR',
        '--password and --threshold/--total exclude each other (the password is generated)',
      );
    }
    // early, before the slow derivation; the write at the end is exclusive all the same
    await refuseOverwrite(path, false, 'DKEK share file');
    let password: string | Uint8Array;
    if (threshold !== undefined) password = randomSharePassword();
    else {
      password = await ctx.secret(v.password, {
        option: 'password',
        prompt: 'Password for the new share file',
        confirm: true,
      });
      if (password.length < 6)
        throw new CliError('USAGE_ERROR', 'the share-file password must have at least 6 characters');
    }
    const shares =
      threshold !== undefined && total !== undefined
        ? splitPassword(password as Uint8Array, threshold, total)
        : undefined;
    const p = ctx.progress('Deriving the file key (10,000,000 rounds)');
    let created: Awaited<ReturnType<typeof createDkekShareFile>>;
    try {
      const signal = ctx.io.signal;
      created = await createDkekShareFile(password, { onProgress: p.update, ...(signal ? { signal } : {}) });
    } finally {
      p.done();
      if (password instanceof Uint8Array) wipe(password);
    }
    const { file: bytes, kcv } = created;
    // never replaces: a share file that appeared meanwhile (another `dkek create`) is kept
    await writeAtomicExclusive(path, bytes, 0o600, 'DKEK share file');
    if (!bytesEqual(await readHostFile(path), bytes))
      throw new CliError('IO_ERROR', `${path} reads back different bytes`);
    const o = ctx.out;
    o.ok(`DKEK share written to ${path} (mode 0600)`);
    o.kv('Share key check value', kcvText(kcv));
    o.line('(this is the DKEK key check value when the DKEK has this one share)');
    if (shares) {
      o.line('');
      o.line(o.paint('bold', `The password is split into ${total} shares; any ${threshold} recover it.`));
      o.line('Give each custodian their block (they can save it as a text file for `dkek import --shares`).');
      o.line('This is the only time the shares are shown.');
      for (const s of shares) {
        o.line('');
        o.line(formatCustodianShare(s, threshold!, total!));
      }
    }
    const out: Record<string, unknown> = { file: path, kcv };
    if (shares) {
      out.threshold = threshold;
      out.total = total;
      out.passwordShares = shares.map((s) => ({
        id: s.id,
        prime: s.prime,
        value: s.value,
        length: s.length,
      }));
    }
    return out;
  },
};

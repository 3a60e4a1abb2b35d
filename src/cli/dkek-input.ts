/**
 * Reading DKEK shares on the host: a `.pbe` share file with its password, or with the password
 * rebuilt from custodians' password shares (n-of-m, spec §7.2). The 10,000,000-round key
 * derivation shows progress on stderr.
 */
import {
  combinePasswordShares,
  combineShares,
  decryptDkekShare,
  formatShareHex,
  type PasswordShare,
  parseShareHex,
} from '../dkek/index.js';
import { isScHsmError } from '../errors.js';
import { bytesEqual, wipe } from '../util/bytes.js';
import type { Ctx } from './context.js';
import { CliError } from './exit-codes.js';
import { readHostFile } from './files.js';

/** One custodian's share as printed by `dkek create --threshold` (and accepted by `--shares FILE`). */
export function formatCustodianShare(s: PasswordShare, threshold: number, total: number): string {
  return [
    `Share ${s.id} of ${total} (any ${threshold} recover the password)`,
    `Prime       : ${formatShareHex(s.prime)}`,
    `Share ID    : ${s.id}`,
    `Share value : ${formatShareHex(s.value)}`,
    ...(s.length !== undefined ? [`Length      : ${s.length}`] : []),
  ].join('\n');
}

/** Parses a custodian share text: lines `Prime : …`, `Share ID : …`, `Share value : …` (sc-hsm-tool's display). */
export function parseCustodianShare(text: string, source: string): PasswordShare {
  const field = (name: RegExp) => {
    for (const line of text.split(/\r?\n/)) {
      const m = /^\s*([A-Za-z ]+?)\s*:\s*(.*?)\s*$/.exec(line);
      if (m && name.test(m[1]!)) return m[2]!;
    }
    return undefined;
  };
  const prime = field(/^prime$/i);
  const id = field(/^share id$/i);
  const value = field(/^share value$/i);
  const length = field(/^length$/i);
  if (!prime || !id || !value) {
    throw new CliError(
      'USAGE_ERROR',
      `${source}: not a password share (needs lines "Prime :", "Share ID :" and "Share value :")`,
    );
  }
  if (!/^\d+$/.test(id))
    throw new CliError('USAGE_ERROR', `${source}: the share ID must be a decimal number`);
  const s: PasswordShare = { prime: parseShareHex(prime), id: Number(id), value: parseShareHex(value) };
  if (length && /^\d+$/.test(length)) s.length = Number(length);
  return s;
}

export async function readCustodianShares(paths: string[]): Promise<PasswordShare[]> {
  const out: PasswordShare[] = [];
  for (const p of paths)
    out.push(
      parseCustodianShare(Buffer.from(await readHostFile(p, 'password share file')).toString('utf8'), p),
    );
  return out;
}

/** Decrypts one share file; the password comes from `passwordSpec`/prompt, or from custodian shares. */
export async function readDkekShare(
  ctx: Ctx,
  file: string,
  o: {
    passwordSpec?: string | undefined;
    shareFiles?: string[];
    confirmPrompt?: boolean;
    /** The file's bytes, when the caller has read them already. */
    bytes?: Uint8Array;
  },
): Promise<Uint8Array> {
  const bytes = o.bytes ?? (await readHostFile(file, 'DKEK share file'));
  let password: string | Uint8Array;
  if (o.shareFiles && o.shareFiles.length > 0) {
    if (o.passwordSpec !== undefined)
      throw new CliError('USAGE_ERROR', '--password and --shares exclude each other');
    password = combinePasswordShares(await readCustodianShares(o.shareFiles));
  } else {
    password = await ctx.secret(o.passwordSpec, {
      option: 'password',
      prompt: `Password of the DKEK share file ${file}`,
    });
  }
  const p = ctx.progress(`Deriving the key of ${file} (10,000,000 rounds)`);
  try {
    return await decryptDkekShare(bytes, password, { onProgress: p.update });
  } finally {
    p.done();
    if (password instanceof Uint8Array) wipe(password);
  }
}

/**
 * `--dkek FILE…` with `--password` given once per file in the same order (or asked): the combined
 * DKEK. A share given twice is refused (the same file before any password is asked), and so is a
 * combination anyone could compute (all zero, or equal to one share): DKEK_SHARE_REPEATED,
 * DKEK_DEGENERATE.
 */
export async function readDkek(ctx: Ctx, files: string[], passwordSpecs: string[]): Promise<Uint8Array> {
  if (files.length === 0)
    throw new CliError('USAGE_ERROR', '--dkek FILE.pbe is required (repeat it for each share)');
  if (passwordSpecs.length > files.length)
    throw new CliError('USAGE_ERROR', 'more --password options than --dkek files');
  const fix = 'give each share file of the DKEK once with --dkek (sc-hsm-ts dkek inspect FILE shows its KCV)';
  const contents: Uint8Array[] = [];
  for (const f of files) contents.push(await readHostFile(f, 'DKEK share file'));
  for (const [i, c] of contents.entries()) {
    const j = contents.findIndex((d, k) => k < i && bytesEqual(d, c));
    if (j >= 0)
      throw new CliError(
        'DKEK_SHARE_REPEATED',
        `--dkek ${files[j]} and --dkek ${files[i]} are the same share file: a share given twice cancels out`,
        fix,
      );
  }
  const shares: Uint8Array[] = [];
  try {
    for (const [i, f] of files.entries())
      shares.push(await readDkekShare(ctx, f, { passwordSpec: passwordSpecs[i], bytes: contents[i]! }));
    return combineShares(shares);
  } catch (e) {
    if (isScHsmError(e, 'DKEK_SHARE_REPEATED') || isScHsmError(e, 'DKEK_DEGENERATE'))
      throw new CliError(
        e.code,
        `${e.message} (shares in the order given: ${files.map((f, i) => `${i + 1} = ${f}`).join(', ')})`,
        fix,
      );
    throw e;
  } finally {
    for (const s of shares) wipe(s);
  }
}

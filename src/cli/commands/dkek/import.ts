import { keyCheckValue } from '../../../dkek/index.js';
import type { SmartCardHsm } from '../../../sc-hsm/session.js';
import { bytesEqual, wipe } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { type Ctx, list, str, type Values } from '../../context.js';
import {
  type Ceremony,
  confirmPending,
  dropPending,
  fileFingerprint,
  loadCeremony,
  recordedKcvs,
  recordedShare,
  refuseUnrecordable,
  removeCeremony,
  savePending,
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
    return importShareFile(ctx, v, file!, 0);
  },
};

/**
 * `dkek import` (domain 0) and `domain import --domain N`: one share file into the DKEK of a key
 * domain (spec §3.10), with the ceremony record of that domain (dkek-ceremony.ts; domain N ≠ 0
 * keeps its own record beside domain 0's). Domains other than 0 need the user PIN (--pin).
 */
export async function importShareFile(ctx: Ctx, v: Values, file: string, domain: number): Promise<unknown> {
  const shareFiles = list(v, 'shares');
  if (shareFiles.length > 0 && v.password !== undefined) {
    throw new CliError('USAGE_ERROR', '--password and --shares exclude each other');
  }
  const hsm = await ctx.hsm();
  const statusOf = async () => (domain === 0 ? hsm.dkekStatus() : hsm.keyDomainStatus(domain));
  const before = await statusOf();
  const where = domain === 0 ? 'DKEK' : `DKEK of key domain ${domain}`;
  if (!before) {
    if (domain !== 0)
      throw new CliError(
        'KEY_DOMAIN_UNUSED',
        `key domain ${domain} is unused; nothing was imported`,
        `create it first: sc-hsm-ts domain create --domain ${domain} --shares K`,
      );
    throw new CliError('NO_DKEK', 'the device was not initialized for DKEK shares; nothing was imported');
  }
  if (before.outstanding === 0) {
    throw new CliError(
      'DKEK_SHARE_REPEATED',
      `all ${before.total} share(s) of the ${where} are already imported (key check value ${kcvText(before.kcv)}); nothing was imported`,
      domain === 0
        ? 'to start over, re-initialize the device (this erases its keys)'
        : `to start over, delete the domain's DKEK: sc-hsm-ts domain delete --domain ${domain} --dkek-only`,
    );
  }
  const chr = await hsm.deviceChr();
  const serial = chr ? (chr.length > 5 ? chr.slice(0, -5) : chr) : 'unknown';
  const ceremony = await loadCeremony(ctx, serial, before, domain);
  // no place for the record: refused before the password is asked, and nothing is sent
  refuseUnrecordable(ceremony);
  if (!ceremony.complete)
    ctx.out.warn(
      `${before.total - before.outstanding} share(s) were imported without a record on this host: a repeated share is recognised only after the last one`,
    );
  // the same file again is refused before its password is asked or its key derived
  const bytes = await readHostFile(file, 'DKEK share file');
  const sameFile = recordedShare(ceremony, { fileSha256: fileFingerprint(bytes) });
  if (sameFile) throw repeated(ceremony, sameFile, `${printable(file)} holds the same share file as`);
  const share = await readDkekShare(ctx, file, {
    passwordSpec: str(v, 'password'),
    shareFiles,
    bytes,
  });
  const kcv = keyCheckValue(share);
  let st: Awaited<ReturnType<typeof hsm.importDkekShare>>;
  let pendingWritten = false;
  try {
    const sameShare = recordedShare(ceremony, { kcv });
    if (sameShare) throw repeated(ceremony, sameShare, `${printable(file)} holds the same share as`);
    // importing into a domain other than 0 needs the PIN: verified only once the share file was
    // read and decrypted (a missing file or a wrong password costs no PIN try)
    if (domain !== 0) await ctx.login(hsm, v);
    // written down before it is sent: a command killed after the card took the share must not
    // leave a host that would send it again (the two would cancel out); no record, no sending
    await savePending(ceremony, { file: file, bytes, kcv }, before.outstanding);
    pendingWritten = true;
    st = await hsm.importDkekShare(share, { importedShareKcvs: recordedKcvs(ceremony), domain });
  } catch (e) {
    if (pendingWritten) {
      const now = await statusOf().catch(() => undefined);
      // after the last share the card holds the degenerate DKEK: the record has done its work
      if (now?.outstanding === 0) await removeCeremony(ceremony);
      // the card did not take it: the pending entry goes; when unsure it stays for the next command
      else if (now && now.outstanding >= before.outstanding) await dropPending(ceremony);
      else if (now) await confirmPending(ceremony).catch(() => undefined);
    }
    throw e;
  } finally {
    wipe(share);
  }
  // recorded before anything is printed: a later command must know this share
  if (st.outstanding > 0) {
    try {
      await confirmPending(ceremony);
    } catch (e) {
      // the pending entry stays: the next command counts it as imported from the device's count
      ctx.out.warn(
        `the share was imported; its record still marks it as pending (${(e as Error).message}), which the next dkek import resolves from the device's count`,
      );
    }
  } else await removeCeremony(ceremony);
  const o = ctx.out;
  o.ok(`DKEK share imported from ${printable(file)}${domain === 0 ? '' : ` into key domain ${domain}`}`);
  o.kv('DKEK shares', st.total);
  if (st.outstanding > 0) o.line(`DKEK import pending, ${st.outstanding} share(s) still missing`);
  else o.kv('DKEK key check value', kcvText(st.kcv));
  const twins = st.outstanding === 0 ? await sameDkek(hsm, domain, st.kcv) : [];
  if (twins.length > 0)
    o.warn(
      `the ${where} is the same as that of key domain ${twins.join(', ')} (same key check value): keys of either can be unwrapped into the other, so the domains no longer keep their keys apart. If that was not meant: sc-hsm-ts domain delete --domain ${domain === 0 ? twins[0] : domain} --dkek-only, then import that domain's own shares`,
    );
  const same = twins.length > 0 ? { sameDkekAs: twins } : {};
  return domain === 0 ? { file, dkek: st, ...same } : { file, domain, dkek: st, ...same };
}

/**
 * The other key domains whose complete DKEK has this key check value (the same DKEK: a share file
 * of one domain imported into another). Empty on a device without key domains, or when the list
 * cannot be read (the import itself succeeded; this is advice).
 */
async function sameDkek(hsm: SmartCardHsm, domain: number, kcv: Uint8Array): Promise<number[]> {
  try {
    const all = await hsm.listKeyDomains();
    return all.domains
      .filter((d) => d.domain !== domain && d.outstanding === 0 && bytesEqual(d.kcv, kcv))
      .map((d) => d.domain);
  } catch {
    return [];
  }
}

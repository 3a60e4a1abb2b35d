import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeWrapFile, inspectKeyBlob } from '../../../dkek/index.js';
import { bytesEqual, toHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { flag } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { readHostFile, refuseOverwrite, writeAtomic } from '../../files.js';
import { kcvText, sha256Hex, spkiFingerprint } from '../../format.js';
import { backupSpec } from '../meta.js';
import { MANIFEST, MANIFEST_FORMAT, type Manifest, type ManifestKey } from './manifest.js';

export const backup: Command = {
  ...backupSpec,
  async run(ctx, v, [dir]) {
    const d = dir!;
    await refuseOverwrite(join(d, MANIFEST), flag(v, 'force'), 'backup manifest');
    const hsm = await ctx.hsm();
    const st = await hsm.status();
    if (!st.dkek) throw new CliError('NO_DKEK', 'the device has no DKEK: its keys cannot be backed up');
    if (st.dkek.outstanding > 0)
      throw new CliError('DKEK_INCOMPLETE', `the DKEK still misses ${st.dkek.outstanding} share(s)`);
    const keys = await hsm.listKeys();
    await ctx.login(hsm, v);
    await mkdir(d, { recursive: true });
    const entries: ManifestKey[] = [];
    const p = ctx.progress(`Wrapping ${keys.length} key(s)`);
    for (const [i, k] of keys.entries()) {
      const bin = await hsm.backupKey(k.keyRef);
      const file = `key-${String(k.keyRef).padStart(3, '0')}.bin`;
      // a damaged answer never reaches the directory: check before writing, and again after
      checkWrapFile(bin, st.dkek.kcv, file);
      await writeAtomic(join(d, file), bin, 0o600);
      const e: ManifestKey = {
        keyRef: k.keyRef,
        id: toHex(k.id),
        type: k.type,
        bits: k.bits,
        file,
        sha256: sha256Hex(bin),
      };
      if (k.label !== undefined) e.label = k.label;
      if (k.curve) e.curve = k.curve;
      if (k.publicKey) e.publicKeySha256 = spkiFingerprint(k.publicKey);
      entries.push(e);
      p.update((i + 1) / Math.max(1, keys.length));
    }
    p.done();
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      version: 1,
      created: new Date().toISOString(),
      device: { kcv: toHex(st.dkek.kcv) },
      keys: entries,
    };
    if (st.serial) manifest.device.serial = st.serial;
    if (st.label !== undefined) manifest.device.label = st.label;
    // verify what is on disk before anything is reported as backed up
    for (const e of entries) {
      const bin = await readHostFile(join(d, e.file));
      if (sha256Hex(bin) !== e.sha256)
        throw new CliError('BACKUP_INVALID', `${e.file} reads back with another hash`);
      checkWrapFile(bin, st.dkek.kcv, e.file);
    }
    await writeAtomic(join(d, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, 0o644);
    const again = Buffer.from(await readHostFile(join(d, MANIFEST))).toString('utf8');
    if (JSON.parse(again).keys.length !== entries.length)
      throw new CliError('BACKUP_INVALID', 'the manifest reads back differently');
    const o = ctx.out;
    if (entries.length === 0) o.warn('the device holds no keys: the backup is empty');
    o.ok(`${entries.length} key(s) backed up to ${d} and verified`);
    o.kv('DKEK key check value', kcvText(st.dkek.kcv));
    for (const e of entries) o.line(`  key ref ${e.keyRef}  ${e.file}  "${e.label ?? ''}"  ID ${e.id}`);
    o.line(
      'Restoring needs a device with the same DKEK (import the same share files), then: sc-hsm-ts restore DIR',
    );
    return { dir: d, verified: true, manifest };
  },
};

/** The .bin decodes, its blob's structure is sound and it was made under the device's DKEK. */
function checkWrapFile(bin: Uint8Array, kcv: Uint8Array, file: string): void {
  let h: ReturnType<typeof inspectKeyBlob>;
  try {
    h = inspectKeyBlob(decodeWrapFile(bin).blob);
  } catch (e) {
    throw new CliError('BACKUP_INVALID', `${file}: the wrapped key is damaged (${(e as Error).message})`);
  }
  if (!bytesEqual(h.kcv, kcv))
    throw new CliError('BACKUP_INVALID', `${file} carries another key check value`);
}

/**
 * The host's record of a DKEK share ceremony. The card XORs every share it gets and shows a KCV of
 * zeros until the last one, so nothing on the device tells that a share was imported twice (two
 * equal shares cancel out: the DKEK becomes 32 zero bytes). `dkek import` therefore keeps, for
 * each share it imported into a device's DKEK, two fingerprints — the SHA-256 of the share file
 * and the share's key check value, never the share or its password — and refuses a share with a
 * recorded fingerprint before anything is sent (the file's hash before the password is even asked).
 *
 * Where: beside the virtual card's state file (`FILE.dkek-import.json`); for a PC/SC device in
 * `$XDG_STATE_HOME/sc-hsm-ts/` (default `~/.local/state/sc-hsm-ts/`) as
 * `dkek-import-SERIAL.json`. A record counts only while it matches the device: same serial, same
 * number of shares, and as many shares recorded as the device says are imported (after a
 * re-initialization the device counts 0 and the record starts again). The last share removes it.
 */
import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import type { DkekStatus } from '../sc-hsm/session.js';
import { fromHex, toHex } from '../util/bytes.js';
import { readHostFile, writeAtomic } from '../util/host-files.js';
import type { Ctx } from './context.js';

export const CEREMONY_FORMAT = 'sc-hsm-ts/dkek-import';

export interface CeremonyShare {
  /** The share file as it was given (resolved to an absolute path). */
  file: string;
  /** SHA-256 of the share file's bytes (it holds only the encrypted share), lowercase hex. */
  fileSha256: string;
  /** Key check value of the share (SHA-256 of the share, first 8 bytes), lowercase hex. */
  kcv: string;
}

export interface CeremonyRecord {
  format: typeof CEREMONY_FORMAT;
  version: 1;
  /** Serial of the device (its CHR without the last five characters). */
  serial: string;
  /** Number of shares the device's DKEK is made of. */
  total: number;
  shares: CeremonyShare[];
}

/** A record as loaded for a command: usable when it matches the device. */
export interface Ceremony {
  /** Where the record is kept; undefined when the host has no place for it. */
  path?: string;
  record: CeremonyRecord;
  /**
   * False when shares were imported that this host did not record (with another tool, on another
   * host): a repeated share is then not recognised before it is sent.
   */
  complete: boolean;
}

/** Where the record of the device `serial` is kept, or undefined (no state directory known). */
export function ceremonyPath(ctx: Ctx, serial: string): string | undefined {
  if (ctx.g.sim !== undefined) return `${ctx.g.sim}.dkek-import.json`;
  const env = ctx.io.env;
  const base = env.XDG_STATE_HOME || (env.HOME ? join(env.HOME, '.local', 'state') : undefined);
  if (!base) return undefined;
  return join(base, 'sc-hsm-ts', `dkek-import-${serial.replace(/[^A-Za-z0-9_-]/g, '_')}.json`);
}

function parseRecord(text: string): CeremonyRecord | undefined {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return undefined;
  }
  const r = o as Partial<CeremonyRecord> | undefined;
  const hex = (s: unknown, n: number) => typeof s === 'string' && new RegExp(`^[0-9a-f]{${n}}$`).test(s);
  if (
    !r ||
    r.format !== CEREMONY_FORMAT ||
    r.version !== 1 ||
    typeof r.serial !== 'string' ||
    !Number.isInteger(r.total) ||
    !Array.isArray(r.shares) ||
    !r.shares.every((s) => s && typeof s.file === 'string' && hex(s.fileSha256, 64) && hex(s.kcv, 16))
  )
    return undefined;
  return r as CeremonyRecord;
}

/**
 * The ceremony of the device's current DKEK: the stored record when it matches the device
 * (`serial`, `dkek`), else a fresh one (`complete` false when the device counts shares the host
 * did not record). An unreadable or foreign record is treated as absent; it is replaced on save.
 */
export async function loadCeremony(ctx: Ctx, serial: string, dkek: DkekStatus): Promise<Ceremony> {
  const path = ceremonyPath(ctx, serial);
  const imported = dkek.total - dkek.outstanding;
  const fresh: CeremonyRecord = {
    format: CEREMONY_FORMAT,
    version: 1,
    serial,
    total: dkek.total,
    shares: [],
  };
  let stored: CeremonyRecord | undefined;
  if (path) {
    try {
      stored = parseRecord(Buffer.from(await readHostFile(path, 'DKEK import record')).toString('utf8'));
    } catch {
      stored = undefined;
    }
  }
  const matches =
    stored !== undefined &&
    stored.serial === serial &&
    stored.total === dkek.total &&
    stored.shares.length === imported;
  const c: Ceremony = { record: matches ? stored! : fresh, complete: matches || imported === 0 };
  if (path) c.path = path;
  return c;
}

/** Records one more imported share (atomically, mode 0600; the directory is made 0700). */
export async function saveCeremony(c: Ceremony, share: { file: string; bytes: Uint8Array; kcv: Uint8Array }) {
  c.record.shares.push({
    file: resolve(share.file),
    fileSha256: fileFingerprint(share.bytes),
    kcv: toHex(share.kcv),
  });
  if (!c.path) return;
  const { mkdir } = await import('node:fs/promises');
  await mkdir(dirname(c.path), { recursive: true, mode: 0o700 }).catch(() => undefined);
  await writeAtomic(c.path, `${JSON.stringify(c.record, null, 2)}\n`, 0o600);
}

/** Removes the record (the DKEK is complete, or it has to be started again). */
export async function removeCeremony(c: Ceremony): Promise<void> {
  if (!c.path) return;
  const { unlink } = await import('node:fs/promises');
  await unlink(c.path).catch(() => undefined);
}

export function fileFingerprint(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The recorded share with this file hash or this KCV, if any. */
export function recordedShare(
  c: Ceremony,
  o: { fileSha256?: string; kcv?: Uint8Array },
): CeremonyShare | undefined {
  const kcv = o.kcv ? toHex(o.kcv) : undefined;
  return c.record.shares.find((s) => s.fileSha256 === o.fileSha256 || s.kcv === kcv);
}

/** The recorded shares' KCVs, for the library's own check. */
export function recordedKcvs(c: Ceremony): Uint8Array[] {
  return c.record.shares.map((s) => fromHex(s.kcv));
}

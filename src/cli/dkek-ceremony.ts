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
 *
 * A share is recorded twice: as `pending` (with the number of shares the device was still waiting
 * for) before it is sent, and as imported after the card took it. A command killed in between
 * leaves the pending entry; the next command reads the device's count: lower than recorded, the
 * card took the share (it counts as imported, and the same share is refused); unchanged, it never
 * landed (the entry is dropped). A share whose pending entry cannot be written is not sent.
 */
import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { isScHsmError } from '../errors.js';
import type { DkekStatus } from '../sc-hsm/session.js';
import { fromHex, toHex } from '../util/bytes.js';
import { readHostFile, writeAtomic } from '../util/host-files.js';
import type { Ctx } from './context.js';
import { CliError } from './exit-codes.js';
import { printable } from './format.js';

export const CEREMONY_FORMAT = 'sc-hsm-ts/dkek-import';

export interface CeremonyShare {
  /** The share file as it was given (resolved to an absolute path). */
  file: string;
  /** SHA-256 of the share file's bytes (it holds only the encrypted share), lowercase hex. */
  fileSha256: string;
  /** Key check value of the share (SHA-256 of the share, first 8 bytes), lowercase hex. */
  kcv: string;
}

/** A share about to be sent: what the device was waiting for before it. */
export interface PendingShare extends CeremonyShare {
  /** Shares the device was still waiting for before this one was sent. */
  outstanding: number;
}

export interface CeremonyRecord {
  format: typeof CEREMONY_FORMAT;
  version: 1;
  /** Serial of the device (its CHR without the last five characters). */
  serial: string;
  /** Number of shares the device's DKEK is made of. */
  total: number;
  /** Shares the device took. */
  shares: CeremonyShare[];
  /** A share written down before it was sent, not yet confirmed (see the module comment). */
  pending?: PendingShare;
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

/**
 * Where the record of the device `serial` is kept, or undefined (no state directory known); key
 * domain N ≠ 0 (`domain import`) has its own record beside domain 0's (`…-domain-N.json`).
 */
export function ceremonyPath(ctx: Ctx, serial: string, domain = 0): string | undefined {
  const d = domain === 0 ? '' : `-domain-${domain}`;
  if (ctx.g.sim !== undefined) return `${ctx.g.sim}.dkek-import${d}.json`;
  const env = ctx.io.env;
  const base = env.XDG_STATE_HOME || (env.HOME ? join(env.HOME, '.local', 'state') : undefined);
  if (!base) return undefined;
  return join(base, 'sc-hsm-ts', `dkek-import-${serial.replace(/[^A-Za-z0-9_-]/g, '_')}${d}.json`);
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
  const share = (s: CeremonyShare | undefined) =>
    s && typeof s.file === 'string' && hex(s.fileSha256, 64) && hex(s.kcv, 16);
  if (
    !r ||
    r.format !== CEREMONY_FORMAT ||
    r.version !== 1 ||
    typeof r.serial !== 'string' ||
    !Number.isInteger(r.total) ||
    !Array.isArray(r.shares) ||
    !r.shares.every(share) ||
    (r.pending !== undefined && !(share(r.pending) && Number.isInteger(r.pending.outstanding)))
  )
    return undefined;
  return r as CeremonyRecord;
}

/**
 * The ceremony of the device's current DKEK: the stored record when it matches the device
 * (`serial`, `dkek`), else a fresh one (`complete` false when the device counts shares the host
 * did not record). A record of another device or DKEK is replaced on save; an unreadable or damaged
 * one is IO_ERROR (nothing may be sent without the guard it holds).
 */
export async function loadCeremony(
  ctx: Ctx,
  serial: string,
  dkek: DkekStatus,
  domain = 0,
): Promise<Ceremony> {
  const path = ceremonyPath(ctx, serial, domain);
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
    // absent: no record; unreadable or not a record: the guard against a repeated share is
    // gone, so nothing is sent until a person has looked at the file
    let text: string | undefined;
    try {
      text = Buffer.from(await readHostFile(path, 'DKEK import record')).toString('utf8');
    } catch (e) {
      if (!isScHsmError(e, 'HOST_FILE_NOT_FOUND'))
        throw new CliError(
          'IO_ERROR',
          `the record of this device's DKEK imports ${printable(path)} cannot be read (${(e as Error).message}); without it a share imported twice (which zeroes the DKEK) is not recognised. The share was not sent.`,
          `make ${printable(path)} a regular file this user can read (or move it away if it is not this device's record), then run the command again`,
        );
    }
    if (text !== undefined) {
      stored = parseRecord(text);
      if (!stored)
        throw new CliError(
          'IO_ERROR',
          `${printable(path)} is not a DKEK import record (damaged or overwritten); without it a share imported twice (which zeroes the DKEK) is not recognised. The share was not sent.`,
          `check which shares this device's DKEK already holds (sc-hsm-ts status), then move ${printable(path)} away and run the command again`,
        );
    }
  }
  // a share sent by a command that ended before it confirmed it: did the card take it?
  if (stored?.pending && stored.serial === serial && stored.total === dkek.total) {
    const { outstanding, ...share } = stored.pending;
    delete stored.pending;
    if (dkek.outstanding < outstanding) stored.shares.push(share);
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

async function writeCeremony(c: Ceremony & { path: string }): Promise<void> {
  const { mkdir } = await import('node:fs/promises');
  await mkdir(dirname(c.path), { recursive: true, mode: 0o700 }).catch(() => undefined);
  await writeAtomic(c.path, `${JSON.stringify(c.record, null, 2)}\n`, 0o600);
}

/** IO_ERROR when the host has no place for the record (no HOME, no XDG_STATE_HOME): nothing may be sent. */
export function refuseUnrecordable(c: Ceremony): asserts c is Ceremony & { path: string } {
  if (!c.path) {
    throw new CliError(
      'IO_ERROR',
      'no HOME or XDG_STATE_HOME: this import cannot be recorded before the share is sent, and without the record a share imported twice (which zeroes the DKEK) is not recognised. The share was not sent.',
      'set XDG_STATE_HOME (or HOME) to a directory this user can write, then run the command again',
    );
  }
}

/**
 * Writes the share down as pending (atomically, mode 0600; the directory is made 0700) BEFORE it
 * is sent; `outstanding` is what the device is waiting for now. Throws IO_ERROR when the record
 * cannot be written (or there is no place for it): the share must then not be sent.
 */
export async function savePending(
  c: Ceremony,
  share: { file: string; bytes: Uint8Array; kcv: Uint8Array },
  outstanding: number,
): Promise<void> {
  refuseUnrecordable(c);
  c.record.pending = {
    file: resolve(share.file),
    fileSha256: fileFingerprint(share.bytes),
    kcv: toHex(share.kcv),
    outstanding,
  };
  try {
    await writeCeremony(c);
  } catch (e) {
    delete c.record.pending;
    throw new CliError(
      'IO_ERROR',
      `the record of this DKEK import could not be written to ${c.path} (${errnoOf(e)}); without it a share imported twice (which zeroes the DKEK) is not recognised. The share was not sent.`,
      `make ${dirname(c.path)} writable and ${c.path} a regular file this user can replace (or remove what is in its place), then run the command again`,
    );
  }
}

/**
 * The card took the pending share: it is recorded as imported. Throws when the record cannot be
 * rewritten; the pending entry then still tells the next command (from the device's count).
 */
export async function confirmPending(c: Ceremony): Promise<void> {
  const p = c.record.pending;
  if (!p) return;
  const { outstanding: _, ...share } = p;
  delete c.record.pending;
  c.record.shares.push(share);
  if (c.path) await writeCeremony(c as Ceremony & { path: string });
}

/** The pending share did not land: its entry goes (best effort; a later command drops it too). */
export async function dropPending(c: Ceremony): Promise<void> {
  if (!c.record.pending) return;
  delete c.record.pending;
  if (c.path) await writeCeremony(c as Ceremony & { path: string }).catch(() => undefined);
}

/** Removes the record (the DKEK is complete, or it has to be started again). */
export async function removeCeremony(c: Ceremony): Promise<void> {
  if (!c.path) return;
  const { unlink } = await import('node:fs/promises');
  await unlink(c.path).catch(() => undefined);
}

/** The system error code behind a host-file error (`EISDIR`, `EACCES`, …), or its message. */
function errnoOf(e: unknown): string {
  const cause = (e as { cause?: NodeJS.ErrnoException }).cause;
  return cause?.code ?? (e as NodeJS.ErrnoException).code ?? (e as Error).message;
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

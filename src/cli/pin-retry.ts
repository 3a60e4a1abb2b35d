/**
 * Devices whose user PIN was given a retry counter of 1 by `init --pin-retry 1` on this computer.
 *
 * The card reports only the tries left (`63 Cx`), never the counter it was initialized with
 * (spec §3.6, §9), so "1 try left" reads the same on a device with a counter of 1 (full) and on one
 * with a counter of 3 after two wrong PINs. The PIN guard refuses the second without `--last-try`;
 * to let the first through, `init` records the device here (its device certificate holder
 * reference, nothing secret) and the commands that send the user PIN tell the session
 * (`SmartCardHsm.userPinRetryCounter`). On another computer, or after a re-initialization by
 * another tool, the record is missing or stale: the guard then asks for --last-try, and as soon as
 * the card shows more tries left than 1 the device's record is dropped from the file for good.
 *
 * File: `$XDG_CONFIG_HOME/sc-hsm-ts/pin-retry.json` (default `~/.config/…`), mode 0600; without
 * either variable nothing is recorded.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PIN_USER } from '../protocol/constants.js';
import type { SmartCardHsm } from '../sc-hsm/session.js';
import { writeAtomic } from './files.js';
import type { CliIo } from './io.js';

interface RetryRecord {
  format: 'sc-hsm-ts/pin-retry';
  version: 1;
  /** Device CHR → the user PIN retry counter set at initialization (only 1 is kept). */
  devices: Record<string, number>;
}

export function retryRecordPath(env: CliIo['env']): string | undefined {
  const base = env.XDG_CONFIG_HOME || (env.HOME ? join(env.HOME, '.config') : undefined);
  return base ? join(base, 'sc-hsm-ts', 'pin-retry.json') : undefined;
}

async function readRecord(path: string): Promise<RetryRecord | undefined> {
  try {
    const o = JSON.parse(await readFile(path, 'utf8')) as Partial<RetryRecord>;
    if (o.format !== 'sc-hsm-ts/pin-retry' || !o.devices || typeof o.devices !== 'object') return undefined;
    return { format: 'sc-hsm-ts/pin-retry', version: 1, devices: o.devices };
  } catch {
    return undefined;
  }
}

/**
 * Tells the session the user PIN's retry counter when this computer initialized the device with 1,
 * and only for the very state that record is about: the card shows exactly 1 try left. A card that
 * shows more tries left than the recorded counter was re-initialized since (by another tool or
 * with another config directory): the device's record is dropped for good, so that a later "1 try
 * left" on it (after wrong PINs) is the last try again and needs --last-try. `userPinTriesLeft` is
 * the count the caller has just read (undefined: read here, a VERIFY without data costs no try).
 *
 * What the host cannot see: a re-initialization with another counter followed by wrong PINs
 * elsewhere, before this computer saw the card again. The record is a belief of this computer; the
 * card offers no way to check it.
 */
export async function applyKnownRetryCounter(
  io: CliIo,
  hsm: SmartCardHsm,
  userPinTriesLeft?: number,
): Promise<void> {
  const path = retryRecordPath(io.env);
  const rec = path && (await readRecord(path));
  if (!path || !rec || Object.keys(rec.devices).length === 0) return;
  const chr = await hsm.deviceChr();
  if (chr === undefined || !Object.hasOwn(rec.devices, chr)) return;
  const max = rec.devices[chr];
  const left = userPinTriesLeft ?? (await hsm.pinStatus(PIN_USER)).triesLeft;
  if (max !== 1 || (left !== undefined && left > max)) {
    hsm.userPinRetryCounter = undefined;
    delete rec.devices[chr];
    // dropped for good; a record that cannot be rewritten is at least not used by this command
    await writeRecord(path, rec).catch(() => undefined);
    return;
  }
  if (left === 1) hsm.userPinRetryCounter = 1;
}

async function writeRecord(path: string, rec: RetryRecord): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeAtomic(path, `${JSON.stringify(rec, null, 2)}\n`, 0o600);
}

/**
 * Records (counter 1) or forgets (any other) the device after `init`. Returns the file written,
 * or undefined when there is no place to keep it.
 */
export async function recordRetryCounter(
  io: CliIo,
  hsm: SmartCardHsm,
  retry: number,
): Promise<string | undefined> {
  const path = retryRecordPath(io.env);
  const chr = await hsm.deviceChr();
  if (!path || chr === undefined) return undefined;
  const rec = (await readRecord(path)) ?? { format: 'sc-hsm-ts/pin-retry', version: 1, devices: {} };
  if (retry === 1) rec.devices[chr] = 1;
  else if (chr in rec.devices) delete rec.devices[chr];
  else return undefined;
  await writeRecord(path, rec);
  return path;
}

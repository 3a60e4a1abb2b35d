/**
 * Whole-device backup and restore, and the import of an existing private key (DKEK issue,
 * "Session and virtual card"). Sequences over the session's verbs (backupKey, restoreKey,
 * listKeys, dkekStatus) and the pure codecs (wrap files, key blobs, key descriptions; spec §7, §8):
 *
 * - a backup is one `.bin` wrap file per key (as `sc-hsm-tool --wrap-key` writes it) plus
 *   `manifest.json` (device KCV; per key: key reference, ID, label, type, size/curve, SHA-256 of
 *   the file). Files are written atomically, and every file is re-read and decoded before the
 *   backup is reported as done;
 * - a restore checks every file's hash, every blob's KCV and the device's KCV against the manifest,
 *   and that each key reference is free, before it writes anything. A reference already holding
 *   the backup's key is left as it is, so a restore run again after an interruption completes what
 *   is missing;
 * - an import builds the key blob on the host (encryptKeyBlob) under the device's DKEK, refused
 *   before anything is written when the given DKEK's KCV differs from the device's.
 *
 * Free functions, not session methods: they read and write host files and never send a PIN
 * themselves (the caller's `authenticate` hook does, once, when something is to be done).
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  combineShares,
  decodeWrapFile,
  encodeWrapFile,
  encryptKeyBlob,
  inspectKeyBlob,
  keyCheckValue,
} from '../dkek/index.js';
import { isScHsmError, ScHsmError } from '../errors.js';
import { encodeKeyDescription, KEY_USAGE, OBJECT_FLAGS } from '../pkcs15/index.js';
import { ALGO, PREFIX } from '../protocol/constants.js';
import { bytesEqual, fromHex, toHex, wipe } from '../util/bytes.js';
import { curveByName } from '../util/curves.js';
import {
  makeHostDirectory,
  readHostFile,
  refuseHostOverwrite,
  removeStaleTemps,
  writeAtomic,
} from '../util/host-files.js';
import type { DkekStatus, KeyDomainStatus } from './dkek.js';
import { checkAlgorithmList } from './key-restrictions.js';
import {
  type DeviceStatus,
  dkekKcvUnknown,
  intrinsicKeyId,
  type KeyInfo,
  KeyReplaceError,
  type ReplacedKey,
  type SmartCardHsm,
  type UnwrapOptions,
} from './session.js';
import { checkKeyRef, checkLabel, checkRsaBits } from './validate.js';
import { type WrapFileInfo, wrapFileDamage, wrapFileInfo } from './wrap-info.js';

/** The manifest's file name in a backup directory. */
export const MANIFEST = 'manifest.json';
/**
 * The file in a backup directory that names the devices a restore of this backup was started on
 * and not completed (docs/cli.md "Backup directory"); written where the directory is writable.
 */
export const RESTORE_PROGRESS = 'restore-progress.json';
const RESTORE_PROGRESS_FORMAT = 'sc-hsm-ts/restore-progress';
/** The name of a key's file in a backup directory: `key-NNN.bin`. */
const KEY_FILE = /^key-(\d{3})\.bin$/;
/** The manifest's `format` field. */
export const MANIFEST_FORMAT = 'sc-hsm-ts/backup';

/** One key of a backup (docs/cli.md "Backup directory"). */
export interface ManifestKey {
  /** Key reference (the low byte of CCxx). */
  keyRef: number;
  /** PKCS#15 ID, lowercase hex. */
  id: string;
  label?: string;
  type: string;
  bits: number;
  curve?: string;
  /** The `.bin` file's plain name in the backup directory. */
  file: string;
  /** SHA-256 of the `.bin` file, lowercase hex. */
  sha256: string;
  /** SHA-256 of the SubjectPublicKeyInfo DER, where the device had the public key. */
  publicKeySha256?: string;
  /** Key domain (spec §3.10) when not 0: its blob was wrapped under `device.domains[domain]`. */
  domain?: number;
}

/**
 * A key a backup left out (`backupDevice` with `skipUnwrappable`): its algorithm list lacks WRAP,
 * so the card will not wrap it (spec §3.16); no `.bin` file exists for it.
 */
export interface SkippedKey {
  keyRef: number;
  /** PKCS#15 ID, lowercase hex. */
  id: string;
  label?: string;
  type: string;
  bits: number;
  reason: 'not-wrappable';
}

/** A backed-up key with a key use counter (tag 90): the copy does not carry the uses left. */
export interface CountedKey {
  keyRef: number;
  label?: string;
  /** Uses left on the device when it was backed up. */
  useCounter: number;
}

/** `manifest.json` of a backup directory. */
export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: 1;
  /** ISO 8601 time of the backup. */
  created: string;
  /**
   * The device backed up; `kcv` is its DKEK key check value (domain 0), lowercase hex; `domains`
   * the KCV of each other key domain a key of the backup belongs to (absent without such keys).
   */
  device: { serial?: string; label?: string; kcv: string; domains?: Record<string, string> };
  keys: ManifestKey[];
  /** Keys of the device that are not in the backup (they may not be wrapped); absent when none. */
  skipped?: SkippedKey[];
}

/**
 * The device a command acts on, as people tell devices apart: the serial (the device CHR minus its
 * last five characters, as OpenSC shows it) and the token label.
 */
export interface DeviceIdentity {
  serial?: string;
  label?: string;
}

/** A restore of a backup that was started on another device and not completed there. */
export interface RestoreElsewhere extends DeviceIdentity {
  /** ISO 8601 time the restore started there. */
  started?: string;
}

/** Progress of a backup or restore: `done` of `total` keys. */
export type BackupProgress = (done: number, total: number) => void;

export interface BackupOptions {
  /** Write into a directory that already holds a backup (its manifest is replaced last). */
  force?: boolean;
  onProgress?: BackupProgress;
  /** Checked before each key: ABORTED (the files written stay; run again to complete). */
  signal?: AbortSignal;
  /**
   * Called once, after the device checks and before the first key is wrapped: verify the user
   * PIN here (WRAP KEY needs it).
   */
  authenticate?: () => Promise<void>;
  /**
   * Back up the other keys when some may not be wrapped (their algorithm list lacks WRAP): they are
   * listed in the result and the manifest (`skipped`). Without it such a key is refused
   * (ALGORITHM_NOT_ALLOWED) before the PIN is sent or anything is written.
   */
  skipUnwrappable?: boolean;
}

export interface BackupKeyResult {
  keyRef: number;
  file: string;
  /** The file's full path. */
  path: string;
  sha256: string;
  /** Re-read and decoded after it was written. */
  verified: true;
}

export interface BackupResult {
  dir: string;
  /** The device backed up (also in the manifest). */
  device: DeviceIdentity;
  /** Temp files of an earlier, killed backup that were removed from the directory. */
  removedTemps: string[];
  manifest: Manifest;
  keys: BackupKeyResult[];
  /** Keys left out with `skipUnwrappable` (also in the manifest). */
  skipped: SkippedKey[];
  /**
   * Backed-up keys with a key use counter: a key restored or unwrapped from the copy has no counter
   * (the blob does not carry it), so its uses are no longer limited.
   */
  counted: CountedKey[];
  verified: true;
}

/** What a restore does at a key reference. */
export type RestoreAction =
  /** the reference is free: the key is restored */
  | 'restore'
  /**
   * the reference holds the backup's key (same public key), or an AES key with the backup's label,
   * ID, type and size (`unverified`: its value cannot be compared on the host): left as it is
   */
  | 'present'
  /** the reference holds a key object without its public key or description (an interrupted restore): completed */
  | 'complete'
  /** the reference holds another key: replaced (only with `force`) */
  | 'replace';

export interface RestoreStep {
  keyRef: number;
  action: RestoreAction;
  /** The manifest's entry for this key. */
  entry: ManifestKey;
  /** What the device held at the reference before, if anything. */
  present?: { label?: string; id: Uint8Array };
  /** Written by this run. */
  written: boolean;
  /**
   * Action `present` for an AES key: its label, ID, type and size are the backup's, but its value
   * cannot be compared with the backup's on the host (no public key, no DKEK on the host); it is
   * left as it is, and only `force` replaces it with the backup's copy.
   */
  unverified?: true;
  /**
   * For the user to read: why a key there was taken for the backup's (action `complete`), that an
   * AES key left as it is could not be compared (`unverified`), or that a replaced key's use
   * counter is lost.
   */
  note?: string;
}

/** A key reference holding another key than the backup's. */
export interface RestoreConflict {
  keyRef: number;
  present: { label?: string; id: Uint8Array };
  backup: { label?: string; id: string };
  /** One line for people, e.g. `key ref 1 holds "x" (ID …), the backup has "y"`. */
  text: string;
}

export interface RestoreOptions {
  /** Replace other keys at the backup's key references (otherwise KEY_REF_OCCUPIED). */
  force?: boolean;
  onProgress?: BackupProgress;
  /** Checked before each key: ABORTED (the keys restored stay; run again to complete). */
  signal?: AbortSignal;
  /**
   * Called with `force` when keys are to be replaced, after every check and before anything is
   * written. Return false (or throw) to stop: nothing is written.
   */
  confirmReplace?: (conflicts: RestoreConflict[]) => boolean | undefined | Promise<boolean | undefined>;
  /**
   * Called once when there is something to write, before `confirmReplace` — or first of all when
   * the device shows its DKEK's key check value only after login: verify the user PIN here.
   */
  authenticate?: () => Promise<void>;
  /** With `force`: replace also keys that may not be wrapped first (lost if their replacement fails). */
  allowKeyLoss?: boolean;
  /** With `force`: receives each replaced key's wrapped copy before it is deleted (UnwrapOptions.onReplaced). */
  onReplaced?: (old: ReplacedKey) => void | Promise<void>;
  /**
   * Called before anything is written when restores of this backup were started on other devices
   * and not completed there (a card swapped during a restore): say so.
   */
  onInterrupted?: (elsewhere: RestoreElsewhere[], device: DeviceIdentity) => void;
}

export interface RestoreResult {
  dir: string;
  /** The device restored onto. */
  device: DeviceIdentity;
  /** Restores of this backup started on other devices and not completed there (RESTORE_PROGRESS). */
  interrupted: RestoreElsewhere[];
  /** The device's DKEK key check value (the manifest's). */
  kcv: Uint8Array;
  manifest: Manifest;
  /** One step per key of the manifest, in the manifest's order. */
  keys: RestoreStep[];
  /** How many keys this run wrote. */
  written: number;
}

/** A backup directory read and checked on the host: manifest, each file's hash and blob KCV. */
export interface CheckedBackup {
  dir: string;
  manifest: Manifest;
  files: { entry: ManifestKey; bin: Uint8Array; info: WrapFileInfo }[];
}

function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function kcvText(kcv: Uint8Array): string {
  return toHex(kcv).toUpperCase();
}

/** The serial and label of the device in `hsm` (no PIN needed). */
export async function deviceIdentity(hsm: SmartCardHsm): Promise<DeviceIdentity> {
  const chr = await hsm.deviceChr();
  const label = await hsm.label();
  const d: DeviceIdentity = {};
  if (chr) d.serial = chr.length > 5 ? chr.slice(0, -5) : chr;
  if (label !== undefined) d.label = label;
  return d;
}

function identityOf(st: DeviceStatus): DeviceIdentity {
  const d: DeviceIdentity = {};
  if (st.serial) d.serial = st.serial;
  if (st.label !== undefined) d.label = st.label;
  return d;
}

/** Two devices are one when their serials agree; without serials, when their labels do. */
export function sameDevice(a: DeviceIdentity, b: DeviceIdentity): boolean {
  if (a.serial !== undefined || b.serial !== undefined) return a.serial === b.serial;
  return a.label === b.label;
}

/**
 * `serial DENK0100001 ("CA-1")` for messages. The label (and a serial that is not plain printable
 * ASCII) as JSON text: a hostile card, manifest or note cannot put control characters through.
 */
export function deviceText(d: DeviceIdentity): string {
  const label = d.label === undefined ? '' : ` (${JSON.stringify(d.label)})`;
  const serial =
    d.serial === undefined
      ? undefined
      : /^[\x21-\x7e]+$/.test(d.serial)
        ? d.serial
        : JSON.stringify(d.serial);
  return `${serial === undefined ? 'without serial' : `serial ${serial}`}${label}`;
}

/**
 * Backs up every key of the device into `dir`: one `key-NNN.bin` per key (mode 0600) and
 * `manifest.json`, each written atomically. Each blob is checked before it is written (structure,
 * and made under the device's DKEK), and every file is read back, its hash compared and its blob
 * decoded before the manifest is written. FILE_EXISTS when `dir` holds a manifest (unless
 * `force`), NO_DKEK, DKEK_INCOMPLETE, BACKUP_INVALID, IO_ERROR.
 */
export async function backupDevice(
  hsm: SmartCardHsm,
  dir: string,
  o: BackupOptions = {},
): Promise<BackupResult> {
  const manifestPath = join(dir, MANIFEST);
  await refuseHostOverwrite(manifestPath, o.force, 'backup manifest');
  const st = await hsm.status();
  // no DKEK in domain 0: a backup is still possible when every key is in another key domain
  const noDkek = () => new ScHsmError('NO_DKEK', 'the device has no DKEK: its keys cannot be backed up');
  if (!st.dkek && (await hsm.listKeyDomains()).domains.every((d) => d.domain === 0)) throw noDkek();
  const dkek0: DkekStatus = st.dkek ?? { total: 0, outstanding: 0, kcv: new Uint8Array(8) };
  if (dkek0.outstanding > 0)
    throw new ScHsmError('DKEK_INCOMPLETE', `the DKEK still misses ${dkek0.outstanding} share(s)`);
  const kcv = dkek0.kcv;
  if (dkek0.allZero)
    throw new ScHsmError(
      'DKEK_DEGENERATE',
      `the device's DKEK is 32 zero bytes (key check value ${kcvText(kcv)}, its shares cancelled out): a backup under it would protect the keys from nobody. Nothing was written.`,
    );
  const device = identityOf(st);
  // zeros from a complete DKEK: firmware that shows the KCV only after login (read it again then)
  let known = dkekKcvUnknown(dkek0) ? undefined : kcv;
  // another device's files in the directory are refused before the PIN is sent (the keys are
  // listed here only when the directory holds key files: an interrupted backup's)
  await checkBackupTarget(
    dir,
    device,
    () => hsm.listKeys(),
    known,
    async () => (await hsm.listKeyDomains()).domains,
  );
  // every key's algorithm list (its FCP: public, no PIN): keys the card will not wrap are named
  // before the PIN is sent and before anything is written
  const notWrappable: KeyInfo[] = [];
  const byDomain = new Map<number, number[]>();
  for (const f of await hsm.enumerate()) {
    if (f >> 8 !== PREFIX.KEY || (f & 0xff) === 0) continue;
    const r = await hsm.keyRestrictions(f & 0xff);
    if (r.algorithms && !r.algorithms.includes(ALGO.WRAP)) notWrappable.push(await hsm.keyInfo(f & 0xff));
    else if (r.domain !== undefined && r.domain !== 0)
      byDomain.set(r.domain, [...(byDomain.get(r.domain) ?? []), f & 0xff]);
    else if (!st.dkek)
      throw new ScHsmError(
        'NO_DKEK',
        `key ref ${f & 0xff} is in key domain 0, which has no DKEK on this device: it cannot be backed up (keys of other key domains could). Nothing was written.`,
        {
          fix: `keys generated in a key domain whose shares are imported (sc-hsm-ts keygen --domain N) can be backed up; key ref ${f & 0xff} never can — only if it may be lost, delete it (sc-hsm-ts delete-key --key-ref ${f & 0xff}) and back up the others`,
        },
      );
  }
  if (notWrappable.length && !o.skipUnwrappable) throw notWrappableError(notWrappable);
  // keys of another key domain are wrapped under its DKEK: a domain without a complete one is
  // named before the PIN is sent and before anything is written (spec §3.10)
  for (const [d, refs] of byDomain) {
    const ds = await hsm.keyDomainStatus(d).catch((e: unknown) => {
      if (isScHsmError(e, 'KEY_DOMAIN_OUT_OF_RANGE')) return undefined;
      throw e;
    });
    if (ds && (ds.xkekUid || ds.outstanding === 0)) continue;
    throw new ScHsmError(
      ds ? 'DKEK_INCOMPLETE' : 'KEY_DOMAIN_UNUSED',
      `key ref(s) ${refs.join(', ')} belong to key domain ${d}, which ${ds ? `still misses ${ds.outstanding} DKEK share(s)` : 'has no DKEK on this device'}: they cannot be wrapped. Nothing was written.`,
      {
        fix: `${ds ? '' : `sc-hsm-ts domain create --domain ${d} --shares K, then `}import the domain's share files: sc-hsm-ts domain import FILE.pbe --domain ${d}`,
      },
    );
  }
  await o.authenticate?.();
  if (!known) {
    const again = await hsm.dkekStatus();
    if (again && !dkekKcvUnknown(again)) known = again.kcv;
  }
  const domainKcvs: Record<string, string> = {};
  const entries: ManifestKey[] = [];
  const skipped: SkippedKey[] = [];
  const counted: CountedKey[] = [];
  let created: string | undefined;
  let removedTemps: string[] = [];
  // the card held from the key list to the last key (CardFiles.run): each key's description and
  // certificate are read once, by the listing, and are what WRAP KEY's blob goes with
  await hsm.files.run(async () => {
    const keys = await hsm.listKeys();
    // the key list now, with the KCV after login: checked again
    const allDomains = (await hsm.listKeyDomains()).domains;
    await checkBackupTarget(
      dir,
      device,
      async () => keys,
      known,
      async () => allDomains,
    );
    // keys of other key domains are wrapped under their domain's DKEK (spec §3.10, §3.16)
    const otherDomains = allDomains.filter((d) => d.domain !== 0 && d.outstanding === 0 && !d.xkekUid);
    // the list again, held: a key changed since the check above is refused here, still before writing
    const unwrappable = keys.filter((k) => k.algorithms && !k.algorithms.includes(ALGO.WRAP));
    if (unwrappable.length && !o.skipUnwrappable) throw notWrappableError(unwrappable);
    created = await createHostDirectory(dir);
    // what a killed backup left: temp files of our own naming, never another program's
    removedTemps = removeBackupTemps(dir);
    try {
      for (const [i, k] of keys.entries()) {
        if (o.signal?.aborted)
          throw new ScHsmError('ABORTED', `the backup was cancelled after ${i} of ${keys.length} keys`, {
            cause: o.signal.reason,
            fix: 'run the backup again: it completes the directory',
          });
        let bin: Uint8Array;
        try {
          if (unwrappable.includes(k))
            throw new ScHsmError('ALGORITHM_NOT_ALLOWED', `key ${k.keyRef} may not be wrapped`);
          bin = await hsm.backupKey(k.keyRef);
        } catch (e) {
          // a card that does not report the list refuses WRAP KEY itself (6A81)
          if (!isScHsmError(e, 'ALGORITHM_NOT_ALLOWED')) throw e;
          if (!o.skipUnwrappable) throw notWrappableError([k]);
          const sk: SkippedKey = {
            keyRef: k.keyRef,
            id: toHex(k.id),
            type: k.type,
            bits: k.bits,
            reason: 'not-wrappable',
          };
          if (k.label !== undefined) sk.label = k.label;
          skipped.push(sk);
          o.onProgress?.(i + 1, keys.length);
          continue;
        }
        if (k.useCounter !== undefined) {
          const c: CountedKey = { keyRef: k.keyRef, useCounter: k.useCounter };
          if (k.label !== undefined) c.label = k.label;
          counted.push(c);
        }
        const file = `key-${String(k.keyRef).padStart(3, '0')}.bin`;
        // a key of another domain: its blob carries that domain's KCV
        const blobKcv = wrapKcv(bin, file);
        const inDomain =
          k.domain !== undefined && k.domain !== 0
            ? otherDomains.find((d) => d.domain === k.domain)
            : otherDomains.find((d) => bytesEqual(d.kcv, blobKcv) && !(known && bytesEqual(known, blobKcv)));
        if (inDomain) {
          checkWrapFile(bin, inDomain.kcv, file);
          domainKcvs[String(inDomain.domain)] = toHex(inDomain.kcv);
        } else {
          // still unknown after login: the card wraps under its own DKEK, so the first blob tells
          known ??= blobKcv;
          // a damaged answer never reaches the directory: check before writing, and again after
          checkWrapFile(bin, known, file);
        }
        await writeAtomic(join(dir, file), bin, 0o600);
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
        if (k.publicKey) e.publicKeySha256 = sha256Hex(k.publicKey);
        if (inDomain) e.domain = inDomain.domain;
        entries.push(e);
        o.onProgress?.(i + 1, keys.length);
      }
    } catch (e) {
      // a directory this backup created and left empty goes again (files written stay: a rerun resumes)
      if (created && entries.length === 0) await removeEmptyDirectories(dir, created);
      throw e;
    }
  });
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    version: 1,
    created: new Date().toISOString(),
    // an empty backup of a device that never showed its KCV: zeros, "unknown" to restoreDevice
    device: { kcv: toHex(known ?? new Uint8Array(8)) },
    keys: entries,
  };
  if (device.serial) manifest.device.serial = device.serial;
  if (device.label !== undefined) manifest.device.label = device.label;
  if (Object.keys(domainKcvs).length) manifest.device.domains = domainKcvs;
  if (skipped.length) manifest.skipped = skipped;
  // verify what is on disk before anything is reported as backed up
  for (const e of entries) {
    const bin = await readHostFile(join(dir, e.file), 'backup file');
    if (sha256Hex(bin) !== e.sha256)
      throw new ScHsmError('BACKUP_INVALID', `${e.file} reads back with another hash`);
    checkWrapFile(bin, e.domain === undefined ? known! : fromHex(domainKcvs[String(e.domain)]!), e.file);
  }
  await writeAtomic(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`, 0o600);
  const again = Buffer.from(await readHostFile(manifestPath, 'backup manifest')).toString('utf8');
  let readBack: unknown;
  try {
    readBack = JSON.parse(again);
  } catch {
    readBack = undefined;
  }
  if ((readBack as Manifest | undefined)?.keys?.length !== entries.length)
    throw new ScHsmError('BACKUP_INVALID', 'the manifest reads back differently');
  return {
    dir,
    device,
    removedTemps,
    manifest,
    keys: entries.map((e) => ({
      keyRef: e.keyRef,
      file: e.file,
      path: join(dir, e.file),
      sha256: e.sha256,
      verified: true,
    })),
    skipped,
    counted,
    verified: true,
  };
}

/** ALGORITHM_NOT_ALLOWED naming the keys the card will not wrap; nothing was written. */
function notWrappableError(keys: KeyInfo[]): ScHsmError {
  const names = keys.map((k) => `key ref ${k.keyRef} (${JSON.stringify(k.label ?? '')})`).join(', ');
  return new ScHsmError(
    'ALGORITHM_NOT_ALLOWED',
    `${names} may not be wrapped (the algorithm list given at generation lacks WRAP), so no backup can hold ${keys.length === 1 ? 'it' : 'them'}. Nothing was written.`,
    {
      fix: 'back up the other keys and list these in the manifest as skipped: sc-hsm-ts backup DIR --skip-unwrappable (library: skipUnwrappable)',
    },
  );
}

/** The KCV in a wrapped key's blob (BACKUP_INVALID when the file is damaged). */
function wrapKcv(bin: Uint8Array, file: string): Uint8Array {
  try {
    return inspectKeyBlob(decodeWrapFile(bin).blob).kcv;
  } catch (e) {
    throw new ScHsmError('BACKUP_INVALID', `${file}: the wrapped key is damaged (${(e as Error).message})`, {
      cause: e,
    });
  }
}

/**
 * A backup directory may hold only this device's backup: a complete one (its manifest names the
 * device) or the files of an interrupted run, each the wrapped copy of a key the device still has
 * at that reference (same DKEK, same public key). Anything else would end up beside the new
 * manifest, or be overwritten, so FILE_EXISTS names it. A file that does not decode is no one's
 * backup and is overwritten.
 */
async function checkBackupTarget(
  dir: string,
  device: DeviceIdentity,
  listKeys: () => Promise<KeyInfo[]>,
  kcv: Uint8Array | undefined,
  listDomains: () => Promise<KeyDomainStatus[]>,
): Promise<void> {
  const { readdir } = await import('node:fs/promises');
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return; // absent (created later) or not a directory (its creation fails with IO_ERROR)
  }
  const fix = (what: string) => `back this device up into a new or empty directory; keep ${dir}: ${what}`;
  if (names.includes(MANIFEST)) {
    let m: Manifest | undefined;
    try {
      m = await readManifest(dir);
    } catch {
      m = undefined; // judged by its key files below
    }
    const otherKcv = m && kcv && !/^0{16}$/.test(m.device.kcv) && m.device.kcv !== toHex(kcv);
    if (m && (!sameDevice(m.device, device) || otherKcv)) {
      throw new ScHsmError(
        'FILE_EXISTS',
        `${dir} holds the backup of another device (${deviceText(m.device)}, DKEK ${m.device.kcv.toUpperCase()}); this is device ${deviceText(device)}. Nothing was written.`,
        { fix: fix('it is that device’s backup') },
      );
    }
  }
  const foreign: string[] = [];
  let keys: KeyInfo[] | undefined;
  let domains: KeyDomainStatus[] | undefined;
  // the DKEK a key's wrapped copy is under: its key domain's (spec §3.10), domain 0's by default;
  // a card that does not tell the key's domain: any complete domain's
  const underOtherDkek = async (k: KeyInfo, blobKcv: Uint8Array): Promise<boolean> => {
    if ((k.domain ?? 0) === 0 && kcv && bytesEqual(blobKcv, kcv)) return false;
    if (k.domain === 0) return !!kcv;
    domains ??= (await listDomains()).filter((d) => d.domain !== 0 && d.outstanding === 0 && !d.xkekUid);
    const mine = domains.filter((d) => k.domain === undefined || d.domain === k.domain);
    if (mine.some((d) => bytesEqual(d.kcv, blobKcv))) return false;
    return k.domain === undefined ? !!kcv : mine.length > 0;
  };
  for (const name of names.sort()) {
    const ref = KEY_FILE.exec(name);
    if (!ref) continue;
    let info: WrapFileInfo;
    try {
      info = wrapFileInfo(await readHostFile(join(dir, name), 'backup file'));
    } catch {
      continue;
    }
    keys ??= await listKeys();
    const k = keys.find((x) => x.keyRef === Number(ref[1]));
    const why = !k
      ? 'this device has no key at that reference'
      : (await underOtherDkek(k, info.header.kcv))
        ? 'wrapped under another DKEK'
        : k.publicKey && info.publicKey && !bytesEqual(k.publicKey, info.publicKey)
          ? 'another key than this device’s at that reference'
          : // an AES key has no public key: another label, ID, type or size is another key (as restore judges)
            k.description && !k.publicKey && !info.publicKey && !sameKeyFiles(k, info, k.id, k.keyRef, true)
            ? 'another AES key than this device’s at that reference (another label, ID, type or size)'
            : undefined;
    if (why) foreign.push(`${name} (${why})`);
  }
  if (foreign.length) {
    throw new ScHsmError(
      'FILE_EXISTS',
      `${dir} holds wrapped keys that are not this device’s (${deviceText(device)}): ${foreign.join(', ')} — another device’s backup, or keys since deleted. Nothing was written.`,
      { fix: fix('those files may be the only copy of their keys') },
    );
  }
}

/** Creates `dir` and its parents; returns the first directory it created (undefined: `dir` existed). */
async function createHostDirectory(dir: string): Promise<string | undefined> {
  const { mkdir } = await import('node:fs/promises');
  try {
    return await mkdir(dir, { recursive: true });
  } catch {
    await makeHostDirectory(dir); // its IO_ERROR names the directory
    return undefined;
  }
}

/** Removes `dir` and its parents up to `first` (the first one a backup created), while they are empty. */
async function removeEmptyDirectories(dir: string, first: string): Promise<void> {
  const { rmdir } = await import('node:fs/promises');
  const { dirname, resolve } = await import('node:path');
  const stop = resolve(first);
  for (let d = resolve(dir); ; d = dirname(d)) {
    try {
      await rmdir(d);
    } catch {
      return; // not empty any more, or not ours to remove
    }
    if (d === stop || dirname(d) === d) return;
  }
}

/** Removes the temp files a killed backup left in `dir` (writeAtomic's naming, for our file names only). */
function removeBackupTemps(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const targets = new Set<string>();
  for (const n of names) {
    const m = /^\.(key-\d{3}\.bin|manifest\.json)\.[0-9a-f]{12}\.tmp$/.exec(n);
    if (m) targets.add(m[1]!);
  }
  return [...targets].flatMap((t) => removeStaleTemps(join(dir, t)));
}

/** The .bin decodes, its blob's structure is sound and it was made under the device's DKEK. */
function checkWrapFile(bin: Uint8Array, kcv: Uint8Array, file: string): void {
  let h: ReturnType<typeof inspectKeyBlob>;
  try {
    h = inspectKeyBlob(decodeWrapFile(bin).blob);
  } catch (e) {
    throw new ScHsmError('BACKUP_INVALID', `${file}: the wrapped key is damaged (${(e as Error).message})`, {
      cause: e,
    });
  }
  if (!bytesEqual(h.kcv, kcv))
    throw new ScHsmError('BACKUP_INVALID', `${file} carries another key check value`);
}

/**
 * Reads `dir/manifest.json` and validates all of it before anything uses it (HOST_FILE_NOT_FOUND,
 * BACKUP_INVALID naming the entry and what is wrong): format and version; the device's KCV (16 hex
 * digits), serial and label; per key a key reference 1..255 that no other entry has, an ID of hex
 * bytes, a file that is a plain name inside the directory (no path separator, not `.`/`..`, no
 * leading dot, no control character) and no other entry's, SHA-256 values of 64 lowercase hex
 * digits; at most 255 keys.
 */
export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST);
  const text = Buffer.from(await readHostFile(path, 'backup manifest')).toString('utf8');
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch {
    throw new ScHsmError('BACKUP_INVALID', `${path} is not JSON`);
  }
  const invalid = (what: string) =>
    new ScHsmError('BACKUP_INVALID', `${path}: ${what}. Nothing was changed.`, {
      fix: 'use the manifest.json written by `sc-hsm-ts backup` with its .bin files, unedited',
    });
  if (
    typeof m !== 'object' ||
    m === null ||
    m.format !== MANIFEST_FORMAT ||
    m.version !== 1 ||
    !Array.isArray(m.keys) ||
    typeof m.device !== 'object' ||
    m.device === null
  ) {
    throw new ScHsmError(
      'BACKUP_INVALID',
      `${path} is not an sc-hsm-ts backup manifest (format ${MANIFEST_FORMAT}, version 1)`,
    );
  }
  const d = m.device;
  if (typeof d.kcv !== 'string' || !/^[0-9a-fA-F]{16}$/.test(d.kcv))
    throw invalid('device.kcv must be 16 hex digits');
  if (d.serial !== undefined && typeof d.serial !== 'string') throw invalid('device.serial must be text');
  if (d.label !== undefined && typeof d.label !== 'string') throw invalid('device.label must be text');
  if (m.created !== undefined && typeof m.created !== 'string') throw invalid('created must be text');
  if (m.keys.length > 255) throw invalid(`it lists ${m.keys.length} keys; a device holds at most 255`);
  if (
    m.skipped !== undefined &&
    (!Array.isArray(m.skipped) ||
      m.skipped.some(
        (k) =>
          typeof k !== 'object' ||
          k === null ||
          !Number.isInteger(k.keyRef) ||
          k.keyRef < 1 ||
          k.keyRef > 255 ||
          (k.label !== undefined && typeof k.label !== 'string'),
      ))
  )
    throw invalid('skipped must list keys (keyRef 1 to 255, label text)');
  const refs = new Map<number, number>();
  const files = new Map<string, number>();
  const hex64 = /^[0-9a-f]{64}$/;
  for (const [i, k] of m.keys.entries()) {
    const at = `keys[${i}]`;
    if (typeof k !== 'object' || k === null || Array.isArray(k)) throw invalid(`${at} is not an object`);
    if (!Number.isInteger(k.keyRef) || k.keyRef < 1 || k.keyRef > 255)
      throw invalid(`${at}.keyRef must be a key reference from 1 to 255`);
    const twice = refs.get(k.keyRef);
    if (twice !== undefined)
      throw invalid(`key reference ${k.keyRef} appears twice (keys[${twice}] and ${at})`);
    refs.set(k.keyRef, i);
    if (typeof k.id !== 'string' || !/^([0-9a-fA-F]{2}){1,255}$/.test(k.id))
      throw invalid(`${at}.id must be 1 to 255 bytes of hex`);
    if (k.label !== undefined && typeof k.label !== 'string') throw invalid(`${at}.label must be text`);
    if (typeof k.type !== 'string') throw invalid(`${at}.type must be text`);
    if (!Number.isInteger(k.bits) || k.bits < 0) throw invalid(`${at}.bits must be a whole number`);
    if (k.curve !== undefined && typeof k.curve !== 'string') throw invalid(`${at}.curve must be text`);
    if (typeof k.file !== 'string' || k.file === '')
      throw invalid(`${at}.file must name the key's .bin file`);
    if (
      k.file === '.' ||
      k.file === '..' ||
      k.file.startsWith('.') ||
      /[/\\]/.test(k.file) ||
      /[\u0000-\u001f\u007f]/.test(k.file)
    ) {
      throw invalid(
        `${at}.file ${JSON.stringify(k.file)} is not a plain file name in the backup directory (no path separator, no leading dot, no control character)`,
      );
    }
    const same = files.get(k.file);
    if (same !== undefined) throw invalid(`keys[${same}] and ${at} name the same file ${k.file}`);
    files.set(k.file, i);
    if (typeof k.sha256 !== 'string' || !hex64.test(k.sha256))
      throw invalid(`${at}.sha256 must be 64 lowercase hex digits`);
    if (
      k.publicKeySha256 !== undefined &&
      (typeof k.publicKeySha256 !== 'string' || !hex64.test(k.publicKeySha256))
    )
      throw invalid(`${at}.publicKeySha256 must be 64 lowercase hex digits`);
    if (k.domain !== undefined) {
      if (!Number.isInteger(k.domain) || k.domain < 1 || k.domain > 254)
        throw invalid(`${at}.domain must be a key domain from 1 to 254`);
      const dk = m.device.domains?.[String(k.domain)];
      if (typeof dk !== 'string' || !/^[0-9a-fA-F]{16}$/.test(dk))
        throw invalid(`${at}.domain ${k.domain} has no 16-hex-digit KCV in device.domains`);
    }
  }
  return m;
}

/**
 * Reads a backup directory and checks it on the host, without a device: the manifest, every
 * file's SHA-256 against it, every file whole (wrapFileDamage: its description and public key),
 * and that every blob was made under the manifest's DKEK (HOST_FILE_NOT_FOUND, BACKUP_INVALID,
 * INVALID_WRAP_FILE).
 */
export async function checkBackup(dir: string): Promise<CheckedBackup> {
  const manifest = await readManifest(dir);
  const files: CheckedBackup['files'] = [];
  for (const entry of manifest.keys) {
    const bin = await readHostFile(join(dir, entry.file), 'backup file');
    if (sha256Hex(bin) !== entry.sha256) {
      throw new ScHsmError(
        'BACKUP_INVALID',
        `${entry.file} does not match its SHA-256 in the manifest (damaged or replaced): nothing was changed`,
      );
    }
    const info = wrapFileInfo(bin);
    // the parts its MAC does not cover (description, public key): a hash only says the file is as written
    const damage = wrapFileDamage(info);
    if (damage)
      throw new ScHsmError('BACKUP_INVALID', `${entry.file} is damaged: ${damage}. Nothing was changed.`, {
        fix: 'restore this key from another copy of the backup, or make a new backup from a device that still has it',
      });
    // the KCV of the key's domain (domain 0: the device's)
    const expected =
      entry.domain === undefined ? manifest.device.kcv : manifest.device.domains![String(entry.domain)]!;
    if (toHex(info.header.kcv) !== expected.toLowerCase()) {
      throw new ScHsmError(
        'BACKUP_INVALID',
        `${entry.file} was wrapped under another DKEK than the manifest says: nothing was changed`,
      );
    }
    files.push({ entry, bin, info });
  }
  return { dir, manifest, files };
}

/**
 * Restores a backup directory (or one already read by {@link checkBackup}) onto the device.
 * Before anything is written: every file's hash and blob KCV (checkBackup), the device's DKEK
 * (NO_DKEK, DKEK_INCOMPLETE, KCV_MISMATCH against the manifest) and every key reference
 * (KEY_REF_OCCUPIED for another key, unless `force`). A reference holding the backup's key is
 * left as it is, so running it again after an interruption completes what is missing. An AES key
 * with the backup's label, ID, type and size is left as it is too (action `present`, `unverified`:
 * its value cannot be compared on the host); only `force` replaces it. Without `force` no key on
 * the device is replaced and no use counter lifted (a restored key has none, spec §8).
 */
export async function restoreDevice(
  hsm: SmartCardHsm,
  backup: string | CheckedBackup,
  o: RestoreOptions = {},
): Promise<RestoreResult> {
  const b = typeof backup === 'string' ? await checkBackup(backup) : backup;
  const m = b.manifest;
  // one step per key reference (readManifest refuses a manifest naming one twice)
  const byRef = new Map<number, CheckedBackup['files'][number]>();
  for (const f of b.files) byRef.set(f.entry.keyRef, f);
  if (byRef.size !== b.files.length)
    throw new ScHsmError('BACKUP_INVALID', 'the backup names a key reference twice. Nothing was changed.');
  const device = await deviceIdentity(hsm);
  // restores of this backup that were started on other devices and not completed there
  const progress = await readRestoreProgress(b.dir);
  const interrupted = progress.filter((p) => !sameDevice(p, device));
  if (interrupted.length) o.onInterrupted?.(interrupted, device);
  const dkek =
    (await hsm.dkekStatus()) ??
    // no DKEK in domain 0: enough for a backup whose keys all belong to other key domains
    (b.files.length && b.files.every((f) => f.entry.domain !== undefined && f.entry.domain !== 0)
      ? { total: 0, outstanding: 0, kcv: new Uint8Array(8) }
      : undefined);
  if (!dkek)
    throw new ScHsmError(
      'NO_DKEK',
      'this device has no DKEK: initialize it with DKEK shares and import the shares first. Nothing was changed.',
    );
  if (dkek.outstanding > 0)
    throw new ScHsmError(
      'DKEK_INCOMPLETE',
      `this device still misses ${dkek.outstanding} DKEK share(s): nothing was changed`,
    );
  const backupKcv = fromHex(m.device.kcv);
  // zeros: a backup of a device that never showed its KCV (and had no keys)
  const backupKcvKnown = backupKcv.some((x) => x !== 0);
  let authenticated = false;
  let deviceKcv = dkekKcvUnknown(dkek) ? undefined : dkek.kcv;
  if (!deviceKcv && o.authenticate) {
    // firmware that shows the KCV only after login: log in first, then compare
    await o.authenticate();
    authenticated = true;
    const again = await hsm.dkekStatus();
    if (again && !dkekKcvUnknown(again)) deviceKcv = again.kcv;
  }
  const mismatch = (device: Uint8Array) =>
    new ScHsmError(
      'KCV_MISMATCH',
      `the backup was made under DKEK ${kcvText(backupKcv)}, this device has ${kcvText(device)}: import the same DKEK share files. Nothing was changed.`,
    );
  if (deviceKcv && backupKcvKnown && !bytesEqual(deviceKcv, backupKcv)) throw mismatch(deviceKcv);
  // every other key domain the backup's keys belong to: there, complete, with the same DKEK
  for (const [d, kcvHex] of Object.entries(m.device.domains ?? {})) {
    if (!b.files.some((f) => f.entry.domain === Number(d))) continue;
    const st = await hsm.keyDomainStatus(Number(d)).catch((e: unknown) => {
      if (isScHsmError(e, 'KEY_DOMAIN_OUT_OF_RANGE')) return undefined;
      throw e;
    });
    if (!st || st.outstanding > 0 || toHex(st.kcv) !== kcvHex.toLowerCase())
      throw new ScHsmError(
        st && st.outstanding > 0 ? 'DKEK_INCOMPLETE' : 'KCV_MISMATCH',
        `keys of the backup belong to key domain ${d} (DKEK ${kcvHex.toUpperCase()}); on this device that domain ${
          !st
            ? 'does not exist or is unused'
            : st.outstanding > 0
              ? `still misses ${st.outstanding} share(s)`
              : `has DKEK ${kcvText(st.kcv)}`
        }. Nothing was changed.`,
        {
          fix: !st
            ? `create the domain and import the backup's share files for it: sc-hsm-ts domain create --domain ${d} --shares K, then sc-hsm-ts domain import FILE.pbe --domain ${d}`
            : st.outstanding > 0
              ? `import the domain's outstanding share file(s): sc-hsm-ts domain import FILE.pbe --domain ${d}`
              : `key domain ${d} holds another DKEK: delete it (sc-hsm-ts domain delete --domain ${d} --dkek-only) and import the backup's share files for it (sc-hsm-ts domain import FILE.pbe --domain ${d}), or restore onto a device whose domain ${d} has them`,
        },
      );
  }
  const present = new Map((await hsm.listKeys()).map((k) => [k.keyRef, k]));
  // a restore of this backup was started on this very device and not completed (restore-progress.json)
  const restartedHere = progress.some((p) => sameDevice(p, device));
  const steps: RestoreStep[] = [];
  const conflicts: RestoreConflict[] = [];
  for (const [keyRef, f] of byRef) {
    const k = present.get(keyRef);
    let action: RestoreAction = 'restore';
    const step: RestoreStep = { keyRef, action, entry: f.entry, written: false };
    if (k) {
      // an AES key like the backup's: the same description, a value the host cannot compare
      let sameAes = false;
      if (k.publicKey && f.info.publicKey)
        action = bytesEqual(k.publicKey, f.info.publicKey) ? 'present' : 'replace';
      else if (!k.publicKey && !k.description) {
        action = 'complete';
        step.note = `key ref ${keyRef} holds a key without description or public key, as an interrupted restore of this backup leaves it: it is restored over (its wrapped copy is kept first, where it may be wrapped)`;
      } else if (!k.publicKey && sameKeyFiles(k, f.info, fromHex(f.entry.id), keyRef, restartedHere)) {
        if (f.info.publicKey) action = 'complete';
        else {
          // its description is written after the key (unwrapInto): a restore that wrote it is
          // complete. Whether the value is the backup's nobody can tell here: never replaced
          // without force, so a rerun sends nothing for it (spec §8: the blob has no use counter)
          sameAes = true;
          if (o.force) action = 'replace';
          else {
            action = 'present';
            step.unverified = true;
            step.note = `AES key ${keyRef} ${JSON.stringify(k.label ?? '')} is on the device; its value cannot be compared with the backup's on the host: left as it is; --force replaces it with the backup's copy`;
          }
        }
      } else action = 'replace';
      // a key listed without description: its use counter from its FCP (one SELECT, no PIN)
      const uses =
        action === 'complete' && k.useCounter === undefined && !k.description
          ? (await hsm.keyRestrictions(keyRef)).useCounter
          : k.useCounter;
      if (action === 'complete' && uses !== undefined) {
        // a restored key has no use counter (the blob carries none, spec §8): a key with one is not
        // what an interrupted restore of this backup left, and restoring over it lifts its limit
        action = 'replace';
        delete step.note;
      }
      step.present = k.label === undefined ? { id: k.id } : { label: k.label, id: k.id };
      if (action === 'replace') {
        const counter =
          uses === undefined
            ? ''
            : `; it has a key use counter (${uses} use(s) left), which the backup's copy does not have (spec §8): the key restored there can be used without limit`;
        if (counter) step.note = `key ref ${keyRef}${counter.replace(/^; it/, '')}`;
        conflicts.push({
          keyRef,
          present: step.present,
          backup: f.entry.label === undefined ? { id: f.entry.id } : { label: f.entry.label, id: f.entry.id },
          text: `${
            sameAes
              ? `key ref ${keyRef} holds the AES key ${JSON.stringify(k.label ?? '')} (ID ${toHex(k.id)}) with the backup's label, ID, type and size; its value cannot be compared with the backup's on the host`
              : `key ref ${keyRef} holds ${JSON.stringify(k.label ?? '')} (ID ${toHex(k.id)}), the backup has ${JSON.stringify(f.entry.label ?? '')}${
                  f.info.publicKey
                    ? ''
                    : ' (AES keys: nothing proves they are the same key; their material cannot be compared)'
                }`
          }${counter}`,
        });
      }
    }
    step.action = action;
    steps.push(step);
  }
  if (conflicts.length && !o.force) {
    throw new ScHsmError(
      'KEY_REF_OCCUPIED',
      `key references are occupied by other keys: ${conflicts.map((c) => c.text).join('; ')}. Nothing was changed.`,
    );
  }
  // a description or certificate without its key (an interrupted replace or delete): nothing to
  // lose, removed by a forced restore (unwrapInto), refused without force
  const leftovers = new Map((await hsm.listOrphanedKeyFiles()).map((x) => [x.keyRef, x]));
  const fidText = (f: number) => f.toString(16).toUpperCase();
  const blocked = steps.filter((s) => s.action === 'restore' && leftovers.has(s.keyRef));
  if (blocked.length && !o.force) {
    throw new ScHsmError(
      'KEY_REF_OCCUPIED',
      `key reference(s) hold no key but the description or certificate of one (left by an interrupted replace or delete): ${blocked
        .map((s) => `key ref ${s.keyRef} (${leftovers.get(s.keyRef)!.fids.map(fidText).join(', ')})`)
        .join('; ')}; a forced restore removes them. Nothing was changed.`,
    );
  }
  // no key ID twice (KEY_ID_IN_USE, as for key generation): each write of the plan checked
  // against the device as the writes before it leave it
  const ids = new Map<number, { id: Uint8Array; leftover: boolean }>();
  for (const k of present.values()) if (k.description) ids.set(k.keyRef, { id: k.id, leftover: false });
  for (const x of leftovers.values()) if (x.id) ids.set(x.keyRef, { id: x.id, leftover: true });
  for (const s of steps) {
    if (s.action === 'present') continue;
    ids.delete(s.keyRef);
    const id = byRef.get(s.keyRef)!.info.wrap.id;
    if (!id) continue;
    const other = [...ids].find(([, x]) => bytesEqual(x.id, id));
    if (other) {
      const [ref, x] = other;
      throw new ScHsmError(
        'KEY_ID_IN_USE',
        `the backup's key for key ref ${s.keyRef} (${JSON.stringify(s.entry.label ?? '')}) has the ID ${toHex(id)}, which key ref ${ref} of this device already has${x.leftover ? ' (in the description left there without a key)' : ''}: two keys with one ID confuse PKCS#11 applications. Nothing was changed.`,
        {
          existingKeyRef: ref,
          fix: `check what key ref ${ref} holds (sc-hsm-ts keys): if it is the same key or no longer needed, delete it (sc-hsm-ts delete-key --key-ref ${ref}; back it up first if in doubt), then restore again. If it is an unrelated key still in use, keep it: restore the backup's key alone under another ID (sc-hsm-ts unwrap ${s.entry.file} --key-ref ${s.keyRef} --id HEX) and the others onto a device without that ID`,
        },
      );
    }
    ids.set(s.keyRef, { id, leftover: false });
  }
  const todo = steps.filter((s) => s.action !== 'present');
  // the card puts a key into the lowest domain whose DKEK has the blob's KCV (spec §3.10): a key
  // whose backup domain shares its DKEK with a lower one lands there, which is said (the host
  // cannot choose)
  const moved = todo.filter((t) => t.entry.domain !== undefined && t.entry.domain !== 0);
  if (moved.length) {
    const onDevice = (await hsm.listKeyDomains()).domains.filter((d) => d.outstanding === 0 && !d.xkekUid);
    for (const t of moved) {
      const kcvHex = m.device.domains?.[String(t.entry.domain)]?.toLowerCase();
      const lands = onDevice.find((d) => toHex(d.kcv) === kcvHex);
      if (lands && lands.domain !== t.entry.domain) {
        const why = `key ref ${t.keyRef} was in key domain ${t.entry.domain}; on this device key domain ${lands.domain} has the same DKEK (${kcvHex!.toUpperCase()}), and the card puts the key into the lowest such domain: it lands in key domain ${lands.domain}`;
        t.note = t.note ? `${t.note}; ${why}` : why;
      }
    }
  }
  if (todo.length) {
    if (!authenticated) await o.authenticate?.();
    // every key to be replaced must be one that can be put back (wrapped first), checked for all
    // before the first is touched; its blob also tells the device's KCV where the status hides it
    const unsafe: number[] = [];
    let otherKcvs: Uint8Array[] | undefined;
    for (const s of todo) {
      if (s.action === 'restore') continue;
      let copy: Uint8Array;
      try {
        copy = await hsm.backupKey(s.keyRef);
      } catch (e) {
        if (!isScHsmError(e, 'ALGORITHM_NOT_ALLOWED')) throw e;
        if (!o.allowKeyLoss) unsafe.push(s.keyRef);
        continue;
      }
      const kcv = inspectKeyBlob(decodeWrapFile(copy).blob).kcv;
      // a key of another key domain is wrapped under that domain's DKEK (spec §3.10): it tells
      // nothing about domain 0's (the backup's domains were compared above)
      const inDomain = present.get(s.keyRef)?.domain;
      if (inDomain !== undefined && inDomain !== 0) continue;
      if (inDomain === undefined) {
        otherKcvs ??= (await hsm.listKeyDomains()).domains
          .filter((d) => d.domain !== 0 && d.outstanding === 0)
          .map((d) => d.kcv);
        if (otherKcvs.some((x) => bytesEqual(x, kcv)) && !(deviceKcv && bytesEqual(deviceKcv, kcv))) continue;
      }
      deviceKcv ??= kcv;
      if (backupKcvKnown && !bytesEqual(kcv, backupKcv)) throw mismatch(kcv);
    }
    if (unsafe.length) {
      throw new ScHsmError(
        'REPLACE_UNSAFE',
        `the key(s) at key reference(s) ${unsafe.join(', ')} may not be wrapped (their algorithm list lacks WRAP), so they could not be put back if restoring over them failed: nothing is replaced. Nothing was changed.`,
        {
          fix: 'restore onto a device whose key references are free; or, only if those keys may be lost, delete them first (sc-hsm-ts delete-key)',
        },
      );
    }
    if (conflicts.length && o.confirmReplace && (await o.confirmReplace(conflicts)) === false)
      throw new ScHsmError('KEY_REF_OCCUPIED', 'replacing keys was not confirmed: nothing was changed');
    await writeRestoreProgress(b.dir, [
      ...progress.filter((p) => !sameDevice(p, device)),
      { ...device, started: new Date().toISOString() },
    ]);
  }
  let n = 0;
  // the card held for all keys (CardFiles.run): the DKEK status once, no key's files read twice
  await hsm.files.run(async () => {
    for (const step of todo) {
      if (o.signal?.aborted)
        throw new ScHsmError('ABORTED', `the restore was cancelled after ${n} of ${todo.length} keys`, {
          cause: o.signal.reason,
          fix: 'run the restore again: it completes what is missing',
        });
      const f = byRef.get(step.keyRef)!;
      const opts: UnwrapOptions = { force: step.action !== 'restore' || leftovers.has(step.keyRef) };
      if (o.allowKeyLoss) opts.allowKeyLoss = true;
      if (o.onReplaced) opts.onReplaced = o.onReplaced;
      if (o.authenticate) opts.authenticate = o.authenticate;
      try {
        await hsm.restoreKey(f.bin, step.keyRef, opts);
      } catch (e) {
        const done = todo.filter((t) => t.written).map((t) => t.keyRef);
        const full = isScHsmError(e, 'MEMORY_FULL');
        const left = todo.filter((t) => !t.written).length;
        const note = `${done.length ? `This run restored key ref(s) ${done.join(', ')}; ` : ''}restoring key ref ${step.keyRef} failed; ${
          full
            ? `the device is full: ${left} key(s) of the backup do not fit. Delete keys this device no longer needs (sc-hsm-ts delete-key) or restore onto an empty device, then run the restore again to complete it.`
            : 'run the restore again to complete it.'
        }`;
        throw e instanceof KeyReplaceError || !isScHsmError(e) ? e : withNote(e, note);
      }
      step.written = true;
      n++;
      o.onProgress?.(n, todo.length);
    }
  });
  // complete on this device: it leaves the list of interrupted restores
  if (progress.some((p) => sameDevice(p, device)) || todo.length)
    await writeRestoreProgress(b.dir, interrupted);
  return {
    dir: b.dir,
    device,
    interrupted,
    kcv: deviceKcv ?? backupKcv,
    manifest: m,
    keys: steps,
    written: n,
  };
}

/**
 * Whether a key without public key on the device is the backup's key whose restore was interrupted
 * (its files to be completed) rather than another key. With a public key in the backup (RSA, EC)
 * the same ID says so. An AES key has no public key anywhere: only a description like the
 * backup's (type, size, label, ID) counts, and an ID that is the key reference (the default of
 * keys made before AES keys got random IDs, the same on every device) only when restore-progress.json
 * says a restore of this backup was started on this device; another AES key there is a conflict,
 * replaced only with `force`.
 */
function sameKeyFiles(
  k: KeyInfo,
  info: WrapFileInfo,
  id: Uint8Array,
  keyRef: number,
  restartedHere: boolean,
): boolean {
  if (info.publicKey) return bytesEqual(k.id, id);
  const d = info.description;
  if (
    d === undefined ||
    k.type !== d.kind ||
    k.bits !== d.bits ||
    k.label !== d.label ||
    !bytesEqual(k.id, d.id)
  )
    return false;
  // the old default ID of an AES key (its key reference, the same on every device) proves nothing:
  // only a restore of this backup started on this device and not completed makes it likely
  return !(d.id.length === 1 && d.id[0] === keyRef) || restartedHere;
}

/** `e` with `note` after its message (same code, status word, command and fix). */
function withNote(e: ScHsmError, note: string): ScHsmError {
  const o: ConstructorParameters<typeof ScHsmError>[2] = { cause: e };
  if (e.sw !== undefined) o.sw = e.sw;
  if (e.command !== undefined) o.command = e.command;
  if (e.keyRef !== undefined) o.keyRef = e.keyRef;
  if (e.existingKeyRef !== undefined) o.existingKeyRef = e.existingKeyRef;
  if (e.fix !== undefined) o.fix = e.fix;
  return new ScHsmError(e.code, `${e.message.replace(/\.\s*$/, '')}. ${note}`, o);
}

/** The devices RESTORE_PROGRESS names; nothing when it is absent or unreadable (it is only a note). */
async function readRestoreProgress(dir: string): Promise<RestoreElsewhere[]> {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(await readHostFile(join(dir, RESTORE_PROGRESS))).toString('utf8'));
  } catch {
    return [];
  }
  const r = raw as { format?: unknown; devices?: unknown };
  if (r?.format !== RESTORE_PROGRESS_FORMAT || !Array.isArray(r.devices)) return [];
  const out: RestoreElsewhere[] = [];
  for (const d of r.devices as Record<string, unknown>[]) {
    if (typeof d !== 'object' || d === null) continue;
    const e: RestoreElsewhere = {};
    if (typeof d.serial === 'string') e.serial = d.serial;
    if (typeof d.label === 'string') e.label = d.label;
    if (typeof d.started === 'string') e.started = d.started;
    out.push(e);
  }
  return out;
}

/**
 * Records the devices with an incomplete restore of this backup (the file goes when none is
 * left). Best effort: a backup on read-only media is restored all the same, without the note.
 */
async function writeRestoreProgress(dir: string, devices: RestoreElsewhere[]): Promise<void> {
  const path = join(dir, RESTORE_PROGRESS);
  try {
    if (devices.length === 0) {
      const { unlink } = await import('node:fs/promises');
      await unlink(path).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
      });
      return;
    }
    const doc = { format: RESTORE_PROGRESS_FORMAT, version: 1, devices };
    await writeAtomic(path, `${JSON.stringify(doc, null, 2)}\n`, 0o644);
  } catch {
    // read-only or full medium: the restore itself does not depend on the note
  }
}

// ------------------------------------------------------------------------------- key import

/**
 * Reads a private key to import: PEM (PKCS#8, traditional RSA/EC, encrypted with `passphrase`) or
 * PKCS#8 DER, or a KeyObject. INVALID_ARGUMENT when unreadable or neither RSA nor EC.
 */
export function readPrivateKey(key: Uint8Array | string | KeyObject, passphrase?: string): KeyObject {
  let k: KeyObject;
  if (typeof key === 'object' && !(key instanceof Uint8Array)) k = key;
  else {
    const text = typeof key === 'string' ? key : Buffer.from(key).toString('utf8');
    try {
      k = text.includes('-----BEGIN')
        ? createPrivateKey(passphrase === undefined ? text : { key: text, passphrase })
        : createPrivateKey({
            key: typeof key === 'string' ? Buffer.from(key, 'binary') : Buffer.from(key),
            format: 'der',
            type: 'pkcs8',
          });
    } catch (e) {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        'not a readable private key (PEM or PKCS#8 DER; encrypted PEM needs its passphrase)',
        { cause: e },
      );
    }
  }
  if (k.type !== 'private') throw new ScHsmError('INVALID_ARGUMENT', 'not a private key');
  const kind = k.asymmetricKeyType;
  if (kind !== 'rsa' && kind !== 'ec')
    throw new ScHsmError('INVALID_ARGUMENT', `only RSA and EC keys can be imported (got ${kind})`);
  // the same limits as key generation: what the card supports
  if (kind === 'rsa') checkRsaBits(k.asymmetricKeyDetails?.modulusLength ?? 0);
  else curveByName(k.asymmetricKeyDetails?.namedCurve ?? 'unnamed');
  return k;
}

export interface ImportKeyOptions {
  /** PEM or PKCS#8 DER bytes (or text), or a private KeyObject. */
  key: Uint8Array | string | KeyObject;
  /** For an encrypted PEM. */
  passphrase?: string;
  /** The key reference to put the key at (1–255). */
  keyRef: number;
  /** PKCS#15 label, 1–32 bytes of UTF-8. */
  label: string;
  /** PKCS#15 ID; default: OpenSC's intrinsic ID (SHA-1 of the modulus or of X). */
  id?: Uint8Array;
  /**
   * Allowed algorithms (the blob's tag-91 field, spec §8.1; `algorithmBytes([...])`): the card
   * refuses the imported key any other use, wrap included unless WRAP is listed.
   */
  algorithms?: Uint8Array;
  /**
   * The device's DKEK as its 32-byte shares (combined here), or a function returning them, called
   * only after the device checks (a share file's key derivation is slow). Shares from a function
   * are wiped after use; shares given directly are left to the caller.
   */
  dkekShares?: Uint8Array[] | (() => Promise<Uint8Array[]>);
  /**
   * Key domain (spec §3.10) whose DKEK the given DKEK is: the blob is checked against that domain's
   * KCV and the card unwraps it into that domain; default 0.
   */
  domain?: number;
  /** The combined DKEK, or a function returning it (wiped after use), instead of `dkekShares`. */
  dkek?: Uint8Array | (() => Promise<Uint8Array>);
  /** Replace a key at `keyRef` (otherwise KEY_REF_OCCUPIED). */
  force?: boolean;
  /** Called once before the first write: verify the user PIN here. */
  authenticate?: () => Promise<void>;
  /** Called with `force` when `keyRef` holds a key, before anything is written; false stops. */
  confirmReplace?: (present: KeyInfo) => boolean | undefined | Promise<boolean | undefined>;
  /** With `force`: replace also a key that may not be wrapped first (UnwrapOptions.allowKeyLoss). */
  allowKeyLoss?: boolean;
  /** With `force`: receives the replaced key's wrapped copy before it is deleted (UnwrapOptions.onReplaced). */
  onReplaced?: (old: ReplacedKey) => void | Promise<void>;
}

export interface ImportedKey {
  keyRef: number;
  id: Uint8Array;
  label: string;
  type: 'rsa' | 'ec';
  bits: number;
  /** SubjectPublicKeyInfo DER. */
  publicKey: Uint8Array;
  /** SHA-256 of the SubjectPublicKeyInfo DER, lowercase hex. */
  publicKeySha256: string;
  /** A key at `keyRef` was replaced. */
  replaced: boolean;
}

/**
 * Puts an existing RSA or EC private key onto the device: the key blob is built on the host under
 * the device's DKEK (encryptKeyBlob, spec §8.1) with an OpenSC-style key description, and
 * restored with UNWRAP KEY (restoreKey). Refused before anything is written: NO_DKEK,
 * DKEK_INCOMPLETE, KEY_REF_OCCUPIED (unless `force`), KCV_MISMATCH when the given DKEK is not the
 * device's. The private key bytes and the DKEK are wiped on the host after use.
 */
export async function importPrivateKey(hsm: SmartCardHsm, o: ImportKeyOptions): Promise<ImportedKey> {
  checkKeyRef(o.keyRef);
  checkLabel(o.label, 'key label');
  if (!o.dkek && !o.dkekShares)
    throw new ScHsmError('INVALID_ARGUMENT', 'the DKEK (or its shares) is needed to import a key');
  const key = readPrivateKey(o.key, o.passphrase);
  const kind = key.asymmetricKeyType as 'rsa' | 'ec';
  if (o.algorithms !== undefined) {
    if (!(o.algorithms instanceof Uint8Array))
      throw new ScHsmError('INVALID_ARGUMENT', 'the algorithm list (algorithms) must be a Uint8Array');
    checkAlgorithmList(o.algorithms, 'the allowed-algorithm list (algorithms)', kind);
  }
  const spki = new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }));
  const bits =
    kind === 'rsa'
      ? key.asymmetricKeyDetails!.modulusLength!
      : curveByName(key.asymmetricKeyDetails!.namedCurve!).bits;
  const domain = o.domain ?? 0;
  if (!Number.isInteger(domain) || domain < 0 || domain > 254)
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `the key domain must be a whole number from 0 to 254; got ${String(o.domain)}`,
    );
  const status = () => (domain === 0 ? hsm.dkekStatus() : hsm.keyDomainStatus(domain));
  const st = await status();
  if (!st)
    throw new ScHsmError(
      domain === 0 ? 'NO_DKEK' : 'KEY_DOMAIN_UNUSED',
      `${domain === 0 ? 'the device' : `key domain ${domain}`} has no DKEK: keys cannot be imported. Nothing was changed.`,
    );
  if (st.outstanding > 0)
    throw new ScHsmError(
      'DKEK_INCOMPLETE',
      `the DKEK still misses ${st.outstanding} share(s). Nothing was changed.`,
    );
  const present = await hsm.listKeys();
  const occupied = present.find((k) => k.keyRef === o.keyRef);
  if (occupied && !o.force)
    throw new ScHsmError(
      'KEY_REF_OCCUPIED',
      `key reference ${o.keyRef} is in use (${JSON.stringify(occupied.label ?? '')}). Nothing was changed.`,
    );
  const id = o.id ?? intrinsicKeyId(spki);
  const sameId = present.find((k) => k.description && k.keyRef !== o.keyRef && bytesEqual(k.id, id));
  if (sameId)
    throw new ScHsmError(
      'KEY_ID_IN_USE',
      `the key ID ${toHex(id)} is already the ID of key reference ${sameId.keyRef}; two keys with one ID confuse PKCS#11 applications. Nothing was changed.`,
      { existingKeyRef: sameId.keyRef },
    );
  // firmware that shows the KCV only after login: log in first, then read it
  let deviceKcv = dkekKcvUnknown(st) ? undefined : st.kcv;
  let authenticated = false;
  if (!deviceKcv && o.authenticate) {
    await o.authenticate();
    authenticated = true;
    const again = await status();
    if (again && !dkekKcvUnknown(again)) deviceKcv = again.kcv;
  }
  const dkek = await resolveDkek(o);
  const pkcs8 = new Uint8Array(key.export({ format: 'der', type: 'pkcs8' }));
  let blob: Uint8Array;
  try {
    const given = keyCheckValue(dkek);
    // still unknown: the card checks the blob (and a forced replace compares with the old key's)
    if (deviceKcv && !bytesEqual(given, deviceKcv)) {
      // the shares of another key domain of this device: say which (`--domain N`)
      const other = (await hsm.listKeyDomains().catch(() => undefined))?.domains.find(
        (d) => d.domain !== domain && d.outstanding === 0 && bytesEqual(d.kcv, given),
      );
      throw new ScHsmError(
        'KCV_MISMATCH',
        `the given DKEK has key check value ${kcvText(given)}, ${domain === 0 ? 'the device' : `key domain ${domain}`} has ${kcvText(deviceKcv)}${other ? `; it is the DKEK of key domain ${other.domain}` : ''}. Nothing was changed.`,
        other
          ? {
              fix: `import the key into key domain ${other.domain}: sc-hsm-ts import-key … --domain ${other.domain} (the library: importPrivateKey with domain: ${other.domain})`,
            }
          : {},
      );
    }
    blob = encryptKeyBlob({ pkcs8 }, dkek, o.algorithms ? { algorithms: o.algorithms } : {});
  } finally {
    wipe(dkek);
    wipe(pkcs8);
  }
  const prkd = encodeKeyDescription({
    kind,
    label: o.label,
    objectFlags: OBJECT_FLAGS.PRIVATE | OBJECT_FLAGS.MODIFIABLE,
    authId: Uint8Array.of(1),
    id,
    usage:
      kind === 'rsa'
        ? KEY_USAGE.DECRYPT | KEY_USAGE.SIGN | KEY_USAGE.SIGN_RECOVER
        : KEY_USAGE.SIGN | KEY_USAGE.SIGN_RECOVER | KEY_USAGE.DERIVE,
    keyReference: o.keyRef,
    bits,
  });
  if (!authenticated) await o.authenticate?.();
  if (occupied && o.confirmReplace && (await o.confirmReplace(occupied)) === false)
    throw new ScHsmError(
      'KEY_REF_OCCUPIED',
      `replacing key ${o.keyRef} was not confirmed: nothing was changed`,
    );
  // with force also a reference holding only leftover files of a key (removed: nothing to lose)
  const opts: UnwrapOptions = { force: o.force === true };
  if (o.allowKeyLoss) opts.allowKeyLoss = true;
  if (o.onReplaced) opts.onReplaced = o.onReplaced;
  if (o.authenticate) opts.authenticate = o.authenticate;
  if (o.domain !== undefined) opts.domain = o.domain;
  await hsm.restoreKey(encodeWrapFile({ blob, prkd }), o.keyRef, opts);
  return {
    keyRef: o.keyRef,
    id,
    label: o.label,
    type: kind,
    bits,
    publicKey: spki,
    publicKeySha256: sha256Hex(spki),
    replaced: Boolean(occupied),
  };
}

/** The combined DKEK, a copy owned (and wiped) by the caller of this function. */
async function resolveDkek(o: ImportKeyOptions): Promise<Uint8Array> {
  if (o.dkek) {
    if (typeof o.dkek === 'function') return o.dkek();
    return o.dkek.slice();
  }
  const given = o.dkekShares!;
  const shares = typeof given === 'function' ? await given() : given;
  try {
    return combineShares(shares);
  } finally {
    if (typeof given === 'function') for (const s of shares) wipe(s);
  }
}

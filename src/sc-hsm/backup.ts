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
import { join } from 'node:path';
import {
  combineShares,
  decodeWrapFile,
  encodeWrapFile,
  encryptKeyBlob,
  inspectKeyBlob,
  keyCheckValue,
} from '../dkek/index.js';
import { ScHsmError } from '../errors.js';
import { encodeKeyDescription, KEY_USAGE, OBJECT_FLAGS } from '../pkcs15/index.js';
import { bytesEqual, fromHex, toHex, wipe } from '../util/bytes.js';
import { curveByName } from '../util/curves.js';
import { makeHostDirectory, readHostFile, refuseHostOverwrite, writeAtomic } from '../util/host-files.js';
import { intrinsicKeyId, type KeyInfo, type SmartCardHsm } from './session.js';
import { checkKeyRef, checkLabel } from './validate.js';
import { type WrapFileInfo, wrapFileInfo } from './wrap-info.js';

/** The manifest's file name in a backup directory. */
export const MANIFEST = 'manifest.json';
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
}

/** `manifest.json` of a backup directory. */
export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: 1;
  /** ISO 8601 time of the backup. */
  created: string;
  /** The device backed up; `kcv` is its DKEK key check value, lowercase hex. */
  device: { serial?: string; label?: string; kcv: string };
  keys: ManifestKey[];
}

/** Progress of a backup or restore: `done` of `total` keys. */
export type BackupProgress = (done: number, total: number) => void;

export interface BackupOptions {
  /** Write into a directory that already holds a backup (its manifest is replaced last). */
  force?: boolean;
  onProgress?: BackupProgress;
  /**
   * Called once, after the device checks and before the first key is wrapped: verify the user
   * PIN here (WRAP KEY needs it).
   */
  authenticate?: () => Promise<void>;
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
  manifest: Manifest;
  keys: BackupKeyResult[];
  verified: true;
}

/** What a restore does at a key reference. */
export type RestoreAction =
  /** the reference is free: the key is restored */
  | 'restore'
  /** the reference holds the backup's key (same public key): left as it is */
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
  /**
   * Called with `force` when keys are to be replaced, after every check and before anything is
   * written. Return false (or throw) to stop: nothing is written.
   */
  confirmReplace?: (conflicts: RestoreConflict[]) => boolean | undefined | Promise<boolean | undefined>;
  /** Called once when there is something to write, before `confirmReplace`: verify the user PIN here. */
  authenticate?: () => Promise<void>;
}

export interface RestoreResult {
  dir: string;
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
  if (!st.dkek) throw new ScHsmError('NO_DKEK', 'the device has no DKEK: its keys cannot be backed up');
  if (st.dkek.outstanding > 0)
    throw new ScHsmError('DKEK_INCOMPLETE', `the DKEK still misses ${st.dkek.outstanding} share(s)`);
  const kcv = st.dkek.kcv;
  const keys = await hsm.listKeys();
  await o.authenticate?.();
  await makeHostDirectory(dir);
  const entries: ManifestKey[] = [];
  for (const [i, k] of keys.entries()) {
    const bin = await hsm.backupKey(k.keyRef);
    const file = `key-${String(k.keyRef).padStart(3, '0')}.bin`;
    // a damaged answer never reaches the directory: check before writing, and again after
    checkWrapFile(bin, kcv, file);
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
    entries.push(e);
    o.onProgress?.(i + 1, keys.length);
  }
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    version: 1,
    created: new Date().toISOString(),
    device: { kcv: toHex(kcv) },
    keys: entries,
  };
  if (st.serial) manifest.device.serial = st.serial;
  if (st.label !== undefined) manifest.device.label = st.label;
  // verify what is on disk before anything is reported as backed up
  for (const e of entries) {
    const bin = await readHostFile(join(dir, e.file), 'backup file');
    if (sha256Hex(bin) !== e.sha256)
      throw new ScHsmError('BACKUP_INVALID', `${e.file} reads back with another hash`);
    checkWrapFile(bin, kcv, e.file);
  }
  await writeAtomic(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`, 0o644);
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
    manifest,
    keys: entries.map((e) => ({
      keyRef: e.keyRef,
      file: e.file,
      path: join(dir, e.file),
      sha256: e.sha256,
      verified: true,
    })),
    verified: true,
  };
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

/** Reads and checks `dir/manifest.json` (HOST_FILE_NOT_FOUND, BACKUP_INVALID). */
export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST);
  const text = Buffer.from(await readHostFile(path, 'backup manifest')).toString('utf8');
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch {
    throw new ScHsmError('BACKUP_INVALID', `${path} is not JSON`);
  }
  if (
    m?.format !== MANIFEST_FORMAT ||
    m.version !== 1 ||
    !Array.isArray(m.keys) ||
    typeof m.device?.kcv !== 'string'
  ) {
    throw new ScHsmError(
      'BACKUP_INVALID',
      `${path} is not an sc-hsm-ts backup manifest (format ${MANIFEST_FORMAT}, version 1)`,
    );
  }
  for (const k of m.keys) {
    if (
      !Number.isInteger(k?.keyRef) ||
      k.keyRef < 1 ||
      k.keyRef > 255 ||
      typeof k.file !== 'string' ||
      typeof k.sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(k.sha256)
    ) {
      throw new ScHsmError('BACKUP_INVALID', `${path}: a key entry is malformed`);
    }
    if (k.file.includes('/') || k.file.includes('\\') || k.file.startsWith('.')) {
      throw new ScHsmError(
        'BACKUP_INVALID',
        `${path}: key file names must be plain names in the backup directory`,
      );
    }
  }
  return m;
}

/**
 * Reads a backup directory and checks it on the host, without a device: the manifest, every
 * file's SHA-256 against it, and that every blob was made under the manifest's DKEK
 * (HOST_FILE_NOT_FOUND, BACKUP_INVALID, INVALID_WRAP_FILE).
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
    if (toHex(info.header.kcv) !== manifest.device.kcv.toLowerCase()) {
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
 * left as it is, so running it again after an interruption completes what is missing.
 */
export async function restoreDevice(
  hsm: SmartCardHsm,
  backup: string | CheckedBackup,
  o: RestoreOptions = {},
): Promise<RestoreResult> {
  const b = typeof backup === 'string' ? await checkBackup(backup) : backup;
  const m = b.manifest;
  const dkek = await hsm.dkekStatus();
  if (!dkek)
    throw new ScHsmError(
      'NO_DKEK',
      'this device has no DKEK: initialize it with --dkek-shares and import the shares first. Nothing was changed.',
    );
  if (dkek.outstanding > 0)
    throw new ScHsmError(
      'DKEK_INCOMPLETE',
      `this device still misses ${dkek.outstanding} DKEK share(s): nothing was changed`,
    );
  const backupKcv = fromHex(m.device.kcv);
  if (!bytesEqual(dkek.kcv, backupKcv)) {
    throw new ScHsmError(
      'KCV_MISMATCH',
      `the backup was made under DKEK ${kcvText(backupKcv)}, this device has ${kcvText(dkek.kcv)}: import the same DKEK share files. Nothing was changed.`,
    );
  }
  const present = new Map((await hsm.listKeys()).map((k) => [k.keyRef, k]));
  // one step per key reference (a manifest naming a reference twice: the last entry wins)
  const byRef = new Map<number, CheckedBackup['files'][number]>();
  for (const f of b.files) byRef.set(f.entry.keyRef, f);
  const steps: RestoreStep[] = [];
  const conflicts: RestoreConflict[] = [];
  for (const [keyRef, f] of byRef) {
    const k = present.get(keyRef);
    let action: RestoreAction = 'restore';
    const step: RestoreStep = { keyRef, action, entry: f.entry, written: false };
    if (k) {
      if (k.publicKey && f.info.publicKey)
        action = bytesEqual(k.publicKey, f.info.publicKey) ? 'present' : 'replace';
      else if (!k.publicKey && (!k.description || bytesEqual(k.id, fromHex(f.entry.id)))) action = 'complete';
      else action = 'replace';
      step.present = k.label === undefined ? { id: k.id } : { label: k.label, id: k.id };
      if (action === 'replace')
        conflicts.push({
          keyRef,
          present: step.present,
          backup: f.entry.label === undefined ? { id: f.entry.id } : { label: f.entry.label, id: f.entry.id },
          text: `key ref ${keyRef} holds "${k.label ?? ''}" (ID ${toHex(k.id)}), the backup has "${f.entry.label ?? ''}"`,
        });
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
  const todo = steps.filter((s) => s.action !== 'present');
  if (todo.length) {
    await o.authenticate?.();
    if (conflicts.length && o.confirmReplace && (await o.confirmReplace(conflicts)) === false)
      throw new ScHsmError('KEY_REF_OCCUPIED', 'replacing keys was not confirmed: nothing was changed');
  }
  let n = 0;
  for (const step of todo) {
    const f = byRef.get(step.keyRef)!;
    await hsm.restoreKey(f.bin, step.keyRef, { force: step.action !== 'restore' });
    step.written = true;
    n++;
    o.onProgress?.(n, todo.length);
  }
  return { dir: b.dir, kcv: dkek.kcv, manifest: m, keys: steps, written: n };
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
   * The device's DKEK as its 32-byte shares (combined here), or a function returning them, called
   * only after the device checks (a share file's key derivation is slow). Shares from a function
   * are wiped after use; shares given directly are left to the caller.
   */
  dkekShares?: Uint8Array[] | (() => Promise<Uint8Array[]>);
  /** The combined DKEK, or a function returning it (wiped after use), instead of `dkekShares`. */
  dkek?: Uint8Array | (() => Promise<Uint8Array>);
  /** Replace a key at `keyRef` (otherwise KEY_REF_OCCUPIED). */
  force?: boolean;
  /** Called once before the first write: verify the user PIN here. */
  authenticate?: () => Promise<void>;
  /** Called with `force` when `keyRef` holds a key, before anything is written; false stops. */
  confirmReplace?: (present: KeyInfo) => boolean | undefined | Promise<boolean | undefined>;
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
  const spki = new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }));
  const bits =
    kind === 'rsa'
      ? key.asymmetricKeyDetails!.modulusLength!
      : curveByName(key.asymmetricKeyDetails!.namedCurve!).bits;
  const st = await hsm.dkekStatus();
  if (!st)
    throw new ScHsmError('NO_DKEK', 'the device has no DKEK: keys cannot be imported. Nothing was changed.');
  if (st.outstanding > 0)
    throw new ScHsmError(
      'DKEK_INCOMPLETE',
      `the DKEK still misses ${st.outstanding} share(s). Nothing was changed.`,
    );
  const occupied = (await hsm.listKeys()).find((k) => k.keyRef === o.keyRef);
  if (occupied && !o.force)
    throw new ScHsmError(
      'KEY_REF_OCCUPIED',
      `key reference ${o.keyRef} is in use ("${occupied.label ?? ''}"). Nothing was changed.`,
    );
  const dkek = await resolveDkek(o);
  const pkcs8 = new Uint8Array(key.export({ format: 'der', type: 'pkcs8' }));
  let blob: Uint8Array;
  try {
    const given = keyCheckValue(dkek);
    if (!bytesEqual(given, st.kcv)) {
      throw new ScHsmError(
        'KCV_MISMATCH',
        `the given DKEK has key check value ${kcvText(given)}, the device has ${kcvText(st.kcv)}. Nothing was changed.`,
      );
    }
    blob = encryptKeyBlob({ pkcs8 }, dkek);
  } finally {
    wipe(dkek);
    wipe(pkcs8);
  }
  const id = o.id ?? intrinsicKeyId(spki);
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
  await o.authenticate?.();
  if (occupied && o.confirmReplace && (await o.confirmReplace(occupied)) === false)
    throw new ScHsmError(
      'KEY_REF_OCCUPIED',
      `replacing key ${o.keyRef} was not confirmed: nothing was changed`,
    );
  await hsm.restoreKey(encodeWrapFile({ blob, prkd }), o.keyRef, { force: Boolean(occupied) });
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

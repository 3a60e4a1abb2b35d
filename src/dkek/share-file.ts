/**
 * DKEK share files (`.pbe`) as written and read by `sc-hsm-tool --create-dkek-share` /
 * `--import-dkek-share` (spec §7.1): OpenSSL `enc` format, `Salted__` ‖ salt(8) ‖
 * AES-256-CBC(key, iv, share(32) ‖ 16 × 10), key ‖ iv from EVP_BytesToKey(MD5, 10,000,000).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ScHsmError } from '../errors.js';
import { ascii, bytesEqual, concat, wipe } from '../util/bytes.js';
import { type KeyCheckValue, keyCheckValue } from './dkek.js';
import { deriveShareKeyIv, SHARE_KDF_ITERATIONS } from './kdf.js';

const MAGIC = ascii('Salted__');
const SHARE_FILE_LENGTH = 64;
const SHARE_LENGTH = 32;

/** Options of the share-file functions. */
export interface ShareFileOptions {
  /** Called with the fraction of the key derivation done (0..1], about 100 times. */
  onProgress?: (fraction: number) => void;
  /** Cancels the key derivation (checked about 100 times): ScHsmError ABORTED. */
  signal?: AbortSignal;
}

function passwordBytes(password: string | Uint8Array): Uint8Array {
  if (typeof password === 'string') return ascii(password);
  if (password instanceof Uint8Array) return password.slice();
  throw new ScHsmError('INVALID_ARGUMENT', 'the share-file password must be a string or a Uint8Array');
}

/**
 * Decrypts a DKEK share file (spec §7.1) and returns the 32-byte share.
 * @throws ScHsmError INVALID_SHARE_FILE when the file is not 64 bytes starting with `Salted__`;
 *   WRONG_PASSWORD when the decrypted padding is not the 16 × `10` block sc-hsm-tool writes.
 */
export function decryptDkekShare(
  file: Uint8Array,
  password: string | Uint8Array,
  o: ShareFileOptions = {},
): Promise<Uint8Array> {
  return decryptDkekShareWithIterations(file, password, SHARE_KDF_ITERATIONS, o);
}

/**
 * Encrypts a 32-byte DKEK share into a 64-byte share file sc-hsm-tool imports (spec §7.1).
 * `salt` (8 bytes) defaults to fresh random bytes (sc-hsm-tool takes it from GET CHALLENGE).
 * @throws ScHsmError INVALID_ARGUMENT when the share is not 32 bytes or the salt not 8.
 */
export function encryptDkekShare(
  share: Uint8Array,
  password: string | Uint8Array,
  o: ShareFileOptions & { salt?: Uint8Array } = {},
): Promise<Uint8Array> {
  return encryptDkekShareWithIterations(share, password, SHARE_KDF_ITERATIONS, o);
}

/** `decryptDkekShare` with another MD5 count: for tests of the structure only (internal). */
export async function decryptDkekShareWithIterations(
  file: Uint8Array,
  password: string | Uint8Array,
  iterations: number,
  o: ShareFileOptions = {},
): Promise<Uint8Array> {
  if (!(file instanceof Uint8Array) || file.length !== SHARE_FILE_LENGTH) {
    const got = file instanceof Uint8Array ? `${file.length} bytes` : 'no bytes';
    throw new ScHsmError(
      'INVALID_SHARE_FILE',
      `not a DKEK share file: expected 64 bytes (OpenSSL "Salted__" format from sc-hsm-tool --create-dkek-share), got ${got}`,
    );
  }
  if (!bytesEqual(file.subarray(0, 8), MAGIC)) {
    throw new ScHsmError(
      'INVALID_SHARE_FILE',
      'not a DKEK share file: it does not start with "Salted__" (was it written by sc-hsm-tool --create-dkek-share?)',
    );
  }
  const pw = passwordBytes(password);
  const { key, iv } = await deriveShareKeyIv(pw, file.subarray(8, 16), iterations, o.onProgress, o.signal);
  wipe(pw);
  const decipher = createDecipheriv('aes-256-cbc', key, iv).setAutoPadding(false);
  const plain = new Uint8Array(concat(decipher.update(file.subarray(16)), decipher.final()));
  wipe(key);
  wipe(iv);
  // sc-hsm-tool encrypts exactly 32 bytes, so PKCS#7 adds a full block of 16 × 10; checking the
  // whole block (as DKEK.js does) leaves a wrong password a 2⁻¹²⁸ chance instead of OpenSSL's ≈ 2⁻⁸.
  const pad = plain.subarray(SHARE_LENGTH);
  if (!pad.every((b) => b === 0x10)) {
    wipe(plain);
    throw new ScHsmError(
      'WRONG_PASSWORD',
      'the password does not decrypt this DKEK share file (padding check failed): check the password and that this is the right file',
    );
  }
  const share = plain.slice(0, SHARE_LENGTH);
  wipe(plain);
  return share;
}

/** `encryptDkekShare` with another MD5 count: for tests of the structure only (internal). */
export async function encryptDkekShareWithIterations(
  share: Uint8Array,
  password: string | Uint8Array,
  iterations: number,
  o: ShareFileOptions & { salt?: Uint8Array } = {},
): Promise<Uint8Array> {
  if (!(share instanceof Uint8Array) || share.length !== SHARE_LENGTH) {
    throw new ScHsmError('INVALID_ARGUMENT', 'a DKEK share must be 32 bytes');
  }
  const salt = o.salt ?? new Uint8Array(randomBytes(8));
  if (!(salt instanceof Uint8Array) || salt.length !== 8) {
    throw new ScHsmError('INVALID_ARGUMENT', 'the share-file salt must be 8 bytes');
  }
  const pw = passwordBytes(password);
  const { key, iv } = await deriveShareKeyIv(pw, salt, iterations, o.onProgress, o.signal);
  wipe(pw);
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  const body = concat(cipher.update(share), cipher.final());
  wipe(key);
  wipe(iv);
  return concat(MAGIC, salt, body);
}

/** A new DKEK share file: its bytes and the key check value of the share inside. */
export interface DkekShareFile {
  /** The 64-byte `.pbe` file (OpenSSL `Salted__` format) sc-hsm-tool and `dkek import` read. */
  file: Uint8Array;
  /**
   * Key check value of the share (spec §7.4: first 8 bytes of SHA-256): the device's DKEK KCV
   * when this is its only share, and what `importDkekShare` reports for it.
   */
  kcv: KeyCheckValue;
}

/**
 * Creates a DKEK share file as `sc-hsm-tool --create-dkek-share` and `sc-hsm-ts dkek create` do
 * (spec §7.1): 32 fresh random bytes as the share, encrypted under `password` with the
 * 10,000,000-round KDF (seconds: follow it with `onProgress`, cancel it with `signal`). The share
 * itself is wiped; the file and the KCV are returned, and nothing is written anywhere.
 * @throws ScHsmError INVALID_ARGUMENT for a password that is neither a string nor bytes, or
 *   shorter than 6 (sc-hsm-tool's minimum); ABORTED when `signal` fired.
 */
export function createDkekShareFile(
  password: string | Uint8Array,
  o: ShareFileOptions = {},
): Promise<DkekShareFile> {
  return createDkekShareFileWithIterations(password, SHARE_KDF_ITERATIONS, o);
}

/** `createDkekShareFile` with another MD5 count: for tests of the structure only (internal). */
export async function createDkekShareFileWithIterations(
  password: string | Uint8Array,
  iterations: number,
  o: ShareFileOptions = {},
): Promise<DkekShareFile> {
  const pw = passwordBytes(password);
  const length = pw.length;
  wipe(pw);
  if (length < 6)
    throw new ScHsmError('INVALID_ARGUMENT', 'the share-file password must have at least 6 characters');
  const share = new Uint8Array(randomBytes(SHARE_LENGTH));
  try {
    const file = await encryptDkekShareWithIterations(share, password, iterations, o);
    return { file, kcv: keyCheckValue(share) };
  } finally {
    wipe(share);
  }
}

/**
 * A random 8-byte share-file password as sc-hsm-tool makes it for a password split into
 * custodian shares (`--pwd-shares-threshold`, spec §7.2): top bit of the first byte clear, and that
 * byte non-zero so that sc-hsm-tool can rebuild the password from the shares.
 */
export function randomSharePassword(): Uint8Array {
  for (;;) {
    const pw = new Uint8Array(randomBytes(8));
    pw[0]! &= 0x7f;
    if (pw[0] !== 0) return pw;
  }
}

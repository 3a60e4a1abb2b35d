/**
 * n-of-m password shares for a DKEK share file, compatible with `sc-hsm-tool
 * --create-dkek-share --pwd-shares-threshold t --pwd-shares-total n` and `--import-dkek-share
 * --pwd-shares-total k` (spec §7.2): Shamir secret sharing over GF(p), p a 64-bit safe prime
 * greater than the password read as a big-endian integer; shares at x = 1..n; Lagrange
 * interpolation at 0. A custodian change is combine-then-split (`resplitPassword`): the share file
 * is never touched because the password stays the same.
 *
 * sc-hsm-tool quirks (spec §7.2):
 * - it prints the share ID in decimal but parses what is typed as hex: IDs 10 and above must be
 *   typed in hex (`a`, `b`, …) into sc-hsm-tool; `shareIdForScHsmTool` gives that form.
 * - it turns the reconstructed number into the password with its minimal big-endian bytes, so a
 *   password starting with `00` bytes cannot be reconstructed by sc-hsm-tool. Our shares carry the
 *   password length (`length`) so our own round trip keeps leading zeros; a share set typed in from
 *   sc-hsm-tool's display has no length and then behaves exactly like sc-hsm-tool.
 */
import { generatePrimeSync, randomBytes } from 'node:crypto';
import { ScHsmError } from '../errors.js';
import { mod, modInverse } from '../util/bigint.js';
import { bigintFromBytes, bigintToBytes, bytesEqual, fromHex } from '../util/bytes.js';

/** One custodian's share (spec §7.2). */
export interface PasswordShare {
  /** The public prime, big-endian (the same in every share of a set). */
  prime: Uint8Array;
  /** The x coordinate, 1..n (sc-hsm-tool's "Share ID"). */
  id: number;
  /** The y coordinate, big-endian, minimal bytes (sc-hsm-tool's "Share value"). */
  value: Uint8Array;
  /**
   * Password length in bytes (our extension; sc-hsm-tool shows no such field). When present,
   * reconstruction left-pads to it so a password starting with `00` survives.
   */
  length?: number;
}

/** Longest password we split (a safe prime of 8·len + 1 bits must be generated). */
const MAX_PASSWORD_LENGTH = 32;

function invalid(msg: string): never {
  throw new ScHsmError('INVALID_ARGUMENT', msg);
}

function inverse(a: bigint, m: bigint): bigint {
  const r = modInverse(a, m);
  if (r === undefined)
    invalid('password shares do not interpolate: a share ID difference has no inverse modulo the prime');
  return r;
}

function randomBelow(p: bigint): bigint {
  const len = bigintToBytes(p).length + 8;
  return mod(bigintFromBytes(new Uint8Array(randomBytes(len))), p);
}

function safePrime(bits: number): bigint {
  return generatePrimeSync(bits, { bigint: true, safe: true });
}

/**
 * Splits a password into `total` shares of which any `threshold` recover it (spec §7.2).
 * The prime is a 64-bit safe prime greater than the password, as sc-hsm-tool generates (for
 * passwords longer than 8 bytes, a safe prime of 8·length + 1 bits).
 * @throws ScHsmError INVALID_ARGUMENT unless 2 ≤ threshold ≤ total, total ≥ 3 (sc-hsm-tool's rule),
 *   total ≤ 255 and the password is 1..32 bytes.
 */
export function splitPassword(password: Uint8Array, threshold: number, total: number): PasswordShare[] {
  if (!(password instanceof Uint8Array) || password.length === 0 || password.length > MAX_PASSWORD_LENGTH) {
    invalid(`the password to split must be 1 to ${MAX_PASSWORD_LENGTH} bytes`);
  }
  if (!Number.isInteger(total) || total < 3 || total > 255) {
    invalid('the total number of password shares must be 3 to 255 (sc-hsm-tool requires at least 3)');
  }
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > total) {
    invalid(`the password-share threshold must be 2 to the total (${total})`);
  }
  const secret = bigintFromBytes(password);
  let p = 0n;
  if (password.length <= 8) {
    // sc-hsm-tool regenerates a 64-bit safe prime until it exceeds the secret (≤ 1000 rounds).
    for (let i = 0; i < 1000 && p <= secret; i++) p = safePrime(64);
    if (p <= secret) p = safePrime(65);
  } else {
    p = safePrime(8 * password.length + 1);
  }
  const coeffs = [secret];
  for (let i = 1; i < threshold; i++) coeffs.push(randomBelow(p));
  const prime = bigintToBytes(p);
  const shares: PasswordShare[] = [];
  for (let x = 1; x <= total; x++) {
    let y = 0n;
    for (let i = coeffs.length - 1; i >= 0; i--) y = mod(y * BigInt(x) + coeffs[i]!, p);
    shares.push({ prime: prime.slice(), id: x, value: bigintToBytes(y), length: password.length });
  }
  coeffs.fill(0n);
  return shares;
}

/**
 * Recovers the password from `threshold` (or more) shares by Lagrange interpolation at 0 (spec §7.2).
 * The result has the shares' `length` when they carry one (or `o.length`), else the minimal
 * big-endian bytes, as sc-hsm-tool produces.
 * @throws ScHsmError INVALID_ARGUMENT for fewer than 2 shares, different primes, duplicate or
 *   out-of-range IDs, values not below the prime, or a result that does not fit the length.
 */
export function combinePasswordShares(shares: PasswordShare[], o: { length?: number } = {}): Uint8Array {
  if (!Array.isArray(shares) || shares.length < 2) invalid('at least 2 password shares are needed');
  const first = shares[0];
  if (!first || !(first.prime instanceof Uint8Array) || first.prime.length === 0 || first.prime.length > 64) {
    invalid('the prime of a password share must be 1 to 64 bytes');
  }
  const p = bigintFromBytes(first.prime);
  if (p < 3n) invalid('the prime of the password shares is too small');
  const seen = new Set<number>();
  let length = o.length;
  const points: [bigint, bigint][] = [];
  for (const [i, s] of shares.entries()) {
    if (!s || typeof s !== 'object') invalid(`password share ${i + 1} is not a share`);
    if (!(s.prime instanceof Uint8Array) || !bytesEqual(s.prime, first.prime)) {
      invalid(`password share ${i + 1} has a different prime: all shares of a set share one prime`);
    }
    if (!Number.isInteger(s.id) || s.id < 1 || BigInt(s.id) >= p) {
      invalid(`password share ${i + 1} has an invalid share ID (must be 1 or more)`);
    }
    if (seen.has(s.id)) invalid(`share ID ${s.id} is given twice: each custodian's share counts once`);
    seen.add(s.id);
    if (!(s.value instanceof Uint8Array) || s.value.length > 64) {
      invalid(`password share ${i + 1} has an invalid share value`);
    }
    const y = bigintFromBytes(s.value);
    if (y >= p) invalid(`password share ${i + 1}: the share value is not below the prime (mistyped?)`);
    if (length === undefined && s.length !== undefined) length = s.length;
    points.push([BigInt(s.id), y]);
  }
  let secret = 0n;
  for (const [xi, yi] of points) {
    let num = 1n;
    let den = 1n;
    for (const [xj] of points) {
      if (xj === xi) continue;
      num = mod(num * xj, p);
      den = mod(den * (xj - xi), p);
    }
    secret = mod(secret + yi * num * inverse(den, p), p);
  }
  const bytes = bigintToBytes(secret);
  if (length === undefined) return bytes;
  if (!Number.isInteger(length) || length < 1 || length > 64)
    invalid('the password length must be 1 to 64 bytes');
  if (bytes.length > length && !(bytes.length === 1 && bytes[0] === 0)) {
    invalid(
      'the password shares do not reconstruct a password of the recorded length (wrong or mistyped share?)',
    );
  }
  const out = new Uint8Array(length);
  const v = bytes.length === 1 && bytes[0] === 0 ? new Uint8Array(0) : bytes;
  out.set(v, length - v.length);
  return out;
}

/**
 * Custodian change (spec §7.2): recovers the password from the old shares and splits it again with
 * a new threshold/total and a new prime. The share file stays valid because the password is the same.
 */
export function resplitPassword(shares: PasswordShare[], threshold: number, total: number): PasswordShare[] {
  const pw = combinePasswordShares(shares);
  try {
    return splitPassword(pw, threshold, total);
  } finally {
    pw.fill(0);
  }
}

/** Hex with `:` between bytes, lowercase, as sc-hsm-tool prints "Prime" and "Share value". */
export function formatShareHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * Parses a prime or share value as sc-hsm-tool prints it (hex, with or without `:`/space separators,
 * any case). A leading odd nibble is accepted as a leading `0`.
 * @throws ScHsmError INVALID_ARGUMENT on anything else.
 */
export function parseShareHex(text: string): Uint8Array {
  if (typeof text !== 'string') invalid('a share value must be given as hex text');
  const clean = text.trim().replace(/[\s:]/g, '');
  if (clean.length === 0 || clean.length > 128 || /[^0-9a-fA-F]/.test(clean)) {
    invalid('not a share value: expected hex digits, optionally separated by ":" (e.g. "00:e1:4f:…")');
  }
  return fromHex(clean.length % 2 ? `0${clean}` : clean);
}

/**
 * What to type as "share ID" into sc-hsm-tool for a share: it prints IDs in decimal but parses them
 * as hex, so ID 10 must be typed as `a` (spec §7.2).
 */
export function shareIdForScHsmTool(id: number): string {
  if (!Number.isInteger(id) || id < 1) invalid('a share ID is a positive integer');
  return id.toString(16);
}

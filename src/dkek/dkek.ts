/**
 * The DKEK itself: forming it from shares (spec §7.3), its key check value (§7.4), the wrapping keys
 * derived from it (§7.5), and AES-CMAC (RFC 4493 / NIST SP 800-38B) used for the blob MAC (§8.1).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { ScHsmError } from '../errors.js';
import { bytesEqual, concat } from '../util/bytes.js';

const DKEK_LENGTH = 32;

function requireDkek(dkek: Uint8Array, what = 'a DKEK'): void {
  if (!(dkek instanceof Uint8Array) || dkek.length !== DKEK_LENGTH) {
    throw new ScHsmError('INVALID_ARGUMENT', `${what} must be 32 bytes`);
  }
}

/**
 * Combines DKEK shares into the DKEK (spec §7.3): 32 zero bytes XORed with every share, in any
 * order, as the card does on IMPORT DKEK SHARE. Unlike the card it refuses a DKEK anyone can
 * compute (unless `allowDegenerate`, for reading blobs already made under one).
 * @throws ScHsmError INVALID_ARGUMENT when no share is given or one is not 32 bytes;
 *   DKEK_SHARE_REPEATED for a share given twice; DKEK_DEGENERATE for a share of zero bytes, or a
 *   DKEK of zero bytes or equal to one of its shares.
 */
export function combineShares(shares: Uint8Array[], opts: { allowDegenerate?: boolean } = {}): Uint8Array {
  if (!Array.isArray(shares) || shares.length === 0) {
    throw new ScHsmError('INVALID_ARGUMENT', 'at least one DKEK share is needed to form the DKEK');
  }
  const dkek = new Uint8Array(DKEK_LENGTH);
  shares.forEach((s, i) => {
    requireDkek(s, `DKEK share ${i + 1}`);
    for (let j = 0; j < DKEK_LENGTH; j++) dkek[j]! ^= s[j]!;
  });
  if (!opts.allowDegenerate) {
    try {
      refuseDegenerateShares(shares, dkek);
    } catch (e) {
      dkek.fill(0);
      throw e;
    }
  }
  return dkek;
}

/**
 * The checks {@link combineShares} makes: no share of 32 zero bytes, no share twice (two equal
 * shares cancel out), and a result that is neither all zero nor equal to one of the shares (the
 * others cancelled out) — each such DKEK is known to fewer people than its shares suggest.
 */
function refuseDegenerateShares(shares: Uint8Array[], dkek: Uint8Array): void {
  const zero = (b: Uint8Array) => b.every((x) => x === 0);
  shares.forEach((s, i) => {
    if (zero(s))
      throw new ScHsmError(
        'DKEK_DEGENERATE',
        `DKEK share ${i + 1} is 32 zero bytes: it adds nothing to the DKEK`,
      );
    const j = shares.findIndex((t, k) => k < i && bytesEqual(t, s));
    if (j >= 0)
      throw new ScHsmError(
        'DKEK_SHARE_REPEATED',
        `DKEK shares ${j + 1} and ${i + 1} are the same share: combined they cancel out`,
      );
  });
  if (zero(dkek))
    throw new ScHsmError('DKEK_DEGENERATE', 'the DKEK shares cancel out: the combined DKEK is 32 zero bytes');
  const k = shares.length > 1 ? shares.findIndex((s) => bytesEqual(s, dkek)) : -1;
  if (k >= 0)
    throw new ScHsmError(
      'DKEK_DEGENERATE',
      `the other DKEK shares cancel out: the combined DKEK equals share ${k + 1} alone`,
    );
}

/**
 * A key check value (spec §7.4): the first 8 bytes of SHA-256 of a DKEK or of one DKEK share.
 * The one type of every KCV in the library's API (DkekStatus.kcv, importDkekShare's result,
 * createDkekShareFile's, key blob headers, restore results, importedShareKcvs): 8 bytes, never
 * hex. Hex appears only where a KCV is written for people or files: the command's output
 * (upper-case hex) and the backup manifest's JSON (`device.kcv`).
 */
export type KeyCheckValue = Uint8Array;

/**
 * Key check value of a DKEK (spec §7.4): the first 8 bytes of SHA-256(DKEK). What `sc-hsm-tool`
 * prints as "DKEK key check value" and what every key blob starts with.
 */
export function keyCheckValue(dkek: Uint8Array): KeyCheckValue {
  requireDkek(dkek);
  return new Uint8Array(createHash('sha256').update(dkek).digest().subarray(0, 8));
}

/**
 * Key check value of the DKEK of 32 zero bytes (`66687AADF862BD77`): what a device shows when its
 * shares cancelled out (the same share imported twice). Anything wrapped under it can be
 * unwrapped by anyone.
 */
export const ZERO_DKEK_KCV: KeyCheckValue = keyCheckValue(new Uint8Array(DKEK_LENGTH));

/** True when `kcv` is {@link ZERO_DKEK_KCV}. */
export function isZeroDkekKcv(kcv: KeyCheckValue): boolean {
  return bytesEqual(kcv, ZERO_DKEK_KCV);
}

/**
 * The two AES-256 keys a DKEK wraps keys with (spec §7.5): K_enc = SHA-256(DKEK ‖ 00000001) for
 * AES-CBC, K_mac = SHA-256(DKEK ‖ 00000002) for AES-CMAC.
 */
export function deriveWrapKeys(dkek: Uint8Array): { kenc: Uint8Array; kmac: Uint8Array } {
  requireDkek(dkek);
  const h = (n: number) =>
    new Uint8Array(
      createHash('sha256')
        .update(dkek)
        .update(Uint8Array.of(0, 0, 0, n))
        .digest(),
    );
  return { kenc: h(1), kmac: h(2) };
}

/** Doubling in GF(2¹²⁸) for the CMAC subkeys (RFC 4493 §2.3). */
function dbl(block: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  let carry = 0;
  for (let i = 15; i >= 0; i--) {
    const b = block[i]!;
    out[i] = ((b << 1) | carry) & 0xff;
    carry = b >> 7;
  }
  if (carry) out[15]! ^= 0x87;
  return out;
}

/**
 * AES-CMAC (RFC 4493; NIST SP 800-38B) with a 16-, 24- or 32-byte AES key; returns the 16-byte tag.
 * Computed as one AES-CBC pass with a zero IV over the message whose last block is XORed with the
 * subkey, taking the last cipher block.
 * @throws ScHsmError INVALID_ARGUMENT when the key is not an AES key length.
 */
export function aesCmac(key: Uint8Array, data: Uint8Array): Uint8Array {
  if (!(key instanceof Uint8Array) || ![16, 24, 32].includes(key.length)) {
    throw new ScHsmError('INVALID_ARGUMENT', 'an AES-CMAC key must be 16, 24 or 32 bytes');
  }
  if (!(data instanceof Uint8Array)) throw new ScHsmError('INVALID_ARGUMENT', 'AES-CMAC data must be bytes');
  const alg = `aes-${key.length * 8}-cbc`;
  const zero = new Uint8Array(16);
  const ecb = createCipheriv(alg, key, zero).setAutoPadding(false);
  const l = new Uint8Array(ecb.update(zero));
  const k1 = dbl(l);
  const complete = data.length > 0 && data.length % 16 === 0;
  const blocks = complete ? data.length / 16 : Math.floor(data.length / 16) + 1;
  const m = new Uint8Array(blocks * 16);
  m.set(data);
  if (!complete) m[data.length] = 0x80;
  const sub = complete ? k1 : dbl(k1);
  const last = (blocks - 1) * 16;
  for (let i = 0; i < 16; i++) m[last + i]! ^= sub[i]!;
  const cbc = createCipheriv(alg, key, zero).setAutoPadding(false);
  const enc = concat(cbc.update(m), cbc.final());
  return enc.slice(enc.length - 16);
}

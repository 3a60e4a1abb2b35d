/**
 * AES keys at work: CIPHER (`80 78 <keyRef> <algorithm>`, spec §3.15) with algorithms 10 (CBC
 * encrypt), 11 (CBC decrypt), 18 (CMAC) and 99 (derivation). The card's CBC always starts from a
 * zero IV and takes whole blocks only; a caller's IV and PKCS#7 padding are applied on the host, as
 * sc-hsm-embedded does: to encrypt, the IV is XORed into the first plaintext block; to decrypt, into
 * the card's first output block. Long inputs go in several APDUs, each continuing the chain from
 * the last ciphertext block of the one before.
 */
import { ScHsmError } from '../errors.js';
import { ALGO, CLA_PROPRIETARY, INS, PREFIX } from '../protocol/constants.js';
import { concat, fresh, wipe } from '../util/bytes.js';
import type { SessionContext } from './context.js';
import { keyOpOverrides } from './crypto.js';
import { algorithmNames } from './key-restrictions.js';
import { keyInfo } from './keys.js';
import { checkBytes, checkInt, checkKeyRef, checkObject, checkOneOf } from './validate.js';

/** AES block size in bytes. */
export const AES_BLOCK = 16;

/**
 * Most data bytes in one CIPHER APDU: 1024 with extended length (under the 1232-byte APDU buffer
 * of JCOP 3, spec §2), 240 with short APDUs (Lc ≤ 255, a whole number of blocks).
 */
export function aesChunkSize(ctx: SessionContext): number {
  return ctx.transport.extendedLength === false ? 240 : 1024;
}

/** Options of {@link aesEncrypt} and {@link aesDecrypt}. */
export interface AesCbcOptions {
  /** The initialisation vector: 16 bytes. */
  iv: Uint8Array;
  /**
   * `pkcs7` (default): padding added on encryption and checked and removed on decryption, on the
   * host. `none`: the data must be a whole number of 16-byte blocks and is taken as it is.
   */
  padding?: 'pkcs7' | 'none';
}

/** The message of every failed padding check: one text whatever was wrong, so it tells nothing. */
const BAD_PADDING =
  'AES-CBC decryption failed: the result has no valid PKCS#7 padding (wrong key, wrong IV, or not a ciphertext of this key)';

function checkCbcOptions(opts: AesCbcOptions): 'pkcs7' | 'none' {
  checkObject(opts, 'the AES-CBC options', { iv: 'bytes', padding: 'string' });
  if (opts.iv === undefined)
    throw new ScHsmError('INVALID_ARGUMENT', 'the AES-CBC options need an IV (opts.iv, 16 bytes)');
  checkBytes(opts.iv, 'the IV (opts.iv)', AES_BLOCK, AES_BLOCK);
  const padding = opts.padding ?? 'pkcs7';
  checkOneOf(padding, ['pkcs7', 'none'], 'the padding (opts.padding)');
  return padding;
}

/**
 * Refuses before anything is sent, from the key's public files and FCP (spec §3.11–3.12):
 * INVALID_ARGUMENT when `keyRef` holds an RSA or EC key; ALGORITHM_NOT_ALLOWED when its algorithm
 * list lacks `algo`; USE_COUNTER_EXHAUSTED when it has fewer uses left than the `apdus` CIPHER
 * commands the job needs (the card counts one use per APDU, not per call). A key whose type the host
 * cannot tell (no description, no public key: what an interrupted AES key generation leaves) is
 * left to the card; a missing key is KEY_NOT_FOUND.
 */
async function checkAesKey(ctx: SessionContext, keyRef: number, algo: number, apdus = 1): Promise<void> {
  let key: Awaited<ReturnType<typeof keyInfo>>;
  try {
    // from the cache, the use counter read afresh
    key = await keyInfo(ctx, keyRef);
  } catch (e) {
    if (!(e instanceof ScHsmError && e.code === 'KEY_NOT_FOUND')) throw e;
    // no key at all: refused here; a key without description or public key: left to the card
    if (!(await ctx.files.enumerate()).includes((PREFIX.KEY << 8) | keyRef)) throw e;
    return;
  }
  if (key.type !== 'aes' && key.type !== 'unknown') {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `key ${keyRef} is ${key.type.toUpperCase()}, not AES; AES operations need a key made with generateAesKey (sc-hsm-ts keygen --type aes:256)`,
    );
  }
  if (key.algorithms && !key.algorithms.includes(algo)) {
    throw new ScHsmError(
      'ALGORITHM_NOT_ALLOWED',
      `key ${keyRef} does not allow ${algorithmNames(Uint8Array.of(algo))[0]}: its algorithm list, fixed at generation, is ${algorithmNames(key.algorithms).join(', ')}. Nothing was sent.`,
    );
  }
  if (key.useCounter !== undefined && key.useCounter < apdus) {
    throw new ScHsmError(
      'USE_COUNTER_EXHAUSTED',
      `key ${keyRef} has ${key.useCounter} use${key.useCounter === 1 ? '' : 's'} left; this needs ${apdus} (the device counts one use per CIPHER command of up to ${aesChunkSize(ctx)} bytes). Nothing was sent.`,
      key.useCounter > 0
        ? {
            fix: `the uses left cover at most ${key.useCounter * aesChunkSize(ctx)} bytes as the card receives them (after padding): give a shorter input, or use a key with a larger counter (sc-hsm-ts keygen --type aes:256 --use-counter N)`,
          }
        : {},
    );
  }
}

/** One CIPHER APDU (`80 78 <keyRef> <algo>`, extended where the transport allows, spec §3.15). */
async function cipher(
  ctx: SessionContext,
  keyRef: number,
  algo: number,
  data: Uint8Array,
  ne: number,
  name: string,
): Promise<Uint8Array> {
  const extended = ctx.transport.extendedLength !== false;
  const r = await ctx.channel.exchange(
    { cla: CLA_PROPRIETARY, ins: INS.CIPHER, p1: keyRef, p2: algo, data, ne, extended },
    name,
    {
      overrides: {
        ...keyOpOverrides(keyRef),
        0x6a81: ['ALGORITHM_NOT_ALLOWED', `key ${keyRef} is not an AES key or does not allow this algorithm`],
      } as never,
    },
  );
  return r.data;
}

function xorInto(target: Uint8Array, offset: number, mask: Uint8Array): void {
  for (let i = 0; i < AES_BLOCK; i++) target[offset + i]! ^= mask[i]!;
}

/** PKCS#7: 1 to 16 bytes, each the count. */
export function pkcs7Pad(data: Uint8Array): Uint8Array {
  const n = AES_BLOCK - (data.length % AES_BLOCK);
  const out = new Uint8Array(data.length + n);
  out.set(data);
  out.fill(n, data.length);
  return out;
}

/**
 * The data without its PKCS#7 padding; INCORRECT_DATA with one fixed message when the padding is
 * not valid. The last block is examined completely whatever its content (no early exit), so
 * neither the message nor the time tells which byte was wrong.
 */
export function pkcs7Unpad(data: Uint8Array): Uint8Array {
  if (data.length === 0 || data.length % AES_BLOCK !== 0) throw new ScHsmError('INCORRECT_DATA', BAD_PADDING);
  const n = data[data.length - 1]!;
  let bad = (n === 0 ? 1 : 0) | (n > AES_BLOCK ? 1 : 0);
  for (let i = 1; i <= AES_BLOCK; i++) {
    const inPad = i <= n ? 1 : 0;
    bad |= inPad & (data[data.length - i]! !== n ? 1 : 0);
  }
  if (bad) throw new ScHsmError('INCORRECT_DATA', BAD_PADDING);
  return data.slice(0, data.length - n);
}

/**
 * AES-CBC encryption with the AES key `keyRef` (CIPHER algorithm 10, spec §3.15) and a caller IV.
 * The PKCS#7 padding (unless `padding: 'none'`) and the IV are applied on the host: the IV, then
 * the last ciphertext block of the APDU before, is XORed into the first block of each APDU, so the
 * result is standard AES-CBC. The user PIN must be verified.
 */
export async function aesEncrypt(
  ctx: SessionContext,
  keyRef: number,
  data: Uint8Array,
  opts: AesCbcOptions,
): Promise<Uint8Array<ArrayBuffer>> {
  checkKeyRef(keyRef);
  checkBytes(data, 'the data to encrypt');
  const padding = checkCbcOptions(opts);
  if (padding === 'none' && (data.length === 0 || data.length % AES_BLOCK !== 0)) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `without padding the data must be a whole number of 16-byte blocks (at least one); got ${data.length} bytes`,
    );
  }
  const plain = padding === 'pkcs7' ? pkcs7Pad(data) : data.slice();
  return ctx.channel.exclusive(async () => {
    try {
      const chunk = aesChunkSize(ctx);
      await checkAesKey(ctx, keyRef, ALGO.AES_CBC_ENCRYPT, Math.ceil(plain.length / chunk));
      const parts: Uint8Array[] = [];
      let chain = opts.iv.slice();
      for (let off = 0; off < plain.length; off += chunk) {
        const block = plain.slice(off, off + chunk);
        xorInto(block, 0, chain);
        const out = await cipher(
          ctx,
          keyRef,
          ALGO.AES_CBC_ENCRYPT,
          block,
          block.length,
          'CIPHER (AES-CBC encrypt)',
        );
        wipe(block);
        if (out.length !== block.length)
          throw new ScHsmError(
            'MALFORMED_RESPONSE',
            `AES-CBC encrypt returned ${out.length} of ${block.length} bytes`,
          );
        parts.push(out);
        chain = out.slice(out.length - AES_BLOCK);
      }
      return fresh(concat(...parts));
    } finally {
      wipe(plain);
    }
  });
}

/**
 * AES-CBC decryption with the AES key `keyRef` (CIPHER algorithm 11, spec §3.15) and a caller IV.
 * The card decrypts each APDU from a zero IV; the host XORs the first output block of each with the
 * IV, then with the last ciphertext block of the APDU before. With PKCS#7 (the default) the padding
 * is checked and removed on the host; a bad padding is INCORRECT_DATA with one message whatever was
 * wrong (no padding oracle) and the decrypted bytes are wiped. The user PIN must be verified.
 */
export async function aesDecrypt(
  ctx: SessionContext,
  keyRef: number,
  ciphertext: Uint8Array,
  opts: AesCbcOptions,
): Promise<Uint8Array<ArrayBuffer>> {
  checkKeyRef(keyRef);
  checkBytes(ciphertext, 'the ciphertext');
  const padding = checkCbcOptions(opts);
  if (ciphertext.length === 0 || ciphertext.length % AES_BLOCK !== 0) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `an AES-CBC ciphertext is a whole number of 16-byte blocks (at least one); got ${ciphertext.length} bytes`,
    );
  }
  const iv = opts.iv.slice();
  return ctx.channel.exclusive(async () => {
    const chunk = aesChunkSize(ctx);
    await checkAesKey(ctx, keyRef, ALGO.AES_CBC_DECRYPT, Math.ceil(ciphertext.length / chunk));
    const parts: Uint8Array[] = [];
    try {
      let chain = iv;
      for (let off = 0; off < ciphertext.length; off += chunk) {
        const block = ciphertext.slice(off, off + chunk);
        const out = await cipher(
          ctx,
          keyRef,
          ALGO.AES_CBC_DECRYPT,
          block,
          block.length,
          'CIPHER (AES-CBC decrypt)',
        );
        parts.push(out);
        if (out.length !== block.length)
          throw new ScHsmError(
            'MALFORMED_RESPONSE',
            `AES-CBC decrypt returned ${out.length} of ${block.length} bytes`,
          );
        xorInto(out, 0, chain);
        chain = block.subarray(block.length - AES_BLOCK);
      }
      const plain = concat(...parts);
      try {
        return fresh(padding === 'pkcs7' ? pkcs7Unpad(plain) : plain.slice());
      } finally {
        wipe(plain);
      }
    } finally {
      for (const p of parts) wipe(p);
    }
  });
}

/**
 * AES-CMAC (NIST SP 800-38B) of `data` with the AES key `keyRef`, computed by the card (CIPHER
 * algorithm 18, spec §3.15): 16 bytes. The card keeps no state between commands, so the message
 * travels in one APDU: at most 1024 bytes (240 without extended length). The user PIN must be
 * verified.
 */
export async function aesCmac(
  ctx: SessionContext,
  keyRef: number,
  data: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  checkKeyRef(keyRef);
  checkBytes(data, 'the data to authenticate', 0, aesChunkSize(ctx));
  return ctx.channel.exclusive(async () => {
    await checkAesKey(ctx, keyRef, ALGO.AES_CMAC);
    const mac = await cipher(ctx, keyRef, ALGO.AES_CMAC, data, AES_BLOCK, 'CIPHER (AES-CMAC)');
    if (mac.length !== AES_BLOCK)
      throw new ScHsmError('MALFORMED_RESPONSE', `AES-CMAC returned ${mac.length} bytes, not 16`);
    return fresh(mac);
  });
}

/**
 * Key derivation from the AES key `keyRef` (CIPHER algorithm 99, spec §3.15): `length` bytes
 * (1–32, default 32) from the derivation data. **Which KDF the firmware runs is UNCERTAIN**
 * (spec §13 item 12): CardContact names it SP 800-56C (sc-hsm-embedded's
 * CKM_SC_HSM_SP80056C_DERIVE), pico-hsm runs HKDF-SHA-256 and so does the virtual card
 * (src/sim/uncertain.ts `AES_DERIVE_KDF`). The same key and data give the same bytes on one card,
 * but do not expect the virtual card's output from real firmware. The user PIN must be verified.
 */
export async function aesDerive(
  ctx: SessionContext,
  keyRef: number,
  data: Uint8Array,
  opts: { length?: number } = {},
): Promise<Uint8Array<ArrayBuffer>> {
  checkKeyRef(keyRef);
  checkBytes(data, 'the derivation data', 1, aesChunkSize(ctx));
  checkObject(opts, 'the derivation options', { length: 'number' });
  const length = opts.length ?? 32;
  checkInt(length, 1, 32, 'the derived length (opts.length)');
  return ctx.channel.exclusive(async () => {
    await checkAesKey(ctx, keyRef, ALGO.AES_DERIVE);
    const out = await cipher(ctx, keyRef, ALGO.AES_DERIVE, data, length, 'CIPHER (AES derive)');
    if (out.length < length)
      throw new ScHsmError('MALFORMED_RESPONSE', `AES derive returned ${out.length} of ${length} bytes`);
    return fresh(out.slice(0, length));
  });
}

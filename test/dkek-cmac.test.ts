import { describe, expect, it } from 'vitest';
import { aesCmac, combineShares, deriveWrapKeys, keyCheckValue } from '../src/dkek/index.js';
import { isScHsmError } from '../src/errors.js';
import { fromHex, toHex } from '../src/util/bytes.js';

const M = fromHex(
  '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710',
);

describe('aesCmac', () => {
  it('RFC 4493 AES-128 examples 1–4', () => {
    const k = fromHex('2b7e151628aed2a6abf7158809cf4f3c');
    expect(toHex(aesCmac(k, M.subarray(0, 0)))).toBe('bb1d6929e95937287fa37d129b756746');
    expect(toHex(aesCmac(k, M.subarray(0, 16)))).toBe('070a16b46b4d4144f79bdd9dd04a287c');
    expect(toHex(aesCmac(k, M.subarray(0, 40)))).toBe('dfa66747de9ae63030ca32611497c827');
    expect(toHex(aesCmac(k, M.subarray(0, 64)))).toBe('51f0bebf7e3b9d92fc49741779363cfe');
  });

  it('NIST SP 800-38B AES-256 examples', () => {
    const k = fromHex('603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4');
    expect(toHex(aesCmac(k, M.subarray(0, 0)))).toBe('028962f61b7bf89efc6b551f4667d983');
    expect(toHex(aesCmac(k, M.subarray(0, 16)))).toBe('28a7023f452e8f82bd4bf28d8c37c35c');
    expect(toHex(aesCmac(k, M.subarray(0, 40)))).toBe('aaf3d8f1de5640c232f5b169b9c911e6');
    expect(toHex(aesCmac(k, M))).toBe('e1992190549f6ed5696a2c056c315410');
  });

  it('refuses a key that is not an AES key length', () => {
    expect(() => aesCmac(new Uint8Array(15), M)).toThrowError(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
  });
});

describe('DKEK, KCV and wrap keys (spec §7.3–7.5)', () => {
  const share1 = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');
  const share2 = fromHex('6568b5f77e1127ca7ae8b86ad7a9306be5c9bc8ff358e2ab2ff982c3f323ae8f');

  it('KCV of the §7.6 #2 single share, and of the trace DKEK (first 8 bytes of the trace blobs)', () => {
    expect(toHex(keyCheckValue(combineShares([share1])))).toBe('2927c2c6cb63086a');
    expect(toHex(keyCheckValue(combineShares([share2])))).toBe('4b48b208b9fa873f');
  });

  it('combineShares XORs in any order and refuses bad shares', () => {
    const ab = combineShares([share1, share2]);
    expect(toHex(ab)).toBe(toHex(combineShares([share2, share1])));
    expect(ab[0]).toBe(share1[0]! ^ share2[0]!);
    // the same share twice cancels out: refused, unless asked for (reading blobs made under it)
    expect(() => combineShares([share1, share1])).toThrowError(
      expect.objectContaining({ code: 'DKEK_SHARE_REPEATED' }),
    );
    expect(toHex(combineShares([share1, share1], { allowDegenerate: true }))).toBe('00'.repeat(32));
    for (const bad of [[], [new Uint8Array(31)]]) {
      expect(() => combineShares(bad)).toThrowError(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
  });

  it('deriveWrapKeys = SHA-256(DKEK ‖ counter), and the KCV/keys refuse non-32-byte DKEKs', () => {
    const { kenc, kmac } = deriveWrapKeys(new Uint8Array(32));
    // SHA-256 of 32 zero bytes ‖ 00000001 / 00000002, computed independently with sha256sum
    expect(toHex(kenc)).toBe('2158a8906d5e2c2be001bac943ab9cab4063536e1c546b40221fdf8db031a4bb');
    expect(toHex(kmac)).toBe('e15f374423633701e04fe17c1d640b34f2e27b8f6aec00e24f1dcf50ad0920b3');
    try {
      keyCheckValue(new Uint8Array(16));
      expect.unreachable();
    } catch (e) {
      expect(isScHsmError(e, 'INVALID_ARGUMENT')).toBe(true);
    }
  });
});

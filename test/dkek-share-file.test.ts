import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decryptDkekShare, encryptDkekShare, keyCheckValue } from '../src/dkek/index.js';
import { decryptDkekShareWithIterations, encryptDkekShareWithIterations } from '../src/dkek/share-file.js';
import { isScHsmError as isScHsmErrorCode } from '../src/errors.js';
import { fromHex, toHex } from '../src/util/bytes.js';

const fixture = (name: string) =>
  fromHex(readFileSync(new URL(`../fixtures/dkek/${name}`, import.meta.url), 'utf8').trim());

// spec §7.6 #2
const V_PASSWORD = 'testpassword123';
const V_FILE = fromHex(
  '53616c7465645f5fa1deef59d3d67f5ff210bb3d6ce3afa2b22d1101977ae22a03ec3f9a6b9dc2ab288205923cbd6b83fac785de5d8146c3dfc70f0cf8e8ec9e',
);
const V_SHARE = '9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74';

describe('share files with the real 10,000,000-iteration KDF', () => {
  it('decrypts the spec §7.6 #2 vector to its share and KCV, reporting progress', async () => {
    const progress: number[] = [];
    const share = await decryptDkekShare(V_FILE, V_PASSWORD, { onProgress: (f) => progress.push(f) });
    expect(toHex(share)).toBe(V_SHARE);
    expect(toHex(keyCheckValue(share))).toBe('2927c2c6cb63086a');
    expect(progress.length).toBeGreaterThan(50);
    expect(progress.length).toBeLessThanOrEqual(105);
    expect(progress.at(-1)).toBe(1);
  }, 60_000);

  it('encrypts the trace 05 share byte-identically to OpenSSL (fixture made with C EVP_BytesToKey)', async () => {
    const file = await encryptDkekShare(
      fromHex('6568b5f77e1127ca7ae8b86ad7a9306be5c9bc8ff358e2ab2ff982c3f323ae8f'),
      'cara-dkek-share-1-pw',
      { salt: fromHex('ab492c25a2d4513a') },
    );
    expect(toHex(file)).toBe(toHex(fixture('dkek-share-1.pbe.hex')));
  }, 60_000);
});

describe('share files (structure, small iteration counts)', () => {
  const share = fromHex(V_SHARE);

  it('round-trips with string and byte passwords and a given salt', async () => {
    const salt = fromHex('0102030405060708');
    const file = await encryptDkekShareWithIterations(share, 'pässword', 5, { salt });
    expect(file.length).toBe(64);
    expect(toHex(file.subarray(0, 16))).toBe('53616c7465645f5f0102030405060708');
    expect(toHex(await decryptDkekShareWithIterations(file, 'pässword', 5))).toBe(V_SHARE);
    const bytesPw = new TextEncoder().encode('pässword');
    expect(toHex(await decryptDkekShareWithIterations(file, bytesPw, 5))).toBe(V_SHARE);
  });

  it('uses a fresh random salt by default', async () => {
    const a = await encryptDkekShareWithIterations(share, 'pw', 2);
    const b = await encryptDkekShareWithIterations(share, 'pw', 2);
    expect(toHex(a.subarray(8, 16))).not.toBe(toHex(b.subarray(8, 16)));
  });

  it('a wrong password is WRONG_PASSWORD and the message does not show the password', async () => {
    const file = await encryptDkekShareWithIterations(share, 'right-password', 3);
    const err = await decryptDkekShareWithIterations(file, 'wrong-password', 3).catch((e) => e);
    expect(isScHsmErrorCode(err, 'WRONG_PASSWORD')).toBe(true);
    expect(String(err.message)).not.toContain('wrong-password');
    expect(String(err.message)).not.toContain('right-password');
  });

  it('a truncated or foreign file is INVALID_SHARE_FILE', async () => {
    const file = await encryptDkekShareWithIterations(share, 'pw', 2);
    for (const bad of [file.subarray(0, 63), new Uint8Array(0), new Uint8Array(64), new Uint8Array(80)]) {
      const err = await decryptDkekShareWithIterations(bad, 'pw', 2).catch((e) => e);
      expect(isScHsmErrorCode(err, 'INVALID_SHARE_FILE')).toBe(true);
    }
    const noMagic = file.slice();
    noMagic[0] = 0x54;
    expect(
      isScHsmErrorCode(
        await decryptDkekShareWithIterations(noMagic, 'pw', 2).catch((e) => e),
        'INVALID_SHARE_FILE',
      ),
    ).toBe(true);
  });

  it('refuses a share that is not 32 bytes or a salt that is not 8 bytes', async () => {
    const e1 = await encryptDkekShareWithIterations(new Uint8Array(31), 'pw', 2).catch((e) => e);
    expect(isScHsmErrorCode(e1, 'INVALID_ARGUMENT')).toBe(true);
    const e2 = await encryptDkekShareWithIterations(share, 'pw', 2, { salt: new Uint8Array(7) }).catch(
      (e) => e,
    );
    expect(isScHsmErrorCode(e2, 'INVALID_ARGUMENT')).toBe(true);
  });
});

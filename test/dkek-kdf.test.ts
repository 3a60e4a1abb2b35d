import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deriveShareKeyIv } from '../src/dkek/kdf.js';
import { digestToWords, md5ChainWords, wordsToDigest } from '../src/dkek/md5-chain.js';
import { ascii, concat, toHex } from '../src/util/bytes.js';

/** OpenSSL's EVP_BytesToKey(AES-256-CBC, MD5) written plainly with node:crypto (spec §7.1). */
function referenceKdf(password: Uint8Array, salt: Uint8Array, count: number): Uint8Array {
  const out: Uint8Array[] = [];
  let prev = new Uint8Array(0);
  for (let i = 0; i < 3; i++) {
    let d = new Uint8Array(
      createHash('md5')
        .update(concat(prev, password, salt))
        .digest(),
    );
    for (let j = 1; j < count; j++) d = new Uint8Array(createHash('md5').update(d).digest());
    out.push(d);
    prev = d;
  }
  return concat(...out);
}

describe('specialised chained MD5', () => {
  it('equals node:crypto md5 applied n times on random inputs', () => {
    const state = new Int32Array(4);
    const out = new Uint8Array(16);
    for (let k = 0; k < 200; k++) {
      const x = new Uint8Array(randomBytes(16));
      const n = 1 + (k % 7);
      let y = x;
      for (let j = 0; j < n; j++) y = new Uint8Array(createHash('md5').update(y).digest());
      digestToWords(x, state);
      md5ChainWords(state, n);
      wordsToDigest(state, out);
      expect(toHex(out)).toBe(toHex(y));
    }
  });

  it('is the identity for a count of 0 and matches the RFC 1321 digest of a known value', () => {
    const state = new Int32Array(4);
    const zero = new Uint8Array(16);
    digestToWords(zero, state);
    md5ChainWords(state, 0);
    const out = new Uint8Array(16);
    wordsToDigest(state, out);
    expect(toHex(out)).toBe(toHex(zero));
    md5ChainWords(state, 1);
    wordsToDigest(state, out);
    // MD5 of 16 zero bytes
    expect(toHex(out)).toBe('4ae71336e44bf9bf79d2752e234818a5');
  });
});

describe('deriveShareKeyIv', () => {
  it('equals the plain EVP_BytesToKey construction for small counts', async () => {
    for (const count of [1, 2, 3, 17, 250]) {
      const pw = new Uint8Array(randomBytes(1 + (count % 20)));
      const salt = new Uint8Array(randomBytes(8));
      const { key, iv } = await deriveShareKeyIv(pw, salt, count);
      expect(toHex(concat(key, iv))).toBe(toHex(referenceKdf(pw, salt, count)));
    }
  });

  it('reports progress a bounded number of times, increasing, ending at 1, yielding to the event loop', async () => {
    const seen: number[] = [];
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    await deriveShareKeyIv(ascii('pw'), new Uint8Array(8), 20_000, (f) => seen.push(f));
    clearInterval(timer);
    expect(seen.length).toBeGreaterThan(10);
    expect(seen.length).toBeLessThanOrEqual(105);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
    expect(seen.at(-1)).toBe(1);
    expect(ticks).toBeGreaterThan(0);
  });

  it('calls progress with 1 even when there is nothing to chunk (count 1)', async () => {
    const seen: number[] = [];
    await deriveShareKeyIv(ascii('pw'), new Uint8Array(8), 1, (f) => seen.push(f));
    expect(seen).toEqual([1]);
  });
});

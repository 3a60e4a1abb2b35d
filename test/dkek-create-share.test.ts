/**
 * createDkekShareFile (issue #11): the library call behind `dkek create`, and cancelling the
 * share-file KDF with an AbortSignal (checked between its ~100 chunks: ABORTED).
 */
import { describe, expect, it } from 'vitest';
import { keyCheckValue } from '../src/dkek/dkek.js';
import { deriveShareKeyIv } from '../src/dkek/kdf.js';
import {
  createDkekShareFile,
  createDkekShareFileWithIterations,
  decryptDkekShare,
  decryptDkekShareWithIterations,
  randomSharePassword,
} from '../src/dkek/share-file.js';
import { bytesEqual } from '../src/util/bytes.js';

describe('createDkekShareFile', () => {
  it('returns a share file that decrypts to a share with the returned KCV', async () => {
    const { file, kcv } = await createDkekShareFileWithIterations('correct horse', 1000);
    expect(file.length).toBe(64);
    expect(Buffer.from(file.subarray(0, 8)).toString('latin1')).toBe('Salted__');
    const share = await decryptDkekShareWithIterations(file, 'correct horse', 1000);
    expect(bytesEqual(keyCheckValue(share), kcv)).toBe(true);
    expect(kcv.length).toBe(8);
  });

  it('refuses a password shorter than 6 characters, and a password of another type', async () => {
    await expect(createDkekShareFile('12345')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(createDkekShareFile(42 as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('randomSharePassword: 8 bytes, first byte 1..127', () => {
    for (let i = 0; i < 50; i++) {
      const pw = randomSharePassword();
      expect(pw.length).toBe(8);
      expect(pw[0]).toBeGreaterThan(0);
      expect(pw[0]).toBeLessThan(0x80);
    }
  });
});

describe('cancelling the share-file KDF', () => {
  it('an already aborted signal stops it before any work', async () => {
    const c = new AbortController();
    c.abort(new Error('operator left'));
    let progress = 0;
    const err = await createDkekShareFile('secret-password', {
      signal: c.signal,
      onProgress: () => progress++,
    }).catch((e) => e);
    expect(err).toMatchObject({ code: 'ABORTED' });
    expect(err.cause).toEqual(new Error('operator left'));
    expect(progress).toBe(0);
  });

  it('the full 10,000,000-round derivation stops between chunks when the signal fires', async () => {
    const c = new AbortController();
    const fractions: number[] = [];
    const started = Date.now();
    const err = await createDkekShareFile('secret-password', {
      signal: c.signal,
      onProgress: (f) => {
        fractions.push(f);
        if (fractions.length === 3) c.abort();
      },
    }).catch((e) => e);
    expect(err).toMatchObject({ code: 'ABORTED' });
    expect(fractions.length).toBe(3);
    expect(fractions.at(-1)).toBeLessThan(0.1);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('a timeout signal cancels decryption too, and the event loop runs meanwhile', async () => {
    const file = (await createDkekShareFileWithIterations('secret-password', 10)).file;
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const err = await decryptDkekShare(file, 'secret-password', { signal: AbortSignal.timeout(50) }).catch(
      (e) => e,
    );
    clearInterval(timer);
    expect(err).toMatchObject({ code: 'ABORTED' });
    expect(ticks).toBeGreaterThan(0);
  });

  it('deriveShareKeyIv without a signal is unchanged', async () => {
    const a = await deriveShareKeyIv(Uint8Array.of(1, 2, 3), new Uint8Array(8), 50);
    const b = await deriveShareKeyIv(
      Uint8Array.of(1, 2, 3),
      new Uint8Array(8),
      50,
      undefined,
      new AbortController().signal,
    );
    expect(bytesEqual(a.key, b.key) && bytesEqual(a.iv, b.iv)).toBe(true);
  });
});

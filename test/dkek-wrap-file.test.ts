import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeWrapFile, encodeWrapFile, inspectKeyBlob } from '../src/dkek/index.js';
import { isScHsmError } from '../src/errors.js';
import { concat, fromHex, toHex } from '../src/util/bytes.js';

const dir = new URL('../fixtures/dkek/', import.meta.url);
const hex = (n: string) => fromHex(readFileSync(new URL(n, dir), 'utf8').trim());
const bin = (n: string) => new Uint8Array(readFileSync(new URL(n, dir)));

describe('wrap files (spec §8.2)', () => {
  for (const k of ['key1', 'key2']) {
    it(`decodes and re-encodes ${k}.bin built from the trace`, () => {
      const file = bin(`${k}.bin`);
      const w = decodeWrapFile(file);
      expect(toHex(w.blob)).toBe(toHex(hex(`${k}.blob.hex`)));
      expect(toHex(w.prkd!)).toBe(toHex(hex(`${k}.prkd.hex`)));
      expect(toHex(w.certificate!)).toBe(toHex(hex(`${k}.cert.hex`)));
      expect(inspectKeyBlob(w.blob).keyType).toBe(k === 'key1' ? 'rsa' : 'ec');
      expect(toHex(encodeWrapFile(w))).toBe(toHex(file));
    });
  }

  it('exposes label and id from the PRKD when it decodes', () => {
    const w1 = decodeWrapFile(bin('key1.bin'));
    expect(w1.keyDescription?.kind).toBe('rsa');
    expect(w1.label).toBe('cara-rsa-ca');
    expect(toHex(w1.id!)).toBe('01');
    const w2 = decodeWrapFile(bin('key2.bin'));
    expect(w2.keyDescription?.kind).toBe('ec');
    expect(w2.label).toBe('cara-ec-ca');
    expect(toHex(w2.id!)).toBe('02');
    // a PRKD that does not decode is kept as bytes without the decoded fields
    const odd = decodeWrapFile(
      encodeWrapFile({ blob: w1.blob, prkd: Uint8Array.of(0xa0, 0x02, 0x05, 0x00) }),
    );
    expect(toHex(odd.prkd!)).toBe('a0020500');
    expect(odd.keyDescription).toBeUndefined();
    expect(odd.label).toBeUndefined();
  });

  it('trims EF contents to their first TLV and handles a blob alone', () => {
    const blob = hex('key2.blob.hex');
    const prkd = hex('key2.prkd.hex');
    const padded = concat(prkd, new Uint8Array(10));
    const a = encodeWrapFile({ blob, prkd: padded });
    expect(toHex(a)).toBe(toHex(encodeWrapFile({ blob, prkd })));
    const alone = decodeWrapFile(encodeWrapFile({ blob }));
    expect(toHex(alone.blob)).toBe(toHex(blob));
    expect(alone.prkd).toBeUndefined();
    expect(alone.certificate).toBeUndefined();
  });

  it('refuses files that are not wrap files', () => {
    const file = bin('key1.bin');
    for (const bad of [
      new Uint8Array(0),
      file.subarray(0, 100),
      fromHex('3003020100'),
      fromHex('0403010203'),
      fromHex('30020400'),
    ]) {
      try {
        decodeWrapFile(bad);
        expect.unreachable();
      } catch (e) {
        expect(isScHsmError(e, 'INVALID_WRAP_FILE')).toBe(true);
      }
    }
  });
});

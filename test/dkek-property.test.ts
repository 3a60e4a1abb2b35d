import { createCipheriv, createDecipheriv, generateKeyPairSync, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  aesCmac,
  combinePasswordShares,
  decodeWrapFile,
  decryptKeyBlob,
  deriveWrapKeys,
  encodeWrapFile,
  encryptKeyBlob,
  inspectKeyBlob,
  keyCheckValue,
  splitPassword,
} from '../src/dkek/index.js';
import { decryptDkekShareWithIterations, encryptDkekShareWithIterations } from '../src/dkek/share-file.js';
import { ScHsmError } from '../src/errors.js';
import { concat } from '../src/util/bytes.js';

const RUNS = { numRuns: 2000 };

/** Runs `f`; passes when it returns a value or throws an ScHsmError, fails on anything else. */
async function valueOrScHsmError(f: () => unknown): Promise<void> {
  try {
    await f();
  } catch (e) {
    if (!(e instanceof ScHsmError)) throw e;
  }
}

/** Random edits of a valid input: bit flips, truncation, insertion. */
const mutated = (base: Uint8Array) =>
  fc
    .record({
      flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }),
      cut: fc.option(fc.nat(), { nil: undefined }),
      insert: fc.option(fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 })), {
        nil: undefined,
      }),
    })
    .map(({ flips, cut, insert }) => {
      let b: Uint8Array = base.slice();
      for (const [i, x] of flips) if (b.length) b[i % b.length]! ^= x;
      if (cut !== undefined) b = b.subarray(0, cut % (b.length + 1));
      if (insert) {
        const at = insert[0] % (b.length + 1);
        b = concat(b.subarray(0, at), insert[1], b.subarray(at));
      }
      return b;
    });

describe('dkek decoders only ever return a value or throw an ScHsmError', () => {
  const dkek = new Uint8Array(randomBytes(32));
  const aesBlob = encryptKeyBlob({ aes: new Uint8Array(randomBytes(32)) }, dkek);

  it('decryptDkekShare (2 iterations)', async () => {
    const file = await encryptDkekShareWithIterations(new Uint8Array(32).fill(7), 'pw', 2);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(mutated(file), fc.uint8Array({ maxLength: 80 })),
        fc.oneof(fc.string({ maxLength: 12 }), fc.constant('pw')),
        (bytes, pw) => valueOrScHsmError(() => decryptDkekShareWithIterations(bytes, pw, 2)),
      ),
      RUNS,
    );
  });

  it('decryptKeyBlob and inspectKeyBlob', async () => {
    const withKcv = (b: Uint8Array) => concat(keyCheckValue(dkek), b);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          mutated(aesBlob),
          fc.uint8Array({ maxLength: 200 }).map(withKcv),
          fc.uint8Array({ maxLength: 64 }),
        ),
        async (bytes) => {
          await valueOrScHsmError(() => inspectKeyBlob(bytes));
          await valueOrScHsmError(() => decryptKeyBlob(bytes, dkek));
        },
      ),
      RUNS,
    );
  });

  it('decryptKeyBlob with a valid MAC around random or mutated key data', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({
      type: 'pkcs8',
      format: 'der',
    });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({
      type: 'pkcs8',
      format: 'der',
    });
    const { kenc, kmac } = deriveWrapKeys(dkek);
    const open = (blob: Uint8Array, headerLen: number) => {
      const d = createDecipheriv('aes-256-cbc', kenc, new Uint8Array(16)).setAutoPadding(false);
      return {
        header: blob.subarray(0, headerLen),
        plain: concat(d.update(blob.subarray(headerLen, -16)), d.final()),
      };
    };
    const seal = (header: Uint8Array, plain: Uint8Array) => {
      const padded = new Uint8Array(Math.ceil(plain.length / 16) * 16 || 16);
      padded.set(plain);
      const c = createCipheriv('aes-256-cbc', kenc, new Uint8Array(16)).setAutoPadding(false);
      const macInput = concat(header, c.update(padded), c.final());
      return concat(macInput, aesCmac(kmac, macInput));
    };
    const bases = [
      open(encryptKeyBlob({ pkcs8: new Uint8Array(ec) }, dkek), 27),
      open(encryptKeyBlob({ pkcs8: new Uint8Array(rsa) }, dkek, { rsaForm: 'crt' }), 27),
      open(encryptKeyBlob({ pkcs8: new Uint8Array(rsa) }, dkek, { rsaForm: 'plain' }), 27),
      open(aesBlob, 29),
    ];
    const input = fc
      .integer({ min: 0, max: 3 })
      .chain((i) =>
        fc.tuple(fc.constant(i), fc.oneof(mutated(bases[i]!.plain), fc.uint8Array({ maxLength: 96 }))),
      );
    fc.assert(
      fc.property(input, ([i, plain]) => {
        try {
          decryptKeyBlob(seal(bases[i]!.header, plain), dkek);
        } catch (e) {
          if (!(e instanceof ScHsmError)) throw e;
        }
      }),
      RUNS,
    );
  });

  it('decodeWrapFile', async () => {
    const bin = encodeWrapFile({
      blob: aesBlob,
      prkd: Uint8Array.of(0xa0, 0x02, 0x30, 0x00),
      certificate: Uint8Array.of(0x67, 0x00),
    });
    await fc.assert(
      fc.asyncProperty(fc.oneof(mutated(bin), fc.uint8Array({ maxLength: 100 })), (bytes) =>
        valueOrScHsmError(() => decodeWrapFile(bytes)),
      ),
      RUNS,
    );
  });

  it('combinePasswordShares', async () => {
    const shares = splitPassword(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), 2, 3);
    const share = fc.record({
      prime: fc.oneof(
        fc.constant(shares[0]!.prime),
        mutated(shares[0]!.prime),
        fc.uint8Array({ maxLength: 70 }),
      ),
      id: fc.oneof(fc.integer({ min: -2, max: 12 }), fc.double(), fc.constant(Number.NaN)),
      value: fc.oneof(mutated(shares[1]!.value), fc.uint8Array({ maxLength: 70 })),
      length: fc.option(fc.integer({ min: -1, max: 70 }), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(share, { maxLength: 5 }), (list) =>
        valueOrScHsmError(() => combinePasswordShares(list)),
      ),
      RUNS,
    );
  });

  it('round trips still work after the random runs (sanity)', () => {
    expect(decryptKeyBlob(aesBlob, dkek).keyType).toBe('aes');
  });
});

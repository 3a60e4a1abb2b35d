import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  aesCmac,
  combineShares,
  decryptKeyBlob,
  deriveWrapKeys,
  encryptKeyBlob,
  inspectKeyBlob,
  keyCheckValue,
} from '../src/dkek/index.js';
import { OID } from '../src/protocol/constants.js';
import { concat, fromHex, toHex } from '../src/util/bytes.js';
import { CURVES } from '../src/util/curves.js';
import { readAll, readTlv, type Tlv } from '../src/util/tlv.js';

const dir = new URL('../fixtures/dkek/', import.meta.url);
const hex = (n: string) => fromHex(readFileSync(new URL(n, dir), 'utf8').trim());
const dkek = new Uint8Array(randomBytes(32));

const codeOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return 'no error';
};

function pair(o: Parameters<typeof generateKeyPairSync>[1] & object, type: 'rsa' | 'ec') {
  const { privateKey, publicKey } = generateKeyPairSync(
    type as 'rsa',
    {
      ...(o as object),
      privateKeyEncoding: { type: 'pkcs8', format: 'der' },
      publicKeyEncoding: { type: 'spki', format: 'der' },
    } as never,
  ) as unknown as { privateKey: Buffer; publicKey: Buffer };
  return { pkcs8: new Uint8Array(privateKey), spki: new Uint8Array(publicKey) };
}

/** Decrypts a blob's body, lets `edit` change the plaintext, re-encrypts and re-MACs. */
function reseal(blob: Uint8Array, edit: (plain: Uint8Array) => Uint8Array): Uint8Array {
  const h = inspectKeyBlob(blob);
  const headerLen = 9 + 2 + h.defaultAlgorithm.length + 2 + h.algorithms.length + 4;
  const { kenc, kmac } = deriveWrapKeys(dkek);
  const d = createDecipheriv('aes-256-cbc', kenc, new Uint8Array(16)).setAutoPadding(false);
  const plain = concat(d.update(blob.subarray(headerLen, blob.length - 16)), d.final());
  const c = createCipheriv('aes-256-cbc', kenc, new Uint8Array(16)).setAutoPadding(false);
  const body = concat(c.update(edit(plain)), c.final());
  const macInput = concat(blob.subarray(0, headerLen), body);
  return concat(macInput, aesCmac(kmac, macInput));
}

describe('key blobs: round trips (spec §8.1)', () => {
  for (const bits of [1024, 2048]) {
    for (const rsaForm of ['plain', 'crt'] as const) {
      it(`RSA-${bits} ${rsaForm}`, () => {
        const k = pair({ modulusLength: bits }, 'rsa');
        const blob = encryptKeyBlob({ pkcs8: k.pkcs8 }, dkek, { rsaForm });
        expect(toHex(blob.subarray(0, 8))).toBe(toHex(keyCheckValue(dkek)));
        expect(blob[8]).toBe(rsaForm === 'crt' ? 0x06 : 0x05);
        const h = inspectKeyBlob(blob);
        expect(h.keyType).toBe(rsaForm === 'crt' ? 'rsa-crt' : 'rsa');
        expect(toHex(h.defaultAlgorithm)).toBe(toHex(OID.TA_RSA_V15_SHA256));
        const d = decryptKeyBlob(blob, dkek);
        expect(d.bits).toBe(bits);
        expect(toHex(d.publicKey!)).toBe(toHex(k.spki));
        // RSAPrivateKey { version, n, e, d, p, q, dP, dQ, qInv }
        const fields = (der: Uint8Array) => readAll(readTlv(readAll(readTlv(der).value)[2]!.value).value);
        const got = fields(d.pkcs8!).map((f) => toHex(f.value));
        const want = fields(k.pkcs8).map((f) => toHex(f.value));
        if (rsaForm === 'plain') {
          expect(got).toEqual(want);
        } else {
          // The CRT form does not carry d: any d with e·d ≡ 1 (mod λ(n)) is the same key, and
          // OpenSSL's generator does not always pick the smallest one. Everything else is carried.
          expect([...got.slice(0, 3), ...got.slice(4)]).toEqual([...want.slice(0, 3), ...want.slice(4)]);
          const msg = Buffer.from('same key');
          const priv = createPrivateKey({ key: Buffer.from(d.pkcs8!), format: 'der', type: 'pkcs8' });
          const pub = createPublicKey({ key: Buffer.from(k.spki), format: 'der', type: 'spki' });
          expect(verify('sha256', msg, pub, sign('sha256', msg, priv))).toBe(true);
        }
      });
    }
  }

  it('RSA default form: CRT up to 2048 bits', () => {
    const k = pair({ modulusLength: 1024 }, 'rsa');
    expect(encryptKeyBlob({ pkcs8: k.pkcs8 }, dkek)[8]).toBe(0x06);
  });

  for (const c of CURVES) {
    it(`EC ${c.name}`, () => {
      const k = pair({ namedCurve: c.name }, 'ec');
      const blob = encryptKeyBlob({ pkcs8: k.pkcs8 }, dkek, { algorithms: Uint8Array.of(0x73, 0x92) });
      const d = decryptKeyBlob(blob, dkek);
      expect(d.keyType).toBe('ec');
      expect(d.curve).toBe(c.name);
      expect(d.bits).toBe(c.bits);
      expect(toHex(d.algorithms)).toBe('7392');
      expect(toHex(d.defaultAlgorithm)).toBe(toHex(OID.TA_ECDSA_SHA256));
      expect(toHex(d.publicKey!)).toBe(toHex(k.spki));
      expect(toHex(d.pkcs8!)).toBe(toHex(k.pkcs8));
      // node:crypto accepts our PKCS#8 and derives the same public key from it
      const pub = createPublicKey(
        createPrivateKey({ key: Buffer.from(d.pkcs8!), format: 'der', type: 'pkcs8' }),
      );
      expect(toHex(new Uint8Array(pub.export({ type: 'spki', format: 'der' })))).toBe(toHex(k.spki));
    });
  }

  it('P-521: encodes key size 528 and accepts 521 on decoding', () => {
    const k = pair({ namedCurve: 'secp521r1' }, 'ec');
    const blob = encryptKeyBlob({ pkcs8: k.pkcs8 }, dkek);
    let size = 0;
    const as521 = reseal(blob, (p) => {
      size = (p[8]! << 8) | p[9]!;
      const q = p.slice();
      q[8] = 521 >> 8;
      q[9] = 521 & 0xff;
      return q;
    });
    expect(size).toBe(528);
    expect(decryptKeyBlob(as521, dkek).curve).toBe('secp521r1');
  });

  for (const len of [16, 24, 32]) {
    it(`AES-${len * 8}`, () => {
      const key = new Uint8Array(randomBytes(len));
      const blob = encryptKeyBlob({ aes: key }, dkek);
      const d = decryptKeyBlob(blob, dkek);
      expect(d.keyType).toBe('aes');
      expect(d.bits).toBe(len * 8);
      expect(toHex(d.aesKey!)).toBe(toHex(key));
      expect(toHex(d.algorithms)).toBe('10111899');
      expect(toHex(d.defaultAlgorithm)).toBe(toHex(OID.AES));
      expect(d.pkcs8).toBeUndefined();
    });
  }

  it('pads with ISO 9797-1 method 2 (a full block when aligned) and decodes unpadded (pico) bodies', () => {
    const key = new Uint8Array(randomBytes(16));
    const blob = encryptKeyBlob({ aes: key }, dkek);
    // 8 random + 2 size + 16 key = 26 → 32 bytes; the byte after the key is 80
    let seen = -1;
    const unpadded = reseal(blob, (p) => {
      seen = p[26]!;
      const q = new Uint8Array(32);
      q.set(p.subarray(0, 26));
      q.fill(0xee, 26);
      return q;
    });
    expect(seen).toBe(0x80);
    expect(toHex(decryptKeyBlob(unpadded, dkek).aesKey!)).toBe(toHex(key));
  });
});

describe('key blobs: faults', () => {
  const k = pair({ namedCurve: 'prime256v1' }, 'ec');
  const blob = encryptKeyBlob({ pkcs8: k.pkcs8 }, dkek);

  it('a flipped ciphertext or header bit is MAC_INVALID', () => {
    const a = blob.slice();
    a[a.length - 20]! ^= 1;
    expect(codeOf(() => decryptKeyBlob(a, dkek))).toBe('MAC_INVALID');
    const b = blob.slice();
    b[14]! ^= 1; // inside the default algorithm OID
    expect(codeOf(() => decryptKeyBlob(b, dkek))).toBe('MAC_INVALID');
  });

  it('another DKEK is KCV_MISMATCH, naming both KCVs', () => {
    const other = new Uint8Array(randomBytes(32));
    try {
      decryptKeyBlob(blob, other);
      expect.unreachable();
    } catch (e) {
      expect((e as { code: string }).code).toBe('KCV_MISMATCH');
      expect((e as Error).message).toContain(toHex(keyCheckValue(dkek)));
      expect((e as Error).message).toContain(toHex(keyCheckValue(other)));
      expect((e as Error).message).not.toContain(toHex(other));
    }
  });

  it('truncation is INVALID_KEY_BLOB', () => {
    for (const n of [0, 5, 9, 20, blob.length - 5, blob.length - 17]) {
      expect(codeOf(() => decryptKeyBlob(blob.subarray(0, n), dkek))).toMatch(/INVALID_KEY_BLOB|MAC_INVALID/);
    }
    expect(codeOf(() => decryptKeyBlob(blob.subarray(0, blob.length - 5), dkek))).toBe('INVALID_KEY_BLOB');
    expect(codeOf(() => inspectKeyBlob(blob.subarray(0, 12)))).toBe('INVALID_KEY_BLOB');
  });

  it('an inner structure that does not hold together is INVALID_KEY_BLOB even with a good MAC', () => {
    const wrongQ = reseal(blob, (p) => {
      const q = p.slice();
      const i = q.lastIndexOf(0x04, q.length - 40);
      q[q.length - 30]! ^= 1; // inside the public point Q
      return i >= 0 ? q : q;
    });
    expect(codeOf(() => decryptKeyBlob(wrongQ, dkek))).toBe('INVALID_KEY_BLOB');
    const cut = reseal(blob, (p) => {
      const q = p.slice();
      q[10] = 0xff; // length of a runs past the end
      return q;
    });
    expect(codeOf(() => decryptKeyBlob(cut, dkek))).toBe('INVALID_KEY_BLOB');
    const unknownType = blob.slice();
    unknownType[8] = 0x07;
    expect(codeOf(() => inspectKeyBlob(unknownType))).toBe('INVALID_KEY_BLOB');
  });

  it('refuses unwrappable input keys', () => {
    expect(codeOf(() => encryptKeyBlob({ aes: new Uint8Array(10) }, dkek))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => encryptKeyBlob({ pkcs8: new Uint8Array(10) }, dkek))).toBe('INVALID_ARGUMENT');
    const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'der' });
    expect(codeOf(() => encryptKeyBlob({ pkcs8: new Uint8Array(ed) }, dkek))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => encryptKeyBlob({ aes: new Uint8Array(16) }, new Uint8Array(16)))).toBe(
      'INVALID_ARGUMENT',
    );
  });
});

/** Finds the first TLV with `tag` anywhere below `bytes` (constructed tags searched recursively). */
function deepFind(bytes: Uint8Array, tag: number): Tlv | undefined {
  for (const t of readAll(bytes)) {
    if (t.tag === tag) return t;
    if (t.constructed) {
      const inner = deepFind(t.value, tag);
      if (inner) return inner;
    }
  }
  return undefined;
}

describe('key blobs from the OpenSC traces (card with the single share of trace 05)', () => {
  // trace 05: salt = first GET CHALLENGE, share = second; trace 08 imports exactly this share
  const traceDkek = combineShares([
    fromHex('6568b5f77e1127ca7ae8b86ad7a9306be5c9bc8ff358e2ab2ff982c3f323ae8f'),
  ]);

  it('trace 22: RSA-2048 (type 05) matches the public key generated in trace 12', () => {
    const d = decryptKeyBlob(hex('key1.blob.hex'), traceDkek);
    expect(d.keyType).toBe('rsa');
    expect(d.bits).toBe(2048);
    const pk = deepFind(hex('gakp-rsa.hex'), 0x7f49)!;
    const jwk = createPublicKey({ key: Buffer.from(d.publicKey!), format: 'der', type: 'spki' }).export({
      format: 'jwk',
    });
    expect(toHex(new Uint8Array(Buffer.from(jwk.n!, 'base64url')))).toBe(
      toHex(deepFind(pk.value, 0x81)!.value),
    );
    expect(toHex(new Uint8Array(Buffer.from(jwk.e!, 'base64url')))).toBe(
      toHex(deepFind(pk.value, 0x82)!.value),
    );
    // and the recovered key is complete: it signs and the trace's public key verifies
    expect(
      createPrivateKey({ key: Buffer.from(d.pkcs8!), format: 'der', type: 'pkcs8' }).asymmetricKeyType,
    ).toBe('rsa');
  });

  it('trace 23: EC P-256 (coefficient a written with length 0) matches the public key of trace 13', () => {
    const blob = hex('key2.blob.hex');
    const d = decryptKeyBlob(blob, traceDkek);
    expect(d.keyType).toBe('ec');
    expect(d.curve).toBe('prime256v1');
    const point = deepFind(deepFind(hex('gakp-ec.hex'), 0x7f49)!.value, 0x86)!.value;
    const spki = readAll(readTlv(d.publicKey!).value);
    expect(toHex(spki[1]!.value.subarray(1))).toBe(toHex(point));
    // re-wrapping under the same DKEK gives a blob the same decoder reads back identically
    const again = decryptKeyBlob(encryptKeyBlob({ pkcs8: d.pkcs8! }, traceDkek), traceDkek);
    expect(toHex(again.pkcs8!)).toBe(toHex(d.pkcs8!));
  });
});

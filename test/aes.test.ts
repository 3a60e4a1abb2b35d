/**
 * AES keys at work (spec §3.15 CIPHER `80 78`): the library's AES-CBC with a caller IV and PKCS#7
 * on the host, CMAC and derivation, checked against node:crypto; the virtual card's status words;
 * and what a hostile caller tries.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FaultInjectingTransport } from '../src/apdu/fault.js';
import type { Transport } from '../src/apdu/transport.js';
import { pkcs7Unpad } from '../src/sc-hsm/aes.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { concat, toHex } from '../src/util/bytes.js';
import { FAULT_COMBOS, rejection } from './helpers/fixtures.js';
import { ext, ok, readyCard, tx } from './sim-helpers.js';

const PIN = '648219';

/** AES-CMAC (NIST SP 800-38B) written here from AES-ECB, independent of src/dkek's. */
function referenceCmac(key: Uint8Array, msg: Uint8Array): string {
  const ecb = (b: Uint8Array) => {
    const c = createCipheriv(`aes-${key.length * 8}-ecb`, key, null).setAutoPadding(false);
    return new Uint8Array(Buffer.concat([c.update(b), c.final()]));
  };
  const dbl = (b: Uint8Array) => {
    const out = new Uint8Array(16);
    for (let i = 0; i < 16; i++) out[i] = ((b[i]! << 1) | (i < 15 ? b[i + 1]! >> 7 : 0)) & 0xff;
    if (b[0]! & 0x80) out[15]! ^= 0x87;
    return out;
  };
  const k1 = dbl(ecb(new Uint8Array(16)));
  const k2 = dbl(k1);
  const n = Math.max(1, Math.ceil(msg.length / 16));
  const complete = msg.length > 0 && msg.length % 16 === 0;
  const last = new Uint8Array(16);
  last.set(msg.subarray((n - 1) * 16));
  if (!complete) last[msg.length - (n - 1) * 16] = 0x80;
  const sub = complete ? k1 : k2;
  for (let i = 0; i < 16; i++) last[i]! ^= sub[i]!;
  let x: Uint8Array = new Uint8Array(16);
  for (let b = 0; b < n; b++) {
    const block = b === n - 1 ? last : msg.subarray(b * 16, b * 16 + 16);
    x = ecb(x.map((v, i) => v ^ block[i]!));
  }
  return toHex(x);
}

function nodeCbc(key: Uint8Array, iv: Uint8Array, data: Uint8Array, decrypt = false): string {
  const c = decrypt
    ? createDecipheriv(`aes-${key.length * 8}-cbc`, key, iv)
    : createCipheriv(`aes-${key.length * 8}-cbc`, key, iv);
  return toHex(Buffer.concat([c.update(data), c.final()]));
}

/** The virtual card behind a transport that records the length of every command APDU. */
class Counting implements Transport {
  readonly sizes: number[] = [];
  constructor(
    readonly card: VirtualSmartCardHsm,
    readonly extendedLength = true,
  ) {}
  transmit(apdu: Uint8Array): Promise<Uint8Array> {
    this.sizes.push(apdu.length);
    return this.card.transmit(apdu);
  }
  close(): Promise<void> {
    return this.card.close();
  }
}

async function device(extendedLength = true) {
  const card = new VirtualSmartCardHsm();
  const t = new Counting(card, extendedLength);
  const hsm = await SmartCardHsm.open(t);
  await hsm.initialize({ soPin: '3537363231383830', userPin: PIN });
  await hsm.verifyPin(PIN);
  const secretOf = (keyRef: number) =>
    new Uint8Array(Buffer.from(JSON.parse(card.serialize()).keys[String(keyRef)].secret, 'hex'));
  return { card, t, hsm, secretOf };
}

describe('AES-CBC, CMAC and derivation with a device AES key', () => {
  it('encrypts and decrypts like node:crypto AES-CBC for every key size and many lengths', async () => {
    const { hsm, secretOf } = await device();
    for (const bits of [128, 192, 256] as const) {
      const { keyRef } = await hsm.generateAesKey({ bits, label: `aes${bits}` });
      const key = secretOf(keyRef);
      expect(key).toHaveLength(bits / 8);
      for (const len of [0, 1, 15, 16, 17, 1007, 1008, 1023, 1024, 1025, 3000]) {
        const iv = new Uint8Array(randomBytes(16));
        const plain = new Uint8Array(randomBytes(len));
        const ct = await hsm.aesEncrypt(keyRef, plain, { iv });
        expect(toHex(ct), `${bits} ${len}`).toBe(nodeCbc(key, iv, plain));
        expect(toHex(await hsm.aesDecrypt(keyRef, ct, { iv }))).toBe(toHex(plain));
      }
    }
  });

  it('decrypts what node:crypto encrypted, and raw blocks with padding "none"', async () => {
    const { hsm, secretOf } = await device();
    const { keyRef } = await hsm.generateAesKey({ bits: 256, label: 'k' });
    const key = secretOf(keyRef);
    const iv = new Uint8Array(randomBytes(16));
    const plain = new Uint8Array(randomBytes(2049));
    const ct = Buffer.from(nodeCbc(key, iv, plain), 'hex');
    expect(toHex(await hsm.aesDecrypt(keyRef, ct, { iv }))).toBe(toHex(plain));
    const blocks = new Uint8Array(randomBytes(64));
    const raw = await hsm.aesEncrypt(keyRef, blocks, { iv, padding: 'none' });
    expect(raw).toHaveLength(64);
    const c = createCipheriv('aes-256-cbc', key, iv).setAutoPadding(false);
    expect(toHex(raw)).toBe(toHex(Buffer.concat([c.update(blocks), c.final()])));
    expect(toHex(await hsm.aesDecrypt(keyRef, raw, { iv, padding: 'none' }))).toBe(toHex(blocks));
  });

  it('CMAC equals AES-CMAC computed from node:crypto AES-ECB (RFC 4493 lengths)', async () => {
    const { hsm, secretOf } = await device();
    for (const bits of [128, 256] as const) {
      const { keyRef } = await hsm.generateAesKey({ bits, label: `mac${bits}` });
      const key = secretOf(keyRef);
      for (const len of [0, 16, 40, 64, 1024]) {
        const msg = new Uint8Array(randomBytes(len));
        expect(toHex(await hsm.aesCmac(keyRef, msg))).toBe(referenceCmac(key, msg));
      }
    }
  });

  it('derives 1-32 bytes, the same for the same data, different for other data', async () => {
    const { hsm } = await device();
    const { keyRef } = await hsm.generateAesKey({ bits: 256, label: 'kdf' });
    const a = await hsm.aesDerive(keyRef, Uint8Array.of(1));
    expect(a).toHaveLength(32);
    expect(toHex(await hsm.aesDerive(keyRef, Uint8Array.of(1), { length: 16 }))).toBe(
      toHex(a.subarray(0, 16)),
    );
    expect(toHex(await hsm.aesDerive(keyRef, Uint8Array.of(2)))).not.toBe(toHex(a));
    for (const length of [0, 33, 1.5]) {
      expect((await rejection(hsm.aesDerive(keyRef, Uint8Array.of(1), { length }))).code).toBe(
        'INVALID_ARGUMENT',
      );
    }
    expect((await rejection(hsm.aesDerive(keyRef, new Uint8Array(0)))).code).toBe('INVALID_ARGUMENT');
  });

  it('splits long data into APDUs within the card limit (extended and short), CBC chained across them', async () => {
    for (const extended of [true, false]) {
      const { hsm, t, secretOf } = await device(extended);
      const { keyRef } = await hsm.generateAesKey({ bits: 128, label: 'big' });
      const key = secretOf(keyRef);
      const iv = new Uint8Array(randomBytes(16));
      const plain = new Uint8Array(randomBytes(100_000));
      t.sizes.length = 0;
      const ct = await hsm.aesEncrypt(keyRef, plain, { iv });
      expect(toHex(ct)).toBe(nodeCbc(key, iv, plain));
      const max = extended ? 1024 + 9 : 240 + 6;
      expect(Math.max(...t.sizes)).toBeLessThanOrEqual(max);
      expect(t.sizes.length).toBeGreaterThanOrEqual(Math.ceil(100_016 / (extended ? 1024 : 240)));
      expect(toHex(await hsm.aesDecrypt(keyRef, ct, { iv }))).toBe(toHex(plain));
      expect(Math.max(...t.sizes)).toBeLessThanOrEqual(max);
      // CMAC goes in one APDU: longer messages are refused before sending
      t.sizes.length = 0;
      const e = await rejection(hsm.aesCmac(keyRef, new Uint8Array(extended ? 1025 : 241)));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(t.sizes).toHaveLength(0);
    }
  });
});

describe('AES: what a hostile caller tries', () => {
  it('an EC or RSA key is refused on the host with the fix; without a description the card answers 6A81', async () => {
    const { hsm, t } = await device();
    const ec = await hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'ec' });
    const iv = new Uint8Array(16);
    const e = await rejection(hsm.aesEncrypt(ec.keyRef, new Uint8Array(16), { iv }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/is EC, not AES/);
    expect(e.message).toContain('keygen --type aes:256');
    for (const op of [
      () => hsm.aesDecrypt(ec.keyRef, new Uint8Array(16), { iv }),
      () => hsm.aesCmac(ec.keyRef, new Uint8Array(1)),
      () => hsm.aesDerive(ec.keyRef, new Uint8Array(1)),
    ])
      expect((await rejection(op())).code).toBe('INVALID_ARGUMENT');
    // description and public key gone: the host cannot tell, the card refuses (6A81)
    await hsm.deleteFile(0xc400 | ec.keyRef);
    await hsm.deleteFile(0xce00 | ec.keyRef);
    const fresh = await SmartCardHsm.open(t);
    await fresh.verifyPin(PIN);
    const c = await rejection(fresh.aesCmac(ec.keyRef, new Uint8Array(1)));
    expect(c.code).toBe('ALGORITHM_NOT_ALLOWED');
    expect(c.sw).toBe(0x6a81);
  });

  it('bad IVs, options and inputs are INVALID_ARGUMENT before any APDU', async () => {
    const { hsm, t } = await device();
    const { keyRef } = await hsm.generateAesKey({ bits: 256, label: 'k' });
    await hsm.keyInfo(keyRef);
    t.sizes.length = 0;
    const bad: (() => Promise<unknown>)[] = [
      () => hsm.aesEncrypt(keyRef, new Uint8Array(16), { iv: new Uint8Array(15) }),
      () => hsm.aesEncrypt(keyRef, new Uint8Array(16), { iv: new Uint8Array(17) }),
      () => hsm.aesEncrypt(keyRef, new Uint8Array(16), { iv: new Uint8Array(0) }),
      () => hsm.aesEncrypt(keyRef, new Uint8Array(16), { iv: '00'.repeat(16) as never }),
      () => hsm.aesEncrypt(keyRef, new Uint8Array(16), {} as never),
      () => hsm.aesEncrypt(keyRef, new Uint8Array(16), undefined as never),
      () => hsm.aesEncrypt(keyRef, new Uint8Array(16), { iv: new Uint8Array(16), padding: 'zero' as never }),
      () => hsm.aesEncrypt(keyRef, new Uint8Array(15), { iv: new Uint8Array(16), padding: 'none' }),
      () => hsm.aesEncrypt(keyRef, new Uint8Array(0), { iv: new Uint8Array(16), padding: 'none' }),
      () => hsm.aesEncrypt(keyRef, 'text' as never, { iv: new Uint8Array(16) }),
      () => hsm.aesEncrypt(0, new Uint8Array(16), { iv: new Uint8Array(16) }),
      () => hsm.aesEncrypt(256, new Uint8Array(16), { iv: new Uint8Array(16) }),
      () => hsm.aesDecrypt(keyRef, new Uint8Array(0), { iv: new Uint8Array(16) }),
      () => hsm.aesDecrypt(keyRef, new Uint8Array(17), { iv: new Uint8Array(16) }),
      () => hsm.aesCmac(keyRef, null as never),
    ];
    for (const fn of bad) expect((await rejection(fn())).code).toBe('INVALID_ARGUMENT');
    expect(t.sizes).toHaveLength(0);
  });

  it('garbage to decrypt is INCORRECT_DATA with one message whatever the padding looked like', async () => {
    const { hsm, secretOf } = await device();
    const { keyRef } = await hsm.generateAesKey({ bits: 256, label: 'k' });
    const key = secretOf(keyRef);
    const iv = new Uint8Array(16);
    const messages = new Set<string>();
    // last plaintext bytes ending 00, 11, 05 05 04, 10…10 with one byte off, 17: every way to be wrong
    const tails = [
      Uint8Array.of(0),
      Uint8Array.of(0x11),
      Uint8Array.of(5, 5, 4),
      concat(Uint8Array.of(0x0f), new Uint8Array(15).fill(0x10)),
      Uint8Array.of(0xff),
    ];
    for (const tail of tails) {
      const plain = new Uint8Array(32);
      plain.set(tail, 32 - tail.length);
      const c = createCipheriv('aes-256-cbc', key, iv).setAutoPadding(false);
      const ct = Buffer.concat([c.update(plain), c.final()]);
      const e = await rejection(hsm.aesDecrypt(keyRef, ct, { iv }));
      expect(e.code).toBe('INCORRECT_DATA');
      messages.add(e.message);
    }
    const random = await rejection(
      hsm.aesDecrypt(
        keyRef,
        new Uint8Array(randomBytes(48)).map((b, i) => (i === 47 ? 0 : b)),
        { iv },
      ),
    );
    messages.add(random.message);
    expect([...messages]).toHaveLength(1);
    expect([...messages][0]).not.toMatch(/byte|position|[0-9a-f]{8}/i);
    expect(() => pkcs7Unpad(new Uint8Array(16).fill(16))).not.toThrow();
    expect(pkcs7Unpad(new Uint8Array(16).fill(16))).toHaveLength(0);
  });

  it('an algorithm list without CBC (tag 91) makes the card refuse: ALGORITHM_NOT_ALLOWED', async () => {
    const { hsm } = await device();
    const { keyRef } = await hsm.generateAesKey({
      bits: 128,
      label: 'mac-only',
      algorithms: Uint8Array.of(0x18),
    });
    const e = await rejection(hsm.aesEncrypt(keyRef, new Uint8Array(1), { iv: new Uint8Array(16) }));
    expect(e.code).toBe('ALGORITHM_NOT_ALLOWED');
    expect(await hsm.aesCmac(keyRef, new Uint8Array(3))).toHaveLength(16);
  });

  it('needs the user PIN (SECURITY_STATUS); a missing key is KEY_NOT_FOUND', async () => {
    const { hsm } = await device();
    const { keyRef } = await hsm.generateAesKey({ bits: 128, label: 'k' });
    expect((await rejection(hsm.aesCmac(keyRef + 1, new Uint8Array(3)))).code).toBe('KEY_NOT_FOUND');
    await hsm.logout();
    expect((await rejection(hsm.aesCmac(keyRef, new Uint8Array(3)))).code).toBe('SECURITY_STATUS');
  });
});

describe('AES: a fault at any APDU of a chained operation', () => {
  it('rejects with a typed error, never a wrong or partial result, and leaves the card as it was', async () => {
    const card = new VirtualSmartCardHsm();
    const ft = new FaultInjectingTransport(card);
    let hsm = await SmartCardHsm.open(ft);
    await hsm.initialize({ soPin: '3537363231383830', userPin: PIN });
    await hsm.verifyPin(PIN);
    const { keyRef } = await hsm.generateAesKey({ bits: 256, label: 'k' });
    const iv = new Uint8Array(16).fill(1);
    const plain = new Uint8Array(randomBytes(2500)); // 3 APDUs each way
    const ct = await hsm.aesEncrypt(keyRef, plain, { iv });
    const state = card.serialize();
    for (const op of ['encrypt', 'decrypt'] as const) {
      for (const combo of FAULT_COMBOS) {
        for (let at = 1; at <= 3; at++) {
          await hsm.keyInfo(keyRef); // cached: the operation's APDUs are the CIPHERs only
          ft.arm({ at, ...combo });
          const p =
            op === 'encrypt' ? hsm.aesEncrypt(keyRef, plain, { iv }) : hsm.aesDecrypt(keyRef, ct, { iv });
          const e = await rejection(p);
          expect(e.code, `${op} ${combo.kind} ${combo.delivered} @${at}`).toMatch(
            /^(CARD_REMOVED|CARD_RESET|TRANSPORT_ERROR|MALFORMED_RESPONSE)$/,
          );
          expect(card.serialize()).toBe(state);
          ft.arm(undefined);
          if (combo.kind === 'card-removed' || combo.kind === 'card-reset') {
            hsm = await SmartCardHsm.open(ft);
            await hsm.verifyPin(PIN);
          }
        }
      }
    }
    expect(toHex(await hsm.aesDecrypt(keyRef, ct, { iv }))).toBe(toHex(plain));
  });
});

describe('virtual card CIPHER 80 78 status words (spec §3.15, §3.21)', () => {
  it('answers like the firmware for lengths, algorithms and key types', async () => {
    const card = readyCard();
    ok(card, '00 48 01 B2 06 91 04 10 11 18 99');
    const block = '00'.repeat(16);
    expect(ok(card, ext('80 78 01 10', block))).toHaveLength(16);
    expect(tx(card, ext('80 78 01 10', '00'.repeat(15))).sw).toBe('6A80');
    expect(tx(card, ext('80 78 01 11', '00'.repeat(17))).sw).toBe('6A80');
    expect(tx(card, '80 78 01 10 00 00 00').sw).toBe('6A80');
    expect(tx(card, ext('80 78 01 10', '00'.repeat(1232))).sw).toBe('6700');
    expect(ok(card, ext('80 78 01 10', '00'.repeat(1216)))).toHaveLength(1216);
    expect(tx(card, ext('80 78 01 20', block)).sw).toBe('6A81');
    expect(tx(card, ext('80 78 02 10', block)).sw).toBe('6A88');
    expect(ok(card, '80 78 01 18 00 00 10')).toHaveLength(16);
    // an EC key: AES algorithms are not for it
    const hsm = await SmartCardHsm.open(card);
    await hsm.verifyPin(PIN);
    const ec = await hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'ec' });
    expect(tx(card, ext(`80 78 0${ec.keyRef} 10`, block)).sw).toBe('6A81');
    // after a SELECT the PIN is gone
    ok(card, '00 A4 04 00 0B E8 2B 06 01 04 01 81 C3 1F 02 01 00');
    expect(tx(card, ext('80 78 01 10', block)).sw).toBe('6982');
  });
});

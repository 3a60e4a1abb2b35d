/**
 * Device AES keys through `ScHsmCrypto`: `AES-CBC` encrypt / decrypt on the card (CIPHER 10/11,
 * spec §3.15) checked against node's WebCrypto with the same key, host AES-CBC keys unchanged,
 * CMAC as a library call, keyStorage's `secret-<ID>` items, and the refusals.
 */
import { createCipheriv, randomBytes, webcrypto } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { ScHsmError } from '../src/errors.js';
import type { SmartCardHsm } from '../src/sc-hsm/session.js';
import { SmartCardHsm as Session } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { toHex } from '../src/util/bytes.js';
import { HsmSecretKey, ScHsmCrypto } from '../src/webcrypto/index.js';

let card: VirtualSmartCardHsm;
let hsm: SmartCardHsm;
let crypto: ScHsmCrypto;
let aesRef = 0;
let aesId = '';
let ecRef = 0;
let raw: Uint8Array;

beforeAll(async () => {
  card = new VirtualSmartCardHsm();
  hsm = await Session.open(card);
  await hsm.initialize({ soPin: '3537363231383830', userPin: '648219' });
  await hsm.verifyPin('648219');
  crypto = new ScHsmCrypto(hsm);
  const a = await hsm.generateAesKey({ bits: 256, label: 'vault-key' });
  aesRef = a.keyRef;
  aesId = toHex(a.id);
  ecRef = (await hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'ec' })).keyRef;
  raw = new Uint8Array(Buffer.from(JSON.parse(card.serialize()).keys[String(aesRef)].secret, 'hex'));
});

async function nodeKey() {
  return webcrypto.subtle.importKey('raw', raw, 'AES-CBC', false, ['encrypt', 'decrypt']);
}

async function failure(p: Promise<unknown>): Promise<ScHsmError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ScHsmError);
  return e as ScHsmError;
}

describe('AES-CBC with a device key through ScHsmCrypto', () => {
  it('getSecretKey gives a non-extractable AES-CBC secret key, by reference, label or ID', async () => {
    const k = await crypto.getSecretKey({ keyRef: aesRef });
    expect(k).toBeInstanceOf(HsmSecretKey);
    expect(k.type).toBe('secret');
    expect(k.extractable).toBe(false);
    expect(k.algorithm).toEqual({ name: 'AES-CBC', length: 256 });
    expect(k.usages).toEqual(['encrypt', 'decrypt']);
    expect((await crypto.getSecretKey({ label: 'vault-key' })).keyRef).toBe(aesRef);
    expect((await crypto.getSecretKey({ id: aesId })).keyRef).toBe(aesRef);
  });

  it("encrypts and decrypts on the card exactly as node's WebCrypto does with the same key", async () => {
    const k = await crypto.getSecretKey({ keyRef: aesRef });
    const nk = await nodeKey();
    for (const len of [0, 1, 16, 31, 1500]) {
      const iv = new Uint8Array(randomBytes(16));
      const data = new Uint8Array(randomBytes(len));
      const ct = await crypto.subtle.encrypt({ name: 'AES-CBC', iv }, k, data);
      const expected = await webcrypto.subtle.encrypt({ name: 'AES-CBC', iv }, nk, data);
      expect(toHex(new Uint8Array(ct))).toBe(toHex(new Uint8Array(expected)));
      expect(toHex(new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-CBC', iv }, k, expected)))).toBe(
        toHex(data),
      );
    }
  });

  it('host AES-CBC keys still run in node', async () => {
    const hk = await crypto.subtle.generateKey({ name: 'AES-CBC', length: 128 }, true, [
      'encrypt',
      'decrypt',
    ]);
    const iv = new Uint8Array(16);
    const ct = await crypto.subtle.encrypt({ name: 'AES-CBC', iv }, hk as never, Uint8Array.of(1, 2, 3));
    expect(new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-CBC', iv }, hk as never, ct))).toEqual(
      Uint8Array.of(1, 2, 3),
    );
    expect(new Uint8Array((await crypto.subtle.exportKey('raw', hk as never)) as ArrayBuffer)).toHaveLength(
      16,
    );
  });

  it('CMAC is a library call, equal to AES-CMAC from node AES-ECB', async () => {
    const k = await crypto.getSecretKey({ keyRef: aesRef });
    const msg = new Uint8Array(randomBytes(16));
    const ecb = (b: Uint8Array) => createCipheriv('aes-256-ecb', raw, null).setAutoPadding(false).update(b);
    const l = ecb(new Uint8Array(16));
    const k1 = Buffer.alloc(16);
    for (let i = 0; i < 16; i++) k1[i] = ((l[i]! << 1) | (i < 15 ? l[i + 1]! >> 7 : 0)) & 0xff;
    if (l[0]! & 0x80) k1[15]! ^= 0x87;
    expect(toHex(new Uint8Array(await crypto.cmac(k, msg)))).toBe(toHex(ecb(msg.map((b, i) => b ^ k1[i]!))));
    expect((await failure(crypto.cmac({} as never, msg))).code).toBe('INVALID_ARGUMENT');
  });

  it('keyStorage lists AES keys as secret-<ID> and gives them back', async () => {
    const keys = await crypto.keyStorage.keys();
    expect(keys).toContain(`secret-${aesId}`);
    const k = await crypto.keyStorage.getItem(`secret-${aesId}`);
    expect(k).toBeInstanceOf(HsmSecretKey);
    expect(await crypto.keyStorage.indexOf(k as never)).toBe(`secret-${aesId}`);
  });
});

describe('AES-CBC: refusals', () => {
  it('the key is never exported; an EC key is no secret key; an AES key is no key pair', async () => {
    const k = await crypto.getSecretKey({ keyRef: aesRef });
    const e = await failure(crypto.subtle.exportKey('raw', k));
    expect(e.name).toBe('InvalidAccessError');
    expect(e.message).toMatch(/never leaves/);
    expect((await failure(crypto.getSecretKey({ keyRef: ecRef }))).message).toMatch(/EC key, not AES/);
    const pair = await failure(crypto.getKeyPair({ keyRef: aesRef }));
    expect(pair.code).toBe('INVALID_ARGUMENT');
    expect(pair.message).toContain(`crypto.getSecretKey({ keyRef: ${aesRef} })`);
  });

  it('a device EC key given to AES-CBC is refused before the card', async () => {
    const { privateKey } = await crypto.getKeyPair({ keyRef: ecRef });
    const before = hsm.apduCount;
    const e = await failure(
      crypto.subtle.encrypt({ name: 'AES-CBC', iv: new Uint8Array(16) }, privateKey, new Uint8Array(1)),
    );
    expect(e.name).toBe('InvalidAccessError');
    expect(hsm.apduCount).toBe(before);
  });

  it('a bad IV or ciphertext shape is an OperationError before the card; garbage decrypts to OperationError', async () => {
    const k = await crypto.getSecretKey({ keyRef: aesRef });
    await hsm.keyInfo(aesRef);
    const before = hsm.apduCount;
    for (const iv of [new Uint8Array(8), new Uint8Array(17)]) {
      const e = await failure(crypto.subtle.encrypt({ name: 'AES-CBC', iv }, k, new Uint8Array(1)));
      expect(e.name).toBe('OperationError');
    }
    const shape = await failure(
      crypto.subtle.decrypt({ name: 'AES-CBC', iv: new Uint8Array(16) }, k, new Uint8Array(20)),
    );
    expect(shape.name).toBe('OperationError');
    expect(hsm.apduCount).toBe(before);
    // a block whose decryption ends in 00: never valid PKCS#7
    const c = createCipheriv('aes-256-cbc', raw, new Uint8Array(16)).setAutoPadding(false);
    const bad = Buffer.concat([c.update(new Uint8Array(16)), c.final()]);
    const g = await failure(crypto.subtle.decrypt({ name: 'AES-CBC', iv: new Uint8Array(16) }, k, bad));
    expect(g.name).toBe('OperationError');
    expect(g.code).toBe('INCORRECT_DATA');
  });
});

/**
 * `crypto.keyStorage` (issue #11): the device's key pairs as webcrypto-core's CryptoKeyStorage,
 * as node-webcrypto-p11 offers a PKCS#11 token's: list, get (with an algorithm), index of, remove.
 */
import { webcrypto } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../src/util/bytes.js';
import { HsmPrivateKey, HsmPublicKey, ScHsmCrypto } from '../src/webcrypto/index.js';
import { initializedHsm } from './helpers/fixtures.js';

let crypto: ScHsmCrypto;
let ecId = '';
let rsaId = '';

beforeAll(async () => {
  const hsm = await initializedHsm();
  crypto = new ScHsmCrypto(hsm);
  ecId = toHex((await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'ec' })).id);
  rsaId = toHex((await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'rsa' })).id);
});

describe('keyStorage', () => {
  it('lists both halves of each device key pair by PKCS#15 ID', async () => {
    expect((await crypto.keyStorage.keys()).sort()).toEqual(
      [`private-${ecId}`, `public-${ecId}`, `private-${rsaId}`, `public-${rsaId}`].sort(),
    );
  });

  it('getItem gives keys that sign and verify; indexOf and hasItem find them', async () => {
    const priv = await crypto.keyStorage.getItem(`private-${ecId}`);
    const pub = await crypto.keyStorage.getItem(`public-${ecId}`);
    expect(priv).toBeInstanceOf(HsmPrivateKey);
    expect(pub).toBeInstanceOf(HsmPublicKey);
    const data = new Uint8Array([1, 2, 3]);
    const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, priv as never, data);
    expect(await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, pub as never, sig, data)).toBe(
      true,
    );
    expect(await crypto.keyStorage.indexOf(priv)).toBe(`private-${ecId}`);
    expect(await crypto.keyStorage.hasItem(pub)).toBe(true);
    expect(await crypto.keyStorage.setItem(priv)).toBe(`private-${ecId}`);
    const pss = await crypto.keyStorage.getItem(
      `private-${rsaId}`,
      { name: 'RSA-PSS', hash: 'SHA-256' } as never,
      false,
      ['sign'],
    );
    expect(pss.algorithm.name).toBe('RSA-PSS');
  });

  it('a host key is not stored (NotSupportedError), clear() is refused, a bad index is a DataError', async () => {
    const host = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    expect(await crypto.keyStorage.indexOf(host.privateKey as never)).toBeNull();
    await expect(crypto.keyStorage.setItem(host.privateKey as never)).rejects.toMatchObject({
      name: 'NotSupportedError',
    });
    await expect(crypto.keyStorage.clear()).rejects.toMatchObject({ name: 'NotSupportedError' });
    await expect(crypto.keyStorage.getItem('shared-00')).rejects.toMatchObject({ name: 'DataError' });
    // secret-<ID> names an AES key (webcrypto-aes.test.ts); none has ID 00
    await expect(crypto.keyStorage.getItem('secret-00')).rejects.toMatchObject({ code: 'KEY_NOT_FOUND' });
  });

  it('removeItem deletes the key pair from the device', async () => {
    await crypto.keyStorage.removeItem(`public-${rsaId}`);
    expect(await crypto.keyStorage.keys()).toEqual([`private-${ecId}`, `public-${ecId}`]);
    await expect(crypto.keyStorage.getItem(`private-${rsaId}`)).rejects.toMatchObject({
      code: 'KEY_NOT_FOUND',
    });
  });
});

/**
 * The WebCrypto provider's errors carry the Web Cryptography API's names (issue #11), so code
 * that checks `e.name` as it would with a browser's or node-webcrypto-p11's subtle ports; they stay
 * ScHsmErrors with their code. A key got for the wrong algorithm names the getKeyPair call that works.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { isScHsmError } from '../src/errors.js';
import type { SmartCardHsm } from '../src/sc-hsm/session.js';
import { ScHsmCrypto } from '../src/webcrypto/index.js';
import { initializedHsm, rejection } from './helpers/fixtures.js';

const DATA = new TextEncoder().encode('data');
let hsm: SmartCardHsm;
let crypto: ScHsmCrypto;
let rsaRef = 0;

beforeAll(async () => {
  hsm = await initializedHsm();
  crypto = new ScHsmCrypto(hsm);
  rsaRef = (await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'rsa' })).keyRef;
});

describe('WebCrypto error names', () => {
  it('a key of another algorithm: InvalidAccessError, and the hint is a call that works', async () => {
    const v15 = await crypto.getKeyPair({ keyRef: rsaRef });
    const e = await rejection(crypto.subtle.sign({ name: 'RSA-PSS', saltLength: 32 }, v15.privateKey, DATA));
    expect(e.name).toBe('InvalidAccessError');
    expect(isScHsmError(e, 'INVALID_ARGUMENT')).toBe(true);
    const call = /getKeyPair\((.*)\)$/.exec(e.message)?.[1];
    expect(call).toBe(`{ keyRef: ${rsaRef} }, { algorithm: { name: 'RSA-PSS', hash: 'SHA-256' } }`);
    // the hint, evaluated, is what works
    const args = new Function(`return [${call}]`)() as Parameters<ScHsmCrypto['getKeyPair']>;
    const pss = await crypto.getKeyPair(...args);
    const sig = await crypto.subtle.sign({ name: 'RSA-PSS', saltLength: 32 }, pss.privateKey, DATA);
    expect(await crypto.subtle.verify({ name: 'RSA-PSS', saltLength: 32 }, pss.publicKey, sig, DATA)).toBe(
      true,
    );
  });

  it('an EC key used for an RSA algorithm: no getKeyPair hint that cannot work, the key family instead', async () => {
    const ec = await hsm.generateKeyPair({ type: 'ec', curve: 'brainpoolP384r1', label: 'ec' });
    const pair = await crypto.getKeyPair({ keyRef: ec.keyRef });
    const e = await rejection(crypto.subtle.sign({ name: 'RSASSA-PKCS1-v1_5' }, pair.privateKey, DATA));
    expect(e.name).toBe('InvalidAccessError');
    expect(e.message).toMatch(/it is an EC key \(use ECDSA or ECDH\)$/);
    expect(e.message).not.toContain('getKeyPair');
  });

  it('a device key given to an algorithm that runs on the host: InvalidAccessError', async () => {
    const { publicKey } = await crypto.getKeyPair({ keyRef: rsaRef });
    const e = await rejection(
      crypto.subtle.encrypt({ name: 'AES-GCM', iv: new Uint8Array(12) }, publicKey, DATA),
    );
    expect(e.name).toBe('InvalidAccessError');
    expect(e.code).toBe('INVALID_ARGUMENT');
  });

  it('a salt length the card cannot do: NotSupportedError', async () => {
    const pss = await crypto.getKeyPair(
      { keyRef: rsaRef },
      { algorithm: { name: 'RSA-PSS', hash: 'SHA-256' } },
    );
    const e = await rejection(crypto.subtle.sign({ name: 'RSA-PSS', saltLength: 20 }, pss.privateKey, DATA));
    expect(e.name).toBe('NotSupportedError');
    expect(e.code).toBe('INVALID_ARGUMENT');
  });

  it('exporting a device private key: InvalidAccessError', async () => {
    const { privateKey } = await crypto.getKeyPair({ keyRef: rsaRef });
    const e = await rejection(crypto.subtle.exportKey('pkcs8', privateKey));
    expect(e.name).toBe('InvalidAccessError');
  });
});

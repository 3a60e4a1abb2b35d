/**
 * `crypto.certStorage` (issue #11): the device's X.509 certificates as webcrypto-core's
 * CryptoCertificateStorage, as node-webcrypto-p11 offers a PKCS#11 token's: importCert, setItem
 * beside the key whose public key it carries, keys, getItem, indexOf/hasItem, exportCert (DER and
 * PEM), removeItem (CA certificates), against the in-process virtual card.
 */
import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SmartCardHsm } from '../src/sc-hsm/session.js';
import { bytesEqual, toHex } from '../src/util/bytes.js';
import { HsmX509Certificate, ScHsmCrypto } from '../src/webcrypto/index.js';
import { selfSignCertificate } from '../src/x509/index.js';
import { initializedHsm } from './helpers/fixtures.js';

let hsm: SmartCardHsm;
let crypto: ScHsmCrypto;
let ecRef = 0;
let ecId = '';
let ecPem = '';
let ecDer: Uint8Array;

beforeAll(async () => {
  hsm = await initializedHsm();
  crypto = new ScHsmCrypto(hsm);
  const g = await hsm.generateKeyPair({ type: 'ec', curve: 'brainpoolP256r1', label: 'ec' });
  ecRef = g.keyRef;
  ecId = toHex(g.id);
  const cert = await selfSignCertificate(hsm, { keyRef: ecRef, subject: 'CN=Cert Storage Test', days: 30 });
  ecPem = cert.pem;
  ecDer = cert.der;
});

describe('certStorage', () => {
  it('imports a certificate for a device key, lists it, gets it back and exports DER and PEM', async () => {
    expect(await crypto.certStorage.keys()).toEqual([]);
    const parsed = await crypto.certStorage.importCert('pem', ecPem, undefined, undefined);
    expect(parsed).toBeInstanceOf(HsmX509Certificate);
    expect(parsed.subjectName).toBe('CN=Cert Storage Test');
    expect(parsed.publicKey.algorithm).toEqual({ name: 'ECDSA', namedCurve: 'brainpoolP256r1' });
    expect(await crypto.certStorage.hasItem(parsed)).toBe(false);

    const index = await crypto.certStorage.setItem(parsed);
    expect(index).toBe(`x509-${ecId}`);
    expect(await crypto.certStorage.keys()).toEqual([index]);
    expect(await crypto.certStorage.indexOf(parsed)).toBe(index);
    expect(await crypto.certStorage.setItem(parsed)).toBe(index);
    // stored as OpenSC stores it: CExx, and the key's description names the subject
    expect((await hsm.keyInfo(ecRef)).hasCertificate).toBe(true);
    expect((await hsm.keyInfo(ecRef)).description?.subjectName).toBeDefined();

    const got = await crypto.certStorage.getItem(index);
    expect(got.index).toBe(index);
    expect(got.keyRef).toBe(ecRef);
    expect(got.label).toBe('ec');
    expect(got.issuerName).toBe('CN=Cert Storage Test');
    expect(got.notAfter.getTime()).toBeGreaterThan(got.notBefore.getTime());
    const raw = await crypto.certStorage.exportCert('raw', got);
    expect(raw).toBeInstanceOf(ArrayBuffer);
    expect(bytesEqual(new Uint8Array(raw), ecDer)).toBe(true);
    const pem = await crypto.certStorage.exportCert('pem', got);
    expect(new X509Certificate(pem).subject).toBe('CN=Cert Storage Test');

    // the certificate's public key verifies what the device key signs
    const pair = await crypto.getKeyPair({ keyRef: ecRef });
    const data = new Uint8Array([1, 2, 3]);
    const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, pair.privateKey, data);
    expect(await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, got.publicKey, sig, data)).toBe(
      true,
    );
    // the key's SPKI is a BufferSource as it is (KeyInfo.publicKey: Uint8Array<ArrayBuffer>)
    const spki = (await hsm.keyInfo(ecRef)).publicKey!;
    const imported = await crypto.subtle.importKey('spki', spki, got.publicKey.algorithm as never, true, [
      'verify',
    ]);
    expect(imported.type).toBe('public');

    // a key's certificate holds its only public key on the device: not removed
    await expect(crypto.certStorage.removeItem(index)).rejects.toMatchObject({
      name: 'NotSupportedError',
      code: 'NOT_SUPPORTED',
    });
    expect(await crypto.certStorage.keys()).toEqual([index]);
  });

  it('a certificate whose public key matches no device key is refused (NotFoundError)', async () => {
    const other = await initializedHsm();
    const g = await other.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'elsewhere' });
    const foreign = await selfSignCertificate(other, { keyRef: g.keyRef, subject: 'CN=Elsewhere', days: 1 });
    const parsed = await crypto.certStorage.importCert('raw', foreign.der, undefined, undefined);
    await expect(crypto.certStorage.setItem(parsed)).rejects.toMatchObject({
      name: 'NotFoundError',
      code: 'KEY_NOT_FOUND',
    });
    expect(await crypto.certStorage.keys()).toEqual([`x509-${ecId}`]);
  });

  it('lists, gets and removes CA certificates (CAxx with C8xx)', async () => {
    const other = await initializedHsm();
    const g = await other.generateKeyPair({ type: 'rsa', bits: 1024, label: 'root' });
    const root = await selfSignCertificate(other, { keyRef: g.keyRef, subject: 'CN=Some Root', days: 1 });
    const { number } = await hsm.storeCaCertificate(root.der, { label: 'Some Root', id: Uint8Array.of(9) });
    const index = `ca-${number.toString(16).padStart(2, '0')}`;
    expect((await crypto.certStorage.keys()).sort()).toEqual([index, `x509-${ecId}`].sort());
    const ca = await crypto.certStorage.getItem(index, { name: 'RSA-PSS', hash: 'SHA-256' } as never, [
      'verify',
    ]);
    expect(ca.keyRef).toBeUndefined();
    expect(ca.label).toBe('Some Root');
    expect(ca.publicKey.algorithm.name).toBe('RSA-PSS');
    expect(await crypto.certStorage.hasItem(ca)).toBe(true);
    await crypto.certStorage.removeItem(index);
    expect(await crypto.certStorage.keys()).toEqual([`x509-${ecId}`]);
    expect(await hsm.listCaCertificates()).toEqual([]);
  });

  it('refuses what is not a certificate, a request, an unknown index, clear()', async () => {
    await expect(
      crypto.certStorage.importCert('raw', new Uint8Array([0x30, 3, 1, 2, 3]), undefined, undefined),
    ).rejects.toMatchObject({ name: 'DataError', code: 'MALFORMED_DATA' });
    await expect(
      crypto.certStorage.importCert(
        'pem',
        '-----BEGIN CERTIFICATE REQUEST-----\nMA==\n-----END CERTIFICATE REQUEST-----\n',
        undefined,
        undefined,
      ),
    ).rejects.toMatchObject({ name: 'NotSupportedError' });
    await expect(crypto.certStorage.getItem('x509-ffff')).rejects.toMatchObject({ name: 'NotFoundError' });
    await expect(crypto.certStorage.clear()).rejects.toMatchObject({ name: 'NotSupportedError' });
    expect(await crypto.certStorage.keys()).toEqual([`x509-${ecId}`]);
  });
});

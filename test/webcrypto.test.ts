/**
 * The WebCrypto provider against the in-process virtual card: signatures made through
 * `subtle.sign` with device keys are checked by node and by `openssl dgst -verify` (every curve,
 * RSA 1024/2048/3072, PKCS#1 v1.5 and PSS), RSA-OAEP decryption and ECDH on the card, key lookup,
 * and the typed errors for wrong use.
 */
import {
  constants,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  publicEncrypt,
  randomBytes,
  verify,
  webcrypto,
} from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { isScHsmError } from '../src/errors.js';
import { ecdsaPlainToDer } from '../src/pkcs15/index.js';
import type { SmartCardHsm } from '../src/sc-hsm/session.js';
import { CURVES } from '../src/util/curves.js';
import { HsmPrivateKey, type HsmPublicKey, ScHsmCrypto, webCurveName } from '../src/webcrypto/index.js';
import { initializedHsm } from './helpers/fixtures.js';
import { ok, openssl } from './helpers/opensc.js';

type EcKeyGenParams = webcrypto.EcKeyGenParams;
type RsaHashedKeyGenParams = webcrypto.RsaHashedKeyGenParams;
type JsonWebKey = webcrypto.JsonWebKey;
type CryptoKey = webcrypto.CryptoKey;

const DATA = new TextEncoder().encode('The quick brown fox jumps over the lazy dog');

let dir: string;
let hsm: SmartCardHsm;
let crypto: ScHsmCrypto;

/** Writes the SPKI as PEM and the signature, then asks openssl to verify (exit 0 + "Verified OK"). */
async function opensslVerify(
  name: string,
  spki: ArrayBuffer,
  signature: Uint8Array,
  opts: string[] = [],
  digest = '-sha256',
): Promise<void> {
  const pub = join(dir, `${name}.pub.pem`);
  const sig = join(dir, `${name}.sig`);
  const msg = join(dir, `${name}.msg`);
  writeFileSync(
    pub,
    createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }).export({
      type: 'spki',
      format: 'pem',
    }),
  );
  writeFileSync(sig, signature);
  writeFileSync(msg, DATA);
  const r = ok(await openssl(['dgst', digest, '-verify', pub, '-signature', sig, ...opts, msg]));
  expect(r.stdout).toContain('Verified OK');
}

function expectCode(e: unknown, code: string): void {
  expect(isScHsmError(e), String(e)).toBe(true);
  expect((e as { code: string }).code).toBe(code);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sc-hsm-ts-webcrypto-'));
  hsm = await initializedHsm();
  crypto = new ScHsmCrypto(hsm);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('ECDSA with device keys on every curve', () => {
  for (const curve of CURVES) {
    it(`${curve.name}: subtle.sign gives r‖s that node, subtle.verify and openssl accept`, async () => {
      const pair = (await crypto.subtle.generateKey(
        { name: 'ECDSA', namedCurve: webCurveName(curve.name), label: `ec-${curve.name}` } as EcKeyGenParams,
        false,
        ['sign', 'verify'],
      )) as unknown as { privateKey: HsmPrivateKey; publicKey: HsmPublicKey };
      expect(pair.privateKey).toBeInstanceOf(HsmPrivateKey);
      expect(pair.privateKey.extractable).toBe(false);
      expect(pair.privateKey.usages).toEqual(['sign']);
      expect(pair.publicKey.usages).toEqual(['verify']);
      const size = Math.ceil(curve.bits / 8);
      const sig = new Uint8Array(
        await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, pair.privateKey, DATA),
      );
      expect(sig.length).toBe(2 * size);
      expect(await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, pair.publicKey, sig, DATA)).toBe(
        true,
      );
      const tampered = sig.slice();
      tampered[3]! ^= 1;
      expect(
        await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, pair.publicKey, tampered, DATA),
      ).toBe(false);
      const spki = (await crypto.subtle.exportKey('spki', pair.publicKey)) as ArrayBuffer;
      const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
      expect(key.asymmetricKeyDetails?.namedCurve).toBe(curve.name);
      expect(verify('sha256', DATA, { key, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
      await opensslVerify(`ec-${curve.name}`, spki, ecdsaPlainToDer(sig));
      // the key is listed from the device again by its label
      const again = await crypto.getKeyPair({ label: `ec-${curve.name}` });
      expect(again.keyRef).toBe(pair.privateKey.keyRef);
      expect(again.privateKey.algorithm).toEqual({ name: 'ECDSA', namedCurve: webCurveName(curve.name) });
    });
  }

  it('signs with SHA-384 and SHA-512 too (openssl -sha384 / -sha512)', async () => {
    const g = await hsm.generateKeyPair({ type: 'ec', curve: 'secp384r1', label: 'ec-hashes' });
    const { privateKey, publicKey } = await crypto.getKeyPair({ keyRef: g.keyRef });
    const spki = (await crypto.subtle.exportKey('spki', publicKey)) as ArrayBuffer;
    for (const [hash, flag] of [
      ['SHA-384', '-sha384'],
      ['SHA-512', '-sha512'],
    ] as const) {
      const sig = new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash }, privateKey, DATA));
      await opensslVerify(`ec-hash-${hash}`, spki, ecdsaPlainToDer(sig), [], flag);
    }
  });
});

describe('RSA with device keys', () => {
  const pkcs1 = (bits: number) =>
    it(`RSA-${bits}: RSASSA-PKCS1-v1_5 and RSA-PSS signatures verify with openssl`, async () => {
      const g = await hsm.generateKeyPair({ type: 'rsa', bits, label: `rsa-${bits}` });
      const v15 = await crypto.getKeyPair({ keyRef: g.keyRef });
      expect(v15.privateKey.algorithm.name).toBe('RSASSA-PKCS1-v1_5');
      expect((v15.privateKey.algorithm as unknown as { modulusLength: number }).modulusLength).toBe(bits);
      const sig = new Uint8Array(await crypto.subtle.sign('RSASSA-PKCS1-v1_5', v15.privateKey, DATA));
      expect(sig.length).toBe(bits / 8);
      expect(await crypto.subtle.verify('RSASSA-PKCS1-v1_5', v15.publicKey, sig, DATA)).toBe(true);
      const spki = (await crypto.subtle.exportKey('spki', v15.publicKey)) as ArrayBuffer;
      await opensslVerify(`rsa-${bits}-v15`, spki, sig);

      const pss = await crypto.getKeyPair(
        { keyRef: g.keyRef },
        { algorithm: { name: 'RSA-PSS', hash: 'SHA-256' } },
      );
      const psig = new Uint8Array(
        await crypto.subtle.sign({ name: 'RSA-PSS', saltLength: 32 }, pss.privateKey, DATA),
      );
      expect(await crypto.subtle.verify({ name: 'RSA-PSS', saltLength: 32 }, pss.publicKey, psig, DATA)).toBe(
        true,
      );
      const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
      expect(
        verify('sha256', DATA, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, psig),
      ).toBe(true);
      await opensslVerify(`rsa-${bits}-pss`, spki, psig, [
        '-sigopt',
        'rsa_padding_mode:pss',
        '-sigopt',
        'rsa_pss_saltlen:32',
      ]);
    });
  pkcs1(1024);
  pkcs1(2048);
  it('RSA-3072: generated through subtle.generateKey, signs, openssl verifies', {
    timeout: 120_000,
  }, async () => {
    const pair = (await crypto.subtle.generateKey(
      {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: 3072,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-384',
        label: 'rsa-3072',
      } as RsaHashedKeyGenParams,
      false,
      ['sign', 'verify'],
    )) as unknown as { privateKey: HsmPrivateKey; publicKey: HsmPublicKey };
    expect(pair.privateKey.label).toBe('rsa-3072');
    const sig = new Uint8Array(await crypto.subtle.sign('RSASSA-PKCS1-v1_5', pair.privateKey, DATA));
    expect(sig.length).toBe(384);
    const spki = (await crypto.subtle.exportKey('spki', pair.publicKey)) as ArrayBuffer;
    await opensslVerify('rsa-3072', spki, sig, [], '-sha384');
  });

  it('RSA-PSS with another salt length than the hash length is refused with a clear error', async () => {
    const g = await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'rsa-pss-salt' });
    const { privateKey } = await crypto.getKeyPair({ keyRef: g.keyRef }, { algorithm: 'RSA-PSS' });
    const e = await crypto.subtle.sign({ name: 'RSA-PSS', saltLength: 0 }, privateKey, DATA).catch((x) => x);
    expectCode(e, 'INVALID_ARGUMENT');
    expect((e as Error).message).toMatch(/salt length = hash length.*saltLength 32/);
  });

  it('RSA-OAEP decrypts on the card (SHA-1, SHA-256, SHA-512, with a label)', async () => {
    const g = await hsm.generateKeyPair({ type: 'rsa', bits: 2048, label: 'rsa-oaep' });
    for (const hash of ['SHA-1', 'SHA-256', 'SHA-512'] as const) {
      const { privateKey, publicKey } = await crypto.getKeyPair(
        { keyRef: g.keyRef },
        { algorithm: { name: 'RSA-OAEP', hash } },
      );
      expect(privateKey.usages).toEqual(['decrypt', 'unwrapKey']);
      const secret = randomBytes(32);
      const spki = (await crypto.subtle.exportKey('spki', publicKey)) as ArrayBuffer;
      const oaepHash = hash.replace('-', '').toLowerCase();
      const ct = publicEncrypt(
        {
          key: createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }),
          padding: constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash,
        },
        secret,
      );
      expect(Buffer.from(await crypto.subtle.decrypt({ name: 'RSA-OAEP' }, privateKey, ct))).toEqual(secret);
      // encrypt in software through the same subtle, with a label
      const label = new TextEncoder().encode('label');
      const ct2 = await crypto.subtle.encrypt({ name: 'RSA-OAEP', label }, publicKey, secret);
      expect(Buffer.from(await crypto.subtle.decrypt({ name: 'RSA-OAEP', label }, privateKey, ct2))).toEqual(
        secret,
      );
      const wrongLabel = await crypto.subtle.decrypt({ name: 'RSA-OAEP' }, privateKey, ct2).catch((x) => x);
      expectCode(wrongLabel, 'INCORRECT_DATA');
    }
  });
});

describe('ECDH with device keys', () => {
  for (const curve of ['prime256v1', 'brainpoolP256r1', 'secp521r1', 'secp256k1'] as const) {
    it(`${curve}: deriveBits on the card equals the peer's software secret`, async () => {
      const g = await hsm.generateKeyPair({ type: 'ec', curve, label: `ecdh-${curve}` });
      const { privateKey, publicKey } = await crypto.getKeyPair({ keyRef: g.keyRef }, { algorithm: 'ECDH' });
      expect(privateKey.usages).toEqual(['deriveBits', 'deriveKey']);
      const peer = generateKeyPairSync('ec', { namedCurve: curve });
      const peerPub = await crypto.subtle.importKey(
        'spki',
        peer.publicKey.export({ type: 'spki', format: 'der' }),
        { name: 'ECDH', namedCurve: webCurveName(curve) },
        true,
        [],
      );
      const bits = new Uint8Array(
        await crypto.subtle.deriveBits({ name: 'ECDH', public: peerPub }, privateKey, null as never),
      );
      const ownPoint = new Uint8Array((await crypto.subtle.exportKey('raw', publicKey)) as ArrayBuffer);
      expect(ownPoint[0]).toBe(0x04);
      const ownSpki = (await crypto.subtle.exportKey('spki', publicKey)) as ArrayBuffer;
      const expected = diffieHellman({
        privateKey: peer.privateKey,
        publicKey: createPublicKey({ key: Buffer.from(ownSpki), format: 'der', type: 'spki' }),
      });
      expect(Buffer.from(bits)).toEqual(expected);
      // a software private key on the peer side, through the same subtle
      const peerPriv = await crypto.subtle.importKey(
        'pkcs8',
        peer.privateKey.export({ type: 'pkcs8', format: 'der' }),
        { name: 'ECDH', namedCurve: webCurveName(curve) },
        false,
        ['deriveBits'],
      );
      const back = await crypto.subtle.deriveBits({ name: 'ECDH', public: publicKey }, peerPriv, 128);
      expect(Buffer.from(back)).toEqual(Buffer.from(bits.subarray(0, 16)));
    });
  }

  it('deriveKey gives an AES-GCM key (node WebCrypto) that encrypts and decrypts', async () => {
    const { privateKey } = await crypto.getKeyPair({ label: 'ecdh-prime256v1' }, { algorithm: 'ECDH' });
    const peer = await webcrypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, [
      'deriveBits',
    ]);
    const peerPub = await crypto.subtle.importKey(
      'spki',
      await webcrypto.subtle.exportKey('spki', peer.publicKey),
      { name: 'ECDH', namedCurve: 'P-256' },
      true,
      [],
    );
    const aes = await crypto.subtle.deriveKey(
      { name: 'ECDH', public: peerPub },
      privateKey,
      { name: 'AES-GCM', length: 256 },
      false,
      ['encrypt', 'decrypt'],
    );
    const iv = randomBytes(12);
    const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, aes, DATA);
    expect(new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv }, aes, ct))).toEqual(DATA);
  });
});

describe('keys, lookup and errors', () => {
  let keyRef: number;
  let id: Uint8Array;
  beforeAll(async () => {
    const g = await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'lookup-key' });
    keyRef = g.keyRef;
    id = g.id;
  });

  it('finds a key pair by key reference, label and ID (bytes or hex), with reference, ID and label side by side', async () => {
    for (const q of [{ keyRef }, { label: 'lookup-key' }, { id }, { id: Buffer.from(id).toString('hex') }]) {
      const p = await crypto.getKeyPair(q);
      expect(p.keyRef).toBe(keyRef);
      expect(Buffer.from(p.id)).toEqual(Buffer.from(id));
      expect(p.label).toBe('lookup-key');
      expect(p.privateKey.keyRef).toBe(keyRef);
      expect(p.publicKey.keyRef).toBe(keyRef);
    }
    const all = await crypto.listKeyPairs();
    expect(all.map((k) => k.keyRef)).toContain(keyRef);
    const ecdh = await crypto.listKeyPairs({ algorithm: 'ECDH' });
    expect(ecdh.every((k) => k.info.type === 'ec')).toBe(true);
  });

  it('unknown keys are KEY_NOT_FOUND', async () => {
    expectCode(await crypto.getKeyPair({ keyRef: 200 }).catch((e) => e), 'KEY_NOT_FOUND');
    expectCode(await crypto.getKeyPair({ label: 'no such key' }).catch((e) => e), 'KEY_NOT_FOUND');
    expectCode(await crypto.getKeyPair({ id: 'deadbeef' }).catch((e) => e), 'KEY_NOT_FOUND');
  });

  it('a wrong algorithm for the key is INVALID_ARGUMENT, at lookup and at use', async () => {
    expectCode(
      await crypto.getKeyPair({ keyRef }, { algorithm: 'RSA-PSS' }).catch((e) => e),
      'INVALID_ARGUMENT',
    );
    const { privateKey } = await crypto.getKeyPair({ keyRef });
    const e = await crypto.subtle.sign({ name: 'RSASSA-PKCS1-v1_5' }, privateKey, DATA).catch((x) => x);
    expectCode(e, 'INVALID_ARGUMENT');
    expect((e as Error).message).toMatch(/set up for ECDSA, not RSASSA-PKCS1-v1_5/);
    const ecdh = await crypto.subtle
      .deriveBits({ name: 'ECDH', public: privateKey } as never, privateKey, 256)
      .catch((x) => x);
    expectCode(ecdh, 'INVALID_ARGUMENT');
  });

  it('private keys are not extractable; public keys export as SPKI, raw and JWK (where JWK has the curve)', async () => {
    const { privateKey, publicKey } = await crypto.getKeyPair({ keyRef });
    expect(privateKey.extractable).toBe(false);
    const e = await crypto.subtle.exportKey('pkcs8', privateKey).catch((x) => x);
    expect(e).toBeInstanceOf(Error);
    const e2 = await crypto.subtle.exportKey('jwk', privateKey).catch((x) => x);
    expectCode(e2, 'INVALID_ARGUMENT');
    expect((e2 as Error).message).toMatch(/never leaves the SmartCard-HSM/);
    const jwk = (await crypto.subtle.exportKey('jwk', publicKey)) as JsonWebKey;
    expect(jwk.kty).toBe('EC');
    expect(jwk.crv).toBe('P-256');
    // the JWK imports into node's own WebCrypto and verifies our signature
    const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, DATA);
    const nodeKey = await webcrypto.subtle.importKey(
      'jwk',
      jwk,
      { name: 'ECDSA', namedCurve: 'P-256' },
      false,
      ['verify'],
    );
    expect(await webcrypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, nodeKey, sig, DATA)).toBe(true);
    const bp = await crypto.getKeyPair({ label: 'ec-brainpoolP256r1' });
    expectCode(await crypto.subtle.exportKey('jwk', bp.publicKey).catch((x) => x), 'NOT_SUPPORTED');
    const k1 = await crypto.getKeyPair({ label: 'ec-secp256k1' });
    expect(((await crypto.subtle.exportKey('jwk', k1.publicKey)) as JsonWebKey).crv).toBe('K-256');
  });

  it('generateKey refuses extractable device keys', async () => {
    const e = await crypto.subtle
      .generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])
      .catch((x) => x);
    expectCode(e, 'INVALID_ARGUMENT');
  });

  it('imports brainpool public keys (node WebCrypto cannot) and verifies with them', async () => {
    const kp = generateKeyPairSync('ec', { namedCurve: 'brainpoolP384r1' });
    const sig = new Uint8Array(
      (await import('node:crypto')).sign('sha384', DATA, { key: kp.privateKey, dsaEncoding: 'ieee-p1363' }),
    );
    const pub = await crypto.subtle.importKey(
      'spki',
      kp.publicKey.export({ type: 'spki', format: 'der' }),
      { name: 'ECDSA', namedCurve: 'brainpoolP384r1' },
      true,
      ['verify'],
    );
    expect(await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-384' }, pub, sig, DATA)).toBe(true);
    const wrongCurve = await crypto.subtle
      .importKey(
        'spki',
        kp.publicKey.export({ type: 'spki', format: 'der' }),
        { name: 'ECDSA', namedCurve: 'P-384' },
        true,
        ['verify'],
      )
      .catch((x) => x);
    expectCode(wrongCurve, 'INVALID_ARGUMENT');
  });

  it('digests, HMAC and random values run in software', async () => {
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', DATA));
    expect(Buffer.from(d)).toEqual(Buffer.from(await webcrypto.subtle.digest('SHA-256', DATA)));
    const hmac = await crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
      'verify',
    ]);
    const mac = await crypto.subtle.sign('HMAC', hmac as CryptoKey, DATA);
    expect(await crypto.subtle.verify('HMAC', hmac as CryptoKey, mac, DATA)).toBe(true);
    const r = crypto.getRandomValues(new Uint8Array(32));
    expect(r.some((b) => b !== 0)).toBe(true);
  });

  it('without a verified PIN, signing fails with SECURITY_STATUS', async () => {
    const { privateKey } = await crypto.getKeyPair({ keyRef });
    await hsm.logout();
    try {
      expectCode(
        await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, DATA).catch((x) => x),
        'SECURITY_STATUS',
      );
    } finally {
      await hsm.verifyPin('648219');
    }
  });
});

/**
 * The `CryptoKey`s of the WebCrypto provider. Every key is an instance of webcrypto-core's
 * `CryptoKey` (its `SubtleCrypto` refuses anything else):
 *
 * - {@link HsmPrivateKey}: a private key that lives in the SmartCard-HSM (file `CCxx`). It
 *   carries the key reference (P1 of SIGN / DECIPHER, spec §3.13, §3.14), the PKCS#15 ID and
 *   label; it is never extractable.
 * - {@link SoftwareKey}: an asymmetric key held on the host as a node `KeyObject` (public keys
 *   read from the device, keys imported by the caller). node:crypto handles every curve the
 *   card supports, brainpool and secp k1 included, which node's WebCrypto does not.
 * - {@link HsmPublicKey}: the public half of a device key (from the CV request or certificate in
 *   `CExx`), a `SoftwareKey` that also names the device key.
 * - {@link NativeKey}: any other key (AES, HMAC, HKDF, PBKDF2, Ed25519, X25519), a node WebCrypto
 *   key wrapped so that webcrypto-core accepts it.
 *
 * webcrypto-core itself is loaded when the first key is created (src/webcrypto/core.ts).
 */
import { createPublicKey, type KeyObject, type webcrypto } from 'node:crypto';
import { ScHsmError } from '../errors.js';
import type { SmartCardHsm } from '../sc-hsm/session.js';
import { CURVES, type CurveInfo, type CurveName, curveByName } from '../util/curves.js';
import { tlv } from '../util/tlv.js';
import { lazyBase } from './core.js';

/** webcrypto-core's `CryptoKey`, loaded on first use. */
const CoreCryptoKey = lazyBase((core) => core.CryptoKey);

/** WebCrypto key usage (`sign`, `verify`, `deriveBits`, …). */
export type KeyUsage = webcrypto.KeyUsage;
/** WebCrypto key type. */
export type KeyType = webcrypto.KeyType;
// The WebCrypto dictionaries, from node's types (the project compiles without the DOM library).
export type Algorithm = webcrypto.Algorithm;
export type WebCryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
export type JsonWebKey = webcrypto.JsonWebKey;
export type KeyFormat = webcrypto.KeyFormat;
export type EcKeyGenParams = webcrypto.EcKeyGenParams;
export type EcKeyImportParams = webcrypto.EcKeyImportParams;
export type EcdsaParams = webcrypto.EcdsaParams;
export type EcdhKeyDeriveParams = webcrypto.EcdhKeyDeriveParams;
export type RsaHashedKeyGenParams = webcrypto.RsaHashedKeyGenParams;
export type RsaHashedImportParams = webcrypto.RsaHashedImportParams;
export type RsaPssParams = webcrypto.RsaPssParams;
export type RsaOaepParams = webcrypto.RsaOaepParams;

/** WebCrypto hash names the providers accept. */
export type WebHashName = 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512';

/** The asymmetric algorithms a device key can be used with. */
export type HsmAlgorithmName = 'ECDSA' | 'ECDH' | 'RSASSA-PKCS1-v1_5' | 'RSA-PSS' | 'RSA-OAEP';

/** The WebCrypto usages each half of a key pair may have for an algorithm. */
export interface KeyPairUsages {
  readonly privateKey: readonly KeyUsage[];
  readonly publicKey: readonly KeyUsage[];
}

/** The WebCrypto usages a device key pair gets for an algorithm (and the most an imported key may have). */
export const USAGES: Record<HsmAlgorithmName, KeyPairUsages> = {
  ECDSA: { privateKey: ['sign'], publicKey: ['verify'] },
  ECDH: { privateKey: ['deriveBits', 'deriveKey'], publicKey: [] },
  'RSASSA-PKCS1-v1_5': { privateKey: ['sign'], publicKey: ['verify'] },
  'RSA-PSS': { privateKey: ['sign'], publicKey: ['verify'] },
  'RSA-OAEP': { privateKey: ['decrypt', 'unwrapKey'], publicKey: ['encrypt', 'wrapKey'] },
};

/** Where a key sits on the device: reference (CCxx low byte), PKCS#15 ID and label, side by side. */
export interface HsmKeyHandle {
  /** Key reference: the low byte of `CCxx`, P1 of SIGN / DECIPHER. */
  readonly keyRef: number;
  /** PKCS#15 / PKCS#11 ID (CKA_ID), a different thing from the key reference. */
  readonly id: Uint8Array;
  readonly label?: string;
}

/** Private key in the SmartCard-HSM: usable for sign / decrypt / deriveBits, never exported. */
export class HsmPrivateKey extends CoreCryptoKey implements HsmKeyHandle {
  keyRef = 0;
  id: Uint8Array = new Uint8Array(0);
  label?: string;
  /** Size in bytes of the field (EC) or modulus (RSA): the length of r, s or an RSA block. */
  size = 0;
  /** The open, PIN-verified session the key is used through. */
  declare readonly hsm: SmartCardHsm;

  /** Builds the key object; `algorithm` is the WebCrypto key algorithm (with hash for RSA). */
  static fromHandle(
    hsm: SmartCardHsm,
    handle: HsmKeyHandle,
    algorithm: KeyAlgorithmLike,
    usages: KeyUsage[],
    size: number,
  ): HsmPrivateKey {
    const k = HsmPrivateKey.create(algorithm, 'private', false, usages);
    Object.defineProperty(k, 'hsm', { value: hsm, enumerable: false });
    k.keyRef = handle.keyRef;
    k.id = handle.id.slice();
    if (handle.label !== undefined) k.label = handle.label;
    k.size = size;
    return k;
  }
}

/** An asymmetric key held on the host as a node `KeyObject`. */
export class SoftwareKey extends CoreCryptoKey {
  /** The node key; `undefined` only before {@link SoftwareKey.wrap} sets it. */
  keyObject!: KeyObject;

  static wrap(
    keyObject: KeyObject,
    algorithm: KeyAlgorithmLike,
    extractable: boolean,
    usages: KeyUsage[],
  ): SoftwareKey {
    const k = SoftwareKey.create(algorithm, keyObject.type as KeyType, extractable, usages);
    k.keyObject = keyObject;
    return k;
  }
}

/** The public half of a device key: exportable as SPKI (and JWK where the curve has a JWK name). */
export class HsmPublicKey extends SoftwareKey implements HsmKeyHandle {
  keyRef = 0;
  id: Uint8Array = new Uint8Array(0);
  label?: string;

  static fromSpki(
    handle: HsmKeyHandle,
    spki: Uint8Array,
    algorithm: KeyAlgorithmLike,
    usages: KeyUsage[],
  ): HsmPublicKey {
    const k = HsmPublicKey.create(algorithm, 'public', true, usages);
    k.keyObject = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    k.keyRef = handle.keyRef;
    k.id = handle.id.slice();
    if (handle.label !== undefined) k.label = handle.label;
    return k;
  }
}

/** Any other key: a node WebCrypto key (AES, HMAC, HKDF, PBKDF2, Ed25519, X25519). */
export class NativeKey extends CoreCryptoKey {
  native!: webcrypto.CryptoKey;

  static wrap(native: webcrypto.CryptoKey): NativeKey {
    const k = NativeKey.create(
      native.algorithm as KeyAlgorithmLike,
      native.type as KeyType,
      native.extractable,
      [...native.usages] as KeyUsage[],
    );
    k.native = native;
    return k;
  }
}

/** A WebCrypto key algorithm dictionary (`{ name, namedCurve }`, `{ name, modulusLength, … }`). */
export type KeyAlgorithmLike = { name: string } & Record<string, unknown>;

// ------------------------------------------------------------------------------------------------
// curve names

/** WebCrypto name of a card curve: the JWK name for NIST curves, `K-256` for secp256k1, else OpenSSL's. */
export function webCurveName(curve: CurveName): string {
  const info = curveByName(curve);
  if (info.jwk) return info.jwk;
  if (info.name === 'secp256k1') return 'K-256';
  return info.name;
}

/** The card curve a WebCrypto `namedCurve` names (`P-256`, `K-256`, `brainpoolP256r1`, `prime256v1`, …). */
export function curveFromWebName(namedCurve: unknown): CurveInfo {
  if (typeof namedCurve !== 'string' || namedCurve === '') {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      'namedCurve must be a curve name such as P-256 or brainpoolP256r1',
    );
  }
  if (namedCurve.toUpperCase() === 'K-256') return curveByName('secp256k1');
  return curveByName(namedCurve);
}

/** Every `namedCurve` value the EC providers accept in their canonical spelling. */
export const WEB_CURVE_NAMES: readonly string[] = CURVES.map((c) => webCurveName(c.name));

/** Field length in bytes (66 for P-521). */
export function curveSize(curve: CurveInfo): number {
  return Math.ceil(curve.bits / 8);
}

const EC_PUBLIC_KEY_OID = Uint8Array.of(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01);

/** SubjectPublicKeyInfo of an uncompressed EC point on a named curve. */
export function ecPointToSpki(curve: CurveInfo, point: Uint8Array): Uint8Array {
  if (point.length !== 1 + 2 * curveSize(curve) || point[0] !== 0x04) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `an uncompressed ${curve.name} point is 04‖X‖Y of ${1 + 2 * curveSize(curve)} bytes; got ${point.length}`,
    );
  }
  return tlv(
    0x30,
    tlv(0x30, tlv(0x06, EC_PUBLIC_KEY_OID), tlv(0x06, curve.oidBytes)),
    tlv(0x03, Uint8Array.of(0), point),
  );
}

/** The card curve of an EC `KeyObject` (node names it by its OpenSSL name). */
export function curveOfKeyObject(k: KeyObject): CurveInfo {
  const named = k.asymmetricKeyDetails?.namedCurve;
  if (k.asymmetricKeyType !== 'ec' || !named) {
    throw new ScHsmError('INVALID_ARGUMENT', 'not an EC key on a named curve');
  }
  return curveByName(named);
}

/** `SHA-256` ↔ node's `sha256`; anything else is INVALID_ARGUMENT. */
export function nodeHash(hash: unknown): 'sha1' | 'sha256' | 'sha384' | 'sha512' {
  const name = (typeof hash === 'string' ? hash : (hash as { name?: unknown } | undefined)?.name) ?? '';
  switch (String(name).toUpperCase()) {
    case 'SHA-1':
      return 'sha1';
    case 'SHA-256':
      return 'sha256';
    case 'SHA-384':
      return 'sha384';
    case 'SHA-512':
      return 'sha512';
    default:
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `unsupported hash "${String(name)}"; use SHA-1, SHA-256, SHA-384 or SHA-512`,
      );
  }
}

/** node's `sha256` ↔ WebCrypto's `SHA-256`. */
export function hashName(h: 'sha1' | 'sha256' | 'sha384' | 'sha512'): WebHashName {
  return ({ sha1: 'SHA-1', sha256: 'SHA-256', sha384: 'SHA-384', sha512: 'SHA-512' } as const)[h];
}

/** Bytes of a digest. */
export const HASH_BYTES = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 } as const;

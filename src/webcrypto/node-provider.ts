/**
 * Every algorithm the card has no part in (digests, AES, HMAC, HKDF, PBKDF2, Ed25519, X25519) goes
 * to node's WebCrypto unchanged, one provider per algorithm so that webcrypto-core's `SubtleCrypto`
 * finds it; node's keys are wrapped as {@link NativeKey} because that `SubtleCrypto` accepts only
 * webcrypto-core `CryptoKey`s.
 */
import { webcrypto } from 'node:crypto';
import { ScHsmError } from '../errors.js';
import { lazyBase } from './core.js';
import { webCryptoError } from './errors.js';
import {
  type Algorithm,
  type WebCryptoKey as CryptoKey,
  type CryptoKeyPair,
  type JsonWebKey,
  type KeyFormat,
  type KeyUsage,
  NativeKey,
} from './keys.js';

// webcrypto-core's base class, loaded on first use (src/webcrypto/core.ts)
const CoreProviderCrypto = lazyBase((core) => core.ProviderCrypto);

/** Algorithms delegated unchanged to node's `crypto.webcrypto.subtle`. */
export const NODE_ALGORITHMS = [
  'SHA-1',
  'SHA-256',
  'SHA-384',
  'SHA-512',
  'AES-CBC',
  'AES-CTR',
  'AES-GCM',
  'AES-KW',
  'HMAC',
  'HKDF',
  'PBKDF2',
  'Ed25519',
  'X25519',
] as const;

function native(key: unknown): webcrypto.CryptoKey {
  if (key instanceof NativeKey) return key.native;
  throw webCryptoError(
    'InvalidAccessError',
    'INVALID_ARGUMENT',
    'this algorithm runs on the host and needs a key generated or imported for it with this subtle; a device key (getKeyPair) serves only its own algorithm',
  );
}

/** The algorithm dictionary with wrapped keys (e.g. X25519's `public`) replaced by node's. */
function nativeAlgorithm(algorithm: Algorithm): webcrypto.AlgorithmIdentifier {
  const out: Record<string, unknown> = { ...algorithm };
  for (const [k, v] of Object.entries(out)) if (v instanceof NativeKey) out[k] = v.native;
  return out as unknown as webcrypto.AlgorithmIdentifier;
}

function wrapResult(r: webcrypto.CryptoKey | webcrypto.CryptoKeyPair): CryptoKey | CryptoKeyPair {
  if ('privateKey' in r) {
    return {
      privateKey: NativeKey.wrap(r.privateKey),
      publicKey: NativeKey.wrap(r.publicKey),
    } as unknown as CryptoKeyPair;
  }
  return NativeKey.wrap(r) as unknown as CryptoKey;
}

/**
 * A provider that hands one algorithm to node's WebCrypto, keys wrapped as {@link NativeKey}.
 * node makes every check itself, so the public entry points are overridden directly.
 */
export class NodeProvider extends CoreProviderCrypto {
  readonly usages: KeyUsage[] = [
    'sign',
    'verify',
    'encrypt',
    'decrypt',
    'deriveBits',
    'deriveKey',
    'wrapKey',
    'unwrapKey',
  ];
  constructor(readonly name: string) {
    super();
  }
  override async digest(algorithm: Algorithm, data: ArrayBuffer): Promise<ArrayBuffer> {
    return webcrypto.subtle.digest(nativeAlgorithm(algorithm), data);
  }
  /** Returns a key or a key pair (typed `never` to fit every overload of webcrypto-core's signature). */
  override async generateKey(
    algorithm: Algorithm | string,
    extractable: boolean,
    keyUsages: readonly KeyUsage[],
  ): Promise<never> {
    const alg = typeof algorithm === 'string' ? { name: algorithm } : nativeAlgorithm(algorithm);
    return wrapResult(await webcrypto.subtle.generateKey(alg as never, extractable, [...keyUsages])) as never;
  }
  override async sign(algorithm: Algorithm, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    return webcrypto.subtle.sign(nativeAlgorithm(algorithm), native(key), data);
  }
  override async verify(
    algorithm: Algorithm,
    key: CryptoKey,
    signature: ArrayBuffer,
    data: ArrayBuffer,
  ): Promise<boolean> {
    return webcrypto.subtle.verify(nativeAlgorithm(algorithm), native(key), signature, data);
  }
  override async encrypt(algorithm: Algorithm, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    return webcrypto.subtle.encrypt(nativeAlgorithm(algorithm), native(key), data);
  }
  override async decrypt(algorithm: Algorithm, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    return webcrypto.subtle.decrypt(nativeAlgorithm(algorithm), native(key), data);
  }
  override async deriveBits(algorithm: Algorithm, baseKey: CryptoKey, length: number): Promise<ArrayBuffer> {
    return webcrypto.subtle.deriveBits(nativeAlgorithm(algorithm) as never, native(baseKey), length);
  }
  override async exportKey(format: KeyFormat, key: CryptoKey): Promise<JsonWebKey | ArrayBuffer> {
    return webcrypto.subtle.exportKey(format as never, native(key)) as Promise<JsonWebKey | ArrayBuffer>;
  }
  override async importKey(
    format: KeyFormat,
    keyData: JsonWebKey | ArrayBuffer,
    algorithm: Algorithm,
    extractable: boolean,
    keyUsages: KeyUsage[],
  ): Promise<CryptoKey> {
    const k = await webcrypto.subtle.importKey(
      format as never,
      keyData as never,
      nativeAlgorithm(algorithm),
      extractable,
      keyUsages,
    );
    return NativeKey.wrap(k) as unknown as CryptoKey;
  }
  override checkCryptoKey(key: CryptoKey, keyUsage?: KeyUsage): void {
    native(key);
    if (keyUsage && !key.usages.includes(keyUsage))
      throw new ScHsmError('INVALID_ARGUMENT', `the key does not allow "${keyUsage}"`);
  }
}

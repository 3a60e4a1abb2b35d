/**
 * A WebCrypto `Crypto` over an open SmartCard-HSM session, built on webcrypto-core the way
 * node-webcrypto-p11 is (guide/style.md): `subtle` registers one provider per algorithm; private
 * keys stay in the card, everything else runs in node:crypto. This is what lets `@peculiar/x509`
 * and PKI.js sign certificates and requests with a key that never leaves the HSM.
 *
 * ```ts
 * const crypto = new ScHsmCrypto(hsm);                 // hsm: open and PIN-verified
 * const { privateKey, publicKey } = await crypto.getKeyPair({ keyRef: 1 });
 * const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, data);
 * ```
 */
import { webcrypto } from 'node:crypto';
import type { CryptoStorages } from 'webcrypto-core';
import { ScHsmError } from '../errors.js';
import type { KeyInfo, SmartCardHsm } from '../sc-hsm/session.js';
import { bytesEqual, fromHex, toHex } from '../util/bytes.js';
import { curveByName } from '../util/curves.js';
import { HsmAesCbcProvider, HsmSecretKey } from './aes.js';
import { HsmCertificateStorage } from './cert-storage.js';
import { lazyBase } from './core.js';
import { keyRefusal } from './errors.js';
import { type ProviderOwner, rsaKeyAlgorithm } from './families.js';
import { arrayBuffer, bytes } from './host-keys.js';
import {
  curveSize,
  type HsmAlgorithmName,
  HsmPrivateKey,
  HsmPublicKey,
  type KeyAlgorithmLike,
  USAGES,
  webCurveName,
} from './keys.js';
import { NODE_ALGORITHMS, NodeProvider } from './node-provider.js';
import {
  HsmEcdhProvider,
  HsmEcdsaProvider,
  HsmRsaOaepProvider,
  HsmRsaPssProvider,
  HsmRsaSsaProvider,
} from './providers.js';
import { HsmKeyStorage } from './storage.js';
import { teachLoadedX509 } from './x509-curves.js';

// webcrypto-core's classes, loaded when the first ScHsmCrypto is constructed (src/webcrypto/core.ts)
const CoreCrypto = lazyBase((core) => core.Crypto);
const CoreSubtleCrypto = lazyBase((core) => core.SubtleCrypto);

/** `subtle` of {@link ScHsmCrypto}: the HSM providers plus node's WebCrypto for everything else. */
/** The algorithm parameters of encrypt and decrypt, as the DOM lib names them. */
type CipherAlgorithm =
  | webcrypto.AlgorithmIdentifier
  | webcrypto.RsaOaepParams
  | webcrypto.AesCtrParams
  | webcrypto.AesCbcParams
  | webcrypto.AesGcmParams;

export class ScHsmSubtleCrypto extends CoreSubtleCrypto {
  constructor(owner: ProviderOwner) {
    super();
    for (const name of NODE_ALGORITHMS) this.providers.set(new NodeProvider(name));
    this.providers.set(new HsmEcdsaProvider(owner));
    this.providers.set(new HsmEcdhProvider(owner));
    this.providers.set(new HsmRsaSsaProvider(owner));
    this.providers.set(new HsmRsaPssProvider(owner));
    this.providers.set(new HsmRsaOaepProvider(owner));
    // replaces node's AES-CBC: device AES keys encrypt on the card, host keys still in node
    this.providers.set(new HsmAesCbcProvider());
    // a loaded @peculiar/x509 learns the card's curves now (src/webcrypto/x509-curves.ts)
    teachLoadedX509();
  }

  // The operations again with the DOM's parameter types (webcrypto-core declares `Algorithm`, which
  // refuses `{ name: 'ECDSA', hash: 'SHA-256' }` as an object literal); the behaviour is the base's.

  /** Signs with the key's provider: an HSM key signs on the card (SIGN, spec §3.13). */
  override sign(
    algorithm: webcrypto.AlgorithmIdentifier | webcrypto.RsaPssParams | webcrypto.EcdsaParams,
    key: webcrypto.CryptoKey,
    data: webcrypto.BufferSource,
    ...args: unknown[]
  ): Promise<ArrayBuffer> {
    return super.sign(algorithm as never, key as never, data as never, ...args);
  }

  /** Verifies on the host (a public key never needs the card). */
  override verify(
    algorithm: webcrypto.AlgorithmIdentifier | webcrypto.RsaPssParams | webcrypto.EcdsaParams,
    key: webcrypto.CryptoKey,
    signature: webcrypto.BufferSource,
    data: webcrypto.BufferSource,
    ...args: unknown[]
  ): Promise<boolean> {
    return super.verify(algorithm as never, key as never, signature as never, data as never, ...args);
  }

  /** Encrypts with the key's provider: a device AES key on the card (CIPHER, spec §3.15), else on the host. */
  override encrypt(
    algorithm: CipherAlgorithm,
    key: webcrypto.CryptoKey,
    data: webcrypto.BufferSource,
    ...args: unknown[]
  ): Promise<ArrayBuffer> {
    return super.encrypt(algorithm as never, key as never, data as never, ...args);
  }

  /** Decrypts with the key's provider: an HSM RSA key deciphers on the card (DECIPHER, spec §3.14). */
  override decrypt(
    algorithm: CipherAlgorithm,
    key: webcrypto.CryptoKey,
    data: webcrypto.BufferSource,
    ...args: unknown[]
  ): Promise<ArrayBuffer> {
    return super.decrypt(algorithm as never, key as never, data as never, ...args);
  }

  /** Derives with the key's provider: an HSM EC key derives on the card (ECDH: DECIPHER algorithm 80, spec §3.14). */
  override deriveBits(
    algorithm:
      | webcrypto.AlgorithmIdentifier
      | webcrypto.EcdhKeyDeriveParams
      | webcrypto.HkdfParams
      | webcrypto.Pbkdf2Params,
    baseKey: webcrypto.CryptoKey,
    length: number,
    ...args: unknown[]
  ): Promise<ArrayBuffer> {
    return super.deriveBits(algorithm as never, baseKey as never, length, ...args);
  }
}

/** Which device key: by key reference, by PKCS#15 label, or by PKCS#15 ID (bytes or hex). */
export type KeyQuery = { keyRef: number } | { label: string } | { id: Uint8Array | string };

/** How the key pair is to be used: the WebCrypto algorithm (and hash, which WebCrypto binds to RSA keys). */
export interface KeyPairOptions {
  /** Default `ECDSA` for EC keys, `RSASSA-PKCS1-v1_5` for RSA keys. */
  algorithm?: HsmAlgorithmName | { name: HsmAlgorithmName; hash?: string | { name: string } };
}

/** A device key pair as WebCrypto keys, with the key's reference, ID and label side by side. */
export interface HsmKeyPair {
  privateKey: HsmPrivateKey;
  publicKey: HsmPublicKey;
  keyRef: number;
  id: Uint8Array;
  label?: string;
  /** The session's view of the key (type, size, curve, usage, certificate present). */
  info: KeyInfo;
}

const EC_ALGORITHMS: readonly HsmAlgorithmName[] = ['ECDSA', 'ECDH'];
const RSA_ALGORITHMS: readonly HsmAlgorithmName[] = ['RSASSA-PKCS1-v1_5', 'RSA-PSS', 'RSA-OAEP'];

/**
 * WebCrypto over a SmartCard-HSM session. Private keys are found on the device
 * ({@link ScHsmCrypto.getKeyPair}) or generated there (`subtle.generateKey`); they sign,
 * decrypt and derive on the card and are never extractable.
 */
export class ScHsmCrypto extends CoreCrypto implements ProviderOwner, CryptoStorages {
  readonly subtle: ScHsmSubtleCrypto;
  /**
   * The device's key pairs as webcrypto-core's CryptoKeyStorage, as node-webcrypto-p11 has it
   * (src/webcrypto/storage.ts): `keys()`, `getItem(index, algorithm?)`, `removeItem(index)`.
   */
  readonly keyStorage: HsmKeyStorage;
  /**
   * The device's X.509 certificates as webcrypto-core's CryptoCertificateStorage, as
   * node-webcrypto-p11 has it (src/webcrypto/cert-storage.ts): `importCert` then `setItem` stores
   * a certificate beside its key; `keys()`, `getItem(index)`, `exportCert('raw' | 'pem', cert)`.
   */
  readonly certStorage: HsmCertificateStorage;

  /** @param hsm an open session; the user PIN must be verified before keys are used. */
  constructor(readonly hsm: SmartCardHsm) {
    super();
    this.subtle = new ScHsmSubtleCrypto(this);
    this.keyStorage = new HsmKeyStorage(this);
    this.certStorage = new HsmCertificateStorage(this);
  }

  /** Random bytes from the host's CSPRNG (WebCrypto's getRandomValues is synchronous; the card is not). */
  getRandomValues<T extends ArrayBufferView | null>(array: T): T {
    return webcrypto.getRandomValues(array as never) as T;
  }

  /** Every RSA and EC key pair on the device as WebCrypto keys (AES keys and keys without a public key are left out). */
  async listKeyPairs(options: KeyPairOptions = {}): Promise<HsmKeyPair[]> {
    const out: HsmKeyPair[] = [];
    for (const info of await this.hsm.listKeys()) {
      if ((info.type !== 'rsa' && info.type !== 'ec') || !info.publicKey) continue;
      if (options.algorithm === undefined) out.push(this.pairOf(info, {}));
      else {
        const name = typeof options.algorithm === 'string' ? options.algorithm : options.algorithm.name;
        if ((info.type === 'ec' ? EC_ALGORITHMS : RSA_ALGORITHMS).includes(name))
          out.push(this.pairOf(info, options));
      }
    }
    return out;
  }

  /**
   * One device key pair, found by key reference, label or ID. KEY_NOT_FOUND when there is none,
   * INVALID_ARGUMENT when a label matches several keys or the algorithm does not fit the key.
   */
  async getKeyPair(query: KeyQuery, options: KeyPairOptions = {}): Promise<HsmKeyPair> {
    return this.pairOf(await this.findKey(query), options);
  }

  /**
   * A device AES key (GENERATE SYMMETRIC KEY, spec §3.12) as an `AES-CBC` WebCrypto key, found by
   * key reference, label or ID: `subtle.encrypt({ name: 'AES-CBC', iv }, key, data)` runs on the
   * card (CIPHER 10/11, spec §3.15) with PKCS#7 and the IV applied on the host. INVALID_ARGUMENT
   * when the key is not an AES key; KEY_NOT_FOUND when there is none.
   */
  async getSecretKey(query: KeyQuery): Promise<HsmSecretKey> {
    const info = await this.findKey(query);
    if (info.type !== 'aes') {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `key reference ${info.keyRef} is ${info.type === 'unknown' ? 'a key of unknown type' : `an ${info.type.toUpperCase()} key`}, not AES: use getKeyPair for RSA and EC keys`,
      );
    }
    return HsmSecretKey.fromHandle(
      this.hsm,
      { keyRef: info.keyRef, id: info.id, ...(info.label !== undefined ? { label: info.label } : {}) },
      info.bits,
    );
  }

  /**
   * AES-CMAC (NIST SP 800-38B, 16 bytes) by a device AES key (CIPHER algorithm 18, spec §3.15):
   * WebCrypto has no CMAC algorithm, so this is the call. At most 1024 bytes (one card command).
   */
  async cmac(key: HsmSecretKey, data: webcrypto.BufferSource): Promise<ArrayBuffer> {
    if (!(key instanceof HsmSecretKey)) {
      throw new ScHsmError('INVALID_ARGUMENT', 'cmac needs a device AES key (crypto.getSecretKey)');
    }
    const mac = await keyRefusal(this.hsm.aesCmac(key.keyRef, bytes(data as ArrayBuffer)));
    return arrayBuffer(mac);
  }

  /** The session's KeyInfo for a query (see {@link ScHsmCrypto.getKeyPair}). */
  async findKey(query: KeyQuery): Promise<KeyInfo> {
    if (query === null || typeof query !== 'object') {
      throw new ScHsmError('INVALID_ARGUMENT', 'name the key by { keyRef }, { label } or { id }');
    }
    if ('keyRef' in query) {
      return this.hsm.keyInfo(query.keyRef);
    }
    const keys = await this.hsm.listKeys();
    if ('label' in query) {
      const hits = keys.filter((k) => k.label === query.label);
      if (hits.length === 0)
        throw new ScHsmError('KEY_NOT_FOUND', `no key labelled "${query.label}" on the device`);
      if (hits.length > 1) {
        throw new ScHsmError(
          'INVALID_ARGUMENT',
          `${hits.length} keys are labelled "${query.label}" (key references ${hits.map((k) => k.keyRef).join(', ')}); name one by keyRef`,
        );
      }
      return hits[0]!;
    }
    if ('id' in query) {
      let id: Uint8Array;
      try {
        id = typeof query.id === 'string' ? fromHex(query.id) : query.id;
      } catch (e) {
        throw new ScHsmError('INVALID_ARGUMENT', 'a key ID given as text must be hex', { cause: e });
      }
      const hit = keys.find((k) => bytesEqual(k.id, id));
      if (!hit) throw new ScHsmError('KEY_NOT_FOUND', `no key with ID ${toHex(id)} on the device`);
      return hit;
    }
    throw new ScHsmError('INVALID_ARGUMENT', 'name the key by { keyRef }, { label } or { id }');
  }

  private pairOf(info: KeyInfo, options: KeyPairOptions): HsmKeyPair {
    if (info.type === 'aes') {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `key reference ${info.keyRef} is an AES key, not a key pair: get it with crypto.getSecretKey({ keyRef: ${info.keyRef} }) (AES-CBC)`,
      );
    }
    if (!info.publicKey) {
      throw new ScHsmError(
        'KEY_NOT_FOUND',
        `key reference ${info.keyRef} has no public key on the device (CE${info.keyRef.toString(16).padStart(2, '0').toUpperCase()} missing)`,
      );
    }
    const requested = options.algorithm;
    const name: HsmAlgorithmName =
      (typeof requested === 'string' ? requested : requested?.name) ??
      (info.type === 'ec' ? 'ECDSA' : 'RSASSA-PKCS1-v1_5');
    const allowed = info.type === 'ec' ? EC_ALGORITHMS : RSA_ALGORITHMS;
    if (!allowed.includes(name)) {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `key reference ${info.keyRef} is an ${info.type.toUpperCase()} key: use ${allowed.join(' or ')}, not ${String(name)}`,
      );
    }
    const handle = {
      keyRef: info.keyRef,
      id: info.id,
      ...(info.label !== undefined ? { label: info.label } : {}),
    };
    let algorithm: KeyAlgorithmLike;
    let size: number;
    if (info.type === 'ec') {
      if (!info.curve)
        throw new ScHsmError(
          'NOT_SUPPORTED',
          `key reference ${info.keyRef} is on a curve this library does not know`,
        );
      algorithm = { name, namedCurve: webCurveName(info.curve) };
      size = curveSize(curveByName(info.curve));
    } else {
      const hash = (typeof requested === 'object' ? requested.hash : undefined) ?? 'SHA-256';
      const pub = HsmPublicKey.fromSpki(handle, info.publicKey, { name }, []).keyObject;
      algorithm = rsaKeyAlgorithm(name, pub, hash);
      size = info.bits / 8;
    }
    const usages = USAGES[name];
    const pair: HsmKeyPair = {
      privateKey: HsmPrivateKey.fromHandle(this.hsm, handle, algorithm, [...usages.privateKey], size),
      publicKey: HsmPublicKey.fromSpki(handle, info.publicKey, algorithm, [...usages.publicKey]),
      keyRef: info.keyRef,
      id: info.id,
      info,
    };
    if (info.label !== undefined) pair.label = info.label;
    return pair;
  }
}

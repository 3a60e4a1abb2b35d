/**
 * Device AES keys in WebCrypto: {@link HsmSecretKey}, an AES key that lives in the SmartCard-HSM
 * (GENERATE SYMMETRIC KEY, spec §3.12), and {@link HsmAesCbcProvider}, the `AES-CBC` provider of
 * `ScHsmCrypto.subtle`: a device key encrypts and decrypts on the card (CIPHER algorithms 10/11,
 * spec §3.15) through the session's aesEncrypt / aesDecrypt, with WebCrypto's PKCS#7 padding and
 * `iv` applied on the host; a host key (generated or imported with this subtle) goes to node's
 * WebCrypto as before. CMAC has no WebCrypto algorithm: `ScHsmCrypto.cmac` (CIPHER 18) is the call.
 */
import { ScHsmError } from '../errors.js';
import type { SmartCardHsm } from '../sc-hsm/session.js';
import { lazyBase } from './core.js';
import { keyRefusal, webCryptoError } from './errors.js';
import { arrayBuffer, bytes } from './host-keys.js';
import type { Algorithm, WebCryptoKey as CryptoKey, HsmKeyHandle, KeyUsage } from './keys.js';
import { NodeProvider } from './node-provider.js';

/** webcrypto-core's `CryptoKey`, loaded on first use. */
const CoreCryptoKey = lazyBase((core) => core.CryptoKey);

/** The usages a device AES-CBC key has. */
export const AES_CBC_USAGES: readonly KeyUsage[] = ['encrypt', 'decrypt'];

/** An AES key in the SmartCard-HSM (`CCxx`): usable for AES-CBC encrypt / decrypt, never extractable. */
export class HsmSecretKey extends CoreCryptoKey implements HsmKeyHandle {
  keyRef = 0;
  id: Uint8Array = new Uint8Array(0);
  label?: string;
  /** The open, PIN-verified session the key is used through. */
  declare readonly hsm: SmartCardHsm;

  /** The key of `handle` as an `AES-CBC` key of `bits` bits (`algorithm: { name: 'AES-CBC', length }`). */
  static fromHandle(hsm: SmartCardHsm, handle: HsmKeyHandle, bits: number): HsmSecretKey {
    const k = HsmSecretKey.create({ name: 'AES-CBC', length: bits }, 'secret', false, [...AES_CBC_USAGES]);
    Object.defineProperty(k, 'hsm', { value: hsm, enumerable: false });
    k.keyRef = handle.keyRef;
    k.id = handle.id.slice();
    if (handle.label !== undefined) k.label = handle.label;
    return k;
  }
}

/** WebCrypto's `AesCbcParams.iv`: 16 bytes, else OperationError as node's WebCrypto answers. */
function ivOf(algorithm: Algorithm): Uint8Array {
  const iv = (algorithm as { iv?: unknown }).iv;
  if (!(iv instanceof ArrayBuffer || ArrayBuffer.isView(iv))) {
    throw webCryptoError('OperationError', 'INVALID_ARGUMENT', 'AES-CBC needs algorithm.iv (16 bytes)');
  }
  const b = bytes(iv as ArrayBuffer);
  if (b.length !== 16)
    throw webCryptoError(
      'OperationError',
      'INVALID_ARGUMENT',
      `algorithm.iv must be 16 bytes; got ${b.length}`,
    );
  return b;
}

function checkUsage(key: HsmSecretKey, usage: KeyUsage): void {
  if (!key.usages.includes(usage)) {
    throw webCryptoError(
      'InvalidAccessError',
      'INVALID_ARGUMENT',
      `key reference ${key.keyRef} (secret) does not allow "${usage}"; its usages: ${key.usages.join(', ') || 'none'}`,
    );
  }
}

/**
 * `AES-CBC` for device keys ({@link HsmSecretKey}: on the card) and host keys (node's WebCrypto).
 * A bad padding on decryption is an OperationError with one message, as WebCrypto's.
 */
export class HsmAesCbcProvider extends NodeProvider {
  constructor() {
    super('AES-CBC');
  }

  override async encrypt(algorithm: Algorithm, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    if (!(key instanceof HsmSecretKey)) return super.encrypt(algorithm, key, data);
    checkUsage(key, 'encrypt');
    return arrayBuffer(
      await keyRefusal(key.hsm.aesEncrypt(key.keyRef, bytes(data), { iv: ivOf(algorithm) })),
    );
  }

  override async decrypt(algorithm: Algorithm, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    if (!(key instanceof HsmSecretKey)) return super.decrypt(algorithm, key, data);
    checkUsage(key, 'decrypt');
    const iv = ivOf(algorithm);
    const ct = bytes(data);
    if (ct.length === 0 || ct.length % 16 !== 0) {
      throw webCryptoError(
        'OperationError',
        'INVALID_ARGUMENT',
        `an AES-CBC ciphertext is a whole number of 16-byte blocks; got ${ct.length} bytes`,
      );
    }
    try {
      return arrayBuffer(await keyRefusal(key.hsm.aesDecrypt(key.keyRef, ct, { iv })));
    } catch (e) {
      if (e instanceof ScHsmError && e.code === 'INCORRECT_DATA') e.name = 'OperationError';
      throw e;
    }
  }

  override async exportKey(format: Parameters<NodeProvider['exportKey']>[0], key: CryptoKey) {
    if (key instanceof HsmSecretKey) {
      throw webCryptoError(
        'InvalidAccessError',
        'INVALID_ARGUMENT',
        `the AES key of key reference ${key.keyRef} never leaves the SmartCard-HSM; back it up under the DKEK (wrapKey)`,
      );
    }
    return super.exportKey(format, key);
  }

  override checkCryptoKey(key: CryptoKey, keyUsage?: KeyUsage): void {
    if (key instanceof HsmSecretKey) {
      if (keyUsage) checkUsage(key, keyUsage);
      return;
    }
    super.checkCryptoKey(key, keyUsage);
  }
}

/**
 * The device's keys as webcrypto-core's `CryptoKeyStorage` (`crypto.keyStorage`), the shape
 * node-webcrypto-p11 gives a PKCS#11 token, so that code written for a token ports with few
 * changes: `keys()` lists an index per device key (`private-<ID hex>` and `public-<ID hex>`, the
 * PKCS#15 ID, which is PKCS#11's CKA_ID; `secret-<ID hex>` for an AES key), `getItem(index,
 * algorithm?)` gives the WebCrypto key, `removeItem` deletes the key pair from the device (DELETE FILE of the key, its description and
 * certificate, spec §10.4). Keys get onto the device by `subtle.generateKey` (GENERATE ASYMMETRIC
 * KEY PAIR) or by importPrivateKey under the DKEK, never by `setItem` of a host key.
 */
import type { CryptoKeyStorage, ImportAlgorithms } from 'webcrypto-core';
import { fromHex, toHex } from '../util/bytes.js';
import { HsmSecretKey } from './aes.js';
import type { KeyPairOptions, ScHsmCrypto } from './crypto.js';
import { webCryptoError } from './errors.js';
import { HsmPrivateKey, HsmPublicKey, type KeyUsage } from './keys.js';

type AnyKey = Parameters<CryptoKeyStorage['setItem']>[0];

function parseIndex(index: string): { type: 'private' | 'public' | 'secret'; id: Uint8Array } {
  const m = typeof index === 'string' ? /^(private|public|secret)-([0-9a-fA-F]*)$/.exec(index) : null;
  if (!m || m[2]!.length % 2)
    throw webCryptoError(
      'DataError',
      'INVALID_ARGUMENT',
      `not a key index of this storage: ${String(index)}`,
    );
  return { type: m[1] as 'private' | 'public' | 'secret', id: fromHex(m[2]!) };
}

/** `crypto.keyStorage`: the device's RSA and EC key pairs, indexed by type and PKCS#15 ID. */
export class HsmKeyStorage implements CryptoKeyStorage {
  constructor(private readonly crypto: ScHsmCrypto) {}

  /**
   * An index for each half of each RSA/EC key pair on the device (ENUMERATE, READ BINARY), and
   * `secret-<ID hex>` for each AES key (an `AES-CBC` {@link HsmSecretKey}).
   */
  async keys(): Promise<string[]> {
    const out: string[] = [];
    for (const pair of await this.crypto.listKeyPairs()) {
      const id = toHex(pair.id);
      out.push(`private-${id}`, `public-${id}`);
    }
    for (const k of await this.crypto.hsm.listKeys()) if (k.type === 'aes') out.push(`secret-${toHex(k.id)}`);
    return out;
  }

  /** The index of a device key (null for a host key or a key no longer on the device). */
  async indexOf(item: AnyKey): Promise<string | null> {
    if (!(item instanceof HsmPrivateKey || item instanceof HsmPublicKey || item instanceof HsmSecretKey))
      return null;
    const index = `${item.type}-${toHex(item.id)}`;
    return (await this.keys()).includes(index) ? index : null;
  }

  /**
   * A device key is stored already: its index. A host key cannot be put on the device this way
   * (NotSupportedError): generate the key on the device, or import it under the DKEK.
   */
  async setItem(item: AnyKey): Promise<string> {
    const index = await this.indexOf(item);
    if (index) return index;
    throw webCryptoError(
      'NotSupportedError',
      'NOT_SUPPORTED',
      'a host key cannot be stored on the SmartCard-HSM through keyStorage',
      {
        fix: 'generate it on the device (subtle.generateKey), or import it under the DKEK (importPrivateKey)',
      },
    );
  }

  async getItem(index: string, algorithm?: ImportAlgorithms, _extractable?: boolean, _usages?: KeyUsage[]) {
    const { type, id } = parseIndex(index);
    if (type === 'secret') return this.crypto.getSecretKey({ id });
    const options: KeyPairOptions = {};
    if (algorithm !== undefined)
      options.algorithm = (
        typeof algorithm === 'string' ? algorithm : algorithm
      ) as KeyPairOptions['algorithm'];
    const pair = await this.crypto.getKeyPair({ id }, options);
    return type === 'private' ? pair.privateKey : pair.publicKey;
  }

  async hasItem(item: AnyKey): Promise<boolean> {
    return (await this.indexOf(item)) !== null;
  }

  /** Deletes the key pair of `index` from the device (either half's index; the user PIN verified). */
  async removeItem(index: string): Promise<void> {
    const { id } = parseIndex(index);
    const info = await this.crypto.findKey({ id });
    await this.crypto.hsm.deleteKey(info.keyRef);
  }

  /** Refused (NotSupportedError): erasing every key is `initialize`, with the SO-PIN. */
  async clear(): Promise<void> {
    throw webCryptoError('NotSupportedError', 'NOT_SUPPORTED', 'keyStorage.clear() would erase every key', {
      fix: 'remove keys one by one (removeItem), or re-initialize the device with the SO-PIN',
    });
  }
}

/**
 * Keys held on the host: import data (SPKI, PKCS#8, JWK) read into node `KeyObject`s and software
 * keys written back out (SPKI, PKCS#8, JWK, the raw point of an EC public key). node:crypto knows
 * every curve of the card, brainpool and secp k1 included; JWK spells secp256k1 `K-256` (RFC 8812),
 * OpenSSL `secp256k1`. No device is involved: the card's private keys never come here.
 */
import { createPrivateKey, createPublicKey, type KeyObject, type JsonWebKey as NodeJwk } from 'node:crypto';
import { ScHsmError } from '../errors.js';
import { readAll, readTlv } from '../util/tlv.js';
import type { JsonWebKey, SoftwareKey } from './keys.js';

/** The bytes of a WebCrypto `BufferSource`, without a copy. */
export function bytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A fresh `ArrayBuffer` holding exactly these bytes (what WebCrypto returns). */
export function arrayBuffer(u: Uint8Array): ArrayBuffer {
  return u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;
}

/** Creates a node key from SPKI / PKCS#8 / JWK (EC `raw` points are turned into SPKI by the caller). */
export function nodeKey(format: string, keyData: ArrayBuffer | JsonWebKey): KeyObject {
  try {
    if (format === 'spki')
      return createPublicKey({
        key: Buffer.from(bytes(keyData as ArrayBuffer)),
        format: 'der',
        type: 'spki',
      });
    if (format === 'pkcs8') {
      return createPrivateKey({
        key: Buffer.from(bytes(keyData as ArrayBuffer)),
        format: 'der',
        type: 'pkcs8',
      });
    }
    if (format === 'jwk') {
      const jwk = { ...(keyData as NodeJwk) };
      if (jwk.crv === 'K-256') jwk.crv = 'secp256k1';
      return jwk.d !== undefined
        ? createPrivateKey({ key: jwk, format: 'jwk' })
        : createPublicKey({ key: jwk, format: 'jwk' });
    }
  } catch (e) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `the ${format} key data cannot be read: ${(e as Error).message}`,
      { cause: e },
    );
  }
  throw new ScHsmError(
    'INVALID_ARGUMENT',
    `key format "${format}" is not supported here; use spki, pkcs8 or jwk`,
  );
}

/** Exports a host key (device public keys included) as SPKI, PKCS#8, JWK or (EC public) raw point. */
export function exportSoftware(format: string, key: SoftwareKey): ArrayBuffer | JsonWebKey {
  const ko = key.keyObject;
  if (format === 'spki') {
    if (ko.type !== 'public') throw new ScHsmError('INVALID_ARGUMENT', 'only a public key exports as spki');
    return arrayBuffer(new Uint8Array(ko.export({ type: 'spki', format: 'der' })));
  }
  if (format === 'pkcs8') {
    if (ko.type !== 'private')
      throw new ScHsmError('INVALID_ARGUMENT', 'only a private key exports as pkcs8');
    return arrayBuffer(new Uint8Array(ko.export({ type: 'pkcs8', format: 'der' })));
  }
  if (format === 'raw') {
    if (ko.type !== 'public' || ko.asymmetricKeyType !== 'ec') {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        'raw export exists only for EC public keys (the uncompressed point)',
      );
    }
    return arrayBuffer(spkiEcPoint(new Uint8Array(ko.export({ type: 'spki', format: 'der' }))));
  }
  if (format === 'jwk') {
    let jwk: NodeJwk;
    try {
      jwk = ko.export({ format: 'jwk' });
    } catch (e) {
      const curve = ko.asymmetricKeyDetails?.namedCurve;
      throw new ScHsmError(
        'NOT_SUPPORTED',
        `JWK has no representation for ${curve ?? 'this key'}; export it as spki instead`,
        { cause: e },
      );
    }
    if (jwk.crv === 'secp256k1') jwk.crv = 'K-256';
    const out: JsonWebKey = { ...(jwk as JsonWebKey), ext: true, key_ops: [...key.usages] };
    return out;
  }
  throw new ScHsmError(
    'INVALID_ARGUMENT',
    `key format "${format}" is not supported; use spki, pkcs8, jwk or raw`,
  );
}

/** The uncompressed point inside an EC SubjectPublicKeyInfo. */
function spkiEcPoint(spki: Uint8Array): Uint8Array {
  const [, bits] = readAll(readTlv(spki).value);
  if (bits?.tag !== 0x03) throw new ScHsmError('MALFORMED_DATA', 'SubjectPublicKeyInfo without a BIT STRING');
  return bits.value.slice(1);
}

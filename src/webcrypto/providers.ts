/**
 * One webcrypto-core provider per algorithm, as node-webcrypto-p11 does (guide/style.md). Private
 * key operations with device keys go to the session: ECDSA → SIGN algorithm 70 with the hash
 * computed on the host (spec §3.13), or 71–75 with the message for a key limited to those, the card's DER answer turned into WebCrypto's r‖s;
 * RSASSA-PKCS1-v1_5 → host-padded raw RSA (20); RSA-PSS → card-padded PSS (40, salt length =
 * hash length); RSA-OAEP → raw DECIPHER (21) with the padding removed on the host (§3.14);
 * ECDH → DECIPHER algorithm 80. Everything with public keys, and every software key, runs in
 * node:crypto, which knows every curve of the card (node's WebCrypto knows only the NIST ones).
 *
 * What every HSM provider shares (key checks, export refusal, generate / import / export) is
 * src/webcrypto/hsm-provider.ts; how keys are generated, imported and exported is
 * src/webcrypto/families.ts. Each class here holds only its algorithm's operations.
 */
import {
  constants,
  diffieHellman,
  sign as nodeSign,
  verify as nodeVerify,
  privateDecrypt,
  publicEncrypt,
} from 'node:crypto';
import { ScHsmError } from '../errors.js';
import { oaepUnpad } from '../sc-hsm/padding.js';
import type { SignMechanism } from '../sc-hsm/session.js';
import { lazyBase, loadCore } from './core.js';
import { keyRefusal, webCryptoError } from './errors.js';
import { arrayBuffer, bytes } from './host-keys.js';
import { hsmEcProvider, hsmRsaProvider } from './hsm-provider.js';
import {
  type Algorithm,
  type WebCryptoKey as CryptoKey,
  curveFromWebName,
  curveOfKeyObject,
  curveSize,
  type EcdhKeyDeriveParams,
  type EcdsaParams,
  type EcKeyImportParams,
  HASH_BYTES,
  HsmPrivateKey,
  hashName,
  type JsonWebKey,
  type KeyFormat,
  type KeyUsage,
  nodeHash,
  type RsaOaepParams,
  type RsaPssParams,
  SoftwareKey,
  webCurveName,
} from './keys.js';
import { teachX509Curve } from './x509-curves.js';

// webcrypto-core's provider classes, loaded on first use (src/webcrypto/core.ts)
const EcdsaProvider = lazyBase((core) => core.EcdsaProvider);
const EcdhProvider = lazyBase((core) => core.EcdhProvider);
const RsaSsaProvider = lazyBase((core) => core.RsaSsaProvider);
const RsaPssProvider = lazyBase((core) => core.RsaPssProvider);
const RsaOaepProvider = lazyBase((core) => core.RsaOaepProvider);

// ------------------------------------------------------------------------------------------------
// EC

const ECDSA_MECH: Record<string, SignMechanism> = {
  sha1: 'ECDSA-SHA1',
  sha256: 'ECDSA-SHA256',
  sha384: 'ECDSA-SHA384',
  sha512: 'ECDSA-SHA512',
};

/** ECDSA on every curve of the card (NIST, brainpool, secp k1); signatures are WebCrypto's r‖s. */
export class HsmEcdsaProvider extends hsmEcProvider(EcdsaProvider) {
  override async onSign(algorithm: EcdsaParams, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    teachX509Curve((key.algorithm as { namedCurve?: string }).namedCurve);
    const hash = nodeHash(algorithm.hash);
    if (key instanceof HsmPrivateKey) {
      // the session hashes and sends SIGN 70 with the hash cut to the field size, or, for a key
      // whose list allows only the card-hash form (e.g. ECDSA-SHA256), SIGN 73 with the message
      // (crypto.ts signAlgorithm); it converts the DER answer
      const mech = ECDSA_MECH[hash] as SignMechanism;
      return arrayBuffer(await keyRefusal(key.hsm.sign(key.keyRef, mech, bytes(data), { format: 'raw' })));
    }
    const ko = (key as SoftwareKey).keyObject;
    return arrayBuffer(new Uint8Array(nodeSign(hash, bytes(data), { key: ko, dsaEncoding: 'ieee-p1363' })));
  }

  /** As every EC provider's; and @peculiar/x509 learns the curve before it verifies with the key. */
  override async onImportKey(
    format: KeyFormat,
    keyData: ArrayBuffer | JsonWebKey,
    algorithm: EcKeyImportParams,
    extractable: boolean,
    keyUsages: KeyUsage[],
  ): Promise<CryptoKey> {
    teachX509Curve(algorithm.namedCurve);
    return super.onImportKey(format, keyData, algorithm, extractable, keyUsages);
  }

  override async onVerify(
    algorithm: EcdsaParams,
    key: CryptoKey,
    signature: ArrayBuffer,
    data: ArrayBuffer,
  ): Promise<boolean> {
    const ko = (key as SoftwareKey).keyObject;
    const size = curveSize(curveOfKeyObject(ko));
    if (signature.byteLength !== 2 * size) return false;
    return nodeVerify(
      nodeHash(algorithm.hash),
      bytes(data),
      { key: ko, dsaEncoding: 'ieee-p1363' },
      bytes(signature),
    );
  }
}

/** ECDH with a device key (DECIPHER 80) or a software key; the secret is the X coordinate. */
export class HsmEcdhProvider extends hsmEcProvider(EcdhProvider) {
  override checkAlgorithmParams(algorithm: EcdhKeyDeriveParams): void {
    const pub = (algorithm as { public?: unknown }).public;
    if (!(pub instanceof SoftwareKey) || pub.type !== 'public') {
      throw webCryptoError(
        'InvalidAccessError',
        'INVALID_ARGUMENT',
        'ECDH needs the peer public key (imported with this subtle as ECDH) in algorithm.public',
      );
    }
    if (pub.algorithm.name !== 'ECDH') {
      throw webCryptoError(
        'InvalidAccessError',
        'INVALID_ARGUMENT',
        `the peer key is a ${pub.algorithm.name} key, not an ECDH key`,
      );
    }
  }

  override async onDeriveBits(
    algorithm: EcdhKeyDeriveParams,
    baseKey: CryptoKey,
    length: number | null,
  ): Promise<ArrayBuffer> {
    const peer = (algorithm as unknown as { public: SoftwareKey }).public.keyObject;
    const peerCurve = curveOfKeyObject(peer);
    let secret: Uint8Array;
    if (baseKey instanceof HsmPrivateKey) {
      const own = curveFromWebName((baseKey.algorithm as { namedCurve?: string }).namedCurve);
      if (own.name !== peerCurve.name) {
        throw new ScHsmError(
          'INVALID_ARGUMENT',
          `the peer key is on ${webCurveName(peerCurve.name)}, key reference ${baseKey.keyRef} on ${webCurveName(own.name)}`,
        );
      }
      secret = await keyRefusal(
        baseKey.hsm.ecdh(baseKey.keyRef, new Uint8Array(peer.export({ type: 'spki', format: 'der' }))),
      );
    } else {
      const own = (baseKey as SoftwareKey).keyObject;
      if (curveOfKeyObject(own).name !== peerCurve.name)
        throw webCryptoError(
          'InvalidAccessError',
          'INVALID_ARGUMENT',
          'the two ECDH keys are on different curves',
        );
      secret = new Uint8Array(diffieHellman({ privateKey: own, publicKey: peer }));
    }
    if (length === null || length === undefined) return arrayBuffer(secret);
    if (length > secret.length * 8)
      throw new (loadCore().OperationError)(`length: at most ${secret.length * 8} bits for this curve`);
    return arrayBuffer(secret.slice(0, length / 8));
  }
}

// ------------------------------------------------------------------------------------------------
// RSA

function keyHash(key: CryptoKey): 'sha1' | 'sha256' | 'sha384' | 'sha512' {
  return nodeHash((key.algorithm as { hash?: unknown }).hash);
}

const PKCS1_MECH = {
  sha1: 'RSA-PKCS1-SHA1',
  sha256: 'RSA-PKCS1-SHA256',
  sha384: 'RSA-PKCS1-SHA384',
  sha512: 'RSA-PKCS1-SHA512',
} as const;
const PSS_MECH = {
  sha1: 'RSA-PSS-SHA1',
  sha256: 'RSA-PSS-SHA256',
  sha384: 'RSA-PSS-SHA384',
  sha512: 'RSA-PSS-SHA512',
} as const;

/** node:crypto's options for a software RSA key with this padding (and PSS salt length). */
function softwareRsa(key: CryptoKey, padding: number, saltLength?: number) {
  return {
    key: (key as SoftwareKey).keyObject,
    padding,
    ...(saltLength === undefined ? {} : { saltLength }),
  };
}

/** RSASSA-PKCS1-v1_5: the hash is a property of the key (WebCrypto), the padding is done on the host. */
export class HsmRsaSsaProvider extends hsmRsaProvider(RsaSsaProvider) {
  override async onSign(_algorithm: Algorithm, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    const hash = keyHash(key);
    if (key instanceof HsmPrivateKey) {
      return arrayBuffer(
        await keyRefusal(key.hsm.sign(key.keyRef, PKCS1_MECH[hash] as SignMechanism, bytes(data))),
      );
    }
    return arrayBuffer(
      new Uint8Array(nodeSign(hash, bytes(data), softwareRsa(key, constants.RSA_PKCS1_PADDING))),
    );
  }

  override async onVerify(
    _algorithm: Algorithm,
    key: CryptoKey,
    signature: ArrayBuffer,
    data: ArrayBuffer,
  ): Promise<boolean> {
    const options = softwareRsa(key, constants.RSA_PKCS1_PADDING);
    return nodeVerify(keyHash(key), bytes(data), options, bytes(signature));
  }
}

/**
 * RSA-PSS. The card pads itself with salt length = hash length (spec §3.13) and MGF1 with the
 * message hash; other salt lengths are refused for device keys (software keys take any).
 */
export class HsmRsaPssProvider extends hsmRsaProvider(RsaPssProvider) {
  override async onSign(algorithm: RsaPssParams, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    const hash = keyHash(key);
    if (key instanceof HsmPrivateKey) {
      if (algorithm.saltLength !== HASH_BYTES[hash]) {
        throw webCryptoError(
          'NotSupportedError',
          'INVALID_ARGUMENT',
          `the SmartCard-HSM signs RSA-PSS with salt length = hash length: use saltLength ${HASH_BYTES[hash]} with ${hashName(hash)}; got ${algorithm.saltLength}`,
        );
      }
      return arrayBuffer(
        await keyRefusal(key.hsm.sign(key.keyRef, PSS_MECH[hash] as SignMechanism, bytes(data))),
      );
    }
    const options = softwareRsa(key, constants.RSA_PKCS1_PSS_PADDING, algorithm.saltLength);
    return arrayBuffer(new Uint8Array(nodeSign(hash, bytes(data), options)));
  }

  override async onVerify(
    algorithm: RsaPssParams,
    key: CryptoKey,
    signature: ArrayBuffer,
    data: ArrayBuffer,
  ): Promise<boolean> {
    const options = softwareRsa(key, constants.RSA_PKCS1_PSS_PADDING, algorithm.saltLength);
    return nodeVerify(keyHash(key), bytes(data), options, bytes(signature));
  }
}

/** RSA-OAEP: decryption on the card (raw, padding removed on the host, any hash and label), encryption on the host. */
export class HsmRsaOaepProvider extends hsmRsaProvider(RsaOaepProvider) {
  override async onEncrypt(
    algorithm: RsaOaepParams,
    key: CryptoKey,
    data: ArrayBuffer,
  ): Promise<ArrayBuffer> {
    const label = algorithm.label ? bytes(algorithm.label as ArrayBuffer) : undefined;
    return arrayBuffer(
      new Uint8Array(
        publicEncrypt(
          {
            key: (key as SoftwareKey).keyObject,
            padding: constants.RSA_PKCS1_OAEP_PADDING,
            oaepHash: keyHash(key),
            ...(label?.length ? { oaepLabel: label } : {}),
          },
          bytes(data),
        ),
      ),
    );
  }

  override async onDecrypt(
    algorithm: RsaOaepParams,
    key: CryptoKey,
    data: ArrayBuffer,
  ): Promise<ArrayBuffer> {
    const label = algorithm.label ? new Uint8Array(bytes(algorithm.label as ArrayBuffer)) : new Uint8Array(0);
    const hash = keyHash(key);
    if (key instanceof HsmPrivateKey) {
      const block = await keyRefusal(key.hsm.decrypt(key.keyRef, 'RSA-RAW', bytes(data)));
      return arrayBuffer(oaepUnpad(block, hash, label));
    }
    return arrayBuffer(
      new Uint8Array(
        privateDecrypt(
          {
            key: (key as SoftwareKey).keyObject,
            padding: constants.RSA_PKCS1_OAEP_PADDING,
            oaepHash: hash,
            ...(label.length ? { oaepLabel: label } : {}),
          },
          bytes(data),
        ),
      ),
    );
  }
}

/**
 * Key families: how the keys of an HSM provider come to be. A key pair is generated on the card
 * (GENERATE ASYMMETRIC KEY PAIR, spec §3.11, through the session's `generateKeyPair`, which also
 * writes its PKCS#15 description); a key the caller brings is imported on the host as a
 * {@link SoftwareKey}; software keys and device public keys export on the host. One family serves
 * every provider of its key type: {@link EC_KEYS} for ECDSA and ECDH, {@link RSA_KEYS} for
 * RSASSA-PKCS1-v1_5, RSA-PSS and RSA-OAEP.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { CryptoKey as CoreCryptoKey } from 'webcrypto-core';
import { ScHsmError } from '../errors.js';
import type { KeyPairSpec, SmartCardHsm } from '../sc-hsm/session.js';
import type { CurveInfo, CurveName } from '../util/curves.js';
import { arrayBuffer, bytes, exportSoftware, nodeKey } from './host-keys.js';
import {
  type CryptoKeyPair,
  curveFromWebName,
  curveOfKeyObject,
  curveSize,
  type EcKeyGenParams,
  type EcKeyImportParams,
  ecPointToSpki,
  type HsmAlgorithmName,
  HsmPrivateKey,
  HsmPublicKey,
  hashName,
  type JsonWebKey,
  type KeyAlgorithmLike,
  type KeyUsage,
  nodeHash,
  type RsaHashedImportParams,
  type RsaHashedKeyGenParams,
  SoftwareKey,
  USAGES,
  webCurveName,
} from './keys.js';

/** Extra members of a key generation dictionary: where and under which name the card keeps the key. */
export interface HsmKeyGenExtras {
  /** PKCS#15 label (CKA_LABEL); default `webcrypto-<time>`. */
  label?: string;
  /** PKCS#15 ID (CKA_ID); default OpenSC's intrinsic ID (SHA-1 of X or of the modulus). */
  id?: Uint8Array;
  /** Key reference 1–255; default the lowest free one. */
  keyRef?: number;
}

/** What the providers need from the `Crypto` that owns them. */
export interface ProviderOwner {
  readonly hsm: SmartCardHsm;
}

/**
 * How the keys of a provider are made, for generation dictionaries `G`, import dictionaries `I`
 * and generated keys `K` (a key pair, or one secret key); `name` is the provider's algorithm,
 * which the keys are set up for.
 */
export interface KeyFamily<G, I, K = CryptoKeyPair> {
  /** `generateKey`: made on the card, the private or secret key never extractable. */
  generate(
    owner: ProviderOwner,
    name: string,
    algorithm: G & HsmKeyGenExtras,
    extractable: boolean,
    usages: KeyUsage[],
  ): Promise<K>;
  /** `importKey`: a key held on the host. */
  import(
    name: string,
    format: string,
    keyData: ArrayBuffer | JsonWebKey,
    algorithm: I,
    extractable: boolean,
    usages: KeyUsage[],
  ): CoreCryptoKey;
  /** `exportKey` of a key the provider's checks let through (never a device private key). */
  export(format: string, key: CoreCryptoKey): ArrayBuffer | JsonWebKey;
}

/** The key type part of GENERATE ASYMMETRIC KEY PAIR's spec; label, ID and reference are added. */
type CardKeyType = { type: 'ec'; curve: CurveName } | { type: 'rsa'; bits: number; publicExponent: number };

/** What differs between the key-pair families. */
interface KeyPairKind<G, I> {
  /** The card's key type for a generation dictionary; checks it first (curve, exponent). */
  cardKey(algorithm: G): CardKeyType;
  /** Bytes of the field (EC) or modulus (RSA) of a generated key: the length of r, s or an RSA block. */
  size(algorithm: G): number;
  /** The node key of import data, checked to be of this family (and of the curve asked for). */
  read(format: string, keyData: ArrayBuffer | JsonWebKey, algorithm: I): KeyObject;
  /** WebCrypto's key algorithm dictionary of a key of this family. */
  keyAlgorithm(name: string, algorithm: G | I, key: KeyObject): KeyAlgorithmLike;
}

function checkNotExtractable(extractable: boolean): void {
  if (extractable) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      'keys generated on the SmartCard-HSM never leave it: call generateKey with extractable = false',
    );
  }
}

function filterUsages(requested: readonly KeyUsage[], allowed: readonly KeyUsage[]): KeyUsage[] {
  return requested.filter((u) => allowed.includes(u));
}

function checkImportUsages(requested: readonly KeyUsage[], allowed: readonly KeyUsage[], what: string): void {
  const bad = requested.filter((u) => !allowed.includes(u));
  if (bad.length) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `usages ${bad.join(', ')} are not possible for ${what}; allowed: ${allowed.join(', ') || 'none'}`,
    );
  }
}

/**
 * A key-pair family: generation on the card and import on the host, the same for EC and RSA. Its
 * providers' names are {@link HsmAlgorithmName}s, the keys of {@link USAGES}.
 */
function keyPairFamily<G, I>(kind: KeyPairKind<G, I>): KeyFamily<G, I> {
  const usagesOf = (name: string) => USAGES[name as HsmAlgorithmName];
  return {
    async generate(owner, name, algorithm, extractable, usages) {
      checkNotExtractable(extractable);
      const cardKey = kind.cardKey(algorithm);
      const label = algorithm.label ?? `webcrypto-${Date.now().toString(36)}`;
      const spec: KeyPairSpec = {
        ...cardKey,
        label,
        ...(algorithm.id ? { id: algorithm.id } : {}),
        ...(algorithm.keyRef !== undefined ? { keyRef: algorithm.keyRef } : {}),
      };
      const g = await owner.hsm.generateKeyPair(spec);
      const handle = { keyRef: g.keyRef, id: g.id, label };
      const pub = createPublicKey({ key: Buffer.from(g.publicKey), format: 'der', type: 'spki' });
      const alg = kind.keyAlgorithm(name, algorithm, pub);
      const allowed = usagesOf(name);
      return {
        privateKey: HsmPrivateKey.fromHandle(
          owner.hsm,
          handle,
          alg,
          filterUsages(usages, allowed.privateKey),
          kind.size(algorithm),
        ),
        publicKey: HsmPublicKey.fromSpki(handle, g.publicKey, alg, filterUsages(usages, allowed.publicKey)),
      } as unknown as CryptoKeyPair;
    },
    import(name, format, keyData, algorithm, extractable, usages) {
      const ko = kind.read(format, keyData, algorithm);
      checkImportUsages(
        usages,
        usagesOf(name)[ko.type === 'private' ? 'privateKey' : 'publicKey'],
        `an ${name} ${ko.type} key`,
      );
      const alg = kind.keyAlgorithm(name, algorithm, ko);
      return SoftwareKey.wrap(ko, alg, ko.type === 'public' ? true : extractable, usages);
    },
    export: (format, key) => exportSoftware(format, key as SoftwareKey),
  };
}

// ------------------------------------------------------------------------------------------------
// EC

function ecKeyAlgorithm(name: string, curve: CurveInfo): KeyAlgorithmLike {
  return { name, namedCurve: webCurveName(curve.name) };
}

/** EC keys on every curve of the card (NIST, brainpool, secp k1); `raw` imports an uncompressed point. */
export const EC_KEYS: KeyFamily<EcKeyGenParams, EcKeyImportParams> = keyPairFamily({
  cardKey: (algorithm: EcKeyGenParams) => ({
    type: 'ec',
    curve: curveFromWebName(algorithm.namedCurve).name,
  }),
  size: (algorithm: EcKeyGenParams) => curveSize(curveFromWebName(algorithm.namedCurve)),
  read(format, keyData, algorithm: EcKeyImportParams) {
    const curve = curveFromWebName(algorithm.namedCurve);
    const ko =
      format === 'raw'
        ? nodeKey('spki', arrayBuffer(ecPointToSpki(curve, bytes(keyData as ArrayBuffer))))
        : nodeKey(format, keyData);
    if (ko.asymmetricKeyType !== 'ec')
      throw new ScHsmError('INVALID_ARGUMENT', `the ${format} data is not an EC key`);
    const actual = curveOfKeyObject(ko);
    if (actual.name !== curve.name) {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `the key is on ${webCurveName(actual.name)}, not on ${algorithm.namedCurve}`,
      );
    }
    return ko;
  },
  keyAlgorithm: (name, algorithm) => ecKeyAlgorithm(name, curveFromWebName(algorithm.namedCurve)),
});

// ------------------------------------------------------------------------------------------------
// RSA

/** WebCrypto's RsaHashedKeyAlgorithm of a node key. */
export function rsaKeyAlgorithm(name: string, ko: KeyObject, hash: unknown): KeyAlgorithmLike {
  const d = ko.asymmetricKeyDetails ?? {};
  let e = BigInt(d.publicExponent ?? 65537n);
  const exp: number[] = [];
  while (e > 0n) {
    exp.unshift(Number(e & 0xffn));
    e >>= 8n;
  }
  return {
    name,
    modulusLength: d.modulusLength ?? 0,
    publicExponent: Uint8Array.from(exp),
    hash: { name: hashName(nodeHash(hash)) },
  };
}

/** RSA keys; the hash is a property of the key (WebCrypto's RsaHashedKeyAlgorithm). */
export const RSA_KEYS: KeyFamily<RsaHashedKeyGenParams, RsaHashedImportParams> = keyPairFamily({
  cardKey: (algorithm: RsaHashedKeyGenParams) => ({
    type: 'rsa',
    bits: algorithm.modulusLength,
    publicExponent: bytes(algorithm.publicExponent as Uint8Array).reduce((a, b) => a * 256 + b, 0),
  }),
  size: (algorithm: RsaHashedKeyGenParams) => algorithm.modulusLength / 8,
  read(format, keyData, _algorithm: RsaHashedImportParams) {
    if (format === 'raw')
      throw new ScHsmError('INVALID_ARGUMENT', 'RSA keys import as spki, pkcs8 or jwk, not raw');
    const ko = nodeKey(format, keyData);
    if (ko.asymmetricKeyType !== 'rsa')
      throw new ScHsmError('INVALID_ARGUMENT', `the ${format} data is not an RSA key`);
    return ko;
  },
  keyAlgorithm: (name, algorithm, ko) => rsaKeyAlgorithm(name, ko, algorithm.hash),
});

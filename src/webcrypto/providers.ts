/**
 * One webcrypto-core provider per algorithm, as node-webcrypto-p11 does (guide/style.md). Private
 * key operations with device keys go to the session: ECDSA → SIGN algorithm 70 with the hash
 * computed on the host (spec §3.13), the card's DER answer turned into WebCrypto's r‖s;
 * RSASSA-PKCS1-v1_5 → host-padded raw RSA (20); RSA-PSS → card-padded PSS (40, salt length =
 * hash length); RSA-OAEP → raw DECIPHER (21) with the padding removed on the host (§3.14);
 * ECDH → DECIPHER algorithm 80. Everything with public keys, and every software key, runs in
 * node:crypto, which knows every curve of the card (node's WebCrypto knows only the NIST ones).
 */
import {
  constants,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  type KeyObject,
  type JsonWebKey as NodeJwk,
  sign as nodeSign,
  verify as nodeVerify,
  privateDecrypt,
  publicEncrypt,
  webcrypto,
} from 'node:crypto';
import type { CryptoKey as CoreCryptoKey, ProviderCrypto } from 'webcrypto-core';
import { ScHsmError } from '../errors.js';
import { oaepUnpad } from '../sc-hsm/padding.js';
import type { SignMechanism, SmartCardHsm } from '../sc-hsm/session.js';
import type { CurveInfo } from '../util/curves.js';
import { readAll, readTlv } from '../util/tlv.js';
import { lazyBase, loadCore } from './core.js';
import {
  type Algorithm,
  type WebCryptoKey as CryptoKey,
  type CryptoKeyPair,
  curveFromWebName,
  curveOfKeyObject,
  curveSize,
  type EcdhKeyDeriveParams,
  type EcdsaParams,
  type EcKeyGenParams,
  type EcKeyImportParams,
  ecPointToSpki,
  HASH_BYTES,
  HsmPrivateKey,
  HsmPublicKey,
  type JsonWebKey,
  type KeyAlgorithmLike,
  type KeyFormat,
  type KeyType,
  type KeyUsage,
  NativeKey,
  nodeHash,
  type RsaHashedImportParams,
  type RsaHashedKeyGenParams,
  type RsaOaepParams,
  type RsaPssParams,
  SoftwareKey,
  WEB_CURVE_NAMES,
  webCurveName,
} from './keys.js';

// webcrypto-core's provider classes, loaded on first use (src/webcrypto/core.ts)
const EcdsaProvider = lazyBase((core) => core.EcdsaProvider);
const EcdhProvider = lazyBase((core) => core.EcdhProvider);
const RsaSsaProvider = lazyBase((core) => core.RsaSsaProvider);
const RsaPssProvider = lazyBase((core) => core.RsaPssProvider);
const RsaOaepProvider = lazyBase((core) => core.RsaOaepProvider);
const CoreProviderCrypto = lazyBase((core) => core.ProviderCrypto);

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

type Usages = { privateKey: KeyUsage[]; publicKey: KeyUsage[] };

/** The WebCrypto usages a device key pair gets for an algorithm. */
export const USAGES: Record<'ECDSA' | 'ECDH' | 'RSASSA-PKCS1-v1_5' | 'RSA-PSS' | 'RSA-OAEP', Usages> = {
  ECDSA: { privateKey: ['sign'], publicKey: ['verify'] },
  ECDH: { privateKey: ['deriveBits', 'deriveKey'], publicKey: [] },
  'RSASSA-PKCS1-v1_5': { privateKey: ['sign'], publicKey: ['verify'] },
  'RSA-PSS': { privateKey: ['sign'], publicKey: ['verify'] },
  'RSA-OAEP': { privateKey: ['decrypt', 'unwrapKey'], publicKey: ['encrypt', 'wrapKey'] },
};

// ------------------------------------------------------------------------------------------------
// helpers

function bytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function arrayBuffer(u: Uint8Array): ArrayBuffer {
  return u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;
}

function describe(key: CoreCryptoKey): string {
  if (key instanceof HsmPrivateKey || key instanceof HsmPublicKey) return `key reference ${key.keyRef}`;
  return `the ${key.type} key`;
}

/** The key must be one of ours, of this algorithm, with this usage: else a clear INVALID_ARGUMENT. */
function checkKey(provider: ProviderCrypto, key: CoreCryptoKey, usage?: KeyUsage): void {
  if (!(key instanceof SoftwareKey || key instanceof HsmPrivateKey)) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `${provider.name} needs a key from this provider (a device key from getKeyPair or a key imported with this subtle)`,
    );
  }
  if (key.algorithm.name.toUpperCase() !== provider.name.toUpperCase()) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `${describe(key)} is set up for ${key.algorithm.name}, not ${provider.name}` +
        (key instanceof HsmPrivateKey
          ? `: get it with getKeyPair({ keyRef: ${key.keyRef}, algorithm: '${provider.name}' })`
          : ''),
    );
  }
  if (usage && !key.usages.includes(usage)) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `${describe(key)} (${key.type}) does not allow "${usage}"; its usages: ${key.usages.join(', ') || 'none'}`,
    );
  }
}

function refuseExport(key: CoreCryptoKey): void {
  if (key instanceof HsmPrivateKey) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `the private key of key reference ${key.keyRef} never leaves the SmartCard-HSM; export the public key, or back the key up under the DKEK (wrapKey)`,
    );
  }
  if (!key.extractable) throw new ScHsmError('INVALID_ARGUMENT', 'the key is not extractable');
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

function hsmLabel(extras: HsmKeyGenExtras): string {
  return extras.label ?? `webcrypto-${Date.now().toString(36)}`;
}

function checkNotExtractable(extractable: boolean): void {
  if (extractable) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      'keys generated on the SmartCard-HSM never leave it: call generateKey with extractable = false',
    );
  }
}

/** Creates a node key from SPKI / PKCS#8 / JWK (EC `raw` points are turned into SPKI by the caller). */
function nodeKey(format: string, keyData: ArrayBuffer | JsonWebKey): KeyObject {
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
function exportSoftware(format: string, key: SoftwareKey): ArrayBuffer | JsonWebKey {
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

// ------------------------------------------------------------------------------------------------
// EC

function ecKeyAlgorithm(name: string, curve: CurveInfo): KeyAlgorithmLike {
  return { name, namedCurve: webCurveName(curve.name) };
}

async function generateEcOnDevice(
  owner: ProviderOwner,
  name: 'ECDSA' | 'ECDH',
  algorithm: { namedCurve: string } & HsmKeyGenExtras,
  extractable: boolean,
  usages: KeyUsage[],
): Promise<CryptoKeyPair> {
  checkNotExtractable(extractable);
  const curve = curveFromWebName(algorithm.namedCurve);
  const label = hsmLabel(algorithm);
  const g = await owner.hsm.generateKeyPair({
    type: 'ec',
    curve: curve.name,
    label,
    ...(algorithm.id ? { id: algorithm.id } : {}),
    ...(algorithm.keyRef !== undefined ? { keyRef: algorithm.keyRef } : {}),
  });
  const handle = { keyRef: g.keyRef, id: g.id, label };
  const alg = ecKeyAlgorithm(name, curve);
  return {
    privateKey: HsmPrivateKey.fromHandle(
      owner.hsm,
      handle,
      alg,
      filterUsages(usages, USAGES[name].privateKey),
      curveSize(curve),
    ),
    publicKey: HsmPublicKey.fromSpki(handle, g.publicKey, alg, filterUsages(usages, USAGES[name].publicKey)),
  } as unknown as CryptoKeyPair;
}

function importEc(
  name: 'ECDSA' | 'ECDH',
  format: string,
  keyData: ArrayBuffer | JsonWebKey,
  algorithm: { namedCurve?: string },
  extractable: boolean,
  usages: KeyUsage[],
): SoftwareKey {
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
  checkImportUsages(
    usages,
    USAGES[name][ko.type === 'private' ? 'privateKey' : 'publicKey'],
    `an ${name} ${ko.type} key`,
  );
  return SoftwareKey.wrap(ko, ecKeyAlgorithm(name, curve), ko.type === 'public' ? true : extractable, usages);
}

/** ECDSA on every curve of the card (NIST, brainpool, secp k1); signatures are WebCrypto's r‖s. */
export class HsmEcdsaProvider extends EcdsaProvider {
  override namedCurves = [...WEB_CURVE_NAMES];

  constructor(private readonly owner: ProviderOwner) {
    super();
  }

  override checkNamedCurve(namedCurve: string): void {
    curveFromWebName(namedCurve);
  }

  override checkCryptoKey(key: CryptoKey, keyUsage?: KeyUsage): void {
    checkKey(this, key as CoreCryptoKey, keyUsage);
  }

  override checkExportKey(format: KeyFormat, key: CryptoKey): void {
    this.checkKeyFormat(format);
    this.checkCryptoKey(key);
    refuseExport(key as CoreCryptoKey);
  }

  override async onGenerateKey(
    algorithm: EcKeyGenParams & HsmKeyGenExtras,
    extractable: boolean,
    keyUsages: KeyUsage[],
  ): Promise<CryptoKeyPair> {
    return generateEcOnDevice(this.owner, 'ECDSA', algorithm, extractable, keyUsages);
  }

  override async onSign(algorithm: EcdsaParams, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    const hash = nodeHash(algorithm.hash);
    if (key instanceof HsmPrivateKey) {
      const digest = new Uint8Array(await webcrypto.subtle.digest(hashName(hash), data));
      // SIGN 70 takes the hash; the session cuts it to the field size and converts the DER answer
      return arrayBuffer(await key.hsm.sign(key.keyRef, 'ECDSA', digest, { format: 'raw' }));
    }
    const ko = (key as SoftwareKey).keyObject;
    return arrayBuffer(new Uint8Array(nodeSign(hash, bytes(data), { key: ko, dsaEncoding: 'ieee-p1363' })));
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

  override async onImportKey(
    format: KeyFormat,
    keyData: ArrayBuffer | JsonWebKey,
    algorithm: EcKeyImportParams,
    extractable: boolean,
    keyUsages: KeyUsage[],
  ): Promise<CryptoKey> {
    return importEc('ECDSA', format, keyData, algorithm, extractable, keyUsages) as unknown as CryptoKey;
  }

  override async onExportKey(format: KeyFormat, key: CryptoKey): Promise<JsonWebKey | ArrayBuffer> {
    return exportSoftware(format, key as SoftwareKey);
  }
}

/** ECDH with a device key (DECIPHER 80) or a software key; the secret is the X coordinate. */
export class HsmEcdhProvider extends EcdhProvider {
  override namedCurves = [...WEB_CURVE_NAMES];

  constructor(private readonly owner: ProviderOwner) {
    super();
  }

  override checkNamedCurve(namedCurve: string): void {
    curveFromWebName(namedCurve);
  }

  override checkCryptoKey(key: CryptoKey, keyUsage?: KeyUsage): void {
    checkKey(this, key as CoreCryptoKey, keyUsage);
  }

  override checkAlgorithmParams(algorithm: EcdhKeyDeriveParams): void {
    const pub = (algorithm as { public?: unknown }).public;
    if (!(pub instanceof SoftwareKey) || pub.type !== 'public') {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        'ECDH needs the peer public key (imported with this subtle as ECDH) in algorithm.public',
      );
    }
    if (pub.algorithm.name !== 'ECDH') {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `the peer key is a ${pub.algorithm.name} key, not an ECDH key`,
      );
    }
  }

  override checkExportKey(format: KeyFormat, key: CryptoKey): void {
    this.checkKeyFormat(format);
    this.checkCryptoKey(key);
    refuseExport(key as CoreCryptoKey);
  }

  override async onGenerateKey(
    algorithm: EcKeyGenParams & HsmKeyGenExtras,
    extractable: boolean,
    keyUsages: KeyUsage[],
  ): Promise<CryptoKeyPair> {
    return generateEcOnDevice(this.owner, 'ECDH', algorithm, extractable, keyUsages);
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
      secret = await baseKey.hsm.ecdh(
        baseKey.keyRef,
        new Uint8Array(peer.export({ type: 'spki', format: 'der' })),
      );
    } else {
      const own = (baseKey as SoftwareKey).keyObject;
      if (curveOfKeyObject(own).name !== peerCurve.name)
        throw new ScHsmError('INVALID_ARGUMENT', 'the two ECDH keys are on different curves');
      secret = new Uint8Array(diffieHellman({ privateKey: own, publicKey: peer }));
    }
    if (length === null || length === undefined) return arrayBuffer(secret);
    if (length > secret.length * 8)
      throw new (loadCore().OperationError)(`length: at most ${secret.length * 8} bits for this curve`);
    return arrayBuffer(secret.slice(0, length / 8));
  }

  override async onImportKey(
    format: KeyFormat,
    keyData: ArrayBuffer | JsonWebKey,
    algorithm: EcKeyImportParams,
    extractable: boolean,
    keyUsages: KeyUsage[],
  ): Promise<CryptoKey> {
    return importEc('ECDH', format, keyData, algorithm, extractable, keyUsages) as unknown as CryptoKey;
  }

  override async onExportKey(format: KeyFormat, key: CryptoKey): Promise<JsonWebKey | ArrayBuffer> {
    return exportSoftware(format, key as SoftwareKey);
  }
}

// ------------------------------------------------------------------------------------------------
// RSA

type RsaName = 'RSASSA-PKCS1-v1_5' | 'RSA-PSS' | 'RSA-OAEP';

function hashName(h: 'sha1' | 'sha256' | 'sha384' | 'sha512'): 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512' {
  return ({ sha1: 'SHA-1', sha256: 'SHA-256', sha384: 'SHA-384', sha512: 'SHA-512' } as const)[h];
}

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

function keyHash(key: CryptoKey): 'sha1' | 'sha256' | 'sha384' | 'sha512' {
  return nodeHash((key.algorithm as { hash?: unknown }).hash);
}

/** Mixin body shared by the three RSA providers: generation on the device, import and export on the host. */
function rsaCommon(name: RsaName) {
  return {
    async generate(
      owner: ProviderOwner,
      algorithm: RsaHashedKeyGenParams & HsmKeyGenExtras,
      extractable: boolean,
      usages: KeyUsage[],
    ): Promise<CryptoKeyPair> {
      checkNotExtractable(extractable);
      const e = bytes(algorithm.publicExponent as Uint8Array).reduce((a, b) => a * 256 + b, 0);
      const label = hsmLabel(algorithm);
      const g = await owner.hsm.generateKeyPair({
        type: 'rsa',
        bits: algorithm.modulusLength,
        publicExponent: e,
        label,
        ...(algorithm.id ? { id: algorithm.id } : {}),
        ...(algorithm.keyRef !== undefined ? { keyRef: algorithm.keyRef } : {}),
      });
      const handle = { keyRef: g.keyRef, id: g.id, label };
      const pub = createPublicKey({ key: Buffer.from(g.publicKey), format: 'der', type: 'spki' });
      const alg = rsaKeyAlgorithm(name, pub, algorithm.hash);
      return {
        privateKey: HsmPrivateKey.fromHandle(
          owner.hsm,
          handle,
          alg,
          filterUsages(usages, USAGES[name].privateKey),
          algorithm.modulusLength / 8,
        ),
        publicKey: HsmPublicKey.fromSpki(
          handle,
          g.publicKey,
          alg,
          filterUsages(usages, USAGES[name].publicKey),
        ),
      } as unknown as CryptoKeyPair;
    },
    import(
      format: string,
      keyData: ArrayBuffer | JsonWebKey,
      algorithm: RsaHashedImportParams,
      extractable: boolean,
      usages: KeyUsage[],
    ): CryptoKey {
      if (format === 'raw')
        throw new ScHsmError('INVALID_ARGUMENT', 'RSA keys import as spki, pkcs8 or jwk, not raw');
      const ko = nodeKey(format, keyData);
      if (ko.asymmetricKeyType !== 'rsa')
        throw new ScHsmError('INVALID_ARGUMENT', `the ${format} data is not an RSA key`);
      checkImportUsages(
        usages,
        USAGES[name][ko.type === 'private' ? 'privateKey' : 'publicKey'],
        `an ${name} ${ko.type} key`,
      );
      return SoftwareKey.wrap(
        ko,
        rsaKeyAlgorithm(name, ko, algorithm.hash),
        ko.type === 'public' ? true : extractable,
        usages,
      ) as unknown as CryptoKey;
    },
  };
}

const RSASSA = rsaCommon('RSASSA-PKCS1-v1_5');
const PSS = rsaCommon('RSA-PSS');
const OAEP = rsaCommon('RSA-OAEP');

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

/** RSASSA-PKCS1-v1_5: the hash is a property of the key (WebCrypto), the padding is done on the host. */
export class HsmRsaSsaProvider extends RsaSsaProvider {
  constructor(private readonly owner: ProviderOwner) {
    super();
  }

  override checkCryptoKey(key: CryptoKey, keyUsage?: KeyUsage): void {
    checkKey(this, key as CoreCryptoKey, keyUsage);
  }

  override checkExportKey(format: KeyFormat, key: CryptoKey): void {
    this.checkKeyFormat(format);
    this.checkCryptoKey(key);
    refuseExport(key as CoreCryptoKey);
  }

  override async onGenerateKey(
    algorithm: RsaHashedKeyGenParams & HsmKeyGenExtras,
    extractable: boolean,
    keyUsages: KeyUsage[],
  ): Promise<CryptoKeyPair> {
    return RSASSA.generate(this.owner, algorithm, extractable, keyUsages);
  }

  override async onSign(_algorithm: Algorithm, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    const hash = keyHash(key);
    if (key instanceof HsmPrivateKey) {
      return arrayBuffer(await key.hsm.sign(key.keyRef, PKCS1_MECH[hash] as SignMechanism, bytes(data)));
    }
    return arrayBuffer(
      new Uint8Array(
        nodeSign(hash, bytes(data), {
          key: (key as SoftwareKey).keyObject,
          padding: constants.RSA_PKCS1_PADDING,
        }),
      ),
    );
  }

  override async onVerify(
    _algorithm: Algorithm,
    key: CryptoKey,
    signature: ArrayBuffer,
    data: ArrayBuffer,
  ): Promise<boolean> {
    return nodeVerify(
      keyHash(key),
      bytes(data),
      { key: (key as SoftwareKey).keyObject, padding: constants.RSA_PKCS1_PADDING },
      bytes(signature),
    );
  }

  override async onImportKey(
    format: KeyFormat,
    keyData: ArrayBuffer | JsonWebKey,
    algorithm: RsaHashedImportParams,
    extractable: boolean,
    keyUsages: KeyUsage[],
  ): Promise<CryptoKey> {
    return RSASSA.import(format, keyData, algorithm, extractable, keyUsages);
  }

  override async onExportKey(format: KeyFormat, key: CryptoKey): Promise<JsonWebKey | ArrayBuffer> {
    return exportSoftware(format, key as SoftwareKey);
  }
}

/**
 * RSA-PSS. The card pads itself with salt length = hash length (spec §3.13) and MGF1 with the
 * message hash; other salt lengths are refused for device keys (software keys take any).
 */
export class HsmRsaPssProvider extends RsaPssProvider {
  constructor(private readonly owner: ProviderOwner) {
    super();
  }

  override checkCryptoKey(key: CryptoKey, keyUsage?: KeyUsage): void {
    checkKey(this, key as CoreCryptoKey, keyUsage);
  }

  override checkExportKey(format: KeyFormat, key: CryptoKey): void {
    this.checkKeyFormat(format);
    this.checkCryptoKey(key);
    refuseExport(key as CoreCryptoKey);
  }

  override async onGenerateKey(
    algorithm: RsaHashedKeyGenParams & HsmKeyGenExtras,
    extractable: boolean,
    keyUsages: KeyUsage[],
  ): Promise<CryptoKeyPair> {
    return PSS.generate(this.owner, algorithm, extractable, keyUsages);
  }

  override async onSign(algorithm: RsaPssParams, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    const hash = keyHash(key);
    if (key instanceof HsmPrivateKey) {
      if (algorithm.saltLength !== HASH_BYTES[hash]) {
        throw new ScHsmError(
          'INVALID_ARGUMENT',
          `the SmartCard-HSM signs RSA-PSS with salt length = hash length: use saltLength ${HASH_BYTES[hash]} with ${hashName(hash)}; got ${algorithm.saltLength}`,
        );
      }
      return arrayBuffer(await key.hsm.sign(key.keyRef, PSS_MECH[hash] as SignMechanism, bytes(data)));
    }
    return arrayBuffer(
      new Uint8Array(
        nodeSign(hash, bytes(data), {
          key: (key as SoftwareKey).keyObject,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: algorithm.saltLength,
        }),
      ),
    );
  }

  override async onVerify(
    algorithm: RsaPssParams,
    key: CryptoKey,
    signature: ArrayBuffer,
    data: ArrayBuffer,
  ): Promise<boolean> {
    return nodeVerify(
      keyHash(key),
      bytes(data),
      {
        key: (key as SoftwareKey).keyObject,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: algorithm.saltLength,
      },
      bytes(signature),
    );
  }

  override async onImportKey(
    format: KeyFormat,
    keyData: ArrayBuffer | JsonWebKey,
    algorithm: RsaHashedImportParams,
    extractable: boolean,
    keyUsages: KeyUsage[],
  ): Promise<CryptoKey> {
    return PSS.import(format, keyData, algorithm, extractable, keyUsages);
  }

  override async onExportKey(format: KeyFormat, key: CryptoKey): Promise<JsonWebKey | ArrayBuffer> {
    return exportSoftware(format, key as SoftwareKey);
  }
}

/** RSA-OAEP: decryption on the card (raw, padding removed on the host, any hash and label), encryption on the host. */
export class HsmRsaOaepProvider extends RsaOaepProvider {
  constructor(private readonly owner: ProviderOwner) {
    super();
  }

  override checkCryptoKey(key: CryptoKey, keyUsage?: KeyUsage): void {
    checkKey(this, key as CoreCryptoKey, keyUsage);
  }

  override checkExportKey(format: KeyFormat, key: CryptoKey): void {
    this.checkKeyFormat(format);
    this.checkCryptoKey(key);
    refuseExport(key as CoreCryptoKey);
  }

  override async onGenerateKey(
    algorithm: RsaHashedKeyGenParams & HsmKeyGenExtras,
    extractable: boolean,
    keyUsages: KeyUsage[],
  ): Promise<CryptoKeyPair> {
    return OAEP.generate(this.owner, algorithm, extractable, keyUsages);
  }

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
      const block = await key.hsm.decrypt(key.keyRef, 'RSA-RAW', bytes(data));
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

  override async onImportKey(
    format: KeyFormat,
    keyData: ArrayBuffer | JsonWebKey,
    algorithm: RsaHashedImportParams,
    extractable: boolean,
    keyUsages: KeyUsage[],
  ): Promise<CryptoKey> {
    return OAEP.import(format, keyData, algorithm, extractable, keyUsages);
  }

  override async onExportKey(format: KeyFormat, key: CryptoKey): Promise<JsonWebKey | ArrayBuffer> {
    return exportSoftware(format, key as SoftwareKey);
  }
}

// ------------------------------------------------------------------------------------------------
// everything else: node's WebCrypto

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
  throw new ScHsmError('INVALID_ARGUMENT', 'this algorithm needs a key created or imported with this subtle');
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

export type { KeyType };

/**
 * The part every HSM provider shares, whatever webcrypto-core base class it extends: webcrypto-core
 * checks the algorithm dictionaries in its per-algorithm classes (`EcdsaProvider`, `RsaPssProvider`,
 * …), so each provider must extend its own, and {@link hsmProvider} adds to any of them the
 * owner (the open session), the key checks (ours, of this algorithm, with this usage), the refusal
 * to export a device private key, and generate / import / export delegated to a {@link KeyFamily}.
 * A provider then writes only its operations:
 *
 * ```ts
 * class HsmRsaPssProvider extends hsmRsaProvider(RsaPssProvider) {
 *   override async onSign(…) { … }
 *   override async onVerify(…) { … }
 * }
 * ```
 *
 * Device AES keys are not key pairs and have no host half: their `AES-CBC` provider extends the
 * node one instead (src/webcrypto/aes.ts). webcrypto-core's classes are passed in as the lazy
 * stand-ins of src/webcrypto/core.ts, so nothing here loads webcrypto-core.
 */
import type { CryptoKey as CoreCryptoKey, EllipticProvider, ProviderCrypto } from 'webcrypto-core';
import { webCryptoError } from './errors.js';
import { EC_KEYS, type HsmKeyGenExtras, type KeyFamily, type ProviderOwner, RSA_KEYS } from './families.js';
import {
  type WebCryptoKey as CryptoKey,
  type CryptoKeyPair,
  curveFromWebName,
  type EcKeyGenParams,
  type EcKeyImportParams,
  HsmPrivateKey,
  HsmPublicKey,
  type JsonWebKey,
  type KeyFormat,
  type KeyUsage,
  type RsaHashedImportParams,
  type RsaHashedKeyGenParams,
  SoftwareKey,
  WEB_CURVE_NAMES,
} from './keys.js';

/** What {@link hsmProvider} adds to a webcrypto-core provider. */
export interface HsmProviderPart<G, I, K = CryptoKeyPair> {
  /** The `Crypto` whose session generates the keys. */
  readonly owner: ProviderOwner;
  /** INVALID_ARGUMENT unless the key is one of ours, set up for this algorithm, with this usage. */
  checkCryptoKey(key: CryptoKey, keyUsage?: KeyUsage): void;
  /** As webcrypto-core's, and a device private key is refused with a pointer to the DKEK backup. */
  checkExportKey(format: KeyFormat, key: CryptoKey): void;
  onGenerateKey(algorithm: G & HsmKeyGenExtras, extractable: boolean, keyUsages: KeyUsage[]): Promise<K>;
  onImportKey(
    format: KeyFormat,
    keyData: ArrayBuffer | JsonWebKey,
    algorithm: I,
    extractable: boolean,
    keyUsages: KeyUsage[],
  ): Promise<CryptoKey>;
  onExportKey(format: KeyFormat, key: CryptoKey): Promise<JsonWebKey | ArrayBuffer>;
}

/** A provider class built by {@link hsmProvider}: webcrypto-core's `P`, constructed with its owner. */
export type HsmProviderClass<P, G, I, K = CryptoKeyPair> = abstract new (
  owner: ProviderOwner,
) => P & HsmProviderPart<G, I, K>;

function describe(key: CoreCryptoKey): string {
  if (key instanceof HsmPrivateKey || key instanceof HsmPublicKey) return `key reference ${key.keyRef}`;
  return `the ${key.type} key`;
}

/**
 * The getKeyPair arguments that give key reference `keyRef` as an `algorithm` key: RSA
 * algorithms name their hash (the key's own, else SHA-256), since a PSS or OAEP key is bound to it.
 */
function getKeyPairCall(keyRef: number, algorithm: string, key: CoreCryptoKey): string {
  if (!algorithm.toUpperCase().startsWith('RSA'))
    return `{ keyRef: ${keyRef} }, { algorithm: '${algorithm}' }`;
  const hash = (key.algorithm as { hash?: { name?: string } }).hash?.name ?? 'SHA-256';
  return `{ keyRef: ${keyRef} }, { algorithm: { name: '${algorithm}', hash: '${hash}' } }`;
}

/** EC for ECDSA and ECDH keys, RSA for the RSA algorithms. */
function keyFamily(algorithm: string): 'EC' | 'RSA' {
  return algorithm.toUpperCase().startsWith('RSA') ? 'RSA' : 'EC';
}

/** The key must be one of ours, of this algorithm, with this usage: else a clear INVALID_ARGUMENT. */
function checkKey(provider: ProviderCrypto, key: CoreCryptoKey, usage?: KeyUsage): void {
  if (!(key instanceof SoftwareKey || key instanceof HsmPrivateKey)) {
    throw webCryptoError(
      'InvalidAccessError',
      'INVALID_ARGUMENT',
      `${provider.name} needs a key from this provider (a device key from getKeyPair or a key imported with this subtle)`,
    );
  }
  if (key.algorithm.name.toUpperCase() !== provider.name.toUpperCase()) {
    const family = keyFamily(key.algorithm.name);
    // a getKeyPair hint only where it works: an EC key never serves an RSA algorithm, nor the reverse
    const hint =
      family !== keyFamily(provider.name)
        ? `: it is an ${family} key (${family === 'EC' ? 'use ECDSA or ECDH' : 'use RSASSA-PKCS1-v1_5, RSA-PSS or RSA-OAEP'})`
        : key instanceof HsmPrivateKey
          ? `: get it with crypto.getKeyPair(${getKeyPairCall(key.keyRef, provider.name, key)})`
          : '';
    throw webCryptoError(
      'InvalidAccessError',
      'INVALID_ARGUMENT',
      `${describe(key)} is set up for ${key.algorithm.name}, not ${provider.name}${hint}`,
    );
  }
  if (usage && !key.usages.includes(usage)) {
    throw webCryptoError(
      'InvalidAccessError',
      'INVALID_ARGUMENT',
      `${describe(key)} (${key.type}) does not allow "${usage}"; its usages: ${key.usages.join(', ') || 'none'}`,
    );
  }
}

function refuseExport(key: CoreCryptoKey): void {
  if (key instanceof HsmPrivateKey) {
    throw webCryptoError(
      'InvalidAccessError',
      'INVALID_ARGUMENT',
      `the private key of key reference ${key.keyRef} never leaves the SmartCard-HSM; export the public key, or back the key up under the DKEK (wrapKey)`,
    );
  }
  if (!key.extractable)
    throw webCryptoError('InvalidAccessError', 'INVALID_ARGUMENT', 'the key is not extractable');
}

/**
 * webcrypto-core's provider class `Base` with the shared HSM part ({@link HsmProviderPart}); its
 * keys come from `keys`. The provider's algorithm is `Base`'s `name`, one of the names of `USAGES`
 * (src/webcrypto/keys.ts).
 */
export function hsmProvider<P extends ProviderCrypto, G, I, K = CryptoKeyPair>(
  Base: abstract new () => P,
  keys: KeyFamily<G, I, K>,
): HsmProviderClass<P, G, I, K> {
  abstract class HsmProvider extends (Base as abstract new () => ProviderCrypto) {
    constructor(readonly owner: ProviderOwner) {
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
      algorithm: G & HsmKeyGenExtras,
      extractable: boolean,
      keyUsages: KeyUsage[],
    ): Promise<K> {
      return keys.generate(this.owner, this.name, algorithm, extractable, keyUsages);
    }

    override async onImportKey(
      format: KeyFormat,
      keyData: ArrayBuffer | JsonWebKey,
      algorithm: I,
      extractable: boolean,
      keyUsages: KeyUsage[],
    ): Promise<CryptoKey> {
      const key = keys.import(this.name, format, keyData, algorithm, extractable, keyUsages);
      return key as unknown as CryptoKey;
    }

    override async onExportKey(format: KeyFormat, key: CryptoKey): Promise<JsonWebKey | ArrayBuffer> {
      return keys.export(format, key as CoreCryptoKey);
    }
  }
  return HsmProvider as unknown as HsmProviderClass<P, G, I, K>;
}

/** {@link hsmProvider} for ECDSA and ECDH: {@link EC_KEYS}, and every curve of the card is accepted. */
export function hsmEcProvider<P extends EllipticProvider>(
  Base: abstract new () => P,
): HsmProviderClass<P, EcKeyGenParams, EcKeyImportParams> {
  abstract class HsmEcProvider extends hsmProvider(Base as abstract new () => EllipticProvider, EC_KEYS) {
    override namedCurves = [...WEB_CURVE_NAMES];

    override checkNamedCurve(namedCurve: string): void {
      curveFromWebName(namedCurve);
    }
  }
  return HsmEcProvider as unknown as HsmProviderClass<P, EcKeyGenParams, EcKeyImportParams>;
}

/** {@link hsmProvider} for RSASSA-PKCS1-v1_5, RSA-PSS and RSA-OAEP: {@link RSA_KEYS}. */
export function hsmRsaProvider<P extends ProviderCrypto>(
  Base: abstract new () => P,
): HsmProviderClass<P, RsaHashedKeyGenParams, RsaHashedImportParams> {
  return hsmProvider(Base, RSA_KEYS);
}

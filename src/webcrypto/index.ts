/** WebCrypto over the SmartCard-HSM: `ScHsmCrypto` and its keys (guide/style.md, the node-webcrypto-p11 model). */
export { HsmAesCbcProvider, HsmSecretKey } from './aes.js';
export { HsmCertificateStorage, HsmX509Certificate } from './cert-storage.js';
export {
  type HsmKeyPair,
  type KeyPairOptions,
  type KeyQuery,
  ScHsmCrypto,
  ScHsmSubtleCrypto,
} from './crypto.js';
export type { WebCryptoErrorName } from './errors.js';
export type { HsmKeyGenExtras } from './families.js';
export {
  curveFromWebName,
  type HsmAlgorithmName,
  type HsmKeyHandle,
  HsmPrivateKey,
  HsmPublicKey,
  NativeKey,
  SoftwareKey,
  WEB_CURVE_NAMES,
  webCurveName,
} from './keys.js';
export { NODE_ALGORITHMS } from './node-provider.js';
export { HsmKeyStorage } from './storage.js';

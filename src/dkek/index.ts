/**
 * DKEK codecs (spec §7, §8): share files and their KDF, password shares, the DKEK with its KCV and
 * wrapping keys, key blobs, wrap files. Pure code, no I/O.
 */
export {
  aesCmac,
  combineShares,
  deriveWrapKeys,
  isZeroDkekKcv,
  type KeyCheckValue,
  keyCheckValue,
  ZERO_DKEK_KCV,
} from './dkek.js';
export { SHARE_KDF_ITERATIONS } from './kdf.js';
export {
  DEFAULT_AES_ALGORITHMS,
  type DecodedKeyBlob,
  decryptKeyBlob,
  encryptKeyBlob,
  inspectKeyBlob,
  type KeyBlobHeader,
  type KeyBlobType,
  type KeyMaterial,
} from './key-blob.js';
export {
  combinePasswordShares,
  formatShareHex,
  type PasswordShare,
  parseShareHex,
  resplitPassword,
  shareIdForScHsmTool,
  splitPassword,
} from './password-shares.js';
export {
  createDkekShareFile,
  type DkekShareFile,
  decryptDkekShare,
  encryptDkekShare,
  randomSharePassword,
  type ShareFileOptions,
} from './share-file.js';
export { decodeWrapFile, encodeWrapFile, type WrapFile } from './wrap-file.js';

/**
 * sc-hsm-ts: a pure-TypeScript driver for the SmartCard-HSM (Nitrokey HSM 2).
 * The top floor of src/ (README, Design; test/layers.test.ts): errors, util, protocol → apdu
 * (ISO 7816, PC/SC), the pure codecs pkcs15 and dkek → sc-hsm (the session, the reader choice),
 * sim (the virtual card) → webcrypto, x509 → cli; nothing in src/ imports this file.
 *
 * The package root (`sc-hsm-ts`) is the core a program that talks to a device needs: the session
 * and the types of its signatures, the transports, the errors, the DKEK and PKCS#15 codecs, dump,
 * backup and restore. The rest has its own path, so that a consumer loads and type-checks only
 * what it uses (package.json `exports`, tsup.config.ts):
 *
 *   sc-hsm-ts/sim        the virtual card (src/sim/index.ts)
 *   sc-hsm-ts/webcrypto  HSM keys as WebCrypto keys (src/webcrypto/index.ts; needs `lib: ["DOM"]`)
 *   sc-hsm-ts/x509       CSRs, certificates, device authenticity (src/x509/index.ts; `lib: ["DOM"]`)
 *   sc-hsm-ts/testing    fault injection, APDU transcripts, recording and replay (src/testing.ts)
 *
 * Byte helpers (src/util/), the card's raw constants (src/protocol/) and the APDU codec are
 * internal. docs/contracts.md lists the module interfaces.
 */

export type { CommandApdu, ResponseApdu } from './apdu/command.js';
export { type PcscConnectOptions, PcscTransport, type ReaderEvent, type ReaderState } from './apdu/pcsc.js';
export { watchReaders } from './apdu/readers.js';
export type { ApduChannel, ExchangeOptions, Transport } from './apdu/transport.js';
export {
  combinePasswordShares,
  combineShares,
  createDkekShareFile,
  DEFAULT_AES_ALGORITHMS,
  type DecodedKeyBlob,
  type DkekShareFile,
  decodeWrapFile,
  decryptDkekShare,
  decryptKeyBlob,
  encodeWrapFile,
  encryptDkekShare,
  encryptKeyBlob,
  formatShareHex,
  inspectKeyBlob,
  isZeroDkekKcv,
  type KeyBlobHeader,
  type KeyBlobType,
  type KeyCheckValue,
  type KeyMaterial,
  keyCheckValue,
  type PasswordShare,
  parseShareHex,
  randomSharePassword,
  resplitPassword,
  SHARE_KDF_ITERATIONS,
  type ShareFileOptions,
  shareIdForScHsmTool,
  splitPassword,
  type WrapFile,
  ZERO_DKEK_KCV,
} from './dkek/index.js';
export * from './errors.js';
export * from './pkcs15/index.js';
export * from './sc-hsm/backup.js';
export * from './sc-hsm/dump.js';
export {
  type ListReadersOptions,
  listReaders,
  type OpenPcscOptions,
  openPcsc,
  type ReaderInfo,
  type SmartCardHsmEvent,
  watchSmartCardHsms,
} from './sc-hsm/open-pcsc.js';
export * from './sc-hsm/session.js';
export * from './sc-hsm/wrap-info.js';
export {
  CURVES,
  type CurveAlias,
  type CurveInfo,
  type CurveName,
  type CurveNameOrAlias,
  curveByName,
} from './util/curves.js';

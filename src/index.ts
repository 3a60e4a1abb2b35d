/**
 * sc-hsm-ts: a pure-TypeScript driver for the SmartCard-HSM (Nitrokey HSM 2).
 * The top floor of src/ (README, Design; test/layers.test.ts): errors, util, protocol → apdu
 * (ISO 7816, PC/SC), the pure codecs pkcs15 and dkek → sc-hsm (the session, the reader choice),
 * sim (the virtual card) → webcrypto, x509 → cli; this file re-exports the library and nothing in
 * src/ imports it. docs/contracts.md lists the module interfaces.
 */

export * from './apdu/command.js';
export * from './apdu/fault.js';
export {
  MAX_RESPONSE_LENGTH,
  PCSC_CODES,
  type PcscConnectOptions,
  PcscContext,
  PcscTransport,
  pcscError,
  type ReaderEvent,
  type ReaderState,
} from './apdu/pcsc.js';
export { watchReaders } from './apdu/readers.js';
export * from './apdu/status.js';
export * from './apdu/transcript.js';
export * from './apdu/transport.js';
export * from './dkek/index.js';
export * from './errors.js';
export * from './pkcs15/index.js';
export * from './protocol/constants.js';
export * from './sc-hsm/backup.js';
export * from './sc-hsm/dump.js';
export {
  isSmartCardHsmSelectResponse,
  type ListReadersOptions,
  listReaders,
  type OpenPcscOptions,
  openPcsc,
  type ReaderInfo,
  SELECT_APPLET,
  type SmartCardHsmEvent,
  watchSmartCardHsms,
} from './sc-hsm/open-pcsc.js';
export { pinTryOf } from './sc-hsm/pin-guard.js';
export * from './sc-hsm/session.js';
export * from './sc-hsm/transcript-mask.js';
export { maxRetryForPinLength, parseSoPin, parseUserPin } from './sc-hsm/validate.js';
export * from './sc-hsm/wrap-info.js';
export * from './sim/index.js';
export * from './util/bytes.js';
export * from './util/curves.js';
export * from './webcrypto/index.js';
export * from './x509/index.js';

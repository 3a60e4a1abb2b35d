/**
 * sc-hsm-ts: a pure-TypeScript driver for the SmartCard-HSM (Nitrokey HSM 2).
 * Layers: apdu (ISO 7816) → sc-hsm (the session) with pure codecs pkcs15 and dkek beside it;
 * sim is the virtual card.
 */
export * from './errors.js';
export * from './util/bytes.js';
export * from './util/curves.js';
export * from './apdu/command.js';
export * from './apdu/status.js';
export * from './apdu/transport.js';
export * from './apdu/transcript.js';
export * from './sc-hsm/constants.js';

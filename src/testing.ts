/**
 * `sc-hsm-ts/testing`: what a test of a program built on sc-hsm-ts needs and a program does not.
 * Transports that wrap another one: `FaultInjectingTransport` fails the k-th APDU the way a card
 * or reader does (removed, reset, transport error, malformed or truncated answer; before or after
 * delivery), `RecordingTransport` writes the `=> hex` / `<= hex` transcript of every exchange with
 * the SmartCard-HSM's secrets masked (`secretMask`: PINs, SO-PIN, key shares), and
 * `ReplayTransport` answers from such a transcript and fails on any divergence (README, Design:
 * "Transcript-first tests"). Floor 5 like src/index.ts (test/layers.test.ts).
 */

export {
  FAULT_KINDS,
  FaultInjectingTransport,
  type FaultKind,
  type FaultPlan,
  type ResettableTransport,
} from './apdu/fault.js';
export {
  isoSecretMask,
  MASK,
  maskedHex,
  RecordingTransport,
  ReplayTransport,
  type SecretMask,
  type TranscriptSink,
} from './apdu/transcript.js';
export { maskedCommandHex, secretMask } from './sc-hsm/transcript-mask.js';

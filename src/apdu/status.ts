/**
 * Status words to typed errors (spec §3.21). The mapping is generic ISO 7816 with the meanings the
 * SmartCard-HSM gives them; a command site may override single status words (e.g. `6A88` on
 * VERIFY means "not initialized", on DELETE of a key `6A82` means "key not found").
 */
import { ScHsmError, type ScHsmErrorCode } from '../errors.js';

export function swHex(sw: number): string {
  return sw.toString(16).toUpperCase().padStart(4, '0');
}

export type SwOverrides = Partial<Record<number, [ScHsmErrorCode, string]>>;

/** Builds the typed error for a status word that is not success. */
export function errorForStatus(sw: number, command: string, overrides?: SwOverrides): ScHsmError {
  const o = overrides?.[sw];
  const opts = { sw, command };
  if (o) return new ScHsmError(o[0], `${command}: ${o[1]} (SW ${swHex(sw)})`, opts);
  if ((sw & 0xfff0) === 0x63c0) {
    const n = sw & 0x0f;
    return new ScHsmError(
      n === 0 ? 'PIN_BLOCKED' : 'WRONG_PIN',
      n === 0
        ? `${command}: wrong PIN, no tries left: the PIN is now blocked (SW ${swHex(sw)})`
        : `${command}: wrong PIN, ${n} ${n === 1 ? 'try' : 'tries'} left (SW ${swHex(sw)})`,
      { ...opts, triesLeft: n },
    );
  }
  const table: Record<number, [ScHsmErrorCode, string]> = {
    0x6700: ['WRONG_LENGTH', 'wrong length'],
    0x6982: ['SECURITY_STATUS', 'security status not satisfied: verify the user PIN first'],
    0x6983: ['PIN_BLOCKED', 'PIN blocked: unblock it with the SO-PIN (pin unblock)'],
    0x6984: [
      'TRANSPORT_PIN_ACTIVE',
      'referenced data not usable (transport PIN active or key use counter exhausted)',
    ],
    0x6985: ['CONDITIONS_NOT_SATISFIED', 'conditions of use not satisfied'],
    0x6986: ['CONDITIONS_NOT_SATISFIED', 'command not allowed (option not enabled on this device)'],
    0x6a80: ['INCORRECT_DATA', 'incorrect data in the command'],
    0x6a81: ['ALGORITHM_NOT_ALLOWED', 'algorithm not allowed for this key'],
    0x6a82: ['FILE_NOT_FOUND', 'file or application not found'],
    0x6a84: ['MEMORY_FULL', 'not enough memory on the device'],
    0x6a86: ['WRONG_PARAMETERS', 'incorrect parameters P1/P2'],
    0x6a88: ['DATA_NOT_FOUND', 'referenced data not found'],
    0x6b00: ['WRONG_PARAMETERS', 'wrong parameters P1/P2'],
    0x6d00: ['NOT_SUPPORTED', 'instruction not supported (applet not selected, or feature not configured)'],
    0x6e00: ['NOT_SUPPORTED', 'class not supported (applet not selected)'],
    0x6f00: ['CARD_ERROR', 'internal error of the card'],
  };
  const t = table[sw];
  if (t) return new ScHsmError(t[0], `${command}: ${t[1]} (SW ${swHex(sw)})`, opts);
  return new ScHsmError('CARD_ERROR', `${command}: the card answered SW ${swHex(sw)}`, opts);
}

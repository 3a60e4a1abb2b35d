/**
 * Host-side validation, run before any command that could cost a PIN try, erase a key or brick
 * the device (spec §9). Messages never contain the rejected secret, only what is wrong with it.
 */
import { ScHsmError } from '../errors.js';
import { fromHex } from '../util/bytes.js';
import { USER_PIN_MAX, USER_PIN_MIN } from './constants.js';

/**
 * Checks an SO-PIN and returns its 8 binary bytes. It must be exactly 16 hexadecimal characters
 * (spec §9: sent as 8 bytes; a malformed SO-PIN set at initialization makes the device permanently
 * inaccessible, so nothing else is accepted).
 */
export function parseSoPin(soPin: string, what = 'SO-PIN'): Uint8Array {
  if (typeof soPin !== 'string' || !/^[0-9a-fA-F]{16}$/.test(soPin)) {
    const len = typeof soPin === 'string' ? soPin.length : 0;
    const hexOnly = typeof soPin === 'string' && /^[0-9a-fA-F]*$/.test(soPin);
    const why = hexOnly
      ? `it has ${len} character${len === 1 ? '' : 's'}`
      : 'it contains characters other than 0-9 and A-F';
    throw new ScHsmError(
      'INVALID_SO_PIN',
      `the ${what} must be exactly 16 hexadecimal characters (0-9, A-F), e.g. 0123456789ABCDEF; ${why}. Nothing was sent to the card.`,
    );
  }
  return fromHex(soPin);
}

/** Checks a user PIN (6–15 characters, spec §9) and returns its bytes as the card expects them (UTF-8). */
export function parseUserPin(pin: string, what = 'user PIN'): Uint8Array {
  if (typeof pin !== 'string') throw new ScHsmError('INVALID_PIN', `the ${what} must be a string`);
  const bytes = new TextEncoder().encode(pin);
  if (bytes.length < USER_PIN_MIN || bytes.length > USER_PIN_MAX) {
    throw new ScHsmError(
      'INVALID_PIN',
      `the ${what} must be ${USER_PIN_MIN} to ${USER_PIN_MAX} characters long; it has ${bytes.length}. Nothing was sent to the card.`,
    );
  }
  return bytes;
}

/**
 * Highest user-PIN retry counter the card accepts for a PIN of this length (spec §9: 3 for six
 * characters, 5 for seven, 10 for eight or more).
 */
export function maxRetryForPinLength(len: number): number {
  if (len <= 6) return 3;
  if (len === 7) return 5;
  return 10;
}

export function checkRetryCounter(retry: number, pinLength: number): void {
  const max = maxRetryForPinLength(pinLength);
  if (!Number.isInteger(retry) || retry < 1 || retry > max) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `the user PIN retry counter must be an integer from 1 to ${max} for a PIN of ${pinLength} characters (3 for 6, 5 for 7, 10 for 8 or more); got ${retry}`,
    );
  }
}

/** A key reference is the low byte of the key's file id `CCxx`: 1–255 (0 is the device key). */
export function checkKeyRef(keyRef: number): void {
  if (!Number.isInteger(keyRef) || keyRef < 1 || keyRef > 255) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `a key reference must be an integer from 1 to 255 (the low byte of the key's file CCxx, shown as "Key ref" by pkcs15-tool); got ${keyRef}`,
    );
  }
}

export function checkLabel(label: string, what = 'label'): void {
  const n = new TextEncoder().encode(label).length;
  if (typeof label !== 'string' || n < 1 || n > 32) {
    throw new ScHsmError('INVALID_ARGUMENT', `the ${what} must be 1 to 32 bytes of UTF-8; it has ${n}`);
  }
}

export function checkInt(value: number, min: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `${what} must be an integer from ${min} to ${max}; got ${value}`,
    );
  }
}

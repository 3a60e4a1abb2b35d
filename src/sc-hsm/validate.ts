/**
 * Host-side validation, run before any command that could cost a PIN try, erase a key or brick
 * the device (spec §9). Messages never contain the rejected secret, only what is wrong with it.
 */
import { ScHsmError } from '../errors.js';
import { RSA_SIZES, USER_PIN_MAX, USER_PIN_MIN } from '../protocol/constants.js';
import { fromHex } from '../util/bytes.js';

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

/**
 * Checks a user PIN and returns its bytes as the card receives them. A user PIN is 6 to 15
 * printable ASCII characters (letters, digits and the symbols of ASCII, inner spaces allowed):
 * one character is one byte on the wire, so the length is counted in one unit, and there is no
 * Unicode normal form to disagree about (the same "é" typed on two systems can be two different
 * byte strings). OpenSC and PIN pads treat the PIN as ASCII too (spec §9). A space at either end
 * is refused: nobody can see it, and `sc-hsm-ts` strips it from files and prompts.
 */
export function parseUserPin(pin: string, what = 'user PIN'): Uint8Array {
  if (typeof pin !== 'string')
    throw new ScHsmError('INVALID_PIN', `the ${what} must be a string; got ${typeName(pin)}`);
  const bad = [...pin].findIndex((c) => c < ' ' || c > '~');
  if (bad >= 0) {
    throw new ScHsmError(
      'INVALID_PIN',
      `the ${what} may contain only printable ASCII characters (letters, digits, ASCII symbols); character ${bad + 1} is not one. Nothing was sent to the card.`,
    );
  }
  if (pin.length < USER_PIN_MIN || pin.length > USER_PIN_MAX) {
    throw new ScHsmError(
      'INVALID_PIN',
      `the ${what} must be ${USER_PIN_MIN} to ${USER_PIN_MAX} characters long; it has ${pin.length}. Nothing was sent to the card.`,
    );
  }
  if (pin.startsWith(' ') || pin.endsWith(' ')) {
    throw new ScHsmError(
      'INVALID_PIN',
      `the ${what} begins or ends with a space. Nothing was sent to the card.`,
    );
  }
  return new TextEncoder().encode(pin);
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
  if (typeof retry !== 'number' || !Number.isInteger(retry) || retry < 1 || retry > max) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `the user PIN retry counter must be an integer from 1 to ${max} for a PIN of ${pinLength} characters (3 for 6, 5 for 7, 10 for 8 or more); got ${shown(retry)}`,
    );
  }
}

/** A key reference is the low byte of the key's file id `CCxx`: 1–255 (0 is the device key). */
export function checkKeyRef(keyRef: number, what = 'a key reference'): void {
  if (typeof keyRef !== 'number' || !Number.isInteger(keyRef) || keyRef < 1 || keyRef > 255) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `${what} must be an integer from 1 to 255 (the low byte of the key's file CCxx, shown as "Key ref" by pkcs15-tool); got ${shown(keyRef)}`,
    );
  }
}

export function checkLabel(label: string, what = 'label'): void {
  if (typeof label !== 'string')
    throw new ScHsmError('INVALID_ARGUMENT', `the ${what} must be a string; got ${typeName(label)}`);
  const n = new TextEncoder().encode(label).length;
  if (n < 1 || n > LABEL_MAX_BYTES) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `the ${what} must be 1 to ${LABEL_MAX_BYTES} bytes of UTF-8 (${LABEL_MAX_BYTES} ASCII characters; an accented or non-Latin letter takes 2 to 4 bytes); it has ${n} bytes`,
    );
  }
  checkText(label, `the ${what}`);
}

/**
 * The RSA key sizes the card supports (RSA_SIZES, spec §3.11), for every way a key gets onto it:
 * generated there or imported. INVALID_ARGUMENT otherwise.
 */
export function checkRsaBits(bits: number): void {
  if (!(RSA_SIZES as readonly number[]).includes(bits)) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `an RSA key of ${shown(bits)} bits is not supported by the SmartCard-HSM; supported: ${RSA_SIZES.join(', ')} bits`,
    );
  }
}

/** Longest label in bytes of UTF-8 (token, key, certificate and data object labels). */
export const LABEL_MAX_BYTES = 32;

/**
 * What no label or other text the tool writes to a card may contain, because a terminal would act
 * on it instead of showing it: C0 and C1 control characters and DEL (ESC, BEL, newline, …), the
 * line and paragraph separators U+2028/U+2029, the bidirectional formatting characters (U+061C,
 * U+200E, U+200F, U+202A–U+202E, U+2066–U+2069: they reorder what is shown), and unpaired
 * surrogates (not Unicode text). Every other character — letters of any script, digits, symbols,
 * spaces, emoji — is allowed.
 */
export const UNSAFE_TEXT = /[\p{Cc}\p{Cs}\p{Zl}\p{Zp}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

/** The 1-based position (in characters) of the first {@link UNSAFE_TEXT} character, or 0. */
export function unsafeTextPosition(text: string): number {
  let i = 0;
  for (const c of text) {
    i++;
    if (UNSAFE_TEXT.test(c)) return i;
  }
  return 0;
}

/** INVALID_ARGUMENT when `text` holds a character of {@link UNSAFE_TEXT} (named by its code, never shown raw). */
export function checkText(text: string, what: string): void {
  const at = unsafeTextPosition(text);
  if (at > 0) {
    const c = [...text][at - 1]!.codePointAt(0)!;
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `${what} contains a control or text-direction character (U+${c.toString(16).toUpperCase().padStart(4, '0')} at character ${at}); only printable text is allowed`,
    );
  }
}

export function checkInt(value: number, min: number, max: number, what: string): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `${what} must be an integer from ${min} to ${max}; got ${shown(value)}`,
    );
  }
}

/**
 * A file identifier (spec §4): two bytes. 0000, 3F00 (the MF) and FFFF are not files a host
 * reads or writes; everything else the card decides about.
 */
export function checkFid(fid: number, what = 'a file id'): void {
  checkInt(fid, 0x0001, 0xfffe, `${what} (two bytes, e.g. 0x2F02)`);
}

/** A byte string argument, optionally of a length in [min, max]. */
export function checkBytes(value: Uint8Array, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): void {
  if (!(value instanceof Uint8Array))
    throw new ScHsmError('INVALID_ARGUMENT', `${what} must be a Uint8Array; got ${typeName(value)}`);
  if (value.length < min || value.length > max) {
    const range =
      max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : min === max ? `${min}` : `${min} to ${max}`;
    throw new ScHsmError('INVALID_ARGUMENT', `${what} must be ${range} bytes; got ${value.length}`);
  }
}

/** A string argument that must be one of `allowed`. */
export function checkOneOf<T extends string>(value: T, allowed: readonly T[], what: string): void {
  if (typeof value !== 'string' || !allowed.includes(value)) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `${what} must be one of ${allowed.join(', ')}; got ${typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : typeName(value)}`,
    );
  }
}

/**
 * An options or spec object: a plain object (undefined allowed where `optional`), whose listed
 * fields have the given types when present.
 */
export function checkObject(
  value: unknown,
  what: string,
  fields: Record<string, 'boolean' | 'string' | 'number' | 'bytes' | 'object' | 'function'> = {},
  optional = false,
): void {
  if (value === undefined && optional) return;
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array)
    throw new ScHsmError('INVALID_ARGUMENT', `${what} must be an object; got ${typeName(value)}`);
  for (const [k, t] of Object.entries(fields)) {
    const v = (value as Record<string, unknown>)[k];
    if (v === undefined) continue;
    const ok =
      t === 'bytes'
        ? v instanceof Uint8Array
        : t === 'object'
          ? v !== null && typeof v === 'object'
          : typeof v === t;
    if (!ok) {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `${what}.${k} must be ${t === 'bytes' ? 'a Uint8Array' : `a ${t}`}; got ${typeName(v)}`,
      );
    }
  }
}

/** What a value is, for messages (never the value itself: it could be a secret). */
export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return 'a Uint8Array';
  return typeof v === 'object' ? 'an object' : typeof v;
}

/** A number as it was given; anything else by its type. */
function shown(v: unknown): string {
  return typeof v === 'number' ? String(v) : typeName(v);
}

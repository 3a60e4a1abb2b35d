/**
 * One error class for everything the library reports, with a stable `code`.
 * The command's exit code and its `--json` error object are derived from `code`.
 */

export const ERROR_CODES = [
  // card status words (spec §3.21)
  'WRONG_PIN',
  'PIN_BLOCKED',
  'TRANSPORT_PIN_ACTIVE',
  'SECURITY_STATUS',
  'NOT_INITIALIZED',
  'KEY_NOT_FOUND',
  'FILE_NOT_FOUND',
  'DATA_NOT_FOUND',
  'WRONG_LENGTH',
  'CONDITIONS_NOT_SATISFIED',
  'NOT_SUPPORTED',
  'APPLET_NOT_SELECTED',
  'INCORRECT_DATA',
  'ALGORITHM_NOT_ALLOWED',
  'WRONG_PARAMETERS',
  'MEMORY_FULL',
  'CARD_ERROR',
  // host-side validation
  'INVALID_SO_PIN',
  'INVALID_PIN',
  'INVALID_ARGUMENT',
  'PIN_TRIES_LOW',
  // the session itself
  'SESSION_CLOSED',
  /** Secure messaging failed (a wrong or missing MAC, a replayed answer, the card ended SM); the channel is gone. */
  'SECURE_MESSAGING',
  /** The device certificate chain (EF 2F02) does not verify to a trusted root: no secure channel with it. */
  'DEVICE_NOT_AUTHENTIC',
  // public key authentication (spec §3.18)
  /** The device was initialized without public key authentication (`80 54` answers 6D00). */
  'PKA_NOT_CONFIGURED',
  /** A custodian's device certificate chain does not end at a key the target device knows. */
  'PKA_CHAIN_UNTRUSTED',
  /** The device refused a custodian's answer: wrong key, wrong or stale challenge. */
  'PKA_AUTH_FAILED',
  /** This public key is registered on the device already, or every slot is taken. */
  'PKA_KEY_REGISTERED',
  /** Not a file of `sc-hsm-tool --export-for-pub-key-auth`, nor a challenge/response file of ours. */
  'INVALID_PKA_FILE',
  // decoding
  'MALFORMED_RESPONSE',
  'MALFORMED_DATA',
  // DKEK and key blobs (spec §7, §8)
  'WRONG_PASSWORD',
  'INVALID_SHARE_FILE',
  'KCV_MISMATCH',
  'MAC_INVALID',
  'INVALID_KEY_BLOB',
  'INVALID_WRAP_FILE',
  'DKEK_INCOMPLETE',
  'NO_DKEK',
  'KEY_REF_OCCUPIED',
  /** A forced replace refused: the key there cannot be wrapped first, so a failure would lose it. */
  'REPLACE_UNSAFE',
  /** A forced replace failed and the key it was replacing could not be put back (KeyReplaceError). */
  'KEY_LOST',
  'BACKUP_INVALID',
  /** A DKEK share the host knows was already imported into this DKEK (it would cancel out). */
  'DKEK_SHARE_REPEATED',
  /** A DKEK anyone can compute: all zero, or equal to one of its shares (the others cancelled out). */
  'DKEK_DEGENERATE',
  /** A PKCS#15 key ID that another key on the device already has. */
  'KEY_ID_IN_USE',
  /** Key domains (spec §3.10): a number beyond the device's domains (6A86). */
  'KEY_DOMAIN_OUT_OF_RANGE',
  /** A key domain that was never created or was deleted (6A88). */
  'KEY_DOMAIN_UNUSED',
  /** Creating a key domain that exists. */
  'KEY_DOMAIN_EXISTS',
  /** Deleting a key domain that still holds keys (6A89). */
  'KEY_DOMAIN_NOT_EMPTY',
  /** An XKEK (key agreement) key domain: not managed by sc-hsm-ts. */
  'XKEK_NOT_SUPPORTED',
  /** The key's use counter (GAKP tag 90) reached 0: the card refuses every private-key operation with it (6984). */
  'USE_COUNTER_EXHAUSTED',
  /** EC derivation (`80 76`): the card's derived key does not have the public key the host computed. */
  'DERIVED_KEY_MISMATCH',
  // transport and PC/SC
  'TRANSPORT_ERROR',
  'PCSC_UNAVAILABLE',
  'NO_READER',
  'NO_CARD',
  'CARD_REMOVED',
  'CARD_RESET',
  'READER_BUSY',
  'AMBIGUOUS_READER',
  'NOT_A_SMARTCARD_HSM',
  'REPLAY_MISMATCH',
  /** The card did not answer one APDU within the transport's `timeoutMs`; the transport is dead. */
  'TIMEOUT',
  /** The caller's AbortSignal fired: a long operation (share-file KDF, backup, restore) stopped. */
  'ABORTED',
  // virtual card
  'INVALID_STATE_FILE',
  // file system (host)
  'IO_ERROR',
  'HOST_FILE_NOT_FOUND',
  'FILE_EXISTS',
] as const;

export type ScHsmErrorCode = (typeof ERROR_CODES)[number];

export interface ScHsmErrorOptions {
  /** Status word the card answered, where the error came from the card. */
  sw?: number;
  /** Name of the command that failed, e.g. `VERIFY` or `GENERATE ASYMMETRIC KEY PAIR`. */
  command?: string;
  /** PIN tries left, where the card said so (`63 Cx`). */
  triesLeft?: number;
  /** Which PIN a PIN error is about: the user PIN or the SO-PIN (their remedies differ). */
  pin?: PinKind;
  /**
   * The key reference an interrupted command may have left something at (a key generated without
   * its description, or a key that is complete although the call failed).
   */
  keyRef?: number;
  /**
   * KEY_ID_IN_USE: the key reference of the key that already has the ID (an existing, complete
   * key: never something to clean up, unlike `keyRef`).
   */
  existingKeyRef?: number;
  /** The next step that fits this very failure, where it is more specific than the code's. */
  fix?: string;
  cause?: unknown;
}

/** The two PINs of the device: the user PIN (reference 81) and the SO-PIN (88). */
export type PinKind = 'user-pin' | 'so-pin';

/**
 * The brand every ScHsmError carries (on its prototype), registered with `Symbol.for` so that the
 * ESM and the CommonJS build of this package, or two installed copies, recognise each other's
 * errors: `isScHsmError` and `instanceof ScHsmError` check it instead of the prototype chain.
 */
export const SC_HSM_ERROR_BRAND: unique symbol = Symbol.for('sc-hsm-ts.ScHsmError') as never;

export class ScHsmError extends Error {
  /**
   * `instanceof ScHsmError` is true for an error from any copy of the package (the brand); for a
   * subclass (`instanceof KeyReplaceError`) the ordinary prototype check applies.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class instanceof was asked about
    if (this !== ScHsmError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return hasBrand(value);
  }

  readonly code: ScHsmErrorCode;
  readonly sw?: number;
  readonly command?: string;
  readonly triesLeft?: number;
  readonly pin?: PinKind;
  readonly keyRef?: number;
  readonly existingKeyRef?: number;
  readonly fix?: string;

  constructor(code: ScHsmErrorCode, message: string, options: ScHsmErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ScHsmError';
    this.code = code;
    if (options.sw !== undefined) this.sw = options.sw;
    if (options.command !== undefined) this.command = options.command;
    if (options.triesLeft !== undefined) this.triesLeft = options.triesLeft;
    if (options.pin !== undefined) this.pin = options.pin;
    if (options.keyRef !== undefined) this.keyRef = options.keyRef;
    if (options.existingKeyRef !== undefined) this.existingKeyRef = options.existingKeyRef;
    if (options.fix !== undefined) this.fix = options.fix;
  }

  /** The status word as four hex digits, e.g. `63C2`, or undefined. */
  get swHex(): string | undefined {
    return this.sw === undefined ? undefined : this.sw.toString(16).toUpperCase().padStart(4, '0');
  }

  toJSON(): Record<string, unknown> {
    const o: Record<string, unknown> = { code: this.code, message: this.message };
    if (this.sw !== undefined) o.sw = this.swHex;
    if (this.command !== undefined) o.command = this.command;
    if (this.triesLeft !== undefined) o.triesLeft = this.triesLeft;
    if (this.pin !== undefined) o.pin = this.pin;
    if (this.keyRef !== undefined) o.keyRef = this.keyRef;
    if (this.existingKeyRef !== undefined) o.existingKeyRef = this.existingKeyRef;
    if (this.fix !== undefined) o.fix = this.fix;
    return o;
  }
}

Object.defineProperty(ScHsmError.prototype, SC_HSM_ERROR_BRAND, { value: true });

function hasBrand(value: unknown): boolean {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    (value as Record<symbol, unknown>)[SC_HSM_ERROR_BRAND] === true
  );
}

/**
 * True for an error of this library, from whichever copy of the package threw it (ESM or CommonJS
 * build, two installed versions): the brand, not the prototype chain. With `code`, only that code.
 */
export function isScHsmError(e: unknown, code?: ScHsmErrorCode): e is ScHsmError {
  return hasBrand(e) && (code === undefined || (e as ScHsmError).code === code);
}

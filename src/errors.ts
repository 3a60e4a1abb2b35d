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
  'BACKUP_INVALID',
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
  cause?: unknown;
}

export class ScHsmError extends Error {
  readonly code: ScHsmErrorCode;
  readonly sw?: number;
  readonly command?: string;
  readonly triesLeft?: number;

  constructor(code: ScHsmErrorCode, message: string, options: ScHsmErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ScHsmError';
    this.code = code;
    if (options.sw !== undefined) this.sw = options.sw;
    if (options.command !== undefined) this.command = options.command;
    if (options.triesLeft !== undefined) this.triesLeft = options.triesLeft;
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
    return o;
  }
}

export function isScHsmError(e: unknown, code?: ScHsmErrorCode): e is ScHsmError {
  return e instanceof ScHsmError && (code === undefined || e.code === code);
}

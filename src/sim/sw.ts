/**
 * Status words the virtual card answers with (spec §3.21) and the internal error that carries one
 * out of a command handler. Handlers throw `SwError`; the dispatcher turns it into the response.
 */

export const SW = {
  OK: 0x9000,
  EOF: 0x6282,
  WRONG_LENGTH: 0x6700,
  SECURITY_STATUS: 0x6982,
  BLOCKED: 0x6983,
  NOT_USABLE: 0x6984,
  CONDITIONS: 0x6985,
  NOT_ALLOWED: 0x6986,
  WRONG_DATA: 0x6a80,
  FUNC_NOT_SUPPORTED: 0x6a81,
  NOT_FOUND: 0x6a82,
  MEMORY_FULL: 0x6a84,
  WRONG_P1P2: 0x6a86,
  REF_NOT_FOUND: 0x6a88,
  EXISTS: 0x6a89,
  WRONG_PARAMS: 0x6b00,
  INS_NOT_SUPPORTED: 0x6d00,
  CLA_NOT_SUPPORTED: 0x6e00,
  UNKNOWN: 0x6f00,
} as const;

/** `63 Cx`: verification failed, x tries left. */
export function swTries(left: number): number {
  return 0x63c0 | Math.max(0, Math.min(15, left));
}

/** A status word raised by a handler; never leaves `process()`. */
export class SwError extends Error {
  constructor(
    readonly sw: number,
    message?: string,
  ) {
    super(message ?? `SW ${sw.toString(16).toUpperCase().padStart(4, '0')}`);
    this.name = 'SwError';
  }
}

/** Throws the status word. */
export function fail(sw: number, why?: string): never {
  throw new SwError(sw, why);
}

/** What a handler returns: response data and a status word (default 9000). */
export interface Reply {
  data?: Uint8Array;
  sw?: number;
}

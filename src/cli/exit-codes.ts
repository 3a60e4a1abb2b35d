/**
 * Exit codes and the CLI's own error codes. Every failure becomes one exit code per error class,
 * a sentence a person understands, the card's status word where there is one, and the fix.
 */
import { ScHsmError, type ScHsmErrorCode } from '../errors.js';

/** The documented exit codes (docs/cli.md, `sc-hsm-ts --help`). */
export const EXIT = {
  OK: 0,
  FAILED: 1,
  USAGE: 2,
  PIN: 3,
  DEVICE: 4,
  NOT_FOUND: 5,
  DKEK: 6,
  REFUSED: 7,
} as const;

/** Error codes that exist only in the command line tool (not in the library's ERROR_CODES). */
export type CliOnlyCode =
  | 'USAGE_ERROR'
  | 'SECRET_REQUIRED'
  | 'CONFIRMATION_REQUIRED'
  | 'CONFIRMATION_DECLINED'
  | 'KEY_MISMATCH'
  | 'CHECKS_FAILED'
  | 'INTERNAL_ERROR';

export type CliErrorCode = ScHsmErrorCode | CliOnlyCode;

/** A failure the CLI itself detects (usage, refused confirmation, host files). */
export class CliError extends Error {
  readonly code: CliErrorCode;
  readonly fix?: string;
  constructor(code: CliErrorCode, message: string, fix?: string) {
    super(message);
    this.name = 'CliError';
    this.code = code;
    if (fix !== undefined) this.fix = fix;
  }
}

export function usage(message: string, fix?: string): CliError {
  return new CliError('USAGE_ERROR', message, fix ?? 'see --help');
}

const EXIT_BY_CODE: Partial<Record<CliErrorCode, number>> = {
  USAGE_ERROR: EXIT.USAGE,
  SECRET_REQUIRED: EXIT.USAGE,
  INVALID_ARGUMENT: EXIT.USAGE,
  INVALID_PIN: EXIT.USAGE,
  INVALID_SO_PIN: EXIT.USAGE,
  WRONG_PIN: EXIT.PIN,
  PIN_BLOCKED: EXIT.PIN,
  TRANSPORT_PIN_ACTIVE: EXIT.PIN,
  SECURITY_STATUS: EXIT.PIN,
  TRANSPORT_ERROR: EXIT.DEVICE,
  PCSC_UNAVAILABLE: EXIT.DEVICE,
  NO_READER: EXIT.DEVICE,
  NO_CARD: EXIT.DEVICE,
  CARD_REMOVED: EXIT.DEVICE,
  CARD_RESET: EXIT.DEVICE,
  READER_BUSY: EXIT.DEVICE,
  AMBIGUOUS_READER: EXIT.DEVICE,
  NOT_A_SMARTCARD_HSM: EXIT.DEVICE,
  SECURE_MESSAGING: EXIT.DEVICE,
  DEVICE_NOT_AUTHENTIC: EXIT.DEVICE,
  NOT_INITIALIZED: EXIT.DEVICE,
  INVALID_STATE_FILE: EXIT.DEVICE,
  PKA_NOT_CONFIGURED: EXIT.DEVICE,
  PKA_AUTH_FAILED: EXIT.PIN,
  PKA_CHAIN_UNTRUSTED: EXIT.REFUSED,
  PKA_KEY_REGISTERED: EXIT.REFUSED,
  INVALID_PKA_FILE: EXIT.USAGE,
  KEY_NOT_FOUND: EXIT.NOT_FOUND,
  FILE_NOT_FOUND: EXIT.NOT_FOUND,
  DATA_NOT_FOUND: EXIT.NOT_FOUND,
  HOST_FILE_NOT_FOUND: EXIT.NOT_FOUND,
  WRONG_PASSWORD: EXIT.DKEK,
  INVALID_SHARE_FILE: EXIT.DKEK,
  KCV_MISMATCH: EXIT.DKEK,
  MAC_INVALID: EXIT.DKEK,
  INVALID_KEY_BLOB: EXIT.DKEK,
  INVALID_WRAP_FILE: EXIT.DKEK,
  DKEK_INCOMPLETE: EXIT.DKEK,
  NO_DKEK: EXIT.DKEK,
  BACKUP_INVALID: EXIT.DKEK,
  DKEK_DEGENERATE: EXIT.DKEK,
  PIN_TRIES_LOW: EXIT.REFUSED,
  KEY_REF_OCCUPIED: EXIT.REFUSED,
  REPLACE_UNSAFE: EXIT.REFUSED,
  KEY_ID_IN_USE: EXIT.REFUSED,
  KEY_DOMAIN_OUT_OF_RANGE: EXIT.DKEK,
  KEY_DOMAIN_UNUSED: EXIT.DKEK,
  XKEK_NOT_SUPPORTED: EXIT.DKEK,
  KEY_DOMAIN_EXISTS: EXIT.REFUSED,
  KEY_DOMAIN_NOT_EMPTY: EXIT.REFUSED,
  USE_COUNTER_EXHAUSTED: EXIT.REFUSED,
  ALGORITHM_NOT_ALLOWED: EXIT.REFUSED,
  CONFIRMATION_REQUIRED: EXIT.REFUSED,
  CONFIRMATION_DECLINED: EXIT.REFUSED,
  FILE_EXISTS: EXIT.REFUSED,
  DKEK_SHARE_REPEATED: EXIT.REFUSED,
  KEY_MISMATCH: EXIT.REFUSED,
};

/** The table printed by `--help` and documented in docs/cli.md. */
export const EXIT_TABLE: [number, string][] = [
  [EXIT.OK, 'success'],
  [EXIT.FAILED, 'the operation failed (card error, unreadable data, I/O, a failed doctor check)'],
  [EXIT.USAGE, 'usage error: bad option or value, malformed PIN/SO-PIN, missing secret without a terminal'],
  [EXIT.PIN, 'wrong or blocked PIN, transport PIN active, PIN not verified'],
  [EXIT.DEVICE, 'device, reader or transport: no pcscd/reader/card, not a SmartCard-HSM, not initialized'],
  [EXIT.NOT_FOUND, 'not found: key reference, file on the card, or a file on the host'],
  [EXIT.DKEK, 'DKEK or wrapped key problem: wrong password, KCV mismatch, bad MAC, no/incomplete DKEK'],
  [
    EXIT.REFUSED,
    'refused for safety: one PIN try left, occupied key reference, existing file, not confirmed',
  ],
];

export interface ErrorInfo {
  code: string;
  message: string;
  sw?: string;
  triesLeft?: number;
  /** Which PIN a PIN error is about: `user-pin` or `so-pin`. */
  pin?: string;
  command?: string;
  /** The key reference an interrupted command may have left something at. */
  keyRef?: number;
  /** KEY_ID_IN_USE: the existing key that already has the ID (not something to delete). */
  existingKeyRef?: number;
  fix?: string;
}

/**
 * What the fix line may offer: the options of the command that failed (its own and the global
 * ones). A fix names only options that command takes (test/cli-fix-options.test.ts checks every
 * fix text against the command registry).
 */
export interface FixContext {
  has(option: string): boolean;
}

/** Without a command (or for callers that do not say): only what every command takes. */
const ANY_COMMAND: FixContext = { has: () => false };

/** Fix texts that depend on the PIN concerned or on the command's options. */
export const FIX_FOR: Partial<
  Record<CliErrorCode, (e: ScHsmError | CliError, c: FixContext) => string | undefined>
> = {
  WRONG_PIN: (e) => {
    const so = e instanceof ScHsmError && e.pin === 'so-pin';
    const n = e instanceof ScHsmError ? e.triesLeft : undefined;
    if (so) {
      if (n === undefined || n > 0)
        return `find the right SO-PIN before trying again${n === undefined ? '' : ` (${n === 1 ? '1 try' : `${n} tries`} left)`}: a blocked SO-PIN cannot be unblocked, and the device could then never be re-initialized nor its user PIN unblocked`;
      return SO_PIN_BLOCKED_FIX;
    }
    if (n === 0) return USER_PIN_BLOCKED_FIX;
    if (n === undefined)
      return 'check the user PIN; when no tries are left it is blocked and only the SO-PIN can unblock it (sc-hsm-ts pin unblock)';
    return `${n === 1 ? '1 try' : `${n} tries`} left before the user PIN is blocked; check the PIN before trying again${n === 1 ? ' (the last try needs --last-try)' : ''}`;
  },
  PIN_BLOCKED: (e) =>
    e instanceof ScHsmError && e.pin === 'so-pin' ? SO_PIN_BLOCKED_FIX : USER_PIN_BLOCKED_FIX,
  PIN_TRIES_LOW: (e) =>
    e instanceof ScHsmError && e.pin === 'so-pin'
      ? 'only if you are certain of the SO-PIN: run the command again with --last-try (a wrong SO-PIN then blocks it for good)'
      : 'only if you are certain of the user PIN: run the command again with --last-try (a wrong PIN then blocks it; the SO-PIN unblocks it)',
  SECURITY_STATUS: (_e, c) =>
    c.has('pin')
      ? 'give the user PIN with --pin (env:NAME, file:PATH, or asked on a terminal)'
      : 'this step needs the user PIN verified in the same session',
  KEY_REF_OCCUPIED: (_e, c) =>
    c.has('key-ref') && c.has('force')
      ? 'choose a free --key-ref (see `sc-hsm-ts keys`) or replace the key with --force'
      : c.has('key-ref')
        ? 'choose a free --key-ref (see `sc-hsm-ts keys`), or delete the key there first (sc-hsm-ts delete-key --key-ref N)'
        : c.has('force')
          ? 'replace the keys there with --force, or free the key references first (`sc-hsm-ts keys`, sc-hsm-ts delete-key --key-ref N)'
          : '`sc-hsm-ts keys` shows which key references are in use; sc-hsm-ts delete-key --key-ref N frees one',
  KEY_ID_IN_USE: (_e, c) =>
    c.has('id')
      ? 'choose another --id (`sc-hsm-ts keys` lists the IDs in use), or leave --id out for the ID derived from the public key'
      : '`sc-hsm-ts keys` lists the IDs in use: give the key another ID',
  INVALID_PKA_FILE: (_e, c) =>
    c.has('response')
      ? 'each --response must be the file sc-hsm-ts pka respond wrote for the current challenge'
      : c.has('key-ref')
        ? 'give the challenge file sc-hsm-ts pka authenticate wrote (--challenge-out)'
        : undefined,
  FILE_EXISTS: (_e, c) =>
    c.has('force')
      ? 'choose another file name, or --force to replace it'
      : 'choose another file name, or move the existing file away first',
};

const USER_PIN_BLOCKED_FIX =
  'the user PIN is blocked: unblock it with the SO-PIN (sc-hsm-ts pin unblock --so-pin env:NAME --new-pin env:NAME)';
const SO_PIN_BLOCKED_FIX =
  'nothing can unblock the SO-PIN: keep using the keys with the user PIN and do not let it block too; back them up (sc-hsm-ts backup) and move to a new device';

/** Fix texts that are the same for every command (test/cli-fix-options.test.ts reads them). */
export const FIX: Partial<Record<CliErrorCode, string>> = {
  TRANSPORT_PIN_ACTIVE: 'set your own PIN first: sc-hsm-ts pin change',
  NOT_INITIALIZED: 'initialize the device first: sc-hsm-ts init --help',
  PKA_NOT_CONFIGURED:
    'public key authentication is set at initialization: sc-hsm-ts init --pka N --required M (this erases the device)',
  PKA_AUTH_FAILED:
    'start again: sc-hsm-ts pka authenticate writes a new challenge; each custodian answers it with sc-hsm-ts pka respond',
  PKA_CHAIN_UNTRUSTED:
    'the file was exported from a device whose chain this device cannot verify; only keys of genuine devices under the same root register',
  PKA_KEY_REGISTERED: '`sc-hsm-ts pka status` lists the registered keys',
  INVALID_PKA_FILE: 'give the file written by sc-hsm-ts pka export / sc-hsm-tool --export-for-pub-key-auth',
  KEY_NOT_FOUND: '`sc-hsm-ts keys` lists the key references (first column)',
  SESSION_CLOSED: 'open a new session (SmartCardHsm.open) for the next call',
  SECURE_MESSAGING:
    'run the command again (the PIN must be verified again); if it fails again, the link to the card is being altered: use another reader or USB port',
  DEVICE_NOT_AUTHENTIC:
    '`sc-hsm-ts verify-device` shows the device chain; a device that does not verify gets no secure channel (--secure)',
  KCV_MISMATCH:
    'import the same DKEK share(s) on this device (sc-hsm-ts dkek import); compare KCVs with `sc-hsm-ts status`',
  NO_DKEK:
    'initialize the device with DKEK shares (sc-hsm-ts init --dkek-shares N, which erases it) and import them (sc-hsm-ts dkek import)',
  DKEK_INCOMPLETE: 'import the outstanding share(s): sc-hsm-ts dkek import FILE.pbe',
  DKEK_SHARE_REPEATED: 'import each custodian\u2019s share file once: import the other share file(s)',
  DKEK_DEGENERATE:
    're-initialize the device (sc-hsm-ts init … --dkek-shares N, this erases its keys), then import N distinct share files (sc-hsm-ts dkek create makes new ones)',
  WRONG_PASSWORD: 'check the password of the share file (or the custodians’ password shares)',
  INVALID_SHARE_FILE:
    'a DKEK share file is the 64-byte .pbe file made by `dkek create` or `sc-hsm-tool --create-dkek-share`',
  MAC_INVALID: 'the wrapped key is damaged or was made under another DKEK',
  PCSC_UNAVAILABLE:
    'start pcscd (sudo systemctl start pcscd.socket) and install pcsclite; `sc-hsm-ts doctor` checks the setup',
  NO_READER: 'plug the Nitrokey HSM in; `sc-hsm-ts doctor` checks the setup',
  NO_CARD:
    'insert the SmartCard-HSM and run the command again; `sc-hsm-ts readers` shows whether the reader sees it',
  CARD_REMOVED:
    'insert the SmartCard-HSM and run the command again; `sc-hsm-ts readers` shows whether the reader sees it. ' +
    'Before repeating a command that creates or changes something, check what the interrupted one did ' +
    '(`sc-hsm-ts status`, `sc-hsm-ts keys`)',
  READER_BUSY: 'close the program that holds the card (pkcs11-tool, a browser, scdaemon) and retry',
  AMBIGUOUS_READER: 'choose the device with --reader NAME|INDEX (`sc-hsm-ts readers` lists them)',
  NOT_A_SMARTCARD_HSM: 'choose the right reader with --reader (`sc-hsm-ts readers`)',
  INVALID_STATE_FILE:
    'the --sim FILE is not a virtual card state file; use another path to start a fresh one',
  MEMORY_FULL: 'delete keys no longer needed (sc-hsm-ts delete-key)',
  SECRET_REQUIRED:
    'pass it as env:NAME or file:PATH (a VALUE works too, but others can see it), or run on a terminal to be asked',
  CONFIRMATION_REQUIRED: 'run on a terminal to be asked, or pass --yes',
  HOST_FILE_NOT_FOUND: 'check the path',
  ALGORITHM_NOT_ALLOWED: 'the key was generated without this algorithm; generate a new key that allows it',
  USE_COUNTER_EXHAUSTED:
    'the key may not be used any more (key use counter exhausted): generate a new key (sc-hsm-ts keygen --use-counter N)',
  INVALID_SO_PIN: 'the SO-PIN is exactly 16 hex characters, e.g. 3537363231383830',
  INVALID_PIN: 'the user PIN has 6 to 15 printable ASCII characters (letters, digits, ASCII symbols)',
};

export function exitCodeFor(e: unknown): number {
  if (e instanceof CliError || e instanceof ScHsmError) return EXIT_BY_CODE[e.code] ?? EXIT.FAILED;
  return EXIT.FAILED;
}

/** The error as the command reports it; `c` says which options the fix may name (see {@link FixContext}). */
export function errorInfo(e: unknown, c: FixContext = ANY_COMMAND): ErrorInfo {
  if (e instanceof ScHsmError) {
    const o: ErrorInfo = { code: e.code, message: e.message };
    if (e.sw !== undefined) o.sw = e.swHex!;
    if (e.triesLeft !== undefined) o.triesLeft = e.triesLeft;
    if (e.command !== undefined) o.command = e.command;
    if (e.keyRef !== undefined) o.keyRef = e.keyRef;
    if (e.existingKeyRef !== undefined) o.existingKeyRef = e.existingKeyRef;
    if (e.pin !== undefined) o.pin = e.pin;
    let fix = FIX_FOR[e.code]?.(e, c) ?? FIX[e.code];
    // a fix the library gave for this very failure (e.g. what an interrupted key generation left)
    if (e.fix !== undefined) fix = e.fix;
    if (fix) o.fix = fix;
    return o;
  }
  if (e instanceof CliError) {
    const o: ErrorInfo = { code: e.code, message: e.message };
    const fix = e.fix ?? FIX_FOR[e.code]?.(e, c) ?? FIX[e.code];
    if (fix) o.fix = fix;
    return o;
  }
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err === 'object' && typeof err.code === 'string' && err.syscall) {
    return {
      code: 'IO_ERROR',
      message: `${err.syscall} failed: ${err.code}${err.path ? ` (${err.path})` : ''}`,
    };
  }
  return { code: 'INTERNAL_ERROR', message: err instanceof Error ? err.message : String(e) };
}

/**
 * Secrets (`--pin`, `--so-pin`, `--new-pin`, `--new-so-pin`, `--password`, `--key-password`): a
 * value, `env:NAME` or `file:PATH`, else a no-echo prompt on a terminal. Without a terminal an
 * omitted secret is an error (exit 2), never an empty string. Messages name the option, never the
 * value.
 *
 * What a person would not mean is removed before anything is checked or sent, because a PIN with
 * a stray byte costs a try:
 * - PINs and SO-PINs (which have no meaningful white space at either end): a byte order mark and
 *   all white space and line ends at either end, from every source.
 * - Passwords (share files, key passphrases), where a space can be part of the password: from a
 *   file a byte order mark and the line end(s) at the end; from a prompt nothing (the line end is
 *   not part of the line). A new password (asked twice) that begins or ends with white space is
 *   refused: it would be too easy to lose.
 * A secret typed on the command line (visible in `ps` and kept in shell history) or read from a
 * file that others may read gets a one-line warning on stderr; `env:NAME` does not.
 */
import { stat } from 'node:fs/promises';
import { unsafeTextPosition } from '../sc-hsm/validate.js';
import { HOST_FILE_MAX_BYTES, readHostBytes } from '../util/host-files.js';
import { CliError } from './exit-codes.js';
import type { CliIo } from './io.js';
import type { Prompter } from './prompt.js';

/** What the secret is: PINs are trimmed, passwords keep inner and outer spaces (see above). */
export type SecretKind = 'pin' | 'password';

export interface SecretRequest {
  /** Option name without dashes, e.g. `so-pin`. */
  option: string;
  /** What the prompt asks for, e.g. `User PIN`. */
  prompt: string;
  /** Ask twice and compare (new PINs, new share-file passwords). */
  confirm?: boolean;
  /** Default: `pin` for options named …pin, `password` otherwise. */
  kind?: SecretKind;
}

const BOM = '\uFEFF';

/** The kind of secret an option carries when the request does not say. */
export function secretKind(req: SecretRequest): SecretKind {
  return req.kind ?? (/(^|-)pin$/.test(req.option) ? 'pin' : 'password');
}

/**
 * Removes what a person would not mean from a secret of this kind (see the module comment).
 * `source` is where it came from: only a file has line ends and a byte order mark of its own.
 */
export function cleanSecret(
  value: string,
  kind: SecretKind,
  source: 'value' | 'env' | 'file' | 'prompt',
): string {
  let v = value.startsWith(BOM) ? value.slice(1) : value;
  if (kind === 'pin') return v.trim();
  if (source === 'file') v = v.replace(/[\r\n]+$/, '');
  return v;
}

export async function resolveSecret(
  io: CliIo,
  prompter: Prompter,
  spec: string | undefined,
  req: SecretRequest,
): Promise<string> {
  const kind = secretKind(req);
  const warn = (s: string) => io.stderr.write(`warning: --${req.option} ${s}\n`);
  let v: string;
  if (spec !== undefined) {
    if (spec.startsWith('env:')) {
      const name = spec.slice(4);
      const raw = io.env[name];
      if (!name || raw === undefined || raw === '') {
        throw new CliError(
          'SECRET_REQUIRED',
          `--${req.option} env:${name}: the environment variable is not set or empty`,
        );
      }
      v = cleanSecret(raw, kind, 'env');
      if (v === '')
        throw new CliError(
          'SECRET_REQUIRED',
          `--${req.option} env:${name}: the variable holds only white space`,
        );
    } else if (spec.startsWith('file:')) {
      const path = spec.slice(5);
      let bytes: Uint8Array | 'too-large';
      const max = HOST_FILE_MAX_BYTES.secret;
      try {
        // bounded: file:/dev/zero or an endless pipe is refused after max + 1 bytes (a pipe is fine)
        bytes = await readHostBytes(path, max);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new CliError(
          code === 'ENOENT' ? 'HOST_FILE_NOT_FOUND' : 'SECRET_REQUIRED',
          `--${req.option} file:${path}: cannot read the file (${code ?? 'error'})`,
        );
      }
      if (bytes === 'too-large')
        throw new CliError(
          'USAGE_ERROR',
          `--${req.option} file:${path}: the file holds more than ${max} bytes, the most a secret file may hold: not read further`,
          `put only the secret into the file, or give it as --${req.option} env:NAME`,
        );
      const text = Buffer.from(bytes).toString('utf8');
      // a regular file only: /dev/stdin or a FIFO is not kept anywhere others could read it later
      const mode = await stat(path).then(
        (s) => (s.isFile() ? s.mode : 0),
        () => 0,
      );
      if (mode & 0o044) {
        warn(
          `file:${path} can be read by other users (mode ${(mode & 0o777).toString(8).padStart(4, '0')}): chmod 600 ${path}`,
        );
      }
      v = cleanSecret(text, kind, 'file');
      if (v === '') throw new CliError('SECRET_REQUIRED', `--${req.option} file:${path}: the file is empty`);
      if (kind === 'password' && /[\r\n]/.test(v)) {
        throw new CliError(
          'USAGE_ERROR',
          `--${req.option} file:${path}: the file holds more than one line; a password file holds the password on its only line`,
          'put only the password into the file (one line)',
        );
      }
    } else {
      if (spec === '') throw new CliError('SECRET_REQUIRED', `--${req.option} was given an empty value`);
      warn(
        'was given on the command line, where other users can see it (ps) and the shell history keeps it: prefer env:NAME or file:PATH',
      );
      v = cleanSecret(spec, kind, 'value');
      if (v === '') throw new CliError('SECRET_REQUIRED', `--${req.option} was given only white space`);
    }
    if (req.confirm) refuseLosableNewPassword(v, kind, req);
    return v;
  }
  if (!io.isTTY) {
    throw new CliError(
      'SECRET_REQUIRED',
      `--${req.option} is required: there is no terminal to ask on`,
      `pass --${req.option} env:NAME or --${req.option} file:PATH (or a VALUE, which others can see)`,
    );
  }
  v = cleanSecret(await prompter.ask(`${req.prompt}: `, true), kind, 'prompt');
  if (v === '') throw new CliError('SECRET_REQUIRED', `no ${req.prompt} entered`);
  if (req.confirm) {
    const again = cleanSecret(await prompter.ask(`${req.prompt} (again): `, true), kind, 'prompt');
    if (again !== v)
      throw new CliError('USAGE_ERROR', `the two entries of the ${req.prompt} differ; nothing was changed`);
    refuseLosableNewPassword(v, kind, req);
  }
  return v;
}

/**
 * A new password with white space at an end, or with a control or text-direction character (ESC,
 * BEL, U+202E, …; option values refuse them too), is refused: nobody would type it the same way
 * again. Passwords of existing files are taken as they are (another tool may have made them).
 */
function refuseLosableNewPassword(v: string, kind: SecretKind, req: SecretRequest): void {
  const at = kind === 'password' ? unsafeTextPosition(v) : 0;
  if (at > 0) {
    const c = [...v][at - 1]!.codePointAt(0)!;
    throw new CliError(
      'USAGE_ERROR',
      `the new password given with --${req.option} contains a control or text-direction character (U+${c.toString(16).toUpperCase().padStart(4, '0')} at character ${at}), which cannot be typed again reliably; nothing was changed`,
      `give --${req.option} a password of printable characters only`,
    );
  }
  if (kind === 'password' && v !== v.trim()) {
    throw new CliError(
      'USAGE_ERROR',
      `the new password given with --${req.option} begins or ends with white space, which is easily lost; nothing was changed`,
      `give --${req.option} without the leading or trailing spaces`,
    );
  }
}

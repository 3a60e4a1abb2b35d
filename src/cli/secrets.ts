/**
 * Secrets (`--pin`, `--so-pin`, `--new-pin`, `--new-so-pin`, `--password`): a value, `env:NAME`
 * or `file:PATH`, else a no-echo prompt on a terminal. Without a terminal an omitted secret is an
 * error (exit 2), never an empty string. Messages name the option, never the value.
 */
import { readFile } from 'node:fs/promises';
import { CliError } from './exit-codes.js';
import type { CliIo } from './io.js';
import type { Prompter } from './prompt.js';

export interface SecretRequest {
  /** Option name without dashes, e.g. `so-pin`. */
  option: string;
  /** What the prompt asks for, e.g. `User PIN`. */
  prompt: string;
  /** Ask twice and compare (new PINs, new share-file passwords). */
  confirm?: boolean;
}

export async function resolveSecret(
  io: CliIo,
  prompter: Prompter,
  spec: string | undefined,
  req: SecretRequest,
): Promise<string> {
  if (spec !== undefined) {
    if (spec.startsWith('env:')) {
      const name = spec.slice(4);
      const v = io.env[name];
      if (!name || v === undefined || v === '') {
        throw new CliError(
          'SECRET_REQUIRED',
          `--${req.option} env:${name}: the environment variable is not set or empty`,
        );
      }
      return v;
    }
    if (spec.startsWith('file:')) {
      const path = spec.slice(5);
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new CliError(
          code === 'ENOENT' ? 'HOST_FILE_NOT_FOUND' : 'SECRET_REQUIRED',
          `--${req.option} file:${path}: cannot read the file (${code ?? 'error'})`,
        );
      }
      const v = text.replace(/\r?\n$/, '');
      if (v === '') throw new CliError('SECRET_REQUIRED', `--${req.option} file:${path}: the file is empty`);
      return v;
    }
    if (spec === '') throw new CliError('SECRET_REQUIRED', `--${req.option} was given an empty value`);
    return spec;
  }
  if (!io.isTTY) {
    throw new CliError(
      'SECRET_REQUIRED',
      `--${req.option} is required: there is no terminal to ask on`,
      `pass --${req.option} VALUE, --${req.option} env:NAME or --${req.option} file:PATH`,
    );
  }
  const v = await prompter.ask(`${req.prompt}: `, true);
  if (v === '') throw new CliError('SECRET_REQUIRED', `no ${req.prompt} entered`);
  if (req.confirm) {
    const again = await prompter.ask(`${req.prompt} (again): `, true);
    if (again !== v)
      throw new CliError('USAGE_ERROR', `the two entries of the ${req.prompt} differ; nothing was changed`);
  }
  return v;
}

/** Runs the CLI in-process with captured streams. */
import { copyFile, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runCli } from '../src/cli/main.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  // biome-ignore lint/suspicious/noExplicitAny: parsed JSON of the command under test
  json: () => any;
}

export async function cli(
  argv: string[],
  o: { env?: Record<string, string>; stdin?: string; isTTY?: boolean } = {},
): Promise<RunResult> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => {
    out += d.toString();
  });
  stderr.on('data', (d) => {
    err += d.toString();
  });
  if (o.stdin !== undefined) stdin.end(o.stdin);
  const code = await runCli(argv, {
    stdout,
    stderr,
    stdin,
    env: { ...(o.env ?? {}) },
    isTTY: o.isTTY ?? false,
  });
  await new Promise((r) => setImmediate(r));
  return { code, stdout: out, stderr: err, json: () => JSON.parse(out) };
}

export async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'sc-hsm-ts-cli-'));
}

export async function copyState(from: string, dir: string, name = 'hsm.json'): Promise<string> {
  const to = join(dir, name);
  await copyFile(from, to);
  return to;
}

export async function fileText(path: string): Promise<string> {
  return readFile(path, 'utf8');
}

export const PIN = '648219';
export const SO_PIN = '3537363231383830';
export const PASSWORD = 'share-password-1';
export const ENV = { PIN, SO_PIN, PW: PASSWORD };

/** Secrets must not show up anywhere: as text, hex (both cases) or base64. */
export function secretForms(secret: string): string[] {
  const b = Buffer.from(secret);
  return [secret, b.toString('hex'), b.toString('hex').toUpperCase(), b.toString('base64')];
}

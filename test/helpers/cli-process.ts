/**
 * The command as a real process (`node --import tsx src/cli/main.ts …`), for what is about
 * processes: two commands on one state file, a killed holder, a closed pipe, a signal.
 */
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');

export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  // biome-ignore lint/suspicious/noExplicitAny: parsed JSON of the command under test
  json: () => any;
}

/** Starts `sc-hsm-ts ARGS`; only PATH and HOME of this process's environment are passed on. */
export function startCli(
  args: string[],
  o: { env?: Record<string, string>; stdio?: StdioOptions } = {},
): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...o.env },
    stdio: o.stdio ?? ['ignore', 'pipe', 'pipe'],
  });
}

/** Collects a started command's output and waits for its end. */
export function finished(child: ChildProcess): Promise<ProcessResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d) => {
    stderr += d.toString();
  });
  return new Promise((resolvePromise, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolvePromise({ code, signal, stdout, stderr, json: () => JSON.parse(stdout) }),
    );
  });
}

/** Runs `sc-hsm-ts ARGS` to its end. */
export function runCliProcess(
  args: string[],
  o: { env?: Record<string, string>; stdio?: StdioOptions } = {},
): Promise<ProcessResult> {
  return finished(startCli(args, o));
}

/** Resolves when `child` has printed `text` on stderr (rejects when it ends first). */
export function stderrSays(child: ChildProcess, text: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    let seen = '';
    const onData = (d: Buffer) => {
      seen += d.toString();
      if (seen.includes(text)) {
        child.stderr?.off('data', onData);
        resolvePromise();
      }
    };
    child.stderr?.on('data', onData);
    child.once('close', () => reject(new Error(`the process ended without printing "${text}":\n${seen}`)));
  });
}

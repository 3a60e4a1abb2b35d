/**
 * The command as a real process, for what is about processes: two commands on one state file, a
 * killed holder, a closed pipe, a signal. The sources are bundled once per test file (tsup, into
 * node_modules/.cache so that the bundle finds the dependencies) — a process then starts in
 * ~0.2 s instead of ~1 s under tsx, which matters when twenty of them queue for one file.
 */
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll } from 'vitest';

export const ROOT = resolve(import.meta.dirname, '..', '..');
let bundle: string | undefined;
let bundleDir: string | undefined;

// removed when the importing test file ends
afterAll(() => {
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
  bundle = bundleDir = undefined;
});

/** Bundles src/cli/main.ts for {@link startCli}; call it in `beforeAll`. */
export async function buildCli(): Promise<void> {
  if (bundle) return;
  const { build } = await import('tsup');
  const cache = join(ROOT, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  bundleDir = mkdtempSync(join(cache, 'sc-hsm-ts-test-cli-'));
  await build({
    entry: { cli: join(ROOT, 'src', 'cli', 'main.ts') },
    outDir: bundleDir,
    format: ['esm'],
    platform: 'node',
    target: 'node20',
    external: ['pcsclite'],
    splitting: false,
    sourcemap: false,
    dts: false,
    config: false,
    silent: true,
  });
  bundle = join(bundleDir, 'cli.js');
}

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
  if (!bundle) throw new Error('call buildCli() first (in beforeAll)');
  return spawn(process.execPath, [bundle, ...args], {
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

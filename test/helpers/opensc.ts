/**
 * Spawn helpers for OpenSC's command line tools (opensc-tool, sc-hsm-tool, pkcs11-tool,
 * pkcs15-tool) and openssl, used by the interop tests as independent peers of our virtual card.
 *
 * Every run has a hard timeout (the tools can block forever when a card misbehaves), runs with
 * execFile (no shell), and keeps stdout and stderr so that a failed assertion can show them whole.
 * PINs go to the tools as `env:NAME` (sc-hsm-tool and pkcs11-tool read them from the environment),
 * the share password through stdin (sc-hsm-tool prompts for it when `--password` is absent).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

export const P11_MODULE = '/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so';
export const READER0 = 'Virtual PCD 00 00';
export const READER1 = 'Virtual PCD 00 01';

export interface ToolResult {
  /** The command line as run (for messages; secrets are passed via env/stdin, not here). */
  cmd: string;
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  /** Written to the tool's stdin, which is then closed. Without it stdin is closed at once. */
  input?: string;
  /** Extra environment (e.g. the PINs referenced as `env:NAME`). */
  env?: Record<string, string>;
  /** Hard limit, ms (default 30 s); the tool is SIGKILLed after it. */
  timeoutMs?: number;
  cwd?: string;
}

/**
 * A private HOME for the tools, so that OpenSC's file cache (~/.cache/opensc) of one run or of a
 * developer's machine never answers in place of the card. Removed when the importing test file
 * ends (this module is only imported by test files, so the hook lands on the file's suite).
 */
const TOOL_HOME = mkdtempSync(join(tmpdir(), 'sc-hsm-ts-opensc-home-'));
afterAll(() => rmSync(TOOL_HOME, { recursive: true, force: true }));

/** Runs `tool args…`; never rejects, never hangs longer than `timeoutMs`. */
export function runTool(tool: string, args: string[], o: RunOptions = {}): Promise<ToolResult> {
  const timeoutMs = o.timeoutMs ?? 30_000;
  const cmd = [tool, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
  const started = Date.now();
  return new Promise((resolve) => {
    const child = execFile(
      tool,
      args,
      {
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: 16 * 1024 * 1024,
        encoding: 'utf8',
        cwd: o.cwd,
        env: { ...process.env, HOME: TOOL_HOME, LC_ALL: 'C', ...o.env },
      },
      (err, stdout, stderr) => {
        const e = err as
          | (NodeJS.ErrnoException & { code?: number | string; signal?: string; killed?: boolean })
          | null;
        resolve({
          cmd,
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          timedOut: Boolean(e?.killed && e.signal === 'SIGKILL'),
          stdout: String(stdout),
          stderr:
            typeof e?.code === 'string'
              ? `${String(stderr)}\n[spawn error ${e.code}: ${e.message}]`
              : String(stderr),
          ms: Date.now() - started,
        });
      },
    );
    child.stdin?.on('error', () => undefined);
    if (o.input !== undefined) child.stdin?.write(o.input);
    child.stdin?.end();
  });
}

/** The whole run, for assertion messages. */
export function show(r: ToolResult): string {
  const how = r.timedOut
    ? `TIMED OUT after ${r.ms} ms`
    : `exit ${r.code}${r.signal ? ` signal ${r.signal}` : ''} in ${r.ms} ms`;
  return `\n$ ${r.cmd}\n(${how})\n--- stdout ---\n${r.stdout}--- stderr ---\n${r.stderr}--------------`;
}

/** Throws with the full output unless the tool exited 0. */
export function ok(r: ToolResult): ToolResult {
  if (r.code !== 0 || r.timedOut) throw new Error(`tool failed:${show(r)}`);
  return r;
}

/** The first match of `re` in stdout+stderr, or an error carrying the full output. */
export function grab(r: ToolResult, re: RegExp, what: string): RegExpMatchArray {
  const m = (r.stdout + r.stderr).match(re);
  if (!m) throw new Error(`could not find ${what} (${re}) in the output of:${show(r)}`);
  return m;
}

/** Every match of a global `re` in stdout+stderr. */
export function grabAll(r: ToolResult, re: RegExp): RegExpMatchArray[] {
  return [...(r.stdout + r.stderr).matchAll(re)];
}

// ------------------------------------------------------------------ the tools

export const openscTool = (args: string[], o?: RunOptions) => runTool('opensc-tool', args, o);
export const scHsmTool = (args: string[], o?: RunOptions) => runTool('sc-hsm-tool', args, o);
export const pkcs15Tool = (args: string[], o?: RunOptions) => runTool('pkcs15-tool', args, o);
export const openssl = (args: string[], o?: RunOptions) => runTool('openssl', args, o);
export const pkcs11Tool = (args: string[], o?: RunOptions) =>
  runTool('pkcs11-tool', ['--module', P11_MODULE, ...args], o);

/** `opensc-tool --info` first line, e.g. `OpenSC 0.23.0 [gcc  12.2.0]`. */
export async function openscVersion(): Promise<string> {
  const r = ok(await openscTool(['--info']));
  return grab(r, /^OpenSC \S+.*$/m, 'the OpenSC version')[0].trim();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` until it holds; throws after `ms` with `what` and the last detail. */
export async function until(
  what: string,
  cond: () => Promise<true | string> | true | string,
  ms = 5000,
  step = 100,
): Promise<void> {
  const end = Date.now() + ms;
  let last = '';
  for (;;) {
    const v = await cond();
    if (v === true) return;
    last = v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; last: ${last}`);
    await sleep(step);
  }
}

/** Waits until `opensc-tool -l` shows a card in reader `index` (or none, with `present=false`). */
export async function waitForReader(index: number, present = true, ms = 8000): Promise<void> {
  await until(
    `opensc-tool -l to show reader ${index} ${present ? 'with' : 'without'} a card`,
    async () => {
      const r = await openscTool(['-l'], { timeoutMs: 5000 });
      const line = r.stdout.split('\n').find((l) => new RegExp(`^${index}\\s`).test(l));
      if (line && (present ? /^\d+\s+Yes\s/ : /^\d+\s+No\s/).test(line)) return true;
      return show(r);
    },
    ms,
    150,
  );
}

/**
 * An argument vector from a template: the literal parts split on whitespace, each `${value}` one
 * argument as is (so paths with spaces stay whole). No shell is involved.
 * argv`--slot-index ${slot} --login --pin env:SC_PIN --input-file ${path}`
 */
export function argv(strings: TemplateStringsArray, ...values: (string | number)[]): string[] {
  const out: string[] = [];
  strings.forEach((lit, i) => {
    out.push(...lit.split(/\s+/).filter((w) => w.length > 0));
    if (i < values.length) out.push(String(values[i]));
  });
  return out;
}

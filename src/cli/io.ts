/**
 * The command's view of the outside world (streams, environment, terminal), so that tests run the
 * CLI in-process, and the output helpers: human text on stdout unless --json, notes and warnings
 * on stderr, colour only on a terminal without NO_COLOR.
 */
import type { Readable, Writable } from 'node:stream';
import { toHex } from '../util/bytes.js';
import { printableLines } from './format.js';

export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
  env: Record<string, string | undefined>;
  /** True when the operator sits at a terminal (prompts, colour, progress). */
  isTTY: boolean;
  /** Stops long-running commands (`sim serve`) like SIGINT would. */
  signal?: AbortSignal;
}

export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    isTTY: Boolean(process.stdin.isTTY && process.stderr.isTTY),
  };
}

const CODES = { red: 31, green: 32, yellow: 33, bold: 1, dim: 2, cyan: 36 } as const;
export type Colour = keyof typeof CODES;

export class Output {
  readonly colour: boolean;
  constructor(
    readonly io: CliIo,
    readonly json: boolean,
  ) {
    this.colour = io.isTTY && io.env.NO_COLOR === undefined && io.env.TERM !== 'dumb';
  }

  paint(c: Colour, s: string): string {
    return this.colour ? `\x1b[${CODES[c]}m${s}\x1b[0m` : s;
  }

  /** Set when standard output carries the command's data (`--out -`): its text goes to stderr. */
  textToStderr = false;

  /** A line of human output (suppressed under --json). */
  line(s = ''): void {
    if (!this.json) (this.textToStderr ? this.io.stderr : this.io.stdout).write(`${s}\n`);
  }

  heading(s: string): void {
    this.line(this.paint('bold', s));
  }

  /** `Key                  : value`, aligned the way sc-hsm-tool prints its status. */
  kv(key: string, value: string | number, width = 21): void {
    this.line(`${key.padEnd(width)}: ${value}`);
  }

  /** Always on stderr, also under --json. Card- or file-sourced text in it is escaped (printable). */
  warn(s: string): void {
    this.io.stderr.write(`${this.paint('yellow', 'warning:')} ${printableLines(s)}\n`);
  }

  note(s: string): void {
    this.io.stderr.write(`${printableLines(s)}\n`);
  }

  ok(s: string): void {
    this.line(`${this.paint('green', '✔')} ${s}`);
  }

  /** The JSON document on stdout: byte strings as lowercase hex. */
  writeJson(data: unknown): void {
    this.io.stdout.write(`${JSON.stringify(jsonValue(data), null, 2)}\n`);
  }
}

/** Converts library objects for JSON: Uint8Array → lowercase hex, undefined fields dropped. */
export function jsonValue(v: unknown): unknown {
  if (v instanceof Uint8Array) return toHex(v);
  if (Array.isArray(v)) return v.map(jsonValue);
  if (typeof v === 'bigint') return v.toString();
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) o[k] = jsonValue(x);
    return o;
  }
  return v;
}

/** A table with aligned columns. */
export function table(head: string[], rows: string[][]): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!)))
      .join('  ')
      .trimEnd();
  return [fmt(head), fmt(w.map((n) => '-'.repeat(n))), ...rows.map(fmt)];
}

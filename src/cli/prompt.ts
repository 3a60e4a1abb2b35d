/**
 * Questions on the terminal: one readline interface per run (so that answers typed ahead are not
 * lost between questions), its echo muted for secrets. Prompts go to stderr, never stdout.
 * node:readline is loaded at the first question: most commands ask none (cold start,
 * bench/startup.bench.ts).
 */
import { createRequire } from 'node:module';
import type { Interface } from 'node:readline';
import { Writable } from 'node:stream';
import { CliError } from './exit-codes.js';
import type { CliIo } from './io.js';

export class Prompter {
  private rl?: Interface;
  private readonly lines: string[] = [];
  private readonly waiters: ((line: string | undefined) => void)[] = [];
  private closed = false;
  private muted = false;

  constructor(private readonly io: CliIo) {}

  private get terminal(): boolean {
    return Boolean((this.io.stdin as { isTTY?: boolean }).isTTY);
  }

  private ensure(): void {
    if (this.rl) return;
    const stderr = this.io.stderr;
    const sink = new Writable({
      write: (chunk, _enc, cb) => {
        if (!this.muted) stderr.write(chunk);
        cb();
      },
    });
    const { createInterface } = createRequire(import.meta.url)(
      'node:readline',
    ) as typeof import('node:readline');
    // no history: a secret typed at a prompt must not be one arrow key away for the next question
    const rl = createInterface({
      input: this.io.stdin,
      output: sink,
      terminal: this.terminal,
      historySize: 0,
    });
    rl.on('line', (line) => {
      const w = this.waiters.shift();
      if (w) w(line);
      else this.lines.push(line);
    });
    rl.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w(undefined);
    });
    rl.on('SIGINT', () => rl.close());
    this.rl = rl;
  }

  /** Asks one question; `hidden` turns echo off (secrets). */
  async ask(question: string, hidden = false): Promise<string> {
    this.ensure();
    this.io.stderr.write(question);
    this.muted = hidden;
    let line = this.lines.shift();
    if (line === undefined && !this.closed)
      line = await new Promise<string | undefined>((r) => this.waiters.push(r));
    this.muted = false;
    if (hidden && this.terminal) this.io.stderr.write('\n');
    if (line === undefined)
      throw new CliError('CONFIRMATION_DECLINED', 'input ended before an answer was given');
    return line;
  }

  close(): void {
    this.rl?.close();
    this.rl = undefined;
  }
}

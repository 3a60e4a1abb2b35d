/**
 * APDU transcripts: a recording transport that writes `=> hex` / `<= hex` lines with secrets
 * masked, and a replay transport that plays such a transcript back as a card and fails on any
 * unexpected, missing or leftover APDU (the ledgerjs format; spec guide/style.md lesson 5).
 */
import { ScHsmError } from '../errors.js';
import { toHex } from '../util/bytes.js';
import { asyncDispose } from '../util/dispose.js';
import type { Transport } from './transport.js';

/** Masked bytes print as `**`, and match any byte on replay. */
export const MASK = '**';

/** Which bytes of a command APDU carry a secret: a per-byte mask (true = secret). */
export type SecretMask = (apdu: Uint8Array) => boolean[];

/**
 * Where the data field of a command APDU lies: short Lc at 4, extended (00 hi lo) at 4..6. Only a
 * well-formed Le (1 byte short, 2 bytes extended) after the data stays outside it; on a malformed
 * APDU everything after the header counts as data, so an inconsistent Lc never reveals a byte.
 */
export function dataField(apdu: Uint8Array): { off: number; end: number } {
  if (apdu.length <= 5) return { off: apdu.length, end: apdu.length };
  const ext = apdu[4] === 0 && apdu.length > 7;
  const off = ext ? 7 : 5;
  const lc = ext ? (apdu[5]! << 8) | apdu[6]! : apdu[4]!;
  const trailing = apdu.length - (off + lc);
  const end = trailing === (ext ? 2 : 1) || trailing === 0 ? off + lc : apdu.length;
  return { off, end };
}

/**
 * The mask this layer can decide without knowing the application (ISO 7816-4): the data of
 * VERIFY (`20`), CHANGE REFERENCE DATA (`24`) and RESET RETRY COUNTER (`2C`), and — since any
 * proprietary command (class `8x`/`9x`) may carry a secret this layer cannot recognise — the whole
 * data field of every proprietary command. An application narrows the latter with its own mask
 * (the SmartCard-HSM's: `secretMask`, beside this class in `sc-hsm-ts/testing`).
 */
export const isoSecretMask: SecretMask = (apdu) => {
  const mask = new Array<boolean>(apdu.length).fill(false);
  if (apdu.length <= 5) return mask;
  const { off, end } = dataField(apdu);
  const ins = apdu[1]!;
  const iso = (apdu[0]! & 0x80) === 0;
  if (!iso || ((apdu[0]! & 0xf0) === 0x00 && (ins === 0x20 || ins === 0x24 || ins === 0x2c)))
    for (let i = off; i < end; i++) mask[i] = true;
  return mask;
};

/** Hex of an APDU with its secret bytes (by `mask`) replaced by `**`. */
export function maskedHex(apdu: Uint8Array, mask: SecretMask = isoSecretMask): string {
  const m = mask(apdu);
  let s = '';
  for (let i = 0; i < apdu.length; i++) s += m[i] ? MASK : toHex(apdu.subarray(i, i + 1));
  return s;
}

/** INVALID_ARGUMENT naming the constructor argument, instead of a TypeError at the first APDU. */
function argument(ok: boolean, name: string, expected: string): void {
  if (!ok) throw new ScHsmError('INVALID_ARGUMENT', `${name} must be ${expected}`);
}

export type TranscriptSink = (line: string) => void;

/**
 * Wraps a transport and reports every exchange as transcript lines, secrets masked by `mask`
 * (default {@link isoSecretMask}; for a SmartCard-HSM pass `secretMask`, which masks exactly its
 * PINs, SO-PIN and key shares and leaves the rest of its proprietary commands readable).
 *
 * Without a `sink` the lines are kept in `lines` (and `text()` returns them): right for one run,
 * such as the command's `--trace FILE`. With a `sink` every line goes to the sink only and nothing
 * is kept, so a recording transport in a long-running service does not grow without bound:
 * `lines` stays empty and `text()` throws `INVALID_ARGUMENT`.
 */
export class RecordingTransport implements Transport {
  /** The transcript so far; always empty when a sink was given (the sink has every line). */
  readonly lines: string[] = [];
  constructor(
    readonly inner: Transport,
    private readonly sink?: TranscriptSink,
    private readonly mask: SecretMask = isoSecretMask,
  ) {
    argument(typeof inner?.transmit === 'function', 'inner', 'a Transport');
    argument(
      sink === undefined || typeof sink === 'function',
      'sink',
      'a function (line) => void, or undefined',
    );
    argument(typeof mask === 'function', 'mask', 'a SecretMask function');
  }

  get extendedLength(): boolean | undefined {
    return this.inner.extendedLength;
  }

  private emit(line: string): void {
    if (this.sink) this.sink(line);
    else this.lines.push(line);
  }

  /** Adds a `# comment` line (e.g. which step follows). */
  comment(text: string): void {
    this.emit(`# ${text.replace(/\n/g, ' ')}`);
  }

  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    this.emit(`=> ${maskedHex(apdu, this.mask)}`);
    try {
      const r = await this.inner.transmit(apdu);
      this.emit(`<= ${toHex(r)}`);
      return r;
    } catch (e) {
      this.emit(`# transport error: ${(e as Error).message}`);
      throw e;
    }
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.inner.exclusive ? this.inner.exclusive(fn) : fn();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** `await using`: closes the inner transport. */
  [asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * The transcript as text (one line each, trailing newline). `INVALID_ARGUMENT` when a sink was
   * given: such a transport keeps no line, the sink has them all.
   */
  text(): string {
    if (this.sink)
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        'this RecordingTransport keeps no transcript: every line went to its sink',
        { fix: 'read the transcript from the sink, or record without a sink to keep the lines' },
      );
    return this.lines.length ? `${this.lines.join('\n')}\n` : '';
  }
}

interface Step {
  line: number;
  command: string;
  response: string;
}

function parseTranscript(text: string): Step[] {
  const steps: Step[] = [];
  let pending: { line: number; command: string } | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^(=>|<=)\s*([0-9a-fA-F*\s]*)$/.exec(line);
    if (!m) throw new ScHsmError('MALFORMED_DATA', `transcript line ${i + 1}: expected "=> hex" or "<= hex"`);
    const hex = m[2]!.replace(/\s/g, '').toLowerCase();
    if (hex.length % 2)
      throw new ScHsmError('MALFORMED_DATA', `transcript line ${i + 1}: odd number of hex digits`);
    if (m[1] === '=>') {
      if (pending)
        throw new ScHsmError(
          'MALFORMED_DATA',
          `transcript line ${i + 1}: command without response before it`,
        );
      pending = { line: i + 1, command: hex };
    } else {
      if (!pending)
        throw new ScHsmError('MALFORMED_DATA', `transcript line ${i + 1}: response without command`);
      if (hex.includes('*'))
        throw new ScHsmError('MALFORMED_DATA', `transcript line ${i + 1}: masked response`);
      steps.push({ ...pending, response: hex });
      pending = undefined;
    }
  });
  if (pending)
    throw new ScHsmError('MALFORMED_DATA', `transcript line ${pending.line}: command without response`);
  return steps;
}

function matches(expected: string, actual: string): boolean {
  if (expected.length !== actual.length) return false;
  for (let i = 0; i < expected.length; i += 2) {
    const e = expected.slice(i, i + 2);
    if (e !== MASK && e !== actual.slice(i, i + 2)) return false;
  }
  return true;
}

/**
 * Plays a transcript back as the card. `**` bytes in commands match anything; an unexpected APDU
 * is shown in errors masked by `mask` (default {@link isoSecretMask}).
 */
export class ReplayTransport implements Transport {
  private readonly steps: Step[];
  private index = 0;

  constructor(
    transcript: string,
    private readonly mask: SecretMask = isoSecretMask,
  ) {
    argument(typeof transcript === 'string', 'transcript', 'the transcript text');
    argument(typeof mask === 'function', 'mask', 'a SecretMask function');
    this.steps = parseTranscript(transcript);
  }

  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    const actual = toHex(apdu);
    const step = this.steps[this.index];
    if (!step) {
      throw new ScHsmError(
        'REPLAY_MISMATCH',
        `unexpected APDU after the end of the transcript: ${maskedHex(apdu, this.mask)}`,
      );
    }
    if (!matches(step.command, actual)) {
      throw new ScHsmError(
        'REPLAY_MISMATCH',
        `APDU #${this.index + 1} differs from transcript line ${step.line}:\n  expected ${step.command}\n  actual   ${maskedHex(apdu, this.mask)}`,
      );
    }
    this.index++;
    return Uint8Array.from(Buffer.from(step.response, 'hex'));
  }

  /** Number of transcript exchanges not yet played. */
  get remaining(): number {
    return this.steps.length - this.index;
  }

  /** Throws if APDUs of the transcript were never sent. */
  assertDone(): void {
    if (this.remaining > 0) {
      const s = this.steps[this.index]!;
      throw new ScHsmError(
        'REPLAY_MISMATCH',
        `${this.remaining} APDU(s) of the transcript were never sent; next expected (line ${s.line}): ${s.command}`,
      );
    }
  }

  async close(): Promise<void> {
    this.assertDone();
  }

  /** `await using`: close(), which fails if APDUs of the transcript were never sent. */
  [asyncDispose](): Promise<void> {
    return this.close();
  }
}

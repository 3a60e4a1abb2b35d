/**
 * What every command gets: the global options, output, secrets, confirmation, progress and the
 * device (opened on demand, PC/SC or the virtual card, with the APDU trace and the state file
 * written when the command ends, also when it fails).
 */

import { ScHsmError } from '../errors.js';
import { OPTION } from '../protocol/constants.js';
import type { SmartCardHsm } from '../sc-hsm/session.js';
import { CliError } from './exit-codes.js';
import { type CliIo, Output } from './io.js';
import { applyKnownRetryCounter } from './pin-retry.js';
import { Prompter } from './prompt.js';
import { resolveSecret, type SecretRequest } from './secrets.js';

export interface GlobalOptions {
  reader?: string;
  sim?: string;
  /** `--profile NAME|FILE`: the virtual card's timing profile (src/sim/profile.ts). */
  profile?: string;
  json: boolean;
  trace?: string;
  /** `--trace-overwrite`: the trace may replace an existing regular file. */
  traceOverwrite?: boolean;
  yes: boolean;
  progress: boolean;
  lastTry: boolean;
  /** `--secure`: chip authentication and secure messaging right after the applet is selected. */
  secure?: boolean;
  /** `--session-pin SECRET`: ctx.login verifies it (inside SM) instead of `--pin`. */
  sessionPin?: string;
}

export type Values = Record<string, string | boolean | string[] | undefined>;

/** The device a command works on, as `openDevice` returns it. */
export interface Device {
  hsm: SmartCardHsm;
  /** Reader name (PC/SC) or `virtual:FILE`. */
  reader: string;
  atr?: Uint8Array;
  virtual: boolean;
}

export type DeviceOpener = (ctx: Ctx, o: { destructive?: boolean }) => Promise<Device>;

export class Ctx {
  readonly out: Output;
  readonly prompter: Prompter;
  private readonly finishers: (() => Promise<void>)[] = [];
  private device?: Promise<Device>;
  /** Set by commands whose outcome is not all-or-nothing (doctor). */
  exitCode = 0;
  /**
   * Set by `pka authenticate` when public key authentication alone authenticated the user in this
   * session (spec §3.18): a following step then sends and asks for no PIN.
   */
  pinNotNeeded = false;
  /** Set by `pka authenticate` when the custodians' keys authenticated in this session (spec §3.18). */
  pkaAuthenticated = false;

  constructor(
    readonly io: CliIo,
    readonly g: GlobalOptions,
    private readonly opener: DeviceOpener,
    /** The command being run (`keygen`, `sim serve`), e.g. to name the holder of a --sim file. */
    readonly command?: string,
  ) {
    this.out = new Output(io, g.json);
    this.prompter = new Prompter(io);
  }

  /** Runs `fn` when the command ends (in reverse order), whatever its outcome. */
  onFinish(fn: () => Promise<void>): void {
    this.finishers.push(fn);
  }

  async finish(): Promise<unknown[]> {
    this.prompter.close();
    const errors: unknown[] = [];
    for (const f of this.finishers.splice(0).reverse()) {
      try {
        await f();
      } catch (e) {
        errors.push(e);
      }
    }
    return errors;
  }

  /** The device, opened once per command. */
  open(o: { destructive?: boolean } = {}): Promise<Device> {
    this.device ??= this.opener(this, o);
    return this.device;
  }

  async hsm(o: { destructive?: boolean } = {}): Promise<SmartCardHsm> {
    return (await this.open(o)).hsm;
  }

  secret(spec: string | boolean | string[] | undefined, req: SecretRequest): Promise<string> {
    return resolveSecret(this.io, this.prompter, typeof spec === 'string' ? spec : undefined, req);
  }

  /**
   * Verifies the user PIN (`--pin`); with one try left only with --last-try (or when this computer
   * initialized the device with a retry counter of 1, see pin-retry.ts). `precheck`: the operation
   * the command sends after the PIN, run first up to its first command that needs the PIN
   * (SmartCardHsm.precheck): what it checks from public card data (key type, algorithm list, uses
   * left, a free key reference) refuses bad input before a PIN try can be spent. Pass the same
   * closure the command then calls.
   */
  async login(hsm: SmartCardHsm, v: Values, precheck?: () => Promise<unknown>): Promise<void> {
    if (precheck) await hsm.precheck(precheck);
    if (this.pinNotNeeded) return;
    this.refuseWithoutCustodians(hsm);
    try {
      if (this.g.sessionPin !== undefined) return await this.loginWithSessionPin(hsm, v);
      const pin = await this.secret(v.pin, { option: 'pin', prompt: 'User PIN' });
      await applyKnownRetryCounter(this.io, hsm);
      await hsm.verifyPin(pin, { force: this.g.lastTry });
    } catch (e) {
      // the custodians' keys replace the PIN (pin-guard.ts refused VERIFY unsent)
      if (e instanceof ScHsmError && e.code === 'CONDITIONS_NOT_SATISFIED' && e.command === 'VERIFY')
        throw new CliError(
          'SECURITY_STATUS',
          `this device has no user PIN to verify: the custodians' public keys replace it (initialized with --pka without --pka-and-pin). Nothing was sent`,
          `run it as the step of sc-hsm-ts pka authenticate --challenge-out FILE --response FILE … -- ${this.command ?? 'COMMAND'} … (the step asks for no PIN)`,
        );
      throw e;
    }
  }

  /**
   * A device initialized with --pka-and-pin (option 0010, spec §3.18) before the custodians'
   * public key authentication in this session: refused before any PIN is sent, by every command that
   * uses the user PIN to authorize something (pin verify and pin session too: a PIN tried alone
   * authorizes nothing and a wrong one spends a try). `pka authenticate -- COMMAND` runs them after the
   * custodians. Not `pin change`: the card checks the old PIN itself and the change grants nothing.
   */
  refuseWithoutCustodians(hsm: SmartCardHsm): void {
    if ((hsm.info.options & OPTION.COMBINED_AUTH) !== 0 && !this.pkaAuthenticated)
      throw new CliError(
        'SECURITY_STATUS',
        `this device needs the custodians' public key authentication as well as the user PIN (initialized with --pka-and-pin): the PIN alone authorizes nothing. Nothing was sent`,
        `run it as the step of sc-hsm-ts pka authenticate --challenge-out FILE --response FILE … -- ${this.command ?? 'COMMAND'} …`,
      );
  }

  /** `--session-pin` (with --secure): VERIFY with the session PIN inside SM (spec §3.20). */
  private async loginWithSessionPin(hsm: SmartCardHsm, v: Values): Promise<void> {
    if (v.pin !== undefined)
      throw new CliError('USAGE_ERROR', '--pin and --session-pin exclude each other; nothing was sent');
    if (!this.g.secure || !hsm.secureChannel)
      throw new CliError(
        'USAGE_ERROR',
        'a session PIN is accepted only inside secure messaging; nothing was sent',
        'add --secure',
      );
    const text = (
      await this.secret(this.g.sessionPin, { option: 'session-pin', prompt: 'Session PIN (hex)' })
    ).trim();
    if (!/^([0-9a-fA-F]{2}){6,16}$/.test(text))
      throw new CliError(
        'USAGE_ERROR',
        `--session-pin must be the hex that pin session wrote (12 to 32 hex digits); got ${text.length} characters`,
        'give the file pin session wrote: --session-pin file:FILE',
      );
    // each --sim command powers the virtual card on afresh: a session PIN lasts until a reset (§3.20)
    if (this.g.sim !== undefined)
      throw new CliError(
        'USAGE_ERROR',
        'with --sim the virtual card is powered on afresh for every command, which ends any session PIN: one from an earlier command cannot be valid, and trying it would cost a PIN try; nothing was sent',
        'verify the user PIN instead: --pin env:NAME',
      );
    const bytes = new Uint8Array(Buffer.from(text, 'hex'));
    try {
      await applyKnownRetryCounter(this.io, hsm);
      await hsm.verifySessionPin(bytes, { force: this.g.lastTry });
    } finally {
      bytes.fill(0);
    }
  }

  /**
   * Asks before a destructive step. `--yes` confirms; without a terminal and without --yes the
   * step is refused (exit 7); on a terminal the operator types `yes`.
   */
  async confirm(warning: string): Promise<void> {
    this.out.warn(warning);
    if (this.g.yes) return;
    if (!this.io.isTTY) {
      throw new CliError('CONFIRMATION_REQUIRED', 'this step needs confirmation: nothing was changed');
    }
    const a = await this.prompter.ask("Type 'yes' to continue: ");
    if (a.trim().toLowerCase() !== 'yes') {
      throw new CliError('CONFIRMATION_DECLINED', 'not confirmed: nothing was changed');
    }
  }

  /**
   * A progress reporter on stderr, only on a terminal or with --progress: a live percentage on a
   * terminal, quarter steps on one line otherwise (logs stay readable).
   */
  progress(label: string): { update: (fraction: number) => void; done: () => void } {
    const tty = this.io.isTTY;
    const on = tty || this.g.progress;
    let last = -1;
    let started = false;
    const w = (s: string) => this.io.stderr.write(s);
    return {
      update: (f) => {
        if (!on) return;
        const pct = Math.max(0, Math.min(100, Math.floor(f * 100)));
        const step = tty ? pct : Math.floor(pct / 25) * 25;
        if (step === last) return;
        if (!started) {
          started = true;
          if (!tty) w(`${label}:`);
        }
        last = step;
        w(tty ? `\r${label} ${String(pct).padStart(3)}%` : ` ${step}%`);
      },
      done: () => {
        if (on && started) w(tty ? `\r${label} done\n` : ' done\n');
      },
    };
  }
}

/** Option value accessors: they fail with usage errors (exit 2). */
export function str(v: Values, name: string): string | undefined {
  const x = v[name];
  if (x === undefined) return undefined;
  if (typeof x !== 'string') throw new CliError('USAGE_ERROR', `--${name} takes a value`);
  return x;
}

export function reqStr(v: Values, name: string, what?: string): string {
  const x = str(v, name);
  if (x === undefined || x === '')
    throw new CliError('USAGE_ERROR', `--${name} is required${what ? ` (${what})` : ''}`);
  return x;
}

export function list(v: Values, name: string): string[] {
  const x = v[name];
  if (x === undefined) return [];
  return Array.isArray(x) ? x : typeof x === 'string' ? [x] : [];
}

/**
 * The one number parser of the command: strict decimal digits, no sign, no leading zero (`010` is
 * not ten in every tool), no `0x`, exponent, `_` or blanks; NaN for anything else.
 */
export function parseDecimal(text: string): number {
  return /^(0|[1-9][0-9]{0,15})$/.test(text) ? Number(text) : Number.NaN;
}

export function int(v: Values, name: string, min: number, max: number): number | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  const n = parseDecimal(x);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new CliError(
      'USAGE_ERROR',
      `--${name} must be an integer from ${min} to ${max} in decimal digits (no 0x, no leading zero); got '${x.slice(0, 40)}'`,
    );
  }
  return n;
}

export function reqInt(v: Values, name: string, min: number, max: number): number {
  const n = int(v, name, min, max);
  if (n === undefined) throw new CliError('USAGE_ERROR', `--${name} is required`);
  return n;
}

export function flag(v: Values, name: string): boolean {
  return v[name] === true;
}

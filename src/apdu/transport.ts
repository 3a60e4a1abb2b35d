/**
 * The transport abstraction and the APDU channel on top of it.
 *
 * A `Transport` moves raw APDU bytes (PC/SC, the virtual card, a replay, a recorder). An
 * `ApduChannel` adds what ISO 7816 asks of every host: encoding, `61xx` GET RESPONSE chaining,
 * `6Cxx` re-issue, status words to typed errors, and one exchange at a time, with a way to hold
 * the channel for a whole sequence so that no other exchange of this process is interleaved.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { ScHsmError } from '../errors.js';
import { concat } from '../util/bytes.js';
import { FifoLock } from '../util/lock.js';
import { type CommandApdu, encodeCommand, parseResponse, type ResponseApdu, SW_OK } from './command.js';
import { errorForStatus, type SwOverrides } from './status.js';

export interface Transport {
  /** Sends one command APDU, resolves with the response APDU (data ‖ SW1 SW2). */
  transmit(apdu: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
  /** False when the reader cannot carry extended-length APDUs. Default: true. */
  readonly extendedLength?: boolean | undefined;
  /**
   * The largest command APDU the card takes, where it is known to be below 64 KiB (the virtual
   * card under a timing profile: 1462 bytes for JCOP 2.4.1r3). File writes are split to stay under it.
   */
  readonly maxApdu?: number | undefined;
  /**
   * Runs `fn` while other applications are kept off the card (PC/SC: an exclusive connection).
   * Optional; the channel serialises this process's own sequences either way.
   */
  exclusive?<T>(fn: () => Promise<T>): Promise<T>;
}

export interface ExchangeOptions {
  /** Status words that count as success besides 9000 (e.g. 6282 for READ BINARY). */
  accept?: number[];
  /** Per-command meaning of single status words. */
  overrides?: SwOverrides;
}

/**
 * The channels whose lock the current async context holds. One storage for the whole process: an
 * AsyncLocalStorage per channel would never be released and slows every later async hop.
 * It is only entered by `exclusive()` (and by the re-selection after a card reset), and disabled
 * again when the last such section of the process ends: while enabled, Node 20 runs a hook on
 * every promise of the process, which a plain `send()` (a signature in a loop) need not pay.
 */
const heldChannels = new AsyncLocalStorage<ReadonlySet<ApduChannel>>();
/** Sections holding a channel through `heldChannels`, process-wide. */
let heldSections = 0;

/** Serialises exchanges; `exclusive()` holds the channel for a sequence, re-entrantly. */
export class ApduChannel {
  /** Held while an exchange or a sequence runs (FIFO). */
  private readonly lock = new FifoLock();
  /** Number of APDUs given to the transport (GET RESPONSE included). */
  apduCount = 0;

  constructor(readonly transport: Transport) {}

  private holds(): boolean {
    return heldSections > 0 && heldChannels.getStore()?.has(this) === true;
  }

  /** Runs `fn` in an async context that holds this channel: exchanges inside it skip the queue. */
  private async hold<T>(fn: () => Promise<T>): Promise<T> {
    heldSections++;
    try {
      return await heldChannels.run(new Set([...(heldChannels.getStore() ?? []), this]), fn);
    } finally {
      if (--heldSections === 0) heldChannels.disable();
    }
  }

  /** Runs a multi-APDU sequence without interleaving (and exclusively on the reader where possible). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.holds()) return fn();
    return this.lock.run(() =>
      this.hold(() => (this.transport.exclusive ? this.transport.exclusive(fn) : fn())),
    );
  }

  /**
   * Called when the transport reports that another application reset the card (`CARD_RESET`):
   * the session selects its applet again there. The failed command is never re-sent: the error
   * still reaches the caller, who must verify the PIN again.
   */
  onCardReset?: () => Promise<void>;
  private recovering = false;

  private async raw(apdu: Uint8Array): Promise<ResponseApdu> {
    this.apduCount++;
    try {
      return parseResponse(await this.transport.transmit(apdu));
    } catch (e) {
      if (e instanceof ScHsmError && e.code === 'CARD_RESET' && this.onCardReset && !this.recovering) {
        this.recovering = true;
        const reselect = this.onCardReset;
        try {
          // The lock is ours already (this runs inside send): the re-selection must not queue.
          await this.hold(reselect);
        } catch (again) {
          throw new ScHsmError(
            'CARD_RESET',
            `${e.message}; selecting the applet again failed too: ${(again as Error).message}`,
            {
              cause: again,
            },
          );
        } finally {
          this.recovering = false;
        }
        throw new ScHsmError(
          'CARD_RESET',
          'the card was reset by another application; the applet was selected again, but the card forgot ' +
            'the verified PIN: verify it again (the interrupted command was not re-sent)',
          { cause: e },
        );
      }
      throw e;
    }
  }

  /** Sends a command, follows `61xx` and `6Cxx`, returns the final response without judging its SW. */
  send(cmd: CommandApdu): Promise<ResponseApdu> {
    return this.holds() ? this.sendNow(cmd) : this.lock.run(() => this.sendNow(cmd));
  }

  private async sendNow(cmd: CommandApdu): Promise<ResponseApdu> {
    const ext = this.transport.extendedLength !== false;
    let r = await this.raw(encodeCommand(cmd, ext));
    if ((r.sw & 0xff00) === 0x6c00) {
      r = await this.raw(encodeCommand({ ...cmd, ne: r.sw & 0xff || 256, extended: false }, ext));
    }
    if ((r.sw & 0xff00) !== 0x6100) return r;
    const parts: Uint8Array[] = [r.data];
    for (let i = 0; (r.sw & 0xff00) === 0x6100; i++) {
      if (i > 1024) throw new ScHsmError('MALFORMED_RESPONSE', 'endless 61xx response chain');
      r = await this.raw(encodeCommand({ cla: 0x00, ins: 0xc0, p1: 0, p2: 0, ne: r.sw & 0xff || 256 }, ext));
      parts.push(r.data);
    }
    return { data: concat(...parts), sw: r.sw };
  }

  /** Sends a command and returns its data, throwing the typed error for any status but success. */
  async exchange(cmd: CommandApdu, name: string, opts: ExchangeOptions = {}): Promise<ResponseApdu> {
    const r = await this.send(cmd);
    if (r.sw === SW_OK || opts.accept?.includes(r.sw)) return r;
    throw errorForStatus(r.sw, name, opts.overrides);
  }
}

/**
 * The real PC/SC transport: `pcsclite` (the NAN binding, loaded lazily because it is an optional
 * dependency) wrapped so that none of its traps reach the rest of the library.
 *
 * Every quirk absorbed here is measured in the PC/SC stack notes (§4) and prescribed by §7:
 * explicit share modes (the binding defaults to EXCLUSIVE and to UNPOWER on disconnect),
 * `'error'` listeners always attached (an unhandled one kills the process, and `close()` itself
 * emits one), no `close()` inside a `'status'` listener (it deadlocks on the reader's mutex),
 * promises instead of callbacks, a 65,538-byte receive buffer for extended APDUs, and PC/SC
 * error codes read from the binding's message text and turned into `ScHsmError` codes.
 */
import { createRequire } from 'node:module';
import { isMainThread } from 'node:worker_threads';
import { ScHsmError, type ScHsmErrorCode } from '../errors.js';
import { bytesEqual } from '../util/bytes.js';
import { asyncDispose } from '../util/dispose.js';
import { FifoLock } from '../util/lock.js';
import type { Transport } from './transport.js';

// ---------------------------------------------------------------------------------------------
// The binding's surface, typed structurally (so the library type-checks without it installed)

/** Status event of one reader (pcsclite `'status'`). */
interface BindingStatus {
  state: number;
  atr?: Uint8Array;
}

type Callback<T> = (err: unknown, value: T) => void;

/** The subset of pcsclite's `CardReader` this module uses. */
interface BindingReader {
  readonly name: string;
  connected: boolean;
  readonly SCARD_SHARE_SHARED: number;
  readonly SCARD_SHARE_EXCLUSIVE: number;
  readonly SCARD_PROTOCOL_T0: number;
  readonly SCARD_PROTOCOL_T1: number;
  readonly SCARD_STATE_PRESENT: number;
  readonly SCARD_STATE_MUTE: number;
  readonly SCARD_STATE_EXCLUSIVE: number;
  readonly SCARD_LEAVE_CARD: number;
  readonly SCARD_RESET_CARD: number;
  on(type: 'error', listener: (error: unknown) => void): this;
  on(type: 'status', listener: (status: BindingStatus) => void): this;
  on(type: 'end', listener: () => void): this;
  connect(options: { share_mode: number; protocol: number }, cb: Callback<number | undefined>): void;
  disconnect(disposition: number, cb: (err: unknown) => void): void;
  transmit(data: Buffer, resLen: number, protocol: number, cb: Callback<Buffer>): void;
  close(): void;
}

/** The subset of pcsclite's `PCSCLite` (the context) this module uses. */
interface BindingContext {
  on(type: 'error', listener: (error: unknown) => void): this;
  on(type: 'reader', listener: (reader: BindingReader) => void): this;
  close(): void;
  /**
   * pcsclite's monitor: its JS wrapper calls `p.start(cb)` on the next tick after construction, and
   * `cb` gets every SCardListReaders result (it emits one `'reader'` per new name inside `cb`).
   */
  start?: (cb: (err: unknown, names: unknown) => void) => void;
}

type BindingFactory = () => BindingContext;

/** Largest R-APDU: 65,536 data bytes + SW1 SW2 (extended Le = 0000). */
export const MAX_RESPONSE_LENGTH = 65538;

const INSTALL_HINT =
  'install it with `npm install pcsclite` (needs python3, make, g++ and the PC/SC headers: ' +
  '`apt-get install libpcsclite-dev`), and run pcscd (`apt-get install pcscd`)';
const START_PCSCD = 'start pcscd: `systemctl start pcscd` or `pcscd --foreground`';

/**
 * Why PC/SC is refused off the main thread: pcsclite's monitor thread calls into V8 without the
 * worker's isolate lock, and Node aborts the whole process (exit 134, `FATAL ERROR: ... HandleScope`)
 * as soon as pcscd answers. Measured with Node 20 and pcsclite 1.x under scripts/with-pcscd.sh.
 */
const WORKER_THREAD_FIX =
  "run the tests in processes, e.g. vitest `pool: 'forks'`, or use PC/SC from the main thread";

/** The message of the refusal: the cause and the fix in one line (a test runner shows only this). */
export const WORKER_THREAD_REFUSAL =
  'PC/SC works only on the main thread (the pcsclite addon is not worker-safe and would abort the ' +
  `whole process), and this call came from a worker thread (node:worker_threads): ${WORKER_THREAD_FIX}`;

let bindingPromise: Promise<BindingFactory> | undefined;

/**
 * Loads `pcsclite` on first use. It is an optionalDependency with a native build, so its absence
 * (or a build for another Node ABI) becomes `PCSC_UNAVAILABLE` with the way to install it.
 * The specifier is a variable so that neither TypeScript nor a bundler requires the package.
 * It is a CommonJS package, so it is required, not imported: an `import()` would start Node's ESM
 * loader and scan the package's source for its exports first (cold start of a command:
 * bench/startup.bench.ts). In the CommonJS build tsup's shim supplies `import.meta.url`.
 * In a worker thread it rejects with `PCSC_UNAVAILABLE` before anything is loaded
 * ({@link WORKER_THREAD_REFUSAL}): the addon would abort the process.
 */
export function loadPcsclite(): Promise<BindingFactory> {
  if (!isMainThread)
    return Promise.reject(
      new ScHsmError('PCSC_UNAVAILABLE', WORKER_THREAD_REFUSAL, { fix: WORKER_THREAD_FIX }),
    );
  if (!bindingPromise) {
    const specifier = process.env.SC_HSM_PCSCLITE_MODULE ?? 'pcsclite';
    bindingPromise = Promise.resolve()
      .then(() => createRequire(import.meta.url)(specifier) as { default?: unknown })
      .then(
        (mod) => {
          const f = (mod.default ?? mod) as unknown;
          if (typeof f !== 'function') {
            throw new ScHsmError('PCSC_UNAVAILABLE', `the module '${specifier}' is not the pcsclite binding`);
          }
          return f as BindingFactory;
        },
        (e: unknown) => {
          bindingPromise = undefined;
          throw new ScHsmError(
            'PCSC_UNAVAILABLE',
            `the PC/SC binding 'pcsclite' could not be loaded (${messageOf(e)}); ${INSTALL_HINT}`,
            { cause: e },
          );
        },
      );
  }
  return bindingPromise;
}

// ---------------------------------------------------------------------------------------------
// Error mapping (spec/pcsc-stack.md §4 table, §7 item 3)

/** PC/SC return codes that the library distinguishes (winscard `SCARD_*`). */
export const PCSC_CODES = {
  CANCELLED: 0x80100002,
  INVALID_HANDLE: 0x80100003,
  UNKNOWN_READER: 0x80100009,
  SHARING_VIOLATION: 0x8010000b,
  NO_SMARTCARD: 0x8010000c,
  COMM_ERROR: 0x80100013,
  NOT_TRANSACTED: 0x80100016,
  READER_UNAVAILABLE: 0x80100017,
  NO_SERVICE: 0x8010001d,
  SERVICE_STOPPED: 0x8010001e,
  NO_READERS_AVAILABLE: 0x8010002e,
  UNRESPONSIVE_CARD: 0x80100066,
  UNPOWERED_CARD: 0x80100067,
  RESET_CARD: 0x80100068,
  REMOVED_CARD: 0x80100069,
} as const;

/** The PC/SC code in a pcsclite message such as `SCardTransmit error: Card was removed.(0x80100069)`. */
export function pcscCodeOf(e: unknown): number | undefined {
  const m = /\(0x([0-9a-f]{8})\)/i.exec(messageOf(e));
  return m ? Number.parseInt(m[1]!, 16) : undefined;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Turns a pcsclite error (plain `Error`, code only in the text: spec §4 "smartcard errors" applies
 * to all three bindings) into the library's error, with the fix in the message.
 */
export function pcscError(e: unknown, reader?: string): ScHsmError {
  if (e instanceof ScHsmError) return e;
  const raw = messageOf(e);
  const code = pcscCodeOf(e);
  const where = reader ? ` (reader '${reader}')` : '';
  const make = (c: ScHsmErrorCode, text: string) =>
    new ScHsmError(c, `${text}${where} [${raw}]`, { cause: e });
  switch (code) {
    case PCSC_CODES.REMOVED_CARD:
      return cardRemovedError(reader, e);
    case PCSC_CODES.RESET_CARD:
      return make(
        'CARD_RESET',
        'the card was reset by another application: its selected applet and verified PIN are gone; ' +
          'select the applet and verify the PIN again',
      );
    case PCSC_CODES.NO_SERVICE:
    case PCSC_CODES.SERVICE_STOPPED:
    case PCSC_CODES.COMM_ERROR:
      return make('PCSC_UNAVAILABLE', `the PC/SC service pcscd is not running or went away; ${START_PCSCD}`);
    case PCSC_CODES.SHARING_VIOLATION:
      return make(
        'READER_BUSY',
        'another program has the card open, exclusively or while this step needs it exclusively ' +
          '(usually a running `pkcs11-tool`/`pkcs15-tool`, a browser or Thunderbird with the OpenSC ' +
          'PKCS#11 module loaded, or GnuPG `scdaemon`); close it (`gpgconf --kill scdaemon`) and retry',
      );
    case PCSC_CODES.NO_SMARTCARD:
      return make('NO_CARD', 'no card in the reader; insert the SmartCard-HSM and open the device again');
    case PCSC_CODES.UNKNOWN_READER:
    case PCSC_CODES.READER_UNAVAILABLE:
    case PCSC_CODES.NO_READERS_AVAILABLE:
      return make(
        'NO_READER',
        'the reader is gone; plug the device in again (`opensc-tool -l` lists readers)',
      );
    case PCSC_CODES.NOT_TRANSACTED:
      return make(
        'TRANSPORT_ERROR',
        'the reader could not complete the command; retry, or re-plug the device',
      );
    case PCSC_CODES.UNRESPONSIVE_CARD:
    case PCSC_CODES.UNPOWERED_CARD:
      return make('TRANSPORT_ERROR', 'the card does not answer; unplug and re-plug the device');
    default:
      return make('TRANSPORT_ERROR', 'PC/SC error');
  }
}

/**
 * The one way the library says that the card left the reader after it was opened, whatever told
 * us (pcscd's "Card was removed", "No smart card inserted" or "Unknown reader" on a handle that
 * worked before, an answer too short for a status word, a changed card event count). A command
 * under way when it went may have been carried out or not: the card may have acted on it before
 * the answer was lost.
 */
export function cardRemovedError(reader: string | undefined, cause?: unknown): ScHsmError {
  const where = reader ? ` from reader '${reader}'` : '';
  const raw = cause === undefined || cause instanceof ScHsmError ? '' : ` [${messageOf(cause)}]`;
  return new ScHsmError(
    'CARD_REMOVED',
    `the card was removed${where} (or the reader unplugged); a command under way when it went may or ` +
      `may not have been carried out by the card; insert it and open the device again${raw}`,
    cause === undefined ? {} : { cause },
  );
}

/**
 * PC/SC codes that, on a handle which was connected before, mean the card (or the token that is
 * both reader and card) is no longer there.
 */
const GONE_CODES: ReadonlySet<number> = new Set([
  PCSC_CODES.REMOVED_CARD,
  PCSC_CODES.NO_SMARTCARD,
  PCSC_CODES.UNKNOWN_READER,
  PCSC_CODES.READER_UNAVAILABLE,
  PCSC_CODES.NO_READERS_AVAILABLE,
]);

// ---------------------------------------------------------------------------------------------
// Context: one pcsclite instance and what it has told us about its readers

/** What a context knows about one reader, from its latest `'status'` event. */
export interface ReaderState {
  name: string;
  /** False until the reader's first `'status'` event arrived. */
  known: boolean;
  cardPresent: boolean;
  /** Another application holds the card exclusively. */
  exclusive: boolean;
  atr?: Uint8Array;
  /**
   * pcscd's card event count for this reader (the high 16 bits of the event state: one per
   * insertion and one per removal; a reset by another application does not count). 0 with a
   * pcscd that does not count.
   */
  cardEvents: number;
  /** Status events that reported no card, counted by this context (for a pcscd that does not count). */
  absences: number;
}

interface ReaderEntry {
  reader: BindingReader;
  state: ReaderState;
}

/**
 * A change among the readers, from pcscd's reader list and each reader's status events
 * (SCardGetStatusChange): a reader appeared or went, a card was inserted or removed. A watcher's
 * first events describe what is there when it starts (each reader, and each card present).
 */
export interface ReaderEvent {
  type: 'reader-added' | 'reader-removed' | 'card-inserted' | 'card-removed';
  /** The reader's name as pcscd reports it. */
  reader: string;
  /** The inserted card's ATR (`card-inserted`). */
  atr?: Uint8Array;
}

/**
 * One PC/SC context. pcsclite reports readers only through events: a `'reader'` event per reader
 * when its list arrives, then a `'status'` event per reader from that reader's own monitoring
 * thread (spec §4 "list readers"). `settle()` waits for that initial burst.
 */
export class PcscContext {
  private readonly entries = new Map<string, ReaderEntry>();
  private closed = false;
  private lastEvent = Date.now();
  private waiters: (() => void)[] = [];
  /**
   * True once pcscd's first reader list has been handed to the binding's callback (all of its
   * `'reader'` events have then been emitted), or the monitor failed; undefined when the binding
   * does not let us see that moment (then settle() falls back to its quiet window).
   */
  private listed: boolean | undefined;
  /** The last `'error'` the binding emitted on the context or a reader (kept, never thrown). */
  lastError: ScHsmError | undefined;
  private readonly listeners = new Set<(e: ReaderEvent) => void>();

  private constructor(private readonly binding: BindingContext) {
    // spec §4 "clean shutdown": close() emits 'error' ("Command cancelled") and pcscd dying emits
    // 'error' ("RPC transport error"); without a listener either one kills the process.
    binding.on('error', (e) => {
      if (!this.closed) this.lastError = pcscError(e);
      this.markListed();
    });
    binding.on('reader', (reader) => this.adopt(reader));
    this.watchFirstList();
  }

  /**
   * pcsclite's wrapper starts its monitor on the next tick with `p.start(cb)`, looked up on the
   * instance then, and emits the `'reader'` events of each SCardListReaders result synchronously
   * inside `cb`, the whole list at once. Wrapping `start` on the instance (before that tick) tells
   * us when the first list is complete, also when it is empty. Any other binding: left alone.
   */
  private watchFirstList(): void {
    const start = this.binding.start;
    if (typeof start !== 'function') return;
    this.listed = false;
    const binding = this.binding;
    binding.start = (cb) =>
      start.call(binding, (err, names) => {
        try {
          cb(err, names);
        } finally {
          this.markListed();
        }
      });
  }

  private markListed(): void {
    if (this.listed === false) {
      this.listed = true;
      this.touch();
    }
  }

  /**
   * Opens a context. pcsclite's constructor throws synchronously when pcscd is not running
   * (spec §4 "pcscd not running"; unlike @pokusew/pcsclite it does not spin).
   */
  static async establish(): Promise<PcscContext> {
    const factory = await loadPcsclite();
    let binding: BindingContext;
    try {
      binding = factory();
    } catch (e) {
      const err = pcscError(e);
      if (err.code === 'TRANSPORT_ERROR') {
        throw new ScHsmError('PCSC_UNAVAILABLE', `cannot reach pcscd (${messageOf(e)}); ${START_PCSCD}`, {
          cause: e,
        });
      }
      throw err;
    }
    return new PcscContext(binding);
  }

  private adopt(reader: BindingReader): void {
    const entry: ReaderEntry = {
      reader,
      state: {
        name: reader.name,
        known: false,
        cardPresent: false,
        exclusive: false,
        cardEvents: 0,
        absences: 0,
      },
    };
    this.entries.set(reader.name, entry);
    this.touch();
    this.emit({ type: 'reader-added', reader: reader.name });
    reader.on('error', (e) => {
      if (!this.closed) this.lastError = pcscError(e, reader.name);
    });
    reader.on('end', () => {
      this.entries.delete(reader.name);
      this.touch();
      if (entry.state.cardPresent) this.emit({ type: 'card-removed', reader: reader.name });
      this.emit({ type: 'reader-removed', reader: reader.name });
    });
    // Records only. Never close() from here: the binding holds the reader's mutex while it runs
    // this listener and close() takes the same mutex (spec §4 "deadlocks in the NAN bindings").
    reader.on('status', (s) => {
      const present =
        (s.state & reader.SCARD_STATE_PRESENT) !== 0 && (s.state & reader.SCARD_STATE_MUTE) === 0;
      const before = entry.state;
      entry.state = {
        name: reader.name,
        known: true,
        cardPresent: present,
        exclusive: (s.state & reader.SCARD_STATE_EXCLUSIVE) !== 0,
        ...(present && s.atr && s.atr.length > 0 ? { atr: new Uint8Array(s.atr) } : {}),
        cardEvents: s.state >>> 16,
        absences: entry.state.absences + (present ? 0 : 1),
      };
      this.touch();
      const now = entry.state;
      // a card swapped between two polls: pcscd's event count moved by two, the card is present
      const swapped = before.cardPresent && present && before.known && now.cardEvents !== before.cardEvents;
      if (before.cardPresent && (!present || swapped))
        this.emit({ type: 'card-removed', reader: reader.name });
      if (present && (!before.cardPresent || swapped))
        this.emit({ type: 'card-inserted', reader: reader.name, ...(now.atr ? { atr: now.atr } : {}) });
    });
  }

  /**
   * Calls `listener` with every {@link ReaderEvent} of this context from now on; returns the
   * function that stops it. Listeners run on a later turn of the event loop, never inside the
   * binding's status callback (which holds the reader's mutex), so they may close transports.
   */
  onReaderEvent(listener: (e: ReaderEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  private emit(e: ReaderEvent): void {
    if (this.closed || this.listeners.size === 0) return;
    setImmediate(() => {
      for (const l of [...this.listeners]) l(e);
    });
  }

  private touch(): void {
    this.lastEvent = Date.now();
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /**
   * Waits for the initial burst of reader and status events, at `timeoutMs` (default 1500) at the
   * latest. pcsclite lists every reader of pcscd's first SCardListReaders in one callback, and
   * each reader's monitoring thread then reports its first status at once (SCardGetStatusChange
   * from the UNAWARE state does not block). So the burst is over when that first list has arrived
   * and every reader named in it has reported a status; `graceMs` (default 1) more lets statuses
   * already queued on the event loop land. No readers at all: done as soon as the empty list
   * arrives. Readers that pcscd adds later come as later `'reader'` events (a long-lived
   * context sees them; every listReaders() call makes a fresh context).
   * A binding that does not show its first list falls back to "every reader seen has reported
   * its status and no event came for `quietMs`" (default 60).
   */
  async settle(o: { quietMs?: number; graceMs?: number; timeoutMs?: number } = {}): Promise<void> {
    const quietMs = o.quietMs ?? 60;
    const graceMs = o.graceMs ?? 1;
    const deadline = Date.now() + (o.timeoutMs ?? 1500);
    this.lastEvent = Math.max(this.lastEvent, Date.now());
    for (;;) {
      const now = Date.now();
      if (now >= deadline) return;
      let allKnown = true;
      for (const e of this.entries.values()) if (!e.state.known) allKnown = false;
      const quietFor = now - this.lastEvent;
      // listed === true: the burst is complete once all are known; undefined: quiet-window fallback
      const window = this.listed === undefined ? quietMs : graceMs;
      if (allKnown && this.listed !== false && quietFor >= window) return;
      const wait = Math.min(
        deadline - now,
        allKnown && this.listed !== false ? window - quietFor : Math.max(quietMs, 50),
      );
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.max(1, wait));
        function done() {
          clearTimeout(t);
          resolve();
        }
        this.waiters.push(done);
      });
    }
  }

  /** Readers in the order pcscd listed them (the order `opensc-tool -l` numbers them). */
  readers(): ReaderState[] {
    return [...this.entries.values()].map((e) => ({ ...e.state }));
  }

  /** The binding's reader object, for `PcscTransport`. */
  bindingReader(name: string): BindingReader | undefined {
    return this.entries.get(name)?.reader;
  }

  /** The latest status of one reader, or undefined when pcscd no longer lists it. */
  readerState(name: string): ReaderState | undefined {
    const s = this.entries.get(name)?.state;
    return s ? { ...s } : undefined;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Stops every monitoring thread. Deferred with setImmediate so that it never runs inside a
   * `'status'` listener (spec §4); the `'error'` the binding emits while closing goes to the
   * listeners attached in the constructor. Never throws.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => {
      setImmediate(() => {
        for (const { reader } of this.entries.values()) {
          try {
            reader.close();
          } catch {
            // a reader whose thread already ended (pcscd gone) may refuse; nothing to release
          }
        }
        try {
          this.binding.close();
        } catch {
          // same: closing is best effort and must not crash the process
        }
        resolve();
      });
    });
  }

  /** `await using`: {@link close}. */
  [asyncDispose](): Promise<void> {
    return this.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The transport

type ShareMode = 'shared' | 'exclusive';

export interface PcscConnectOptions {
  /** Close the context when the transport is closed (default true: the transport owns it). */
  ownsContext?: boolean;
  /**
   * How long one APDU (one SCardTransmit) may take, in ms; default none. On expiry the transmit
   * rejects with `TIMEOUT` and the transport is dead (every later call: the same error): the card
   * may still be working on the command, so nothing more is sent on this connection. Generous
   * values fit: an RSA-4096 key generation takes minutes on a real token.
   */
  timeoutMs?: number;
}

/**
 * How long a transport waits for pcscd's presence poll (every ~0.4 s with vpcd, spec/pcsc-stack.md
 * §2) to tell whether the card is still there, after an exchange failed in a way a pull explains.
 * Only a failed exchange pays it; one poll period and a half measured, doubled for a loaded host.
 */
const REMOVAL_CHECK_MS = 1500;

/**
 * A connection to the card in one reader. SHARED by default so that OpenSC and other programs keep
 * access; `exclusive(fn)` holds the card EXCLUSIVE for an administrative sequence (spec §7 item 1).
 * Transmits are serialised; after `CARD_RESET` the next transmit reconnects; after `CARD_REMOVED`
 * the transport stays dead (a card put back may be another card: open the device again), and so
 * does every later call.
 */
export class PcscTransport implements Transport {
  readonly extendedLength = true;
  private protocol = 0;
  private mode: ShareMode | undefined;
  private exclusiveDepth = 0;
  /** Serialises this transport's calls (FIFO). */
  private readonly lock = new FifoLock();
  private removed: ScHsmError | undefined;
  /** The reader's card event count and absences when this transport first connected. */
  private baseline: { cardEvents: number; absences: number; atr?: Uint8Array } | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly ownsContext: boolean;
  private readonly timeoutMs: number | undefined;
  /** Set when an APDU timed out: the native transmit may still be pending, the transport is dead. */
  private timedOut: ScHsmError | undefined;
  private removalSignal: { promise: Promise<ScHsmError>; resolve: (e: ScHsmError) => void } | undefined;
  private stopWatching: (() => void) | undefined;

  private constructor(
    readonly context: PcscContext,
    private readonly reader: BindingReader,
    o: PcscConnectOptions,
  ) {
    this.ownsContext = o.ownsContext ?? true;
    if (o.timeoutMs !== undefined) {
      if (!Number.isFinite(o.timeoutMs) || o.timeoutMs <= 0)
        throw new ScHsmError('INVALID_ARGUMENT', 'timeoutMs must be a positive number of milliseconds');
      this.timeoutMs = o.timeoutMs;
    }
  }

  /** Connects SHARED to the card in `readerName` of `context`. */
  static async connect(
    context: PcscContext,
    readerName: string,
    o: PcscConnectOptions = {},
  ): Promise<PcscTransport> {
    const reader = context.bindingReader(readerName);
    if (!reader) {
      throw new ScHsmError(
        'NO_READER',
        `no reader named '${readerName}'; \`opensc-tool -l\` lists the readers`,
      );
    }
    const t = new PcscTransport(context, reader, o);
    await t.lock.run(() => t.attach('shared'));
    t.takeBaseline();
    return t;
  }

  /** The reader's name as pcscd reports it. */
  get readerName(): string {
    return this.reader.name;
  }

  /**
   * Resolves (never rejects) with the CARD_REMOVED error once the card of this transport is gone:
   * pcscd reports it removed, or its reader went, or an exchange found it gone. Pending forever
   * while the card stays; after close() nothing more is watched.
   */
  get cardRemoved(): Promise<ScHsmError> {
    if (!this.removalSignal) {
      let resolve: (e: ScHsmError) => void = () => undefined;
      const promise = new Promise<ScHsmError>((r) => {
        resolve = r;
      });
      this.removalSignal = { promise, resolve };
      if (this.removed) resolve(this.removed);
      else if (!this.closed)
        this.stopWatching = this.context.onReaderEvent((e) => {
          if (e.reader !== this.reader.name) return;
          if (e.type === 'card-removed' || e.type === 'reader-removed')
            this.removalSignal?.resolve(this.removed ?? cardRemovedError(this.reader.name));
        });
    }
    return this.removalSignal.promise;
  }

  /** The card's ATR from the latest status event, if present. */
  get atr(): Uint8Array | undefined {
    return this.context.readerState(this.reader.name)?.atr;
  }

  /** The share mode currently held, or undefined while disconnected. */
  get shareMode(): ShareMode | undefined {
    return this.mode;
  }

  private attach(mode: ShareMode): Promise<void> {
    const r = this.reader;
    return new Promise((resolve, reject) => {
      // pcsclite's connect() skips the native call when `connected` is still true (it would then
      // report no protocol); detach() keeps it false, so each attach is a real SCardConnect.
      r.connected = false;
      r.connect(
        {
          share_mode: mode === 'shared' ? r.SCARD_SHARE_SHARED : r.SCARD_SHARE_EXCLUSIVE,
          protocol: r.SCARD_PROTOCOL_T0 | r.SCARD_PROTOCOL_T1,
        },
        (err, protocol) => {
          if (err) return reject(pcscError(err, r.name));
          this.protocol = protocol ?? r.SCARD_PROTOCOL_T1;
          this.mode = mode;
          resolve();
        },
      );
    });
  }

  /**
   * SCardDisconnect with LEAVE_CARD (pcsclite's default is UNPOWER, which would log the card out
   * and cost a cold reset for every other client: spec §4 "other gotchas").
   */
  private detach(disposition = this.reader.SCARD_LEAVE_CARD): Promise<void> {
    const r = this.reader;
    if (this.mode === undefined) return Promise.resolve();
    return new Promise((resolve, reject) => {
      r.disconnect(disposition, (err) => {
        this.mode = undefined;
        // On failure pcsclite leaves `connected` true and keeps the stale handle; forget it.
        r.connected = false;
        if (err) return reject(pcscError(err, r.name));
        resolve();
      });
    });
  }

  private rawTransmit(apdu: Uint8Array): Promise<Uint8Array> {
    const r = this.reader;
    return new Promise((resolve, reject) => {
      // The binding copies the command before it returns, and answers in a Buffer of its own
      // (Nan::CopyBuffer, never pooled): views on both, no copies.
      const cmd = Buffer.from(apdu.buffer, apdu.byteOffset, apdu.byteLength);
      r.transmit(cmd, MAX_RESPONSE_LENGTH, this.protocol, (err, data) => {
        if (err) return reject(pcscError(err, r.name));
        resolve(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      });
    });
  }

  /**
   * Remembers the reader's status of the card this transport connected to, once the reader has
   * reported one (a transport connected before the first status event takes it at the first check).
   */
  private takeBaseline(): void {
    const s = this.context.readerState(this.reader.name);
    if (!s?.known || !s.cardPresent) return;
    this.baseline = {
      cardEvents: s.cardEvents,
      absences: s.absences,
      ...(s.atr ? { atr: s.atr } : {}),
    };
  }

  /**
   * True when the reader's latest status says that the card this transport connected to is gone:
   * no card, no reader, another ATR, or a card event (removal, insertion) since the connection.
   */
  private cardChanged(): boolean {
    const s = this.context.readerState(this.reader.name);
    if (!s || (s.known && !s.cardPresent)) return true;
    if (!this.baseline) this.takeBaseline();
    const b = this.baseline;
    if (!b) return false;
    if (s.cardEvents !== b.cardEvents || s.absences !== b.absences) return true;
    return b.atr !== undefined && s.atr !== undefined && !bytesEqual(b.atr, s.atr);
  }

  /**
   * Waits up to `REMOVAL_CHECK_MS` for the reader's status to show that the card went. A card
   * pulled during a command fails that command before pcscd's presence poll has noticed (measured
   * with vpcd: "Transaction failed" 0x80100016, or success with an answer of 0 bytes), so the
   * status events decide. False means the card is demonstrably still the same and present.
   */
  private async removalConfirmed(): Promise<boolean> {
    const deadline = Date.now() + REMOVAL_CHECK_MS;
    for (;;) {
      if (this.context.isClosed) return false;
      if (this.cardChanged()) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Marks the transport dead: this and every later call report the removal. */
  private markRemoved(cause?: unknown): ScHsmError {
    this.removed ??= cardRemovedError(this.reader.name, cause);
    this.removalSignal?.resolve(this.removed);
    return this.removed;
  }

  /**
   * Connects again after a disconnect (reset recovery, share-mode switch). The card was there
   * when this transport was opened, so "no card" or "no reader" now means it was removed; a card
   * event since then means the card in the reader may be another one. Either: CARD_REMOVED.
   */
  private async reattach(mode: ShareMode): Promise<void> {
    try {
      await this.attach(mode);
    } catch (e) {
      const raw = e instanceof ScHsmError && e.cause !== undefined ? e.cause : e;
      if (GONE_CODES.has(pcscCodeOf(raw) ?? 0)) throw this.markRemoved(raw);
      throw e;
    }
    if (this.cardChanged()) {
      await this.detach().catch(() => undefined);
      throw this.markRemoved();
    }
  }

  /** The error for a failed SCardTransmit, after checking whether the card went away. */
  private async transmitFailed(e: unknown): Promise<ScHsmError> {
    const code = pcscCodeOf(e);
    if (code !== undefined && GONE_CODES.has(code)) return this.markRemoved(e);
    if (code === PCSC_CODES.NOT_TRANSACTED && (await this.removalConfirmed())) return this.markRemoved(e);
    const err = pcscError(e, this.reader.name);
    if (err.code === 'CARD_RESET') {
      // The handle stays in the "reset" state until it reconnects; do that on the next transmit.
      await this.detach().catch(() => undefined);
    }
    return err;
  }

  /** Refuses when the transport is closed or its card was removed. */
  private checkUsable(): void {
    if (this.closed)
      throw new ScHsmError('TRANSPORT_ERROR', 'the PC/SC transport is closed; open the device again');
    if (this.removed) throw this.removed;
    if (this.timedOut) throw this.timedOut;
  }

  /** `rawTransmit` bounded by `timeoutMs`: on expiry TIMEOUT, and the transport dead. */
  private boundedTransmit(apdu: Uint8Array): Promise<Uint8Array> {
    const pending = this.rawTransmit(apdu);
    const ms = this.timeoutMs;
    if (ms === undefined) return pending;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.timedOut = new ScHsmError(
          'TIMEOUT',
          `the card in reader '${this.reader.name}' did not answer within ${ms} ms; the command may or ` +
            'may not have been carried out, and this transport sends nothing more',
          { fix: 're-plug the device and open it again (a longer timeoutMs if the card was just slow)' },
        );
        // the late answer (or error) of the abandoned exchange goes nowhere
        pending.catch(() => undefined);
        reject(this.timedOut);
      }, ms);
      pending.then(
        (a) => {
          clearTimeout(timer);
          resolve(a);
        },
        (e) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });
  }

  /**
   * Sends one APDU (short or extended, up to a 65,538-byte answer). An answer too short to carry
   * a status word is what vpcd gives when the card goes during the exchange: it is a removal
   * check first (CARD_REMOVED, and the transport dead), and MALFORMED_RESPONSE only when the card
   * is demonstrably still there.
   */
  transmit(apdu: Uint8Array): Promise<Uint8Array> {
    return this.lock.run(async () => {
      this.checkUsable();
      if (this.mode === undefined) await this.reattach(this.exclusiveDepth > 0 ? 'exclusive' : 'shared');
      let answer: Uint8Array;
      try {
        answer = await this.boundedTransmit(apdu);
      } catch (e) {
        if (e === this.timedOut) throw e;
        throw await this.transmitFailed(e);
      }
      if (answer.length < 2) {
        if (await this.removalConfirmed()) throw this.markRemoved();
        throw new ScHsmError(
          'MALFORMED_RESPONSE',
          `the card in reader '${this.reader.name}' answered ${answer.length} byte(s), too short for a ` +
            'status word, and is still in the reader; the command may or may not have been carried out; ' +
            're-plug the device and open it again',
        );
      }
      return answer;
    });
  }

  /**
   * Runs `fn` with the card held EXCLUSIVE, then returns to SHARED. pcsclite has no
   * SCardReconnect (spec §4 table), so this is disconnect(LEAVE_CARD) + connect(EXCLUSIVE).
   *
   * What it means for the card's state: LEAVE_CARD neither resets nor powers down the card, and
   * pcscd only powers an unused card down ~0.45 s after its last handle goes (spec §2 control
   * table), so the selected applet and a verified PIN survive the reconnect in both directions.
   * The same is true for everyone else: in the instant between the two calls another program may
   * connect (then this rejects with READER_BUSY and the transport goes back to SHARED) or send a
   * SELECT, which logs the PIN out (spec sc-hsm-protocol §1.3); sequences that need the PIN should
   * verify it inside `fn`. Re-entrant: a nested call just runs `fn`.
   */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.exclusiveDepth > 0) return fn();
    this.exclusiveDepth++;
    try {
      await this.lock.run(async () => {
        this.checkUsable();
        await this.detach().catch(() => undefined);
        try {
          await this.reattach('exclusive');
        } catch (e) {
          if (!this.removed) await this.attach('shared').catch(() => undefined);
          throw e;
        }
      });
    } catch (e) {
      this.exclusiveDepth--;
      throw e;
    }
    try {
      return await fn();
    } finally {
      this.exclusiveDepth--;
      await this.lock.run(async () => {
        await this.detach().catch(() => undefined);
        // If this fails (card removed, pcscd gone) the next transmit reconnects and reports why.
        if (!this.removed && !this.closed) await this.reattach('shared').catch(() => undefined);
      });
    }
  }

  /**
   * Resets the card (SCardDisconnect with RESET_CARD, then connects again in the current mode):
   * volatile state is gone (selected applet, verified PIN) for this and every other client, which
   * see `CARD_RESET` on their next transmit.
   */
  reset(): Promise<void> {
    return this.lock.run(async () => {
      this.checkUsable();
      const mode = this.mode ?? (this.exclusiveDepth > 0 ? 'exclusive' : 'shared');
      if (this.mode === undefined) await this.reattach(mode);
      await this.detach(this.reader.SCARD_RESET_CARD);
      await this.reattach(mode);
    });
  }

  /**
   * Disconnects with LEAVE_CARD and, when the transport owns it, closes the context. Never
   * throws and never rejects: a dead pcscd or a removed card only make the goodbye shorter.
   */
  close(): Promise<void> {
    this.stopWatching?.();
    if (!this.closing && this.timedOut) {
      // The timed-out SCardTransmit may never return, and SCardDisconnect (and closing the
      // context) would wait for it: both run in the background, and close() resolves now.
      this.closed = true;
      this.closing = Promise.resolve();
      void this.detach()
        .catch(() => undefined)
        .then(() => (this.ownsContext ? this.context.close() : undefined));
    }
    if (!this.closing) {
      // Queued behind transmits already submitted, so those complete first.
      this.closing = this.lock
        .run(async () => {
          this.closed = true;
          await this.detach();
        })
        .catch(() => undefined)
        .then(() => (this.ownsContext ? this.context.close() : undefined));
    }
    return this.closing;
  }

  /** `await using`: {@link close}. */
  [asyncDispose](): Promise<void> {
    return this.close();
  }
}

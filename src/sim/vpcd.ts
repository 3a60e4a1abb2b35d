/**
 * Puts a virtual card into pcscd through the vsmartcard `vpcd` reader driver
 * (spec/pcsc-stack.md §2). The card is the TCP *client*; pcscd's vpcd listens on port 35963 for
 * slot 0 ("Virtual PCD 00 00") and 35964 for slot 1.
 *
 * Wire format, both directions: a 2-byte big-endian length, then the payload. One-byte payloads
 * from vpcd are control bytes: 00 power off, 01 power on, 02 reset (no answer), 04 GET ATR
 * (answer the ATR). Longer payloads are C-APDUs, answered with one R-APDU frame.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';

/** What the bridge needs from a card; `VirtualSmartCardHsm` fits, so does a test stub. */
export interface VpcdCard {
  readonly atr: Uint8Array;
  process(apdu: Uint8Array): Uint8Array;
  powerOn(): void;
  powerOff(): void;
  reset(): void;
  /**
   * Optional: resolves when the answer to the APDU last given to `process` may be sent (a timing
   * profile's modelled time, `VirtualSmartCardHsm.answerReady`); undefined answers at once. Until
   * then pcscd waits for the card, and so does every other client of the reader.
   */
  answerReady?(): Promise<void> | undefined;
}

export interface VpcdOptions {
  /** Default 127.0.0.1. In CI use 127.0.0.2 with the quickack route (spec §5), see scripts/with-pcscd.sh. */
  host?: string;
  /** Default 35963 (slot 0); 35964 is slot 1. */
  port?: number;
  /** Reconnect every 500 ms when the link drops or pcscd is not up yet (default true). */
  reconnect?: boolean;
  log?: (message: string) => void;
  /**
   * Keep the process alive for this link? Default true. False (`sc-hsm-ts/testing`): its socket
   * and retry timer are unref'd, so a test that forgets `close()` does not hang its runner.
   */
  keepAlive?: boolean;
}

export interface VpcdConnection {
  /** Resolves on the first TCP connection; rejects only when `reconnect` is false and it fails. */
  readonly connected: Promise<void>;
  /**
   * Resolves when pcscd's vpcd first asks this card for its ATR, i.e. when vpcd has accepted this
   * connection and dropped any card it held before. Until then the reader may still show the
   * previous card (same ATR, dead socket) and a command sent to it fails with
   * SCARD_E_NOT_TRANSACTED; wait for this before using the reader. Never rejects; pair it with a
   * timeout (a second card on an occupied slot waits silently, pcsc-stack notes §2).
   */
  readonly adopted: Promise<void>;
  /** Closes the socket for good (pcscd sees the card removed within ~0.4 s) and stops reconnecting. */
  close(): Promise<void>;
  on(event: 'connect' | 'disconnect', listener: () => void): this;
  off(event: 'connect' | 'disconnect', listener: () => void): this;
}

const CTRL_OFF = 0x00;
const CTRL_ON = 0x01;
const CTRL_RESET = 0x02;
const CTRL_ATR = 0x04;
const RETRY_MS = 500;
/** vpcd sends GET ATR at least every ~0.45 s (presence poll); none for this long → queued behind another card. */
const NO_ATR_WARNING_MS = 1500;
/** The frame length is 16 bits (spec §2 "Max payload is 0xFFFF"). */
const MAX_FRAME = 0xffff;
/** `6F 00` (no precise diagnosis), answered when the card throws or its answer cannot be framed. */
const SW_UNKNOWN = Uint8Array.of(0x6f, 0x00);

function frame(payload: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(2 + payload.length);
  b.writeUInt16BE(payload.length, 0);
  b.set(payload, 2);
  return b;
}

class Connection extends EventEmitter implements VpcdConnection {
  readonly connected: Promise<void>;
  readonly adopted: Promise<void>;
  private settleAdopted!: () => void;
  private socket: Socket | undefined;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;
  private settleConnected!: () => void;
  private failConnected!: (e: Error) => void;
  private everConnected = false;

  constructor(
    private readonly card: VpcdCard,
    private readonly host: string,
    private readonly port: number,
    private readonly reconnect: boolean,
    private readonly log: (m: string) => void,
    private readonly keepAlive = true,
  ) {
    super();
    this.connected = new Promise<void>((resolve, reject) => {
      this.settleConnected = resolve;
      this.failConnected = reject;
    });
    // Marks the promise handled, so a caller who never awaits it gets no unhandled rejection.
    this.connected.catch(() => undefined);
    this.adopted = new Promise<void>((resolve) => {
      this.settleAdopted = resolve;
    });
    this.dial();
  }

  private dial(): void {
    if (this.stopped) return;
    // node:net is loaded on first use, not when the library is imported (cold-start benchmark)
    import('node:net').then(
      (net) => this.open(net.connect({ host: this.host, port: this.port })),
      (e: unknown) => this.log(`vpcd: cannot load node:net: ${(e as Error).message}`),
    );
  }

  private open(sock: Socket): void {
    if (this.stopped) {
      sock.destroy();
      return;
    }
    this.socket = sock;
    if (!this.keepAlive) sock.unref();
    // Our answers go out at once; the remaining 40 ms stall is on vpcd's side (spec §5).
    sock.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    let sawAtrRequest = false;
    /** Answers held back for the card's modelled time go out in order, after this. */
    let outbox: Promise<void> | undefined;
    let opened = false;
    let watchdog: NodeJS.Timeout | undefined;

    sock.on('connect', () => {
      opened = true;
      this.log(`vpcd: connected to ${this.host}:${this.port}`);
      if (!this.everConnected) {
        this.everConnected = true;
        this.settleConnected();
      }
      watchdog = setTimeout(() => {
        if (!sawAtrRequest) {
          this.log(
            `vpcd: no GET ATR from ${this.host}:${this.port} after ${NO_ATR_WARNING_MS} ms; ` +
              'another virtual card probably occupies this slot (spec §2: a second card waits silently)',
          );
        }
      }, NO_ATR_WARNING_MS);
      watchdog.unref();
      this.emit('connect');
    });

    // A byte stream: vpcd 0.8 sends header and payload in two send() calls, and several frames
    // may arrive in one chunk (spec §2 "Framing").
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = new Uint8Array(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
        if (len === 1 && msg[0] === CTRL_ATR) {
          sawAtrRequest = true;
          this.settleAdopted();
        }
        const answer = this.handle(msg);
        const ready = len > 1 ? this.card.answerReady?.() : undefined;
        if (!ready && !outbox) {
          if (answer) sock.write(frame(answer));
          continue;
        }
        const sent: Promise<void> = (outbox ?? Promise.resolve())
          .then(() => ready)
          .then(() => {
            if (answer && !sock.destroyed) sock.write(frame(answer));
            if (outbox === sent) outbox = undefined;
          });
        outbox = sent;
      }
    });

    sock.on('error', (e) => {
      if (!this.everConnected && !this.reconnect) this.failConnected(e);
      this.log(`vpcd: ${e.message}`);
    });

    sock.on('close', () => {
      clearTimeout(watchdog);
      if (this.socket === sock) this.socket = undefined;
      if (opened) this.emit('disconnect');
      if (!this.stopped && this.reconnect) {
        this.retry = setTimeout(() => this.dial(), RETRY_MS);
        if (!this.keepAlive) this.retry.unref();
      }
    });
  }

  /** One message from vpcd → the answer to send, or undefined for control bytes that get none. */
  private handle(msg: Uint8Array): Uint8Array | undefined {
    if (msg.length === 1) {
      switch (msg[0]) {
        case CTRL_OFF:
          this.card.powerOff();
          return undefined;
        case CTRL_ON:
          this.card.powerOn();
          return undefined;
        case CTRL_RESET:
          this.card.reset();
          return undefined;
        case CTRL_ATR:
          // Always, even powered off: vpcd's liveness probe, and its poll thread blocks without it.
          return this.card.atr;
        default:
          this.log(`vpcd: unknown control byte ${msg[0]}`);
          return undefined;
      }
    }
    if (msg.length === 0) return undefined;
    let r: Uint8Array;
    try {
      r = this.card.process(msg);
    } catch (e) {
      this.log(`vpcd: card threw on an APDU: ${e instanceof Error ? e.message : String(e)}`);
      return SW_UNKNOWN;
    }
    // An empty frame means "card gone" to vpcd, an oversized one cannot be framed (spec §2).
    if (r.length === 0 || r.length > MAX_FRAME) {
      this.log(`vpcd: card answered ${r.length} bytes, which cannot be framed; sending 6F00`);
      return SW_UNKNOWN;
    }
    return r;
  }

  close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    if (!this.everConnected) this.failConnected(new Error('vpcd connection closed before it connected'));
    const sock = this.socket;
    if (!sock || sock.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      sock.once('close', () => resolve());
      sock.destroy();
    });
  }
}

/**
 * Connects `card` to pcscd's vpcd driver, i.e. inserts it into the reader "Virtual PCD 00 0n".
 * pcscd adopts a connected card on its next presence poll (≤ ~0.5 s, spec §6).
 */
export function connectToVpcd(card: VpcdCard, o: VpcdOptions = {}): VpcdConnection {
  return new Connection(
    card,
    o.host ?? '127.0.0.1',
    o.port ?? 35963,
    o.reconnect ?? true,
    o.log ?? (() => undefined),
    o.keepAlive ?? true,
  );
}

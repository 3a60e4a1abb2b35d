/**
 * The per-APDU timeout of the PC/SC transport (issue #11), through the real stack: a card behind
 * vpcd that stops answering. The transmit rejects with TIMEOUT after `timeoutMs`, the transport is
 * dead (every later call: TIMEOUT at once), and close() returns without waiting for the stalled
 * exchange. The card speaks vpcd's protocol itself here (a raw socket) so that it can stay silent.
 * Run with: bash scripts/with-pcscd.sh npx vitest run --project pcsc test/pcsc-timeout.pcsc.test.ts
 */
import { connect, type Socket } from 'node:net';
import { afterAll, expect, it } from 'vitest';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { describePcsc, vpcdSlot, waitForCard } from './helpers/pcsc-env.js';

const { host, port, reader: READER } = vpcdSlot();

/** A virtual card on a raw vpcd socket that answers nothing once `stalled` is set. */
class SilentCapableCard {
  readonly card = new VirtualSmartCardHsm();
  stalled = false;
  private socket: Socket | undefined;
  private buf = Buffer.alloc(0);
  atrAsked!: Promise<void>;

  start(): Promise<void> {
    let asked: () => void = () => undefined;
    this.atrAsked = new Promise((r) => {
      asked = r;
    });
    return new Promise((resolve, reject) => {
      const s = connect({ host, port }, () => resolve());
      s.setNoDelay(true);
      s.on('error', reject);
      s.on('data', (d) => {
        this.buf = Buffer.concat([this.buf, d]);
        while (this.buf.length >= 2) {
          const n = this.buf.readUInt16BE(0);
          if (this.buf.length < 2 + n) break;
          const msg = new Uint8Array(this.buf.subarray(2, 2 + n));
          this.buf = this.buf.subarray(2 + n);
          if (n === 1) {
            if (msg[0] === 0x04) {
              asked();
              this.send(this.card.atr);
            } else if (msg[0] === 0x01) this.card.powerOn();
            else if (msg[0] === 0x00) this.card.powerOff();
            else if (msg[0] === 0x02) this.card.reset();
          } else if (!this.stalled) this.send(this.card.process(msg));
        }
      });
      this.socket = s;
    });
  }

  private send(data: Uint8Array): void {
    const h = Buffer.alloc(2);
    h.writeUInt16BE(data.length);
    this.socket?.write(Buffer.concat([h, data]));
  }

  stop(): void {
    this.socket?.destroy();
  }
}

describePcsc('PC/SC per-APDU timeout', () => {
  const sim = new SilentCapableCard();
  afterAll(async () => {
    sim.stop();
    await waitForCard(READER, false, 5000).catch(() => undefined);
  });

  it('TIMEOUT after timeoutMs, the transport dead, close() does not wait', async () => {
    await sim.start();
    await sim.atrAsked;
    await waitForCard(READER, true, 8000);
    const t = await openPcsc({ reader: READER, apduTimeoutMs: 800 });
    const hsm = await SmartCardHsm.open(t);
    expect((await hsm.getChallenge(8)).length).toBe(8);
    sim.stalled = true;
    const started = Date.now();
    const err = await t.transmit(Uint8Array.of(0x00, 0x84, 0x00, 0x00, 0x08)).catch((e) => e);
    const took = Date.now() - started;
    expect(err).toMatchObject({ code: 'TIMEOUT' });
    expect(took).toBeGreaterThanOrEqual(750);
    expect(took).toBeLessThan(5000);
    const again = Date.now();
    await expect(t.transmit(Uint8Array.of(0x00, 0x84, 0x00, 0x00, 0x08))).rejects.toMatchObject({
      code: 'TIMEOUT',
    });
    expect(Date.now() - again).toBeLessThan(200);
    const closing = Date.now();
    await t.close();
    expect(Date.now() - closing).toBeLessThan(500);
    // the stalled exchange ends when the card goes
    sim.stop();
    await waitForCard(READER, false, 5000);
  });

  it('refuses a timeoutMs that is not a positive number', async () => {
    await expect(openPcsc({ reader: READER, apduTimeoutMs: -1 })).rejects.toMatchObject({
      code: expect.stringMatching(/INVALID_ARGUMENT|NO_CARD/),
    });
  });
});

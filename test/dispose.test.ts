/**
 * `await using` (issue #11): the session, the virtual card and the recording, replay and fault
 * transports close when their block ends, also when it ends by an exception; and a
 * RecordingTransport with a sink keeps no line (it runs for as long as a service does).
 */
import { describe, expect, it } from 'vitest';
import { FaultInjectingTransport } from '../src/apdu/fault.js';
import { PcscContext, PcscTransport } from '../src/apdu/pcsc.js';
import { RecordingTransport, ReplayTransport } from '../src/apdu/transcript.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { asyncDispose } from '../src/util/dispose.js';

describe('await using', () => {
  it('Symbol.asyncDispose is the one the library uses', () => {
    expect(typeof Symbol.asyncDispose).toBe('symbol');
    expect(asyncDispose).toBe(Symbol.asyncDispose);
    for (const C of [
      SmartCardHsm,
      VirtualSmartCardHsm,
      RecordingTransport,
      ReplayTransport,
      FaultInjectingTransport,
      PcscTransport,
      PcscContext,
    ])
      expect(typeof C.prototype[Symbol.asyncDispose], C.name).toBe('function');
  });

  it('a session and its virtual card close at the end of the block', async () => {
    const card = new VirtualSmartCardHsm();
    let outer: SmartCardHsm | undefined;
    {
      await using hsm = await SmartCardHsm.open(card);
      outer = hsm;
      await hsm.status();
    }
    await expect(outer.status()).rejects.toMatchObject({ code: 'SESSION_CLOSED' });
    await expect(card.transmit(Uint8Array.of(0, 0xa4, 4, 0))).rejects.toMatchObject({ code: 'CARD_REMOVED' });
  });

  it('closes also when the block throws', async () => {
    const card = new VirtualSmartCardHsm();
    let outer: SmartCardHsm | undefined;
    await expect(
      (async () => {
        await using hsm = await SmartCardHsm.open(card);
        outer = hsm;
        throw new Error('boom');
      })(),
    ).rejects.toThrow('boom');
    await expect(outer!.status()).rejects.toMatchObject({ code: 'SESSION_CLOSED' });
  });

  it('the virtual card alone, and the recording and fault transports', async () => {
    const card = new VirtualSmartCardHsm();
    {
      await using c = card;
      await using rec = new RecordingTransport(new FaultInjectingTransport(c));
      await SmartCardHsm.open(rec);
      expect(rec.lines.length).toBeGreaterThan(0);
    }
    await expect(card.transmit(Uint8Array.of(0, 0xa4, 4, 0))).rejects.toMatchObject({ code: 'CARD_REMOVED' });
  });

  it('a replay transport checks at the end of the block that its transcript was played', async () => {
    const transcript = '=> 00a4040000\n<= 9000\n';
    await expect(
      (async () => {
        await using _r = new ReplayTransport(transcript);
      })(),
    ).rejects.toMatchObject({ code: 'REPLAY_MISMATCH' });
    await expect(
      (async () => {
        await using r = new ReplayTransport(transcript);
        await r.transmit(Uint8Array.of(0, 0xa4, 4, 0, 0));
      })(),
    ).resolves.toBeUndefined();
  });
});

describe('RecordingTransport with a sink', () => {
  it('keeps nothing: every line goes to the sink, lines stays empty, text() says so', async () => {
    const sink: string[] = [];
    const rec = new RecordingTransport(new VirtualSmartCardHsm(), (l) => sink.push(l));
    const hsm = await SmartCardHsm.open(rec);
    for (let i = 0; i < 20; i++) await hsm.status();
    rec.comment('done');
    expect(sink.length).toBeGreaterThan(40);
    expect(sink.at(-1)).toBe('# done');
    expect(rec.lines).toEqual([]);
    expect(() => rec.text()).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    await hsm.close();
  });

  it('without a sink keeps the lines (the command --trace)', async () => {
    const rec = new RecordingTransport(new VirtualSmartCardHsm());
    await SmartCardHsm.open(rec);
    expect(rec.lines.length).toBeGreaterThan(0);
    expect(rec.text()).toBe(`${rec.lines.join('\n')}\n`);
  });
});

/**
 * PC/SC interop: this library's PcscTransport → the real pcscd → vpcd → a virtual card over TCP.
 * Run with `bash scripts/with-pcscd.sh npx vitest run test/pcsc` (private pcscd, quickack route).
 * All tests of this file share one pcscd and its two vpcd slots, so they run in order.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { encodeCommand, parseCommand } from '../src/apdu/command.js';
import type { PcscTransport } from '../src/apdu/pcsc.js';
import { isScHsmError, type ScHsmErrorCode } from '../src/errors.js';
import { AID, ATR_NITROKEY_HSM2 } from '../src/protocol/constants.js';
import {
  isSmartCardHsmSelectResponse,
  listReaders,
  openPcsc,
  SELECT_APPLET,
} from '../src/sc-hsm/open-pcsc.js';
import type { VpcdCard, VpcdConnection } from '../src/sim/vpcd.js';
import { bytesEqual, fromHex, toHex } from '../src/util/bytes.js';
import { describePcsc, insertCard, vpcdEndpoint, waitForCard } from './helpers/pcsc-env.js';

const SLOT0 = 'Virtual PCD 00 00';
const SLOT1 = 'Virtual PCD 00 01';
/** Plain JCOP 2.4.1 ATR (spec §1.1): not in the SC-HSM table, so only a SELECT can tell. */
const ATR_JCOP241 = fromHex('3BF81300008131FE454A434F5076323431B7');
const ECHO = Uint8Array.of(0x80, 0xee, 0x00, 0x00);
const FCP = fromHex('620785050001FF0301');

/** A card stub that counts what vpcd sends it. `hsm: false` makes it answer the AID with 6A82. */
class StubCard implements VpcdCard {
  counts = { on: 0, off: 0, reset: 0, apdus: 0 };
  last: Uint8Array = new Uint8Array(0);
  constructor(
    readonly atr: Uint8Array,
    private readonly hsm = true,
  ) {}
  powerOn() {
    this.counts.on++;
  }
  powerOff() {
    this.counts.off++;
  }
  reset() {
    this.counts.reset++;
  }
  process(apdu: Uint8Array): Uint8Array {
    this.counts.apdus++;
    this.last = apdu;
    const c = parseCommand(apdu);
    if (c.ins === 0xa4 && c.p1 === 0x04) {
      return this.hsm && bytesEqual(c.data, AID)
        ? Uint8Array.of(...FCP, 0x90, 0x00)
        : Uint8Array.of(0x6a, 0x82);
    }
    if (c.cla === 0x80 && c.ins === 0xee) return Uint8Array.of(0x90, 0x00);
    if (c.cla === 0x80 && c.ins === 0xec) return bigAnswer(c.data, Math.min(c.ne ?? 0, 60000));
    return Uint8Array.of(0x6d, 0x00);
  }
}

/** The large answer of the stub's `80 EC`: `n` bytes derived from the command data, then 9000. */
function bigAnswer(data: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n + 2);
  for (let i = 0; i < n; i++) out[i] = (data[i % data.length]! ^ i ^ (i >> 8)) & 0xff;
  out[n] = 0x90;
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `cond` holds; fails after `ms` (every wait in this file is bounded). */
async function until(what: string, cond: () => Promise<boolean> | boolean, ms = 4000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

async function expectCode(p: Promise<unknown>, code: ScHsmErrorCode): Promise<Error> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e, `expected ${code}`).toBeInstanceOf(Error);
  if (!isScHsmError(e, code))
    throw new Error(`expected ${code}, got ${String((e as Error).message)}`, { cause: e });
  return e;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function latency(t: PcscTransport, n: number): Promise<number> {
  for (let i = 0; i < 20; i++) await t.transmit(ECHO);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    const r = await t.transmit(ECHO);
    times.push(performance.now() - s);
    expect(toHex(r)).toBe('9000');
  }
  return median(times);
}

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 15000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

describePcsc('PC/SC transport against pcscd + vpcd', () => {
  const { host, port } = vpcdEndpoint();
  const cardA = new StubCard(ATR_NITROKEY_HSM2);
  let linkA: VpcdConnection;
  const open: PcscTransport[] = [];
  const links: VpcdConnection[] = [];
  const track = (t: PcscTransport) => {
    open.push(t);
    return t;
  };

  beforeAll(async () => {
    // waits for vpcd to take this card, not just for "a card present" (the previous test file's
    // card can still be listed for one presence poll, with a dead socket behind it)
    linkA = await insertCard(cardA, { host, port });
    links.push(linkA);
  });

  afterAll(async () => {
    for (const t of open) await t.close();
    for (const l of links) await l.close();
  });

  it('lists the virtual card as a SmartCard-HSM by its ATR, promptly', async () => {
    const start = performance.now();
    const list = await listReaders();
    const ms = performance.now() - start;
    console.log(`listReaders: ${ms.toFixed(0)} ms for ${list.length} readers`);
    expect(ms).toBeLessThan(1000);
    expect(list.map((r) => r.name)).toEqual([SLOT0, SLOT1]);
    expect(list[0]).toMatchObject({
      name: SLOT0,
      index: 0,
      cardPresent: true,
      atr: toHex(ATR_NITROKEY_HSM2).toUpperCase(),
      isSmartCardHsm: true,
      reason: 'atr',
    });
    expect(list[1]).toMatchObject({ index: 1, cardPresent: false, isSmartCardHsm: false });
    expect(list[1]!.reason).toBeUndefined();
  });

  it('openPcsc picks the only SmartCard-HSM; SELECT round trip', async () => {
    const t = track(await openPcsc());
    expect(t.readerName).toBe(SLOT0);
    expect(t.shareMode).toBe('shared');
    expect(t.atr && bytesEqual(t.atr, ATR_NITROKEY_HSM2)).toBe(true);
    const r = await t.transmit(SELECT_APPLET);
    expect(toHex(r)).toBe(`${toHex(FCP)}9000`);
    expect(isSmartCardHsmSelectResponse(r)).toBe(true);
    expect(toHex(cardA.last)).toBe(toHex(SELECT_APPLET));
    expect(toHex(SELECT_APPLET).toUpperCase()).toBe('00A404000BE82B0601040181C31F020100');
  });

  it('carries an extended APDU: 4,000-byte command, 60,000-byte answer', async () => {
    const t = open[0]!;
    const data = new Uint8Array(4000).map((_, i) => (i * 31 + 7) & 0xff);
    const apdu = encodeCommand({ cla: 0x80, ins: 0xec, p1: 0, p2: 0, data, ne: 65536 });
    expect(apdu.length).toBe(4009);
    const r = await t.transmit(apdu);
    expect(toHex(cardA.last)).toBe(toHex(apdu));
    expect(r.length).toBe(60002);
    expect(bytesEqual(r, bigAnswer(data, 60000))).toBe(true);
  });

  it('median APDU round trip < 1 ms over the quickack route (a functional check of the route)', async () => {
    const t = open[0]!;
    const m = await latency(t, 500);
    console.log(`median per-APDU latency, card at ${host}:${port}: ${m.toFixed(3)} ms (N=500)`);
    expect(m).toBeLessThan(1);
  });

  it('exclusive() keeps a second client off the card, then returns to SHARED', async () => {
    const t = open[0]!;
    await t.exclusive(async () => {
      expect(t.shareMode).toBe('exclusive');
      expect(toHex(await t.transmit(ECHO))).toBe('9000');
      const busy = await expectCode(openPcsc(), 'READER_BUSY');
      expect(busy.message).toMatch(/pkcs11-tool/);
      // (--atr alone would not connect: it reads the ATR from the reader status)
      const tool = await run('opensc-tool', ['-r', '0', '-s', '80EE0000']);
      expect(tool.code).not.toBe(0);
      expect(tool.out).toMatch(/in use|busy|sharing/i);
      expect(toHex(await t.transmit(ECHO))).toBe('9000');
    });
    expect(t.shareMode).toBe('shared');
    const tool = await run('opensc-tool', ['-r', '0', '-s', '80EE0000']);
    expect(tool.code, tool.out).toBe(0);
    expect(tool.out).toMatch(/SW1=0x90, SW2=0x00/);
    const second = track(await openPcsc());
    expect(toHex(await second.transmit(ECHO))).toBe('9000');
    // and the other way round: with a second SHARED client, EXCLUSIVE is refused and we stay usable
    await expectCode(
      t.exclusive(async () => 'unreachable'),
      'READER_BUSY',
    );
    expect(t.shareMode).toBe('shared');
    expect(toHex(await t.transmit(ECHO))).toBe('9000');
    await second.close();
  });

  it('reset by another client: CARD_RESET once, then the transport reconnects; reset reaches the card', async () => {
    const t = open[0]!;
    const other = track(await openPcsc());
    const resets = cardA.counts.reset;
    await other.reset();
    expect(cardA.counts.reset).toBeGreaterThan(resets);
    const e = await expectCode(t.transmit(ECHO), 'CARD_RESET');
    expect(e.message).toMatch(/verify the PIN again/);
    expect(toHex(await t.transmit(ECHO))).toBe('9000');
    await other.close();
  });

  it('power on/off control bytes reach the card', async () => {
    // All our handles gone: pcscd powers the card down ~0.45 s later (spec §2); connecting powers it up.
    for (const t of open) await t.close();
    const { on, off } = cardA.counts;
    await until('power off', () => cardA.counts.off > off, 3000);
    const t = track(await openPcsc());
    expect(cardA.counts.on).toBeGreaterThan(on);
    expect(toHex(await t.transmit(ECHO))).toBe('9000');
    console.log(`control bytes seen by the card so far: ${JSON.stringify(cardA.counts)}`);
  });

  it('a second card: found by SELECT, makes the choice ambiguous; latency without quickack', async () => {
    const cardB = new StubCard(ATR_JCOP241);
    // 127.0.0.1: no quickack route there, to measure the difference (spec §5).
    const linkB = await insertCard(cardB, { host: '127.0.0.1', port: port + 1 });
    links.push(linkB);
    const list = await listReaders();
    expect(list[1]).toMatchObject({ name: SLOT1, cardPresent: true, isSmartCardHsm: true, reason: 'select' });
    expect(list[1]!.atr).toBe(toHex(ATR_JCOP241).toUpperCase());
    expect(toHex(cardB.last)).toBe(toHex(SELECT_APPLET));

    const amb = await expectCode(openPcsc(), 'AMBIGUOUS_READER');
    expect(amb.message).toContain(SLOT0);
    expect(amb.message).toContain(SLOT1);
    await expectCode(openPcsc({ reader: 'virtual pcd' }), 'AMBIGUOUS_READER');
    await expectCode(openPcsc({ reader: 'no such reader' }), 'NO_READER');
    await expectCode(openPcsc({ reader: 7 }), 'NO_READER');

    const byIndex = track(await openPcsc({ reader: 1 }));
    expect(byIndex.readerName).toBe(SLOT1);
    const slow = await latency(byIndex, 30);
    const fast = await latency(open.find((t) => t.readerName === SLOT0 && t.shareMode)!, 200);
    console.log(
      `median per-APDU latency: ${fast.toFixed(3)} ms with the quickack route (${host}), ` +
        `${slow.toFixed(3)} ms without (127.0.0.1)`,
    );
    await byIndex.close();
    const bySubstring = track(await openPcsc({ reader: '00 01' }));
    expect(bySubstring.readerName).toBe(SLOT1);
    await bySubstring.close();
    const byName = track(await openPcsc({ reader: SLOT0, destructive: true }));
    expect(byName.readerName).toBe(SLOT0);
    await byName.close();
    await linkB.close();
    await waitForCard(SLOT1, false);
  });

  it('destructive use never picks automatically, not even the only SmartCard-HSM', async () => {
    const e = await expectCode(openPcsc({ destructive: true }), 'AMBIGUOUS_READER');
    expect(e.message).toContain(SLOT0);
  });

  it('a card that is not a SmartCard-HSM is refused when named', async () => {
    const cardC = new StubCard(ATR_JCOP241, false);
    const linkC = await insertCard(cardC, { host, port: port + 1 });
    links.push(linkC);
    const list = await listReaders();
    expect(list[1]).toMatchObject({ cardPresent: true, isSmartCardHsm: false });
    expect(list[1]!.reason).toBeUndefined();
    await expectCode(openPcsc({ reader: SLOT1 }), 'NOT_A_SMARTCARD_HSM');
    const t = track(await openPcsc());
    expect(t.readerName).toBe(SLOT0);
    await t.close();
    await linkC.close();
    await waitForCard(SLOT1, false);
  });

  it('closing the card socket mid-session: the next transmit rejects with CARD_REMOVED', async () => {
    const t = open.find((x) => x.readerName === SLOT0 && x.shareMode === 'shared')!;
    expect(toHex(await t.transmit(ECHO))).toBe('9000');
    await linkA.close();
    const e = await expectCode(t.transmit(ECHO), 'CARD_REMOVED');
    expect(e.message).toMatch(/insert it/);
    await expectCode(t.transmit(ECHO), 'CARD_REMOVED');
    await t.close();
    await waitForCard(SLOT0, false);
    await expectCode(openPcsc(), 'NO_CARD');
  });

  it('the real VirtualSmartCardHsm through pcscd: recognised by us and by OpenSC', async () => {
    // Imported here so that a broken simulator fails this test only, not the transport tests above.
    const { VirtualSmartCardHsm } = await import('../src/sim/index.js');
    const card = new VirtualSmartCardHsm();
    const link = await insertCard(card, { host, port });
    links.push(link);
    expect((await listReaders())[0]).toMatchObject({ isSmartCardHsm: true, reason: 'atr' });
    const t = track(await openPcsc());
    expect(isSmartCardHsmSelectResponse(await t.transmit(SELECT_APPLET))).toBe(true);
    await t.close();
    const name = await run('opensc-tool', ['-r', '0', '--name']);
    expect(name.out).toMatch(/SmartCard-HSM/);
    await link.close();
    await waitForCard(SLOT0, false);
  });

  it('a card swapped in at once after another (same ATR): insertCard waits for the new one', async () => {
    // The order in which PC/SC test files hand slot 0 to each other. Until vpcd's next presence
    // poll the reader still lists the old card, and an APDU sent then meets its closed socket
    // (SCARD_E_NOT_TRANSACTED); this is the race that made CI fail once.
    const first = new StubCard(ATR_NITROKEY_HSM2);
    const second = new StubCard(ATR_NITROKEY_HSM2);
    const one = await insertCard(first, { host, port });
    links.push(one);
    await one.close();
    const two = await insertCard(second, { host, port });
    links.push(two);
    const t = track(await openPcsc());
    expect(toHex(await t.transmit(ECHO))).toBe('9000');
    expect(second.counts.apdus).toBe(1);
    expect(first.counts.apdus).toBe(0);
    await t.close();
    await two.close();
    await waitForCard(SLOT0, false);
  });
});

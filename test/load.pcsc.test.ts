/**
 * Load and sharing through the real stack (pcsclite → pcscd → vpcd → the virtual card), vpcd slot
 * 1 (port 35964, reader "Virtual PCD 00 01") so as not to collide with the interop tests on slot 0.
 *
 *  - Two clients on one card: OpenSC's `pkcs15-tool --dump` in a loop, in parallel with
 *    sc-hsm-ts's administrative sequences (ApduChannel.exclusive → PcscTransport.exclusive). On
 *    the card side every APDU is logged; each sequence is bracketed by two marker APDUs, and
 *    between them no APDU of another client may arrive (OpenSC always starts with a SELECT; our
 *    sequences contain none).
 *  - 10,000 ECDSA signatures in one session: no error, exactly 10,000 SIGN commands at the card,
 *    bounded heap growth.
 * Run with: bash scripts/with-pcscd.sh npx vitest run test/load.pcsc.test.ts
 */
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RelayCard } from '../harness/relay-card.js';
import type { PcscTransport } from '../src/apdu/pcsc.js';
import { isScHsmError } from '../src/errors.js';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import type { VirtualSmartCardHsm } from '../src/sim/index.js';
import type { VpcdConnection } from '../src/sim/vpcd.js';
import { ascii } from '../src/util/bytes.js';
import { READER1, runTool, show } from './helpers/opensc.js';
import { describePcsc, initializedCard, insertCard, vpcdEndpoint } from './helpers/pcsc-env.js';

const PIN = '648219';
const SIGNATURES = 10_000;
/** GET CHALLENGE with these unusual lengths marks the start and the end of one of our sequences. */
const MARK_START = 0x11;
const MARK_END = 0x13;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** The virtual card with a log of every APDU it receives. */
class LoggingCard extends RelayCard<VirtualSmartCardHsm> {
  readonly log: Uint8Array[] = [];
  logging = true;
  /** APDUs received, and SIGN commands among them (counted also when not logging). */
  received = 0;
  signs = 0;
  override process(apdu: Uint8Array): Uint8Array {
    this.received++;
    if (apdu[0] === 0x80 && apdu[1] === 0x68) this.signs++;
    if (this.logging) this.log.push(apdu.slice(0, 8));
    return super.process(apdu);
  }
}

let slot: LoggingCard;
let vpcd: VpcdConnection;
let transport: PcscTransport;
let keyRef = 0;

describePcsc('load and sharing through pcscd (vpcd slot 1)', () => {
  beforeAll(async () => {
    const { card, hsm: local } = await initializedCard(PIN, { deviceId: '4440001', label: 'load' });
    keyRef = (await local.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'load' })).keyRef;
    slot = new LoggingCard(card);
    vpcd = await insertCard(slot, { host: vpcdEndpoint().host, port: 35964 });
    transport = await openPcsc({ reader: READER1 });
  }, 30_000);

  afterAll(async () => {
    await transport?.close();
    await vpcd?.close();
  });

  it('administrative sequences are never interleaved with pkcs15-tool --dump running in a loop', async () => {
    const hsm = await SmartCardHsm.open(transport);
    let stop = false;
    const tools: { ok: number; failed: string[] } = { ok: 0, failed: [] };
    const opensc = (async () => {
      while (!stop) {
        const r = await runTool('pkcs15-tool', ['--dump', '-r', READER1], { timeoutMs: 20_000 });
        if (r.code === 0) tools.ok++;
        else tools.failed.push(show(r));
      }
    })();
    const sequences = 40;
    const results: string[] = [];
    let busy = 0;
    try {
      for (let i = 0; i < sequences; i++) {
        // PcscTransport.exclusive reconnects EXCLUSIVE, which pcscd refuses while pkcs15-tool has the
        // card open at all (even SHARED): retry until the tool lets go, as an operator would.
        for (;;) {
          try {
            await sequence(i);
            break;
          } catch (e) {
            if (!isScHsmError(e, 'READER_BUSY') || ++busy > 5000) throw e;
            await new Promise((r) => setTimeout(r, 2));
          }
        }
        // leave the card to OpenSC for a moment between sequences
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      stop = true;
      await opensc;
    }
    async function sequence(i: number): Promise<void> {
      await hsm.channel.exclusive(async () => {
        await hsm.channel.send({ cla: 0x00, ins: 0x84, p1: 0, p2: 0, ne: MARK_START });
        await hsm.verifyPin(PIN);
        const keys = await hsm.listKeys();
        // the PIN state survives only if nobody SELECTed the applet meanwhile
        const sig = await hsm.sign(keyRef, 'ECDSA-SHA256', ascii(`sequence ${i}`));
        results.push(`${keys.length}:${sig.length > 0}`);
        await hsm.channel.send({ cla: 0x00, ins: 0x84, p1: 0, p2: 0, ne: MARK_END });
      });
    }
    console.log(
      `load: ${sequences} sequences, ${busy} refused while pkcs15-tool held the card, ${tools.ok} pkcs15-tool dumps`,
    );
    expect(results).toHaveLength(sequences);
    expect(tools.ok, tools.failed.slice(0, 2).join('\n')).toBeGreaterThan(0);

    // card side: between each start and end marker, only our sequence's APDUs
    const log = slot.log;
    const isMark = (a: Uint8Array, ne: number) => a[0] === 0x00 && a[1] === 0x84 && a[4] === ne;
    let open = -1;
    let seen = 0;
    const interleaved: string[] = [];
    let foreign = 0;
    for (let i = 0; i < log.length; i++) {
      const a = log[i]!;
      if (isMark(a, MARK_START)) {
        open = i;
        continue;
      }
      if (isMark(a, MARK_END)) {
        seen++;
        open = -1;
        continue;
      }
      if (open < 0) {
        if (a[1] === 0xa4) foreign++;
        continue;
      }
      // inside one of our sequences: SELECT (OpenSC's first command) or even READ BINARY (OpenSC's
      // way; ours is the odd B1) would be another client's. Ours: SELECT of a key file CCxx by FID
      // (P1 00, the key's FCP with its algorithm list, use counter and domain, #13).
      const ownKeySelect = a[1] === 0xa4 && a[2] === 0x00 && a[4] === 0x02 && a[5] === 0xcc;
      if ((a[1] === 0xa4 && !ownKeySelect) || a[1] === 0xb0)
        interleaved.push(`APDU #${i} ${Buffer.from(a).toString('hex')}`);
    }
    expect(seen).toBe(sequences);
    expect(foreign).toBeGreaterThan(0); // OpenSC did reach the card between our sequences
    expect(interleaved).toEqual([]);
  }, 120_000);

  it(`${SIGNATURES} ECDSA signatures in one session: no error, no leak`, async () => {
    const hsm = await SmartCardHsm.open(transport);
    await hsm.verifyPin(PIN);
    const data = new Uint8Array(32).fill(7);
    const spki = (await hsm.keyInfo(keyRef)).publicKey!;
    const pub = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    const warm = await hsm.sign(keyRef, 'ECDSA-SHA256', data);
    expect(nodeVerify('sha256', data, pub, warm)).toBe(true);
    slot.logging = false;
    slot.log.length = 0;
    const received0 = slot.received;
    const signs0 = slot.signs;
    gc();
    const before = process.memoryUsage();
    for (let i = 0; i < SIGNATURES; i++) {
      data[0] = i & 0xff;
      const sig = await hsm.sign(keyRef, 'ECDSA-SHA256', data);
      if (sig[0] !== 0x30) throw new Error(`signature ${i} is not DER`);
      if (i % 1000 === 0 && !nodeVerify('sha256', data, pub, sig))
        throw new Error(`signature ${i} does not verify`);
    }
    gc();
    const after = process.memoryUsage();
    expect(slot.signs - signs0).toBe(SIGNATURES);
    expect(slot.received - received0).toBe(SIGNATURES);
    expect(after.heapUsed - before.heapUsed).toBeLessThan(16 * 1024 * 1024);
    expect(after.rss - before.rss).toBeLessThan(64 * 1024 * 1024);
  }, 120_000);
});

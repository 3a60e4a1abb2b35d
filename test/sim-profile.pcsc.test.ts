/**
 * A timing profile through the real stack (pcsclite → pcscd → vpcd → the virtual card, slot 1):
 * the modelled time is real waiting that another client of pcscd experiences too. Asserted on the
 * order of events (the second client's command was sent while the card still worked on the
 * first's and reached the card only after that answer), never on durations. And `dump` of a
 * device filled to the profile's capacity works through pcscd.
 * Run with: bash scripts/with-pcscd.sh npx vitest run --project pcsc test/sim-profile.pcsc.test.ts
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { testCertificate } from '../harness/certificate.js';
import { RelayCard } from '../harness/relay-card.js';
import type { PcscTransport } from '../src/apdu/pcsc.js';
import { gatherDump } from '../src/sc-hsm/dump.js';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { NITROKEY_HSM2, type TimingProfile, type VirtualSmartCardHsm } from '../src/sim/index.js';
import type { VpcdConnection } from '../src/sim/vpcd.js';
import { fromHex } from '../src/util/bytes.js';
import { READER1 } from './helpers/opensc.js';
import { describePcsc, initializedCard, insertCard, vpcdEndpoint } from './helpers/pcsc-env.js';

const PIN = '648219';

/** The built-in's shape, nothing taking time but VERIFY with a PIN; capacity 4 EC keys. */
function profile(): TimingProfile {
  const p = structuredClone(NITROKEY_HSM2) as TimingProfile;
  const zero = (o: Record<string, unknown>) => {
    for (const k of Object.keys(o)) {
      if (typeof o[k] === 'number') o[k] = 0;
      else zero(o[k] as Record<string, unknown>);
    }
  };
  zero(p.card as unknown as Record<string, unknown>);
  zero(p.transfer as unknown as Record<string, unknown>);
  p.card.verifyMs = 1500;
  p.limits.capacity = { ecKeys: 4, rsa2048Keys: 1 };
  return p;
}

/** Names what the card receives and when its answer leaves (after the modelled time). */
class WatchedCard extends RelayCard<VirtualSmartCardHsm> {
  readonly events: string[] = [];
  onVerify?: () => void;
  private current: string | undefined;
  override process(apdu: Uint8Array): Uint8Array {
    const r = super.process(apdu);
    this.current =
      apdu[1] === 0x20 && apdu.length > 5 ? 'verify' : apdu[1] === 0x84 ? 'challenge' : undefined;
    if (this.current) this.events.push(`${this.current} received`);
    if (this.current === 'verify') this.onVerify?.();
    return r;
  }
  override answerReady(): Promise<void> | undefined {
    const name = this.current;
    const ready = super.answerReady();
    if (!name) return ready;
    if (!ready) {
      this.events.push(`${name} answered`);
      return undefined;
    }
    return ready.then(() => {
      this.events.push(`${name} answered`);
    });
  }
}

let slot: WatchedCard;
let vpcd: VpcdConnection;
let a: PcscTransport;
let b: PcscTransport | undefined;

describePcsc('timing profile through pcscd (vpcd slot 1)', () => {
  beforeAll(async () => {
    const { card, hsm: local } = await initializedCard(PIN, { deviceId: '5550001', label: 'model' });
    await local.logout();
    card.profile = profile();
    slot = new WatchedCard(card);
    vpcd = await insertCard(slot, { host: vpcdEndpoint().host, port: 35964 });
    a = await openPcsc({ reader: READER1 });
    b = await openPcsc({ reader: READER1 });
  }, 30_000);

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await vpcd?.close();
  });

  it("a second client's command waits while the card works on the first's", async () => {
    // raw APDUs: our sessions hold the reader exclusively for sequences, which would keep b out
    await a.transmit(fromHex('00A404000BE82B0601040181C31F0201'));
    let second: Promise<unknown> | undefined;
    slot.onVerify = () => {
      slot.onVerify = undefined;
      setImmediate(() => {
        slot.events.push('second client sent');
        second = b!.transmit(fromHex('0084000008'));
      });
    };
    const verify = await a.transmit(fromHex(`0020008106${Buffer.from(PIN).toString('hex')}`));
    expect(verify.subarray(-2)).toEqual(Uint8Array.of(0x90, 0x00));
    await second;
    expect(slot.events).toEqual([
      'verify received',
      'second client sent', // the card is still busy: its answer has not left
      'verify answered',
      'challenge received', // pcscd passed the second command on only after that answer
      'challenge answered',
    ]);
  });

  it('a device full to the profile capacity: the fifth key refused, dump through pcscd lists all four', async () => {
    // our session takes the reader exclusively for its sequences: the second client goes first
    await b?.close();
    b = undefined;
    const hsm = await SmartCardHsm.open(a);
    await hsm.verifyPin(PIN);
    for (let i = 1; i <= 4; i++) {
      const k = await hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: `full-${i}` });
      await hsm.storeCertificate(k.keyRef, testCertificate(k.publicKey, `full-${i}`));
    }
    await expect(
      hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'over' }),
    ).rejects.toMatchObject({
      code: 'MEMORY_FULL',
    });
    const d = await gatherDump(await SmartCardHsm.open(a));
    expect(d.keys.map((k) => k.label).sort()).toEqual(['full-1', 'full-2', 'full-3', 'full-4']);
    expect(d.keys.every((k) => k.certificate)).toBe(true);
  }, 60_000);
});

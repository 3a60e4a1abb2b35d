/**
 * XKEK key domains (key agreement with a PKI-as-a-Service group key) are out of scope: the virtual
 * card refuses their creation (6985) and the host recognises one in a status answer (the key
 * domain UID after the KCV, spec §3.10) and explains it instead of managing it.
 */
import { describe, expect, it } from 'vitest';
import type { Transport } from '../src/apdu/transport.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { concat, fromHex, toHex } from '../src/util/bytes.js';
import { rejection } from './helpers/fixtures.js';

const UID = fromHex('04'.padEnd(130, 'ab'));

/** The virtual card, with domain 2 answering its status as an XKEK domain would (UID after the KCV). */
class XkekCard implements Transport {
  readonly extendedLength = true;
  constructor(readonly card: VirtualSmartCardHsm) {}
  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (toHex(apdu) === '8052000200')
      return concat(Uint8Array.of(0xff, 0xff), new Uint8Array(8), UID, Uint8Array.of(0x90, 0x00));
    return this.card.transmit(apdu);
  }
  async close(): Promise<void> {}
}

describe('XKEK key domains', () => {
  it('the virtual card refuses to create one (6985)', async () => {
    const card = new VirtualSmartCardHsm();
    const hsm = await SmartCardHsm.open(card);
    await hsm.initialize({ soPin: '3537363231383830', userPin: '648219', keyDomains: 3 });
    await hsm.verifyPin('648219');
    const r = await hsm.channel.send({
      cla: 0x80,
      ins: 0x52,
      p1: 0x02,
      p2: 0x01,
      data: Uint8Array.of(0x30, 0x00),
    });
    expect(r.sw).toBe(0x6985);
  });

  it('the host recognises one, lists it as such, and refuses to manage it with XKEK_NOT_SUPPORTED', async () => {
    const card = new VirtualSmartCardHsm();
    const hsm = await SmartCardHsm.open(new XkekCard(card));
    await hsm.initialize({ soPin: '3537363231383830', userPin: '648219', dkekShares: 1, keyDomains: 3 });
    await hsm.importDkekShare(new Uint8Array(32).fill(7));
    await hsm.verifyPin('648219');
    const st = await hsm.keyDomainStatus(2);
    expect(toHex(st!.xkekUid!)).toBe(toHex(UID));
    expect((await hsm.listKeyDomains()).domains.map((d) => [d.domain, !!d.xkekUid])).toEqual([
      [0, false],
      [2, true],
    ]);
    const before = card.serialize();
    for (const call of [
      () => hsm.createKeyDomain(2, 1),
      () => hsm.importDkekShare(new Uint8Array(32).fill(9), { domain: 2 }),
      () => hsm.deleteKeyDomain(2),
      () => hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'x', domain: 2 }),
    ]) {
      const e = await rejection(call());
      expect(e.code).toBe('XKEK_NOT_SUPPORTED');
      expect(e.message).toMatch(/XKEK domain .*not manage/);
    }
    expect(card.serialize()).toBe(before);
  });
});

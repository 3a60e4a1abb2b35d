import { describe, expect, it } from 'vitest';
import { testCertificate } from '../harness/certificate.js';
import type { Transport } from '../src/apdu/transport.js';
import { gatherDump } from '../src/sc-hsm/dump.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { ascii, toHex } from '../src/util/bytes.js';

const PIN = '648219';

/** Records every command APDU on its way to the card. */
class Log implements Transport {
  readonly sent: string[] = [];
  constructor(private readonly card: VirtualSmartCardHsm) {}
  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    this.sent.push(toHex(apdu));
    return this.card.process(apdu);
  }
  async close(): Promise<void> {}
}

async function preparedCard(): Promise<{ card: VirtualSmartCardHsm; ec: number; rsa: number }> {
  const card = new VirtualSmartCardHsm({ deviceId: '3330001' });
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: '3537363231383830', userPin: PIN, label: 'dump-test' });
  await hsm.verifyPin(PIN);
  const ec = await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'ec-key' });
  const rsa = await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'rsa-key' });
  await hsm.storeCertificate(ec.keyRef, testCertificate(ec.publicKey, 'ec-key'));
  await hsm.writeDataObject({ label: 'public-obj', data: ascii('hello') });
  await hsm.writeDataObject({ label: 'private-obj', data: ascii('secret'), private: true });
  await hsm.storeCaCertificate(testCertificate(ec.publicKey, 'ca'), {
    label: 'ca-cert',
    id: Uint8Array.of(9),
  });
  return { card, ec: ec.keyRef, rsa: rsa.keyRef };
}

describe('gatherDump', () => {
  it('reads everything, each file once, without a PIN', async () => {
    const { card, ec, rsa } = await preparedCard();
    card.reset();
    const log = new Log(card);
    const hsm = await SmartCardHsm.open(log);
    const d = await gatherDump(hsm);
    expect(d.initialized).toBe(true);
    expect(d.label).toBe('dump-test');
    expect(d.userPin?.state).toBe('not-verified');
    expect(d.soPin?.triesLeft).toBeGreaterThan(0);
    expect(d.serial).toBeTruthy();
    expect(d.deviceCertificates?.device.chr).toBe(d.deviceChr);
    expect(d.keys.map((k) => [k.keyRef, k.label, k.type])).toEqual([
      [ec, 'ec-key', 'ec'],
      [rsa, 'rsa-key', 'rsa'],
    ]);
    const [k1, k2] = d.keys;
    expect(k1).toMatchObject({ curve: 'prime256v1', bits: 256 });
    expect(k1!.certificate?.[0]).toBe(0x30);
    expect(k1!.publicKey).toBeInstanceOf(Uint8Array);
    expect(k2!.certificate).toBeUndefined();
    expect(k2!.request).toBeInstanceOf(Uint8Array);
    expect(k2!.publicKey).toBeInstanceOf(Uint8Array);
    expect(d.caCertificates).toHaveLength(1);
    expect(d.caCertificates[0]!.description?.label).toBe('ca-cert');
    const files = d.dataObjects.filter((o) => o.kind === 'data');
    expect(files.map((f) => [f.private, f.read, f.data && toHex(f.data)])).toEqual([
      [false, true, toHex(ascii('hello'))],
      [true, false, undefined],
    ]);
    // SELECT, 2 PIN states, key domains (domain 0's DKEK, then domain 1: out of range), ENUMERATE, then each file once
    const reads = log.sent.filter((a) => a.startsWith('00b1'));
    expect(new Set(reads.map((a) => a.slice(4, 8))).size).toBe(reads.length);
    expect(log.sent.filter((a) => a.startsWith('002000')).length).toBe(2);
    expect(log.sent.filter((a) => a.startsWith('8058')).length).toBe(1);
    expect(log.sent.filter((a) => a.startsWith('8052')).map((a) => a.slice(4, 8))).toEqual(['0000', '0001']);
    expect(hsm.apduCount).toBe(log.sent.length);
  });

  it('with login: the PIN states are queried before it, the private data is read after it', async () => {
    const { card } = await preparedCard();
    card.reset();
    const hsm = await SmartCardHsm.open(card);
    const d = await gatherDump(hsm, { login: () => hsm.verifyPin(PIN) });
    expect(d.userPin?.state).toBe('not-verified');
    const priv = d.dataObjects.find((o) => o.kind === 'data' && o.private);
    expect(priv).toMatchObject({ read: true, data: ascii('secret') });
  });

  it('an uninitialized device: no PIN states, no files but the device certificates', async () => {
    const card = new VirtualSmartCardHsm();
    const log = new Log(card);
    const d = await gatherDump(await SmartCardHsm.open(log));
    expect(d.initialized).toBe(false);
    expect(d.userPin).toBeUndefined();
    expect(d.keys).toEqual([]);
    expect(log.sent.filter((a) => a.startsWith('00b1')).length).toBe(1);
  });
});

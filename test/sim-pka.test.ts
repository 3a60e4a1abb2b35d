/**
 * The virtual card's public key authentication in raw APDUs (spec §3.17, §3.18): the status words
 * of MSE SET DST/AT, PSO VERIFY CERTIFICATE, `80 54` (status, register, enumerate), GET CHALLENGE
 * and EXTERNAL AUTHENTICATE, and what a newer challenge, a SELECT and the PIN do.
 */
import { describe, expect, it } from 'vitest';
import { decodePkaFile } from '../src/pkcs15/index.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { ascii, toHex } from '../src/util/bytes.js';
import { tlv } from '../src/util/tlv.js';
import { custodian, PIN, SO } from './helpers/pka.js';
import { ext, ok, SELECT_AID, tx } from './sim-helpers.js';

const hex = (b: Uint8Array) => toHex(b);
const mse = (p2: string, chr: string) => {
  const d = tlv(0x83, ascii(chr));
  return `00 22 81 ${p2} ${d.length.toString(16).padStart(2, '0')} ${hex(d)}`;
};
const content = (t: Uint8Array) => t.subarray(t[1]! < 0x80 ? 2 : 2 + (t[1]! & 0x7f));

async function pkaCard(total: number, required: number): Promise<VirtualSmartCardHsm> {
  const card = new VirtualSmartCardHsm();
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO, userPin: PIN, publicKeyAuth: { total, required } });
  card.reset();
  ok(card, SELECT_AID);
  return card;
}

describe('virtual card: public key authentication in APDUs', () => {
  it('registration: MSE SET DST 6A88 for an unknown key, PSO VERIFY, 80 54 with the request; enumerate 9000/6A88/6A86; full 6A84', async () => {
    const a = await custodian();
    const f = decodePkaFile(a.file);
    const card = await pkaCard(2, 1);
    expect(hex(ok(card, '80 54 00 00 04'))).toBe('02020100');
    // the request's signer is unknown yet
    expect(tx(card, ext('80 54 00 00', hex(content(f.request)), '')).sw).toBe('6A88');
    // PSO without a verification key chosen
    expect(tx(card, ext('00 2A 00 BE', hex(content(f.issuer.raw)), '')).sw).toBe('6985');
    ok(card, mse('B6', f.issuer.chr), '6A88');
    ok(card, mse('B6', f.issuer.car!));
    ok(card, ext('00 2A 00 BE', hex(content(f.issuer.raw)), ''));
    ok(card, mse('B6', f.device.chr), '6A88');
    ok(card, mse('B6', f.device.car!));
    // the device certificate, damaged: 6A80 and not learned
    const bad = content(f.device.raw).slice();
    bad[bad.length - 1]! ^= 1;
    expect(tx(card, ext('00 2A 00 BE', hex(bad), '')).sw).toBe('6A80');
    ok(card, mse('B6', f.device.chr), '6A88');
    ok(card, mse('B6', f.device.car!));
    ok(card, ext('00 2A 00 BE', hex(content(f.device.raw)), ''));
    ok(card, mse('B6', f.device.chr));
    expect(hex(ok(card, ext('80 54 00 00', hex(content(f.request)), '0000')))).toBe('02010100');
    const chr = ok(card, '80 54 02 00 00');
    expect(Buffer.from(chr).toString('latin1')).toBe(a.chr);
    ok(card, '80 54 02 01 00', '6A88');
    ok(card, '80 54 02 02 00', '6A86');
    ok(card, ext('80 54 00 00', hex(content(f.request)), '0000'));
    expect(tx(card, ext('80 54 00 00', hex(content(f.request)), '0000')).sw).toBe('6A84');
    // registrations are persistent: a reset keeps them, drops what the session had verified
    card.reset();
    ok(card, SELECT_AID);
    expect(hex(ok(card, '80 54 00 00 04'))).toBe('02000100');
    ok(card, mse('B6', f.device.chr), '6A88');
  });

  it('authentication: MSE SET AT, GET CHALLENGE, EXTERNAL AUTHENTICATE; stale and wrong answers 6300; 6985 once done; the PIN is not used', async () => {
    const a = await custodian();
    const card = await pkaCard(1, 1);
    await (await SmartCardHsm.open(card)).pkaRegister(a.file);
    ok(card, SELECT_AID);
    const before = JSON.parse(card.serialize()).userPinTries;
    ok(card, '00 20 00 81', '6400');
    ok(card, `00 20 00 81 06 ${hex(ascii(PIN))}`, '6400');
    expect(JSON.parse(card.serialize()).userPinTries).toBe(before);
    ok(card, mse('A4', 'UTNOSUCH00001'), '6A88');
    // without a selected key, then without a challenge
    expect(tx(card, '00 82 00 00 02 30 00').sw).toBe('6A88');
    ok(card, mse('A4', a.chr));
    expect(tx(card, '00 82 00 00 02 30 00').sw).toBe('6985');
    const deviceChr = card.deviceChr;
    const sign = async (challenge: Uint8Array) => {
      const r = await a.hsm.pkaRespond(a.keyRef, { deviceChr, challenge: new Uint8Array(challenge) });
      return hex(r.signature);
    };
    const c1 = ok(card, '00 84 00 00 08');
    const s1 = await sign(c1);
    const c2 = ok(card, '00 84 00 00 08');
    expect(hex(c2)).not.toBe(hex(c1));
    expect(tx(card, `00 82 00 00 ${(s1.length / 2).toString(16).padStart(2, '0')} ${s1}`).sw).toBe('6300');
    const s2 = await sign(c2);
    ok(card, `00 82 00 00 ${(s2.length / 2).toString(16).padStart(2, '0')} ${s2}`);
    expect(hex(ok(card, '80 54 00 00 04'))).toBe('01000101');
    ok(card, '80 54 02 00 00', '9001');
    ok(card, mse('A4', a.chr), '6985');
    ok(card, '00 20 00 81');
    // a SELECT logs out
    ok(card, SELECT_AID);
    expect(hex(ok(card, '80 54 00 00 04'))).toBe('01000100');
    ok(card, '00 20 00 81', '6400');
  });

  it('a device without PKA: 80 54 and EXTERNAL AUTHENTICATE answer 6D00, GET CHALLENGE is plain random', () => {
    const card = new VirtualSmartCardHsm();
    ok(card, SELECT_AID);
    ok(card, '80 50 00 00 19 80 02 00 01 81 06 36 34 38 32 31 39 82 08 35 37 36 32 31 38 38 30 91 01 03');
    ok(card, '80 54 00 00 04', '6D00');
    ok(card, '00 82 00 00 02 30 00', '6D00');
    expect(ok(card, '00 84 00 00 20')).toHaveLength(32);
    ok(card, '00 20 00 81', '63C3');
  });
});

describe('virtual card state: registered keys', () => {
  it('are kept in the state file and validated on load', async () => {
    const a = await custodian();
    const card = await pkaCard(2, 1);
    await (await SmartCardHsm.open(card)).pkaRegister(a.file);
    const json = card.serialize();
    const back = VirtualSmartCardHsm.deserialize(json);
    expect((await (await SmartCardHsm.open(back)).pkaSlots()).map((s) => s.chr)).toEqual([a.chr, undefined]);
    const o = JSON.parse(json);
    for (const keys of ['00', [42], ['zz'], ['00', '00', '00']]) {
      expect(() =>
        VirtualSmartCardHsm.deserialize(JSON.stringify({ ...o, pka: { ...o.pka, keys } })),
      ).toThrow(expect.objectContaining({ code: 'INVALID_STATE_FILE' }));
    }
    // a state file of a card without registrations (written before they existed) still loads
    const { keys: _, ...old } = o.pka;
    expect(VirtualSmartCardHsm.deserialize(JSON.stringify({ ...o, pka: old }))).toBeInstanceOf(
      VirtualSmartCardHsm,
    );
  });
});

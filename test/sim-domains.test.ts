/** The virtual card's key domains: MANAGE KEY DOMAIN `80 52` P1 00–04 (spec §3.10), raw APDUs. */
import { describe, expect, it } from 'vitest';
import { keyCheckValue } from '../src/dkek/index.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { fromHex, toHex } from '../src/util/bytes.js';
import { INIT_TRACE_06, ok, SELECT_AID, SHARE, SHARE_KCV, tx, VERIFY_648219 } from './sim-helpers.js';

/** trace 06 plus tag 97 = 3 key domains (domain 0 with one share, as tag 92 says). */
const INIT_3_DOMAINS = `${INIT_TRACE_06.replace('80 50 00 00 1C', '80 50 00 00 1F')} 97 01 03`;
const SHARE2 = '11'.repeat(32);

function domainCard(): VirtualSmartCardHsm {
  const card = new VirtualSmartCardHsm({ deviceId: '1234567' });
  ok(card, SELECT_AID);
  ok(card, INIT_3_DOMAINS);
  return card;
}

describe('virtual card: key domains (spec §3.10)', () => {
  it('domain 0 is what tag 92 configured; the others start unused (6A88); beyond the slots 6A86', () => {
    const card = domainCard();
    expect(toHex(ok(card, '80 52 00 00 00'))).toBe('01010000000000000000');
    expect(tx(card, '80 52 00 01 00').sw).toBe('6A88');
    expect(tx(card, '80 52 00 02 00').sw).toBe('6A88');
    expect(tx(card, '80 52 00 03 00').sw).toBe('6A86');
  });

  it('create (P1=01) needs the PIN, then counts its own shares and KCV', () => {
    const card = domainCard();
    expect(tx(card, '80 52 01 01 01 02').sw).toBe('6982');
    ok(card, VERIFY_648219);
    expect(toHex(ok(card, '80 52 01 01 01 02 00'))).toBe(`0202${'00'.repeat(8)}`);
    expect(tx(card, '80 52 01 01 01 02').sw).toBe('6A86'); // exists
    expect(tx(card, '80 52 01 02 01 00').sw).toBe('6A80'); // zero shares
    expect(tx(card, '80 52 01 02 02 01 01').sw).toBe('6700');
    expect(toHex(ok(card, `80 52 00 01 20 ${SHARE} 00`))).toBe(`0201${'00'.repeat(8)}`);
    const last = ok(card, `80 52 00 01 20 ${SHARE2} 00`);
    const dkek = fromHex(SHARE).map((b) => b ^ 0x11);
    expect(toHex(last)).toBe(`0200${toHex(keyCheckValue(dkek))}`);
    expect(tx(card, `80 52 00 01 20 ${SHARE2} 00`).sw).toBe('6985'); // no share outstanding
    // domain 0 untouched
    expect(toHex(ok(card, '80 52 00 00 00'))).toBe('01010000000000000000');
    ok(card, `80 52 00 00 20 ${SHARE} 00`);
    expect(toHex(ok(card, '80 52 00 00 00')).slice(4)).toBe(SHARE_KCV);
  });

  it('import into a domain never created: 6A88; into domain ≠ 0 without the PIN: 6982', () => {
    const card = domainCard();
    expect(tx(card, `80 52 00 02 20 ${SHARE} 00`).sw).toBe('6A88');
    ok(card, VERIFY_648219);
    ok(card, '80 52 01 02 01 01');
    ok(card, SELECT_AID); // logs out
    expect(tx(card, `80 52 00 02 20 ${SHARE} 00`).sw).toBe('6982');
    expect(toHex(ok(card, '80 52 00 02 00')).slice(0, 4)).toBe('0101');
  });

  it('delete DKEK (04) makes the shares outstanding again; delete domain (03) answers 6A88 and frees the slot', () => {
    const card = domainCard();
    ok(card, VERIFY_648219);
    ok(card, '80 52 01 01 01 01');
    ok(card, `80 52 00 01 20 ${SHARE} 00`);
    expect(toHex(ok(card, '80 52 04 01 00'))).toBe(`0101${'00'.repeat(8)}`);
    expect(tx(card, '80 52 03 01').sw).toBe('6A88');
    expect(tx(card, '80 52 00 01 00').sw).toBe('6A88');
    expect(tx(card, '80 52 03 01').sw).toBe('6A86'); // deleting an unused domain
    expect(tx(card, '80 52 04 01').sw).toBe('6A88');
  });

  it('XKEK domains (P1=02) are refused with 6985; unknown P1 6A86; no tag 97: P1 ≠ 00 and P2 ≠ 00 answer 6A86', () => {
    const card = domainCard();
    ok(card, VERIFY_648219);
    expect(tx(card, '80 52 02 01 02 30 00').sw).toBe('6985');
    expect(tx(card, '80 52 05 01').sw).toBe('6A86');
    const legacy = new VirtualSmartCardHsm({ deviceId: '1234567' });
    ok(legacy, SELECT_AID);
    ok(legacy, INIT_TRACE_06);
    ok(legacy, VERIFY_648219);
    expect(tx(legacy, '80 52 00 01 00').sw).toBe('6A86');
    expect(tx(legacy, '80 52 01 00 01 01').sw).toBe('6A86');
  });

  it('the domains survive the state file; older files without them load; re-INITIALIZE clears them', () => {
    const card = domainCard();
    ok(card, VERIFY_648219);
    ok(card, '80 52 01 02 01 01');
    ok(card, `80 52 00 02 20 ${SHARE} 00`);
    const json = card.serialize();
    expect(JSON.parse(json).domains['2'].outstanding).toBe(0);
    const again = VirtualSmartCardHsm.deserialize(json);
    ok(again, SELECT_AID);
    expect(toHex(ok(again, '80 52 00 02 00'))).toBe(`0100${SHARE_KCV}`);
    const old = JSON.parse(json);
    delete old.domains;
    const older = VirtualSmartCardHsm.deserialize(JSON.stringify(old));
    ok(older, SELECT_AID);
    expect(tx(older, '80 52 00 02 00').sw).toBe('6A88');
    const bad = JSON.parse(json);
    bad.domains['3'] = bad.domains['2'];
    expect(() => VirtualSmartCardHsm.deserialize(JSON.stringify(bad))).toThrow(/domains: "3"/);
    ok(card, INIT_3_DOMAINS);
    expect(tx(card, '80 52 00 02 00').sw).toBe('6A88');
  });
});

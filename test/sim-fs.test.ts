import { describe, expect, it } from 'vitest';
import { toHex } from '../src/util/bytes.js';
import { ext, ok, readyCard, SELECT_AID } from './sim-helpers.js';

describe('virtual card: file system (spec §3.1–3.5)', () => {
  it('create with an empty 53, write chunks to the current EF, read back (trace 12 pattern)', () => {
    const card = readyCard();
    ok(card, '00 A4 00 00 02 CE 01 00', '6A82');
    ok(card, '00 D7 CE 01 06 54 02 00 00 53 00');
    expect(toHex(ok(card, '00 A4 00 00 02 CE 01 00'))).toBe('620e800200008201018302ce018a0105');
    const a = 'ab'.repeat(255);
    const b = 'cd'.repeat(235);
    ok(card, ext('00 D7 00 00', `5402000053 81ff ${a}`.replace(/\s/g, ''), '').trim());
    ok(card, ext('00 D7 00 00', `540200ff5381eb${b}`, '').trim());
    const fcp = ok(card, '00 A4 00 00 02 CE 01 00');
    expect(toHex(fcp.subarray(2, 6))).toBe('800201ea');
    const data = ok(card, ext('00 B1 CE 01', '54020000'), '6282');
    expect(toHex(data)).toBe(a + b);
    // offset > 0 keeps the first bytes and truncates after the write
    ok(card, '00 D7 CE 01 09 54 02 00 02 53 03 01 02 03');
    expect(toHex(ok(card, ext('00 B1 CE 01', '54020000'), '6282'))).toBe('abab010203');
    ok(card, '00 D7 CE 01 09 54 02 00 09 53 03 01 02 03', '6B00');
    // offset 0 replaces
    ok(card, '00 D7 CE 01 07 54 02 00 00 53 01 ff');
    expect(toHex(ok(card, ext('00 B1 CE 01', '54020000'), '6282'))).toBe('ff');
    // sc-hsm-ultralite: "53 00" followed by the data
    ok(card, '00 D7 CF 07 09 54 02 00 00 53 00 0a 0b 0c');
    expect(toHex(ok(card, ext('00 B1 CF 07', '54020000'), '6282'))).toBe('0a0b0c');
    ok(card, '00 E4 02 00 02 CE 01');
    ok(card, '00 A4 00 00 02 CE 01 00', '6A82');
    ok(card, '00 E4 02 00 02 CF 07');
    ok(card, '00 B1 00 00 04 54 02 00 00 00', '6986');
    ok(card, '00 E4 02 00 02 CE 01', '6A82');
  });

  it('ENUMERATE lists keys and EFs with prefixes C4 C8 C9 CA CC CD CE CF, not 2Fxx', () => {
    const card = readyCard();
    for (const fid of ['CA 00', 'C8 00', 'C9 00', 'CF 00', 'CD 01', 'C4 01', '2F 03', '12 34']) {
      ok(card, `00 D7 ${fid} 06 54 02 00 00 53 00`);
    }
    ok(card, '00 48 01 B0 00');
    expect(toHex(ok(card, '80 58 00 00 00 00 00'))).toBe('cc00cc01c401c800c900ca00cd01cf00');
    // short Le 00 works too when the list fits
    expect(ok(card, '80 58 00 00 00')).toHaveLength(16);
  });

  it('access: CD needs the PIN to read, keys never readable, 2F02 and CC00 protected', () => {
    const card = readyCard();
    ok(card, '00 D7 CD 01 08 54 02 00 00 53 02 01 02');
    ok(card, '00 D7 CF 01 08 54 02 00 00 53 02 03 04');
    ok(card, SELECT_AID);
    ok(card, '00 B1 CD 01 04 54 02 00 00 00', '6982');
    expect(toHex(ok(card, '00 B1 CF 01 04 54 02 00 00 00', '6282'))).toBe('0304');
    ok(card, '00 B1 CC 00 04 54 02 00 00 00', '6982');
    ok(card, '00 D7 CF 01 08 54 02 00 00 53 02 05 06', '6982');
    ok(card, '00 E4 02 00 02 CF 01', '6982');
    ok(card, '00 20 00 81 06 36 34 38 32 31 39');
    expect(toHex(ok(card, '00 B1 CD 01 04 54 02 00 00 00', '6282'))).toBe('0102');
    ok(card, '00 D7 2F 02 07 54 02 00 00 53 01 00', '6982');
    ok(card, '00 E4 02 00 02 2F 02', '6982');
    ok(card, '00 E4 02 00 02 CC 00', '6982');
    ok(card, '00 D7 CC 05 07 54 02 00 00 53 01 00', '6982');
    ok(card, '00 A4 08 00 04 50 15 49 46 00', '6A82');
  });

  it('answers 6A84 when the ~76 KB EEPROM is full', () => {
    const card = readyCard();
    const chunk = '00'.repeat(4000);
    let fid = 0;
    let sw = '9000';
    for (; fid < 40 && sw === '9000'; fid++) {
      const r = card.process(
        Buffer.from(
          ext(
            `00 D7 CF ${fid.toString(16).padStart(2, '0')}`,
            `540200005382${(4000).toString(16).padStart(4, '0')}${chunk}`,
            '',
          )
            .replace(/\s/g, '')
            .trim(),
          'hex',
        ),
      );
      sw = toHex(r.subarray(r.length - 2)).toUpperCase();
    }
    expect(sw).toBe('6A84');
    expect(fid).toBe(20);
    const st = ok(card, '80 50 00 00 07');
    expect((st[0]! << 24) | (st[1]! << 16) | (st[2]! << 8) | st[3]!).toBeLessThan(4000);
  });
});

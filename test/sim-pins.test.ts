import { describe, expect, it } from 'vitest';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { toHex } from '../src/util/bytes.js';
import {
  INIT_TRACE_06,
  ok,
  readyCard,
  SELECT_AID,
  SHARE,
  SHARE_KCV,
  tx,
  VERIFY_648219,
} from './sim-helpers.js';

const WRONG_000000 = '00 20 00 81 06 30 30 30 30 30 30';
const SO = '35 37 36 32 31 38 38 30';
const WRONG_SO = '35 37 36 32 31 38 38 31';

function initialized(): VirtualSmartCardHsm {
  const card = new VirtualSmartCardHsm();
  ok(card, SELECT_AID);
  ok(card, INIT_TRACE_06);
  return card;
}

describe('virtual card: INITIALIZE and DKEK import (spec §3.9, §3.10; traces 06–09)', () => {
  it('replays traces 06–09 with real-firmware answers', () => {
    const card = new VirtualSmartCardHsm();
    ok(card, SELECT_AID);
    ok(card, INIT_TRACE_06);
    ok(card, VERIFY_648219);
    ok(
      card,
      '00 D7 2F 03 1D 54 02 00 00 53 17 30 15 02 01 00 80 0C 4D 54 47 2D 43 41 52 41 2D 48 53 4D 03 02 05 20',
    );
    // trace 07: status after init
    expect(toHex(ok(card, SELECT_AID))).toContain('85050001000305');
    ok(card, '00 20 00 88', '63CF');
    ok(card, '00 20 00 81', '63C3');
    expect(toHex(ok(card, '80 52 00 00 00'))).toBe('01010000000000000000');
    // trace 08 (with the spec §7.6 share): KCV shown without any PIN, unlike pico
    expect(toHex(ok(card, `80 52 00 00 20 ${SHARE} 00`))).toBe(`0100${SHARE_KCV}`);
    // trace 09
    expect(toHex(ok(card, '80 52 00 00 00'))).toBe(`0100${SHARE_KCV}`);
    ok(card, `80 52 00 00 20 ${SHARE} 00`, '6985');
    ok(card, '80 52 00 00 10 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00', '6700');
    ok(card, '80 52 01 00 00', '6A86');
  });

  it('several shares XOR together; key generation waits until the DKEK is complete', () => {
    const card = new VirtualSmartCardHsm();
    ok(card, SELECT_AID);
    ok(
      card,
      '80 50 00 00 1C 80 02 00 01 81 06 36 34 38 32 31 39 82 08 35 37 36 32 31 38 38 30 91 01 03 92 01 02',
    );
    ok(card, VERIFY_648219);
    expect(toHex(ok(card, `80 52 00 00 20 ${SHARE} 00`))).toBe('02010000000000000000');
    ok(card, '00 48 01 B2 00', '6985');
    // the second share cancels the first: DKEK = zeros, KCV = SHA-256(0^32)[0..8]
    expect(toHex(ok(card, `80 52 00 00 20 ${SHARE} 00`))).toBe('020066687aadf862bd77');
    ok(card, '00 48 01 B2 00');
  });

  it('no DKEK (tag 92 absent) answers 6D00; 92 = 00 gives a complete random DKEK', () => {
    const card = new VirtualSmartCardHsm();
    ok(card, SELECT_AID);
    ok(card, '80 50 00 00 19 80 02 00 01 81 06 35 37 36 32 31 38 82 08 35 37 36 32 31 38 38 30 91 01 03');
    ok(card, '80 52 00 00 00', '6D00');
    ok(card, `80 52 00 00 20 ${SHARE} 00`, '6D00');
    ok(
      card,
      '80 50 00 00 1C 80 02 00 01 81 06 36 34 38 32 31 39 82 08 35 37 36 32 31 38 38 30 91 01 03 92 01 00',
    );
    const st = ok(card, '80 52 00 00 00');
    expect(toHex(st.subarray(0, 2))).toBe('0000');
    expect(toHex(st.subarray(2))).not.toBe('0000000000000000');
    ok(card, `80 52 00 00 20 ${SHARE} 00`, '6985');
  });

  it('validates INITIALIZE data (PIN lengths, retry limits per §9, SO-PIN length)', () => {
    const card = new VirtualSmartCardHsm();
    ok(card, SELECT_AID);
    // 6-character PIN with 4 retries
    ok(
      card,
      '80 50 00 00 1C 80 02 00 01 81 06 36 34 38 32 31 39 82 08 35 37 36 32 31 38 38 30 91 01 04 92 01 01',
      '6A80',
    );
    // 7-character PIN with 6 retries, 8-character with 11
    ok(
      card,
      '80 50 00 00 1D 80 02 00 01 81 07 36 34 38 32 31 39 37 82 08 35 37 36 32 31 38 38 30 91 01 06 92 01 01',
      '6A80',
    );
    ok(
      card,
      '80 50 00 00 1E 80 02 00 01 81 08 36 34 38 32 31 39 37 37 82 08 35 37 36 32 31 38 38 30 91 01 0B 92 01 01',
      '6A80',
    );
    // 5-character PIN, 7-byte SO-PIN
    ok(
      card,
      '80 50 00 00 1B 80 02 00 01 81 05 36 34 38 32 31 82 08 35 37 36 32 31 38 38 30 91 01 03 92 01 01',
      '6A80',
    );
    ok(
      card,
      '80 50 00 00 1B 80 02 00 01 81 06 36 34 38 32 31 39 82 07 35 37 36 32 31 38 38 91 01 03 92 01 01',
      '6A80',
    );
    ok(card, '00 20 00 88', '6A88');
    // trace 36 shape: 8-character PIN, 10 retries, random DKEK, PKA 3-of-2
    ok(
      card,
      '80 50 00 00 22 80 02 00 01 81 08 36 34 38 32 31 39 37 37 82 08 35 37 36 32 31 38 38 30 91 01 0A 92 01 00 93 02 03 02',
    );
    // the public keys replace the PIN (PKA_PIN_REPLACED_SW in uncertain.ts): no try counted
    ok(card, '00 20 00 81', '6400');
    expect(toHex(ok(card, '80 54 00 00 04'))).toBe('03030200');
  });

  it('no-data INITIALIZE reports free memory and the version', () => {
    const card = initialized();
    const st = ok(card, '80 50 00 00 07');
    expect(st).toHaveLength(7);
    expect(toHex(st.subarray(4))).toBe('000305');
    ok(card, '80 54 00 00 04', '6D00');
  });

  it('re-initialisation needs the SO-PIN (63Cx on the SO counter) and wipes everything but CC00/2F02', () => {
    const card = readyCard();
    ok(card, '00 D7 CF 00 09 54 02 00 00 53 03 01 02 03');
    ok(card, '00 48 01 B2 00');
    expect(toHex(ok(card, '80 58 00 00 00 00 00'))).toBe('cc00cc01cf00');
    const wrong = INIT_TRACE_06.replace('35 37 36 32 31 38 38 30', WRONG_SO);
    ok(card, wrong, '63CE');
    ok(card, '00 20 00 88', '63CE');
    ok(card, INIT_TRACE_06);
    ok(card, '00 20 00 88', '63CF');
    expect(toHex(ok(card, '80 58 00 00 00 00 00'))).toBe('cc00');
    ok(card, '00 A4 00 00 02 2F 02 00');
    ok(card, '00 20 00 81', '63C3');
    expect(toHex(ok(card, '80 52 00 00 00'))).toBe('01010000000000000000');
  });

  it('a blocked SO-PIN blocks INITIALIZE and unblocking for good', () => {
    const card = initialized();
    const wrong = INIT_TRACE_06.replace('35 37 36 32 31 38 38 30', WRONG_SO);
    for (let left = 14; left >= 1; left--) ok(card, wrong, `63C${left.toString(16).toUpperCase()}`);
    ok(card, wrong, '63C0');
    ok(card, '00 20 00 88', '6983');
    ok(card, INIT_TRACE_06, '6983');
    ok(card, `00 2C 00 81 0E ${SO} 36 35 34 33 32 31`, '6983');
  });
});

describe('virtual card: user PIN (spec §3.6–3.8; traces 35–46)', () => {
  it('replays the wrong-PIN, unblock and change-PIN traces', () => {
    const card = initialized();
    // 35, 37, 38: three wrong logins; the blocking try answers 63C0, later ones 6983
    ok(card, '00 20 00 81', '63C3');
    ok(card, WRONG_000000, '63C2');
    ok(card, '00 20 00 81', '63C2');
    ok(card, WRONG_000000, '63C1');
    ok(card, WRONG_000000, '63C0');
    // 39, 40
    ok(card, '00 20 00 81', '6983');
    ok(card, VERIFY_648219, '6983');
    // 41: C_InitPIN with the SO-PIN
    ok(card, `00 2C 00 81 0E ${SO} 36 35 34 33 32 31`);
    // 42, 43
    ok(card, '00 20 00 81', '63C3');
    ok(card, '00 20 00 81 06 36 35 34 33 32 31');
    ok(card, '00 20 00 81');
    // 45: change back
    ok(card, '00 24 00 81 0C 36 35 34 33 32 31 36 34 38 32 31 39');
    ok(card, SELECT_AID);
    ok(card, '00 20 00 81 06 36 35 34 33 32 31', '63C2');
    ok(card, VERIFY_648219);
    ok(card, '00 20 00 81');
  });

  it('a correct PIN resets the counter; wrong PIN length is 6A80 without counting', () => {
    const card = initialized();
    ok(card, WRONG_000000, '63C2');
    ok(card, VERIFY_648219);
    ok(card, SELECT_AID);
    ok(card, '00 20 00 81', '63C3');
    ok(card, '00 20 00 81 05 36 34 38 32 31', '6A80');
    ok(card, '00 20 00 81', '63C3');
    ok(card, '00 20 00 85', '6A88');
    ok(card, '00 20 00 86', '6A88');
    ok(card, '00 20 00 82', '6A86');
  });

  it('RESET RETRY COUNTER: wrong SO-PIN counts down, P1 01 resets only, option 0001 required', () => {
    const card = initialized();
    ok(card, `00 2C 00 81 0E ${WRONG_SO} 36 35 34 33 32 31`, '63CE');
    ok(card, '00 20 00 88', '63CE');
    ok(card, WRONG_000000, '63C2');
    ok(card, `00 2C 01 81 08 ${SO}`);
    ok(card, '00 20 00 88', '63CF');
    ok(card, '00 20 00 81', '63C3');
    ok(card, VERIFY_648219);
    ok(card, `00 2C 00 82 0E ${SO} 36 35 34 33 32 31`, '6A86');
    // pkcs15-tool --unblock-pin sends the SO-PIN as ASCII hex (trace 35 of the spec): burns one try
    ok(card, '00 2C 00 81 13 33 35 33 37 33 36 33 32 33 31 33 38 33 38 33 30 64 82 19', '63CE');

    const noRrc = new VirtualSmartCardHsm();
    ok(noRrc, SELECT_AID);
    ok(noRrc, INIT_TRACE_06.replace('80 02 00 01', '80 02 00 00'));
    ok(noRrc, `00 2C 00 81 0E ${SO} 36 35 34 33 32 31`, '6986');
  });

  it('CHANGE REFERENCE DATA for the SO-PIN (8 ‖ 8 bytes) and VERIFY 88 with data', () => {
    const card = initialized();
    ok(card, `00 24 00 88 10 ${SO} 01 02 03 04 05 06 07 08`);
    ok(card, `00 20 00 88 08 ${SO}`, '63CE');
    ok(card, '00 20 00 88 08 01 02 03 04 05 06 07 08');
    ok(card, '00 20 00 88');
    ok(card, '00 20 00 88 06 01 02 03 04 05 06', '6A80');
    ok(card, `00 24 00 88 08 ${SO}`, '6A80');
    ok(card, INIT_TRACE_06, '63CE');
  });

  it('transport-PIN mode: VERIFY answers 6984 until the PIN is changed', () => {
    const card = new VirtualSmartCardHsm();
    ok(card, SELECT_AID);
    ok(card, INIT_TRACE_06.replace('80 02 00 01', '80 02 00 03'));
    expect(toHex(ok(card, SELECT_AID))).toContain('85050003000305');
    ok(card, '00 20 00 81', '6984');
    ok(card, VERIFY_648219, '6984');
    ok(card, '00 24 00 81 0C 30 30 30 30 30 30 31 32 33 34 35 36', '63C2');
    ok(card, '00 24 00 81 0C 36 34 38 32 31 39 31 32 33 34 35 36');
    ok(card, '00 20 00 81');
    ok(card, SELECT_AID);
    ok(card, '00 20 00 81 06 31 32 33 34 35 36');
  });

  it('RSA keygen and UPDATE need the user PIN (6982)', () => {
    const card = initialized();
    ok(card, `80 52 00 00 20 ${SHARE} 00`);
    ok(card, '00 D7 2F 03 09 54 02 00 00 53 03 30 01 00', '6982');
    ok(card, '00 48 01 B2 00', '6982');
    expect(tx(card, '00 E4 02 00 02 CC 01').sw).toBe('6982');
  });
});

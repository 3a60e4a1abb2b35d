/** Raw-APDU helpers for the virtual card tests. */
import { expect } from 'vitest';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { fromHex, toHex } from '../src/util/bytes.js';

export interface Answer {
  data: Uint8Array;
  /** Status word as 4 upper-case hex digits. */
  sw: string;
}

/** Sends hex (spaces allowed), returns data and SW. */
export function tx(card: VirtualSmartCardHsm, hex: string): Answer {
  const r = card.process(fromHex(hex));
  return { data: r.subarray(0, r.length - 2), sw: toHex(r.subarray(r.length - 2)).toUpperCase() };
}

/** Sends and asserts the SW; returns the data. */
export function ok(card: VirtualSmartCardHsm, hex: string, sw = '9000'): Uint8Array {
  const r = tx(card, hex);
  expect(r.sw, `${hex.slice(0, 40)}…`).toBe(sw);
  return r.data;
}

export const SELECT_AID = '00 A4 04 00 0B E8 2B 06 01 04 01 81 C3 1F 02 01 00';
/** sc-hsm-tool --initialize --so-pin 3537363231383830 --pin 648219 --dkek-shares 1 (trace 06). */
export const INIT_TRACE_06 =
  '80 50 00 00 1C 80 02 00 01 81 06 36 34 38 32 31 39 82 08 35 37 36 32 31 38 38 30 91 01 03 92 01 01';
export const VERIFY_648219 = '00 20 00 81 06 36 34 38 32 31 39';
/** DKEK share of spec §7.6 #2; KCV 2927c2c6cb63086a. */
export const SHARE = '9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74';
export const SHARE_KCV = '2927c2c6cb63086a';

/** Extended Case 4 APDU with `data` hex and Le 00 00. */
export function ext(header: string, dataHex: string, le = '0000'): string {
  const d = fromHex(dataHex);
  const lc = d.length.toString(16).padStart(4, '0');
  return `${header} 00 ${lc} ${toHex(d)} ${le}`;
}

/** A card initialized like trace 06, DKEK share imported, user PIN verified. */
export function readyCard(): VirtualSmartCardHsm {
  const card = new VirtualSmartCardHsm({ deviceId: '1234567' });
  ok(card, SELECT_AID);
  ok(card, INIT_TRACE_06);
  ok(card, `80 52 00 00 20 ${SHARE} 00`);
  ok(card, VERIFY_648219);
  return card;
}

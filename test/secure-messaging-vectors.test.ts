/**
 * The virtual card's chip authentication and secure messaging (spec §3.19) and session PIN (§3.20)
 * checked against the spec's derivations computed here, independently of src/: ECDH, the SHA-1
 * KDF, AES-CBC and AES-CMAC are written in this file on node:crypto (the CMAC is checked against
 * RFC 4493's own examples first). Nothing of our secure messaging code is imported.
 */
import { createCipheriv, createDecipheriv, createECDH, createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeDeviceCertificateFile } from '../src/pkcs15/index.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { fromHex, toHex } from '../src/util/bytes.js';
import { ext, ok, SELECT_AID, tx } from './sim-helpers.js';

const cat = (...p: Uint8Array[]) => new Uint8Array(Buffer.concat(p));
const aesEcb = (k: Uint8Array, b: Uint8Array) =>
  new Uint8Array(createCipheriv('aes-128-ecb', k, null).setAutoPadding(false).update(b));
const cbcEnc = (k: Uint8Array, iv: Uint8Array, d: Uint8Array) =>
  new Uint8Array(createCipheriv('aes-128-cbc', k, iv).setAutoPadding(false).update(d));
const cbcDec = (k: Uint8Array, iv: Uint8Array, d: Uint8Array) =>
  new Uint8Array(createDecipheriv('aes-128-cbc', k, iv).setAutoPadding(false).update(d));

/** ISO 9797-1 method 2. */
function pad(d: Uint8Array): Uint8Array {
  const out = new Uint8Array((Math.floor(d.length / 16) + 1) * 16);
  out.set(d);
  out[d.length] = 0x80;
  return out;
}

/** RFC 4493 AES-CMAC, written out. */
function cmac(key: Uint8Array, msg: Uint8Array): Uint8Array {
  const shift = (b: Uint8Array) => {
    const o = new Uint8Array(16);
    for (let i = 0; i < 16; i++) o[i] = ((b[i]! << 1) | (i < 15 ? b[i + 1]! >> 7 : 0)) & 0xff;
    if (b[0]! & 0x80) o[15]! ^= 0x87;
    return o;
  };
  const k1 = shift(aesEcb(key, new Uint8Array(16)));
  const k2 = shift(k1);
  const n = Math.max(1, Math.ceil(msg.length / 16));
  const complete = msg.length > 0 && msg.length % 16 === 0;
  const last = new Uint8Array(16);
  const tail = msg.subarray((n - 1) * 16);
  last.set(tail);
  if (!complete) last[tail.length] = 0x80;
  const sub = complete ? k1 : k2;
  for (let i = 0; i < 16; i++) last[i]! ^= sub[i]!;
  let x = new Uint8Array(16);
  for (let b = 0; b < n - 1; b++) {
    const blk = msg.subarray(b * 16, b * 16 + 16);
    x = aesEcb(
      key,
      x.map((v, i) => v ^ blk[i]!),
    );
  }
  return aesEcb(
    key,
    x.map((v, i) => v ^ last[i]!),
  );
}

const OID_CA = fromHex('04007F00070202030202');

/** The host side of the spec's derivation, step by step, over raw APDUs. */
async function chipAuthentication(card: VirtualSmartCardHsm) {
  const ef = tx(card, ext('00 B1 2F 02', '54020000'));
  const { device } = decodeDeviceCertificateFile(ef.data);
  ok(card, '00 22 41 A4 0C 80 0A 04 00 7F 00 07 02 02 03 02 02');
  const eph = createECDH('brainpoolP256r1');
  const pk = new Uint8Array(eph.generateKeys());
  expect(pk.length).toBe(65);
  const ga = ok(card, `00 86 00 00 45 7C 43 80 41 ${toHex(pk)} 00`);
  expect(toHex(ga.subarray(0, 4))).toBe('7c148108');
  expect(ga[12]).toBe(0x82);
  expect(ga[13]).toBe(0x08);
  const nonce = ga.subarray(4, 12);
  const token = ga.subarray(14, 22);
  const z = new Uint8Array(eph.computeSecret(device.publicKey.point!));
  const kdf = (c: number) =>
    new Uint8Array(
      createHash('sha1')
        .update(cat(z, nonce, Uint8Array.of(0, 0, 0, c)))
        .digest(),
    ).subarray(0, 16);
  const kEnc = kdf(1);
  const kMac = kdf(2);
  // token = CMAC(K_mac, 7F49 4F 06 0A <OID> 86 41 <pk>)[0..8], bytes as the spec writes them
  const tokenInput = cat(fromHex('7F494F060A'), OID_CA, fromHex('8641'), pk);
  expect(toHex(token)).toBe(toHex(cmac(kMac, tokenInput).subarray(0, 8)));
  return { kEnc, kMac, plain2f02: ef.data };
}

function ssc(n: number): Uint8Array {
  const s = new Uint8Array(16);
  s[15] = n & 0xff;
  s[14] = (n >> 8) & 0xff;
  return s;
}

/** A protected command made by hand (spec §3.19): DO87/85, DO97, DO8E over SSC ‖ header ‖ DOs. */
function protect(
  k: { kEnc: Uint8Array; kMac: Uint8Array },
  n: number,
  header: string,
  data?: Uint8Array,
  le?: Uint8Array,
): string {
  const h = fromHex(header);
  const dos: Uint8Array[] = [];
  if (data) {
    const enc = cbcEnc(k.kEnc, aesEcb(k.kEnc, ssc(n)), pad(data));
    dos.push(
      (h[1]! & 1) === 1
        ? cat(Uint8Array.of(0x85, enc.length), enc)
        : cat(Uint8Array.of(0x87, enc.length + 1, 1), enc),
    );
  }
  if (le) dos.push(cat(Uint8Array.of(0x97, le.length), le));
  const body = cat(...dos);
  const mac = cmac(k.kMac, pad(cat(ssc(n), pad(h), body))).subarray(0, 8);
  const all = cat(body, fromHex('8E08'), mac);
  // an inner Le of two bytes asks for a long answer: the outer APDU is extended too
  return all.length > 255 || le?.length === 2
    ? `${header} 00 ${all.length.toString(16).padStart(4, '0')} ${toHex(all)} 0000`
    : `${header} ${all.length.toString(16).padStart(2, '0')} ${toHex(all)} 00`;
}

/** Checks a protected answer's MAC at SSC n and returns its decrypted data and inner SW. */
function open(k: { kEnc: Uint8Array; kMac: Uint8Array }, n: number, answer: Uint8Array) {
  const macAt = answer.length - 10;
  expect(toHex(answer.subarray(macAt, macAt + 2))).toBe('8e08');
  const dos = answer.subarray(0, macAt);
  expect(toHex(answer.subarray(macAt + 2))).toBe(toHex(cmac(k.kMac, pad(cat(ssc(n), dos))).subarray(0, 8)));
  let p = 0;
  let data = new Uint8Array(0);
  let sw = '';
  while (p < dos.length) {
    const tag = dos[p]!;
    let len = dos[p + 1]!;
    let off = p + 2;
    if (len === 0x81) {
      len = dos[p + 2]!;
      off = p + 3;
    } else if (len === 0x82) {
      len = (dos[p + 2]! << 8) | dos[p + 3]!;
      off = p + 4;
    }
    const v = dos.subarray(off, off + len);
    if (tag === 0x87) {
      expect(v[0]).toBe(1);
      const d = cbcDec(k.kEnc, aesEcb(k.kEnc, ssc(n)), v.subarray(1));
      data = d.subarray(0, d.lastIndexOf(0x80));
    }
    if (tag === 0x99) sw = toHex(v).toUpperCase();
    p = off + len;
  }
  return { data, sw };
}

/** A card initialized with options 0005 (RESET RETRY COUNTER, session PIN), PIN 648219. */
function card(): VirtualSmartCardHsm {
  const c = new VirtualSmartCardHsm({ deviceId: '7654321' });
  ok(c, SELECT_AID);
  ok(c, '80 50 00 00 19 80 02 00 05 81 06 36 34 38 32 31 39 82 08 35 37 36 32 31 38 38 30 91 01 03');
  ok(c, SELECT_AID);
  return c;
}

describe('secure messaging of the virtual card against the spec, computed independently', () => {
  it('the test CMAC is RFC 4493 (examples 1 and 2)', () => {
    const key = fromHex('2b7e151628aed2a6abf7158809cf4f3c');
    expect(toHex(cmac(key, new Uint8Array(0)))).toBe('bb1d6929e95937287fa37d129b756746');
    expect(toHex(cmac(key, fromHex('6bc1bee22e409f96e93d7e117393172a')))).toBe(
      '070a16b46b4d4144f79bdd9dd04a287c',
    );
  });

  it('token, keys, a protected VERIFY, an odd-INS READ BINARY and the session PIN', async () => {
    const c = card();
    const k = await chipAuthentication(c);
    // SSC 1: VERIFY with the PIN encrypted in 87
    const v = tx(c, protect(k, 1, '0C 20 00 81', new TextEncoder().encode('648219')));
    expect(v.sw).toBe('9000');
    expect(open(k, 2, v.data)).toEqual({ data: new Uint8Array(0), sw: '9000' });
    // SSC 3: READ BINARY 2F02 (odd INS: 85 without the padding indicator), Le 0000 in 97
    const r = tx(c, protect(k, 3, '0C B1 2F 02', fromHex('54020000'), fromHex('0000')));
    expect(r.sw).toBe('9000');
    const rb = open(k, 4, r.data);
    expect(rb.sw).toBe('6282');
    expect(toHex(rb.data)).toBe(toHex(k.plain2f02));
    // SSC 5: the session PIN, 8 bytes
    const s = tx(c, protect(k, 5, '8C 5A 01 81', undefined, fromHex('00')));
    const sp = open(k, 6, s.data);
    expect(sp.sw).toBe('9000');
    expect(sp.data.length).toBe(8);
    // SSC 7: a query of the PIN (case 1 inside: only 8E) says verified
    const q = tx(c, protect(k, 7, '0C 20 00 81'));
    expect(open(k, 8, q.data).sw).toBe('9000');
  });

  it('the session PIN verifies a later secure session (after SELECT), not a plain one', async () => {
    const c = card();
    let k = await chipAuthentication(c);
    open(k, 2, tx(c, protect(k, 1, '0C 20 00 81', new TextEncoder().encode('648219'))).data);
    const pin = open(k, 4, tx(c, protect(k, 3, '8C 5A 01 81', undefined, fromHex('00'))).data).data;
    // a new session: plain SELECT (ends SM), the PIN state is gone
    ok(c, SELECT_AID);
    expect(tx(c, '00 20 00 81').sw).toBe('63C3');
    k = await chipAuthentication(c);
    expect(open(k, 2, tx(c, protect(k, 1, '0C 20 00 81', pin)).data).sw).toBe('9000');
    expect(open(k, 4, tx(c, protect(k, 3, '0C 20 00 81')).data).sw).toBe('9000');
    // plain, the same bytes are just a wrong PIN (a try is spent)
    ok(c, SELECT_AID);
    expect(tx(c, `00 20 00 81 08 ${toHex(pin)}`).sw).toBe('63C2');
    // a reset forgets it: in SM it is then a wrong PIN too
    c.reset();
    ok(c, SELECT_AID);
    k = await chipAuthentication(c);
    expect(open(k, 2, tx(c, protect(k, 1, '0C 20 00 81', pin)).data).sw).toBe('63C1');
  });

  it('session PIN refused outside SM, before login, and without option 0004', async () => {
    const c = card();
    expect(tx(c, '80 5A 01 81 00').sw).toBe('6982');
    const k = await chipAuthentication(c);
    expect(open(k, 2, tx(c, protect(k, 1, '8C 5A 01 81', undefined, fromHex('00'))).data).sw).toBe('6982');
    const plainCard = new VirtualSmartCardHsm();
    ok(plainCard, SELECT_AID);
    ok(
      plainCard,
      '80 50 00 00 19 80 02 00 01 81 06 36 34 38 32 31 39 82 08 35 37 36 32 31 38 38 30 91 01 03',
    );
    ok(plainCard, SELECT_AID);
    const k2 = await chipAuthentication(plainCard);
    open(k2, 2, tx(plainCard, protect(k2, 1, '0C 20 00 81', new TextEncoder().encode('648219'))).data);
    expect(open(k2, 4, tx(plainCard, protect(k2, 3, '8C 5A 01 81', undefined, fromHex('00'))).data).sw).toBe(
      '6A81',
    );
  });

  it('a wrong SSC, a wrong MAC or a plain command ends SM and the PIN state', async () => {
    const c = card();
    let k = await chipAuthentication(c);
    open(k, 2, tx(c, protect(k, 1, '0C 20 00 81', new TextEncoder().encode('648219'))).data);
    // SSC 3 expected; a command made for SSC 9
    expect(tx(c, protect(k, 9, '0C 20 00 81')).sw).toBe('6988');
    // SM is over: the right SSC does not help any more, and the PIN is no longer verified
    expect(tx(c, protect(k, 3, '0C 20 00 81')).sw).toBe('6988');
    expect(tx(c, '00 20 00 81').sw).toBe('63C3');

    k = await chipAuthentication(c);
    const bad = fromHex(protect(k, 1, '0C 20 00 81'));
    bad[bad.length - 2]! ^= 0x01; // the last MAC byte
    expect(tx(c, toHex(bad)).sw).toBe('6988');
    expect(tx(c, protect(k, 1, '0C 20 00 81')).sw).toBe('6988');

    k = await chipAuthentication(c);
    open(k, 2, tx(c, protect(k, 1, '0C 20 00 81', new TextEncoder().encode('648219'))).data);
    expect(tx(c, '00 20 00 81').sw).toBe('63C3');
    expect(tx(c, protect(k, 3, '0C 20 00 81')).sw).toBe('6988');
  });

  it('GENERAL AUTHENTICATE needs MSE SET AT first and a point on the curve', () => {
    const c = card();
    const pk = toHex(new Uint8Array(createECDH('brainpoolP256r1').generateKeys()));
    expect(tx(c, `00 86 00 00 45 7C 43 80 41 ${pk} 00`).sw).toBe('6985');
    ok(c, '00 22 41 A4 0C 80 0A 04 00 7F 00 07 02 02 03 02 02');
    const offCurve = `04${'11'.repeat(64)}`;
    expect(tx(c, `00 86 00 00 45 7C 43 80 41 ${offCurve} 00`).sw).toBe('6A80');
    expect(tx(c, '00 22 41 A4 0C 80 0A 04 00 7F 00 07 02 02 03 02 01').sw).toBe('6A80');
  });

  it('malformed protected commands: 69 88 and the end of SM (no MAC, an unknown DO, no SM session)', async () => {
    const c = card();
    // no SM session at all
    expect(tx(c, '0C 20 00 81 0A 8E 08 00 00 00 00 00 00 00 00 00').sw).toBe('6988');
    let k = await chipAuthentication(c);
    // only a Le object, no MAC
    expect(tx(c, '0C 84 00 00 03 97 01 08 00').sw).toBe('6988');
    expect(tx(c, protect(k, 1, '0C 20 00 81')).sw).toBe('6988');
    k = await chipAuthentication(c);
    // an object the card does not know before a MAC made for it
    const body = fromHex('810100');
    const mac = cmac(k.kMac, pad(cat(ssc(1), pad(fromHex('0C200081')), body))).subarray(0, 8);
    expect(tx(c, `0C 20 00 81 0D ${toHex(body)} 8E 08 ${toHex(mac)} 00`).sw).toBe('6988');
    // a GET CHALLENGE in SM answers 87 with Le bytes of random inside
    k = await chipAuthentication(c);
    const r = open(k, 2, tx(c, protect(k, 1, '0C 84 00 00', undefined, fromHex('10'))).data);
    expect(r.sw).toBe('9000');
    expect(r.data.length).toBe(16);
  });
});

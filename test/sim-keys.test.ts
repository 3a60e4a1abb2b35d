import {
  constants,
  createHash,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  publicEncrypt,
  verify,
} from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  cvcPublicKeyToSpki,
  decodeCvRequest,
  decodeDeviceCertificates,
  verifyCvcSignature,
} from '../src/pkcs15/index.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { concat, fromHex, toHex } from '../src/util/bytes.js';
import { curveByName, curveParams } from '../src/util/curves.js';
import { tlv } from '../src/util/tlv.js';
import { ext, ok, readyCard, SELECT_AID, tx, VERIFY_648219 } from './sim-helpers.js';

/** GAKP RSA-2048 exactly as OpenSC sent it (trace 12). */
const GAKP_RSA_TRACE =
  '00 46 01 00 00 00 3A 5F 29 01 00 42 09 55 54 43 41 30 30 30 30 31 7F 49 15 06 0A 04 00 7F 00 07 02 02 02 01 02 82 03 01 00 01 02 02 08 00 5F 20 10 45 53 50 49 43 4F 48 53 4D 54 52 30 30 30 30 31 00 00';
/** GAKP prime256v1 exactly as OpenSC sent it (trace 13). */
const GAKP_EC_TRACE =
  '00 46 02 00 00 01 00 5F 29 01 00 42 09 55 54 43 41 30 30 30 30 31 7F 49 81 DA 06 0A 04 00 7F 00 07 02 02 02 02 03 81 20 FF FF FF FF 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 FF FF FF FF FF FF FF FF FF FF FF FF 82 20 FF FF FF FF 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 FF FF FF FF FF FF FF FF FF FF FF FC 83 20 5A C6 35 D8 AA 3A 93 E7 B3 EB BD 55 76 98 86 BC 65 1D 06 B0 CC 53 B0 F6 3B CE 3C 3E 27 D2 60 4B 84 41 04 6B 17 D1 F2 E1 2C 42 47 F8 BC E6 E5 63 A4 40 F2 77 03 7D 81 2D EB 33 A0 F4 A1 39 45 D8 98 C2 96 4F E3 42 E2 FE 1A 7F 9B 8E E7 EB 4A 7C 0F 9E 16 2B CE 33 57 6B 31 5E CE CB B6 40 68 37 BF 51 F5 85 20 FF FF FF FF 00 00 00 00 FF FF FF FF FF FF FF FF BC E6 FA AD A7 17 9E 84 F3 B9 CA C2 FC 63 25 51 87 01 01 5F 20 10 45 53 50 49 43 4F 48 53 4D 54 52 30 30 30 30 31 00 00';

function devicePublicKey(card: VirtualSmartCardHsm) {
  ok(card, '00 A4 00 00 02 2F 02 00');
  const ef = ok(card, ext('00 B1 00 00', '54020000'), '6282');
  return decodeDeviceCertificates(ef).device.publicKey;
}

/** Checks a GAKP answer like a host would; returns the public key (SPKI, node KeyObject). */
function checkRequest(card: VirtualSmartCardHsm, resp: Uint8Array) {
  const req = decodeCvRequest(resp);
  expect(req.outerCar).toBe(card.deviceChr);
  expect(req.certificate.chr).toBe('ESPICOHSMTR00001');
  expect(req.certificate.car).toBe('UTCA00001');
  expect(verifyCvcSignature(req.certificate, req.certificate.publicKey)).toBe(true);
  const dev = devicePublicKey(card);
  const outerData = concat(req.certificate.raw, tlv(0x42, new TextEncoder().encode(card.deviceChr)));
  expect(
    verifyCvcSignature({ ...req.certificate, body: outerData, signature: req.outerSignature! }, dev),
  ).toBe(true);
  return createPublicKey({
    key: Buffer.from(cvcPublicKeyToSpki(req.certificate.publicKey)),
    format: 'der',
    type: 'spki',
  });
}

describe('virtual card: key generation (spec §3.11)', () => {
  it('RSA-2048 from trace 12: authenticated request, stored in CE01, listed, key usable', () => {
    const card = readyCard();
    const resp = ok(card, GAKP_RSA_TRACE);
    expect(resp[0]).toBe(0x67);
    const pub = checkRequest(card, resp);
    expect(pub.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(toHex(ok(card, '80 58 00 00 00 00 00'))).toBe('cc00cc01ce01');
    ok(card, '00 A4 00 00 02 CE 01 00');
    expect(toHex(ok(card, ext('00 B1 00 00', '54020000'), '6282'))).toBe(toHex(resp));
    ok(card, '00 B1 CC 01 04 54 02 00 00 00', '6982');
    ok(card, GAKP_RSA_TRACE, '6A89');

    // SIGN 20 (trace 16 shape): host-padded PKCS#1 block, pure modular exponentiation
    const msg = new TextEncoder().encode('test data for signatures\n');
    const di = concat(
      fromHex('3031300d060960864801650304020105000420'),
      createHash('sha256').update(msg).digest(),
    );
    const block = concat(
      Uint8Array.of(0, 1),
      new Uint8Array(256 - 3 - di.length).fill(0xff),
      Uint8Array.of(0),
      di,
    );
    const sig20 = ok(card, ext('80 68 01 20', toHex(block), '0200'));
    expect(verify('sha256', msg, { key: pub, padding: constants.RSA_PKCS1_PADDING }, sig20)).toBe(true);
    // 30 DigestInfo, 33 message
    const sig30 = ok(card, ext('80 68 01 30', toHex(di), '0200'));
    expect(toHex(sig30)).toBe(toHex(sig20));
    const sig33 = ok(card, ext('80 68 01 33', toHex(msg), '0200'));
    expect(toHex(sig33)).toBe(toHex(sig20));
    // 40 with a DigestInfo (OpenSC 0.23) and a bare hash; 43 message — PSS, salt = hash length
    const pss = { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
    expect(verify('sha256', msg, pss, ok(card, ext('80 68 01 40', toHex(di), '0200')))).toBe(true);
    expect(verify('sha256', msg, pss, ok(card, ext('80 68 01 40', toHex(di.subarray(19)), '0200')))).toBe(
      true,
    );
    expect(verify('sha256', msg, pss, ok(card, ext('80 68 01 43', toHex(msg), '0200')))).toBe(true);
    expect(
      verify('sha512', msg, { ...pss, saltLength: 64 }, ok(card, ext('80 68 01 45', toHex(msg), '0200'))),
    ).toBe(true);
    ok(card, ext('80 68 01 70', toHex(di.subarray(19)), '0200'), '6A81');
    ok(card, ext('80 68 01 20', '0001ff', '0200'), '6A80');

    // DECIPHER 21 raw, 22 PKCS#1, 23 OAEP-SHA256
    const secret = new TextEncoder().encode('secret');
    const c1 = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, secret);
    const raw = ok(card, ext('80 62 01 21', toHex(c1), '0200'));
    expect(raw).toHaveLength(256);
    expect(toHex(raw.subarray(0, 2))).toBe('0002');
    expect(toHex(raw.subarray(250))).toBe(toHex(secret));
    expect(toHex(ok(card, ext('80 62 01 22', toHex(c1), '0200')))).toBe(toHex(secret));
    const c3 = publicEncrypt(
      { key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
      secret,
    );
    expect(toHex(ok(card, ext('80 62 01 23', toHex(c3), '0200')))).toBe(toHex(secret));
    ok(card, ext('80 62 01 22', toHex(c3), '0200'), '6A80');
    ok(card, ext('80 62 01 80', toHex(c3), '0200'), '6A81');
    ok(card, ext('80 62 09 21', toHex(c1), '0200'), '6A88');
    ok(card, ext('80 68 00 70', '00'.repeat(32), '0200'), '6982');
  });

  it('EC prime256v1 from trace 13: full-length domain parameters, ECDSA DER, ECDH', () => {
    const card = readyCard();
    const resp = ok(card, GAKP_EC_TRACE);
    const pub = checkRequest(card, resp);
    const pk = decodeCvRequest(resp).certificate.publicKey;
    expect(pk.a).toHaveLength(32);
    expect(pk.point?.[0]).toBe(0x04);
    expect(toHex(pk.cofactor!)).toBe('01');
    const msg = new TextEncoder().encode('test data for signatures\n');
    // trace 19: ECDSA-SHA256 computed by the card; 70 with the hash from the host
    const sig73 = ok(card, ext('80 68 02 73', toHex(msg), '0200'));
    expect(sig73[0]).toBe(0x30);
    expect(verify('sha256', msg, pub, sig73)).toBe(true);
    const hash = createHash('sha256').update(msg).digest();
    const sig70 = ok(card, ext('80 68 02 70', toHex(hash), '0200'));
    expect(sig70[0]).toBe(0x30);
    expect(verify('sha256', msg, pub, sig70)).toBe(true);
    expect(verify('sha384', msg, pub, ok(card, ext('80 68 02 74', toHex(msg), '0200')))).toBe(true);
    ok(card, ext('80 68 02 20', toHex(hash), '0200'), '6A81');
    // ECDH: 04 ‖ X ‖ Y; X equals node's shared secret
    const peer = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const peerPoint = new Uint8Array(peer.publicKey.export({ type: 'spki', format: 'der' })).subarray(-65);
    const shared = ok(card, ext('80 62 02 80', toHex(peerPoint), '0200'));
    expect(shared).toHaveLength(65);
    expect(shared[0]).toBe(0x04);
    expect(toHex(shared.subarray(1, 33))).toBe(
      toHex(diffieHellman({ privateKey: peer.privateKey, publicKey: pub })),
    );
    ok(card, ext('80 62 02 80', `04${'11'.repeat(64)}`, '0200'), '6A80');
  });

  it('generates on every supported curve (brainpool, secp256k1, P-521) and RSA 1024/1536', () => {
    const card = readyCard();
    const curves = [
      ['brainpoolP256r1', 0x10],
      ['secp256k1', 0x11],
      ['secp521r1', 0x12],
      ['brainpoolP512r1', 0x13],
      ['prime192v1', 0x14],
    ] as const;
    for (const [name, id] of curves) {
      const c = curveParams(curveByName(name));
      const pkt = tlv(
        0x7f49,
        tlv(0x06, fromHex('04007F00070202020203')),
        tlv(0x81, c.p),
        tlv(0x82, c.a),
        tlv(0x83, c.b),
        tlv(0x84, c.g),
        tlv(0x85, c.n),
        tlv(0x87, c.h),
      );
      const body = concat(
        fromHex('5F290100'),
        tlv(0x42, fromHex('555443413030303031')),
        pkt,
        tlv(0x5f20, fromHex('55544b455930303030303031')),
      );
      const resp = ok(card, ext(`00 46 ${id.toString(16)} 00`, toHex(body)));
      const req = decodeCvRequest(resp);
      expect(toHex(req.certificate.publicKey.p!)).toBe(toHex(c.p));
      expect(req.certificate.publicKey.a).toHaveLength(c.size);
      expect(verifyCvcSignature(req.certificate, req.certificate.publicKey)).toBe(true);
      const hash = createHash('sha256').update('x').digest();
      const pub = createPublicKey({
        key: Buffer.from(cvcPublicKeyToSpki(req.certificate.publicKey)),
        format: 'der',
        type: 'spki',
      });
      expect(
        verify(
          'sha256',
          Buffer.from('x'),
          pub,
          ok(card, ext(`80 68 ${id.toString(16)} 70`, toHex(hash), '0200')),
        ),
      ).toBe(true);
    }
    for (const [bits, id] of [
      [1024, '20'],
      [1536, '21'],
    ] as const) {
      const size = bits.toString(16).padStart(4, '0');
      const cmd = GAKP_RSA_TRACE.replace('00 46 01', `00 46 ${id}`).replace(
        '02 02 08 00',
        `02 02 ${size.slice(0, 2)} ${size.slice(2)}`,
      );
      const req = decodeCvRequest(ok(card, cmd));
      expect(req.certificate.publicKey.modulus!.length * 8).toBe(bits);
    }
    ok(card, GAKP_RSA_TRACE.replace('00 46 01', '00 46 00'), '6A86');
    ok(card, GAKP_RSA_TRACE.replace('02 02 08 00', '02 02 08 01'), '6A80');
  });

  it('algorithm list (tag 91) and key-use counter (tag 90) are enforced', () => {
    const card = readyCard();
    const body = fromHex(GAKP_EC_TRACE.replace(/\s/g, '').slice(14, -4));
    const withMeta = concat(
      body,
      fromHex('90 04 00 00 00 02'.replace(/\s/g, '')),
      fromHex('9101 73'.replace(/\s/g, '')),
    );
    ok(card, ext('00 46 03 00', toHex(withMeta)));
    const hash = createHash('sha256').update('x').digest();
    ok(card, ext('80 68 03 70', toHex(hash), '0200'), '6A81');
    ok(card, ext('80 68 03 73', '78', '0200'));
    ok(card, ext('80 68 03 73', '78', '0200'));
    ok(card, ext('80 68 03 73', '78', '0200'), '6984');
    ok(card, '80 72 03 92 00 00 00', '6A81');
  });
});

describe('virtual card: AES keys (spec §3.12, §3.15)', () => {
  it('GENERATE SYMMETRIC KEY and CIPHER 10/11/18/99', () => {
    const card = readyCard();
    ok(card, '00 48 05 B2 06 91 04 10 11 18 99');
    ok(card, '00 48 05 B0 00', '6A89');
    ok(card, '00 48 06 B5 00', '6A86');
    const pt = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';
    const ct = ok(card, `80 78 05 10 20 ${pt} 00`);
    expect(ct).toHaveLength(32);
    expect(toHex(ok(card, `80 78 05 11 20 ${toHex(ct)} 00`))).toBe(pt);
    ok(card, '80 78 05 10 03 01 02 03 00', '6A80');
    const mac = ok(card, `80 78 05 18 20 ${pt} 00`);
    expect(mac).toHaveLength(16);
    expect(ok(card, `80 78 05 18 20 ${pt} 00`)).toEqual(mac);
    expect(ok(card, '80 78 05 99 04 01 02 03 04 00')).toHaveLength(32);
    ok(card, '80 72 05 92 00 00 00', '6A81');
    ok(card, `80 68 05 70 20 ${pt} 00`, '6A81');
  });
});

describe('virtual card: WRAP / UNWRAP (spec §3.16, §8; traces 22, 28)', () => {
  it('wraps and unwraps RSA, EC and AES keys; the unwrapped key signs like the original', () => {
    const card = readyCard();
    const rsaPub = checkRequest(card, ok(card, GAKP_RSA_TRACE));
    const ecResp = ok(card, GAKP_EC_TRACE);
    ok(card, '00 48 05 B1 00');
    // trace 22
    const blobRsa = ok(card, '80 72 01 92 00 00 00');
    expect(toHex(blobRsa.subarray(0, 8))).toBe('2927c2c6cb63086a');
    expect(blobRsa[8]).toBe(0x06);
    const blobEc = ok(card, '80 72 02 92 00 00 00');
    expect(blobEc[8]).toBe(0x0c);
    const blobAes = ok(card, '80 72 05 92 00 00 00');
    expect(blobAes[8]).toBe(0x0f);
    ok(card, '80 72 09 92 00 00 00', '6A88');
    ok(card, '80 72 00 92 00 00 00', '6982');

    // trace 28: delete (6A82 when absent), then UNWRAP Case 3 extended
    ok(card, '00 E4 02 00 02 CC 01');
    ok(card, '00 E4 02 00 02 CC 01', '6A82');
    ok(card, `80 74 01 93 00 ${blobRsa.length.toString(16).padStart(4, '0')} ${toHex(blobRsa)}`);
    ok(card, `80 74 01 93 00 ${blobRsa.length.toString(16).padStart(4, '0')} ${toHex(blobRsa)}`, '6A89');
    const msg = new TextEncoder().encode('after unwrap');
    expect(
      verify(
        'sha256',
        msg,
        { key: rsaPub, padding: constants.RSA_PKCS1_PADDING },
        ok(card, ext('80 68 01 33', toHex(msg), '0200')),
      ),
    ).toBe(true);

    // OpenSC HEAD form: blob in EF 2F10, UNWRAP Case 1
    ok(card, '00 E4 02 00 02 CC 02');
    const len = blobEc.length;
    ok(
      card,
      `00 D7 2F 10 00 ${(len + 8).toString(16).padStart(4, '0')} 54 02 00 00 53 82 ${len.toString(16).padStart(4, '0')} ${toHex(blobEc)}`,
    );
    ok(card, '80 74 02 93');
    const ecPub = createPublicKey({
      key: Buffer.from(cvcPublicKeyToSpki(decodeCvRequest(ecResp).certificate.publicKey)),
      format: 'der',
      type: 'spki',
    });
    expect(verify('sha256', msg, ecPub, ok(card, ext('80 68 02 73', toHex(msg), '0200')))).toBe(true);

    // tampered blob (MAC) and foreign KCV → 6A80
    const bad = blobAes.slice();
    bad[bad.length - 1]! ^= 1;
    ok(card, `80 74 07 93 00 ${bad.length.toString(16).padStart(4, '0')} ${toHex(bad)}`, '6A80');
    const foreign = blobAes.slice();
    foreign[0]! ^= 1;
    ok(card, `80 74 07 93 00 ${foreign.length.toString(16).padStart(4, '0')} ${toHex(foreign)}`, '6A80');
    ok(card, `80 74 07 93 00 ${blobAes.length.toString(16).padStart(4, '0')} ${toHex(blobAes)}`);
    ok(card, '80 78 07 18 10 00112233445566778899aabbccddeeff 00');
  });

  it('WRAP/UNWRAP without a DKEK answers 6D00, with shares pending 6985', () => {
    const card = new VirtualSmartCardHsm();
    ok(card, SELECT_AID);
    ok(card, '80 50 00 00 19 80 02 00 01 81 06 36 34 38 32 31 39 82 08 35 37 36 32 31 38 38 30 91 01 03');
    ok(card, VERIFY_648219);
    ok(card, '00 48 01 B2 00');
    ok(card, '80 72 01 92 00 00 00', '6D00');
    ok(card, '80 74 02 93 00 00 10 00112233445566778899aabbccddeeff', '6D00');
    ok(
      card,
      '80 50 00 00 1C 80 02 00 01 81 06 36 34 38 32 31 39 82 08 35 37 36 32 31 38 38 30 91 01 03 92 01 01',
    );
    ok(card, VERIFY_648219);
    ok(card, '80 74 02 93 00 00 10 00112233445566778899aabbccddeeff', '6985');
    expect(tx(card, '80 72 01 92 00 00 00').sw).toBe('6A88');
  });
});

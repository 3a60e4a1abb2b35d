import { constants, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isScHsmError } from '../src/errors.js';
import {
  type CvcPublicKey,
  cvcPublicKeyToSpki,
  decodeCvc,
  decodeCvRequest,
  decodeDeviceCertificateFile,
  decodeDeviceCertificates,
  ecdsaDerToPlain,
  ecdsaPlainToDer,
  encodeAuthenticatedRequest,
  encodeCvc,
  encodeCvcBody,
  encodeCvcPublicKey,
  spkiToCvcPublicKey,
  verifyCvcSignature,
} from '../src/pkcs15/index.js';
import { OID } from '../src/protocol/constants.js';
import { ascii, bytesEqual, concat, fromHex, toHex } from '../src/util/bytes.js';
import { CURVES, curveByName, curveParams } from '../src/util/curves.js';
import { readAll, readTlv } from '../src/util/tlv.js';

const TRACES = fileURLToPath(new URL('../fixtures/opensc-traces', import.meta.url));

interface Exchange {
  apdu: Uint8Array;
  data: Uint8Array;
  sw: number;
}

function exchanges(trace: string): Exchange[] {
  const lines = readFileSync(`${TRACES}/${trace}`, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('APDU: ') || l.startsWith('SW: '));
  const out: Exchange[] = [];
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const r = fromHex(lines[i + 1]!.slice(4));
    out.push({
      apdu: fromHex(lines[i]!.slice(6)),
      data: r.subarray(0, r.length - 2),
      sw: (r.at(-2)! << 8) | r.at(-1)!,
    });
  }
  return out;
}

/** The answer to the first command whose header starts with `header`. */
function answerTo(trace: string, header: string): Uint8Array {
  const want = fromHex(header);
  const x = exchanges(trace).find((e) => bytesEqual(e.apdu.subarray(0, want.length), want));
  if (!x) throw new Error(`no ${header} in ${trace}`);
  return x.data;
}

/** Contents of a file as read by SELECT fid + READ BINARY (`00 B1`) answers, concatenated. */
function readFileFromTrace(trace: string, fid: string): Uint8Array {
  const xs = exchanges(trace);
  const sel = fromHex(`00a4000002${fid}`);
  const i = xs.findIndex((e) => bytesEqual(e.apdu.subarray(0, sel.length), sel));
  if (i < 0) throw new Error(`no SELECT ${fid} in ${trace}`);
  const parts: Uint8Array[] = [];
  for (let j = i + 1; j < xs.length && xs[j]!.apdu[1] === 0xb1; j++) parts.push(xs[j]!.data);
  return concat(...parts);
}

function expectError(f: () => unknown, code: string): void {
  try {
    f();
  } catch (e) {
    expect(isScHsmError(e)).toBe(true);
    expect((e as { code: string }).code).toBe(code);
    return;
  }
  throw new Error('expected an ScHsmError');
}

function flipBit(b: Uint8Array, i = 5): Uint8Array {
  const c = b.slice();
  c[i]! ^= 0x01;
  return c;
}

const SRCA = fromHex(`
7F218201B47F4E82016C5F290100420E44455352434143433130303030317F4982011D060A04007F0007020202020381
20A9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E537782207D5A0975FC2C3057EEF67530
417AFFE7FB8055C126DC5C6CE94A4B44F330B5D9832026DC5C6CE94A4B44F330B5D9BBD77CBF958416295CF7E1CE6B
CCDC18FF8C07B68441048BD2AEB9CB7E57CB2C4B482FFC81B7AFB9DE27E1E3BD23C23A4453BD9ACE3262547EF835C3
DAC4FD97F8461A14611DC9C27745132DED8E545C1D54C72F0469978520A9FB57DBA1EEA9BC3E660A909D838D718C39
7AA3B561A6F7901E0E82974856A78641046D025A8026CDBA245F10DF1B72E9880FFF746DAB40A43A3D5C6BEBF27707
C30F6DEA72430EE3287B0665C1EAA6EAA4FA26C46303001983F82BD1AA31E03DA0628701015F200E44455352434143
433130303030317F4C10060B2B0601040181C31F0301015301C05F25060102010100095F24060302010100085F3740
9DBB382B1711D2BAACB0C623D40C6267D0B52BA455C01F56333DC9554810B9B2878DAF9EC3ADA19C7B065D780D6C9C
3C2ECEDFD78DEB18AF40778ADF89E861CA`);

describe('production SRCA root (spec §5.3)', () => {
  const c = decodeCvc(SRCA);

  it('decodes every field', () => {
    expect(c.raw).toEqual(SRCA);
    expect(c.cpi).toBe(0);
    expect(c.car).toBe('DESRCACC100001');
    expect(c.chr).toBe('DESRCACC100001');
    expect(c.effectiveDate).toBe('2012-11-09');
    expect(c.expirationDate).toBe('2032-11-08');
    expect(c.chat).toEqual({ oid: OID.CHAT_SC_HSM, role: fromHex('c0') });
    expect(c.publicKey.oid).toEqual(OID.TA_ECDSA_SHA256);
    expect(c.publicKey.cofactor).toEqual(fromHex('01'));
    expect(c.signature.length).toBe(64);
    expect(toHex(c.body.subarray(0, 4))).toBe('7f4e8201');
    expect(c.body.length).toBe(5 + 0x16c);
  });

  it('maps to a brainpoolP256r1 SPKI that node:crypto loads', () => {
    const spki = cvcPublicKeyToSpki(c.publicKey);
    const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('brainpoolP256r1');
  });

  it('verifies its self-signature (ECDSA-SHA-256, plain r‖s) and rejects a flipped bit', () => {
    expect(verifyCvcSignature(c, c.publicKey)).toBe(true);
    expect(verifyCvcSignature({ ...c, signature: flipBit(c.signature) }, c.publicKey)).toBe(false);
    expect(verifyCvcSignature({ ...c, body: flipBit(c.body, 40) }, c.publicKey)).toBe(false);
  });

  it('re-encodes byte-exactly', () => {
    const body = encodeCvcBody({
      car: c.car!,
      publicKey: c.publicKey,
      chr: c.chr,
      chat: c.chat!,
      effectiveDate: c.effectiveDate!,
      expirationDate: c.expirationDate!,
    });
    expect(toHex(body)).toBe(toHex(c.body));
    expect(toHex(encodeCvc(body, c.signature))).toBe(toHex(SRCA));
  });

  it('verifies a device key that inherits domain parameters from its issuer', () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'brainpoolP256r1' });
    const full = spkiToCvcPublicKey(spkiOf(pair.publicKey), OID.TA_ECDSA_SHA256);
    const bare: CvcPublicKey = { oid: full.oid, point: full.point! };
    const body = encodeCvcBody({ car: 'DEDICA0000001', publicKey: bare, chr: 'DENK0200000001' });
    const cert = decodeCvc(encodeCvc(body, signPlain(pair.privateKey, 'sha256', body, 32)));
    expect(cert.publicKey.p).toBeUndefined();
    expectError(() => cvcPublicKeyToSpki(cert.publicKey), 'MALFORMED_DATA');
    expect(bytesEqual(cvcPublicKeyToSpki(cert.publicKey, c.publicKey), spkiOf(pair.publicKey))).toBe(true);
    expect(verifyCvcSignature(cert, cert.publicKey, c.publicKey)).toBe(true);
    // the wrong domain (P-256 has another prime) cannot be used
    const p256 = spkiToCvcPublicKey(
      spkiOf(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey),
      OID.TA_ECDSA_SHA256,
    );
    expect(() => verifyCvcSignature(cert, cert.publicKey, p256)).toThrow();
  });
});

function spkiOf(k: KeyObject): Uint8Array {
  return new Uint8Array(k.export({ format: 'der', type: 'spki' }));
}

function signPlain(key: KeyObject, hash: string, data: Uint8Array, size: number): Uint8Array {
  const der = new Uint8Array(sign(hash, data, key));
  return ecdsaDerToPlain(der, size);
}

describe('GENERATE ASYMMETRIC KEY PAIR answers (traces 12, 13; spec §3.11)', () => {
  it('decodes the RSA-2048 request, converts its key and verifies the inner signature', () => {
    const resp = answerTo('12-keygen-rsa.apdu.txt', '00460100');
    expect(resp[0]).toBe(0x67);
    const r = decodeCvRequest(resp);
    expect(r.raw).toEqual(resp);
    expect(r.outerCar).toBe('ESPICOHSMTR00001');
    expect(r.outerSignature?.length).toBe(64);
    const c = r.certificate;
    expect(c.car).toBe('UTCA00001');
    expect(c.chr).toBe('ESPICOHSMTR00001');
    expect(c.publicKey.oid).toEqual(OID.TA_RSA_V15_SHA256);
    expect(c.publicKey.modulus?.length).toBe(256);
    expect(c.publicKey.exponent).toEqual(fromHex('010001'));
    const key = createPublicKey({
      key: Buffer.from(cvcPublicKeyToSpki(c.publicKey)),
      format: 'der',
      type: 'spki',
    });
    expect(key.asymmetricKeyType).toBe('rsa');
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(verifyCvcSignature(c, c.publicKey)).toBe(true);
    expect(verifyCvcSignature({ ...c, signature: flipBit(c.signature, 100) }, c.publicKey)).toBe(false);
    // what OpenSC wrote to CE01 is the same answer
    expect(toHex(readFileFromTrace('13-keygen-ec.apdu.txt', 'ce01'))).toBe(toHex(resp));
    // the SPKI converts back to the same CVC key fields
    const back = spkiToCvcPublicKey(cvcPublicKeyToSpki(c.publicKey), OID.TA_RSA_V15_SHA256);
    expect(back).toEqual({
      oid: c.publicKey.oid,
      modulus: c.publicKey.modulus,
      exponent: c.publicKey.exponent,
    });
  });

  it('decodes the prime256v1 request, converts its key and verifies the inner signature', () => {
    const resp = answerTo('13-keygen-ec.apdu.txt', '00460200');
    const r = decodeCvRequest(resp);
    const c = r.certificate;
    expect(r.outerCar).toBe('ESPICOHSMTR00001');
    expect(c.publicKey.oid).toEqual(OID.TA_ECDSA_SHA256);
    const params = curveParams('prime256v1');
    expect(c.publicKey.p).toEqual(params.p);
    expect(c.publicKey.a).toEqual(params.a);
    expect(c.publicKey.point?.length).toBe(65);
    const key = createPublicKey({
      key: Buffer.from(cvcPublicKeyToSpki(c.publicKey)),
      format: 'der',
      type: 'spki',
    });
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(verifyCvcSignature(c, c.publicKey)).toBe(true);
    expect(verifyCvcSignature({ ...c, signature: flipBit(c.signature) }, c.publicKey)).toBe(false);
    // the request OpenSC sent carries the same domain parameters, without a point
    const apdu = exchanges('13-keygen-ec.apdu.txt').find((e) => e.apdu[1] === 0x46)!.apdu;
    const { point: _point, ...domain } = c.publicKey;
    const sent = encodeCvcBody({ car: 'UTCA00001', publicKey: domain, chr: 'ESPICOHSMTR00001' });
    expect(toHex(readTlv(sent).value)).toBe(toHex(apdu.subarray(7, apdu.length - 2)));
    // re-encoding the inner request and the authenticated request is byte-exact
    const pkTlv = readAll(readTlv(c.body).value).find((t) => t.tag === 0x7f49)!;
    expect(toHex(encodeCvcPublicKey(c.publicKey))).toBe(
      toHex(readTlv(c.body).value.subarray(pkTlv.start, pkTlv.end)),
    );
    expect(
      toHex(encodeAuthenticatedRequest(encodeCvc(c.body, c.signature), r.outerCar!, r.outerSignature!)),
    ).toBe(toHex(resp));
  });

  it("verifies pico's outer signature over 7F21 ‖ 42 with the device key of EF 2F02", () => {
    const resp = answerTo('13-keygen-ec.apdu.txt', '00460200');
    const r = decodeCvRequest(resp);
    const device = decodeCvc(readFileFromTrace('13-keygen-ec.apdu.txt', '2f02'));
    expect(device.chr).toBe(r.outerCar);
    const key = createPublicKey({
      key: Buffer.from(cvcPublicKeyToSpki(device.publicKey)),
      format: 'der',
      type: 'spki',
    });
    const [inner, car] = readAll(readTlv(resp).value);
    const signed = readTlv(resp).value.subarray(inner!.start, car!.end);
    expect(verify('sha256', signed, { key, dsaEncoding: 'ieee-p1363' }, r.outerSignature!)).toBe(true);
    expect(verify('sha256', r.certificate.raw, { key, dsaEncoding: 'ieee-p1363' }, r.outerSignature!)).toBe(
      false,
    );
  });

  it('accepts a bare 7F21 request', () => {
    const resp = answerTo('13-keygen-ec.apdu.txt', '00460200');
    const inner = decodeCvRequest(resp).certificate.raw;
    const r = decodeCvRequest(inner);
    expect(r.outerCar).toBeUndefined();
    expect(r.certificate.raw).toEqual(inner);
  });

  it('rebuilds the RSA GAKP command body OpenSC sent (7F49 with 02 key size)', () => {
    const apdu = exchanges('12-keygen-rsa.apdu.txt').find((e) => e.apdu[1] === 0x46)!.apdu;
    const data = apdu.subarray(7, apdu.length - 2);
    const body = encodeCvcBody({
      car: 'UTCA00001',
      publicKey: { oid: OID.TA_RSA_V15_SHA256, exponent: fromHex('010001'), keySize: 2048 },
      chr: 'ESPICOHSMTR00001',
    });
    expect(toHex(readTlv(body).value)).toBe(toHex(data));
  });
});

describe('device certificates in EF 2F02 (trace 15, spec §5.3)', () => {
  const ef = readFileFromTrace('15-pkcs15-dump.apdu.txt', '2f02');

  it("decodes pico's file: one self-signed secp256k1 device certificate", () => {
    expect(ef.length).toBe(0x1bb);
    const { device, issuer } = decodeDeviceCertificateFile(ef);
    expect(issuer).toBeUndefined();
    expect(device.chr).toBe('ESPICOHSMTR00001');
    expect(device.car).toBe('ESPICOHSMTR00001');
    expect(device.effectiveDate).toBe('2023-03-21');
    const key = createPublicKey({
      key: Buffer.from(cvcPublicKeyToSpki(device.publicKey)),
      format: 'der',
      type: 'spki',
    });
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('secp256k1');
    // the chain is self-consistent: CAR = CHR and the signature verifies with the device key
    expect(verifyCvcSignature(device, device.publicKey)).toBe(true);
    expect(verifyCvcSignature({ ...device, signature: flipBit(device.signature) }, device.publicKey)).toBe(
      false,
    );
    // the strict contract function wants the issuer that real firmware stores after it
    expectError(() => decodeDeviceCertificates(ef), 'MALFORMED_DATA');
  });

  it('decodes a device certificate followed by its issuer', () => {
    const issuerKey = generateKeyPairSync('ec', { namedCurve: 'brainpoolP256r1' });
    const deviceKey = generateKeyPairSync('ec', { namedCurve: 'brainpoolP256r1' });
    const issuerPk = spkiToCvcPublicKey(spkiOf(issuerKey.publicKey), OID.TA_ECDSA_SHA256);
    const devicePk = spkiToCvcPublicKey(spkiOf(deviceKey.publicKey), OID.TA_ECDSA_SHA256);
    const issuerBody = encodeCvcBody({ car: 'DESRCACC100001', publicKey: issuerPk, chr: 'DEDICA0000001' });
    const deviceBody = encodeCvcBody({
      car: 'DEDICA0000001',
      publicKey: { oid: devicePk.oid, point: devicePk.point! },
      chr: 'DENK0200000001',
      effectiveDate: '2024-01-31',
    });
    const issuerCvc = encodeCvc(issuerBody, new Uint8Array(64).fill(1));
    const deviceCvc = encodeCvc(deviceBody, signPlain(issuerKey.privateKey, 'sha256', deviceBody, 32));
    const { device, issuer } = decodeDeviceCertificates(concat(deviceCvc, issuerCvc));
    expect(device.chr).toBe('DENK0200000001');
    expect(issuer.chr).toBe('DEDICA0000001');
    expect(device.car).toBe(issuer.chr);
    expect(verifyCvcSignature(device, issuer.publicKey)).toBe(true);
    expect(verifyCvcSignature(device, devicePk)).toBe(false);
  });
});

describe('round trip through node:crypto keys (spec §5.1)', () => {
  it.each(CURVES.map((c) => c.name))('%s', (name) => {
    const pair = generateKeyPairSync('ec', { namedCurve: name });
    const spki = spkiOf(pair.publicKey);
    const pk = spkiToCvcPublicKey(spki, OID.TA_ECDSA_SHA256);
    const size = curveParams(name).size;
    expect(pk.a?.length).toBe(size);
    expect(pk.point?.length).toBe(2 * size + 1);
    expect(pk.cofactor).toEqual(fromHex('01'));
    const body = encodeCvcBody({ car: 'UTCA00001', publicKey: pk, chr: 'UTTEST0000001' });
    const cvc = encodeCvc(body, signPlain(pair.privateKey, 'sha256', body, size));
    const cert = decodeCvc(cvc);
    expect(cert.raw).toEqual(cvc);
    expect(toHex(cvcPublicKeyToSpki(cert.publicKey))).toBe(toHex(spki));
    expect(verifyCvcSignature(cert, cert.publicKey)).toBe(true);
    expect(verifyCvcSignature({ ...cert, signature: flipBit(cert.signature, 3) }, cert.publicKey)).toBe(
      false,
    );
    expect(curveByName(name).bits).toBeGreaterThan(0);
  });

  it('RSA-2048 with every RSA TA scheme', () => {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const spki = spkiOf(pair.publicKey);
    const schemes: [number, string, boolean][] = [
      [1, 'sha1', false],
      [2, 'sha256', false],
      [3, 'sha1', true],
      [4, 'sha256', true],
      [5, 'sha512', false],
      [6, 'sha512', true],
    ];
    for (const [last, hash, pss] of schemes) {
      const oid = fromHex(`04007F000702020201${last.toString(16).padStart(2, '0')}`);
      const pk = spkiToCvcPublicKey(spki, oid);
      expect(pk.modulus?.[0]).not.toBe(0);
      const body = encodeCvcBody({ car: 'UTCA00001', publicKey: pk, chr: 'UTRSA0000001' });
      const sig = new Uint8Array(
        sign(
          hash,
          body,
          pss
            ? {
                key: pair.privateKey,
                padding: constants.RSA_PKCS1_PSS_PADDING,
                saltLength: hash === 'sha1' ? 20 : 32,
              }
            : pair.privateKey,
        ),
      );
      const cert = decodeCvc(encodeCvc(body, sig));
      expect(toHex(cvcPublicKeyToSpki(cert.publicKey))).toBe(toHex(spki));
      expect(verifyCvcSignature(cert, cert.publicKey)).toBe(true);
      expect(verifyCvcSignature({ ...cert, signature: flipBit(sig, 200) }, cert.publicKey)).toBe(false);
    }
  });

  it('ECDSA hash variants follow the signer OID', () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const hashes = ['sha1', 'sha224', 'sha256', 'sha384', 'sha512'];
    hashes.forEach((hash, i) => {
      const pk = spkiToCvcPublicKey(spkiOf(pair.publicKey), fromHex(`04007F0007020202020${i + 1}`));
      const body = encodeCvcBody({ publicKey: pk, chr: 'UTEC0000001' });
      const cert = decodeCvc(encodeCvc(body, signPlain(pair.privateKey, hash, body, 48)));
      expect(cert.car).toBeUndefined();
      expect(verifyCvcSignature(cert, cert.publicKey)).toBe(true);
      const other = hashes[(i + 1) % hashes.length]!;
      const wrong = decodeCvc(encodeCvc(body, signPlain(pair.privateKey, other, body, 48)));
      expect(verifyCvcSignature(wrong, cert.publicKey)).toBe(false);
    });
  });

  it('refuses unknown signature algorithms and unsupported curves', () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const pk = spkiToCvcPublicKey(spkiOf(pair.publicKey), OID.TA_ECDSA_SHA256);
    const cert = decodeCvc(encodeCvc(encodeCvcBody({ publicKey: pk, chr: 'UTX00001' }), new Uint8Array(64)));
    expectError(
      () => verifyCvcSignature(cert, { ...pk, oid: fromHex('04007F00070202020209') }),
      'NOT_SUPPORTED',
    );
    expectError(
      () => verifyCvcSignature(cert, { ...pk, oid: fromHex('04007F00070202050203') }),
      'NOT_SUPPORTED',
    );
    expectError(() => cvcPublicKeyToSpki({ ...pk, p: fromHex('0b') }), 'NOT_SUPPORTED');
    expectError(() => cvcPublicKeyToSpki({ ...pk, b: fromHex('0b') }), 'MALFORMED_DATA');
    const p224 = generateKeyPairSync('ec', { namedCurve: 'secp224r1' });
    expectError(() => spkiToCvcPublicKey(spkiOf(p224.publicKey), OID.TA_ECDSA_SHA256), 'INVALID_ARGUMENT');
    expectError(() => spkiToCvcPublicKey(spkiOf(pair.publicKey), OID.TA_RSA_V15_SHA256), 'INVALID_ARGUMENT');
    expectError(() => spkiToCvcPublicKey(fromHex('3000'), OID.TA_ECDSA_SHA256), 'MALFORMED_DATA');
  });

  it('expands a compressed point and reads explicit curve parameters', () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'brainpoolP320r1' });
    const named = spkiToCvcPublicKey(spkiOf(pair.publicKey), OID.TA_ECDSA_SHA256);
    const explicit = new Uint8Array(
      generateKeyPairSync('ec', {
        namedCurve: 'brainpoolP320r1',
        paramEncoding: 'explicit',
        publicKeyEncoding: { type: 'spki', format: 'der' },
        privateKeyEncoding: { type: 'pkcs8', format: 'der' },
      } as Parameters<typeof generateKeyPairSync>[1] & { namedCurve: string }).publicKey as unknown as Buffer,
    );
    expect(spkiToCvcPublicKey(explicit, OID.TA_ECDSA_SHA256).p).toEqual(named.p);
    const point = named.point!;
    const compressed = concat(Uint8Array.of(2 + (point.at(-1)! & 1)), point.subarray(1, 41));
    const spki = spkiOf(pair.publicKey);
    const cspki = concat(spki.subarray(0, spki.length - 81), compressed);
    // rebuild the outer lengths for the shorter key
    const fixed = fixSpkiLengths(cspki);
    expect(spkiToCvcPublicKey(fixed, OID.TA_ECDSA_SHA256).point).toEqual(point);
  });
});

/** Re-wraps an SPKI whose BIT STRING was replaced (test helper for the compressed form). */
function fixSpkiLengths(s: Uint8Array): Uint8Array {
  // layout: 30 LL { 30 LL alg, 03 LL 00 key } — re-read alg, then rebuild
  const algLen = s[3]!;
  const alg = s.subarray(2, 4 + algLen);
  const key = s.subarray(4 + algLen + 3);
  const bit = concat(Uint8Array.of(0x03, key.length + 1, 0x00), key);
  const inner = concat(alg, bit);
  return concat(Uint8Array.of(0x30, inner.length), inner);
}

describe('ECDSA signature forms', () => {
  it('converts DER to r‖s and back', () => {
    const der = fromHex('3006020100020180');
    expect(toHex(ecdsaDerToPlain(der, 2))).toBe('00000080');
    expect(toHex(ecdsaPlainToDer(fromHex('00000080')))).toBe('300702010002020080');
    const pair = generateKeyPairSync('ec', { namedCurve: 'secp521r1' });
    for (let i = 0; i < 20; i++) {
      const d = new Uint8Array(sign('sha512', ascii(`m${i}`), pair.privateKey));
      const rs = ecdsaDerToPlain(d, 66);
      expect(rs.length).toBe(132);
      expect(toHex(ecdsaPlainToDer(rs))).toBe(toHex(d));
    }
  });

  it('refuses bad input', () => {
    expectError(() => ecdsaDerToPlain(fromHex('3006020100020180'), 0), 'INVALID_ARGUMENT');
    expectError(() => ecdsaDerToPlain(fromHex('30060201000201'), 2), 'MALFORMED_DATA');
    expectError(() => ecdsaDerToPlain(fromHex('300702010002020100'), 1), 'MALFORMED_DATA');
    expectError(() => ecdsaDerToPlain(fromHex('3003020100'), 2), 'MALFORMED_DATA');
    expectError(() => ecdsaPlainToDer(fromHex('010203')), 'INVALID_ARGUMENT');
  });
});

describe('CVC encoder input checks', () => {
  const pk: CvcPublicKey = { oid: OID.TA_RSA_V15_SHA256, modulus: fromHex('c001'), exponent: fromHex('03') };
  it('refuses bad references, dates and mixed keys', () => {
    expectError(() => encodeCvcBody({ publicKey: pk, chr: '' }), 'INVALID_ARGUMENT');
    expectError(() => encodeCvcBody({ publicKey: pk, chr: 'X'.repeat(17) }), 'INVALID_ARGUMENT');
    expectError(
      () => encodeCvcBody({ publicKey: pk, chr: 'UT1', effectiveDate: '2024-13-01' }),
      'INVALID_ARGUMENT',
    );
    expectError(
      () => encodeCvcBody({ publicKey: pk, chr: 'UT1', expirationDate: '1999-01-01' }),
      'INVALID_ARGUMENT',
    );
    expectError(() => encodeCvcPublicKey({ ...pk, p: fromHex('01') }), 'INVALID_ARGUMENT');
    expectError(() => encodeCvcPublicKey({ ...pk, point: fromHex('04') }), 'INVALID_ARGUMENT');
    expectError(() => encodeCvcPublicKey({ ...pk, oid: new Uint8Array(0) }), 'INVALID_ARGUMENT');
    expectError(() => encodeCvc(fromHex('7f4e00ff'), fromHex('01')), 'INVALID_ARGUMENT');
    expectError(() => encodeCvc(fromHex('7f4e00'), new Uint8Array(0)), 'INVALID_ARGUMENT');
    expectError(
      () => encodeAuthenticatedRequest(fromHex('7f4e00'), 'UT1', fromHex('01')),
      'INVALID_ARGUMENT',
    );
  });

  it('writes dates one digit per byte', () => {
    const body = encodeCvcBody({
      publicKey: pk,
      chr: 'UT1',
      effectiveDate: '2012-11-09',
      expirationDate: '2032-11-08',
    });
    expect(toHex(body)).toContain('5f25060102010100095f2406030201010008');
  });

  it('refuses undecodable certificates with MALFORMED_DATA', () => {
    expectError(() => decodeCvc(new Uint8Array(0)), 'MALFORMED_DATA');
    expectError(() => decodeCvc(fromHex('7f2100')), 'MALFORMED_DATA');
    expectError(() => decodeCvc(fromHex('6700')), 'MALFORMED_DATA');
    expectError(() => decodeCvRequest(fromHex('670400000000')), 'MALFORMED_DATA');
    expectError(() => decodeCvc(SRCA.subarray(0, 100)), 'MALFORMED_DATA');
    const badDate = SRCA.slice();
    badDate[SRCA.length - 0x40 - 3 - 6] = 0x0a; // a CXD digit > 9
    expectError(() => decodeCvc(badDate), 'MALFORMED_DATA');
  });
});

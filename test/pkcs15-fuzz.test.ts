import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ScHsmError } from '../src/errors.js';
import {
  decodeCertificateDescription,
  decodeCvc,
  decodeCvRequest,
  decodeDataObjectDescription,
  decodeDeviceCertificateFile,
  decodeDeviceCertificates,
  decodeKeyDescription,
  decodeTokenInfo,
  ecdsaDerToPlain,
  encodeAuthenticatedRequest,
  encodeCertificateDescription,
  encodeCvc,
  encodeCvcBody,
  encodeDataObjectDescription,
  encodeKeyDescription,
  encodeTokenInfo,
  spkiToCvcPublicKey,
} from '../src/pkcs15/index.js';
import { OID } from '../src/protocol/constants.js';
import { concat, fromHex } from '../src/util/bytes.js';
import { mutatedSample } from './helpers/mutate.js';

const RUNS = 2000;

/** Random bytes, and valid samples with 1–4 mutations (length bytes included). */
function inputs(samples: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.oneof(fc.uint8Array({ maxLength: 400 }), mutatedSample(samples));
}

/** The only allowed outcomes: a value or an ScHsmError. */
function checkDecoder(name: string, decode: (b: Uint8Array) => unknown, samples: Uint8Array[]): void {
  it(`${name}: value or ScHsmError for random and mutated input`, () => {
    for (const s of samples) expect(() => decode(s)).not.toThrow();
    let errors = 0;
    let values = 0;
    fc.assert(
      fc.property(inputs(samples), (bytes) => {
        try {
          decode(bytes);
          values++;
        } catch (e) {
          if (!(e instanceof ScHsmError)) throw e;
          expect(['MALFORMED_DATA', 'NOT_SUPPORTED']).toContain(e.code);
          errors++;
        }
      }),
      { numRuns: RUNS },
    );
    // both outcomes must have been exercised, or the generator is not testing anything
    expect(errors).toBeGreaterThan(0);
    expect(values).toBeGreaterThan(0);
  });
}

const h = fromHex;

const keySamples = [
  encodeKeyDescription({
    kind: 'rsa',
    label: 'cara-rsa-ca',
    objectFlags: 3,
    authId: h('01'),
    id: h('01'),
    usage: 0x0e,
    keyReference: 1,
    bits: 2048,
  }),
  encodeKeyDescription({
    kind: 'ec',
    label: 'eckey1',
    objectFlags: 3,
    authId: h('01'),
    id: h('7d5b13c87d41545d98266d2f97b800a06fe89fa1'),
    usage: 0x10c,
    access: 0x1d,
    native: true,
    keyReference: 1,
    subjectName: h('300f310d300b06035504030c0474657374'),
    bits: 256,
  }),
  encodeKeyDescription({
    kind: 'aes',
    label: 'a',
    objectFlags: 3,
    id: h('0a'),
    usage: 3,
    keyReference: 10,
    bits: 256,
  }),
  h('a81b30003008040101030307c010a0053003020180a106300430020400'),
];

const cdSamples = [
  encodeCertificateDescription({
    label: 'myca',
    objectFlags: 2,
    id: h('99'),
    authority: true,
    path: h('ca00'),
  }),
  h('301b300a0c046d796361030206403003040199a108300630040402ca00'),
];

const dcodSamples = [
  encodeDataObjectDescription({ label: 'mydata', objectFlags: 2, applicationName: 'myapp', path: h('cf00') }),
  encodeDataObjectDescription({
    label: 'p',
    objectFlags: 3,
    authId: h('01'),
    applicationOid: '1.3.6.1.4.1.24991.3.1',
    path: h('cd01'),
  }),
];

const tokenSamples = [
  encodeTokenInfo({ version: 0, label: 'MTG-CARA-HSM', flags: 4 }),
  encodeTokenInfo({
    version: 5,
    serialNumber: h('0011223344556677'),
    manufacturer: 'P',
    label: 'SC',
    flags: 12,
  }),
];

function cvcSamples(): { cvcs: Uint8Array[]; requests: Uint8Array[]; files: Uint8Array[] } {
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ecPk = spkiToCvcPublicKey(
    new Uint8Array(ec.publicKey.export({ format: 'der', type: 'spki' })),
    OID.TA_ECDSA_SHA256,
  );
  const rsaBody = encodeCvcBody({
    car: 'UTCA00001',
    publicKey: { oid: OID.TA_RSA_V15_SHA256, modulus: new Uint8Array(64).fill(0xc3), exponent: h('010001') },
    chr: 'UTRSA00001',
    chat: { oid: OID.CHAT_SC_HSM, role: h('c0') },
    effectiveDate: '2024-01-01',
    expirationDate: '2030-12-31',
  });
  const ecBody = encodeCvcBody({ car: 'UTCA00001', publicKey: ecPk, chr: 'UTEC00001' });
  const rsa = encodeCvc(rsaBody, new Uint8Array(64).fill(7));
  const eck = encodeCvc(ecBody, new Uint8Array(64).fill(9));
  return {
    cvcs: [rsa, eck],
    requests: [encodeAuthenticatedRequest(eck, 'UTDEV00000', new Uint8Array(64).fill(1)), rsa],
    files: [concat(eck, rsa), eck],
  };
}

describe('decoders never throw anything but ScHsmError (fast-check)', () => {
  const cvc = cvcSamples();
  checkDecoder('decodeKeyDescription', decodeKeyDescription, keySamples);
  checkDecoder('decodeCertificateDescription', decodeCertificateDescription, cdSamples);
  checkDecoder('decodeDataObjectDescription', decodeDataObjectDescription, dcodSamples);
  checkDecoder('decodeTokenInfo', decodeTokenInfo, tokenSamples);
  checkDecoder('decodeCvc', decodeCvc, cvc.cvcs);
  checkDecoder('decodeCvRequest', decodeCvRequest, cvc.requests);
  checkDecoder('decodeDeviceCertificateFile', decodeDeviceCertificateFile, cvc.files);
  checkDecoder('decodeDeviceCertificates', decodeDeviceCertificates, cvc.files.slice(0, 1));
  checkDecoder('ecdsaDerToPlain', (b) => ecdsaDerToPlain(b, 32), [
    h('3006020101020102'),
    h('3007020200ff020101'),
  ]);
});

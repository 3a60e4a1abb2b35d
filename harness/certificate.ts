/**
 * A throw-away X.509 certificate for tests and benchmarks. No vitest import: harness/ is what
 * test/ and bench/ share (bench/ never imports from test/; test/layers.test.ts checks it).
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { ascii, concat, fromHex } from '../src/util/bytes.js';
import { tlv } from '../src/util/tlv.js';

/** A minimal DER X.509 certificate (CN=`cn`) for `spki`, signed by a throw-away P-256 key. */
export function testCertificate(spki: Uint8Array, cn: string): Uint8Array {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const name = tlv(0x30, tlv(0x31, tlv(0x30, tlv(0x06, fromHex('550403')), tlv(0x0c, ascii(cn)))));
  const alg = tlv(0x30, tlv(0x06, fromHex('2a8648ce3d040302')));
  const validity = tlv(0x30, tlv(0x17, ascii('250101000000Z')), tlv(0x17, ascii('350101000000Z')));
  const tbs = tlv(
    0x30,
    tlv(0xa0, tlv(0x02, Uint8Array.of(2))),
    tlv(0x02, Uint8Array.of(1)),
    alg,
    name,
    validity,
    name,
    spki,
  );
  return tlv(
    0x30,
    tbs,
    alg,
    tlv(0x03, concat(Uint8Array.of(0), new Uint8Array(sign('sha256', tbs, privateKey)))),
  );
}

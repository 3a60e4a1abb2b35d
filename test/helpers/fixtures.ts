/** Small builders shared by tests and benchmarks. */
import { generateKeyPairSync, sign } from 'node:crypto';
import { FAULT_KINDS, type FaultPlan } from '../../src/apdu/fault.js';
import { SmartCardHsm } from '../../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../../src/sim/index.js';
import { ascii, concat, fromHex } from '../../src/util/bytes.js';
import { tlv } from '../../src/util/tlv.js';

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

/** Every fault kind, before and after delivery (a truncated answer is always the card's own, so delivered). */
export const FAULT_COMBOS: { kind: FaultPlan['kind']; delivered: boolean }[] = FAULT_KINDS.flatMap(
  (kind): { kind: FaultPlan['kind']; delivered: boolean }[] =>
    kind === 'truncated-response'
      ? [{ kind, delivered: true }]
      : [
          { kind, delivered: false },
          { kind, delivered: true },
        ],
);

/** A fresh virtual card, initialized with the well-known test PINs, the user PIN verified. */
export async function initializedHsm(): Promise<SmartCardHsm> {
  const hsm = await SmartCardHsm.open(new VirtualSmartCardHsm());
  await hsm.initialize({ soPin: '3537363231383830', userPin: '648219' });
  await hsm.verifyPin('648219');
  return hsm;
}

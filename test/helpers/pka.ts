/** Public key authentication fixtures shared by the PKA tests: a target device and custodians. */
import { generateKeyPairSync, sign } from 'node:crypto';
import { decodeCvRequest, encodeCvc, encodeCvcBody, spkiToCvcPublicKey } from '../../src/pkcs15/index.js';
import { OID } from '../../src/protocol/constants.js';
import { SmartCardHsm } from '../../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../../src/sim/index.js';

export const SO = '3537363231383830';
export const PIN = '648219';

export interface Custodian {
  hsm: SmartCardHsm;
  keyRef: number;
  file: Uint8Array;
  chr: string;
}

/** A custodian's own SmartCard-HSM with an EC key generated on it, and its PKA export file. */
export async function custodian(
  type: 'ec' | 'rsa' = 'ec',
  card: VirtualSmartCardHsm = new VirtualSmartCardHsm(),
): Promise<Custodian> {
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO, userPin: PIN });
  await hsm.verifyPin(PIN);
  const k =
    type === 'ec'
      ? await hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'custodian' })
      : await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'custodian' });
  const file = await hsm.pkaExport(k.keyRef);
  return { hsm, keyRef: k.keyRef, file, chr: decodeCvRequest(k.request).certificate.chr };
}

/** A device initialized for N-of-M public key authentication. */
export async function target(
  total: number,
  required: number,
  combinedAuth = false,
): Promise<{ hsm: SmartCardHsm; card: VirtualSmartCardHsm }> {
  const card = new VirtualSmartCardHsm();
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO, userPin: PIN, publicKeyAuth: { total, required }, combinedAuth });
  return { hsm, card };
}

/**
 * An issuer (DICA) certificate with the CHR `chr` of a real one, signed by a fresh key under the
 * unknown root `UTROGUE00001`: a chain that does not end at any device's root.
 */
export function rogueIssuer(chr: string): Uint8Array {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'brainpoolP256r1' });
  const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  const body = encodeCvcBody({
    car: 'UTROGUE00001',
    publicKey: spkiToCvcPublicKey(spki, OID.TA_ECDSA_SHA256),
    chr,
    chat: { oid: OID.CHAT_SC_HSM, role: Uint8Array.of(0x80) },
    effectiveDate: '2025-01-01',
    expirationDate: '2040-01-01',
  });
  return encodeCvc(
    body,
    new Uint8Array(sign('sha256', body, { key: privateKey, dsaEncoding: 'ieee-p1363' })),
  );
}

// The application under test: signs a document with the device key and says what went wrong in
// words its users understand (its error paths are what the fault-injection test drives).
import { isScHsmError, type SmartCardHsm } from 'sc-hsm-ts';

export async function signDocument(hsm: SmartCardHsm, keyRef: number, doc: Uint8Array): Promise<Uint8Array> {
  try {
    return await hsm.sign(keyRef, 'ECDSA-SHA256', doc);
  } catch (e) {
    if (isScHsmError(e, 'CARD_REMOVED')) throw new Error('the HSM was unplugged while signing: plug it in and retry');
    throw e;
  }
}

/**
 * Which bytes of a SmartCard-HSM command carry a secret, for transcripts and traces (spec
 * §3.6–3.10): the ISO PIN commands' data (VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER),
 * INITIALIZE tags 81 (user PIN) and 82 (SO-PIN), and IMPORT DKEK SHARE data (a key share). Every
 * other proprietary command stays readable, so a user's trace is a useful bug report.
 */
import { dataField, isoSecretMask, maskedHex, type SecretMask } from '../apdu/transcript.js';
import { CLA_PROPRIETARY, INS } from '../protocol/constants.js';
import { readTlv } from '../util/tlv.js';

/** Per-byte mask (true = secret) of a SmartCard-HSM command APDU. */
export const secretMask: SecretMask = (apdu) => {
  if (apdu.length <= 5 || (apdu[0]! & 0xf0) !== CLA_PROPRIETARY) return isoSecretMask(apdu);
  const mask = new Array<boolean>(apdu.length).fill(false);
  const { off, end } = dataField(apdu);
  const all = () => {
    for (let i = off; i < end; i++) mask[i] = true;
  };
  const ins = apdu[1]!;
  // MANAGE KEY DOMAIN (`52`) with data: P1 00 imports a DKEK share; the whole field is masked.
  // Inside secure messaging (CLA 8C, spec §3.19) INITIALIZE's TLVs are encrypted: masked whole too.
  const secured = (apdu[0]! & 0x0c) === 0x0c;
  if (ins === INS.MANAGE_KEY_DOMAIN || (secured && ins === INS.INITIALIZE)) all();
  else if (ins === INS.INITIALIZE) {
    // the values of tags 81 and 82; when the TLVs cannot be read, everything
    try {
      let p = off;
      while (p < end) {
        const t = readTlv(apdu, p, end);
        if (t.tag === 0x81 || t.tag === 0x82) {
          for (let i = t.end - t.value.length; i < t.end; i++) mask[i] = true;
        }
        p = t.end;
      }
    } catch {
      all();
    }
  }
  return mask;
};

/** Hex of a SmartCard-HSM command APDU with its secret bytes replaced by `**`. */
export function maskedCommandHex(apdu: Uint8Array): string {
  return maskedHex(apdu, secretMask);
}

/**
 * The `.bin` file of `sc-hsm-tool --wrap-key` / `--unwrap-key` (spec §8.2):
 * `30 LL { 04 LL <key blob>, <EF C4xx: PRKD>, <EF CExx: certificate or CV request> }`, each
 * embedded EF trimmed to its first complete TLV. The PRKD and certificate are optional and found
 * by position, as sc-hsm-tool does (a certificate without a PRKD would be read as the PRKD).
 */
import { ScHsmError } from '../errors.js';
import { decodeKeyDescription, type KeyDescription } from '../pkcs15/index.js';
import { firstTlvLength, readTlv, tlv } from '../util/tlv.js';

/** A decoded wrap file (spec §8.2). */
export interface WrapFile {
  /** The key blob (spec §8.1). */
  blob: Uint8Array;
  /** The key's PKCS#15 description as stored in `C4xx`, trimmed to its first TLV. */
  prkd?: Uint8Array;
  /** The certificate (`30…`) or CV request (`67…`) stored in `CExx`, trimmed to its first TLV. */
  certificate?: Uint8Array;
  /** The PRKD decoded (spec §6.1–6.3), when it decodes. */
  keyDescription?: KeyDescription;
  /** The key's label from the PRKD, when present. */
  label?: string;
  /** The key's PKCS#15 ID from the PRKD (not its key reference). */
  id?: Uint8Array;
}

function bad(what: string): never {
  throw new ScHsmError(
    'INVALID_WRAP_FILE',
    `not a key wrap file (sc-hsm-tool --wrap-key format, a DER SEQUENCE holding the key blob): ${what}`,
  );
}

/**
 * Decodes a wrap file (spec §8.2) into blob, PRKD and certificate bytes, plus the decoded key
 * description with its label and ID when the PRKD decodes.
 * @throws ScHsmError INVALID_WRAP_FILE when the outer SEQUENCE or the blob's OCTET STRING is missing
 *   or malformed.
 */
export function decodeWrapFile(bin: Uint8Array): WrapFile {
  if (!(bin instanceof Uint8Array) || bin.length === 0) bad('the file is empty');
  let outer: ReturnType<typeof readTlv>;
  try {
    outer = readTlv(bin, 0);
  } catch {
    bad('the outer SEQUENCE is truncated or malformed');
  }
  if (outer.tag !== 0x30) bad(`it starts with tag ${outer.tag.toString(16).toUpperCase()} instead of 30`);
  const inner = outer.value;
  let blobTlv: ReturnType<typeof readTlv>;
  try {
    blobTlv = readTlv(inner, 0);
  } catch {
    bad('the key blob OCTET STRING is truncated or malformed');
  }
  if (blobTlv.tag !== 0x04)
    bad(`the first element has tag ${blobTlv.tag.toString(16).toUpperCase()} instead of 04 (key blob)`);
  if (blobTlv.value.length === 0) bad('the key blob is empty');
  const out: WrapFile = { blob: blobTlv.value.slice() };
  let rest = inner.subarray(blobTlv.end);
  const prkdLen = firstTlvLength(rest);
  if (prkdLen > 0) {
    out.prkd = rest.slice(0, prkdLen);
    try {
      // A PRKD that does not decode is still carried along: sc-hsm-tool copies it blindly.
      const kd = decodeKeyDescription(out.prkd);
      out.keyDescription = kd;
      if (kd.label !== undefined) out.label = kd.label;
      out.id = kd.id;
    } catch {
      // not a key description we understand: leave the decoded fields out
    }
    rest = rest.subarray(prkdLen);
    const certLen = firstTlvLength(rest);
    if (certLen > 0) out.certificate = rest.slice(0, certLen);
  }
  return out;
}

/**
 * Encodes a wrap file byte-compatible with `sc-hsm-tool --wrap-key` (spec §8.2). The PRKD and
 * certificate are trimmed to their first complete TLV, as sc-hsm-tool does with the EF contents.
 * @throws ScHsmError INVALID_ARGUMENT when the blob is empty or a PRKD/certificate is not a TLV.
 */
export function encodeWrapFile(w: {
  blob: Uint8Array;
  prkd?: Uint8Array;
  certificate?: Uint8Array;
}): Uint8Array {
  if (!w || !(w.blob instanceof Uint8Array) || w.blob.length === 0) {
    throw new ScHsmError('INVALID_ARGUMENT', 'a wrap file needs a non-empty key blob');
  }
  const trim = (b: Uint8Array | undefined, what: string): Uint8Array[] => {
    if (b === undefined || b.length === 0) return [];
    const n = b instanceof Uint8Array ? firstTlvLength(b) : 0;
    if (n === 0)
      throw new ScHsmError('INVALID_ARGUMENT', `the ${what} for the wrap file is not a complete TLV`);
    return [b.subarray(0, n)];
  };
  return tlv(
    0x30,
    tlv(0x04, w.blob),
    ...trim(w.prkd, 'key description (PRKD)'),
    ...trim(w.certificate, 'certificate'),
  );
}

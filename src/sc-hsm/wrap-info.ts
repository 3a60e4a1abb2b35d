/** What a `.bin` wrap file says about its key, without the DKEK: header, description, public key. */
import { decodeWrapFile, inspectKeyBlob, type WrapFile } from '../dkek/index.js';
import {
  cvcPublicKeyToSpki,
  decodeCvRequest,
  decodeKeyDescription,
  type KeyDescription,
} from '../pkcs15/index.js';
import { certificateSpki } from './objects.js';

export interface WrapFileInfo {
  wrap: WrapFile;
  header: ReturnType<typeof inspectKeyBlob>;
  description?: KeyDescription;
  /** SPKI from the certificate or the CV request in the file. */
  publicKey?: Uint8Array;
  /** The file holds an X.509 certificate (not just a CV request). */
  certificate?: Uint8Array;
}

/** Decodes a `.bin` wrap file (INVALID_WRAP_FILE, INVALID_KEY_BLOB); the description and public key are best effort. */
export function wrapFileInfo(bin: Uint8Array): WrapFileInfo {
  const wrap = decodeWrapFile(bin);
  const info: WrapFileInfo = { wrap, header: inspectKeyBlob(wrap.blob) };
  if (wrap.prkd) {
    try {
      info.description = decodeKeyDescription(wrap.prkd);
    } catch {
      // a description this tool cannot read: the key itself is still restorable
    }
  }
  if (wrap.certificate) {
    try {
      if (wrap.certificate[0] === 0x30) {
        info.certificate = wrap.certificate;
        info.publicKey = certificateSpki(wrap.certificate);
      } else info.publicKey = cvcPublicKeyToSpki(decodeCvRequest(wrap.certificate).certificate.publicKey);
    } catch {
      // no usable public key
    }
  }
  return info;
}

/** What a `.bin` wrap file says about its key, without the DKEK: header, description, public key. */
import { createPublicKey, X509Certificate } from 'node:crypto';
import { decodeWrapFile, inspectKeyBlob, type WrapFile } from '../dkek/index.js';
import {
  cvcPublicKeyToSpki,
  decodeCvRequest,
  decodeKeyDescription,
  type KeyDescription,
  verifyCvcSignature,
} from '../pkcs15/index.js';
import { bytesEqual } from '../util/bytes.js';
import { curveByName } from '../util/curves.js';
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
      // a description this tool cannot read: reported by wrapFileDamage
    }
  }
  if (wrap.certificate) {
    try {
      if (wrap.certificate[0] === 0x30) {
        info.certificate = wrap.certificate;
        info.publicKey = certificateSpki(wrap.certificate);
      } else info.publicKey = cvcPublicKeyToSpki(decodeCvRequest(wrap.certificate).certificate.publicKey);
    } catch {
      // no usable public key: reported by wrapFileDamage
    }
  }
  return info;
}

/** Key type and size of an SPKI (EC: the curve's field size), as a key description states them. */
function spkiKey(spki: Uint8Array): { kind: 'rsa' | 'ec' | 'other'; bits?: number } {
  const k = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  if (k.asymmetricKeyType === 'rsa') {
    const bits = k.asymmetricKeyDetails?.modulusLength;
    return bits === undefined ? { kind: 'rsa' } : { kind: 'rsa', bits };
  }
  if (k.asymmetricKeyType === 'ec') {
    const named = k.asymmetricKeyDetails?.namedCurve;
    try {
      return named ? { kind: 'ec', bits: curveByName(named).bits } : { kind: 'ec' };
    } catch {
      return { kind: 'ec' };
    }
  }
  return { kind: 'other' };
}

/** An SPKI as node:crypto encodes it (one encoding per key, to compare keys). */
function normalSpki(spki: Uint8Array): Uint8Array {
  return new Uint8Array(
    createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }).export({
      format: 'der',
      type: 'spki',
    }),
  );
}

function reason(e: unknown): string {
  return ((e as Error)?.message ?? String(e)).replace(/\.\s*$/, '');
}

/**
 * What is damaged in the parts of a wrap file that its blob's MAC does not protect (spec §8.2),
 * checked on the host before a key is unwrapped from it; undefined when nothing is. The key
 * description (C4xx) must decode and describe a key of the blob's type; the certificate (CExx)
 * must be an X.509 certificate or a CV request that decodes, a CV request's self-signature must
 * verify under its own public key (a CV request is signed by the key it carries, spec §3.11), and
 * that public key must be of the blob's type and of the described size. `publicKey`: the key's
 * public key where the host knows it (the blob decrypted with the DKEK); the file's must be that
 * one. A damaged part would put a key on the device under a description or public key that is
 * not its own.
 */
export function wrapFileDamage(info: WrapFileInfo, publicKey?: Uint8Array): string | undefined {
  const w = info.wrap;
  const type = info.header.keyType === 'rsa-crt' ? 'rsa' : info.header.keyType;
  const d = info.description;
  if (w.prkd && !d) {
    let why = 'it does not decode';
    try {
      decodeKeyDescription(w.prkd);
    } catch (e) {
      why = reason(e);
    }
    return `its key description (PRKD, for C4xx) is damaged: ${why}`;
  }
  if (d && d.kind !== type)
    return `its key description (PRKD) describes ${d.kind === 'aes' ? 'an AES' : `an ${d.kind.toUpperCase()}`} key, but the wrapped key is ${type.toUpperCase()}`;
  if (!w.certificate) return undefined;
  const c = w.certificate;
  let spki: Uint8Array;
  let what: string;
  if (c[0] === 0x30) {
    what = 'its certificate (for CExx)';
    try {
      new X509Certificate(Buffer.from(c));
      spki = certificateSpki(c);
    } catch (e) {
      return `${what} is damaged: it does not decode as an X.509 certificate (${reason(e)})`;
    }
  } else if (c[0] === 0x67 || c[0] === 0x7f) {
    what = 'its public key (the CV request of key generation, for CExx)';
    try {
      const req = decodeCvRequest(c).certificate;
      if (!verifyCvcSignature(req, req.publicKey))
        return `${what} is damaged: its self-signature does not verify`;
      spki = cvcPublicKeyToSpki(req.publicKey);
    } catch (e) {
      return `${what} is damaged: ${reason(e)}`;
    }
  } else {
    return `its certificate part (for CExx) is neither an X.509 certificate nor a CV request (it starts with ${c[0]!.toString(16).padStart(2, '0').toUpperCase()})`;
  }
  let k: ReturnType<typeof spkiKey>;
  try {
    k = spkiKey(spki);
  } catch (e) {
    return `${what} is damaged: its public key is not a valid key (${reason(e)})`;
  }
  if (k.kind !== type)
    return `${what} carries ${k.kind === 'other' ? 'a' : `an ${k.kind.toUpperCase()}`} public key, but the wrapped key is ${type.toUpperCase()}`;
  if (d && k.bits !== undefined && d.bits !== k.bits)
    return `${what} carries a ${k.bits}-bit key, but the key description says ${d.bits} bits`;
  if (publicKey && !bytesEqual(normalSpki(publicKey), normalSpki(spki)))
    return `${what} carries another public key than the wrapped key's`;
  return undefined;
}

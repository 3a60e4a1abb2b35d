/**
 * The file that registers a custodian's key for public key authentication (spec §3.18), as
 * `sc-hsm-tool --export-for-pub-key-auth FILE -i KEYREF` writes it ("old format"):
 * `30 { 67 request, 7F21 device certificate, 7F21 issuer (DICA) certificate }`, and the "new
 * format" OpenSC also reads: `30 { 06 1.3.6.1.4.1.24991.4.3.1, 61 { DICA }, 62 { device },
 * 63 { 67 request } }`. Pure codec: the chain is checked by the device at registration.
 */
import { ScHsmError } from '../errors.js';
import { bytesEqual } from '../util/bytes.js';
import { readAll, readTlv, type Tlv, tlv } from '../util/tlv.js';
import { type AuthenticatedRequest, type CvCertificate, decodeCvc, decodeCvRequest } from './cvc.js';

/** DER content of 1.3.6.1.4.1.24991.4.3.1, the new format's identifier. */
export const PKA_FILE_OID = Uint8Array.of(0x2b, 0x06, 0x01, 0x04, 0x01, 0x81, 0xc3, 0x1f, 0x04, 0x03, 0x01);

/** A decoded PKA registration file. */
export interface PkaFile {
  format: 'old' | 'new';
  /** The complete `67` authenticated request of the custodian's key (from EF CE<keyref>). */
  request: Uint8Array;
  /** The request decoded: its CHR names the key on the target device. */
  decoded: AuthenticatedRequest;
  /** Device certificate (`7F21`) of the custodian's device: it signed the request. */
  device: CvCertificate;
  /** Issuer (DICA) certificate (`7F21`) of that device. */
  issuer: CvCertificate;
}

function bad(why: string): never {
  throw new ScHsmError(
    'INVALID_PKA_FILE',
    `not a public key authentication file (sc-hsm-tool --export-for-pub-key-auth): ${why}`,
  );
}

function parts(t: Tlv): Tlv[] {
  try {
    return readAll(t.value);
  } catch {
    bad('its contents are not TLVs');
  }
}

function only(t: Tlv | undefined, tag: number, what: string): Uint8Array {
  if (!t) bad(`${what} missing`);
  const inner = parts(t);
  if (inner.length !== 1 || inner[0]!.tag !== tag)
    bad(`${what} must hold one ${tag.toString(16).toUpperCase()}`);
  const i = inner[0]!;
  return t.value.subarray(i.start, i.end);
}

/**
 * Decodes a PKA registration file, old or new format; INVALID_PKA_FILE naming what is wrong.
 * The request must be an authenticated request (`67` with an outer CAR and signature) whose outer
 * CAR is the device certificate's CHR, and the device certificate must be issued by the DICA.
 */
export function decodePkaFile(bytes: Uint8Array): PkaFile {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) bad('empty');
  let outer: Tlv;
  try {
    outer = readTlv(bytes, 0);
  } catch {
    bad('not a DER SEQUENCE');
  }
  if (outer.tag !== 0x30) bad('not a DER SEQUENCE');
  if (outer.end !== bytes.length) bad('bytes after the SEQUENCE');
  const items = parts(outer);
  let request: Uint8Array;
  let device: Uint8Array;
  let issuer: Uint8Array;
  let format: PkaFile['format'];
  const raw = (t: Tlv) => outer.value.subarray(t.start, t.end);
  if (items[0]?.tag === 0x06) {
    if (!bytesEqual(items[0].value, PKA_FILE_OID)) bad('unknown format identifier');
    format = 'new';
    issuer = only(
      items.find((t) => t.tag === 0x61),
      0x7f21,
      'issuer certificate (61)',
    );
    device = only(
      items.find((t) => t.tag === 0x62),
      0x7f21,
      'device certificate (62)',
    );
    request = only(
      items.find((t) => t.tag === 0x63),
      0x67,
      'request (63)',
    );
  } else {
    format = 'old';
    if (items.length !== 3 || items[0]!.tag !== 0x67 || items[1]!.tag !== 0x7f21 || items[2]!.tag !== 0x7f21)
      bad('expected a 67 request, the device certificate and the issuer certificate');
    request = raw(items[0]!);
    device = raw(items[1]!);
    issuer = raw(items[2]!);
  }
  let decoded: AuthenticatedRequest;
  let dev: CvCertificate;
  let dica: CvCertificate;
  try {
    decoded = decodeCvRequest(request);
    dev = decodeCvc(device);
    dica = decodeCvc(issuer);
  } catch (e) {
    bad((e as Error).message);
  }
  if (!decoded.outerCar || !decoded.outerSignature)
    bad('the request carries no device signature (outer CAR)');
  if (decoded.outerCar !== dev.chr)
    bad(`the request was signed by ${decoded.outerCar}, but the device certificate is ${dev.chr}'s`);
  if (dev.car !== dica.chr) bad(`the device certificate was issued by ${dev.car}, not by ${dica.chr}`);
  return { format, request: request.slice(), decoded, device: dev, issuer: dica };
}

/**
 * Encodes the old format, byte for byte what `sc-hsm-tool --export-for-pub-key-auth` writes:
 * `30 { request (EF CE<keyref>), device certificate, issuer certificate }` (the two certificates
 * are EF 2F02 as it is).
 */
export function encodePkaFile(request: Uint8Array, ef2f02: Uint8Array): Uint8Array {
  decodeCvRequest(request);
  return tlv(0x30, request, ef2f02);
}

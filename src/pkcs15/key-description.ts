/**
 * Private and secret key descriptions stored in `C4<keyId>` (spec §6.1–6.3).
 *
 * RSA `30 {…}` and EC `A0 {…}` are written byte-exactly like OpenSC 0.23 (TRACE 12/13, spec
 * §6.1/6.2); AES `A8 {…}` follows sc-hsm-embedded plus pico's typeAttributes (spec §6.3).
 */

import type { Tlv } from '../util/tlv.js';
import { readTlv, tlv } from '../util/tlv.js';
import { decodeCommonObjectAttributes, encodeCommonObjectAttributes } from './common.js';
import {
  childrenOf,
  decodeBitField,
  decodeBoolean,
  decodeSmallInteger,
  encodeBitField,
  encodeBoolean,
  encodeInteger,
  hexTag,
  invalid,
  malformed,
  requireBytes,
  requireSingleTlv,
  TAG,
} from './der.js';

/** A PRKD / SKD entry of `C4xx` (spec §6.1–6.3). */
export interface KeyDescription {
  kind: 'rsa' | 'ec' | 'aes';
  label?: string;
  /** CommonObjectFlags; OpenSC writes 0x03 (private, modifiable). */
  objectFlags: number;
  /** 01 = user PIN. */
  authId?: Uint8Array;
  /** PKCS#15 iD (not the key reference). */
  id: Uint8Array;
  usage: number;
  /** Only when present in the encoding (DER omits the default TRUE). */
  native?: boolean;
  /** KeyAccessFlags; undefined = absent. */
  access?: number;
  /** Key reference (the low byte of `CCxx`). */
  keyReference?: number;
  /** DER Name, subClassAttributes [0] (RSA/EC only). */
  subjectName?: Uint8Array;
  /** RSA modulusLength, EC fieldSize, AES keyLen (bits). */
  bits: number;
}

const KIND_TAG = { rsa: 0x30, ec: 0xa0, aes: 0xa8 } as const;

/** Path with an empty efid, `30 02 04 00` (the key itself lives in `CCxx`). */
const EMPTY_PATH = tlv(TAG.SEQUENCE, tlv(TAG.OCTET_STRING));

/**
 * Encodes a key description (spec §6.1–6.3).
 *
 * RSA/EC: `30|A0 { CommonObjectAttributes, 30 { 04 iD, 03 usage, [01 native], [03 access],
 * [02 keyReference] }, [A0 { 30 { Name } }], A1 { 30 { 30 { 04 00 }, 02 bits } } }` — OpenSC 0.23.
 * AES: `A8 { CommonObjectAttributes, CommonKeyAttributes, A0 { 30 { 02 bits } }, A1 { 30 { 30 { 04 00 } } } }`.
 * Optional fields are written exactly when defined (`access: 0` writes `03 01 00`).
 */
export function encodeKeyDescription(d: KeyDescription): Uint8Array {
  if (d === null || typeof d !== 'object') invalid('key description must be an object');
  const tag = KIND_TAG[d.kind];
  if (tag === undefined) invalid(`key description kind must be rsa, ec or aes, got ${String(d.kind)}`);
  const id = requireBytes(d.id, 'id', { nonEmpty: true });
  if (!Number.isInteger(d.bits) || d.bits <= 0 || d.bits > 0xffff) {
    invalid(`bits must be a positive key size, got ${String(d.bits)}`);
  }
  const cka: Uint8Array[] = [tlv(TAG.OCTET_STRING, id), encodeBitField(d.usage, 'usage')];
  if (d.native !== undefined) cka.push(encodeBoolean(d.native));
  if (d.access !== undefined) cka.push(encodeBitField(d.access, 'access'));
  if (d.keyReference !== undefined) {
    if (!Number.isInteger(d.keyReference) || d.keyReference < 0 || d.keyReference > 0xffff) {
      invalid(`keyReference must be an integer 0..65535, got ${String(d.keyReference)}`);
    }
    cka.push(encodeInteger(d.keyReference, 'keyReference'));
  }
  const parts = [encodeCommonObjectAttributes(d), tlv(TAG.SEQUENCE, ...cka)];
  if (d.kind === 'aes') {
    if (d.subjectName !== undefined) invalid('an AES key description has no subjectName');
    parts.push(tlv(0xa0, tlv(TAG.SEQUENCE, encodeInteger(d.bits, 'bits'))));
    // pico writes this typeAttributes (GenericSecretKeyAttributes.value = empty path); OpenSC's
    // SKDF decoder wants a typeAttributes, sc-hsm-embedded ignores it (spec §6.3).
    parts.push(tlv(0xa1, tlv(TAG.SEQUENCE, EMPTY_PATH)));
  } else {
    if (d.subjectName !== undefined) {
      requireSingleTlv(d.subjectName, TAG.SEQUENCE, 'subjectName (DER Name)');
      parts.push(tlv(0xa0, tlv(TAG.SEQUENCE, d.subjectName)));
    }
    parts.push(tlv(0xa1, tlv(TAG.SEQUENCE, EMPTY_PATH, encodeInteger(d.bits, 'bits'))));
  }
  return tlv(tag, ...parts);
}

/**
 * Decodes a key description (spec §6.1–6.3). Tolerant of OpenSC, sc-hsm-embedded, scsh and
 * pico variants: any bit-string length, absent flags/authId/keyReference, AES key length in
 * `A0 { 30 { 02 n } }` or `A0 { 02 n }`, extra typeAttributes. EC fieldSize 528 reads as 521
 * (as OpenSC does for P-521). Bytes after the first TLV are ignored.
 */
export function decodeKeyDescription(der: Uint8Array): KeyDescription {
  const what = 'key description';
  const top = readFirstAny(der, what);
  const kind = top.tag === 0x30 ? 'rsa' : top.tag === 0xa0 ? 'ec' : top.tag === 0xa8 ? 'aes' : undefined;
  if (!kind) malformed(`${what}: tag ${hexTag(top.tag)} is not RSA (30), EC (A0) or AES (A8)`);
  const children = childrenOf(top, what);
  const [coaTlv, ckaTlv] = children;
  if (!coaTlv || !ckaTlv) malformed(`${what}: common object and key attributes missing`);
  const coa = decodeCommonObjectAttributes(coaTlv, what);
  if (ckaTlv.tag !== TAG.SEQUENCE) malformed(`${what}: CommonKeyAttributes is not a SEQUENCE`);

  let id: Uint8Array | undefined;
  let usage = 0;
  let bitStrings = 0;
  let native: boolean | undefined;
  let access: number | undefined;
  let keyReference: number | undefined;
  for (const c of childrenOf(ckaTlv, `${what} CommonKeyAttributes`)) {
    if (c.tag === TAG.OCTET_STRING && id === undefined) id = c.value.slice();
    else if (c.tag === TAG.BIT_STRING) {
      if (bitStrings === 0) usage = decodeBitField(c.value, `${what} usage`);
      else if (bitStrings === 1) access = decodeBitField(c.value, `${what} access flags`);
      bitStrings++;
    } else if (c.tag === TAG.BOOLEAN) native = decodeBoolean(c.value, `${what} native`);
    else if (c.tag === TAG.INTEGER) keyReference = decodeSmallInteger(c.value, `${what} keyReference`);
  }
  if (!id) malformed(`${what}: iD missing`);

  let bits = 0;
  let subjectName: Uint8Array | undefined;
  for (const c of children.slice(2)) {
    if (c.tag === 0xa0) {
      if (kind === 'aes') bits = aesKeyLength(c, what) ?? bits;
      else subjectName = subjectNameOf(c, what);
    } else if (c.tag === 0xa1 && kind !== 'aes') {
      bits = typeAttributeSize(c, what) ?? bits;
    }
  }
  if (kind === 'ec' && bits === 528) bits = 521;

  const out: KeyDescription = { kind, objectFlags: coa.objectFlags, id, usage, bits };
  if (coa.label !== undefined) out.label = coa.label;
  if (coa.authId !== undefined) out.authId = coa.authId;
  if (native !== undefined) out.native = native;
  if (access !== undefined) out.access = access;
  if (keyReference !== undefined) out.keyReference = keyReference;
  if (subjectName !== undefined) out.subjectName = subjectName;
  return out;
}

function readFirstAny(der: Uint8Array, what: string): Tlv {
  if (!(der instanceof Uint8Array)) malformed(`${what}: input is not a byte array`);
  if (der.length === 0) malformed(`${what}: no data`);
  return readTlv(der, 0);
}

/** `A0 { 30 { 02 n } }` (sc-hsm-embedded) or `A0 { 02 n }` (older versions). */
function aesKeyLength(a0: Tlv, what: string): number | undefined {
  for (const c of childrenOf(a0, `${what} secret key attributes`)) {
    if (c.tag === TAG.INTEGER) return decodeSmallInteger(c.value, `${what} keyLen`);
    if (c.tag === TAG.SEQUENCE) {
      for (const cc of childrenOf(c, `${what} secret key attributes`)) {
        if (cc.tag === TAG.INTEGER) return decodeSmallInteger(cc.value, `${what} keyLen`);
      }
    }
  }
  return undefined;
}

/** `A0 { 30 { Name } }` → the DER Name (a SEQUENCE). */
function subjectNameOf(a0: Tlv, what: string): Uint8Array | undefined {
  const seq = childrenOf(a0, `${what} subClassAttributes`).find((c) => c.tag === TAG.SEQUENCE);
  if (!seq) return undefined;
  const name = childrenOf(seq, `${what} subClassAttributes`).find((c) => c.tag === TAG.SEQUENCE);
  if (!name) return undefined;
  return rawOf(seq.value, name);
}

/** The complete TLV bytes of `t`, which was read from `within`. */
function rawOf(within: Uint8Array, t: Tlv): Uint8Array {
  return within.slice(t.start, t.end);
}

/** `A1 { 30 { 30 {path}, 02 size } }` → size (modulusLength / fieldSize). */
function typeAttributeSize(a1: Tlv, what: string): number | undefined {
  for (const c of childrenOf(a1, `${what} typeAttributes`)) {
    if (c.tag === TAG.INTEGER) return decodeSmallInteger(c.value, `${what} key size`);
    if (c.tag === TAG.SEQUENCE) {
      for (const cc of childrenOf(c, `${what} typeAttributes`)) {
        if (cc.tag === TAG.INTEGER) return decodeSmallInteger(cc.value, `${what} key size`);
      }
    }
  }
  return undefined;
}

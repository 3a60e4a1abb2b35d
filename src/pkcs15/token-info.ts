/**
 * EF.TokenInfo `2F03` (spec §6.6): `30 { 02 version, [04 serialNumber], [0C manufacturerID],
 * [80 label], 03 tokenflags, … }`. OpenSC's sc-hsm-tool writes version, label and
 * prnGeneration only (TRACE 06: `30 15 02 01 00 80 0C "MTG-CARA-HSM" 03 02 05 20`).
 */
import { readTlv, tlv } from '../util/tlv.js';
import {
  childrenOf,
  decodeBitField,
  decodeSmallInteger,
  decodeUtf8,
  encodeBitField,
  encodeInteger,
  encodeUtf8,
  hexTag,
  invalid,
  malformed,
  requireBytes,
  TAG,
} from './der.js';

/** Contents of EF.TokenInfo (spec §6.6). */
export interface TokenInfo {
  version: number;
  serialNumber?: Uint8Array;
  manufacturer?: string;
  label?: string;
  /** TokenFlags (see TOKEN_FLAGS); OpenSC writes PRN_GENERATION (0x04). */
  flags: number;
}

/** Encodes EF.TokenInfo (spec §6.6) in OpenSC's field order; absent fields are omitted. */
export function encodeTokenInfo(t: TokenInfo): Uint8Array {
  if (t === null || typeof t !== 'object') invalid('token info must be an object');
  const parts: Uint8Array[] = [encodeInteger(t.version, 'version')];
  if (t.serialNumber !== undefined)
    parts.push(tlv(TAG.OCTET_STRING, requireBytes(t.serialNumber, 'serialNumber')));
  if (t.manufacturer !== undefined) parts.push(encodeUtf8(TAG.UTF8_STRING, t.manufacturer, 'manufacturer'));
  if (t.label !== undefined) parts.push(encodeUtf8(0x80, t.label, 'label'));
  parts.push(encodeBitField(t.flags, 'flags'));
  return tlv(TAG.SEQUENCE, ...parts);
}

/**
 * Decodes EF.TokenInfo (spec §6.6): OpenSC's short form and pico's richer one (serial `04`,
 * manufacturer `0C`). Missing flags read as 0; bytes after the first TLV are ignored.
 */
export function decodeTokenInfo(der: Uint8Array): TokenInfo {
  const what = 'TokenInfo';
  if (!(der instanceof Uint8Array)) malformed(`${what}: input is not a byte array`);
  if (der.length === 0) malformed(`${what}: no data`);
  const top = readTlv(der, 0);
  if (top.tag !== TAG.SEQUENCE) malformed(`${what}: expected tag 30, found ${hexTag(top.tag)}`);
  const children = childrenOf(top, what);
  const v = children[0];
  if (!v || v.tag !== TAG.INTEGER) malformed(`${what}: version missing`);
  const out: TokenInfo = { version: decodeSmallInteger(v.value, `${what} version`), flags: 0 };
  let flagsSeen = false;
  for (const c of children.slice(1)) {
    if (c.tag === TAG.OCTET_STRING && out.serialNumber === undefined) out.serialNumber = c.value.slice();
    else if (c.tag === TAG.UTF8_STRING && out.manufacturer === undefined)
      out.manufacturer = decodeUtf8(c.value);
    else if (c.tag === 0x80 && out.label === undefined) out.label = decodeUtf8(c.value);
    else if (c.tag === TAG.BIT_STRING && !flagsSeen) {
      out.flags = decodeBitField(c.value, `${what} flags`);
      flagsSeen = true;
    }
  }
  return out;
}

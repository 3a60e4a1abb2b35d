/**
 * PKCS#15 CommonObjectAttributes, shared by every description (spec §6.1–6.5):
 * `30 { [0C label], [03 flags], [04 authId] }`, each field omitted when empty or 0 as OpenSC
 * 0.23 does (`asn1_encode_p15_object`).
 */
import type { Tlv } from '../util/tlv.js';
import { tlv } from '../util/tlv.js';
import {
  childrenOf,
  decodeBitField,
  decodeUtf8,
  encodeBitField,
  encodeUtf8,
  invalid,
  malformed,
  requireBytes,
  TAG,
} from './der.js';

export interface CommonObjectAttributes {
  label?: string;
  objectFlags: number;
  authId?: Uint8Array;
}

export function encodeCommonObjectAttributes(a: CommonObjectAttributes): Uint8Array {
  const parts: Uint8Array[] = [];
  if (a.label !== undefined && a.label !== '') parts.push(encodeUtf8(TAG.UTF8_STRING, a.label, 'label'));
  if (a.objectFlags === undefined) invalid('objectFlags is required (0 for none)');
  if (a.objectFlags !== 0) parts.push(encodeBitField(a.objectFlags, 'objectFlags'));
  if (a.authId !== undefined) {
    const id = requireBytes(a.authId, 'authId');
    if (id.length > 0) parts.push(tlv(TAG.OCTET_STRING, id));
  }
  return tlv(TAG.SEQUENCE, ...parts);
}

/** Tolerant: every field optional, unknown fields (userConsent, accessControlRules) skipped. */
export function decodeCommonObjectAttributes(t: Tlv, what: string): CommonObjectAttributes {
  if (t.tag !== TAG.SEQUENCE) malformed(`${what}: CommonObjectAttributes is not a SEQUENCE`);
  const out: CommonObjectAttributes = { objectFlags: 0 };
  for (const c of childrenOf(t, `${what} CommonObjectAttributes`)) {
    if (c.tag === TAG.UTF8_STRING || c.tag === TAG.PRINTABLE_STRING || c.tag === TAG.IA5_STRING) {
      if (out.label === undefined) out.label = decodeUtf8(c.value);
    } else if (c.tag === TAG.BIT_STRING) {
      out.objectFlags = decodeBitField(c.value, `${what} object flags`);
    } else if (c.tag === TAG.OCTET_STRING) {
      out.authId = c.value.slice();
    }
  }
  return out;
}

/** Copies the common attributes into a result object, leaving absent ones out. */
export function assignCommon<T extends CommonObjectAttributes>(target: T, c: CommonObjectAttributes): T {
  if (c.label !== undefined) target.label = c.label;
  target.objectFlags = c.objectFlags;
  if (c.authId !== undefined) target.authId = c.authId;
  return target;
}

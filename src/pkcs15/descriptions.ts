/**
 * Certificate descriptions (CD, `C8xx`, spec §6.4) and data object descriptions (DCOD, `C9xx`,
 * spec §6.5), byte-exact with what OpenSC 0.23 writes (TRACE 25, 26, 28).
 */

import type { Tlv } from '../util/tlv.js';
import { readTlv, tlv } from '../util/tlv.js';
import { decodeCommonObjectAttributes, encodeCommonObjectAttributes } from './common.js';
import {
  childrenOf,
  decodeBoolean,
  decodeOidContent,
  decodeUtf8,
  encodeBoolean,
  encodeOidContent,
  encodeUtf8,
  hexTag,
  invalid,
  malformed,
  requireBytes,
  TAG,
} from './der.js';

/** A CD entry in `C8xx` describing a certificate in `CAxx` (spec §6.4). */
export interface CertificateDescription {
  label?: string;
  objectFlags: number;
  authId?: Uint8Array;
  id: Uint8Array;
  /** Only when present in the encoding; the encoder writes it only when true (DEFAULT FALSE). */
  authority?: boolean;
  /** FID of the certificate file, 2 bytes (e.g. CA 00). */
  path: Uint8Array;
}

/** A DCOD entry in `C9xx` describing a data object in `CFxx` / `CDxx` (spec §6.5). */
export interface DataObjectDescription {
  label?: string;
  objectFlags: number;
  authId?: Uint8Array;
  applicationName?: string;
  /** Dotted OID, e.g. `1.3.6.1.4.1.24991.3.1`. */
  applicationOid?: string;
  path: Uint8Array;
}

function topOf(der: Uint8Array, tags: number[], what: string): Tlv {
  if (!(der instanceof Uint8Array)) malformed(`${what}: input is not a byte array`);
  if (der.length === 0) malformed(`${what}: no data`);
  const t = readTlv(der, 0);
  if (!tags.includes(t.tag)) malformed(`${what}: unexpected tag ${hexTag(t.tag)}`);
  return t;
}

function encodePath(path: Uint8Array): Uint8Array {
  requireBytes(path, 'path', { nonEmpty: true });
  return tlv(TAG.SEQUENCE, tlv(TAG.OCTET_STRING, path));
}

/** The efidOrPath OCTET STRING of the first Path found at most `depth` SEQUENCEs down. */
function findPath(t: Tlv, depth: number, what: string): Uint8Array | undefined {
  for (const c of childrenOf(t, what)) {
    if (c.tag === TAG.OCTET_STRING) return c.value.slice();
    if (c.tag === TAG.SEQUENCE && depth > 0) {
      const p = findPath(c, depth - 1, what);
      if (p) return p;
    }
  }
  return undefined;
}

/**
 * Encodes a CD (spec §6.4): `30 { CommonObjectAttributes, 30 { 04 iD, [01 FF authority] },
 * A1 { 30 { 30 { 04 path } } } }`.
 */
export function encodeCertificateDescription(d: CertificateDescription): Uint8Array {
  if (d === null || typeof d !== 'object') invalid('certificate description must be an object');
  const id = requireBytes(d.id, 'id', { nonEmpty: true });
  const cca: Uint8Array[] = [tlv(TAG.OCTET_STRING, id)];
  if (d.authority === true) cca.push(encodeBoolean(true));
  return tlv(
    TAG.SEQUENCE,
    encodeCommonObjectAttributes(d),
    tlv(TAG.SEQUENCE, ...cca),
    tlv(0xa1, tlv(TAG.SEQUENCE, encodePath(d.path))),
  );
}

/**
 * Decodes a CD (spec §6.4). Accepts the X.509 form `30` and sc-hsm-embedded's CVC form `A5`.
 * Bytes after the first TLV are ignored.
 */
export function decodeCertificateDescription(der: Uint8Array): CertificateDescription {
  const what = 'certificate description';
  const top = topOf(der, [0x30, 0xa5], what);
  const children = childrenOf(top, what);
  const [coaTlv, ccaTlv] = children;
  if (!coaTlv || !ccaTlv) malformed(`${what}: common object and certificate attributes missing`);
  const coa = decodeCommonObjectAttributes(coaTlv, what);
  if (ccaTlv.tag !== TAG.SEQUENCE) malformed(`${what}: CommonCertificateAttributes is not a SEQUENCE`);
  let id: Uint8Array | undefined;
  let authority: boolean | undefined;
  for (const c of childrenOf(ccaTlv, `${what} CommonCertificateAttributes`)) {
    if (c.tag === TAG.OCTET_STRING && id === undefined) id = c.value.slice();
    else if (c.tag === TAG.BOOLEAN) authority = decodeBoolean(c.value, `${what} authority`);
  }
  if (!id) malformed(`${what}: iD missing`);
  const a1 = children.slice(2).find((c) => c.tag === 0xa1);
  if (!a1) malformed(`${what}: typeAttributes [1] missing`);
  const path = findPath(a1, 2, `${what} typeAttributes`);
  if (!path) malformed(`${what}: certificate path missing`);
  const out: CertificateDescription = { objectFlags: coa.objectFlags, id, path };
  if (coa.label !== undefined) out.label = coa.label;
  if (coa.authId !== undefined) out.authId = coa.authId;
  if (authority !== undefined) out.authority = authority;
  return out;
}

/**
 * Encodes a DCOD (spec §6.5): `30 { CommonObjectAttributes, 30 { [0C applicationName],
 * [06 applicationOID] }, A1 { 30 { 04 path } } }`.
 */
export function encodeDataObjectDescription(d: DataObjectDescription): Uint8Array {
  if (d === null || typeof d !== 'object') invalid('data object description must be an object');
  const cda: Uint8Array[] = [];
  if (d.applicationName !== undefined && d.applicationName !== '') {
    cda.push(encodeUtf8(TAG.UTF8_STRING, d.applicationName, 'applicationName'));
  }
  if (d.applicationOid !== undefined) {
    cda.push(tlv(TAG.OID, encodeOidContent(d.applicationOid, 'applicationOid')));
  }
  return tlv(
    TAG.SEQUENCE,
    encodeCommonObjectAttributes(d),
    tlv(TAG.SEQUENCE, ...cda),
    tlv(0xa1, encodePath(d.path)),
  );
}

/** Decodes a DCOD (spec §6.5), public or private form. Bytes after the first TLV are ignored. */
export function decodeDataObjectDescription(der: Uint8Array): DataObjectDescription {
  const what = 'data object description';
  const top = topOf(der, [0x30], what);
  const children = childrenOf(top, what);
  const coaTlv = children[0];
  if (!coaTlv) malformed(`${what}: common object attributes missing`);
  const coa = decodeCommonObjectAttributes(coaTlv, what);
  let applicationName: string | undefined;
  let applicationOid: string | undefined;
  const cdaTlv = children[1];
  if (cdaTlv && cdaTlv.tag === TAG.SEQUENCE) {
    for (const c of childrenOf(cdaTlv, `${what} CommonDataObjectAttributes`)) {
      if (c.tag === TAG.UTF8_STRING && applicationName === undefined) applicationName = decodeUtf8(c.value);
      else if (c.tag === TAG.OID) applicationOid = decodeOidContent(c.value, `${what} applicationOID`);
    }
  }
  const a1 = children.slice(1).find((c) => c.tag === 0xa1);
  if (!a1) malformed(`${what}: typeAttributes [1] missing`);
  const path = findPath(a1, 1, `${what} typeAttributes`);
  if (!path) malformed(`${what}: data object path missing`);
  const out: DataObjectDescription = { objectFlags: coa.objectFlags, path };
  if (coa.label !== undefined) out.label = coa.label;
  if (coa.authId !== undefined) out.authId = coa.authId;
  if (applicationName !== undefined) out.applicationName = applicationName;
  if (applicationOid !== undefined) out.applicationOid = applicationOid;
  return out;
}

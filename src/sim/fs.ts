/**
 * File system of the virtual card (spec §3.1–3.5, §4): one flat space of 2-byte FIDs whose high
 * byte is a type prefix. Key objects (CCxx) live in `state.keys`, everything else in
 * `state.files`.
 */

import { AID, KEYGEN_TAG } from '../protocol/constants.js';
import { concat, readUintBE, uintBE } from '../util/bytes.js';
import { readTlv, tlv } from '../util/tlv.js';
import { type CardContext, ensureSpace, type Handler, requireUser } from './context.js';
import type { StoredKey } from './state.js';
import { fail, SW } from './sw.js';
import {
  EF_SIZE_TAG,
  ENUMERATED_PREFIXES,
  HAS_EF_DIR,
  KEY_FCP_RESTRICTIONS_TAG,
  KEY_READ_SW,
  KEY_SELECT_SIZE,
  OBJECT_OVERHEAD,
  PROTECTED_OBJECT_SW,
  READ_OFFSET_BEYOND_SW,
  READ_PAST_END_SW,
} from './uncertain.js';

const KEY_PREFIX = 0xcc;
const PROTECTED_DATA_PREFIX = 0xcd;
const EF_DEVICE_CERTS = 0x2f02;
const EF_DIR = 0x2f00;

/** FCP of the applet (spec §1.3): only tag 85 is relied upon by hosts. */
export function appletFcp(options: number, firmware: [number, number]): Uint8Array {
  const prop = Uint8Array.of(options >> 8, options & 0xff, 0x00, firmware[0], firmware[1]);
  return tlv(0x62, tlv(0x82, Uint8Array.of(0x38)), tlv(0x84, AID), tlv(0x85, prop));
}

/** FCP of an EF (spec §3.1): must carry the size. */
export function efFcp(fid: number, size: number): Uint8Array {
  return tlv(
    0x62,
    tlv(EF_SIZE_TAG, uintBE(size, 2)),
    tlv(0x82, Uint8Array.of(0x01)),
    tlv(0x83, uintBE(fid, 2)),
    tlv(0x8a, Uint8Array.of(0x05)),
  );
}

/**
 * FCP of a key object CCxx: an EF FCP of size 0 with the key's restrictions in a proprietary
 * template `A5 { 90 04 uses-left, 91 nn algorithms }` (see KEY_FCP_RESTRICTIONS_TAG in uncertain.ts).
 */
export function keyFcp(fid: number, k: StoredKey): Uint8Array {
  const base = efFcp(fid, KEY_SELECT_SIZE);
  const meta: Uint8Array[] = [];
  if (k.useCounter !== undefined) meta.push(tlv(KEYGEN_TAG.USE_COUNTER, uintBE(k.useCounter, 4)));
  if (k.algorithms) meta.push(tlv(KEYGEN_TAG.ALGORITHMS, k.algorithms));
  // the key domain (tag 92) of a key on a card with key domains: uncertain.ts KEY_FCP_DOMAIN
  if (k.domain !== undefined) meta.push(tlv(0x92, Uint8Array.of(k.domain)));
  if (meta.length === 0) return base;
  return tlv(0x62, readTlv(base, 0).value, tlv(KEY_FCP_RESTRICTIONS_TAG, concat(...meta)));
}

function exists(ctx: CardContext, fid: number): boolean {
  if (fid >> 8 === KEY_PREFIX) return ctx.state.keys.has(fid & 0xff);
  if (fid === EF_DIR && !HAS_EF_DIR) return false;
  return ctx.state.files.has(fid);
}

/** Resolves P1P2 of the odd-INS commands: 0000 = current EF (spec §3.2). */
function targetFid(ctx: CardContext, p1: number, p2: number): number {
  const fid = (p1 << 8) | p2;
  if (fid !== 0) return fid;
  if (ctx.vol.currentEf === undefined) fail(SW.NOT_ALLOWED, 'no current EF');
  return ctx.vol.currentEf;
}

/** SELECT of an EF by FID (P1=00) or by path from the MF (P1=08) — spec §3.1. AID selection is in card.ts. */
export const selectEf: Handler = (ctx, cmd) => {
  let fid: number;
  if (cmd.p1 === 0x00 || cmd.p1 === 0x02) {
    if (cmd.data.length !== 2) fail(SW.WRONG_DATA, 'FID must be 2 bytes');
    fid = readUintBE(cmd.data);
  } else if (cmd.p1 === 0x08 || cmd.p1 === 0x09) {
    let path = cmd.data;
    if (path.length >= 2 && path[0] === 0x3f && path[1] === 0x00) path = path.subarray(2);
    if (path.length === 0) fid = 0x3f00;
    else if (path.length === 2) fid = readUintBE(path);
    else fail(SW.NOT_FOUND, 'no such path in a flat file system');
  } else {
    fail(SW.WRONG_P1P2);
  }
  const wantFcp = (cmd.p2 & 0x0c) !== 0x0c;
  if (fid === 0x3f00) {
    ctx.vol.currentEf = undefined;
    return { data: wantFcp ? appletFcp(ctx.state.options, ctx.state.firmware) : new Uint8Array(0) };
  }
  if (!exists(ctx, fid)) fail(SW.NOT_FOUND);
  ctx.vol.currentEf = fid;
  if (fid >> 8 === KEY_PREFIX) {
    return { data: wantFcp ? keyFcp(fid, ctx.state.keys.get(fid & 0xff)!) : new Uint8Array(0) };
  }
  return { data: wantFcp ? efFcp(fid, ctx.state.files.get(fid)!.length) : new Uint8Array(0) };
};

/** Reads the offset TLV `54 len off` (1..4 bytes) at the start of the data; absent = 0. */
function parseOffset(data: Uint8Array): { offset: number; rest: number } {
  if (data.length === 0) return { offset: 0, rest: 0 };
  let t: ReturnType<typeof readTlv>;
  try {
    t = readTlv(data, 0);
  } catch {
    fail(SW.WRONG_DATA, 'malformed offset');
  }
  if (t.tag !== 0x54) return { offset: 0, rest: 0 };
  if (t.value.length < 1 || t.value.length > 4) fail(SW.WRONG_DATA, 'offset must be 1..4 bytes');
  return { offset: readUintBE(t.value), rest: t.end };
}

/** READ BINARY, odd INS `00 B1` (spec §3.2). */
export const readBinary: Handler = (ctx, cmd) => {
  const fid = targetFid(ctx, cmd.p1, cmd.p2);
  if (fid >> 8 === KEY_PREFIX) {
    if (!exists(ctx, fid)) fail(SW.NOT_FOUND);
    fail(KEY_READ_SW, 'key objects are never readable');
  }
  const file = exists(ctx, fid) ? ctx.state.files.get(fid) : undefined;
  if (!file) fail(SW.NOT_FOUND);
  if (fid >> 8 === PROTECTED_DATA_PREFIX) requireUser(ctx);
  ctx.vol.currentEf = fid;
  const { offset } = parseOffset(cmd.data);
  if (offset > file.length) fail(READ_OFFSET_BEYOND_SW, 'offset beyond the end of the EF');
  const ne = cmd.ne ?? 65536;
  const out = file.slice(offset, offset + ne);
  return { data: out, sw: out.length < ne ? READ_PAST_END_SW : SW.OK };
};

/** Extracts the `53` data; an empty `53` followed by bytes takes the rest of the APDU (ULTRA, spec §3.3). */
function parseData(data: Uint8Array, from: number): Uint8Array {
  if (from >= data.length) return new Uint8Array(0);
  let t: ReturnType<typeof readTlv>;
  try {
    t = readTlv(data, from);
  } catch {
    fail(SW.WRONG_DATA, 'malformed data TLV');
  }
  if (t.tag !== 0x53) fail(SW.WRONG_DATA, 'data TLV 53 expected');
  if (t.value.length === 0 && t.end < data.length) return data.subarray(t.end);
  if (t.end !== data.length) fail(SW.WRONG_DATA, 'trailing bytes after the data TLV');
  return t.value;
}

function writable(fid: number): boolean {
  return fid >> 8 !== KEY_PREFIX && fid !== EF_DEVICE_CERTS && fid !== 0x3f00 && fid !== 0;
}

/** UPDATE BINARY, odd INS `00 D7`; also creates EFs (spec §3.3). */
export const updateBinary: Handler = (ctx, cmd) => {
  const fid = targetFid(ctx, cmd.p1, cmd.p2);
  requireUser(ctx);
  if (!writable(fid)) fail(PROTECTED_OBJECT_SW, 'object cannot be written');
  const { offset, rest } = parseOffset(cmd.data);
  const data = parseData(cmd.data, rest);
  const old = ctx.state.files.get(fid);
  if (offset > (old?.length ?? 0)) fail(SW.WRONG_PARAMS, 'offset beyond the end of the EF');
  const next = offset === 0 ? data.slice() : concat(old!.subarray(0, offset), data);
  if (next.length > 0xffff) fail(SW.WRONG_LENGTH, 'EF larger than 65535 bytes');
  ensureSpace(ctx.state, next.length + (old ? 0 : OBJECT_OVERHEAD), old?.length ?? 0);
  ctx.state.files.set(fid, next);
  ctx.vol.currentEf = fid;
  ctx.changed();
  return {};
};

/** DELETE FILE `00 E4 02 00 02 FID` — EFs and keys (spec §3.4). */
export const deleteFile: Handler = (ctx, cmd) => {
  if (cmd.p1 !== 0x02 || cmd.p2 !== 0x00) fail(SW.WRONG_P1P2);
  if (cmd.data.length !== 2) fail(SW.WRONG_DATA, 'FID must be 2 bytes');
  requireUser(ctx);
  const fid = readUintBE(cmd.data);
  if (!exists(ctx, fid)) fail(SW.NOT_FOUND);
  if (fid === 0xcc00 || fid === EF_DEVICE_CERTS)
    fail(PROTECTED_OBJECT_SW, 'device identity cannot be deleted');
  if (fid >> 8 === KEY_PREFIX) ctx.state.keys.delete(fid & 0xff);
  else ctx.state.files.delete(fid);
  if (ctx.vol.currentEf === fid) ctx.vol.currentEf = undefined;
  ctx.changed();
  return {};
};

/** ENUMERATE OBJECTS `80 58 00 00` (spec §3.5): CC00, every key, every EF with the listed prefixes. */
export const enumerateObjects: Handler = (ctx, cmd) => {
  if (cmd.p1 !== 0 || cmd.p2 !== 0) fail(SW.WRONG_P1P2);
  const fids: number[] = [];
  for (const id of [...ctx.state.keys.keys()].sort((a, b) => a - b)) fids.push((KEY_PREFIX << 8) | id);
  const prefixes: readonly number[] = ENUMERATED_PREFIXES;
  for (const fid of [...ctx.state.files.keys()].sort((a, b) => a - b)) {
    if (prefixes.includes(fid >> 8)) fids.push(fid);
  }
  return { data: concat(...fids.map((f) => uintBE(f, 2))) };
};

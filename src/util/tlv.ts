/**
 * BER-TLV as used by ISO 7816-4 and the SmartCard-HSM (spec preamble): tags of one or more bytes
 * (`67`, `5F29`, `7F21`), definite lengths `< 80`, `81 xx`, `82 xx xx`, `83 xx xx xx`.
 * Tags are handled as numbers made of their bytes (`0x7F21`). Pure code; every decoding fault is an
 * `ScHsmError('MALFORMED_DATA')` and a length field is never trusted beyond the bytes at hand.
 */
import { ScHsmError } from '../errors.js';
import { concat } from './bytes.js';

export interface Tlv {
  tag: number;
  /** The value bytes (a view into the input). */
  value: Uint8Array;
  /** Offset of the tag's first byte in the input. */
  start: number;
  /** Offset just past the value. */
  end: number;
  /** True when bit 6 of the first tag byte is set (the value is itself TLVs). */
  constructed: boolean;
}

function fail(what: string): never {
  throw new ScHsmError('MALFORMED_DATA', `malformed TLV: ${what}`);
}

/** Reads one TLV at `offset`. `limit` (default: end of input) bounds the value. */
export function readTlv(bytes: Uint8Array, offset = 0, limit = bytes.length): Tlv {
  let p = offset;
  if (p >= limit) fail('no tag');
  const first = bytes[p++]!;
  let tag = first;
  if ((first & 0x1f) === 0x1f) {
    let n = 0;
    for (;;) {
      if (p >= limit) fail('truncated tag');
      const b = bytes[p++]!;
      tag = tag * 256 + b;
      if (++n > 3) fail('tag longer than 4 bytes');
      if ((b & 0x80) === 0) break;
    }
  }
  if (p >= limit) fail(`no length after tag ${tag.toString(16)}`);
  let len = bytes[p++]!;
  if (len === 0x80) fail('indefinite length');
  if (len > 0x80) {
    const n = len & 0x7f;
    if (n > 3) fail('length field longer than 3 bytes');
    if (p + n > limit) fail('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + bytes[p++]!;
  }
  if (p + len > limit) fail(`value of tag ${tag.toString(16)} runs past the end (${len} bytes announced)`);
  return {
    tag,
    value: bytes.subarray(p, p + len),
    start: offset,
    end: p + len,
    constructed: (first & 0x20) !== 0,
  };
}

/** Reads consecutive TLVs filling `bytes` completely. */
export function readAll(bytes: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let p = 0;
  while (p < bytes.length) {
    const t = readTlv(bytes, p);
    out.push(t);
    p = t.end;
  }
  return out;
}

/** The first TLV with this tag among the children of `bytes`, or undefined. */
export function findTag(bytes: Uint8Array, tag: number): Tlv | undefined {
  return readAll(bytes).find((t) => t.tag === tag);
}

/** Like findTag but throws MALFORMED_DATA naming `what` when absent. */
export function requireTag(bytes: Uint8Array, tag: number, what: string): Tlv {
  const t = findTag(bytes, tag);
  if (!t) fail(`${what} (tag ${tag.toString(16).toUpperCase()}) missing`);
  return t;
}

/** Length of the first complete TLV at the start of `bytes` (0 if none can be read). */
export function firstTlvLength(bytes: Uint8Array): number {
  try {
    return readTlv(bytes, 0).end;
  } catch {
    return 0;
  }
}

export function encodeLength(len: number): Uint8Array {
  if (len < 0x80) return Uint8Array.of(len);
  if (len < 0x100) return Uint8Array.of(0x81, len);
  if (len < 0x10000) return Uint8Array.of(0x82, len >> 8, len & 0xff);
  if (len < 0x1000000) return Uint8Array.of(0x83, len >> 16, (len >> 8) & 0xff, len & 0xff);
  throw new RangeError('TLV value too long');
}

export function encodeTag(tag: number): Uint8Array {
  const out: number[] = [];
  let t = tag;
  do {
    out.unshift(t & 0xff);
    t = Math.floor(t / 256);
  } while (t > 0);
  return Uint8Array.from(out);
}

/** Encodes one TLV; `value` may be several parts that are concatenated. */
export function tlv(tag: number, ...value: Uint8Array[]): Uint8Array {
  const v = value.length === 1 ? value[0]! : concat(...value);
  return concat(encodeTag(tag), encodeLength(v.length), v);
}

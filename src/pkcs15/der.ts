/**
 * Small DER building blocks shared by the PKCS#15 and CVC codecs (internal to src/pkcs15/).
 * Encoders follow OpenSC's `asn1.c` (spec §6, general rules); decoders are tolerant and turn
 * every fault into an `ScHsmError('MALFORMED_DATA')`.
 */
import { ScHsmError } from '../errors.js';
import { stripLeadingZeros } from '../util/bytes.js';
import { readAll, readTlv, type Tlv, tlv } from '../util/tlv.js';

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Throws MALFORMED_DATA (undecodable input). */
export function malformed(message: string): never {
  throw new ScHsmError('MALFORMED_DATA', message);
}

/** Throws INVALID_ARGUMENT (bad encoder input). */
export function invalid(message: string): never {
  throw new ScHsmError('INVALID_ARGUMENT', message);
}

/** Reads the first TLV of `bytes`, requiring `tag`; bytes after it are not looked at. */
export function readFirst(bytes: Uint8Array, tag: number, what: string): Tlv {
  if (!(bytes instanceof Uint8Array)) malformed(`${what}: input is not a byte array`);
  if (bytes.length === 0) malformed(`${what}: no data`);
  const t = readTlv(bytes, 0);
  if (t.tag !== tag) {
    malformed(`${what}: expected tag ${hexTag(tag)}, found ${hexTag(t.tag)}`);
  }
  return t;
}

/** The children of a constructed TLV. */
export function childrenOf(t: Tlv, what: string): Tlv[] {
  if (!t.constructed) malformed(`${what}: tag ${hexTag(t.tag)} is not constructed`);
  return readAll(t.value);
}

export function hexTag(tag: number): string {
  const h = tag.toString(16).toUpperCase();
  return h.length % 2 ? `0${h}` : h;
}

// ---------------------------------------------------------------------------------------------
// BIT STRING as flag word (OpenSC encode_bit_field / decode_bit_field)

/**
 * Flag word → BIT STRING TLV: bit i of the integer is bit i of the string counted from the MSB
 * of the first content byte; only as many bits as up to the highest set bit (OpenSC 0.23
 * `encode_bit_field`), so 0 encodes as `03 01 00`.
 */
export function encodeBitField(value: number, what: string): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    invalid(`${what} must be an integer between 0 and 0xFFFFFFFF, got ${String(value)}`);
  }
  let bits = 0;
  for (let i = 0; i < 32; i++) if (Math.floor(value / 2 ** i) % 2 === 1) bits = i + 1;
  const octets = Math.ceil(bits / 8);
  const out = new Uint8Array(1 + octets);
  out[0] = octets * 8 - bits;
  for (let i = 0; i < bits; i++) {
    if (Math.floor(value / 2 ** i) % 2 === 1) out[1 + (i >> 3)]! |= 0x80 >> (i & 7);
  }
  return tlv(TAG.BIT_STRING, out);
}

/**
 * BIT STRING content → flag word. Any length is accepted (spec §6: CardContact hosts write
 * `03 03 06 xx yy`, scsh `03 03 07 20 80`); unused bits are ignored; bits past 31 are dropped.
 */
export function decodeBitField(content: Uint8Array, what: string): number {
  if (content.length === 0) malformed(`${what}: empty BIT STRING`);
  const unused = content[0]!;
  if (unused > 7) malformed(`${what}: BIT STRING with ${unused} unused bits`);
  if (content.length === 1 && unused !== 0) malformed(`${what}: empty BIT STRING with unused bits`);
  const bits = (content.length - 1) * 8 - unused;
  let value = 0;
  for (let i = 0; i < Math.min(bits, 32); i++) {
    if (content[1 + (i >> 3)]! & (0x80 >> (i & 7))) value += 2 ** i;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// INTEGER

/** Minimal DER INTEGER TLV of a non-negative safe integer. */
export function encodeInteger(value: number, what: string): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) invalid(`${what} must be a non-negative integer`);
  const bytes: number[] = [];
  let v = value;
  do {
    bytes.unshift(v % 256);
    v = Math.floor(v / 256);
  } while (v > 0);
  if (bytes[0]! & 0x80) bytes.unshift(0);
  return tlv(TAG.INTEGER, Uint8Array.from(bytes));
}

/** Minimal DER INTEGER TLV of an unsigned big-endian magnitude (leading zeros removed, `00` added if the MSB is set). */
export function encodeUnsignedInteger(magnitude: Uint8Array): Uint8Array {
  const m = stripLeadingZeros(magnitude.length === 0 ? Uint8Array.of(0) : magnitude);
  return tlv(TAG.INTEGER, m[0]! & 0x80 ? concat2(Uint8Array.of(0), m) : m);
}

function concat2(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** INTEGER content → number, read as unsigned (tolerant of non-minimal forms); at most 6 bytes. */
export function decodeSmallInteger(content: Uint8Array, what: string): number {
  if (content.length === 0) malformed(`${what}: empty INTEGER`);
  const v = stripLeadingZeros(content);
  if (v.length > 6) malformed(`${what}: INTEGER too large (${content.length} bytes)`);
  let n = 0;
  for (const b of v) n = n * 256 + b;
  return n;
}

// ---------------------------------------------------------------------------------------------
// BOOLEAN, strings

export function encodeBoolean(value: boolean): Uint8Array {
  return tlv(TAG.BOOLEAN, Uint8Array.of(value ? 0xff : 0x00));
}

export function decodeBoolean(content: Uint8Array, what: string): boolean {
  if (content.length !== 1) malformed(`${what}: BOOLEAN of ${content.length} bytes`);
  return content[0] !== 0;
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8');

export function encodeUtf8(tag: number, value: string, what: string): Uint8Array {
  if (typeof value !== 'string') invalid(`${what} must be a string`);
  return tlv(tag, utf8Encoder.encode(value));
}

/** UTF8String (or Printable/IA5String) content → string; invalid sequences become U+FFFD. */
export function decodeUtf8(content: Uint8Array): string {
  return utf8Decoder.decode(content);
}

/** ASCII bytes → string (CAR, CHR). */
export function decodeAscii(content: Uint8Array): string {
  let s = '';
  for (const b of content) s += String.fromCharCode(b);
  return s;
}

// ---------------------------------------------------------------------------------------------
// OBJECT IDENTIFIER (dotted ↔ DER content)

export function encodeOidContent(dotted: string, what: string): Uint8Array {
  if (typeof dotted !== 'string' || !/^\d+(\.\d+)+$/.test(dotted)) {
    invalid(`${what} must be a dotted OID like 1.2.840.113549, got ${JSON.stringify(dotted)}`);
  }
  const arcs = dotted.split('.').map((x) => BigInt(x));
  const first = arcs[0]!;
  const second = arcs[1]!;
  if (first > 2n || (first < 2n && second >= 40n)) invalid(`${what}: invalid first arcs in ${dotted}`);
  const out: number[] = [];
  const push = (v: bigint) => {
    const chunk: number[] = [Number(v & 0x7fn)];
    v >>= 7n;
    while (v > 0n) {
      chunk.unshift(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(...chunk);
  };
  push(first * 40n + second);
  for (const a of arcs.slice(2)) push(a);
  return Uint8Array.from(out);
}

export function decodeOidContent(content: Uint8Array, what: string): string {
  if (content.length === 0) malformed(`${what}: empty OBJECT IDENTIFIER`);
  if (content[content.length - 1]! & 0x80) malformed(`${what}: truncated OBJECT IDENTIFIER`);
  const arcs: bigint[] = [];
  let v = 0n;
  for (const b of content) {
    v = (v << 7n) | BigInt(b & 0x7f);
    if ((b & 0x80) === 0) {
      arcs.push(v);
      v = 0n;
    }
  }
  const head = arcs[0]!;
  const first = head < 40n ? 0n : head < 80n ? 1n : 2n;
  return [first, head - first * 40n, ...arcs.slice(1)].map(String).join('.');
}

/** Checks that `bytes` is exactly one well-formed TLV with the given tag (encoder input check). */
export function requireSingleTlv(bytes: Uint8Array, tag: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) invalid(`${what} must be a non-empty byte array`);
  let t: Tlv;
  try {
    t = readTlv(bytes, 0);
  } catch {
    invalid(`${what} is not a well-formed TLV`);
  }
  if (t.tag !== tag) invalid(`${what} must start with tag ${hexTag(tag)}, found ${hexTag(t.tag)}`);
  if (t.end !== bytes.length) invalid(`${what} has ${bytes.length - t.end} bytes after its TLV`);
}

export function requireBytes(value: unknown, what: string, opts: { nonEmpty?: boolean } = {}): Uint8Array {
  if (!(value instanceof Uint8Array)) invalid(`${what} must be a Uint8Array`);
  if (opts.nonEmpty && value.length === 0) invalid(`${what} must not be empty`);
  return value;
}

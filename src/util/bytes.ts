/** Byte helpers shared by every layer. Pure functions, no I/O. */

const HEX = '0123456789abcdef';

/** Lowercase hex, no separators. */
export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += HEX[b >> 4]! + HEX[b & 15]!;
  return s;
}

/** Uppercase hex with a separator between bytes (default: a space), as OpenSC prints it. */
export function toHexSpaced(bytes: Uint8Array, sep = ' '): string {
  return Array.from(bytes, (b) => HEX[b >> 4]!.toUpperCase() + HEX[b & 15]!.toUpperCase()).join(sep);
}

/** Parses hex, ignoring white space and `:` separators. Throws a TypeError on anything else. */
export function fromHex(hex: string): Uint8Array {
  const clean = hex.replace(/[\s:]/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) {
    throw new TypeError('not a hexadecimal string of whole bytes');
  }
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Big-endian unsigned integer of `len` bytes. */
export function uintBE(value: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--) {
    out[i] = value & 0xff;
    value = Math.floor(value / 256);
  }
  return out;
}

export function readUintBE(bytes: Uint8Array): number {
  let v = 0;
  for (const b of bytes) v = v * 256 + b;
  return v;
}

/** Removes leading zero bytes (keeps at least one byte). */
export function stripLeadingZeros(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  return bytes.subarray(i);
}

/** Left-pads with zeros to `len` bytes; throws if the value is longer after stripping leading zeros. */
export function padStart(bytes: Uint8Array, len: number): Uint8Array {
  const v = bytes.length > len ? stripLeadingZeros(bytes) : bytes;
  if (v.length > len) throw new RangeError(`value of ${v.length} bytes does not fit in ${len}`);
  const out = new Uint8Array(len);
  out.set(v, len - v.length);
  return out;
}

export function bigintFromBytes(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${toHex(bytes)}`);
}

export function bigintToBytes(value: bigint, len?: number): Uint8Array {
  let h = value.toString(16);
  if (h.length % 2) h = `0${h}`;
  const b = fromHex(h);
  return len === undefined ? b : padStart(b, len);
}

/** Overwrites a buffer holding a secret. */
export function wipe(bytes: Uint8Array | undefined): void {
  bytes?.fill(0);
}

export function ascii(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/**
 * The bytes as `Uint8Array<ArrayBuffer>`, the `BufferSource` WebCrypto takes (TS 5.9 refuses a
 * `Uint8Array<ArrayBufferLike>`): an array over an ArrayBuffer of its own (a response's data, a
 * hash, a padded block, a slice) is returned as it is, anything else (over a SharedArrayBuffer)
 * is copied.
 */
export function fresh(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return b.buffer instanceof ArrayBuffer ? (b as Uint8Array<ArrayBuffer>) : new Uint8Array(b);
}

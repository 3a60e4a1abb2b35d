/**
 * MD5 specialised for the inner loop of OpenSSL's EVP_BytesToKey (spec §7.1): after the first
 * round, every MD5 input is the previous 16-byte digest, so the message is one 64-byte block whose
 * words 4–15 are constants (padding 0x80, zeros, bit length 128). Digest words feed straight back
 * as message words (both little-endian), so the loop runs on four int32 variables: no bytes, no
 * allocation, fully unrolled rounds (RFC 1321 steps with the constant message words folded into the
 * sine constants, and each step's sum ordered so the previous step's result enters last, which
 * keeps the dependency chain short; round 2's G written as the sum of its two disjoint halves). Verified against node:crypto's md5 in test/dkek-kdf.test.ts.
 */

/**
 * Applies MD5 `count` times to the 16-byte value held in `state` as four little-endian 32-bit
 * words, in place: `state = MD5(MD5(…MD5(state)))`.
 */
export function md5ChainWords(state: Int32Array, count: number): void {
  let x0 = state[0]! | 0;
  let x1 = state[1]! | 0;
  let x2 = state[2]! | 0;
  let x3 = state[3]! | 0;
  for (let i = 0; i < count; i++) {
    let a = 0x67452301;
    let b = -271733879;
    let c = -1732584194;
    let d = 0x10325476;
    let t = 0;
    t = (a + x0 + -680876936 + (d ^ (b & (c ^ d)))) | 0;
    a = (b + ((t << 7) | (t >>> 25))) | 0;
    t = (d + x1 + -389564586 + (c ^ (a & (b ^ c)))) | 0;
    d = (a + ((t << 12) | (t >>> 20))) | 0;
    t = (c + x2 + 606105819 + (b ^ (d & (a ^ b)))) | 0;
    c = (d + ((t << 17) | (t >>> 15))) | 0;
    t = (b + x3 + -1044525330 + (a ^ (c & (d ^ a)))) | 0;
    b = (c + ((t << 22) | (t >>> 10))) | 0;
    t = (a + -176418769 + (d ^ (b & (c ^ d)))) | 0;
    a = (b + ((t << 7) | (t >>> 25))) | 0;
    t = (d + 1200080426 + (c ^ (a & (b ^ c)))) | 0;
    d = (a + ((t << 12) | (t >>> 20))) | 0;
    t = (c + -1473231341 + (b ^ (d & (a ^ b)))) | 0;
    c = (d + ((t << 17) | (t >>> 15))) | 0;
    t = (b + -45705983 + (a ^ (c & (d ^ a)))) | 0;
    b = (c + ((t << 22) | (t >>> 10))) | 0;
    t = (a + 1770035416 + (d ^ (b & (c ^ d)))) | 0;
    a = (b + ((t << 7) | (t >>> 25))) | 0;
    t = (d + -1958414417 + (c ^ (a & (b ^ c)))) | 0;
    d = (a + ((t << 12) | (t >>> 20))) | 0;
    t = (c + -42063 + (b ^ (d & (a ^ b)))) | 0;
    c = (d + ((t << 17) | (t >>> 15))) | 0;
    t = (b + -1990404162 + (a ^ (c & (d ^ a)))) | 0;
    b = (c + ((t << 22) | (t >>> 10))) | 0;
    t = (a + 1804603682 + (d ^ (b & (c ^ d)))) | 0;
    a = (b + ((t << 7) | (t >>> 25))) | 0;
    t = (d + -40341101 + (c ^ (a & (b ^ c)))) | 0;
    d = (a + ((t << 12) | (t >>> 20))) | 0;
    t = (c + -1502002162 + (b ^ (d & (a ^ b)))) | 0;
    c = (d + ((t << 17) | (t >>> 15))) | 0;
    t = (b + 1236535329 + (a ^ (c & (d ^ a)))) | 0;
    b = (c + ((t << 22) | (t >>> 10))) | 0;
    t = (a + x1 + -165796510 + (c & ~d) + (b & d)) | 0;
    a = (b + ((t << 5) | (t >>> 27))) | 0;
    t = (d + -1069501632 + (b & ~c) + (a & c)) | 0;
    d = (a + ((t << 9) | (t >>> 23))) | 0;
    t = (c + 643717713 + (a & ~b) + (d & b)) | 0;
    c = (d + ((t << 14) | (t >>> 18))) | 0;
    t = (b + x0 + -373897302 + (d & ~a) + (c & a)) | 0;
    b = (c + ((t << 20) | (t >>> 12))) | 0;
    t = (a + -701558691 + (c & ~d) + (b & d)) | 0;
    a = (b + ((t << 5) | (t >>> 27))) | 0;
    t = (d + 38016083 + (b & ~c) + (a & c)) | 0;
    d = (a + ((t << 9) | (t >>> 23))) | 0;
    t = (c + -660478335 + (a & ~b) + (d & b)) | 0;
    c = (d + ((t << 14) | (t >>> 18))) | 0;
    t = (b + -405537720 + (d & ~a) + (c & a)) | 0;
    b = (c + ((t << 20) | (t >>> 12))) | 0;
    t = (a + 568446438 + (c & ~d) + (b & d)) | 0;
    a = (b + ((t << 5) | (t >>> 27))) | 0;
    t = (d + -1019803562 + (b & ~c) + (a & c)) | 0;
    d = (a + ((t << 9) | (t >>> 23))) | 0;
    t = (c + x3 + -187363961 + (a & ~b) + (d & b)) | 0;
    c = (d + ((t << 14) | (t >>> 18))) | 0;
    t = (b + 1163531501 + (d & ~a) + (c & a)) | 0;
    b = (c + ((t << 20) | (t >>> 12))) | 0;
    t = (a + -1444681467 + (c & ~d) + (b & d)) | 0;
    a = (b + ((t << 5) | (t >>> 27))) | 0;
    t = (d + x2 + -51403784 + (b & ~c) + (a & c)) | 0;
    d = (a + ((t << 9) | (t >>> 23))) | 0;
    t = (c + 1735328473 + (a & ~b) + (d & b)) | 0;
    c = (d + ((t << 14) | (t >>> 18))) | 0;
    t = (b + -1926607734 + (d & ~a) + (c & a)) | 0;
    b = (c + ((t << 20) | (t >>> 12))) | 0;
    t = (a + -378558 + (b ^ (c ^ d))) | 0;
    a = (b + ((t << 4) | (t >>> 28))) | 0;
    t = (d + -2022574463 + (a ^ (b ^ c))) | 0;
    d = (a + ((t << 11) | (t >>> 21))) | 0;
    t = (c + 1839030562 + (d ^ (a ^ b))) | 0;
    c = (d + ((t << 16) | (t >>> 16))) | 0;
    t = (b + -35309428 + (c ^ (d ^ a))) | 0;
    b = (c + ((t << 23) | (t >>> 9))) | 0;
    t = (a + x1 + -1530992060 + (b ^ (c ^ d))) | 0;
    a = (b + ((t << 4) | (t >>> 28))) | 0;
    t = (d + 1272893481 + (a ^ (b ^ c))) | 0;
    d = (a + ((t << 11) | (t >>> 21))) | 0;
    t = (c + -155497632 + (d ^ (a ^ b))) | 0;
    c = (d + ((t << 16) | (t >>> 16))) | 0;
    t = (b + -1094730640 + (c ^ (d ^ a))) | 0;
    b = (c + ((t << 23) | (t >>> 9))) | 0;
    t = (a + 681279174 + (b ^ (c ^ d))) | 0;
    a = (b + ((t << 4) | (t >>> 28))) | 0;
    t = (d + x0 + -358537222 + (a ^ (b ^ c))) | 0;
    d = (a + ((t << 11) | (t >>> 21))) | 0;
    t = (c + x3 + -722521979 + (d ^ (a ^ b))) | 0;
    c = (d + ((t << 16) | (t >>> 16))) | 0;
    t = (b + 76029189 + (c ^ (d ^ a))) | 0;
    b = (c + ((t << 23) | (t >>> 9))) | 0;
    t = (a + -640364487 + (b ^ (c ^ d))) | 0;
    a = (b + ((t << 4) | (t >>> 28))) | 0;
    t = (d + -421815835 + (a ^ (b ^ c))) | 0;
    d = (a + ((t << 11) | (t >>> 21))) | 0;
    t = (c + 530742520 + (d ^ (a ^ b))) | 0;
    c = (d + ((t << 16) | (t >>> 16))) | 0;
    t = (b + x2 + -995338651 + (c ^ (d ^ a))) | 0;
    b = (c + ((t << 23) | (t >>> 9))) | 0;
    t = (a + x0 + -198630844 + (c ^ (b | ~d))) | 0;
    a = (b + ((t << 6) | (t >>> 26))) | 0;
    t = (d + 1126891415 + (b ^ (a | ~c))) | 0;
    d = (a + ((t << 10) | (t >>> 22))) | 0;
    t = (c + -1416354777 + (a ^ (d | ~b))) | 0;
    c = (d + ((t << 15) | (t >>> 17))) | 0;
    t = (b + -57434055 + (d ^ (c | ~a))) | 0;
    b = (c + ((t << 21) | (t >>> 11))) | 0;
    t = (a + 1700485571 + (c ^ (b | ~d))) | 0;
    a = (b + ((t << 6) | (t >>> 26))) | 0;
    t = (d + x3 + -1894986606 + (b ^ (a | ~c))) | 0;
    d = (a + ((t << 10) | (t >>> 22))) | 0;
    t = (c + -1051523 + (a ^ (d | ~b))) | 0;
    c = (d + ((t << 15) | (t >>> 17))) | 0;
    t = (b + x1 + -2054922799 + (d ^ (c | ~a))) | 0;
    b = (c + ((t << 21) | (t >>> 11))) | 0;
    t = (a + 1873313359 + (c ^ (b | ~d))) | 0;
    a = (b + ((t << 6) | (t >>> 26))) | 0;
    t = (d + -30611744 + (b ^ (a | ~c))) | 0;
    d = (a + ((t << 10) | (t >>> 22))) | 0;
    t = (c + -1560198380 + (a ^ (d | ~b))) | 0;
    c = (d + ((t << 15) | (t >>> 17))) | 0;
    t = (b + 1309151649 + (d ^ (c | ~a))) | 0;
    b = (c + ((t << 21) | (t >>> 11))) | 0;
    t = (a + -145522942 + (c ^ (b | ~d))) | 0;
    a = (b + ((t << 6) | (t >>> 26))) | 0;
    t = (d + -1120210379 + (b ^ (a | ~c))) | 0;
    d = (a + ((t << 10) | (t >>> 22))) | 0;
    t = (c + x2 + 718787259 + (a ^ (d | ~b))) | 0;
    c = (d + ((t << 15) | (t >>> 17))) | 0;
    t = (b + -343485551 + (d ^ (c | ~a))) | 0;
    b = (c + ((t << 21) | (t >>> 11))) | 0;
    x0 = (a + 0x67452301) | 0;
    x1 = (b - 271733879) | 0;
    x2 = (c - 1732584194) | 0;
    x3 = (d + 0x10325476) | 0;
  }
  state[0] = x0;
  state[1] = x1;
  state[2] = x2;
  state[3] = x3;
}

/** Digest bytes (16) → the four little-endian words `md5ChainWords` works on. */
export function digestToWords(digest: Uint8Array, state: Int32Array): void {
  for (let i = 0; i < 4; i++) {
    const o = 4 * i;
    state[i] = digest[o]! | (digest[o + 1]! << 8) | (digest[o + 2]! << 16) | (digest[o + 3]! << 24);
  }
}

/** The four words back to 16 digest bytes, written at `offset` of `out`. */
export function wordsToDigest(state: Int32Array, out: Uint8Array, offset = 0): void {
  for (let i = 0; i < 4; i++) {
    const w = state[i]!;
    const o = offset + 4 * i;
    out[o] = w & 0xff;
    out[o + 1] = (w >>> 8) & 0xff;
    out[o + 2] = (w >>> 16) & 0xff;
    out[o + 3] = (w >>> 24) & 0xff;
  }
}

/**
 * Prime-curve point arithmetic in affine coordinates with bigint, for what node:crypto does not
 * offer: the virtual card's ECDSA over a host hash and ECDH with both coordinates (src/sim/ec.ts),
 * and the host's check of DERIVE EC KEY (d' = d + tweak mod n, so Q' = Q + tweak·G; spec §3.15).
 * Not constant-time: it handles public points and the virtual card's own keys only.
 */
import { mod, modInverse } from './bigint.js';
import { bigintFromBytes, bigintToBytes } from './bytes.js';
import { type CurveName, curveParams } from './curves.js';

/** An affine point; null is the point at infinity. */
export type Point = { x: bigint; y: bigint } | null;

export interface Domain {
  p: bigint;
  a: bigint;
  b: bigint;
  n: bigint;
  g: Point;
  /** Field length in bytes. */
  size: number;
}

/** Modular inverse; the curve code only inverts non-zero values modulo a prime. */
export function inv(v: bigint, m: bigint): bigint {
  const r = modInverse(v, m);
  if (r === undefined) throw new RangeError('not invertible');
  return r;
}

const domains = new Map<CurveName, Domain>();

/** The curve's domain parameters as bigints (cached). */
export function domain(curve: CurveName): Domain {
  let d = domains.get(curve);
  if (!d) {
    const c = curveParams(curve);
    const half = (c.g.length - 1) / 2;
    d = {
      p: bigintFromBytes(c.p),
      a: bigintFromBytes(c.a),
      b: bigintFromBytes(c.b),
      n: bigintFromBytes(c.n),
      g: { x: bigintFromBytes(c.g.subarray(1, 1 + half)), y: bigintFromBytes(c.g.subarray(1 + half)) },
      size: c.size,
    };
    domains.set(curve, d);
  }
  return d;
}

export function pointAdd(d: Domain, P: Point, Q: Point): Point {
  if (!P) return Q;
  if (!Q) return P;
  const { p } = d;
  let l: bigint;
  if (P.x === Q.x) {
    if (mod(P.y + Q.y, p) === 0n) return null;
    l = mod((3n * P.x * P.x + d.a) * inv(2n * P.y, p), p);
  } else {
    l = mod((Q.y - P.y) * inv(Q.x - P.x, p), p);
  }
  const x = mod(l * l - P.x - Q.x, p);
  return { x, y: mod(l * (P.x - x) - P.y, p) };
}

export function pointMul(d: Domain, k: bigint, P: Point): Point {
  let R: Point = null;
  let A = P;
  let e = k;
  while (e > 0n) {
    if (e & 1n) R = pointAdd(d, R, A);
    A = pointAdd(d, A, A);
    e >>= 1n;
  }
  return R;
}

export function onCurve(d: Domain, P: { x: bigint; y: bigint }): boolean {
  const { p } = d;
  if (P.x < 0n || P.x >= p || P.y < 0n || P.y >= p) return false;
  return mod(P.y * P.y - (P.x * P.x * P.x + d.a * P.x + d.b), p) === 0n;
}

/** `04 ‖ X ‖ Y` → point, or undefined when malformed or not on the curve. */
export function decodePoint(d: Domain, bytes: Uint8Array): { x: bigint; y: bigint } | undefined {
  if (bytes.length !== 1 + 2 * d.size || bytes[0] !== 0x04) return undefined;
  const P = {
    x: bigintFromBytes(bytes.subarray(1, 1 + d.size)),
    y: bigintFromBytes(bytes.subarray(1 + d.size)),
  };
  return onCurve(d, P) ? P : undefined;
}

/** Point → `04 ‖ X ‖ Y` at field length. */
export function encodePoint(d: Domain, P: { x: bigint; y: bigint }): Uint8Array {
  return new Uint8Array([0x04, ...bigintToBytes(P.x, d.size), ...bigintToBytes(P.y, d.size)]);
}

/**
 * Prime-curve arithmetic the card needs and node:crypto does not offer: ECDSA over a hash the host
 * computed (SIGN algo 70, spec §3.13) and ECDH answering both coordinates (spec §3.14). Affine
 * coordinates with bigint for ECDH; ECDSA takes its nonce point from node:crypto. Also reads the private scalar from PKCS#8,
 * because node cannot export brainpool keys as JWK.
 */
import { createECDH } from 'node:crypto';
import { mod, modInverse } from '../util/bigint.js';
import { bigintFromBytes, bigintToBytes } from '../util/bytes.js';
import { type CurveName, curveParams } from '../util/curves.js';
import { readAll, readTlv } from '../util/tlv.js';

type Point = { x: bigint; y: bigint } | null;

interface Domain {
  p: bigint;
  a: bigint;
  b: bigint;
  n: bigint;
  g: Point;
  size: number;
}

/** Modular inverse; the curve code only inverts non-zero values modulo a prime. */
function inv(v: bigint, m: bigint): bigint {
  const r = modInverse(v, m);
  if (r === undefined) throw new RangeError('not invertible');
  return r;
}

const domains = new Map<CurveName, Domain>();

function domain(curve: CurveName): Domain {
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

function add(d: Domain, P: Point, Q: Point): Point {
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

function mul(d: Domain, k: bigint, P: Point): Point {
  let R: Point = null;
  let A = P;
  let e = k;
  while (e > 0n) {
    if (e & 1n) R = add(d, R, A);
    A = add(d, A, A);
    e >>= 1n;
  }
  return R;
}

function onCurve(d: Domain, P: { x: bigint; y: bigint }): boolean {
  const { p } = d;
  if (P.x < 0n || P.x >= p || P.y < 0n || P.y >= p) return false;
  return mod(P.y * P.y - (P.x * P.x * P.x + d.a * P.x + d.b), p) === 0n;
}

/** The private scalar d of an EC PKCS#8 key (RFC 5915 ECPrivateKey inside PrivateKeyInfo). */
export function ecPrivateScalar(pkcs8: Uint8Array): Uint8Array {
  const pki = readAll(readTlv(pkcs8).value);
  const ecpk = readAll(readTlv(pki[2]!.value).value);
  return ecpk[1]!.value.slice();
}

/**
 * ECDSA over an already computed hash (truncated to the order's bit length); returns r ‖ s.
 * The nonce point k·G comes from node:crypto's native ECDH key generation (k uniform in
 * [1, n−1]); only s = k⁻¹(e + r·d) mod n is computed here.
 */
export function ecdsaSignHash(curve: CurveName, dBytes: Uint8Array, hash: Uint8Array): Uint8Array {
  const d = domain(curve);
  const nBits = d.n.toString(2).length;
  let e = bigintFromBytes(hash);
  const hBits = hash.length * 8;
  if (hBits > nBits) e >>= BigInt(hBits - nBits);
  const priv = bigintFromBytes(dBytes);
  const nLen = Math.ceil(nBits / 8);
  for (;;) {
    const nonce = createECDH(curve);
    nonce.generateKeys();
    const k = bigintFromBytes(nonce.getPrivateKey());
    const R = nonce.getPublicKey();
    const r = mod(bigintFromBytes(R.subarray(1, 1 + d.size)), d.n);
    if (k === 0n || r === 0n) continue;
    const s = mod(inv(k, d.n) * (e + r * priv), d.n);
    if (s === 0n) continue;
    return new Uint8Array([...bigintToBytes(r, nLen), ...bigintToBytes(s, nLen)]);
  }
}

/**
 * ECDH: d × peer. `peer` is `04 ‖ X ‖ Y`; returns `04 ‖ X ‖ Y` of the shared point, or undefined
 * when the peer point is malformed or not on the curve.
 */
export function ecdhPoint(curve: CurveName, dBytes: Uint8Array, peer: Uint8Array): Uint8Array | undefined {
  const d = domain(curve);
  if (peer.length !== 1 + 2 * d.size || peer[0] !== 0x04) return undefined;
  const P = {
    x: bigintFromBytes(peer.subarray(1, 1 + d.size)),
    y: bigintFromBytes(peer.subarray(1 + d.size)),
  };
  if (!onCurve(d, P)) return undefined;
  const S = mul(d, bigintFromBytes(dBytes), P);
  if (!S) return undefined;
  return new Uint8Array([0x04, ...bigintToBytes(S.x, d.size), ...bigintToBytes(S.y, d.size)]);
}

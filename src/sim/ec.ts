/**
 * Prime-curve arithmetic the card needs and node:crypto does not offer: ECDSA over a hash the host
 * computed (SIGN algo 70, spec §3.13) and ECDH answering both coordinates (spec §3.14). Affine
 * coordinates with bigint for ECDH; ECDSA takes its nonce point from node:crypto. Also reads the private scalar from PKCS#8,
 * because node cannot export brainpool keys as JWK.
 */
import { createECDH } from 'node:crypto';
import { mod } from '../util/bigint.js';
import { bigintFromBytes, bigintToBytes } from '../util/bytes.js';
import type { CurveName } from '../util/curves.js';
import { decodePoint, domain, encodePoint, inv, pointMul } from '../util/ec-point.js';
import { readAll, readTlv } from '../util/tlv.js';

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
  const P = decodePoint(d, peer);
  if (!P) return undefined;
  const S = pointMul(d, bigintFromBytes(dBytes), P);
  if (!S) return undefined;
  return encodePoint(d, S);
}

/**
 * Key material conversions for the key blob (spec §8.1): PKCS#8 ↔ the numbers a blob carries.
 * RSA through node:crypto's JWK import/export, with the missing numbers computed in BigInt (the
 * primes recovered from d, e, n for the private-exponent form); EC through PKCS#8 DER we build
 * ourselves with the named-curve OID (node:crypto's JWK knows only the NIST curves).
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { ScHsmError } from '../errors.js';
import { gcd, mod, modInverse, modPow } from '../util/bigint.js';
import {
  bigintFromBytes,
  bigintToBytes,
  bytesEqual,
  fromHex,
  padStart,
  stripLeadingZeros,
} from '../util/bytes.js';
import { type CurveInfo, curveByName, curveParams } from '../util/curves.js';
import { readAll, readTlv, tlv } from '../util/tlv.js';

const OID_EC_PUBLIC_KEY = fromHex('2a8648ce3d0201');

/** The numbers of an RSA private key, big-endian, minimal. */
export interface RsaNumbers {
  n: Uint8Array;
  e: Uint8Array;
  d: Uint8Array;
  p: Uint8Array;
  q: Uint8Array;
  dp: Uint8Array;
  dq: Uint8Array;
  qi: Uint8Array;
}

/** The numbers of an EC private key: the curve, d padded to the order length, Q = 04 ‖ x ‖ y. */
export interface EcNumbers {
  curve: CurveInfo;
  d: Uint8Array;
  q: Uint8Array;
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const unb64 = (s: unknown, what: string): Uint8Array => {
  if (typeof s !== 'string') throw new ScHsmError('INVALID_ARGUMENT', `the RSA key lacks ${what}`);
  return stripLeadingZeros(new Uint8Array(Buffer.from(s, 'base64url')));
};

/** Parses PKCS#8 DER with node:crypto; any failure is INVALID_ARGUMENT. */
export function importPkcs8(pkcs8: Uint8Array): KeyObject {
  if (!(pkcs8 instanceof Uint8Array))
    throw new ScHsmError('INVALID_ARGUMENT', 'the private key must be PKCS#8 DER bytes');
  try {
    return createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
  } catch (e) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      'the private key is not a PKCS#8 DER private key node:crypto can read',
      {
        cause: e,
      },
    );
  }
}

export function rsaNumbersFromKey(key: KeyObject): RsaNumbers {
  const j = key.export({ format: 'jwk' });
  return {
    n: unb64(j.n, 'n'),
    e: unb64(j.e, 'e'),
    d: unb64(j.d, 'd'),
    p: unb64(j.p, 'p'),
    q: unb64(j.q, 'q'),
    dp: unb64(j.dp, 'dp'),
    dq: unb64(j.dq, 'dq'),
    qi: unb64(j.qi, 'qi'),
  };
}

/**
 * Recovers p and q from n, e, d (the standard probabilistic method, e.g. NIST SP 800-56B
 * Appendix C): write d·e − 1 = 2ᵗ·r with r odd; for bases g, a square root of 1 other than ±1
 * among g^(r·2ⁱ) mod n gives a factor through gcd(x − 1, n). Returns p > q, or undefined.
 */
export function factorRsaModulus(n: bigint, e: bigint, d: bigint): { p: bigint; q: bigint } | undefined {
  const k = d * e - 1n;
  if (n < 15n || k <= 0n || k & 1n) return undefined;
  let r = k;
  let t = 0;
  while (!(r & 1n)) {
    r >>= 1n;
    t++;
  }
  // Each base finds the factors with probability ≥ 1/2 for a consistent key: 40 failures mean it is not.
  for (let g = 2n; g < 42n; g++) {
    let x = modPow(g, r, n);
    if (x === 1n || x === n - 1n) continue;
    for (let i = 0; i < t; i++) {
      const y = (x * x) % n;
      if (y === 1n) {
        const p = gcd(x - 1n, n);
        if (p === 1n || p === n) break;
        const q = n / p;
        return p > q ? { p, q } : { p: q, q: p };
      }
      if (y === n - 1n) break;
      x = y;
    }
  }
  return undefined;
}

/** PKCS#8 DER of an RSA key from its numbers, checked by node:crypto. */
export function rsaPkcs8(r: RsaNumbers): { pkcs8: Uint8Array; key: KeyObject } {
  const key = createPrivateKey({
    key: {
      kty: 'RSA',
      n: b64(r.n),
      e: b64(r.e),
      d: b64(r.d),
      p: b64(r.p),
      q: b64(r.q),
      dp: b64(r.dp),
      dq: b64(r.dq),
      qi: b64(r.qi),
    },
    format: 'jwk',
  });
  return { pkcs8: new Uint8Array(key.export({ type: 'pkcs8', format: 'der' })), key };
}

/** Completes RSA numbers from the CRT form (dP, dQ, p, qInv, q, n, e): d = e⁻¹ mod lcm(p−1, q−1). */
export function rsaFromCrt(f: Omit<RsaNumbers, 'd'>): RsaNumbers | undefined {
  const [n, e, p, q, dp, dq, qi] = [f.n, f.e, f.p, f.q, f.dp, f.dq, f.qi].map(bigintFromBytes) as [
    bigint,
    bigint,
    bigint,
    bigint,
    bigint,
    bigint,
    bigint,
  ];
  if (p < 3n || q < 3n || p * q !== n || e < 3n) return undefined;
  if (mod(e * dp, p - 1n) !== 1n || mod(e * dq, q - 1n) !== 1n || mod(q * qi, p) !== 1n) return undefined;
  const lambda = ((p - 1n) * (q - 1n)) / gcd(p - 1n, q - 1n);
  const d = modInverse(e, lambda);
  if (d === undefined) return undefined;
  return { ...f, d: bigintToBytes(d) };
}

/** Completes RSA numbers from the private-exponent form (d, n, e) by factoring n. */
export function rsaFromPrivateExponent(f: {
  n: Uint8Array;
  e: Uint8Array;
  d: Uint8Array;
}): RsaNumbers | undefined {
  const [n, e, d] = [f.n, f.e, f.d].map(bigintFromBytes) as [bigint, bigint, bigint];
  if (e < 3n || d < 1n || d >= n) return undefined;
  const pq = factorRsaModulus(n, e, d);
  if (!pq) return undefined;
  const { p, q } = pq;
  const qi = modInverse(q, p);
  if (qi === undefined) return undefined;
  return {
    n: f.n,
    e: f.e,
    d: f.d,
    p: bigintToBytes(p),
    q: bigintToBytes(q),
    dp: bigintToBytes(d % (p - 1n)),
    dq: bigintToBytes(d % (q - 1n)),
    qi: bigintToBytes(qi),
  };
}

// ---- EC ----------------------------------------------------------------------------------------

/** Byte length of the curve order (the length of d in SEC 1 / PKCS#8). */
export function orderLength(curve: CurveInfo): number {
  return stripLeadingZeros(curveParams(curve).n).length;
}

/**
 * PKCS#8 DER of an EC key with a named curve, as OpenSSL 3 writes it (inner ECPrivateKey without
 * parameters, with the public key when given).
 */
export function ecPkcs8(curve: CurveInfo, d: Uint8Array, q?: Uint8Array): Uint8Array {
  const inner = tlv(
    0x30,
    Uint8Array.of(0x02, 0x01, 0x01),
    tlv(0x04, padStart(d, orderLength(curve))),
    ...(q ? [tlv(0xa1, tlv(0x03, Uint8Array.of(0), q))] : []),
  );
  return tlv(
    0x30,
    Uint8Array.of(0x02, 0x01, 0x00),
    tlv(0x30, tlv(0x06, OID_EC_PUBLIC_KEY), tlv(0x06, curve.oidBytes)),
    tlv(0x04, inner),
  );
}

/** The uncompressed public point of an EC key object (from its SPKI). */
export function ecPublicPoint(key: KeyObject): Uint8Array {
  const spki = new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
  const [, bits] = readAll(readTlv(spki).value);
  if (bits?.tag !== 0x03 || bits.value[0] !== 0)
    throw new ScHsmError('INVALID_ARGUMENT', 'unexpected SPKI from node:crypto');
  return bits.value.slice(1);
}

export function ecNumbersFromKey(key: KeyObject): EcNumbers {
  const name = key.asymmetricKeyDetails?.namedCurve;
  if (!name) throw new ScHsmError('INVALID_ARGUMENT', 'the EC key must use a named curve');
  let curve: CurveInfo;
  try {
    curve = curveByName(name);
  } catch {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `the SmartCard-HSM does not support the curve ${name} of this key`,
    );
  }
  const pkcs8 = new Uint8Array(key.export({ type: 'pkcs8', format: 'der' }));
  const [, , octet] = readAll(readTlv(pkcs8).value);
  const [, dTlv] = readAll(readTlv(octet!.value).value);
  return { curve, d: padStart(dTlv!.value, orderLength(curve)), q: ecPublicPoint(key) };
}

/**
 * PKCS#8 of an EC key from d, checked against the public point the blob carries: node:crypto
 * computes Q = d·G from a key without public part, which must equal `q`.
 */
export function ecKeyFromNumbers(
  curve: CurveInfo,
  d: Uint8Array,
  q: Uint8Array,
): { pkcs8: Uint8Array; key: KeyObject } {
  const computed = createPrivateKey({ key: Buffer.from(ecPkcs8(curve, d)), format: 'der', type: 'pkcs8' });
  if (!bytesEqual(ecPublicPoint(computed), q)) {
    throw new ScHsmError(
      'INVALID_KEY_BLOB',
      'the public key in the key blob does not belong to its private key',
    );
  }
  const pkcs8 = ecPkcs8(curve, d, q);
  const key = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
  return { pkcs8, key };
}

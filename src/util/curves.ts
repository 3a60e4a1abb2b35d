/**
 * The elliptic curves the SmartCard-HSM supports (spec §3.11) with their domain parameters.
 * The parameters are not typed in here: they are read once, lazily, from OpenSSL's explicit
 * encoding of each curve (node:crypto), then padded to the field length the way the card and
 * OpenSC want them (coefficient a at full length even when zero).
 */
import { generateKeyPairSync } from 'node:crypto';
import { ScHsmError } from '../errors.js';
import { bytesEqual, fromHex, padStart, stripLeadingZeros } from './bytes.js';
import { readAll, readTlv } from './tlv.js';

export type CurveName =
  | 'prime192v1'
  | 'prime256v1'
  | 'secp384r1'
  | 'secp521r1'
  | 'brainpoolP192r1'
  | 'brainpoolP224r1'
  | 'brainpoolP256r1'
  | 'brainpoolP320r1'
  | 'brainpoolP384r1'
  | 'brainpoolP512r1'
  | 'secp192k1'
  | 'secp256k1';

/** The other names {@link curveByName} accepts for the card's curves (the NIST curves' SEC, FIPS and SSH names). */
export type CurveAlias =
  | 'secp192r1'
  | 'P-192'
  | 'nistp192'
  | 'secp256r1'
  | 'P-256'
  | 'nistp256'
  | 'P-384'
  | 'nistp384'
  | 'P-521'
  | 'nistp521';

/** A curve as a caller names it: the card's name or an alias, so that a typo is a compile error. */
export type CurveNameOrAlias = CurveName | CurveAlias;

export interface CurveInfo {
  /** OpenSSL's name, which is also what node:crypto calls it. */
  name: CurveName;
  /** Other names users type: `secp256r1`, `P-256`, … */
  aliases: CurveAlias[];
  /** Dotted OID. */
  oid: string;
  /** DER content of the OID (no `06 len`). */
  oidBytes: Uint8Array;
  /** Field size in bits (521 for P-521). */
  bits: number;
  /** JWK/WebCrypto name where one exists. */
  jwk?: 'P-256' | 'P-384' | 'P-521';
}

export interface CurveParams {
  /** Field length in bytes. */
  size: number;
  p: Uint8Array;
  a: Uint8Array;
  b: Uint8Array;
  /** Base point, uncompressed `04 ‖ x ‖ y`. */
  g: Uint8Array;
  n: Uint8Array;
  /** Cofactor, minimal big-endian bytes. */
  h: Uint8Array;
}

const C = (
  name: CurveName,
  aliases: CurveAlias[],
  oid: string,
  hex: string,
  bits: number,
  jwk?: CurveInfo['jwk'],
) => {
  const info: CurveInfo = { name, aliases, oid, oidBytes: fromHex(hex), bits };
  if (jwk) info.jwk = jwk;
  return info;
};

export const CURVES: readonly CurveInfo[] = [
  C('prime192v1', ['secp192r1', 'P-192', 'nistp192'], '1.2.840.10045.3.1.1', '2a8648ce3d030101', 192),
  C(
    'prime256v1',
    ['secp256r1', 'P-256', 'nistp256'],
    '1.2.840.10045.3.1.7',
    '2a8648ce3d030107',
    256,
    'P-256',
  ),
  C('secp384r1', ['P-384', 'nistp384'], '1.3.132.0.34', '2b81040022', 384, 'P-384'),
  C('secp521r1', ['P-521', 'nistp521'], '1.3.132.0.35', '2b81040023', 521, 'P-521'),
  C('brainpoolP192r1', [], '1.3.36.3.3.2.8.1.1.3', '2b2403030208010103', 192),
  C('brainpoolP224r1', [], '1.3.36.3.3.2.8.1.1.5', '2b2403030208010105', 224),
  C('brainpoolP256r1', [], '1.3.36.3.3.2.8.1.1.7', '2b2403030208010107', 256),
  C('brainpoolP320r1', [], '1.3.36.3.3.2.8.1.1.9', '2b2403030208010109', 320),
  C('brainpoolP384r1', [], '1.3.36.3.3.2.8.1.1.11', '2b240303020801010b', 384),
  C('brainpoolP512r1', [], '1.3.36.3.3.2.8.1.1.13', '2b240303020801010d', 512),
  C('secp192k1', [], '1.3.132.0.31', '2b8104001f', 192),
  C('secp256k1', [], '1.3.132.0.10', '2b8104000a', 256),
];

/** Finds a curve by its name or an alias (case-insensitive), or throws INVALID_ARGUMENT. */
export function curveByName(name: string): CurveInfo {
  const n = name.toLowerCase();
  const c = CURVES.find((x) => x.name.toLowerCase() === n || x.aliases.some((a) => a.toLowerCase() === n));
  if (!c) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `unsupported curve "${name}"; supported: ${CURVES.map((x) => x.name).join(', ')}`,
    );
  }
  return c;
}

export function curveByOid(oidBytes: Uint8Array): CurveInfo | undefined {
  return CURVES.find((c) => bytesEqual(c.oidBytes, oidBytes));
}

const paramCache = new Map<CurveName, CurveParams>();

/** Domain parameters of a curve, each field element at full field length. */
export function curveParams(curve: CurveInfo | CurveName): CurveParams {
  const info = typeof curve === 'string' ? curveByName(curve) : curve;
  const cached = paramCache.get(info.name);
  if (cached) return cached;
  const { publicKey } = generateKeyPairSync('ec', {
    namedCurve: info.name,
    publicKeyEncoding: { type: 'spki', format: 'der' },
    privateKeyEncoding: { type: 'pkcs8', format: 'der' },
    paramEncoding: 'explicit',
  } as Parameters<typeof generateKeyPairSync>[1] & { namedCurve: string });
  // SubjectPublicKeyInfo { AlgorithmIdentifier { ecPublicKey, ECParameters }, BIT STRING }
  const spki = readTlv(new Uint8Array(publicKey as unknown as Buffer)).value;
  const algId = readTlv(spki).value;
  const [, ecParams] = readAll(algId);
  const [, fieldId, curveSeq, base, order, cofactor] = readAll(ecParams!.value);
  const p = stripLeadingZeros(readAll(fieldId!.value)[1]!.value);
  const [a, b] = readAll(curveSeq!.value);
  const size = p.length;
  const params: CurveParams = {
    size,
    p: padStart(p, size),
    a: padStart(a!.value, size),
    b: padStart(b!.value, size),
    g: base!.value.slice(),
    n: stripLeadingZeros(order!.value).slice(),
    h: stripLeadingZeros(cofactor!.value).slice(),
  };
  paramCache.set(info.name, params);
  return params;
}

/** Identifies a supported curve from its prime (and coefficient a where primes coincide), as the card does. */
export function curveByPrime(p: Uint8Array, a?: Uint8Array): CurveInfo | undefined {
  const pp = stripLeadingZeros(p);
  for (const c of CURVES) {
    const params = curveParams(c);
    if (!bytesEqual(stripLeadingZeros(params.p), pp)) continue;
    if (a && !bytesEqual(stripLeadingZeros(params.a), stripLeadingZeros(a))) continue;
    return c;
  }
  return undefined;
}

/**
 * Card-verifiable certificates (TR-03110) as the SmartCard-HSM uses them (spec §5.1–5.4) and
 * the authenticated requests GENERATE ASYMMETRIC KEY PAIR answers (spec §3.11).
 *
 * Signatures cover the complete `7F4E` TLV (tag, length, value); ECDSA values are plain
 * `r ‖ s` at field length (spec §3.11, verified on a real Nitrokey request).
 */
import { constants, createPublicKey, ECDH, type KeyObject, verify } from 'node:crypto';
import { ScHsmError } from '../errors.js';
import { ascii, bytesEqual, stripLeadingZeros } from '../util/bytes.js';
import { type CurveInfo, curveByOid, curveByPrime, curveParams } from '../util/curves.js';
import { readAll, readTlv, type Tlv, tlv } from '../util/tlv.js';
import {
  childrenOf,
  decodeAscii,
  decodeSmallInteger,
  encodeInteger,
  encodeUnsignedInteger,
  hexTag,
  invalid,
  malformed,
  readFirst,
  requireBytes,
  requireSingleTlv,
  TAG,
} from './der.js';

/** The fields of a `7F49` public key template, raw (spec §5.1, §3.11). */
export interface CvcPublicKey {
  /** DER content of the TA OID, e.g. `OID.TA_ECDSA_SHA256`. */
  oid: Uint8Array;
  /** RSA `81`. */
  modulus?: Uint8Array;
  /** RSA `82`. */
  exponent?: Uint8Array;
  /** EC `81` prime. */
  p?: Uint8Array;
  /** EC `82` coefficient a. */
  a?: Uint8Array;
  /** EC `83` coefficient b. */
  b?: Uint8Array;
  /** EC `84` base point, uncompressed. */
  g?: Uint8Array;
  /** EC `85` order. */
  n?: Uint8Array;
  /** EC `86` public point, uncompressed. */
  point?: Uint8Array;
  /** EC `87` cofactor. */
  cofactor?: Uint8Array;
  /** `02` INTEGER: RSA key size in bits (GAKP RSA request, spec §3.11). */
  keySize?: number;
}

/** A decoded CV certificate or certificate request (spec §5.1). */
export interface CvCertificate {
  /** Complete `7F21` TLV. */
  raw: Uint8Array;
  /** Complete `7F4E` TLV (what the signature covers). */
  body: Uint8Array;
  cpi: number;
  car?: string;
  chr: string;
  publicKey: CvcPublicKey;
  /** `7F4C { 06 oid, 53 role }`: OID as DER content, role as the `53` value. */
  chat?: { oid: Uint8Array; role: Uint8Array };
  /** 'YYYY-MM-DD'. */
  effectiveDate?: string;
  /** 'YYYY-MM-DD'. */
  expirationDate?: string;
  /** `5F37` (ECDSA: r ‖ s). */
  signature: Uint8Array;
}

/** An authenticated request `67 { 7F21, 42 outerCAR, 5F37 outerSignature }` or a bare `7F21` (spec §3.11). */
export interface AuthenticatedRequest {
  /** Complete `67` (or bare `7F21`) TLV. */
  raw: Uint8Array;
  certificate: CvCertificate;
  outerCar?: string;
  outerSignature?: Uint8Array;
}

const T = {
  CVC: 0x7f21,
  BODY: 0x7f4e,
  CPI: 0x5f29,
  CAR: 0x42,
  PUBLIC_KEY: 0x7f49,
  CHR: 0x5f20,
  CHAT: 0x7f4c,
  ROLE: 0x53,
  CED: 0x5f25,
  CXD: 0x5f24,
  SIGNATURE: 0x5f37,
  AUTHENTICATED_REQUEST: 0x67,
} as const;

/** id-TA-RSA (04 00 7F 00 07 02 02 02 01) and id-TA-ECDSA (… 02 02) arcs, without the last byte. */
const TA_RSA = Uint8Array.of(0x04, 0x00, 0x7f, 0x00, 0x07, 0x02, 0x02, 0x02, 0x01);
const TA_ECDSA = Uint8Array.of(0x04, 0x00, 0x7f, 0x00, 0x07, 0x02, 0x02, 0x02, 0x02);
const RSA_ENCRYPTION = Uint8Array.of(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01);
const EC_PUBLIC_KEY = Uint8Array.of(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01);

function hasPrefix(oid: Uint8Array, prefix: Uint8Array): boolean {
  return oid.length === prefix.length + 1 && bytesEqual(oid.subarray(0, prefix.length), prefix);
}

type KeyKind = 'rsa' | 'ec';

/** RSA or EC from the TA OID; for other OIDs an EC key is recognised by its `86` point as OpenSC does (spec §5.1). */
function kindOf(pk: CvcPublicKey): KeyKind | undefined {
  if (hasPrefix(pk.oid, TA_RSA)) return 'rsa';
  if (hasPrefix(pk.oid, TA_ECDSA)) return 'ec';
  if (pk.point || pk.p) return 'ec';
  if (pk.modulus) return 'rsa';
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// decoding

function decodeDate(v: Uint8Array, what: string): string {
  if (v.length !== 6 || v.some((d) => d > 9))
    malformed(`${what}: date must be 6 digits YYMMDD, one per byte`);
  return `20${v[0]}${v[1]}-${v[2]}${v[3]}-${v[4]}${v[5]}`;
}

function decodePublicKey(t: Tlv, what: string): CvcPublicKey {
  const fields = new Map<number, Uint8Array>();
  let keySize: number | undefined;
  for (const c of childrenOf(t, `${what} public key`)) {
    if (c.tag === TAG.INTEGER) keySize = decodeSmallInteger(c.value, `${what} key size`);
    else if (!fields.has(c.tag)) fields.set(c.tag, c.value.slice());
  }
  const oid = fields.get(TAG.OID);
  if (!oid || oid.length === 0) malformed(`${what}: public key OID (06) missing`);
  const pk: CvcPublicKey = { oid };
  const kind = hasPrefix(oid, TA_RSA) ? 'rsa' : hasPrefix(oid, TA_ECDSA) || fields.has(0x86) ? 'ec' : 'rsa';
  const names: [number, keyof CvcPublicKey][] =
    kind === 'rsa'
      ? [
          [0x81, 'modulus'],
          [0x82, 'exponent'],
        ]
      : [
          [0x81, 'p'],
          [0x82, 'a'],
          [0x83, 'b'],
          [0x84, 'g'],
          [0x85, 'n'],
          [0x86, 'point'],
          [0x87, 'cofactor'],
        ];
  for (const [tag, name] of names) {
    const v = fields.get(tag);
    if (v) (pk as unknown as Record<string, Uint8Array>)[name] = v;
  }
  if (keySize !== undefined) pk.keySize = keySize;
  return pk;
}

function decodeCvcTlv(src: Uint8Array, t: Tlv, what: string): CvCertificate {
  const parts = childrenOf(t, what);
  const bodyTlv = parts.find((p) => p.tag === T.BODY);
  if (!bodyTlv) malformed(`${what}: body (7F4E) missing`);
  const sigTlv = parts.find((p) => p.tag === T.SIGNATURE);
  if (!sigTlv) malformed(`${what}: signature (5F37) missing`);
  const fields = childrenOf(bodyTlv, `${what} body`);
  const get = (tag: number) => fields.find((f) => f.tag === tag);
  const cpi = get(T.CPI);
  if (!cpi) malformed(`${what}: profile identifier (5F29) missing`);
  const pkTlv = get(T.PUBLIC_KEY);
  if (!pkTlv) malformed(`${what}: public key (7F49) missing`);
  const chr = get(T.CHR);
  if (!chr) malformed(`${what}: holder reference (5F20) missing`);
  const cert: CvCertificate = {
    raw: src.slice(t.start, t.end),
    body: t.value.slice(bodyTlv.start, bodyTlv.end),
    cpi: decodeSmallInteger(cpi.value, `${what} CPI`),
    chr: decodeAscii(chr.value),
    publicKey: decodePublicKey(pkTlv, what),
    signature: sigTlv.value.slice(),
  };
  const car = get(T.CAR);
  if (car) cert.car = decodeAscii(car.value);
  const chat = get(T.CHAT);
  if (chat) {
    const c = childrenOf(chat, `${what} CHAT`);
    const oid = c.find((x) => x.tag === TAG.OID);
    const role = c.find((x) => x.tag === T.ROLE);
    if (!oid || !role) malformed(`${what}: CHAT (7F4C) without OID or role`);
    cert.chat = { oid: oid.value.slice(), role: role.value.slice() };
  }
  const ced = get(T.CED);
  if (ced) cert.effectiveDate = decodeDate(ced.value, `${what} effective date`);
  const cxd = get(T.CXD);
  if (cxd) cert.expirationDate = decodeDate(cxd.value, `${what} expiration date`);
  return cert;
}

/**
 * Decodes a CV certificate or certificate request `7F21 { 7F4E {…}, 5F37 }` (spec §5.1).
 * Bytes after the `7F21` TLV are ignored.
 */
export function decodeCvc(bytes: Uint8Array): CvCertificate {
  const t = readFirst(bytes, T.CVC, 'CV certificate');
  return decodeCvcTlv(bytes, t, 'CV certificate');
}

/**
 * Decodes what GENERATE ASYMMETRIC KEY PAIR answers and the card keeps in `CExx` (spec §3.11):
 * an authenticated request `67 { 7F21, 42 outerCAR, 5F37 }` or a bare `7F21` request.
 */
export function decodeCvRequest(bytes: Uint8Array): AuthenticatedRequest {
  const what = 'CV request';
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) malformed(`${what}: no data`);
  const t = readTlv(bytes, 0);
  if (t.tag === T.CVC) return { raw: bytes.slice(t.start, t.end), certificate: decodeCvcTlv(bytes, t, what) };
  if (t.tag !== T.AUTHENTICATED_REQUEST)
    malformed(`${what}: expected tag 67 or 7F21, found ${hexTag(t.tag)}`);
  const parts = childrenOf(t, what);
  const inner = parts.find((p) => p.tag === T.CVC);
  if (!inner) malformed(`${what}: inner certificate (7F21) missing`);
  const out: AuthenticatedRequest = {
    raw: bytes.slice(t.start, t.end),
    certificate: decodeCvcTlv(t.value, inner, what),
  };
  const car = parts.find((p) => p.tag === T.CAR);
  if (car) out.outerCar = decodeAscii(car.value);
  const sig = parts.find((p) => p.tag === T.SIGNATURE);
  if (sig) out.outerSignature = sig.value.slice();
  return out;
}

/**
 * Decodes EF `2F02` without requiring the issuer: the device CVC and, when present, the issuer
 * CVC that immediately follows it (spec §5.3). pico-hsm stores a single self-signed device
 * certificate there (TRACE 15). Bytes after the second certificate are ignored.
 */
export function decodeDeviceCertificateFile(ef2f02: Uint8Array): {
  device: CvCertificate;
  issuer?: CvCertificate;
} {
  const what = 'device certificate (EF 2F02)';
  const d = readFirst(ef2f02, T.CVC, what);
  const device = decodeCvcTlv(ef2f02, d, what);
  const rest = ef2f02.subarray(d.end);
  if (rest.length === 0 || rest.every((b) => b === 0x00 || b === 0xff)) return { device };
  const issuer = decodeCvcTlv(
    rest,
    readFirst(rest, T.CVC, 'issuer certificate (EF 2F02)'),
    'issuer certificate',
  );
  return { device, issuer };
}

/**
 * Decodes EF `2F02` (spec §5.3): the device CVC immediately followed by the issuer (DICA) CVC.
 * A file without the issuer is MALFORMED_DATA; use decodeDeviceCertificateFile to accept one.
 */
export function decodeDeviceCertificates(ef2f02: Uint8Array): {
  device: CvCertificate;
  issuer: CvCertificate;
} {
  const { device, issuer } = decodeDeviceCertificateFile(ef2f02);
  if (!issuer) malformed('device certificate (EF 2F02): no issuer certificate after the device certificate');
  return { device, issuer };
}

// ---------------------------------------------------------------------------------------------
// encoding

function bytesField(v: unknown, what: string): Uint8Array {
  return requireBytes(v, what, { nonEmpty: true });
}

/**
 * Encodes the `7F49` public key template (spec §3.11, §5.1): tags in order 06 81 82 83 84 85
 * 86 87, then 02 (key size). RSA fields (modulus/exponent) and EC fields (p, a) share tags
 * 81/82 and must not both be given.
 */
export function encodeCvcPublicKey(pk: CvcPublicKey): Uint8Array {
  if (pk === null || typeof pk !== 'object') invalid('CVC public key must be an object');
  const parts: Uint8Array[] = [tlv(TAG.OID, bytesField(pk.oid, 'public key oid'))];
  if (pk.modulus !== undefined && pk.p !== undefined)
    invalid('public key has both an RSA modulus and an EC prime');
  if (pk.exponent !== undefined && pk.a !== undefined)
    invalid('public key has both an RSA exponent and an EC coefficient a');
  const rsa = pk.modulus !== undefined || pk.exponent !== undefined;
  const ecOnly = [pk.b, pk.g, pk.n, pk.point, pk.cofactor].some((x) => x !== undefined);
  if (rsa && ecOnly) invalid('public key mixes RSA and EC fields');
  const ordered: [number, Uint8Array | undefined, string][] = [
    [0x81, pk.modulus ?? pk.p, pk.modulus ? 'modulus' : 'p'],
    [0x82, pk.exponent ?? pk.a, pk.exponent ? 'exponent' : 'a'],
    [0x83, pk.b, 'b'],
    [0x84, pk.g, 'g'],
    [0x85, pk.n, 'n'],
    [0x86, pk.point, 'point'],
    [0x87, pk.cofactor, 'cofactor'],
  ];
  for (const [tag, v, name] of ordered) {
    // coefficient a may be all zeros but is written at full length (spec §3.11)
    if (v !== undefined) parts.push(tlv(tag, requireBytes(v, name)));
  }
  if (pk.keySize !== undefined) parts.push(encodeInteger(pk.keySize, 'keySize'));
  return tlv(T.PUBLIC_KEY, ...parts);
}

function encodeReference(ref: unknown, what: string): Uint8Array {
  if (typeof ref !== 'string' || !/^[\x20-\x7e]{1,16}$/.test(ref)) {
    invalid(`${what} must be 1 to 16 printable ASCII characters, got ${JSON.stringify(ref)}`);
  }
  return ascii(ref);
}

function encodeDate(date: unknown, what: string): Uint8Array {
  const m = typeof date === 'string' ? /^20(\d\d)-(\d\d)-(\d\d)$/.exec(date) : null;
  const month = m ? Number(m[2]) : 0;
  const day = m ? Number(m[3]) : 0;
  if (!m || month < 1 || month > 12 || day < 1 || day > 31) {
    invalid(`${what} must be a date YYYY-MM-DD between 2000 and 2099, got ${JSON.stringify(date)}`);
  }
  return Uint8Array.from(`${m[1]}${m[2]}${m[3]}`, (c) => c.charCodeAt(0) - 0x30);
}

/**
 * Encodes a certificate body, the complete `7F4E` TLV (spec §5.1):
 * `5F29 01 00, [42 CAR], 7F49, 5F20 CHR, [7F4C CHAT], [5F25 CED], [5F24 CXD]`.
 */
export function encodeCvcBody(f: {
  car?: string;
  publicKey: CvcPublicKey;
  chr: string;
  chat?: { oid: Uint8Array; role: Uint8Array };
  effectiveDate?: string;
  expirationDate?: string;
  outerCar?: never;
}): Uint8Array {
  if (f === null || typeof f !== 'object') invalid('CVC body fields must be an object');
  const parts: Uint8Array[] = [tlv(T.CPI, Uint8Array.of(0))];
  if (f.car !== undefined) parts.push(tlv(T.CAR, encodeReference(f.car, 'CAR')));
  parts.push(encodeCvcPublicKey(f.publicKey));
  parts.push(tlv(T.CHR, encodeReference(f.chr, 'CHR')));
  if (f.chat !== undefined) {
    if (f.chat === null || typeof f.chat !== 'object') invalid('CHAT must be { oid, role }');
    parts.push(
      tlv(
        T.CHAT,
        tlv(TAG.OID, bytesField(f.chat.oid, 'CHAT oid')),
        tlv(T.ROLE, bytesField(f.chat.role, 'CHAT role')),
      ),
    );
  }
  if (f.effectiveDate !== undefined) parts.push(tlv(T.CED, encodeDate(f.effectiveDate, 'effectiveDate')));
  if (f.expirationDate !== undefined) parts.push(tlv(T.CXD, encodeDate(f.expirationDate, 'expirationDate')));
  return tlv(T.BODY, ...parts);
}

/** `7F21 { body, 5F37 signature }` (spec §5.1); `body7f4e` is the complete `7F4E` TLV. */
export function encodeCvc(body7f4e: Uint8Array, signature: Uint8Array): Uint8Array {
  requireSingleTlv(body7f4e, T.BODY, 'CVC body');
  return tlv(T.CVC, body7f4e, tlv(T.SIGNATURE, bytesField(signature, 'signature')));
}

/** `67 { 7F21, 42 outerCAR, 5F37 outerSignature }` (spec §3.11, §5.1). */
export function encodeAuthenticatedRequest(
  cvc7f21: Uint8Array,
  outerCar: string,
  outerSignature: Uint8Array,
): Uint8Array {
  requireSingleTlv(cvc7f21, T.CVC, 'CV request');
  return tlv(
    T.AUTHENTICATED_REQUEST,
    cvc7f21,
    tlv(T.CAR, encodeReference(outerCar, 'outer CAR')),
    tlv(T.SIGNATURE, bytesField(outerSignature, 'outer signature')),
  );
}

// ---------------------------------------------------------------------------------------------
// SPKI conversion

function same(x: Uint8Array | undefined, y: Uint8Array): boolean {
  return x === undefined || bytesEqual(stripLeadingZeros(x), stripLeadingZeros(y));
}

/**
 * The named curve of an EC CVC key: prime and coefficient a (from the key or, for DICA/device
 * certificates that omit them, from `domain`) identify it as the card does; b, G and n must
 * agree with it where present.
 */
function curveOf(pk: CvcPublicKey, domain: CvcPublicKey | undefined): CurveInfo {
  const p = pk.p ?? domain?.p;
  const a = pk.a ?? (pk.p ? undefined : domain?.a);
  if (!p) malformed('EC public key without prime (81) and no domain parameters to inherit');
  const curve = curveByPrime(p, a);
  if (!curve)
    throw new ScHsmError('NOT_SUPPORTED', 'EC public key on a curve the SmartCard-HSM does not support');
  const params = curveParams(curve);
  const src = pk.p ? pk : (domain ?? pk);
  if (!same(src.b, params.b) || !same(src.g, params.g) || !same(src.n, params.n)) {
    malformed(`EC domain parameters do not match ${curve.name} (b, G or n differ)`);
  }
  return curve;
}

/**
 * CVC public key → SubjectPublicKeyInfo DER (spec §5.1, §5.3): RSA as rsaEncryption, EC as
 * id-ecPublicKey with the named-curve OID found by prime and a. DICA/device keys may carry
 * only `06` + `86` and inherit their domain parameters from `domain`.
 */
export function cvcPublicKeyToSpki(pk: CvcPublicKey, domain?: CvcPublicKey): Uint8Array {
  if (pk === null || typeof pk !== 'object' || !(pk.oid instanceof Uint8Array)) {
    invalid('CVC public key must be an object with an oid');
  }
  const kind = kindOf(pk);
  if (kind === 'rsa') {
    if (!pk.modulus || !pk.exponent) malformed('RSA public key without modulus (81) or exponent (82)');
    const rsaKey = tlv(TAG.SEQUENCE, encodeUnsignedInteger(pk.modulus), encodeUnsignedInteger(pk.exponent));
    return tlv(
      TAG.SEQUENCE,
      tlv(TAG.SEQUENCE, tlv(TAG.OID, RSA_ENCRYPTION), tlv(TAG.NULL)),
      tlv(TAG.BIT_STRING, Uint8Array.of(0), rsaKey),
    );
  }
  if (kind === 'ec') {
    if (!pk.point) malformed('EC public key without point (86)');
    const curve = curveOf(pk, domain);
    const size = curveParams(curve).size;
    if (pk.point.length !== 1 + 2 * size || pk.point[0] !== 0x04) {
      malformed(`EC public point is not an uncompressed ${curve.name} point (${pk.point.length} bytes)`);
    }
    return tlv(
      TAG.SEQUENCE,
      tlv(TAG.SEQUENCE, tlv(TAG.OID, EC_PUBLIC_KEY), tlv(TAG.OID, curve.oidBytes)),
      tlv(TAG.BIT_STRING, Uint8Array.of(0), pk.point),
    );
  }
  throw new ScHsmError('NOT_SUPPORTED', 'CVC public key is neither RSA nor EC');
}

/** Reads a SubjectPublicKeyInfo; every structural fault is MALFORMED_DATA. */
function parseSpki(spki: Uint8Array): { alg: Uint8Array; params: Tlv | undefined; key: Uint8Array } {
  const top = readFirst(spki, TAG.SEQUENCE, 'SubjectPublicKeyInfo');
  const [algTlv, keyTlv] = childrenOf(top, 'SubjectPublicKeyInfo');
  if (!algTlv || algTlv.tag !== TAG.SEQUENCE || !keyTlv || keyTlv.tag !== TAG.BIT_STRING) {
    malformed('SubjectPublicKeyInfo: expected SEQUENCE { AlgorithmIdentifier, BIT STRING }');
  }
  const [oid, params] = childrenOf(algTlv, 'SubjectPublicKeyInfo algorithm');
  if (!oid || oid.tag !== TAG.OID) malformed('SubjectPublicKeyInfo: algorithm OID missing');
  if (keyTlv.value.length < 2 || keyTlv.value[0] !== 0) malformed('SubjectPublicKeyInfo: bad key BIT STRING');
  return { alg: oid.value, params, key: keyTlv.value.subarray(1) };
}

/** The curve of explicit ECParameters `30 { 02 1, 30 { 06 prime-field, 02 p }, 30 { 04 a, 04 b, … }, … }`. */
function curveOfExplicit(params: Tlv): CurveInfo | undefined {
  const [, fieldId, curveSeq] = childrenOf(params, 'ECParameters');
  if (!fieldId || !curveSeq || fieldId.tag !== TAG.SEQUENCE || curveSeq.tag !== TAG.SEQUENCE) {
    malformed('ECParameters: field or curve missing');
  }
  const prime = childrenOf(fieldId, 'ECParameters field')[1];
  const a = childrenOf(curveSeq, 'ECParameters curve')[0];
  if (!prime || !a) malformed('ECParameters: prime or a missing');
  return curveByPrime(prime.value, a.value);
}

/**
 * SubjectPublicKeyInfo DER → CVC public key (spec §3.11, §5.1) with the TA OID `oid`
 * (e.g. `OID.TA_ECDSA_SHA256`). RSA: minimal modulus (81) and exponent (82). EC: the full
 * domain parameters of the named curve (81–85, a at full length), the uncompressed point (86)
 * and the cofactor (87 `01`).
 */
export function spkiToCvcPublicKey(spki: Uint8Array, oid: Uint8Array): CvcPublicKey {
  const taOid = requireBytes(oid, 'oid', { nonEmpty: true }).slice();
  const { alg, params, key } = parseSpki(requireBytes(spki, 'spki', { nonEmpty: true }));
  if (bytesEqual(alg, RSA_ENCRYPTION)) {
    if (hasPrefix(taOid, TA_ECDSA)) invalid('an RSA key cannot take an ECDSA TA OID');
    const rsa = readFirst(key, TAG.SEQUENCE, 'RSAPublicKey');
    const [n, e] = readAll(rsa.value);
    if (!n || !e || n.tag !== TAG.INTEGER || e.tag !== TAG.INTEGER)
      malformed('RSAPublicKey: modulus or exponent missing');
    return {
      oid: taOid,
      modulus: stripLeadingZeros(n.value).slice(),
      exponent: stripLeadingZeros(e.value).slice(),
    };
  }
  if (bytesEqual(alg, EC_PUBLIC_KEY)) {
    if (hasPrefix(taOid, TA_RSA)) invalid('an EC key cannot take an RSA TA OID');
    if (!params) malformed('EC SubjectPublicKeyInfo without curve parameters');
    const curve =
      params.tag === TAG.OID
        ? curveByOid(params.value)
        : params.tag === TAG.SEQUENCE
          ? curveOfExplicit(params)
          : undefined;
    if (!curve) invalid('EC key on a curve the SmartCard-HSM does not support');
    const cp = curveParams(curve);
    let point = key.slice();
    if (point[0] === 0x02 || point[0] === 0x03) {
      try {
        point = new Uint8Array(
          ECDH.convertKey(point, curve.name, undefined, undefined, 'uncompressed') as Buffer,
        );
      } catch (cause) {
        throw new ScHsmError('MALFORMED_DATA', `compressed ${curve.name} point is not on the curve`, {
          cause,
        });
      }
    }
    if (point.length !== 1 + 2 * cp.size || point[0] !== 0x04) {
      malformed(`EC public point is not an uncompressed ${curve.name} point (${point.length} bytes)`);
    }
    return {
      oid: taOid,
      p: cp.p.slice(),
      a: cp.a.slice(),
      b: cp.b.slice(),
      g: cp.g.slice(),
      n: cp.n.slice(),
      point,
      cofactor: cp.h.slice(),
    };
  }
  return invalid('SubjectPublicKeyInfo holds neither an RSA nor an EC key');
}

// ---------------------------------------------------------------------------------------------
// signatures

type Scheme = { kind: KeyKind; hash: string; pss?: boolean };

/** TA signature OIDs (TR-03110 / spec §5.1): last byte of id-TA-RSA-… and id-TA-ECDSA-…. */
const RSA_SCHEMES: Record<number, Scheme> = {
  1: { kind: 'rsa', hash: 'sha1' },
  2: { kind: 'rsa', hash: 'sha256' },
  3: { kind: 'rsa', hash: 'sha1', pss: true },
  4: { kind: 'rsa', hash: 'sha256', pss: true },
  5: { kind: 'rsa', hash: 'sha512' },
  6: { kind: 'rsa', hash: 'sha512', pss: true },
};
const ECDSA_SCHEMES: Record<number, Scheme> = {
  1: { kind: 'ec', hash: 'sha1' },
  2: { kind: 'ec', hash: 'sha224' },
  3: { kind: 'ec', hash: 'sha256' },
  4: { kind: 'ec', hash: 'sha384' },
  5: { kind: 'ec', hash: 'sha512' },
};

function schemeOf(oid: Uint8Array): Scheme {
  const last = oid[oid.length - 1]!;
  const s = hasPrefix(oid, TA_RSA)
    ? RSA_SCHEMES[last]
    : hasPrefix(oid, TA_ECDSA)
      ? ECDSA_SCHEMES[last]
      : undefined;
  if (!s) throw new ScHsmError('NOT_SUPPORTED', `unsupported CVC signature algorithm OID ${hexOf(oid)}`);
  return s;
}

function hexOf(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * Verifies the signature of `cert` (over its complete `7F4E` TLV, spec §3.11/§5.1) with the
 * signer's public key; the algorithm comes from the signer's TA OID (RSA v1.5/PSS with SHA-1,
 * SHA-256, SHA-512; ECDSA with SHA-1…SHA-512, plain r ‖ s). `domain` supplies EC domain
 * parameters the signer key omits. Returns false for a wrong signature; throws NOT_SUPPORTED
 * for an unknown algorithm and MALFORMED_DATA for an unusable key.
 */
export function verifyCvcSignature(
  cert: CvCertificate,
  signer: CvcPublicKey,
  domain?: CvcPublicKey,
): boolean {
  if (!cert || !(cert.body instanceof Uint8Array) || !(cert.signature instanceof Uint8Array)) {
    invalid('certificate must be a decoded CvCertificate');
  }
  const scheme = schemeOf(requireBytes(signer?.oid, 'signer oid', { nonEmpty: true }));
  const spki = cvcPublicKeyToSpki(signer, domain);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (cause) {
    throw new ScHsmError('MALFORMED_DATA', 'signer public key is not a valid key', { cause });
  }
  try {
    if (scheme.kind === 'ec') {
      return verify(scheme.hash, cert.body, { key, dsaEncoding: 'ieee-p1363' }, cert.signature);
    }
    return verify(
      scheme.hash,
      cert.body,
      scheme.pss
        ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }
        : { key, padding: constants.RSA_PKCS1_PADDING },
      cert.signature,
    );
  } catch {
    // OpenSSL refuses some malformed signatures outright (e.g. wrong length); that is a failed check
    return false;
  }
}

/**
 * Wrapped key blobs: the output of WRAP KEY and the input of UNWRAP KEY (spec §8.1, §3.16).
 *
 * ```
 * KCV(8) ‖ type(1) ‖ LV default algorithm ‖ LV allowed algorithms ‖ LV access conditions ‖ LV key OID
 *        ‖ AES-256-CBC(K_enc, IV 0, random(8) ‖ size(2) ‖ LV fields… ‖ padding) ‖ CMAC(K_mac, all before)
 * ```
 * (LV = 2-byte big-endian length + value.)
 */
import {
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { ScHsmError } from '../errors.js';
import { OID } from '../protocol/constants.js';
import {
  bigintFromBytes,
  bytesEqual,
  concat,
  padStart,
  stripLeadingZeros,
  toHex,
  wipe,
} from '../util/bytes.js';
import { type CurveInfo, type CurveName, curveByPrime, curveParams } from '../util/curves.js';
import { aesCmac, deriveWrapKeys, type KeyCheckValue, keyCheckValue } from './dkek.js';
import {
  ecKeyFromNumbers,
  ecNumbersFromKey,
  importPkcs8,
  orderLength,
  type RsaNumbers,
  rsaFromCrt,
  rsaFromPrivateExponent,
  rsaNumbersFromKey,
  rsaPkcs8,
} from './keys.js';

/** Key material for `encryptKeyBlob`: an RSA or EC private key as PKCS#8 DER, or a raw AES key. */
export type KeyMaterial = { pkcs8: Uint8Array } | { aes: Uint8Array };

/** Blob key types (spec §8.1). */
export type KeyBlobType = 'rsa' | 'rsa-crt' | 'ec' | 'aes';

const TYPE_BYTE: Record<KeyBlobType, number> = { rsa: 0x05, 'rsa-crt': 0x06, ec: 0x0c, aes: 0x0f };
const TYPE_NAME: Record<number, KeyBlobType> = { 5: 'rsa', 6: 'rsa-crt', 12: 'ec', 15: 'aes' };

/** DKEK.js writes this algorithm list for AES keys: CBC encrypt, CBC decrypt, CMAC, derive (spec §8.1). */
export const DEFAULT_AES_ALGORITHMS = Uint8Array.of(0x10, 0x11, 0x18, 0x99);

/** What `inspectKeyBlob` reads from the clear header of a blob (spec §8.1). */
export interface KeyBlobHeader {
  /** The KCV of the DKEK the blob is wrapped under. */
  kcv: KeyCheckValue;
  keyType: KeyBlobType;
  /** OID DER content, e.g. `OID.TA_ECDSA_SHA256`. */
  defaultAlgorithm: Uint8Array;
  /** The key's algorithm list (tag 91 bytes); empty when none. */
  algorithms: Uint8Array;
}

/** A decrypted key blob (spec §8.1). */
export interface DecodedKeyBlob extends KeyBlobHeader {
  /** RSA: modulus bits; EC: the curve's field size (521 for P-521); AES: key bits. */
  bits: number;
  curve?: CurveName;
  /** RSA and EC private key, PKCS#8 DER. */
  pkcs8?: Uint8Array;
  /** AES key bytes. */
  aesKey?: Uint8Array;
  /** RSA and EC public key, SubjectPublicKeyInfo DER. */
  publicKey?: Uint8Array;
}

function bad(what: string): never {
  throw new ScHsmError('INVALID_KEY_BLOB', `invalid key blob: ${what}`);
}

function lv(value: Uint8Array): Uint8Array {
  if (value.length > 0xffff)
    throw new ScHsmError('INVALID_ARGUMENT', 'a key blob field is longer than 65535 bytes');
  return concat(Uint8Array.of(value.length >> 8, value.length & 0xff), value);
}

class Reader {
  pos = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly where: string,
  ) {}
  take(n: number, what: string): Uint8Array {
    if (this.pos + n > this.bytes.length) bad(`${this.where} ends inside ${what}`);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  u16(what: string): number {
    const b = this.take(2, what);
    return (b[0]! << 8) | b[1]!;
  }
  field(what: string): Uint8Array {
    return this.take(this.u16(`the length of ${what}`), what);
  }
}

interface ParsedHeader extends KeyBlobHeader {
  body: Uint8Array;
  mac: Uint8Array;
  macInput: Uint8Array;
}

function parseHeader(blob: Uint8Array): ParsedHeader {
  if (!(blob instanceof Uint8Array)) bad('expected bytes');
  const r = new Reader(blob, 'the header');
  const kcv = r.take(8, 'the key check value').slice();
  const typeByte = r.take(1, 'the key type')[0]!;
  const keyType = TYPE_NAME[typeByte];
  if (!keyType) bad(`unknown key type ${typeByte.toString(16).padStart(2, '0')} (expected 05, 06, 0C or 0F)`);
  const defaultAlgorithm = r.field('the default algorithm').slice();
  const algorithms = r.field('the allowed algorithms').slice();
  r.field('the access conditions');
  r.field('the key OID');
  const rest = blob.length - r.pos;
  if (rest < 32 || rest % 16 !== 0) {
    bad(`after the header ${rest} bytes remain; expected encrypted data in 16-byte blocks and a 16-byte MAC`);
  }
  return {
    kcv,
    keyType,
    defaultAlgorithm,
    algorithms,
    body: blob.subarray(r.pos, blob.length - 16),
    mac: blob.subarray(blob.length - 16),
    macInput: blob.subarray(0, blob.length - 16),
  };
}

/**
 * Reads the clear header of a key blob without a DKEK (spec §8.1): which DKEK it needs (KCV), the
 * key type and its algorithms.
 * @throws ScHsmError INVALID_KEY_BLOB when the header is truncated or malformed.
 */
export function inspectKeyBlob(blob: Uint8Array): KeyBlobHeader {
  try {
    const { kcv, keyType, defaultAlgorithm, algorithms } = parseHeader(blob);
    return { kcv, keyType, defaultAlgorithm, algorithms };
  } catch (e) {
    if (e instanceof ScHsmError) throw e;
    bad('unreadable');
  }
}

function checkDkek(dkek: Uint8Array): void {
  if (!(dkek instanceof Uint8Array) || dkek.length !== 32)
    throw new ScHsmError('INVALID_ARGUMENT', 'a DKEK must be 32 bytes');
}

/** ISO 9797-1 padding method 2 to a 16-byte boundary (always at least the `80` byte). */
function pad16(plain: Uint8Array): Uint8Array {
  const out = new Uint8Array((Math.floor(plain.length / 16) + 1) * 16);
  out.set(plain);
  out[plain.length] = 0x80;
  return out;
}

/**
 * Wraps a key under a DKEK the way the card's WRAP KEY does (spec §8.1), for UNWRAP KEY on any
 * device holding that DKEK.
 *
 * - RSA: `rsaForm` `'crt'` (type 06) or `'plain'` (type 05: d, n, e). Default as CardContact's
 *   DKEK.js: CRT up to 2048 bits, private-exponent form above.
 * - EC: type 0C with the full domain parameters; key size = byte length of p × 8 (528 for P-521, as
 *   DKEK.js and pico-hsm compute it; spec §13 item 9).
 * - AES: type 0F; the allowed algorithms default to `10 11 18 99` (DKEK.js).
 * - Default algorithm: RSA `TA_RSA_V15_SHA256`, EC `TA_ECDSA_SHA256`, AES `OID.AES` unless given.
 * - Padding: ISO 9797-1 method 2 to 16 bytes, a full block when already aligned (DKEK.js's result;
 *   pico-hsm leaves aligned data unpadded; importers go by the inner lengths).
 * @throws ScHsmError INVALID_ARGUMENT for an unreadable key, an unsupported curve or AES length.
 */
export function encryptKeyBlob(
  key: KeyMaterial,
  dkek: Uint8Array,
  o: { algorithms?: Uint8Array; rsaForm?: 'plain' | 'crt'; defaultAlgorithm?: Uint8Array } = {},
): Uint8Array {
  checkDkek(dkek);
  let type: KeyBlobType;
  let fields: Uint8Array[];
  let defaultAlgorithm: Uint8Array;
  let algorithms = o.algorithms ?? new Uint8Array(0);
  if (key && 'aes' in key) {
    const k = key.aes;
    if (!(k instanceof Uint8Array) || ![16, 24, 32].includes(k.length)) {
      throw new ScHsmError('INVALID_ARGUMENT', 'an AES key must be 16, 24 or 32 bytes');
    }
    type = 'aes';
    defaultAlgorithm = OID.AES;
    algorithms = o.algorithms ?? DEFAULT_AES_ALGORITHMS;
    // AES: the size field counts bytes and the key follows without a length (spec §8.1).
    fields = [Uint8Array.of(0, k.length), k.slice()];
  } else if (key && 'pkcs8' in key) {
    const ko = importPkcs8(key.pkcs8);
    if (ko.asymmetricKeyType === 'rsa') {
      const r = rsaNumbersFromKey(ko);
      const bits = r.n.length * 8 - Math.clz32(r.n[0]!) + 24;
      const form = o.rsaForm ?? (bits <= 2048 ? 'crt' : 'plain');
      if (form !== 'crt' && form !== 'plain')
        throw new ScHsmError('INVALID_ARGUMENT', 'rsaForm must be "crt" or "plain"');
      type = form === 'crt' ? 'rsa-crt' : 'rsa';
      defaultAlgorithm = OID.TA_RSA_V15_SHA256;
      const size = Uint8Array.of(bits >> 8, bits & 0xff);
      fields =
        form === 'crt'
          ? [size, lv(r.dp), lv(r.dq), lv(r.p), lv(r.qi), lv(r.q), lv(r.n), lv(r.e)]
          : [size, lv(r.d), lv(r.n), lv(r.e)];
    } else if (ko.asymmetricKeyType === 'ec') {
      const { curve, d, q } = ecNumbersFromKey(ko);
      const cp = curveParams(curve);
      type = 'ec';
      defaultAlgorithm = OID.TA_ECDSA_SHA256;
      const bits = cp.size * 8; // 528 for P-521 (DKEK.js, pico-hsm); decoding accepts 521 too
      fields = [
        Uint8Array.of(bits >> 8, bits & 0xff),
        lv(cp.a),
        lv(cp.b),
        lv(cp.p),
        lv(cp.n),
        lv(cp.g),
        lv(d),
        lv(q),
      ];
    } else {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `a ${ko.asymmetricKeyType} key cannot be wrapped: only RSA, EC and AES keys`,
      );
    }
  } else {
    throw new ScHsmError('INVALID_ARGUMENT', 'the key must be { pkcs8 } or { aes }');
  }
  if (o.defaultAlgorithm) defaultAlgorithm = o.defaultAlgorithm;
  const header = concat(
    keyCheckValue(dkek),
    Uint8Array.of(TYPE_BYTE[type]),
    lv(defaultAlgorithm),
    lv(algorithms),
    lv(new Uint8Array(0)),
    lv(new Uint8Array(0)),
  );
  const plain = pad16(concat(new Uint8Array(randomBytes(8)), ...fields));
  const { kenc, kmac } = deriveWrapKeys(dkek);
  const cipher = createCipheriv('aes-256-cbc', kenc, new Uint8Array(16)).setAutoPadding(false);
  const body = concat(cipher.update(plain), cipher.final());
  wipe(plain);
  for (const f of fields) wipe(f);
  const macInput = concat(header, body);
  const mac = aesCmac(kmac, macInput);
  wipe(kenc);
  wipe(kmac);
  return concat(macInput, mac);
}

function spkiOf(key: KeyObject): Uint8Array {
  return new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
}

function decodeRsa(r: Reader, crt: boolean): { numbers: RsaNumbers } {
  let numbers: RsaNumbers | undefined;
  const s = (b: Uint8Array) => stripLeadingZeros(b).slice();
  if (crt) {
    const dp = r.field('dP');
    const dq = r.field('dQ');
    const p = r.field('p');
    const qi = r.field('qInv');
    const q = r.field('q');
    const n = r.field('the modulus');
    const e = r.field('the public exponent');
    numbers = rsaFromCrt({ n: s(n), e: s(e), p: s(p), q: s(q), dp: s(dp), dq: s(dq), qi: s(qi) });
    if (!numbers) bad('the RSA CRT numbers are inconsistent (p·q ≠ n or wrong exponents)');
  } else {
    const d = r.field('the private exponent');
    const n = r.field('the modulus');
    const e = r.field('the public exponent');
    numbers = rsaFromPrivateExponent({ n: s(n), e: s(e), d: s(d) });
    if (!numbers) bad('the RSA private exponent does not match the modulus and public exponent');
  }
  return { numbers };
}

function decodeEc(r: Reader, sizeField: number): { curve: CurveInfo; d: Uint8Array; q: Uint8Array } {
  const a = r.field('coefficient a');
  const b = r.field('coefficient b');
  const p = r.field('the prime p');
  const n = r.field('the order n');
  const g = r.field('the base point G');
  const d = r.field('the private key d');
  const q = r.field('the public point Q');
  // pico-hsm writes secp256r1's a with length 0 (spec §12): then the curve is found from p alone.
  const curve = a.length === 0 ? curveByPrime(p) : curveByPrime(p, a);
  if (!curve) bad('the EC domain parameters are not those of a supported curve');
  const cp = curveParams(curve);
  if (
    bigintFromBytes(b) !== bigintFromBytes(cp.b) ||
    bigintFromBytes(n) !== bigintFromBytes(cp.n) ||
    !bytesEqual(g, cp.g)
  ) {
    bad(`the EC domain parameters do not match ${curve.name}`);
  }
  // Key size: byte length of p × 8 (DKEK.js, pico: 528 for P-521) or the field size (521) are accepted.
  if (sizeField !== cp.size * 8 && sizeField !== curve.bits) {
    bad(`key size ${sizeField} does not fit ${curve.name}`);
  }
  const dn = bigintFromBytes(d);
  if (dn === 0n || dn >= bigintFromBytes(cp.n)) bad('the EC private key is out of range');
  if (q.length !== 2 * cp.size + 1 || q[0] !== 4) bad('the EC public point is not an uncompressed point');
  return { curve, d: padStart(stripLeadingZeros(d), orderLength(curve)), q: q.slice() };
}

/**
 * Unwraps a key blob with a DKEK (spec §8.1) and returns the key as PKCS#8 (RSA, EC) with its
 * public key as SPKI, or the AES key bytes. The KCV is compared first, before any decryption.
 * @throws ScHsmError KCV_MISMATCH when the blob was made under another DKEK (both KCVs in the
 *   message); MAC_INVALID when the MAC does not verify (damaged or altered blob); INVALID_KEY_BLOB
 *   for any structural fault.
 */
export function decryptKeyBlob(blob: Uint8Array, dkek: Uint8Array): DecodedKeyBlob {
  checkDkek(dkek);
  if (!(blob instanceof Uint8Array) || blob.length < 8) bad('shorter than its 8-byte key check value');
  const mine = keyCheckValue(dkek);
  if (!bytesEqual(blob.subarray(0, 8), mine)) {
    throw new ScHsmError(
      'KCV_MISMATCH',
      `the key blob was wrapped under the DKEK with key check value ${toHex(blob.subarray(0, 8))}, but this DKEK's is ${toHex(mine)}: use the DKEK shares that key was wrapped with`,
    );
  }
  const h = parseHeader(blob);
  const { kenc, kmac } = deriveWrapKeys(dkek);
  const mac = aesCmac(kmac, h.macInput);
  wipe(kmac);
  if (!timingSafeEqual(mac, h.mac)) {
    wipe(kenc);
    throw new ScHsmError(
      'MAC_INVALID',
      'the key blob MAC does not verify: the blob is damaged or was altered',
    );
  }
  const decipher = createDecipheriv('aes-256-cbc', kenc, new Uint8Array(16)).setAutoPadding(false);
  const plain = concat(decipher.update(h.body), decipher.final());
  wipe(kenc);
  try {
    return decodePlain(h, plain);
  } catch (e) {
    if (e instanceof ScHsmError && e.code === 'INVALID_KEY_BLOB') throw e;
    bad('the key material inside is not a valid key');
  } finally {
    wipe(plain);
  }
}

function decodePlain(h: ParsedHeader, plain: Uint8Array): DecodedKeyBlob {
  const out: DecodedKeyBlob = {
    kcv: h.kcv,
    keyType: h.keyType,
    bits: 0,
    defaultAlgorithm: h.defaultAlgorithm,
    algorithms: h.algorithms,
  };
  const r = new Reader(plain, 'the encrypted key data');
  r.take(8, 'the random prefix');
  const size = r.u16('the key size');
  if (h.keyType === 'aes') {
    // The AES size field counts bytes (spec §8.1).
    if (![16, 24, 32].includes(size)) bad(`AES key size ${size} bytes (expected 16, 24 or 32)`);
    out.aesKey = r.take(size, 'the AES key').slice();
    out.bits = size * 8;
    return out;
  }
  if (h.keyType === 'ec') {
    const { curve, d, q } = decodeEc(r, size);
    const { pkcs8, key } = ecKeyFromNumbers(curve, d, q);
    out.bits = curve.bits;
    out.curve = curve.name;
    out.pkcs8 = pkcs8;
    out.publicKey = spkiOf(key);
    return out;
  }
  const { numbers } = decodeRsa(r, h.keyType === 'rsa-crt');
  const { pkcs8, key } = rsaPkcs8(numbers);
  out.bits = numbers.n.length * 8 - Math.clz32(numbers.n[0]!) + 24;
  out.pkcs8 = pkcs8;
  out.publicKey = spkiOf(key);
  return out;
}

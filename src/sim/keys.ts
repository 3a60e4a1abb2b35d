/**
 * Key generation and private-key operations of the virtual card: GENERATE ASYMMETRIC KEY PAIR
 * (spec §3.11), GENERATE SYMMETRIC KEY (§3.12), SIGN (§3.13), DECIPHER / ECDH (§3.14),
 * CIPHER (§3.15). Keys are real node:crypto keys kept as PKCS#8 (RSA, EC) or raw bytes (AES).
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  sign as nodeSign,
  privateDecrypt,
  privateEncrypt,
  randomBytes,
} from 'node:crypto';
import { aesCmac } from '../dkek/index.js';
import {
  type CvcPublicKey,
  ecdsaPlainToDer,
  encodeAuthenticatedRequest,
  encodeCvc,
  encodeCvcBody,
  spkiToCvcPublicKey,
} from '../pkcs15/index.js';
import { ALGO, OID, RSA_SIZES } from '../protocol/constants.js';
import { ascii, bytesEqual, concat, readUintBE } from '../util/bytes.js';
import { curveByPrime } from '../util/curves.js';
import { readAll, type Tlv, tlv } from '../util/tlv.js';
import { type CardContext, ensureSpace, type Handler, keyObjectSize, requireUser } from './context.js';
import { bindKeyDomain, checkKeyDomain, domainDkek } from './domains.js';
import { ecdhPoint, ecdsaSignHash, ecPrivateScalar } from './ec.js';
import type { StoredKey } from './state.js';
import { fail, SW } from './sw.js';
import {
  AES_DERIVE_KDF,
  CIPHER_MAX_DATA,
  DEVICE_KEY_USE_SW,
  ECDH_RETURNS_Y,
  KEY_NOT_FOUND_SW,
  KEY_OCCUPIED_SW,
  KEYGEN_WHILE_DKEK_PENDING_SW,
  OBJECT_OVERHEAD,
  USE_COUNTER_EXHAUSTED_SW,
} from './uncertain.js';

type HashName = 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';
const HASH_BY_SUFFIX: readonly HashName[] = ['sha1', 'sha224', 'sha256', 'sha384', 'sha512'];
const HASH_LEN: Record<HashName, number> = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 };
const DIGEST_INFO_OIDS: [string, HashName][] = [
  ['2b0e03021a', 'sha1'],
  ['608648016503040204', 'sha224'],
  ['608648016503040201', 'sha256'],
  ['608648016503040202', 'sha384'],
  ['608648016503040203', 'sha512'],
];

const keyObjects = new WeakMap<StoredKey, KeyObject>();

/** The node:crypto private key of a stored RSA/EC key (cached). */
export function privateKeyOf(k: StoredKey): KeyObject {
  let ko = keyObjects.get(k);
  if (!ko) {
    ko = createPrivateKey({ key: Buffer.from(k.pkcs8!), format: 'der', type: 'pkcs8' });
    keyObjects.set(k, ko);
  }
  return ko;
}

/** The key `CC<id>` for an operation, or the SW a real card answers (spec §3.13). */
export function keyFor(ctx: CardContext, id: number): StoredKey {
  const k = ctx.state.keys.get(id);
  if (!k) fail(KEY_NOT_FOUND_SW, `no key ${id}`);
  if (id === 0) fail(DEVICE_KEY_USE_SW, 'the device key is for device authentication only');
  return k;
}

/** 6A81 when the key carries an algorithm list (tag 91) without `algo`. */
export function checkAlgorithm(k: StoredKey, algo: number): void {
  if (k.algorithms && !k.algorithms.includes(algo))
    fail(SW.FUNC_NOT_SUPPORTED, 'algorithm not allowed for this key');
}

/** Checks the key-use counter before an operation (6984 when exhausted). */
function checkCounter(k: StoredKey): void {
  if (k.useCounter !== undefined && k.useCounter === 0)
    fail(USE_COUNTER_EXHAUSTED_SW, 'key use counter exhausted');
}

/** Counts one use after a successful operation. */
function countUse(ctx: CardContext, k: StoredKey): void {
  if (k.useCounter !== undefined) {
    k.useCounter--;
    ctx.changed();
  }
}

function rsaBytes(k: StoredKey): number {
  return Math.ceil(k.bits / 8);
}

/** Raw RSA private operation on a block of modulus length (m^d mod n). */
function rsaRaw(k: StoredKey, block: Uint8Array): Uint8Array {
  if (block.length !== rsaBytes(k)) fail(SW.WRONG_DATA, 'input must have the modulus length');
  try {
    return new Uint8Array(privateDecrypt({ key: privateKeyOf(k), padding: constants.RSA_NO_PADDING }, block));
  } catch {
    fail(SW.WRONG_DATA, 'input not smaller than the modulus');
  }
}

function mgf1(hash: HashName, seed: Uint8Array, len: number): Uint8Array {
  const out: Uint8Array[] = [];
  for (let c = 0, n = 0; n < len; c++) {
    const h = createHash(hash)
      .update(seed)
      .update(Uint8Array.of(c >>> 24, (c >>> 16) & 255, (c >>> 8) & 255, c & 255))
      .digest();
    out.push(new Uint8Array(h));
    n += h.length;
  }
  return concat(...out).subarray(0, len);
}

/** EMSA-PSS encoding (RFC 8017 §9.1.1) with salt length = hash length, then the raw RSA operation. */
function rsaPssSignHash(k: StoredKey, hash: HashName, mHash: Uint8Array): Uint8Array {
  const hLen = HASH_LEN[hash];
  const emBits = k.bits - 1;
  const emLen = Math.ceil(emBits / 8);
  if (emLen < 2 * hLen + 2) fail(SW.WRONG_DATA, 'key too small for PSS with this hash');
  const salt = new Uint8Array(randomBytes(hLen));
  const h = new Uint8Array(createHash(hash).update(new Uint8Array(8)).update(mHash).update(salt).digest());
  const db = new Uint8Array(emLen - hLen - 1);
  db[db.length - hLen - 1] = 0x01;
  db.set(salt, db.length - hLen);
  const mask = mgf1(hash, h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0xff >> (8 * emLen - emBits);
  const em = concat(db, h, Uint8Array.of(0xbc));
  const block = new Uint8Array(rsaBytes(k));
  block.set(em, block.length - em.length);
  return rsaRaw(k, block);
}

/** Algo 40 input: a bare hash (length picks the hash) or a DigestInfo (spec §3.13). */
function pssInput(data: Uint8Array): { hash: HashName; mHash: Uint8Array } {
  if (data[0] === 0x30) {
    try {
      const [alg, digest] = readAll(readAll(data)[0]!.value);
      const oid = readAll(alg!.value)[0]!.value;
      const found = DIGEST_INFO_OIDS.find(([o]) => bytesEqual(Buffer.from(o, 'hex'), oid));
      if (found && digest!.tag === 0x04 && digest!.value.length === HASH_LEN[found[1]]) {
        return { hash: found[1], mHash: digest!.value };
      }
    } catch {
      // not a DigestInfo: fall through to the bare-hash interpretation
    }
  }
  const hash = (Object.keys(HASH_LEN) as HashName[]).find((h) => HASH_LEN[h] === data.length);
  if (!hash) fail(SW.WRONG_DATA, 'not a hash or DigestInfo');
  return { hash, mHash: data };
}

function signRsa(k: StoredKey, algo: number, data: Uint8Array): Uint8Array {
  const key = privateKeyOf(k);
  if (algo === ALGO.RSA_RAW) return rsaRaw(k, data);
  if (algo === ALGO.RSA_PKCS1_DIGESTINFO) {
    if (data.length > rsaBytes(k) - 11) fail(SW.WRONG_DATA, 'DigestInfo too long');
    return new Uint8Array(privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, data));
  }
  if (algo >= ALGO.RSA_PKCS1_SHA1 && algo <= ALGO.RSA_PKCS1_SHA512) {
    const hash = HASH_BY_SUFFIX[algo - ALGO.RSA_PKCS1_SHA1]!;
    return new Uint8Array(nodeSign(hash, data, { key, padding: constants.RSA_PKCS1_PADDING }));
  }
  if (algo === ALGO.RSA_PSS) {
    const { hash, mHash } = pssInput(data);
    return rsaPssSignHash(k, hash, mHash);
  }
  if (algo >= ALGO.RSA_PSS_SHA1 && algo <= ALGO.RSA_PSS_SHA512) {
    const hash = HASH_BY_SUFFIX[algo - ALGO.RSA_PSS_SHA1]!;
    return rsaPssSignHash(k, hash, new Uint8Array(createHash(hash).update(data).digest()));
  }
  fail(SW.FUNC_NOT_SUPPORTED, 'not an RSA signature algorithm');
}

function signEc(k: StoredKey, algo: number, data: Uint8Array): Uint8Array {
  if (algo === ALGO.ECDSA) {
    if (data.length === 0) fail(SW.WRONG_DATA, 'empty hash');
    return ecdsaPlainToDer(ecdsaSignHash(k.curve!, ecPrivateScalar(k.pkcs8!), data));
  }
  if (algo >= ALGO.ECDSA_SHA1 && algo <= ALGO.ECDSA_SHA512) {
    const hash = HASH_BY_SUFFIX[algo - ALGO.ECDSA_SHA1]!;
    return new Uint8Array(nodeSign(hash, data, { key: privateKeyOf(k), dsaEncoding: 'der' }));
  }
  fail(SW.FUNC_NOT_SUPPORTED, 'not an ECDSA algorithm');
}

/** SIGN `80 68 keyId algo` (spec §3.13). RSA answers the raw signature, ECDSA answers DER. */
export const sign: Handler = (ctx, cmd) => {
  requireUser(ctx);
  const k = keyFor(ctx, cmd.p1);
  checkAlgorithm(k, cmd.p2);
  checkCounter(k);
  let sig: Uint8Array;
  if (k.kind === 'rsa') sig = signRsa(k, cmd.p2, cmd.data);
  else if (k.kind === 'ec') sig = signEc(k, cmd.p2, cmd.data);
  else fail(SW.FUNC_NOT_SUPPORTED, 'AES keys do not sign');
  countUse(ctx, k);
  return { data: sig };
};

/** Removes PKCS#1 v1.5 type-2 padding; undefined when malformed. */
function unpadPkcs1Type2(block: Uint8Array): Uint8Array | undefined {
  if (block[0] !== 0x00 || block[1] !== 0x02) return undefined;
  const sep = block.indexOf(0x00, 2);
  if (sep < 10) return undefined;
  return block.slice(sep + 1);
}

/** DECIPHER `80 62 keyId algo`: RSA 21/22/23 and ECDH 80 (spec §3.14). */
export const decipher: Handler = (ctx, cmd) => {
  requireUser(ctx);
  const k = keyFor(ctx, cmd.p1);
  checkAlgorithm(k, cmd.p2);
  checkCounter(k);
  let out: Uint8Array;
  if (k.kind === 'rsa' && cmd.p2 === ALGO.RSA_DECRYPT_RAW) {
    out = rsaRaw(k, cmd.data);
  } else if (k.kind === 'rsa' && cmd.p2 === ALGO.RSA_DECRYPT_PKCS1) {
    const m = unpadPkcs1Type2(rsaRaw(k, cmd.data));
    if (!m) fail(SW.WRONG_DATA, 'padding error');
    out = m;
  } else if (k.kind === 'rsa' && cmd.p2 === ALGO.RSA_DECRYPT_OAEP) {
    if (cmd.data.length !== rsaBytes(k)) fail(SW.WRONG_DATA, 'input must have the modulus length');
    try {
      out = new Uint8Array(
        privateDecrypt(
          { key: privateKeyOf(k), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
          cmd.data,
        ),
      );
    } catch {
      fail(SW.WRONG_DATA, 'OAEP decoding error');
    }
  } else if (k.kind === 'ec' && cmd.p2 === ALGO.ECDH) {
    const point = ecdhPoint(k.curve!, ecPrivateScalar(k.pkcs8!), cmd.data);
    if (!point) fail(SW.WRONG_DATA, 'peer point not on the curve');
    out = ECDH_RETURNS_Y ? point : point.subarray(0, 1 + (point.length - 1) / 2);
  } else {
    fail(SW.FUNC_NOT_SUPPORTED, 'algorithm does not fit the key type');
  }
  countUse(ctx, k);
  return { data: out };
};

/** CIPHER `80 78 keyId algo` for AES keys: 10 CBC encrypt, 11 CBC decrypt (IV 0), 18 CMAC, 99 derive (spec §3.15). */
export const cipher: Handler = (ctx, cmd) => {
  requireUser(ctx);
  const k = keyFor(ctx, cmd.p1);
  if (k.kind !== 'aes') fail(SW.FUNC_NOT_SUPPORTED, 'not an AES key');
  checkAlgorithm(k, cmd.p2);
  checkCounter(k);
  if (cmd.data.length > CIPHER_MAX_DATA) fail(SW.WRONG_LENGTH, 'more data than the APDU buffer holds');
  const key = k.secret!;
  const cbc = `aes-${key.length * 8}-cbc`;
  let out: Uint8Array;
  switch (cmd.p2) {
    case ALGO.AES_CBC_ENCRYPT:
    case ALGO.AES_CBC_DECRYPT: {
      if (cmd.data.length === 0 || cmd.data.length % 16 !== 0)
        fail(SW.WRONG_DATA, 'data must be whole AES blocks');
      const c =
        cmd.p2 === ALGO.AES_CBC_ENCRYPT
          ? createCipheriv(cbc, key, new Uint8Array(16))
          : createDecipheriv(cbc, key, new Uint8Array(16));
      c.setAutoPadding(false);
      out = new Uint8Array(Buffer.concat([c.update(cmd.data), c.final()]));
      break;
    }
    case ALGO.AES_CMAC:
      out = aesCmac(key, cmd.data);
      break;
    case ALGO.AES_DERIVE: {
      if (AES_DERIVE_KDF !== 'hkdf-sha256') fail(SW.FUNC_NOT_SUPPORTED);
      const len = Math.min(32, cmd.ne ?? 32);
      out = new Uint8Array(hkdfSync('sha256', key, new Uint8Array(0), cmd.data, len));
      break;
    }
    default:
      fail(SW.FUNC_NOT_SUPPORTED, 'unknown AES algorithm');
  }
  countUse(ctx, k);
  return { data: out };
};

/** Key metadata tags 90 (use counter), 91 (algorithms), 92 (key domain) of GAKP/GSK (spec §3.11–3.12). */
function keyMetadata(tlvs: Tlv[]): Pick<StoredKey, 'algorithms' | 'useCounter' | 'domain'> {
  const meta: Pick<StoredKey, 'algorithms' | 'useCounter' | 'domain'> = {};
  for (const t of tlvs) {
    if (t.tag === 0x90) {
      if (t.value.length < 1 || t.value.length > 4) fail(SW.WRONG_DATA, 'use counter must be 1..4 bytes');
      meta.useCounter = readUintBE(t.value);
      if (meta.useCounter === 0) fail(SW.WRONG_DATA, 'a use counter starts at 1 or more');
    } else if (t.tag === 0x91) {
      if (t.value.length > 16) fail(SW.WRONG_DATA, 'at most 16 algorithms');
      meta.algorithms = t.value.slice();
    } else if (t.tag === 0x92) {
      if (t.value.length !== 1) fail(SW.WRONG_DATA, 'key domain must be 1 byte');
      meta.domain = t.value[0]!;
    }
  }
  return meta;
}

/**
 * Common preconditions of creating key `CC<id>` in key domain `domain` (tag 92, spec §3.10): PIN,
 * id 1..255 free, the domain exists (domains.ts) and its DKEK import is not pending.
 */
export function checkNewKey(ctx: CardContext, id: number, domain = 0): void {
  requireUser(ctx);
  if (id < 1 || id > 255) fail(SW.WRONG_P1P2, 'key id must be 1..255');
  checkKeyDomain(ctx.state, domain);
  const dkek = domainDkek(ctx.state, domain);
  if (dkek && dkek.outstanding > 0) fail(KEYGEN_WHILE_DKEK_PENDING_SW, 'DKEK import pending');
  if (ctx.state.keys.has(id)) fail(KEY_OCCUPIED_SW, `key ${id} exists`);
}

function parseTlvs(data: Uint8Array): Tlv[] {
  try {
    return readAll(data);
  } catch {
    fail(SW.WRONG_DATA, 'malformed TLVs');
  }
}

const AES_BITS: Record<number, number> = { 176: 128, 177: 192, 178: 256 };

/** GENERATE SYMMETRIC KEY `00 48 keyId B0/B1/B2` (spec §3.12). No response data. */
export const generateSymmetricKey: Handler = (ctx, cmd) => {
  const bits = AES_BITS[cmd.p2];
  if (!bits) fail(SW.WRONG_P1P2, 'unsupported AES key size');
  requireUser(ctx);
  const meta = keyMetadata(parseTlvs(cmd.data));
  checkNewKey(ctx, cmd.p1, meta.domain);
  bindKeyDomain(ctx.state, meta);
  const key: StoredKey = { kind: 'aes', bits, secret: new Uint8Array(randomBytes(bits / 8)), ...meta };
  ensureSpace(ctx.state, keyObjectSize(key));
  ctx.state.keys.set(cmd.p1, key);
  ctx.changed();
  return {};
};

/** The hash a TA OID (`04 00 7F 00 07 02 02 02 xx yy`) signs with, and whether it is PSS. */
function taSignature(oid: Uint8Array): { kind: 'rsa' | 'rsa-pss' | 'ec'; hash: HashName } | undefined {
  const prefix = OID.TA_RSA_V15_SHA256.subarray(0, 8);
  if (oid.length !== 10 || !bytesEqual(oid.subarray(0, 8), prefix)) return undefined;
  const table: Record<string, { kind: 'rsa' | 'rsa-pss' | 'ec'; hash: HashName }> = {
    '0101': { kind: 'rsa', hash: 'sha1' },
    '0102': { kind: 'rsa', hash: 'sha256' },
    '0103': { kind: 'rsa-pss', hash: 'sha1' },
    '0104': { kind: 'rsa-pss', hash: 'sha256' },
    '0105': { kind: 'rsa', hash: 'sha512' },
    '0106': { kind: 'rsa-pss', hash: 'sha512' },
    '0201': { kind: 'ec', hash: 'sha1' },
    '0202': { kind: 'ec', hash: 'sha224' },
    '0203': { kind: 'ec', hash: 'sha256' },
    '0204': { kind: 'ec', hash: 'sha384' },
    '0205': { kind: 'ec', hash: 'sha512' },
  };
  return table[Buffer.from(oid.subarray(8)).toString('hex')];
}

/** Signs `data` with a stored key the way a CVC with this TA OID requires (plain r‖s for ECDSA). */
function cvcSign(
  k: StoredKey,
  ta: { kind: 'rsa' | 'rsa-pss' | 'ec'; hash: HashName },
  data: Uint8Array,
): Uint8Array {
  const key = privateKeyOf(k);
  if (ta.kind === 'ec') return new Uint8Array(nodeSign(ta.hash, data, { key, dsaEncoding: 'ieee-p1363' }));
  if (ta.kind === 'rsa-pss') {
    return rsaPssSignHash(k, ta.hash, new Uint8Array(createHash(ta.hash).update(data).digest()));
  }
  return new Uint8Array(nodeSign(ta.hash, data, { key, padding: constants.RSA_PKCS1_PADDING }));
}

/** Outer signature of an authenticated request by the device key CC00 (spec §3.11). */
export function deviceSign(ctx: CardContext, data: Uint8Array): Uint8Array {
  const dev = ctx.state.keys.get(0)!;
  return new Uint8Array(nodeSign('sha256', data, { key: privateKeyOf(dev), dsaEncoding: 'ieee-p1363' }));
}

/** GENERATE ASYMMETRIC KEY PAIR `00 46 keyId 00` (spec §3.11): answers and stores (CE<id>) the authenticated CV request. */
export const generateKeyPair: Handler = (ctx, cmd) => {
  requireUser(ctx);
  const tlvs = parseTlvs(cmd.data);
  checkNewKey(ctx, cmd.p1, keyMetadata(tlvs).domain);
  const get = (tag: number) => tlvs.find((t) => t.tag === tag)?.value;
  const pkTemplate = get(0x7f49);
  const chrBytes = get(0x5f20);
  if (!pkTemplate || !chrBytes) fail(SW.WRONG_DATA, 'public key template and CHR required');
  const car = get(0x42);
  const pk = parseTlvs(pkTemplate);
  const pget = (tag: number) => pk.find((t) => t.tag === tag)?.value;
  const oid = pget(0x06);
  if (!oid) fail(SW.WRONG_DATA, 'public key OID missing');
  const ta = taSignature(oid);
  if (!ta) fail(SW.WRONG_DATA, 'unsupported public key algorithm');
  const meta = keyMetadata(tlvs);
  bindKeyDomain(ctx.state, meta);

  let key: StoredKey;
  let spki: Uint8Array;
  if (ta.kind === 'ec') {
    const p = pget(0x81);
    if (!p) fail(SW.WRONG_DATA, 'EC domain parameters required');
    const curve = curveByPrime(p, pget(0x82));
    if (!curve) fail(SW.WRONG_DATA, 'unsupported curve');
    const kp = generateKeyPairSync('ec', { namedCurve: curve.name });
    key = { kind: 'ec', curve: curve.name, bits: curve.bits, pkcs8: derOf(kp.privateKey, 'pkcs8'), ...meta };
    spki = derOf(kp.publicKey, 'spki');
  } else {
    const sizeBytes = pget(0x02);
    const expBytes = pget(0x82) ?? Uint8Array.of(0x01, 0x00, 0x01);
    const bits = sizeBytes ? readUintBE(sizeBytes) : 2048;
    if (!(RSA_SIZES as readonly number[]).includes(bits)) fail(SW.WRONG_DATA, 'unsupported RSA key size');
    const e = readUintBE(expBytes);
    if (expBytes.length > 4 || e < 3 || e % 2 === 0) fail(SW.WRONG_DATA, 'unsupported public exponent');
    const kp = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: e });
    key = { kind: 'rsa', bits, pkcs8: derOf(kp.privateKey, 'pkcs8'), ...meta };
    spki = derOf(kp.publicKey, 'spki');
  }

  const publicKey: CvcPublicKey = spkiToCvcPublicKey(spki, oid);
  const chr = Buffer.from(chrBytes).toString('latin1');
  const body = encodeCvcBody(
    car ? { car: Buffer.from(car).toString('latin1'), publicKey, chr } : { publicKey, chr },
  );
  const cvc = encodeCvc(body, cvcSign(key, ta, body));
  const outerCar = ctx.state.deviceChr;
  const request = encodeAuthenticatedRequest(
    cvc,
    outerCar,
    deviceSign(ctx, concat(cvc, tlv(0x42, ascii(outerCar)))),
  );

  const ce = 0xce00 | cmd.p1;
  const oldCe = ctx.state.files.get(ce);
  ensureSpace(
    ctx.state,
    keyObjectSize(key) + request.length + (oldCe ? 0 : OBJECT_OVERHEAD),
    oldCe?.length ?? 0,
  );
  ctx.state.keys.set(cmd.p1, key);
  ctx.state.files.set(ce, request);
  ctx.changed();
  return { data: request };
};

function derOf(k: KeyObject, type: 'pkcs8' | 'spki'): Uint8Array {
  return new Uint8Array(
    type === 'pkcs8' ? k.export({ type, format: 'der' }) : k.export({ type, format: 'der' }),
  );
}

/**
 * RSA paddings done on the host. OpenSC never declares PKCS#1 v1.5 padding for this card and sends
 * every RSA signature host-padded with algorithm 20; decryption is raw (algorithm 21) with the
 * padding removed on the host (spec §3.13, §3.14). We do the same: it works on every firmware.
 */
import { createHash } from 'node:crypto';
import { ScHsmError } from '../errors.js';
import { concat, fromHex } from '../util/bytes.js';

export type HashName = 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';

export const HASH_LENGTH: Record<HashName, number> = {
  sha1: 20,
  sha224: 28,
  sha256: 32,
  sha384: 48,
  sha512: 64,
};

/** DER prefixes of DigestInfo { AlgorithmIdentifier, OCTET STRING hash } (RFC 8017 §9.2 note 1). */
const DIGEST_INFO_PREFIX: Record<HashName, Uint8Array> = {
  sha1: fromHex('3021300906052b0e03021a05000414'),
  sha224: fromHex('302d300d06096086480165030402040500041c'),
  sha256: fromHex('3031300d060960864801650304020105000420'),
  sha384: fromHex('3041300d060960864801650304020205000430'),
  sha512: fromHex('3051300d060960864801650304020305000440'),
};

export function hashOf(name: HashName, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash(name).update(data).digest());
}

export function hashByLength(len: number): HashName | undefined {
  return (Object.keys(HASH_LENGTH) as HashName[]).find((h) => HASH_LENGTH[h] === len);
}

export function digestInfo(name: HashName, hash: Uint8Array): Uint8Array {
  if (hash.length !== HASH_LENGTH[name]) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `a ${name} hash is ${HASH_LENGTH[name]} bytes; got ${hash.length}`,
    );
  }
  return concat(DIGEST_INFO_PREFIX[name], hash);
}

/** If `data` is a DigestInfo we know, returns the hash inside it. */
export function parseDigestInfo(data: Uint8Array): { hash: HashName; digest: Uint8Array } | undefined {
  for (const h of Object.keys(DIGEST_INFO_PREFIX) as HashName[]) {
    const p = DIGEST_INFO_PREFIX[h];
    if (data.length === p.length + HASH_LENGTH[h] && p.every((b, i) => data[i] === b)) {
      return { hash: h, digest: data.subarray(p.length) };
    }
  }
  return undefined;
}

/** EMSA-PKCS1-v1_5 block type 1: `00 01 FF… 00 ‖ data` of `k` bytes (RFC 8017 §9.2). */
export function pkcs1SignaturePad(data: Uint8Array, k: number): Uint8Array {
  if (data.length > k - 11) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `data of ${data.length} bytes is too long for a ${k * 8}-bit RSA key`,
    );
  }
  const out = new Uint8Array(k).fill(0xff);
  out[0] = 0;
  out[1] = 1;
  out[k - data.length - 1] = 0;
  out.set(data, k - data.length);
  return out;
}

/** Removes PKCS#1 v1.5 encryption padding (block type 2, RFC 8017 §7.2.2). */
export function pkcs1DecryptionUnpad(block: Uint8Array): Uint8Array {
  if (block.length < 11 || block[0] !== 0 || block[1] !== 2) {
    throw new ScHsmError('INCORRECT_DATA', 'decryption error: not a PKCS#1 v1.5 encryption block');
  }
  let i = 2;
  while (i < block.length && block[i] !== 0) i++;
  if (i >= block.length || i < 10)
    throw new ScHsmError('INCORRECT_DATA', 'decryption error: bad PKCS#1 v1.5 padding');
  return block.slice(i + 1);
}

function mgf1(hash: HashName, seed: Uint8Array, len: number): Uint8Array {
  const out = new Uint8Array(len);
  const hl = HASH_LENGTH[hash];
  for (let c = 0, o = 0; o < len; c++, o += hl) {
    const cnt = Uint8Array.of(c >>> 24, (c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff);
    const h = hashOf(hash, concat(seed, cnt));
    out.set(h.subarray(0, Math.min(hl, len - o)), o);
  }
  return out;
}

/** Removes OAEP padding (RFC 8017 §7.1.2) from a raw decryption block of the modulus length. */
export function oaepUnpad(block: Uint8Array, hash: HashName, label = new Uint8Array(0)): Uint8Array {
  const hl = HASH_LENGTH[hash];
  const k = block.length;
  const bad = () => new ScHsmError('INCORRECT_DATA', 'decryption error: bad OAEP padding');
  if (k < 2 * hl + 2 || block[0] !== 0) throw bad();
  const maskedSeed = block.subarray(1, 1 + hl);
  const maskedDb = block.subarray(1 + hl);
  const seedMask = mgf1(hash, maskedDb, hl);
  const seed = maskedSeed.map((b, i) => b ^ seedMask[i]!);
  const dbMask = mgf1(hash, seed, k - hl - 1);
  const db = maskedDb.map((b, i) => b ^ dbMask[i]!);
  const lHash = hashOf(hash, label);
  let ok = lHash.every((b, i) => db[i] === b);
  let i = hl;
  while (i < db.length && db[i] === 0) i++;
  if (i >= db.length || db[i] !== 1) ok = false;
  if (!ok) throw bad();
  return db.slice(i + 1);
}

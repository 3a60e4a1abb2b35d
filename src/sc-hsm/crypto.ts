/**
 * What the card computes with a key: SIGN (spec §3.13), DECIPHER for RSA and ECDH (spec §3.14);
 * and GET CHALLENGE, its random numbers (spec §3.17). Hashing, PKCS#1 v1.5 signature padding and
 * the removal of decryption padding happen on the host, as OpenSC does (padding.ts).
 */
import { ScHsmError } from '../errors.js';
import { ecdsaDerToPlain } from '../pkcs15/index.js';
import { ALGO, CLA_ISO, CLA_PROPRIETARY, INS } from '../protocol/constants.js';
import { concat, fresh, padStart } from '../util/bytes.js';
import type { SessionContext } from './context.js';
import { algorithmNames } from './key-restrictions.js';
import { type KeyInfo, keyInfo, spkiPoint } from './keys.js';
import {
  digestInfo,
  type HashName,
  hashByLength,
  hashOf,
  oaepUnpad,
  parseDigestInfo,
  pkcs1DecryptionUnpad,
  pkcs1SignaturePad,
} from './padding.js';
import { checkBytes, checkInt, checkKeyRef, checkObject, checkOneOf, typeName } from './validate.js';

export type SignMechanism =
  | 'ECDSA'
  | 'ECDSA-SHA1'
  | 'ECDSA-SHA224'
  | 'ECDSA-SHA256'
  | 'ECDSA-SHA384'
  | 'ECDSA-SHA512'
  | 'RSA-RAW'
  | 'RSA-PKCS1'
  | 'RSA-PKCS1-SHA1'
  | 'RSA-PKCS1-SHA224'
  | 'RSA-PKCS1-SHA256'
  | 'RSA-PKCS1-SHA384'
  | 'RSA-PKCS1-SHA512'
  | 'RSA-PSS'
  | 'RSA-PSS-SHA1'
  | 'RSA-PSS-SHA224'
  | 'RSA-PSS-SHA256'
  | 'RSA-PSS-SHA384'
  | 'RSA-PSS-SHA512';

export type DecryptMechanism = 'RSA-RAW' | 'RSA-PKCS1' | 'RSA-OAEP-SHA1' | 'RSA-OAEP-SHA256';

const HASH_OF_SUFFIX: Record<string, HashName> = {
  SHA1: 'sha1',
  SHA224: 'sha224',
  SHA256: 'sha256',
  SHA384: 'sha384',
  SHA512: 'sha512',
};

/** What the card answers a command on key `keyRef` (SIGN, DECIPHER, WRAP KEY) when it refuses. */
export function keyOpOverrides(keyRef: number) {
  return {
    0x6982: ['SECURITY_STATUS', 'the user PIN must be verified first'],
    0x6a88: ['KEY_NOT_FOUND', `no key with key reference ${keyRef}`],
    0x6a82: ['KEY_NOT_FOUND', `no key with key reference ${keyRef}`],
    0x6a81: ['ALGORITHM_NOT_ALLOWED', `key ${keyRef} does not allow this algorithm`],
    0x6984: ['USE_COUNTER_EXHAUSTED', `key ${keyRef}: key use counter exhausted`],
  } as const;
}

const HASH_OFFSET: Record<HashName, number> = { sha1: 1, sha224: 2, sha256: 3, sha384: 4, sha512: 5 };

/**
 * The SIGN algorithm bytes (P2, spec §3.13) that can make a signature by `mechanism`, best first:
 * the host-hash form (ECDSA `70` over the hash, RSA `20` host-padded, RSA-PSS `40` over the hash),
 * then the forms where the card hashes (`71`–`75`, `31`–`35`, `41`–`45`) and, for PKCS#1 v1.5,
 * the card padding a DigestInfo (`30`). A key whose algorithm list (tag 91) has none of them
 * cannot make that signature.
 */
export function signAlgorithmChoices(mechanism: SignMechanism): number[] {
  const [family, pad, hash] = parseMechanism(mechanism);
  const off = hash ? HASH_OFFSET[hash] : undefined;
  if (family === 'ECDSA') return off ? [ALGO.ECDSA, ALGO.ECDSA + off] : [ALGO.ECDSA];
  if (pad === 'RAW') return [ALGO.RSA_RAW];
  if (pad === 'PKCS1')
    return off
      ? [ALGO.RSA_RAW, ALGO.RSA_PKCS1_DIGESTINFO + off, ALGO.RSA_PKCS1_DIGESTINFO]
      : [ALGO.RSA_RAW, ALGO.RSA_PKCS1_DIGESTINFO];
  return off ? [ALGO.RSA_PSS, ALGO.RSA_PSS + off] : [ALGO.RSA_PSS];
}

/**
 * The one SIGN algorithm byte (P2, spec §3.13) that {@link sign} (and so `csr`, `cert self-sign`,
 * `pka respond` and WebCrypto `subtle.sign`) sends for a signature by `mechanism` with `key`: the
 * first of {@link signAlgorithmChoices} that the key's algorithm list allows; the host-hash form
 * when the list is unknown. ALGORITHM_NOT_ALLOWED (nothing sent) naming what the list allows when
 * it allows none of them; INVALID_ARGUMENT when the mechanism does not fit the key's type. Public
 * key data only: usable before the PIN (precheck.ts).
 */
export function signAlgorithm(
  key: Pick<KeyInfo, 'keyRef' | 'type' | 'algorithms'>,
  mechanism: SignMechanism,
): number {
  const choices = signAlgorithmChoices(mechanism);
  const want = mechanism.startsWith('ECDSA') ? 'ec' : 'rsa';
  if (key.type !== want)
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `key ${key.keyRef} is ${key.type.toUpperCase()}, not ${want.toUpperCase()}`,
    );
  if (!key.algorithms) return choices[0]!;
  const list = key.algorithms;
  const found = choices.find((b) => list.includes(b));
  if (found !== undefined) return found;
  throw new ScHsmError(
    'ALGORITHM_NOT_ALLOWED',
    `key ${key.keyRef} may not make a ${mechanism} signature: its algorithm list allows only ${algorithmNames(list).join(', ')} (it would need ${algorithmNames(Uint8Array.from(choices)).join(' or ')}). Nothing was sent.`,
    {
      fix: 'sign with a hash the key allows (sc-hsm-ts csr or cert self-sign --hash sha256 for an ECDSA-SHA256 key), or use a key whose list has the algorithm',
    },
  );
}

/** SIGN (`80 68 <keyRef> <algorithm> <data>`, extended, spec §3.13): the card's answer as it is. */
export async function cardSign(
  ctx: SessionContext,
  keyRef: number,
  algo: number,
  data: Uint8Array,
): Promise<Uint8Array> {
  const r = await ctx.channel.exchange(
    { cla: CLA_PROPRIETARY, ins: INS.SIGN, p1: keyRef, p2: algo, data, ne: 512, extended: true },
    'SIGN',
    { overrides: keyOpOverrides(keyRef) as never },
  );
  return r.data;
}

/** INVALID_ARGUMENT when the card is to hash `data` itself (one APDU, ≤ 1024 bytes here). */
function checkCardHashLength(keyRef: number, data: Uint8Array): void {
  if (data.length > 1024)
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `key ${keyRef} allows only signing with the hash computed by the card (algorithm list), which takes the message in one APDU: at most 1024 bytes; got ${data.length}`,
    );
}

/**
 * A signature by `mechanism` with the algorithm {@link signAlgorithm} picks: ECDSA over the
 * (truncated) hash with algorithm 70; RSA PKCS#1 v1.5 padded on the host and signed raw (20);
 * RSA-PSS padded by the card (40) from the bare hash. A key whose list allows only the card-hash
 * forms gets the message itself (`71`–`75`, `31`–`35`, `41`–`45`) or, PKCS#1, the DigestInfo (30).
 */
export async function sign(
  ctx: SessionContext,
  keyRef: number,
  mechanism: SignMechanism,
  data: Uint8Array,
  opts: { format?: 'der' | 'raw' } = {},
): Promise<Uint8Array<ArrayBuffer>> {
  checkKeyRef(keyRef);
  checkBytes(data, 'the data to sign');
  checkObject(opts, 'the sign options', { format: 'string' });
  if (opts.format !== undefined) checkOneOf(opts.format, ['der', 'raw'], 'the signature format');
  const [family, pad, hashSuffix] = parseMechanism(mechanism);
  const key = ctx.keyCache.get(keyRef) ?? (await keyInfo(ctx, keyRef));
  const algo = signAlgorithm(key, mechanism);
  if (family === 'ECDSA') {
    const size = Math.ceil(key.bits / 8);
    let input = data;
    if (algo !== ALGO.ECDSA) checkCardHashLength(keyRef, data);
    else {
      if (hashSuffix) input = hashOf(hashSuffix, data);
      if (input.length > size) input = input.subarray(0, size);
    }
    const der = await cardSign(ctx, keyRef, algo, input);
    if (opts.format === 'raw') {
      return fresh(ecdsaDerToPlain(der, size));
    }
    return fresh(der);
  }
  const k = key.bits / 8;
  if (pad === 'RAW') {
    if (data.length !== k)
      throw new ScHsmError('INVALID_ARGUMENT', `RSA-RAW needs exactly ${k} bytes; got ${data.length}`);
    return fresh(await cardSign(ctx, keyRef, ALGO.RSA_RAW, data));
  }
  if (pad === 'PKCS1') {
    const di = hashSuffix ? digestInfo(hashSuffix, hashOf(hashSuffix, data)) : data;
    if (algo === ALGO.RSA_RAW)
      return fresh(padStart(await cardSign(ctx, keyRef, ALGO.RSA_RAW, pkcs1SignaturePad(di, k)), k));
    if (algo === ALGO.RSA_PKCS1_DIGESTINFO) return fresh(padStart(await cardSign(ctx, keyRef, algo, di), k));
    checkCardHashLength(keyRef, data);
    return fresh(padStart(await cardSign(ctx, keyRef, algo, data), k));
  }
  // PSS: the card pads (salt length = hash length); it takes the bare hash
  if (algo !== ALGO.RSA_PSS) {
    checkCardHashLength(keyRef, data);
    return fresh(padStart(await cardSign(ctx, keyRef, algo, data), k));
  }
  let hash: Uint8Array;
  if (hashSuffix) hash = hashOf(hashSuffix, data);
  else {
    const inner = parseDigestInfo(data);
    hash = inner ? inner.digest : data;
    if (!hashByLength(hash.length)) {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `RSA-PSS expects a SHA-1/224/256/384/512 hash; got ${data.length} bytes`,
      );
    }
  }
  return fresh(padStart(await cardSign(ctx, keyRef, ALGO.RSA_PSS, hash), k));
}

/** DECIPHER (`80 62 <keyRef> 21 <cryptogram>`, extended, spec §3.14), then the padding removed on the host. */
export async function decrypt(
  ctx: SessionContext,
  keyRef: number,
  mechanism: DecryptMechanism,
  cryptogram: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  checkKeyRef(keyRef);
  checkOneOf(
    mechanism,
    ['RSA-RAW', 'RSA-PKCS1', 'RSA-OAEP-SHA1', 'RSA-OAEP-SHA256'],
    'the decryption mechanism',
  );
  checkBytes(cryptogram, 'the cryptogram');
  const key = await keyInfo(ctx, keyRef);
  if (key.type !== 'rsa')
    throw new ScHsmError('INVALID_ARGUMENT', `key ${keyRef} is ${key.type.toUpperCase()}, not RSA`);
  const k = key.bits / 8;
  if (cryptogram.length !== k) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `the cryptogram for a ${key.bits}-bit key is ${k} bytes; got ${cryptogram.length}`,
    );
  }
  const r = await ctx.channel.exchange(
    {
      cla: CLA_PROPRIETARY,
      ins: INS.DECIPHER,
      p1: keyRef,
      p2: ALGO.RSA_DECRYPT_RAW,
      data: cryptogram,
      ne: 512,
      extended: true,
    },
    'DECIPHER',
    { overrides: keyOpOverrides(keyRef) as never },
  );
  const block = padStart(r.data, k);
  if (mechanism === 'RSA-RAW') return fresh(block);
  if (mechanism === 'RSA-PKCS1') return fresh(pkcs1DecryptionUnpad(block));
  if (mechanism === 'RSA-OAEP-SHA1') return fresh(oaepUnpad(block, 'sha1'));
  if (mechanism === 'RSA-OAEP-SHA256') return fresh(oaepUnpad(block, 'sha256'));
  throw new ScHsmError('INVALID_ARGUMENT', `unknown decryption mechanism ${mechanism as string}`);
}

/** DECIPHER with algorithm 80 (`80 62 <keyRef> 80 04‖X‖Y`, extended, spec §3.14): the shared X. */
export async function ecdh(
  ctx: SessionContext,
  keyRef: number,
  peer: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  checkKeyRef(keyRef);
  checkBytes(peer, "the peer's public key", 1);
  const key = await keyInfo(ctx, keyRef);
  if (key.type !== 'ec')
    throw new ScHsmError('INVALID_ARGUMENT', `key ${keyRef} is ${key.type.toUpperCase()}, not EC`);
  const point = peer[0] === 0x04 ? peer : spkiPoint(peer);
  const size = Math.ceil(key.bits / 8);
  if (point.length !== 1 + 2 * size) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `the peer point must be 04‖X‖Y of ${1 + 2 * size} bytes for this curve`,
    );
  }
  const r = await ctx.channel.exchange(
    {
      cla: CLA_PROPRIETARY,
      ins: INS.DECIPHER,
      p1: keyRef,
      p2: ALGO.ECDH,
      data: point,
      ne: 512,
      extended: true,
    },
    'DECIPHER (ECDH)',
    { overrides: keyOpOverrides(keyRef) as never },
  );
  // The card answers 04‖X (pico) or 04‖X‖Y: take bytes 1..1+fieldLen either way (spec §3.14).
  if (r.data.length < 1 + size)
    throw new ScHsmError('MALFORMED_RESPONSE', 'ECDH answer shorter than the field length');
  return fresh(r.data.slice(1, 1 + size));
}

/** GET CHALLENGE (`00 84 00 00 Le`, spec §3.17), in calls of at most 1024 bytes (256 without extended length). */
export async function getChallenge(ctx: SessionContext, length: number): Promise<Uint8Array<ArrayBuffer>> {
  checkInt(length, 1, 65536, 'the challenge length');
  const parts: Uint8Array[] = [];
  for (let left = length; left > 0; ) {
    const n = Math.min(left, ctx.transport.extendedLength === false ? 256 : 1024);
    const r = await ctx.channel.exchange(
      { cla: CLA_ISO, ins: INS.GET_CHALLENGE, p1: 0, p2: 0, ne: n },
      'GET CHALLENGE',
    );
    if (r.data.length !== n)
      throw new ScHsmError('MALFORMED_RESPONSE', `GET CHALLENGE returned ${r.data.length} of ${n} bytes`);
    parts.push(r.data);
    left -= n;
  }
  return fresh(concat(...parts));
}

function parseMechanism(
  m: SignMechanism,
): ['ECDSA' | 'RSA', 'RAW' | 'PKCS1' | 'PSS' | undefined, HashName | undefined] {
  if (typeof m !== 'string') {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `the signature mechanism must be a name such as "ECDSA-SHA256"; got ${typeName(m)}`,
    );
  }
  const parts = m.split('-');
  if (parts[0] === 'ECDSA') {
    const h = parts[1] ? HASH_OF_SUFFIX[parts[1]] : undefined;
    if (parts[1] && !h) throw new ScHsmError('INVALID_ARGUMENT', `unknown mechanism ${m}`);
    return ['ECDSA', undefined, h];
  }
  if (parts[0] === 'RSA' && (parts[1] === 'RAW' || parts[1] === 'PKCS1' || parts[1] === 'PSS')) {
    const h = parts[2] ? HASH_OF_SUFFIX[parts[2]] : undefined;
    if (parts[2] && !h) throw new ScHsmError('INVALID_ARGUMENT', `unknown mechanism ${m}`);
    if (parts[1] === 'RAW' && parts[2]) throw new ScHsmError('INVALID_ARGUMENT', `unknown mechanism ${m}`);
    return ['RSA', parts[1], h];
  }
  throw new ScHsmError('INVALID_ARGUMENT', `unknown signature mechanism "${m}"`);
}

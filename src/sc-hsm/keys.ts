/**
 * Keys on the device: GENERATE ASYMMETRIC KEY PAIR (spec §3.11) and GENERATE SYMMETRIC KEY
 * (spec §3.12) with the PKCS#15 description OpenSC writes into C4xx, the listing of keys from their
 * files (key CCxx, description C4xx, CV request or certificate CExx), and their deletion.
 *
 * A key *reference* (1–255, the low byte of CCxx, P1 of every key command) and a PKCS#15 *ID*
 * (CKA_ID, bytes) are different things: both are kept side by side in {@link KeyInfo}.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import type { SwOverrides } from '../apdu/status.js';
import { ScHsmError } from '../errors.js';
import {
  type CvcPublicKey,
  cvcPublicKeyToSpki,
  decodeCvRequest,
  decodeKeyDescription,
  encodeCvcBody,
  KEY_USAGE,
  type KeyDescription,
} from '../pkcs15/index.js';
import { AES_KEYGEN_ALGO, ALGO, CLA_ISO, INS, OID, PREFIX } from '../protocol/constants.js';
import { bytesEqual, concat, fresh, toHex, uintBE } from '../util/bytes.js';
import {
  type CurveInfo,
  type CurveName,
  type CurveNameOrAlias,
  curveByName,
  curveParams,
} from '../util/curves.js';
import { readAll, readTlv } from '../util/tlv.js';
import type { SessionContext } from './context.js';
import { deviceChr } from './device.js';
import { checkKeyDomainReady, keyDomainTlv, MAX_KEY_DOMAIN } from './domains.js';
import { creatingKey, writeNewKeyDescription } from './key-creation.js';
import {
  checkAlgorithmList,
  checkUseCounter,
  readKeyRestrictions,
  restrictionTlvs,
  usageForAlgorithms,
} from './key-restrictions.js';
import { certificateSpki } from './objects.js';
import {
  checkBytes,
  checkInt,
  checkKeyRef,
  checkLabel,
  checkObject,
  checkOneOf,
  checkRsaBits,
  typeName,
} from './validate.js';

/**
 * `unknown`: a key object CCxx with neither a readable description (C4xx) nor a public key
 * (CExx), e.g. left by an interrupted restore or written by another tool.
 */
export type KeyType = 'rsa' | 'ec' | 'aes' | 'unknown';

export interface KeyInfo {
  /** Key reference: the low byte of the key's file CCxx, used by SIGN/WRAP (P1). */
  keyRef: number;
  /** PKCS#15 / PKCS#11 ID (CKA_ID), a different thing from the key reference. */
  id: Uint8Array;
  label?: string;
  type: KeyType;
  /** RSA modulus length, EC field size, or AES key length, in bits. */
  bits: number;
  curve?: CurveName;
  /** PKCS#15 key usage flags (spec §6). */
  usage: number;
  /** PKCS#15 key access flags; undefined when the description carries none. */
  access?: number;
  /** True when CExx holds an X.509 certificate (not just the CV request of key generation). */
  hasCertificate: boolean;
  /**
   * SubjectPublicKeyInfo DER, from the CV request or certificate in CExx; over an ArrayBuffer of
   * its own, so it is a `BufferSource` for `subtle.importKey('spki', …)`.
   */
  publicKey?: Uint8Array<ArrayBuffer>;
  /** The decoded description, as stored in C4xx. */
  description?: KeyDescription;
  /**
   * Allowed algorithms (tag 91 at generation, kept in the key blob), as the card reports them in
   * the key's FCP (key-restrictions.ts); undefined when the key has none or the card does not say.
   * `algorithmNames()` turns them into names.
   */
  algorithms?: Uint8Array;
  /** Private-key operations left (tag 90), as the card reports them; undefined when unlimited or not reported. */
  useCounter?: number;
  /** Key domain (tag 92, spec §3.10) as the key's FCP reports it; undefined when the card does not say. */
  domain?: number;
}

export type KeyPairSpec =
  | {
      type: 'rsa';
      bits: number;
      label: string;
      id?: Uint8Array;
      keyRef?: number;
      publicExponent?: number;
      /** Allowed algorithms (tag 91): bytes, or build them from names with `algorithmBytes`. */
      algorithms?: Uint8Array;
      /** Key-use counter (tag 90), 1..2³²−1: private-key operations before the card refuses the key. */
      useCounter?: number;
      /** Key domain (tag 92, spec §3.10): the key is wrapped under that domain's DKEK; default 0. */
      domain?: number;
    }
  | {
      type: 'ec';
      /** The card's curve name or an alias (`prime256v1`, `P-256`, `brainpoolP384r1`, …; case-insensitive at run time). */
      curve: CurveNameOrAlias;
      label: string;
      id?: Uint8Array;
      keyRef?: number;
      /** Allowed algorithms (tag 91): bytes, or build them from names with `algorithmBytes`. */
      algorithms?: Uint8Array;
      /** Key-use counter (tag 90), 1..2³²−1: private-key operations before the card refuses the key. */
      useCounter?: number;
      /** Key domain (tag 92, spec §3.10): the key is wrapped under that domain's DKEK; default 0. */
      domain?: number;
    };

export interface GeneratedKey {
  keyRef: number;
  id: Uint8Array;
  /** SubjectPublicKeyInfo DER (over an ArrayBuffer of its own: a `BufferSource`). */
  publicKey: Uint8Array<ArrayBuffer>;
  /** The authenticated CV request the card returned (also stored in CExx by the card). */
  request: Uint8Array;
}

/** The inner CAR OpenSC puts into key generation requests (spec §3.11). */
export const REQUEST_CAR = 'UTCA00001';

/** What both key generation commands answer when they refuse. */
const KEYGEN_OVERRIDES: SwOverrides = {
  0x6982: ['SECURITY_STATUS', 'key generation needs the user PIN: verify it first'],
  0x6985: [
    'DKEK_INCOMPLETE',
    'the device refuses new keys while DKEK shares are outstanding: import them first',
  ],
  0x6a84: ['MEMORY_FULL', 'the device has no room for another key'],
};

/**
 * Loads an SPKI with node:crypto, turning OpenSSL's refusal (e.g. a point off the curve, sent by a
 * damaged or hostile card) into MALFORMED_RESPONSE.
 */
export function publicKeyObject(spki: Uint8Array, what = 'public key'): KeyObject {
  try {
    return createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (e) {
    throw new ScHsmError('MALFORMED_RESPONSE', `the ${what} from the card is not a valid public key`, {
      cause: e,
    });
  }
}

/** OpenSC's intrinsic ID: SHA-1 of the modulus (RSA) or of the X coordinate (EC) (spec §6.2). */
export function intrinsicKeyId(spki: Uint8Array): Uint8Array {
  const key = publicKeyObject(spki);
  let material: Uint8Array;
  if (key.asymmetricKeyType === 'rsa') {
    material = Buffer.from(key.export({ format: 'jwk' }).n!, 'base64url');
  } else {
    // X from the raw point: works for every curve (JWK knows only the NIST ones)
    const point = spkiPoint(spki);
    material = point.subarray(1, 1 + (point.length - 1) / 2);
  }
  return new Uint8Array(createHash('sha1').update(material).digest());
}

/** The uncompressed point (`04‖X‖Y`) inside an EC SubjectPublicKeyInfo. */
export function spkiPoint(spki: Uint8Array): Uint8Array {
  const seq = readTlv(spki).value;
  const [, bits] = readAll(seq);
  if (bits?.tag !== 0x03 || bits.value.length < 2 || bits.value[1] !== 0x04) {
    throw new ScHsmError('INVALID_ARGUMENT', 'not an EC public key with an uncompressed point');
  }
  return bits.value.subarray(1);
}

function safeCurve(name: string): CurveInfo | undefined {
  try {
    return curveByName(name);
  } catch {
    return undefined;
  }
}

/** Lowest free key reference from 1 (0 is the device key). */
export async function freeKeyRef(ctx: SessionContext, fids?: number[]): Promise<number> {
  const list = fids ?? (await ctx.files.enumerate());
  const used = new Set(list.filter((f) => f >> 8 === PREFIX.KEY).map((f) => f & 0xff));
  for (let i = 1; i <= 255; i++) if (!used.has(i)) return i;
  throw new ScHsmError('MEMORY_FULL', 'all 255 key references are in use');
}

/** KEY_REF_OCCUPIED when CCxx exists for `keyRef`. */
export async function checkFreeRef(keyRef: number, fids: number[]): Promise<void> {
  checkKeyRef(keyRef);
  if (fids.includes((PREFIX.KEY << 8) | keyRef)) {
    throw new ScHsmError(
      'KEY_REF_OCCUPIED',
      `key reference ${keyRef} is already in use; delete that key first or choose another`,
    );
  }
}

/**
 * KEY_ID_IN_USE when a key description (C4xx) on the device already carries `id`: two keys with
 * one PKCS#15 ID (CKA_ID) confuse every PKCS#11 application (OpenSC refuses it as well). The
 * error's `existingKeyRef` is the reference carrying it (not `keyRef`: that names where an
 * interrupted command left something); `except`: a reference not counted (the key being replaced).
 */
export async function checkFreeId(
  ctx: SessionContext,
  id: Uint8Array,
  fids: number[],
  except?: number,
): Promise<void> {
  for (const fid of fids) {
    if (fid >> 8 !== PREFIX.PRKD || (fid & 0xff) === except) continue;
    let other: Uint8Array | undefined = ctx.keyCache.get(fid & 0xff)?.description?.id;
    if (!other) {
      try {
        other = decodeKeyDescription(await ctx.files.readRemembered(fid)).id;
      } catch (e) {
        if (!(e instanceof ScHsmError && e.code === 'MALFORMED_DATA')) throw e;
      }
    }
    if (other && bytesEqual(other, id)) {
      throw new ScHsmError(
        'KEY_ID_IN_USE',
        `the key ID ${toHex(id)} is already the ID of key reference ${fid & 0xff}; two keys with one ID confuse PKCS#11 applications. Nothing was sent.`,
        { existingKeyRef: fid & 0xff },
      );
    }
  }
}

/** The 7F49 template of a key generation request (spec §3.11). */
function requestPublicKey(spec: KeyPairSpec): { pk: CvcPublicKey; curve?: CurveInfo } {
  if (spec.type === 'rsa') {
    checkRsaBits(spec.bits);
    const e = spec.publicExponent ?? 65537;
    if (!Number.isInteger(e) || e < 3 || e % 2 === 0 || e > 0xffffffff) {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `the RSA public exponent must be an odd integer ≥ 3; got ${e}`,
      );
    }
    let exp = uintBE(e, 4);
    while (exp.length > 1 && exp[0] === 0) exp = exp.subarray(1);
    return { pk: { oid: OID.TA_RSA_V15_SHA256, exponent: exp, keySize: spec.bits } };
  }
  const curve = curveByName(spec.curve);
  const p = curveParams(curve);
  return {
    curve,
    pk: { oid: OID.TA_ECDSA_SHA256, p: p.p, a: p.a, b: p.b, g: p.g, n: p.n, cofactor: p.h },
  };
}

/**
 * GENERATE ASYMMETRIC KEY PAIR (`00 46 <keyRef> 00`, extended, spec §3.11): the data is the body
 * of a CV request (CAR, public key template 7F49, CHR) with an optional algorithm list (tag 91);
 * the card answers the authenticated request. Then the description in C4xx.
 */
export async function generateKeyPair(ctx: SessionContext, spec: KeyPairSpec): Promise<GeneratedKey> {
  checkObject(spec, 'the key pair spec', {
    type: 'string',
    label: 'string',
    id: 'bytes',
    keyRef: 'number',
    bits: 'number',
    curve: 'string',
    publicExponent: 'number',
    algorithms: 'bytes',
    useCounter: 'number',
    domain: 'number',
  });
  checkOneOf(spec.type, ['rsa', 'ec'], 'the key pair type (spec.type)');
  if (spec.domain !== undefined) checkInt(spec.domain, 0, MAX_KEY_DOMAIN, 'the key domain (spec.domain)');
  if (spec.type === 'ec' && typeof spec.curve !== 'string') {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `the curve (spec.curve) must be a name such as "prime256v1"; got ${typeName(spec.curve)}`,
    );
  }
  if (spec.keyRef !== undefined) checkKeyRef(spec.keyRef, 'the key reference (spec.keyRef)');
  checkLabel(spec.label, 'key label');
  if (spec.id !== undefined && (spec.id.length < 1 || spec.id.length > 255)) {
    throw new ScHsmError('INVALID_ARGUMENT', 'a key ID must be 1 to 255 bytes');
  }
  const { pk, curve } = requestPublicKey(spec);
  if (spec.algorithms !== undefined) checkAlgorithmList(spec.algorithms, undefined, spec.type);
  if (spec.useCounter !== undefined)
    checkUseCounter(spec.useCounter, 'the key use counter (spec.useCounter)');
  return ctx.channel.exclusive(async () => {
    const fids = await ctx.files.enumerate();
    const keyRef = spec.keyRef ?? (await freeKeyRef(ctx, fids));
    await checkFreeRef(keyRef, fids);
    if (spec.id) await checkFreeId(ctx, spec.id, fids);
    // the default is domain 0: a DKEK still waiting for shares is refused there too (the card: 6985)
    await checkKeyDomainReady(ctx, spec.domain ?? 0);
    const serial = ((await deviceChr(ctx)) ?? 'UTDUMMY00000').slice(0, -5);
    const body = readTlv(encodeCvcBody({ car: REQUEST_CAR, publicKey: pk, chr: `${serial}00001` })).value;
    const data = concat(body, ...restrictionTlvs(spec), ...keyDomainTlv(spec.domain));
    const what = { command: 'GENERATE ASYMMETRIC KEY PAIR', keyRef, label: spec.label };
    return creatingKey(ctx, what, async (created) => {
      const r = await ctx.channel.exchange(
        {
          cla: CLA_ISO,
          ins: INS.GENERATE_ASYMMETRIC_KEY_PAIR,
          p1: keyRef,
          p2: 0,
          data,
          ne: 65536,
          extended: true,
        },
        'GENERATE ASYMMETRIC KEY PAIR',
        {
          overrides: {
            ...KEYGEN_OVERRIDES,
            0x6a80: ['INCORRECT_DATA', 'the card rejected the key generation request'],
            0x6a89: ['KEY_REF_OCCUPIED', `key reference ${keyRef} is already in use`],
          },
        },
      );
      created();
      const req = decodeCvRequest(r.data);
      const publicKey = cvcPublicKeyToSpki(req.certificate.publicKey);
      publicKeyObject(publicKey, 'key generation answer');
      const id = spec.id ?? intrinsicKeyId(publicKey);
      await writeNewKeyDescription(ctx, keyRef, {
        kind: spec.type,
        label: spec.label,
        id,
        // what the algorithm list permits, when there is one
        usage: usageForAlgorithms(
          spec.type,
          spec.algorithms,
          spec.type === 'rsa'
            ? KEY_USAGE.DECRYPT | KEY_USAGE.SIGN | KEY_USAGE.SIGN_RECOVER
            : KEY_USAGE.SIGN | KEY_USAGE.SIGN_RECOVER | KEY_USAGE.DERIVE,
        ),
        bits: spec.type === 'rsa' ? spec.bits : curve!.bits,
      });
      return { keyRef, id, publicKey: fresh(publicKey), request: r.data };
    });
  });
}

/** Bytes of the default ID of an AES key (generateAesKey without `id`). */
export const AES_KEY_ID_BYTES = 16;

/** A random ID for an AES key: 16 bytes from the platform's CSPRNG. */
function randomAesKeyId(): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(AES_KEY_ID_BYTES));
}

/**
 * GENERATE SYMMETRIC KEY (`00 48 <keyRef> <algorithm: AES-128/192/256>`, data: the algorithm
 * list in tag 91, spec §3.12), then the secret key description in C4xx. Without `spec.id` the
 * key gets 16 random bytes as its PKCS#15 ID (an AES key has no public key to hash; keys made
 * before this had their key reference as ID and keep it).
 */
export async function generateAesKey(
  ctx: SessionContext,
  spec: {
    bits: 128 | 192 | 256;
    label: string;
    id?: Uint8Array;
    keyRef?: number;
    algorithms?: Uint8Array;
    /** Key-use counter (tag 90), 1..2³²−1. */
    useCounter?: number;
    /** Key domain (tag 92, spec §3.10, §3.12); default 0. */
    domain?: number;
  },
): Promise<{ keyRef: number; id: Uint8Array }> {
  checkObject(spec, 'the AES key spec', {
    bits: 'number',
    label: 'string',
    id: 'bytes',
    keyRef: 'number',
    algorithms: 'bytes',
    useCounter: 'number',
    domain: 'number',
  });
  if (spec.domain !== undefined) checkInt(spec.domain, 0, MAX_KEY_DOMAIN, 'the key domain (spec.domain)');
  if (spec.useCounter !== undefined)
    checkUseCounter(spec.useCounter, 'the key use counter (spec.useCounter)');
  if (spec.keyRef !== undefined) checkKeyRef(spec.keyRef, 'the key reference (spec.keyRef)');
  if (spec.id !== undefined) checkBytes(spec.id, 'the key ID (spec.id)', 1, 255);
  if (spec.algorithms !== undefined) checkAlgorithmList(spec.algorithms, undefined, 'aes');
  checkLabel(spec.label, 'key label');
  const p2 = AES_KEYGEN_ALGO[spec.bits];
  if (p2 === undefined)
    throw new ScHsmError('INVALID_ARGUMENT', `unsupported AES key size ${spec.bits}; use 128, 192 or 256`);
  // sc-hsm-embedded's list 10 11 18 99 plus 92: a key with a list may be wrapped only when it names
  // WRAP (spec §3.16), and an AES key nobody can back up would be lost with its device
  const algorithms =
    spec.algorithms ??
    Uint8Array.of(ALGO.AES_CBC_ENCRYPT, ALGO.AES_CBC_DECRYPT, ALGO.AES_CMAC, ALGO.AES_DERIVE, ALGO.WRAP);
  return ctx.channel.exclusive(async () => {
    const fids = await ctx.files.enumerate();
    const keyRef = spec.keyRef ?? (await freeKeyRef(ctx, fids));
    await checkFreeRef(keyRef, fids);
    // no public key to hash: a random ID, so that AES keys of different devices never share one
    // (a restore tells keys apart by it; the key reference as ID was the same on every device)
    const id = spec.id ?? randomAesKeyId();
    await checkFreeId(ctx, id, fids);
    // the default is domain 0: a DKEK still waiting for shares is refused there too (the card: 6985)
    await checkKeyDomainReady(ctx, spec.domain ?? 0);
    const what = { command: 'GENERATE SYMMETRIC KEY', keyRef, label: spec.label };
    return creatingKey(ctx, what, async (created) => {
      await ctx.channel.exchange(
        {
          cla: CLA_ISO,
          ins: INS.GENERATE_SYMMETRIC_KEY,
          p1: keyRef,
          p2,
          data: concat(
            ...restrictionTlvs({
              algorithms,
              ...(spec.useCounter !== undefined && { useCounter: spec.useCounter }),
            }),
            ...keyDomainTlv(spec.domain),
          ),
        },
        'GENERATE SYMMETRIC KEY',
        { overrides: KEYGEN_OVERRIDES },
      );
      created();
      await writeNewKeyDescription(ctx, keyRef, {
        kind: 'aes',
        label: spec.label,
        id,
        usage: usageForAlgorithms(
          'aes',
          spec.algorithms,
          KEY_USAGE.ENCRYPT | KEY_USAGE.DECRYPT | KEY_USAGE.DERIVE,
        ),
        bits: spec.bits,
      });
      return { keyRef, id };
    });
  });
}

/**
 * A key's information from its files: the description C4xx and the public key in CExx (a CV
 * request, or an X.509 certificate); undefined when neither tells the key's type.
 */
export async function keyInfoFromFiles(
  ctx: SessionContext,
  keyRef: number,
  fids: number[],
): Promise<KeyInfo | undefined> {
  const prkdFid = (PREFIX.PRKD << 8) | keyRef;
  const ceFid = (PREFIX.EE_CERTIFICATE << 8) | keyRef;
  let description: KeyDescription | undefined;
  if (fids.includes(prkdFid)) {
    try {
      description = decodeKeyDescription(await ctx.files.read(prkdFid));
    } catch (e) {
      if (!(e instanceof ScHsmError && e.code === 'MALFORMED_DATA')) throw e;
    }
  }
  let publicKey: Uint8Array | undefined;
  let hasCertificate = false;
  let curve: CurveName | undefined;
  let bits = description?.bits ?? 0;
  let type: KeyType | undefined = description?.kind;
  if (fids.includes(ceFid)) {
    const ce = await ctx.files.read(ceFid);
    try {
      if (ce[0] === 0x30) {
        hasCertificate = true;
        publicKey = certificateSpki(ce);
      } else if (ce[0] === 0x67 || ce[0] === 0x7f) {
        publicKey = cvcPublicKeyToSpki(decodeCvRequest(ce).certificate.publicKey);
      }
      if (publicKey) publicKeyObject(publicKey);
    } catch {
      // an unreadable CExx does not hide the key: it is listed without a public key
      publicKey = undefined;
    }
  }
  if (publicKey) {
    const k = publicKeyObject(publicKey);
    if (k.asymmetricKeyType === 'rsa') {
      type = 'rsa';
      bits = k.asymmetricKeyDetails?.modulusLength ?? bits;
    } else if (k.asymmetricKeyType === 'ec') {
      type = 'ec';
      const named = k.asymmetricKeyDetails?.namedCurve;
      const c = named ? safeCurve(named) : undefined;
      if (c) {
        curve = c.name;
        bits = c.bits;
      }
    }
  }
  if (!type) return undefined;
  const info: KeyInfo = {
    keyRef,
    id: description?.id ?? Uint8Array.of(keyRef),
    type,
    bits,
    usage: description?.usage ?? 0,
    hasCertificate,
  };
  if (description?.label !== undefined) info.label = description.label;
  if (curve) info.curve = curve;
  if (description?.access !== undefined) info.access = description.access;
  if (publicKey) info.publicKey = fresh(publicKey);
  if (description) info.description = description;
  const r = await readKeyRestrictions(ctx, keyRef);
  if (r.algorithms) info.algorithms = r.algorithms;
  if (r.useCounter !== undefined) info.useCounter = r.useCounter;
  if (r.domain !== undefined) info.domain = r.domain;
  return info;
}

/** ENUMERATE OBJECTS, then each key's files; the device key (reference 0) is left out. */
export async function listKeys(ctx: SessionContext): Promise<KeyInfo[]> {
  return ctx.channel.exclusive(async () => {
    const fids = await ctx.files.enumerate();
    const refs = fids.filter((f) => f >> 8 === PREFIX.KEY && (f & 0xff) !== 0).map((f) => f & 0xff);
    const out: KeyInfo[] = [];
    for (const ref of refs.sort((a, b) => a - b)) {
      const info = await keyInfoFromFiles(ctx, ref, fids);
      if (info) {
        ctx.keyCache.set(ref, info);
        out.push(info);
      } else {
        // a key object without description or public key: its type cannot be known
        out.push({
          keyRef: ref,
          id: Uint8Array.of(ref),
          type: 'unknown',
          bits: 0,
          usage: 0,
          hasCertificate: false,
        });
      }
    }
    return out;
  });
}

/** One key's information, from the session's cache or from its files. */
export async function keyInfo(ctx: SessionContext, keyRef: number): Promise<KeyInfo> {
  checkKeyRef(keyRef);
  const cached = ctx.keyCache.get(keyRef);
  // a use counter changes with every private-key operation: read afresh (one SELECT)
  if (cached?.useCounter !== undefined) {
    const r = await ctx.channel.exclusive(() => readKeyRestrictions(ctx, keyRef));
    if (r.useCounter !== undefined) cached.useCounter = r.useCounter;
    return cached;
  }
  if (cached) return cached;
  return ctx.channel.exclusive(async () => {
    const fids = await ctx.files.enumerate();
    if (!fids.includes((PREFIX.KEY << 8) | keyRef)) {
      throw new ScHsmError('KEY_NOT_FOUND', `no key with key reference ${keyRef} on the device`);
    }
    const info = await keyInfoFromFiles(ctx, keyRef, fids);
    if (!info) {
      throw new ScHsmError(
        'KEY_NOT_FOUND',
        `key reference ${keyRef} has no readable description (C4) or public key (CE)`,
      );
    }
    ctx.keyCache.set(keyRef, info);
    return info;
  });
}

/**
 * Files of a key reference whose key object CCxx is not there: its description C4xx and/or its
 * certificate or CV request CExx, left by an interrupted replace or delete of an older version of
 * this tool, or by another tool. They describe a key that no longer exists (PKCS#11 applications
 * still list a key from C4xx) and make the reference look used; `deleteKey` removes them.
 */
export interface OrphanedKeyFiles {
  keyRef: number;
  /** The files present, e.g. `[0xC401, 0xCE01]`. */
  fids: number[];
  /** From the description, when it decodes. */
  label?: string;
  id?: Uint8Array;
}

/** The descriptions (C4xx) and certificates (CExx) of key references without a key object (CCxx). */
export async function listOrphanedKeyFiles(
  ctx: SessionContext,
  fids?: number[],
): Promise<OrphanedKeyFiles[]> {
  return ctx.channel.exclusive(async () => {
    const all = fids ?? (await ctx.files.enumerate());
    const refs = new Set<number>();
    for (const f of all) {
      const ref = f & 0xff;
      if ((f >> 8 === PREFIX.PRKD || f >> 8 === PREFIX.EE_CERTIFICATE) && ref !== 0)
        if (!all.includes((PREFIX.KEY << 8) | ref)) refs.add(ref);
    }
    const out: OrphanedKeyFiles[] = [];
    for (const keyRef of [...refs].sort((a, b) => a - b)) {
      const c4 = (PREFIX.PRKD << 8) | keyRef;
      const o: OrphanedKeyFiles = {
        keyRef,
        fids: [c4, (PREFIX.EE_CERTIFICATE << 8) | keyRef].filter((f) => all.includes(f)),
      };
      if (all.includes(c4)) {
        try {
          const d = decodeKeyDescription(await ctx.files.read(c4));
          o.id = d.id;
          if (d.label !== undefined) o.label = d.label;
        } catch (e) {
          if (!(e instanceof ScHsmError && e.code === 'MALFORMED_DATA')) throw e;
        }
      }
      out.push(o);
    }
    return out;
  });
}

/**
 * Deletes the key at `keyRef`: DELETE FILE of CExx and C4xx where they exist, then of CCxx
 * (spec §10.4). The description goes first: an interruption leaves the key without its
 * description (listed as such, deleted by running this again), never a description of no key.
 * A reference holding only such leftover files (see {@link OrphanedKeyFiles}) has them removed;
 * KEY_NOT_FOUND when it holds nothing.
 */
export async function deleteKey(ctx: SessionContext, keyRef: number): Promise<void> {
  checkKeyRef(keyRef);
  await ctx.channel.exclusive(async () => {
    const fids = await ctx.files.enumerate();
    const cc = (PREFIX.KEY << 8) | keyRef;
    const files = [(PREFIX.EE_CERTIFICATE << 8) | keyRef, (PREFIX.PRKD << 8) | keyRef].filter((f) =>
      fids.includes(f),
    );
    if (!fids.includes(cc) && files.length === 0)
      throw new ScHsmError('KEY_NOT_FOUND', `no key with key reference ${keyRef} on the device`);
    try {
      for (const f of files) await ctx.files.deleteIfExists(f);
      if (fids.includes(cc)) await ctx.files.delete(cc);
    } catch (e) {
      if (e instanceof ScHsmError && e.code === 'FILE_NOT_FOUND') {
        throw new ScHsmError('KEY_NOT_FOUND', `no key with key reference ${keyRef} on the device`, {
          sw: e.sw,
          command: 'DELETE FILE',
        });
      }
      throw e;
    } finally {
      ctx.keyCache.delete(keyRef);
    }
  });
}

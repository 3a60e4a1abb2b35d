/**
 * DERIVE EC KEY (`80 76 <src> <dst>`, data `98 ‖ tweak`, spec §3.15): the card makes the EC key
 * `CC<dst>` with d' = d + tweak mod n from `CC<src>` and answers nothing. The host computes the
 * expected public key Q' = Q + tweak·G itself, checks the card's key against it (the new key signs
 * a self-signed CV request of Q' with ECDSA-SHA-256, `80 68 <dst> 73`, verified on the host), then
 * stores that request in `CE<dst>` and the PKCS#15 description in `C4<dst>`, as for a generated key.
 */
import { createHash, verify as nodeVerify } from 'node:crypto';
import { isScHsmError, ScHsmError } from '../errors.js';
import { cvcPublicKeyToSpki, ecdsaDerToPlain, encodeCvc, encodeCvcBody, KEY_USAGE } from '../pkcs15/index.js';
import { ALGO, CLA_PROPRIETARY, INS, OID, PREFIX } from '../protocol/constants.js';
import { bigintFromBytes, bigintToBytes, bytesEqual, concat, fresh, toHex } from '../util/bytes.js';
import { curveByName, curveParams } from '../util/curves.js';
import { decodePoint, domain, encodePoint, pointAdd, pointMul } from '../util/ec-point.js';
import type { SessionContext } from './context.js';
import { cardSign, keyOpOverrides } from './crypto.js';
import { deviceChr } from './device.js';
import { checkKeyDomainReady } from './domains.js';
import { creatingKey, writeNewKeyDescription } from './key-creation.js';
import {
  algorithmNames,
  type KeyRestrictions,
  readKeyRestrictions,
  usageForAlgorithms,
} from './key-restrictions.js';
import {
  checkFreeId,
  checkFreeRef,
  intrinsicKeyId,
  keyInfoFromFiles,
  REQUEST_CAR,
  spkiPoint,
} from './keys.js';
import { checkBytes, checkKeyRef, checkLabel, checkObject } from './validate.js';

export interface DeriveEcKeyOptions {
  /** Label of the new key (its PKCS#15 description). */
  label: string;
  /** PKCS#15 ID of the new key (default: SHA-1 of its X coordinate, as OpenSC). */
  id?: Uint8Array;
}

export interface DerivedKey {
  keyRef: number;
  id: Uint8Array;
  /** SubjectPublicKeyInfo DER of Q' (computed on the host, confirmed by the card's signature). */
  publicKey: Uint8Array<ArrayBuffer>;
  /**
   * The new key's restrictions as the card reported them right after DERIVE EC KEY (SELECT of
   * CCxx, its FCP): the check signature then counted one use of a counter. A field is absent when
   * the key has none or the card does not say (key-restrictions.ts).
   */
  restrictions: KeyRestrictions;
  /** Present when the card made the key less restricted than its source: delete it. */
  warning?: DerivedKeyWarning;
}

/** A restriction of the source key that the derived key does not keep. */
export type LostRestriction = 'algorithms' | 'useCounter' | 'domain';

/**
 * The card made the derived key less restricted than its source (spec §3.15 leaves open what a
 * derived key inherits; the virtual card: DERIVE_INHERITS in src/sim/uncertain.ts). `lost` names
 * what went, `message` says how, `fix` how to undo it (delete the derived key).
 */
export interface DerivedKeyWarning {
  code: 'DERIVED_KEY_LESS_RESTRICTED';
  lost: LostRestriction[];
  message: string;
  fix: string;
}

/**
 * What the derived key `child` (as the card reports it right after DERIVE) lost of the source
 * `src` (as reported before; the derive counted one of its uses): undefined when nothing. A source
 * restriction the card did not report cannot be compared and is not claimed lost.
 */
export function lostRestrictions(
  srcKeyRef: number,
  dstKeyRef: number,
  src: KeyRestrictions,
  child: KeyRestrictions,
): DerivedKeyWarning | undefined {
  const lost: LostRestriction[] = [];
  const how: string[] = [];
  if (src.algorithms) {
    const extra = child.algorithms ? [...child.algorithms].filter((b) => !src.algorithms!.includes(b)) : [];
    if (!child.algorithms || extra.length) {
      lost.push('algorithms');
      const allowed = algorithmNames(src.algorithms).join(',');
      how.push(
        child.algorithms
          ? `it also allows ${algorithmNames(Uint8Array.from(extra)).join(',')} (the source only ${allowed})`
          : `it reports no algorithm list (the source allows only ${allowed}), so it can be wrapped and the source's private key recovered as d' − tweak`,
      );
    }
  }
  if (src.useCounter !== undefined) {
    const left = Math.max(0, src.useCounter - 1);
    if (child.useCounter === undefined || child.useCounter > left) {
      lost.push('useCounter');
      how.push(
        child.useCounter === undefined
          ? `it reports no use counter (the source has ${left} uses left)`
          : `it has ${child.useCounter} uses (the source has ${left} left)`,
      );
    }
  }
  if (
    src.domain !== undefined &&
    child.domain !== src.domain &&
    !(src.domain === 0 && child.domain === undefined)
  ) {
    lost.push('domain');
    how.push(
      `it is ${child.domain === undefined ? 'in no reported key domain' : `in key domain ${child.domain}`} (the source in ${src.domain}), so it is wrapped and backed up under another DKEK`,
    );
  }
  if (!lost.length) return undefined;
  return {
    code: 'DERIVED_KEY_LESS_RESTRICTED',
    lost,
    message: `the card made the derived key ${dstKeyRef} less restricted than its source key ${srcKeyRef}: ${how.join('; ')}`,
    fix: `delete the derived key: sc-hsm-ts delete-key --key-ref ${dstKeyRef}`,
  };
}

/**
 * The derived key inherits the source's algorithm list and uses left (on the virtual card,
 * DERIVE_INHERITS; unknown for real firmware): refused before anything is sent when the derived key
 * could then not make the ECDSA signature that checks its public key.
 */
function checkDerivedKeyCheckable(srcKeyRef: number, src: KeyRestrictions): void {
  const list = src.algorithms;
  if (list && !list.includes(ALGO.ECDSA) && !list.includes(ALGO.ECDSA_SHA256))
    throw new ScHsmError(
      'ALGORITHM_NOT_ALLOWED',
      `key ${srcKeyRef} may not be derived from: the derived key inherits its algorithm list (${algorithmNames(list).join(',')}), which allows neither ECDSA nor ECDSA-SHA256, so the signature that checks the derived key could not be made. Nothing was sent.`,
      { fix: 'derive from a key whose algorithm list also has ECDSA or ECDSA-SHA256' },
    );
  // the derive spends one of the source's uses, the child inherits those left, and the check
  // signature spends one of the child's: the child keeps useCounter - 2, which must be at least 1
  if (src.useCounter !== undefined && src.useCounter >= 1 && src.useCounter < MIN_DERIVE_SOURCE_USES) {
    const n = src.useCounter;
    throw new ScHsmError(
      'USE_COUNTER_EXHAUSTED',
      `key ${srcKeyRef} has ${n} use${n === 1 ? '' : 's'} left: the derive spends one and the derived key inherits the ${n - 1} use${n === 2 ? '' : 's'} left, of which the signature that checks it spends one, leaving the derived key ${n === 1 ? 'too few for that signature' : 'no use at all'}. Nothing was sent.`,
      {
        fix: `derive from a key with at least ${MIN_DERIVE_SOURCE_USES} uses left, or from one without a use counter`,
      },
    );
  }
}

/**
 * The fewest uses a source key with a use counter must have left to be derived from: one for the
 * derive, one for the derived key's check signature, and one left for the derived key to use.
 */
export const MIN_DERIVE_SOURCE_USES = 3;

/** What the card may answer DERIVE EC KEY with (spec §3.21 and DERIVE_* in src/sim/uncertain.ts). */
function deriveOverrides(src: number, dst: number) {
  return {
    ...keyOpOverrides(src),
    0x6a81: ['ALGORITHM_NOT_ALLOWED', `key ${src} may not be derived from (its algorithm list lacks DERIVE)`],
    0x6a89: ['KEY_REF_OCCUPIED', `key reference ${dst} is already in use`],
    0x6a80: ['INCORRECT_DATA', 'the card refused the tweak'],
    0x6985: [
      'DKEK_INCOMPLETE',
      'the device refuses new keys while DKEK shares are outstanding: import them first',
    ],
    0x6a84: ['MEMORY_FULL', 'the device has no room for another key'],
  } as const;
}

/**
 * KEY_REF_OCCUPIED when `CC<dst>` exists. A key there without description and public key (C4/CE:
 * `keys` shows it as UNKNOWN) is what a DERIVE EC KEY or key generation interrupted after the card
 * made the key leaves: the error says so and how to recover, with `keyRef` set to `dst`.
 */
async function checkFreeDestination(ctx: SessionContext, dst: number, fids: number[]): Promise<void> {
  if (!fids.includes((PREFIX.KEY << 8) | dst)) return checkFreeRef(dst, fids);
  if ((await keyInfoFromFiles(ctx, dst, fids)) !== undefined) return checkFreeRef(dst, fids);
  throw new ScHsmError(
    'KEY_REF_OCCUPIED',
    `key reference ${dst} already holds a key without description or public key: most likely an earlier derive (or key generation) into it was interrupted after the card made the key and before its description was written. Nothing was sent.`,
    {
      keyRef: dst,
      fix: `\`sc-hsm-ts keys\` shows key reference ${dst} as UNKNOWN; delete it (sc-hsm-ts delete-key --key-ref ${dst}) and derive again: the same source key and tweak give the same key again`,
    },
  );
}

/**
 * DERIVE EC KEY `80 76` (spec §3.15): `CC<dstKeyRef>` = `CC<srcKeyRef>` + tweak (mod the curve
 * order), checked against the public key the host computes. The tweak is big-endian, 1 to
 * field-length bytes, not zero and below the order n. Refused before anything is sent: a source
 * that is not an EC key or has no public key in CExx, an occupied destination, a source whose
 * reported algorithm list lacks DERIVE or whose use counter is 0, a tweak that makes the key zero;
 * also a source whose list allows no ECDSA or that has fewer than 3 uses left
 * ({@link MIN_DERIVE_SOURCE_USES}: the derived key would keep none), as the derived key inherits
 * them (DERIVE_INHERITS in src/sim/uncertain.ts) and could not sign its check. The source's use
 * counter (if any) counts one use, the check signature one of the derived key's. Afterwards the
 * derived key's restrictions are read (SELECT CCxx) and `warning` set when the card made it less
 * restricted than the source (another firmware's choice): delete it then.
 */
export async function deriveEcKey(
  ctx: SessionContext,
  srcKeyRef: number,
  dstKeyRef: number,
  tweak: Uint8Array,
  opts: DeriveEcKeyOptions,
): Promise<DerivedKey> {
  checkKeyRef(srcKeyRef, 'the source key reference');
  checkKeyRef(dstKeyRef, 'the destination key reference');
  if (srcKeyRef === dstKeyRef)
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      'the derived key needs a key reference of its own (not the source)',
    );
  checkBytes(tweak, 'the tweak', 1, 66);
  checkObject(opts, 'the derive options', { label: 'string', id: 'bytes' });
  checkLabel(opts.label, 'key label');
  if (opts.id !== undefined) checkBytes(opts.id, 'the key ID', 1, 255);
  return ctx.channel.exclusive(async () => {
    const fids = await ctx.files.enumerate();
    if (!fids.includes((PREFIX.KEY << 8) | srcKeyRef))
      throw new ScHsmError('KEY_NOT_FOUND', `no key with key reference ${srcKeyRef} on the device`);
    await checkFreeDestination(ctx, dstKeyRef, fids);
    const src = await keyInfoFromFiles(ctx, srcKeyRef, fids);
    if (src?.type !== 'ec')
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `key ${srcKeyRef} is ${src ? src.type.toUpperCase() : 'of unknown type'}: only EC keys can be derived from`,
      );
    if (!src.publicKey || !src.curve)
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `key ${srcKeyRef} has no public key on the device (CE${toHex(Uint8Array.of(srcKeyRef)).toUpperCase()}): the derived public key cannot be checked`,
      );
    if (src.algorithms && !src.algorithms.includes(ALGO.EC_DERIVE))
      throw new ScHsmError(
        'ALGORITHM_NOT_ALLOWED',
        `key ${srcKeyRef} may not be derived from: its algorithm list lacks DERIVE. Nothing was sent.`,
      );
    if (src.useCounter === 0)
      throw new ScHsmError(
        'USE_COUNTER_EXHAUSTED',
        `key ${srcKeyRef}: key use counter exhausted. Nothing was sent.`,
      );
    const srcLimits: KeyRestrictions = {
      ...(src.algorithms ? { algorithms: src.algorithms } : {}),
      ...(src.useCounter !== undefined ? { useCounter: src.useCounter } : {}),
      ...(src.domain !== undefined ? { domain: src.domain } : {}),
    };
    checkDerivedKeyCheckable(srcKeyRef, srcLimits);
    // the child goes into the source's domain: its DKEK must be complete (the card: 6985), as for generation
    await checkKeyDomainReady(ctx, src.domain ?? 0);
    const curve = curveByName(src.curve);
    const d = domain(curve.name);
    if (tweak.length > d.size)
      throw new ScHsmError('INVALID_ARGUMENT', `the tweak has at most ${d.size} bytes for ${curve.name}`);
    const t = bigintFromBytes(tweak);
    if (t === 0n)
      throw new ScHsmError('INVALID_ARGUMENT', 'the tweak must not be zero (the key would be a copy)');
    if (t >= d.n)
      throw new ScHsmError('INVALID_ARGUMENT', `the tweak must be below the order n of ${curve.name}`);
    const Q = decodePoint(d, spkiPoint(src.publicKey));
    if (!Q)
      throw new ScHsmError(
        'MALFORMED_DATA',
        `the public key of key ${srcKeyRef} is not a point of ${curve.name}`,
      );
    const Qd = pointAdd(d, Q, pointMul(d, t, d.g));
    if (!Qd)
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        'this tweak is minus the private key: the derived key would be zero',
      );
    const point = encodePoint(d, Qd);
    const p = curveParams(curve);
    const cvcKey = { oid: OID.TA_ECDSA_SHA256, p: p.p, a: p.a, b: p.b, g: p.g, n: p.n, point, cofactor: p.h };
    const spki = cvcPublicKeyToSpki(cvcKey);
    const id = opts.id ?? intrinsicKeyId(spki);
    try {
      await checkFreeId(ctx, id, fids);
    } catch (e) {
      const at = isScHsmError(e, 'KEY_ID_IN_USE') ? e.existingKeyRef : undefined;
      const there = at === undefined ? undefined : await keyInfoFromFiles(ctx, at, fids);
      // the same source and tweak give the same private key: not another key with a clashing ID
      if (at === undefined || !there?.publicKey || !bytesEqual(there.publicKey, spki)) throw e;
      throw new ScHsmError(
        'KEY_ID_IN_USE',
        `key reference ${at} already holds this very key (the same public key: derived from key ${srcKeyRef} with the same tweak); a second copy would not be another key. Nothing was sent.`,
        {
          existingKeyRef: at,
          fix: `use key reference ${at}; a different tweak gives a different key`,
        },
      );
    }
    const serial = ((await deviceChr(ctx)) ?? 'UTDUMMY00000').slice(0, -5);
    const body = encodeCvcBody({
      car: REQUEST_CAR,
      publicKey: cvcKey,
      chr: `${serial}${String(dstKeyRef).padStart(5, '0')}`,
    });
    const nLen = Math.ceil(d.n.toString(2).length / 8);
    const what = {
      command: 'DERIVE EC KEY',
      keyRef: dstKeyRef,
      label: opts.label,
      // the source's use counter counted: its cached information goes too
      alsoUncache: srcKeyRef,
      // says itself what is left on the device
      unchanged: 'DERIVED_KEY_MISMATCH',
    } as const;
    return creatingKey(ctx, what, async (created) => {
      await ctx.channel.exchange(
        {
          cla: CLA_PROPRIETARY,
          ins: INS.DERIVE_EC_KEY,
          p1: srcKeyRef,
          p2: dstKeyRef,
          data: concat(Uint8Array.of(ALGO.EC_DERIVE), bigintToBytes(t, nLen)),
        },
        'DERIVE EC KEY',
        { overrides: deriveOverrides(srcKeyRef, dstKeyRef) as never },
      );
      created();
      // what the card made: the same SELECT of CCxx that `keys` reads
      const limits = await readKeyRestrictions(ctx, dstKeyRef);
      const warning = lostRestrictions(srcKeyRef, dstKeyRef, srcLimits, limits);
      // the check signature with what the key's (inherited) list allows: ECDSA-SHA256, else ECDSA of the hash
      const plain = limits.algorithms?.includes(ALGO.ECDSA) && !limits.algorithms.includes(ALGO.ECDSA_SHA256);
      const der = plain
        ? await cardSign(
            ctx,
            dstKeyRef,
            ALGO.ECDSA,
            new Uint8Array(createHash('sha256').update(body).digest()),
          )
        : await cardSign(ctx, dstKeyRef, ALGO.ECDSA_SHA256, body);
      const ok = nodeVerify(
        'sha256',
        body,
        { key: Buffer.from(spki), format: 'der', type: 'spki', dsaEncoding: 'der' },
        der,
      );
      if (!ok)
        throw new ScHsmError(
          'DERIVED_KEY_MISMATCH',
          `the key the card derived at key reference ${dstKeyRef} does not have the public key computed on the host (Q + tweak·G); it is left without description`,
          { keyRef: dstKeyRef, fix: `delete it: sc-hsm-ts delete-key --key-ref ${dstKeyRef}` },
        );
      await ctx.files.write(
        (PREFIX.EE_CERTIFICATE << 8) | dstKeyRef,
        encodeCvc(body, ecdsaDerToPlain(der, d.size)),
      );
      await writeNewKeyDescription(ctx, dstKeyRef, {
        kind: 'ec',
        label: opts.label,
        id,
        usage: usageForAlgorithms(
          'ec',
          limits.algorithms,
          KEY_USAGE.SIGN | KEY_USAGE.SIGN_RECOVER | KEY_USAGE.DERIVE,
        ),
        bits: curve.bits,
      });
      return {
        keyRef: dstKeyRef,
        id,
        publicKey: fresh(spki),
        restrictions: limits,
        ...(warning ? { warning } : {}),
      };
    });
  });
}

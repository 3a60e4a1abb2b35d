/**
 * Restrictions fixed at key generation (spec §3.11–3.12): the algorithm list (tag 91) and the
 * key-use counter (tag 90). Names for the algorithm bytes (ALGORITHM_NAMES in
 * src/protocol/constants.ts), their host-side checks, and reading what the card reports for a key.
 *
 * Where the host learns them: the spec names no command for it. The virtual card answers the
 * SELECT of the key object `CCxx` with an FCP carrying `A5 { 90 04 uses-left, 91 nn algorithms }`
 * (src/sim/uncertain.ts, KEY_FCP_RESTRICTIONS_TAG). A card whose FCP has no such template, or that
 * refuses the SELECT, leaves both unknown (undefined): never read as "no restriction".
 */
import { ScHsmError } from '../errors.js';
import { KEY_USAGE as USAGE } from '../pkcs15/index.js';
import {
  ALGO,
  ALGORITHM_NAMES,
  ALGORITHMS_MAX,
  CLA_ISO,
  INS,
  KEYGEN_TAG,
  PREFIX,
  USE_COUNTER_MAX,
} from '../protocol/constants.js';
import { readUintBE, uintBE } from '../util/bytes.js';
import { readAll, readTlv, tlv } from '../util/tlv.js';
import type { SessionContext } from './context.js';
import { checkBytes, checkKeyRef } from './validate.js';

/** What a key's FCP says about its restrictions; a field is absent when the card does not tell it. */
export interface KeyRestrictions {
  /** The allowed-algorithm bytes (tag 91). */
  algorithms?: Uint8Array;
  /** Private-key operations left (tag 90). */
  useCounter?: number;
  /** Key domain (tag 92, spec §3.10), where the FCP reports it (domains.ts). */
  domain?: number;
}

/** The proprietary FCP template our virtual card puts the restrictions in (see the file comment). */
const FCP_RESTRICTIONS = 0xa5;

const NAME_OF = new Map(Object.entries(ALGORITHM_NAMES).map(([name, byte]) => [byte, name]));

/** The valid algorithm names, for messages and `--help`. */
export function algorithmNameList(): string {
  return Object.keys(ALGORITHM_NAMES).join(', ');
}

/**
 * Algorithm names (`ECDSA-SHA256`, `WRAP`, …; case-insensitive) → the bytes of tag 91.
 * INVALID_ARGUMENT for an unknown name (the message lists the valid ones), a name given twice, an
 * empty list or more than 16 entries. Nothing is sent.
 */
export function algorithmBytes(names: readonly string[]): Uint8Array {
  if (!Array.isArray(names) || names.length === 0) {
    throw new ScHsmError('INVALID_ARGUMENT', 'an algorithm list names 1 to 16 algorithms');
  }
  const out: number[] = [];
  for (const raw of names) {
    const name = typeof raw === 'string' ? raw.trim().toUpperCase() : '';
    const byte = Object.hasOwn(ALGORITHM_NAMES, name) ? ALGORITHM_NAMES[name] : undefined;
    if (byte === undefined) {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `unknown algorithm name ${JSON.stringify(String(raw)).slice(0, 40)}; valid names: ${algorithmNameList()}`,
      );
    }
    if (out.includes(byte)) {
      throw new ScHsmError('INVALID_ARGUMENT', `the algorithm ${name} is named twice in the algorithm list`);
    }
    out.push(byte);
  }
  if (out.length > ALGORITHMS_MAX) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `an algorithm list has at most ${ALGORITHMS_MAX} entries; got ${out.length}`,
    );
  }
  return Uint8Array.from(out);
}

/** Tag-91 bytes → names; a byte without a name is shown as `0xNN`. */
export function algorithmNames(bytes: Uint8Array): string[] {
  return [...bytes].map((b) => NAME_OF.get(b) ?? `0x${b.toString(16).padStart(2, '0')}`);
}

/** INVALID_ARGUMENT unless 1 ≤ n ≤ 2³²−1 (tag 90, spec §3.11). */
export function checkUseCounter(n: number, what = 'the key use counter'): void {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > USE_COUNTER_MAX) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `${what} must be a whole number from 1 to ${USE_COUNTER_MAX}; got ${String(n).slice(0, 30)}`,
    );
  }
}

/** The algorithm bytes that can apply to a key of each kind (spec §3.13–3.16); WRAP/UNWRAP fit all. */
const FITS: Record<'rsa' | 'ec' | 'aes', (b: number) => boolean> = {
  rsa: (b) => (b >= 0x20 && b <= 0x23) || (b >= 0x30 && b <= 0x35) || (b >= 0x40 && b <= 0x45),
  ec: (b) => (b >= 0x70 && b <= 0x75) || b === 0x80 || b === 0x98,
  aes: (b) => b === 0x10 || b === 0x11 || b === 0x18 || b === 0x99,
};

/**
 * INVALID_ARGUMENT unless a tag-91 list of 1..16 distinct bytes; with `kind`, also when an entry
 * cannot apply to that kind of key (e.g. RSA-RAW for an EC key): the card would take it and the key
 * could never do what the list promises.
 */
export function checkAlgorithmList(
  bytes: Uint8Array,
  what = 'the allowed-algorithm list',
  kind?: 'rsa' | 'ec' | 'aes',
): void {
  checkBytes(bytes, what, 1, ALGORITHMS_MAX);
  if (new Set(bytes).size !== bytes.length)
    throw new ScHsmError('INVALID_ARGUMENT', `${what} names an algorithm twice`);
  if (kind === undefined) return;
  const misfit = [...bytes].filter((b) => b !== 0x92 && b !== 0x93 && !FITS[kind](b));
  if (misfit.length)
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `${what} names ${algorithmNames(Uint8Array.from(misfit)).join(', ')}, which cannot apply to an ${kind.toUpperCase()} key. Nothing was sent.`,
    );
}

/** The tags 90/91 of a key generation request (spec §3.11–3.12), in that order. */
export function restrictionTlvs(r: KeyRestrictions): Uint8Array[] {
  const out: Uint8Array[] = [];
  if (r.useCounter !== undefined) out.push(tlv(KEYGEN_TAG.USE_COUNTER, uintBE(r.useCounter, 4)));
  if (r.algorithms !== undefined) out.push(tlv(KEYGEN_TAG.ALGORITHMS, r.algorithms));
  return out;
}

/** The restrictions in a key's FCP; `{}` when it carries none or does not parse. */
export function parseKeyFcp(fcp: Uint8Array): KeyRestrictions {
  const out: KeyRestrictions = {};
  try {
    const top = readTlv(fcp, 0);
    if (top.tag !== 0x62) return out;
    const a5 = readAll(top.value).find((t) => t.tag === FCP_RESTRICTIONS);
    if (!a5) return out;
    for (const t of readAll(a5.value)) {
      if (t.tag === KEYGEN_TAG.USE_COUNTER && t.value.length >= 1 && t.value.length <= 4)
        out.useCounter = readUintBE(t.value);
      else if (t.tag === KEYGEN_TAG.ALGORITHMS && t.value.length <= ALGORITHMS_MAX)
        out.algorithms = t.value.slice();
      else if (t.tag === 0x92 && t.value.length === 1) out.domain = t.value[0]!;
    }
  } catch {
    return {};
  }
  return out;
}

/**
 * SELECT of the key object `CCxx` (`00 A4 00 04 02 CCxx`, spec §3.1) and the restrictions its FCP
 * reports. `{}` when the card answers the SELECT with an error or without the template.
 */
export async function readKeyRestrictions(ctx: SessionContext, keyRef: number): Promise<KeyRestrictions> {
  checkKeyRef(keyRef);
  let r: { data: Uint8Array; sw: number };
  try {
    r = await ctx.channel.exchange(
      {
        cla: CLA_ISO,
        ins: INS.SELECT,
        p1: 0x00,
        p2: 0x04,
        data: Uint8Array.of(PREFIX.KEY, keyRef),
        ne: 256,
      },
      'SELECT',
    );
  } catch (e) {
    // a card that does not let keys be selected tells nothing; transport failures still count
    if (e instanceof ScHsmError && e.sw !== undefined) return {};
    throw e;
  }
  return parseKeyFcp(r.data);
}

/**
 * The PKCS#15 usage (KeyUsageFlags, spec §6) of a key's description: `usage` (the default of its
 * kind) without an algorithm list; with one, what the list permits, so that PKCS#11 applications
 * (CKA_SIGN, CKA_DECRYPT, …) are not offered operations the card refuses. RSA: sign/signRecover for
 * RSA-RAW, RSA-PKCS1*, RSA-PSS*; decrypt for RSA-DECRYPT-*. EC: sign/signRecover for ECDSA*;
 * derive for ECDH or DERIVE. AES: encrypt (CBC-ENCRYPT), decrypt (CBC-DECRYPT), sign (CMAC),
 * derive (AES-DERIVE). WRAP/UNWRAP (key export under the DKEK) add nothing.
 */
export function usageForAlgorithms(
  kind: 'rsa' | 'ec' | 'aes',
  algorithms: Uint8Array | undefined,
  usage: number,
): number {
  if (!algorithms) return usage;
  const has = (f: (b: number) => boolean) => [...algorithms].some(f);
  let u = 0;
  if (kind === 'rsa') {
    if (has((b) => b === ALGO.RSA_RAW || (b >= 0x30 && b <= 0x35) || (b >= 0x40 && b <= 0x45)))
      u |= USAGE.SIGN | USAGE.SIGN_RECOVER;
    if (has((b) => b >= ALGO.RSA_DECRYPT_RAW && b <= ALGO.RSA_DECRYPT_OAEP)) u |= USAGE.DECRYPT;
  } else if (kind === 'ec') {
    if (has((b) => b >= ALGO.ECDSA && b <= ALGO.ECDSA_SHA512)) u |= USAGE.SIGN | USAGE.SIGN_RECOVER;
    if (has((b) => b === ALGO.ECDH || b === ALGO.EC_DERIVE)) u |= USAGE.DERIVE;
  } else {
    if (has((b) => b === ALGO.AES_CBC_ENCRYPT)) u |= USAGE.ENCRYPT;
    if (has((b) => b === ALGO.AES_CBC_DECRYPT)) u |= USAGE.DECRYPT;
    if (has((b) => b === ALGO.AES_CMAC)) u |= USAGE.SIGN;
    if (has((b) => b === ALGO.AES_DERIVE)) u |= USAGE.DERIVE;
  }
  return u;
}

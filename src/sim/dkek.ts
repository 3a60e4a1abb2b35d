/**
 * Device key encryption keys: MANAGE KEY DOMAIN `80 52` — IMPORT DKEK SHARE, domain status,
 * creation and deletion of DKEK domains (spec §3.10, §7.3–7.4) — WRAP KEY `80 72` with the DKEK of
 * the key's domain and UNWRAP KEY `80 74` into the domain whose KCV the blob carries (spec §3.16,
 * §8). The domains themselves: domains.ts.
 */
import { createPrivateKey } from 'node:crypto';
import { decryptKeyBlob, encryptKeyBlob, type KeyMaterial, keyCheckValue } from '../dkek/index.js';
import { ALGO, EF } from '../protocol/constants.js';
import { bytesEqual, concat } from '../util/bytes.js';
import { curveByName } from '../util/curves.js';
import {
  type CardContext,
  ensureSpace,
  type Handler,
  keyObjectSize,
  requireUser,
  userAuthenticated,
} from './context.js';
import { checkDomainNumber, domainCount, domainDkek, keyDomain, setDomainDkek } from './domains.js';
import { keyFor } from './keys.js';
import type { DkekState, StoredKey } from './state.js';
import { fail, SW } from './sw.js';
import {
  DOMAIN_DELETE_UNUSED_SW,
  DOMAIN_DELETED_SW,
  DOMAIN_HAS_KEYS_SW,
  DOMAIN_IN_USE_SW,
  DOMAIN_MANAGE_NEEDS_PIN_SW,
  DOMAIN_RANDOM_DKEK_DELETE_SW,
  DOMAIN_SHARES_INVALID_SW,
  DOMAIN_UNUSED_SW,
  EXTRA_SHARE_SW,
  KCV_BEFORE_LOGIN_IS_ZERO,
  KCV_WHILE_PENDING_IS_ZERO,
  KEY_OCCUPIED_SW,
  NO_DKEK_SW,
  OTHER_KEY_DOMAIN_SW,
  rsaWrapForm,
  UNWRAP_BAD_BLOB_SW,
  WRAP_DKEK_INCOMPLETE_SW,
  WRAP_NO_DKEK_SW,
  WRAP_NOT_ALLOWED_SW,
  XKEK_DOMAIN_SW,
} from './uncertain.js';

const SHARE_LEN = 32;

function status(ctx: CardContext, d: DkekState): Uint8Array {
  const hidden =
    (d.outstanding > 0 && KCV_WHILE_PENDING_IS_ZERO) ||
    (ctx.state.kcvAfterLogin === true && KCV_BEFORE_LOGIN_IS_ZERO && !ctx.vol.userVerified);
  const kcv = hidden ? new Uint8Array(8) : keyCheckValue(d.value);
  return concat(Uint8Array.of(d.shares, d.outstanding), kcv);
}

/** The DKEK of a domain for status and import, or the SW for "none". */
function usedDomain(ctx: CardContext, domain: number): DkekState {
  const d = domainDkek(ctx.state, domain);
  // a card without key domains has no DKEK at all: what sc-hsm-tool reads as "not initialized for shares"
  if (!d)
    fail(ctx.state.keyDomains === undefined ? NO_DKEK_SW : DOMAIN_UNUSED_SW, `key domain ${domain} unused`);
  return d;
}

/**
 * MANAGE KEY DOMAIN `80 52 P1 domain` (spec §3.10): P1=00 status (no data) or IMPORT DKEK SHARE
 * (32 bytes); 01 create a DKEK domain expecting `data[0]` shares; 02 XKEK domain (refused); 03
 * delete an empty domain; 04 delete the domain's DKEK. Answers the domain's status.
 */
export const manageKeyDomain: Handler = (ctx, cmd) => {
  const s = ctx.state;
  if (!s.initialized) fail(NO_DKEK_SW, 'not initialized');
  const domain = cmd.p2;
  checkDomainNumber(s, domain);
  if (cmd.p1 !== 0x00 && s.keyDomains === undefined) fail(OTHER_KEY_DOMAIN_SW, 'no key domains configured');
  switch (cmd.p1) {
    case 0x00:
      return importShare(ctx, domain, cmd.data);
    case 0x01: {
      if (!userAuthenticated(ctx)) fail(DOMAIN_MANAGE_NEEDS_PIN_SW, 'user not authenticated');
      if (cmd.data.length !== 1) fail(SW.WRONG_LENGTH, 'the share count is 1 byte');
      if (domainDkek(s, domain)) fail(DOMAIN_IN_USE_SW, `key domain ${domain} exists`);
      const n = cmd.data[0]!;
      if (n === 0) fail(DOMAIN_SHARES_INVALID_SW, 'a DKEK domain needs at least one share');
      const d: DkekState = { shares: n, outstanding: n, value: new Uint8Array(32) };
      setDomainDkek(s, domain, d);
      ctx.changed();
      return { data: status(ctx, d) };
    }
    case 0x02:
      if (!userAuthenticated(ctx)) fail(DOMAIN_MANAGE_NEEDS_PIN_SW, 'user not authenticated');
      return fail(XKEK_DOMAIN_SW, 'no PKI-as-a-Service group key: XKEK membership cannot be verified');
    case 0x03: {
      if (!userAuthenticated(ctx)) fail(DOMAIN_MANAGE_NEEDS_PIN_SW, 'user not authenticated');
      if (!domainDkek(s, domain)) fail(DOMAIN_DELETE_UNUSED_SW, `key domain ${domain} unused`);
      for (const [id, k] of s.keys)
        if (id !== 0 && keyDomain(k) === domain)
          fail(DOMAIN_HAS_KEYS_SW, `key ${id} belongs to domain ${domain}`);
      setDomainDkek(s, domain, undefined);
      ctx.changed();
      return { sw: DOMAIN_DELETED_SW };
    }
    case 0x04: {
      if (!userAuthenticated(ctx)) fail(DOMAIN_MANAGE_NEEDS_PIN_SW, 'user not authenticated');
      const d = usedDomain(ctx, domain);
      if (d.shares === 0)
        fail(DOMAIN_RANDOM_DKEK_DELETE_SW, 'a card-generated DKEK cannot be imported again');
      d.value.fill(0);
      d.outstanding = d.shares;
      ctx.changed();
      return { data: status(ctx, d) };
    }
    default:
      fail(OTHER_KEY_DOMAIN_SW, 'unknown key domain function');
  }
};

/** P1=00: the status without data, IMPORT DKEK SHARE with 32 bytes (XORed into the domain's DKEK). */
function importShare(ctx: CardContext, domain: number, share: Uint8Array) {
  const d = usedDomain(ctx, domain);
  if (share.length === 0) return { data: status(ctx, d) };
  if (domain !== 0 && !userAuthenticated(ctx)) fail(DOMAIN_MANAGE_NEEDS_PIN_SW, 'user not authenticated');
  if (share.length !== SHARE_LEN) fail(SW.WRONG_LENGTH, 'a DKEK share has 32 bytes');
  if (d.outstanding === 0) fail(EXTRA_SHARE_SW, 'no share outstanding');
  for (let i = 0; i < SHARE_LEN; i++) d.value[i]! ^= share[i]!;
  d.outstanding--;
  ctx.changed();
  return { data: status(ctx, d) };
}

/** The complete DKEK of a domain, or the SW for "none" / "incomplete". */
function completeDkek(ctx: CardContext, domain: number): Uint8Array {
  const d = domainDkek(ctx.state, domain);
  if (!d) fail(WRAP_NO_DKEK_SW, `no DKEK in key domain ${domain}`);
  if (d.outstanding > 0) fail(WRAP_DKEK_INCOMPLETE_SW, 'DKEK import pending');
  return d.value;
}

/** Before UNWRAP KEY looks at anything else: 6D00 without any DKEK, 6985 while none is complete. */
function requireCompleteDomain(ctx: CardContext): void {
  const all = [...Array(domainCount(ctx.state)).keys()].map((d) => domainDkek(ctx.state, d));
  if (!all.some((d) => d)) fail(WRAP_NO_DKEK_SW, 'no DKEK configured');
  if (!all.some((d) => d && d.outstanding === 0)) fail(WRAP_DKEK_INCOMPLETE_SW, 'DKEK import pending');
}

/**
 * The domain UNWRAP KEY decrypts a blob with: the first (lowest) whose complete DKEK has the
 * blob's KCV, as pico does (spec §3.10); 6A80 when none has.
 */
function unwrapDomain(ctx: CardContext, blob: Uint8Array): { domain: number; dkek: Uint8Array } {
  for (let domain = 0; domain < domainCount(ctx.state); domain++) {
    const d = domainDkek(ctx.state, domain);
    if (
      d &&
      d.outstanding === 0 &&
      blob.length >= 8 &&
      bytesEqual(keyCheckValue(d.value), blob.subarray(0, 8))
    )
      return { domain, dkek: d.value };
  }
  fail(UNWRAP_BAD_BLOB_SW, 'the blob matches no key domain');
}

/** WRAP KEY `80 72 keyId 92` (spec §3.16): the key blob of §8.1 under the DKEK. */
export const wrapKey: Handler = (ctx, cmd) => {
  if (cmd.p2 !== ALGO.WRAP) fail(SW.WRONG_P1P2);
  requireUser(ctx);
  const k = keyFor(ctx, cmd.p1);
  const dkek = completeDkek(ctx, keyDomain(k));
  if (k.algorithms && !k.algorithms.includes(ALGO.WRAP)) fail(WRAP_NOT_ALLOWED_SW, 'key not exportable');
  const material: KeyMaterial = k.kind === 'aes' ? { aes: k.secret! } : { pkcs8: k.pkcs8! };
  const opts: { algorithms?: Uint8Array; rsaForm?: 'plain' | 'crt' } = {};
  if (k.algorithms) opts.algorithms = k.algorithms;
  if (k.kind === 'rsa') opts.rsaForm = rsaWrapForm(k.bits);
  return { data: encryptKeyBlob(material, dkek, opts) };
};

/** UNWRAP KEY `80 74 keyId 93` (spec §3.16): blob in the APDU (0.23) or in EF 2F10 (Case 1, HEAD). */
export const unwrapKey: Handler = (ctx, cmd) => {
  if (cmd.p2 !== ALGO.UNWRAP) fail(SW.WRONG_P1P2);
  requireUser(ctx);
  const id = cmd.p1;
  if (id < 1 || id > 255) fail(SW.WRONG_P1P2, 'key id must be 1..255');
  requireCompleteDomain(ctx);
  if (ctx.state.keys.has(id)) fail(KEY_OCCUPIED_SW, `key ${id} exists`);
  let blob = cmd.data;
  if (blob.length === 0) {
    const f = ctx.state.files.get(EF.UNWRAP_TRANSFER);
    if (!f || f.length === 0) fail(SW.WRONG_DATA, 'no key blob in EF 2F10');
    blob = f;
  }
  const { domain, dkek } = unwrapDomain(ctx, blob);
  let key: StoredKey;
  try {
    const dec = decryptKeyBlob(blob, dkek);
    const algorithms = dec.algorithms.length > 0 ? dec.algorithms.slice() : undefined;
    if (dec.keyType === 'aes') {
      const secret = dec.aesKey!;
      if (![16, 24, 32].includes(secret.length)) throw new RangeError('AES key length');
      key = { kind: 'aes', bits: secret.length * 8, secret: secret.slice() };
    } else {
      const pkcs8 = dec.pkcs8!.slice();
      const ko = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
      if (dec.keyType === 'ec') {
        const curve = curveByName(dec.curve!);
        key = { kind: 'ec', curve: curve.name, bits: curve.bits, pkcs8 };
      } else {
        key = { kind: 'rsa', bits: ko.asymmetricKeyDetails?.modulusLength ?? dec.bits, pkcs8 };
      }
    }
    if (algorithms) key.algorithms = algorithms;
    if (domain !== 0 || ctx.state.keyDomains !== undefined) key.domain = domain;
  } catch {
    fail(UNWRAP_BAD_BLOB_SW, 'key blob does not match the DKEK or is malformed');
  }
  ensureSpace(ctx.state, keyObjectSize(key));
  ctx.state.keys.set(id, key);
  ctx.changed();
  return {};
};

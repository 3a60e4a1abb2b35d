/**
 * Device key encryption key: IMPORT DKEK SHARE / key domain status `80 52` (spec §3.10, §7.3–7.4),
 * WRAP KEY `80 72` and UNWRAP KEY `80 74` (spec §3.16, §8). Only key domain 0 exists.
 */
import { createPrivateKey } from 'node:crypto';
import { decryptKeyBlob, encryptKeyBlob, type KeyMaterial, keyCheckValue } from '../dkek/index.js';
import { ALGO, EF } from '../protocol/constants.js';
import { concat } from '../util/bytes.js';
import { curveByName } from '../util/curves.js';
import { type CardContext, ensureSpace, type Handler, keyObjectSize, requireUser } from './context.js';
import { keyFor } from './keys.js';
import type { DkekState, StoredKey } from './state.js';
import { fail, SW } from './sw.js';
import {
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
} from './uncertain.js';

const SHARE_LEN = 32;

function status(ctx: CardContext, d: DkekState): Uint8Array {
  const hidden =
    (d.outstanding > 0 && KCV_WHILE_PENDING_IS_ZERO) ||
    (ctx.state.kcvAfterLogin === true && KCV_BEFORE_LOGIN_IS_ZERO && !ctx.vol.userVerified);
  const kcv = hidden ? new Uint8Array(8) : keyCheckValue(d.value);
  return concat(Uint8Array.of(d.shares, d.outstanding), kcv);
}

/** IMPORT DKEK SHARE `80 52 00 00` with a 32-byte share, or the status query without data (spec §3.10). */
export const manageKeyDomain: Handler = (ctx, cmd) => {
  if (cmd.p1 !== 0x00 || cmd.p2 !== 0x00) fail(OTHER_KEY_DOMAIN_SW, 'only key domain 0');
  const d = ctx.state.dkek;
  if (!ctx.state.initialized || !d) fail(NO_DKEK_SW, 'no DKEK configured');
  if (cmd.data.length === 0) return { data: status(ctx, d) };
  if (cmd.data.length !== SHARE_LEN) fail(SW.WRONG_LENGTH, 'a DKEK share has 32 bytes');
  if (d.outstanding === 0) fail(EXTRA_SHARE_SW, 'no share outstanding');
  for (let i = 0; i < SHARE_LEN; i++) d.value[i]! ^= cmd.data[i]!;
  d.outstanding--;
  ctx.changed();
  return { data: status(ctx, d) };
};

/** The complete DKEK, or the SW for "none" / "incomplete". */
function completeDkek(ctx: CardContext): Uint8Array {
  const d = ctx.state.dkek;
  if (!d) fail(WRAP_NO_DKEK_SW, 'no DKEK configured');
  if (d.outstanding > 0) fail(WRAP_DKEK_INCOMPLETE_SW, 'DKEK import pending');
  return d.value;
}

/** WRAP KEY `80 72 keyId 92` (spec §3.16): the key blob of §8.1 under the DKEK. */
export const wrapKey: Handler = (ctx, cmd) => {
  if (cmd.p2 !== ALGO.WRAP) fail(SW.WRONG_P1P2);
  requireUser(ctx);
  const k = keyFor(ctx, cmd.p1);
  const dkek = completeDkek(ctx);
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
  const dkek = completeDkek(ctx);
  if (ctx.state.keys.has(id)) fail(KEY_OCCUPIED_SW, `key ${id} exists`);
  let blob = cmd.data;
  if (blob.length === 0) {
    const f = ctx.state.files.get(EF.UNWRAP_TRANSFER);
    if (!f || f.length === 0) fail(SW.WRONG_DATA, 'no key blob in EF 2F10');
    blob = f;
  }
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
  } catch {
    fail(UNWRAP_BAD_BLOB_SW, 'key blob does not match the DKEK or is malformed');
  }
  ensureSpace(ctx.state, keyObjectSize(key));
  ctx.state.keys.set(id, key);
  ctx.changed();
  return {};
};

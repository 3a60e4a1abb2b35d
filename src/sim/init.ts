/** INITIALIZE DEVICE `80 50 00 00` (spec §3.9). */
import { randomBytes } from 'node:crypto';
import { INIT_TAG, OPTION, SO_PIN_TRIES } from '../protocol/constants.js';
import { concat, readUintBE, uintBE } from '../util/bytes.js';
import { readAll, type Tlv } from '../util/tlv.js';
import { type CardContext, freeMemory, type Handler } from './context.js';
import {
  checkSoPin,
  maxRetriesForPinLength,
  SO_PIN_LEN,
  USER_PIN_MAX_LEN,
  USER_PIN_MIN_LEN,
} from './pins.js';
import { fail, type Reply, SW } from './sw.js';
import { INIT_STATUS_QUERY, RANDOM_DKEK_SHARE_COUNT } from './uncertain.js';

const DEFAULT_USER_PIN_TRIES = 3;

/** The no-data form: `free memory (4) 00 major minor` (UNCERTAIN, see uncertain.ts). */
function statusQuery(ctx: CardContext): Reply {
  if (!INIT_STATUS_QUERY) fail(SW.WRONG_LENGTH);
  const [maj, min] = ctx.state.firmware;
  return { data: concat(uintBE(freeMemory(ctx.state), 4), Uint8Array.of(0x00, maj, min)) };
}

/**
 * INITIALIZE DEVICE: sets option word, user PIN and its retry counter, the SO-PIN on first use
 * (later: must be presented), DKEK share count, PKA; wipes keys and files except CC00 and 2F02.
 */
export const initialize: Handler = (ctx, cmd) => {
  if (cmd.p1 !== 0 || cmd.p2 !== 0) fail(SW.WRONG_P1P2);
  if (cmd.data.length === 0) return statusQuery(ctx);
  let tlvs: Tlv[];
  try {
    tlvs = readAll(cmd.data);
  } catch {
    fail(SW.WRONG_DATA, 'malformed TLVs');
  }
  const get = (tag: number) => tlvs.find((t) => t.tag === tag)?.value;
  const opt = get(INIT_TAG.OPTIONS);
  const userPin = get(INIT_TAG.USER_PIN);
  const soPin = get(INIT_TAG.SO_PIN);
  const retry = get(INIT_TAG.USER_PIN_RETRY);
  const shares = get(INIT_TAG.DKEK_SHARES);
  const pka = get(INIT_TAG.PUBLIC_KEY_AUTH);
  const domains = get(INIT_TAG.KEY_DOMAINS);

  if (opt && opt.length !== 2) fail(SW.WRONG_DATA, 'option word must be 2 bytes');
  if (!userPin || userPin.length < USER_PIN_MIN_LEN || userPin.length > USER_PIN_MAX_LEN) {
    fail(SW.WRONG_DATA, 'user PIN must be 6..16 bytes');
  }
  if (!soPin || soPin.length !== SO_PIN_LEN) fail(SW.WRONG_DATA, 'SO-PIN must be 8 bytes');
  if (retry && retry.length !== 1) fail(SW.WRONG_DATA, 'retry counter must be 1 byte');
  const tries = retry ? retry[0]! : DEFAULT_USER_PIN_TRIES;
  if (tries < 1 || tries > maxRetriesForPinLength(userPin.length)) {
    fail(SW.WRONG_DATA, 'retry counter not allowed for this PIN length');
  }
  if (shares && shares.length !== 1) fail(SW.WRONG_DATA, 'DKEK share count must be 1 byte');
  if (pka && (pka.length !== 2 || pka[0]! < 1 || pka[0]! > 90 || pka[1]! < 1 || pka[1]! > pka[0]!)) {
    fail(SW.WRONG_DATA, 'public key authentication N-of-M invalid');
  }
  if (domains && domains.length !== 1) fail(SW.WRONG_DATA, 'key domain count must be 1 byte');

  const s = ctx.state;
  if (s.soPin) {
    checkSoPin(ctx, soPin);
  } else {
    s.soPin = soPin.slice();
    s.soPinTries = SO_PIN_TRIES;
  }

  for (const id of [...s.keys.keys()]) if (id !== 0) s.keys.delete(id);
  for (const fid of [...s.files.keys()]) if (fid !== 0x2f02) s.files.delete(fid);
  s.options = opt ? readUintBE(opt) : 0;
  s.userPin = userPin.slice();
  s.userPinMaxTries = tries;
  s.userPinTries = tries;
  s.transportPin = (s.options & OPTION.TRANSPORT_PIN) !== 0;
  if (pka) s.pka = { total: pka[0]!, required: pka[1]!, keys: [] };
  else delete s.pka;
  if (domains) s.keyDomains = domains[0]!;
  else delete s.keyDomains;
  // domains other than 0 start unused (spec §3.10: created with MANAGE KEY DOMAIN P1=01)
  delete s.domains;
  if (!shares) delete s.dkek;
  else if (shares[0] === 0)
    s.dkek = { shares: RANDOM_DKEK_SHARE_COUNT, outstanding: 0, value: new Uint8Array(randomBytes(32)) };
  else s.dkek = { shares: shares[0]!, outstanding: shares[0]!, value: new Uint8Array(32) };
  s.initialized = true;
  ctx.vol.userVerified = false;
  ctx.vol.soVerified = false;
  ctx.vol.currentEf = undefined;
  ctx.changed();
  return {};
};

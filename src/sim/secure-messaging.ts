/**
 * The card side of chip authentication and secure messaging (spec §3.19) and the session PIN
 * (spec §3.20), with the card's own device key CC00:
 *
 * - MSE SET AT `00 22 41 A4 80 0A <id-CA-ECDH-AES-CBC-CMAC-128>` chooses chip authentication;
 * - GENERAL AUTHENTICATE `00 86 00 00 7C { 80 <ephemeral 04‖X‖Y> }` answers `7C { 81 nonce, 82
 *   token }`: Z = X of d·P, K_enc / K_mac = SHA-1(Z ‖ nonce ‖ 00000001 / 00000002)[0..16],
 *   token = AES-CMAC(K_mac, `7F49 { 06 OID, 86 P }`)[0..8], SSC = 0;
 * - afterwards a command with CLA bits `0C` is checked (MAC over pad(SSC ‖ pad(header) ‖ DOs)),
 *   decrypted and processed, and its answer is encrypted and MACed (`87`, `99`, `8E`); a wrong MAC
 *   or a malformed protected command ends SM and the security state (plain `69 88`), and so does
 *   a plain command while SM is active (TR-03110); see uncertain.ts for the choices.
 * - `80 5A 01 81` inside SM, after the user is authenticated, on a device with option 0004: the
 *   session PIN, 8 random bytes, kept until reset; VERIFY inside SM accepts it instead of the PIN.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ParsedCommand } from '../apdu/command.js';
import { aesCmac } from '../dkek/dkek.js';
import { INS, OID, OPTION, PIN_USER } from '../protocol/constants.js';
import { bytesEqual, concat } from '../util/bytes.js';
import { readTlv, tlv } from '../util/tlv.js';
import { type CardContext, type Handler, requireUser } from './context.js';
import { ecdhPoint, ecPrivateScalar } from './ec.js';
import { fail, type Reply, SW, SwError } from './sw.js';
import { SESSION_PIN_DISABLED_SW, SM_ERROR_SW } from './uncertain.js';

/** Keys and counter of the card's secure channel (volatile). */
export interface SmSession {
  kEnc: Uint8Array;
  kMac: Uint8Array;
  ssc: Uint8Array;
}

const BLOCK = 16;

function pad(data: Uint8Array): Uint8Array {
  const out = new Uint8Array((Math.floor(data.length / BLOCK) + 1) * BLOCK);
  out.set(data);
  out[data.length] = 0x80;
  return out;
}

function unpad(data: Uint8Array): Uint8Array | undefined {
  let i = data.length - 1;
  while (i >= 0 && data[i] === 0) i--;
  return i >= 0 && data[i] === 0x80 ? data.subarray(0, i) : undefined;
}

function aes(
  mode: 'ecb' | 'cbc',
  encrypt: boolean,
  key: Uint8Array,
  iv: Uint8Array | null,
  data: Uint8Array,
) {
  const c = encrypt
    ? createCipheriv(`aes-128-${mode}`, key, iv).setAutoPadding(false)
    : createDecipheriv(`aes-128-${mode}`, key, iv).setAutoPadding(false);
  return new Uint8Array(concat(c.update(data), c.final()));
}

function increment(ssc: Uint8Array): void {
  for (let i = BLOCK - 1; i >= 0; i--) {
    ssc[i] = (ssc[i]! + 1) & 0xff;
    if (ssc[i] !== 0) break;
  }
}

function mac(sm: SmSession, data: Uint8Array): Uint8Array {
  return aesCmac(sm.kMac, pad(concat(sm.ssc, data))).subarray(0, 8);
}

/** Ends secure messaging and the security state it protected (a fault, or a plain command). */
export function endSecureMessaging(ctx: CardContext): void {
  if (!ctx.vol.sm) return;
  ctx.vol.sm.kEnc.fill(0);
  ctx.vol.sm.kMac.fill(0);
  ctx.vol.sm = undefined;
  ctx.vol.userVerified = false;
  ctx.vol.soVerified = false;
  ctx.vol.pka = undefined;
}

/** MSE SET AT for chip authentication `00 22 41 A4 80 0A <OID>` (spec §3.19). */
export const mseSetAtChipAuthentication: Handler = (ctx, cmd) => {
  if (cmd.p1 !== 0x41 || cmd.p2 !== 0xa4) fail(SW.WRONG_P1P2);
  let oid: Uint8Array | undefined;
  try {
    let p = 0;
    while (p < cmd.data.length) {
      const t = readTlv(cmd.data, p);
      if (t.tag === 0x80) oid = t.value;
      else if (t.tag !== 0x84) fail(SW.WRONG_DATA, 'unexpected tag in MSE SET AT');
      p = t.end;
    }
  } catch (e) {
    if (e instanceof SwError) throw e;
    fail(SW.WRONG_DATA, 'MSE SET AT data cannot be read');
  }
  if (!oid || !bytesEqual(oid, OID.CA_ECDH_AES_CBC_CMAC_128)) fail(SW.WRONG_DATA, 'protocol not supported');
  ctx.vol.caSelected = true;
  return {};
};

/** GENERAL AUTHENTICATE `00 86 00 00 7C { 80 <ephemeral> }` (spec §3.19): starts SM. */
export const generalAuthenticate: Handler = (ctx, cmd) => {
  if (cmd.p1 !== 0 || cmd.p2 !== 0) fail(SW.WRONG_P1P2);
  if (!ctx.vol.caSelected || ctx.vol.inSecureCommand) fail(SW.CONDITIONS, 'MSE SET AT first, outside SM');
  ctx.vol.caSelected = false;
  let peer: Uint8Array | undefined;
  try {
    const dyn = readTlv(cmd.data);
    if (dyn.tag !== 0x7c || dyn.end !== cmd.data.length) fail(SW.WRONG_DATA);
    const t = readTlv(dyn.value);
    if (t.tag === 0x80 && t.end === dyn.value.length) peer = t.value;
  } catch (e) {
    if (e instanceof SwError) throw e;
  }
  if (!peer) fail(SW.WRONG_DATA, 'no ephemeral public key');
  const device = ctx.state.keys.get(0);
  if (!device?.pkcs8 || device.kind !== 'ec') fail(SW.REF_NOT_FOUND, 'no device key');
  const shared = ecdhPoint('brainpoolP256r1', ecPrivateScalar(device.pkcs8), peer);
  if (!shared) fail(SW.WRONG_DATA, 'ephemeral key not on the curve');
  const z = shared.subarray(1, 33);
  const nonce = new Uint8Array(randomBytes(8));
  const kdf = (n: number) =>
    new Uint8Array(
      createHash('sha1')
        .update(z)
        .update(nonce)
        .update(Uint8Array.of(0, 0, 0, n))
        .digest(),
    ).slice(0, 16);
  endSecureMessaging(ctx);
  const sm: SmSession = { kEnc: kdf(1), kMac: kdf(2), ssc: new Uint8Array(BLOCK) };
  shared.fill(0);
  const token = aesCmac(
    sm.kMac,
    tlv(0x7f49, tlv(0x06, OID.CA_ECDH_AES_CBC_CMAC_128), tlv(0x86, peer)),
  ).subarray(0, 8);
  ctx.vol.sm = sm;
  return { data: tlv(0x7c, tlv(0x81, nonce), tlv(0x82, token)) };
};

/** `80 5A 01 81` (spec §3.20): the session PIN, only inside SM, after the user was authenticated. */
export const sessionPin: Handler = (ctx, cmd) => {
  if (!ctx.vol.inSecureCommand) fail(SW.SECURITY_STATUS, 'only inside secure messaging');
  if (cmd.p1 !== 0x01 || cmd.p2 !== PIN_USER) fail(SW.WRONG_P1P2);
  if ((ctx.state.options & OPTION.SESSION_PIN) === 0)
    fail(SESSION_PIN_DISABLED_SW, 'session PIN not enabled');
  requireUser(ctx);
  const pin = new Uint8Array(randomBytes(8));
  ctx.vol.sessionPin = pin.slice();
  return { data: pin };
};

/** A VERIFY inside SM that carries the session PIN (and the PIN is not blocked): the user is verified. */
function sessionPinVerify(ctx: CardContext, cmd: ParsedCommand): boolean {
  const s = ctx.vol.sessionPin;
  if (!s || cmd.cla !== 0x00 || cmd.ins !== INS.VERIFY || cmd.p1 !== 0 || cmd.p2 !== PIN_USER) return false;
  if (cmd.data.length !== s.length || ctx.state.userPinTries === 0) return false;
  if (!timingSafeEqual(cmd.data, s)) return false;
  ctx.vol.userVerified = true;
  return true;
}

/** A protected answer: `87` (data), `99` (SW), `8E` (MAC). */
function wrapReply(sm: SmSession, r: Reply): Reply {
  increment(sm.ssc);
  const parts: Uint8Array[] = [];
  const data = r.data ?? new Uint8Array(0);
  if (data.length > 0) {
    const iv = aes('ecb', true, sm.kEnc, null, sm.ssc);
    parts.push(tlv(0x87, Uint8Array.of(0x01), aes('cbc', true, sm.kEnc, iv, pad(data))));
  }
  const sw = r.sw ?? SW.OK;
  parts.push(tlv(0x99, Uint8Array.of(sw >> 8, sw & 0xff)));
  const dos = concat(...parts);
  return { data: concat(dos, tlv(0x8e, mac(sm, dos))), sw: SW.OK };
}

/**
 * A command with the SM bits in its CLA: checked, decrypted, given to `inner`, its answer
 * protected. Any fault ends SM and answers plain `69 88` (SM_ERROR_SW).
 */
export function secureCommand(
  ctx: CardContext,
  cmd: ParsedCommand,
  inner: (c: ParsedCommand) => Reply,
): Reply {
  const sm = ctx.vol.sm;
  if (!sm) return { sw: SM_ERROR_SW };
  increment(sm.ssc);
  const header = pad(Uint8Array.of(cmd.cla, cmd.ins, cmd.p1, cmd.p2)).subarray(0, BLOCK);
  let body: Uint8Array | undefined;
  let odd = false;
  let le: Uint8Array | undefined;
  let macValue: Uint8Array | undefined;
  let macStart = cmd.data.length;
  try {
    let p = 0;
    while (p < cmd.data.length) {
      const t = readTlv(cmd.data, p);
      if (macValue) throw new Error('data after the MAC');
      if (t.tag === 0x87 || t.tag === 0x85) {
        body = t.value;
        odd = t.tag === 0x85;
      } else if (t.tag === 0x97) le = t.value;
      else if (t.tag === 0x8e) {
        macValue = t.value;
        macStart = p;
      } else throw new Error('unexpected data object');
      p = t.end;
    }
  } catch {
    endSecureMessaging(ctx);
    return { sw: SM_ERROR_SW };
  }
  const expected = mac(sm, concat(header, cmd.data.subarray(0, macStart)));
  if (macValue?.length !== 8 || !timingSafeEqual(expected, macValue)) {
    endSecureMessaging(ctx);
    return { sw: SM_ERROR_SW };
  }
  let data = new Uint8Array(0);
  if (body) {
    const enc = odd ? body : body.subarray(1);
    const plain =
      (odd || body[0] === 0x01) && enc.length > 0 && enc.length % BLOCK === 0
        ? unpad(aes('cbc', false, sm.kEnc, aes('ecb', true, sm.kEnc, null, sm.ssc), enc))
        : undefined;
    if (!plain) {
      endSecureMessaging(ctx);
      return { sw: SM_ERROR_SW };
    }
    data = plain.slice();
  }
  let ne: number | undefined;
  if (le) {
    const n = le.length === 1 ? le[0]! : le.length === 2 ? (le[0]! << 8) | le[1]! : -1;
    if (n < 0) {
      endSecureMessaging(ctx);
      return { sw: SM_ERROR_SW };
    }
    ne = n === 0 ? (le.length === 1 ? 256 : 65536) : n;
  }
  const plainCmd: ParsedCommand = {
    cla: cmd.cla & ~0x0c,
    ins: cmd.ins,
    p1: cmd.p1,
    p2: cmd.p2,
    data,
    extended: true,
  };
  if (ne !== undefined) plainCmd.ne = ne;
  let r: Reply;
  ctx.vol.inSecureCommand = true;
  try {
    r = sessionPinVerify(ctx, plainCmd) ? {} : inner(plainCmd);
  } catch (e) {
    r = { sw: e instanceof SwError ? e.sw : SW.UNKNOWN };
  } finally {
    ctx.vol.inSecureCommand = false;
  }
  return wrapReply(sm, r);
}

/**
 * User PIN and SO-PIN (spec §3.6–3.8, §9): VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER.
 * The retry counters are persistent; the "verified" flags are volatile.
 */
import { timingSafeEqual } from 'node:crypto';
import { OPTION, PIN_BIO, PIN_PINPAD, PIN_SO, PIN_USER, SO_PIN_TRIES } from '../protocol/constants.js';
import type { CardContext, Handler } from './context.js';
import { pkaReplacesPin, verifyReplacedPin } from './pka.js';
import { fail, type Reply, SW, swTries } from './sw.js';
import { BLOCKING_TRY_SW, VERIFY_SO_PIN_SUPPORTED } from './uncertain.js';

/** User PIN length accepted by the card (spec §9; sc-hsm-tool allows 16). */
export const USER_PIN_MIN_LEN = 6;
export const USER_PIN_MAX_LEN = 16;
export const SO_PIN_LEN = 8;

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The highest user-PIN retry counter the card allows for a PIN of this length (spec §9). */
export function maxRetriesForPinLength(len: number): number {
  return len <= 6 ? 3 : len === 7 ? 5 : 10;
}

/** Answer for a wrong presentation after the counter went down to `left`. */
function wrongTry(left: number): never {
  fail(left === 0 ? BLOCKING_TRY_SW : swTries(left), 'wrong PIN');
}

/** Checks the user PIN, counting down on failure; throws the SW on failure. */
function checkUserPin(ctx: CardContext, pin: Uint8Array): void {
  const s = ctx.state;
  if (s.userPinTries === 0) fail(SW.BLOCKED);
  if (!same(pin, s.userPin!)) {
    s.userPinTries--;
    ctx.vol.userVerified = false;
    ctx.changed();
    wrongTry(s.userPinTries);
  }
  if (s.userPinTries !== s.userPinMaxTries) {
    s.userPinTries = s.userPinMaxTries;
    ctx.changed();
  }
}

/** Checks the SO-PIN (8 bytes), counting down on failure; throws the SW on failure. */
export function checkSoPin(ctx: CardContext, so: Uint8Array): void {
  const s = ctx.state;
  if (!s.soPin) fail(SW.REF_NOT_FOUND, 'no SO-PIN set');
  if (s.soPinTries === 0) fail(SW.BLOCKED);
  if (!same(so, s.soPin)) {
    s.soPinTries--;
    ctx.vol.soVerified = false;
    ctx.changed();
    wrongTry(s.soPinTries);
  }
  if (s.soPinTries !== SO_PIN_TRIES) {
    s.soPinTries = SO_PIN_TRIES;
    ctx.changed();
  }
}

function verifyUser(ctx: CardContext, data: Uint8Array): Reply {
  const s = ctx.state;
  if (!s.initialized || !s.userPin) fail(SW.REF_NOT_FOUND, 'not initialized');
  if (s.userPinTries === 0) fail(SW.BLOCKED);
  if (s.transportPin) fail(SW.NOT_USABLE, 'transport PIN active');
  if (pkaReplacesPin(ctx)) return verifyReplacedPin(ctx);
  if (data.length === 0) return { sw: ctx.vol.userVerified ? SW.OK : swTries(s.userPinTries) };
  if (data.length < USER_PIN_MIN_LEN || data.length > USER_PIN_MAX_LEN) fail(SW.WRONG_DATA, 'PIN length');
  checkUserPin(ctx, data);
  ctx.vol.userVerified = true;
  return {};
}

function verifySo(ctx: CardContext, data: Uint8Array): Reply {
  const s = ctx.state;
  if (!s.soPin) fail(SW.REF_NOT_FOUND, 'not initialized');
  if (s.soPinTries === 0) fail(SW.BLOCKED);
  if (data.length === 0) return { sw: ctx.vol.soVerified ? SW.OK : swTries(s.soPinTries) };
  if (!VERIFY_SO_PIN_SUPPORTED) fail(SW.WRONG_P1P2);
  if (data.length !== SO_PIN_LEN) fail(SW.WRONG_DATA, 'SO-PIN must be 8 bytes');
  checkSoPin(ctx, data);
  ctx.vol.soVerified = true;
  return {};
}

/** VERIFY `00 20 00 81/88/85/86` with or without PIN (spec §3.6). */
export const verify: Handler = (ctx, cmd) => {
  if (cmd.p1 !== 0x00) fail(SW.WRONG_P1P2);
  switch (cmd.p2) {
    case PIN_USER:
      return verifyUser(ctx, cmd.data);
    case PIN_SO:
      return verifySo(ctx, cmd.data);
    case PIN_PINPAD:
    case PIN_BIO:
      return { sw: SW.REF_NOT_FOUND };
    default:
      fail(SW.WRONG_P1P2);
  }
};

/** CHANGE REFERENCE DATA `00 24 00 81` (old ‖ new, split by the stored length) and `00 24 00 88` (8 ‖ 8) — spec §3.7. */
export const changeReferenceData: Handler = (ctx, cmd) => {
  if (cmd.p1 !== 0x00) fail(SW.WRONG_P1P2);
  const s = ctx.state;
  if (cmd.p2 === PIN_USER) {
    if (!s.initialized || !s.userPin) fail(SW.REF_NOT_FOUND, 'not initialized');
    if (s.userPinTries === 0) fail(SW.BLOCKED);
    const oldLen = s.userPin.length;
    const newPin = cmd.data.subarray(oldLen);
    if (cmd.data.length <= oldLen || newPin.length < USER_PIN_MIN_LEN || newPin.length > USER_PIN_MAX_LEN) {
      fail(SW.WRONG_DATA, 'old ‖ new PIN expected');
    }
    checkUserPin(ctx, cmd.data.subarray(0, oldLen));
    s.userPin = newPin.slice();
    s.userPinTries = s.userPinMaxTries;
    s.transportPin = false;
    ctx.vol.userVerified = true;
    ctx.changed();
    return {};
  }
  if (cmd.p2 === PIN_SO) {
    if (!s.soPin) fail(SW.REF_NOT_FOUND, 'not initialized');
    if (cmd.data.length !== 2 * SO_PIN_LEN)
      fail(SW.WRONG_DATA, 'old SO-PIN ‖ new SO-PIN (8 + 8 bytes) expected');
    checkSoPin(ctx, cmd.data.subarray(0, SO_PIN_LEN));
    s.soPin = cmd.data.slice(SO_PIN_LEN);
    ctx.changed();
    return {};
  }
  fail(SW.WRONG_P1P2);
};

/** RESET RETRY COUNTER `00 2C 00/01 81` with the SO-PIN (spec §3.8); needs option 0001. */
export const resetRetryCounter: Handler = (ctx, cmd) => {
  if (cmd.p2 !== PIN_USER || (cmd.p1 !== 0x00 && cmd.p1 !== 0x01)) fail(SW.WRONG_P1P2);
  const s = ctx.state;
  if (!s.initialized || !s.userPin) fail(SW.REF_NOT_FOUND, 'not initialized');
  if ((s.options & OPTION.RESET_RETRY_COUNTER) === 0) fail(SW.NOT_ALLOWED, 'RESET RETRY COUNTER not enabled');
  let newPin: Uint8Array | undefined;
  if (cmd.p1 === 0x00) {
    newPin = cmd.data.subarray(SO_PIN_LEN);
    if (newPin.length < USER_PIN_MIN_LEN || newPin.length > USER_PIN_MAX_LEN) {
      fail(SW.WRONG_DATA, 'SO-PIN ‖ new PIN expected');
    }
  } else if (cmd.data.length !== SO_PIN_LEN) {
    fail(SW.WRONG_DATA, 'SO-PIN expected');
  }
  checkSoPin(ctx, cmd.data.subarray(0, SO_PIN_LEN));
  if (newPin) {
    s.userPin = newPin.slice();
    s.transportPin = false;
  }
  s.userPinTries = s.userPinMaxTries;
  ctx.vol.userVerified = false;
  ctx.changed();
  return {};
};

/**
 * The PINs: VERIFY (spec §3.6), CHANGE REFERENCE DATA (§3.7), RESET RETRY COUNTER (§3.8).
 *
 * No command carrying a PIN is ever sent twice; before each one the tries left are queried (a
 * VERIFY without data costs no try), a blocked PIN is reported without sending anything, and with
 * one try left the call refuses unless `force` is given (pin-guard.ts decides).
 */
import { swHex } from '../apdu/status.js';
import { ScHsmError } from '../errors.js';
import { CLA_ISO, INS, PIN_SO, PIN_USER } from '../protocol/constants.js';
import { concat, wipe } from '../util/bytes.js';
import type { SessionContext } from './context.js';
import { refuseUnsafeTry as guard, namePinError, refuseUnknownTries } from './pin-guard.js';
import { checkObject, parseSoPin, parseUserPin, typeName } from './validate.js';

/**
 * `public-key-auth`: the device authenticates with n-of-m public keys instead of the PIN (PKA
 * without option 0010) and they are not authenticated yet in this session (spec §3.18).
 */
export type PinState =
  | 'verified'
  | 'not-verified'
  | 'blocked'
  | 'transport-pin'
  | 'not-initialized'
  | 'public-key-auth';

export interface PinStatus {
  state: PinState;
  /** Tries left where the card says (`63 Cx`), 0 when blocked. */
  triesLeft?: number;
}

/** What VERIFY and CHANGE REFERENCE DATA answer besides `63 Cx` and `69 83` (pin-guard.ts names those). */
const VERIFY_OVERRIDES = {
  0x6a88: ['NOT_INITIALIZED', 'the device is not initialized (no PIN set)'],
  0x6984: ['TRANSPORT_PIN_ACTIVE', 'the transport PIN is still active: change the PIN first (pin change)'],
  0x6a80: ['INVALID_PIN', 'the card rejected the PIN length'],
  0x6400: [
    'CONDITIONS_NOT_SATISFIED',
    'this device authenticates with public keys (n-of-m custodians) instead of the user PIN: sc-hsm-ts pka authenticate',
  ],
} as const;

function pinStatusFromSw(code: number): PinStatus {
  if (code === 0x9000) return { state: 'verified' };
  if ((code & 0xfff0) === 0x63c0) {
    const n = code & 0x0f;
    return n === 0 ? { state: 'blocked', triesLeft: 0 } : { state: 'not-verified', triesLeft: n };
  }
  if (code === 0x6983) return { state: 'blocked', triesLeft: 0 };
  if (code === 0x6984) return { state: 'transport-pin' };
  // PKA replaces the PIN (src/sim/uncertain.ts PKA_PIN_REPLACED_SW)
  if (code === 0x6400) return { state: 'public-key-auth' };
  if (code === 0x6a88) return { state: 'not-initialized' };
  throw new ScHsmError('CARD_ERROR', `VERIFY (status query): unexpected SW ${swHex(code)}`, {
    sw: code,
    command: 'VERIFY',
  });
}

/** VERIFY without data (`00 20 00 81|88`): the PIN's state, costing no try (spec §3.6). */
export async function pinStatus(ctx: SessionContext, ref: number = PIN_USER): Promise<PinStatus> {
  if (ref !== PIN_USER && ref !== PIN_SO) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `the PIN reference must be 0x81 (user PIN) or 0x88 (SO-PIN); got ${typeof ref === 'number' ? `0x${ref.toString(16)}` : typeName(ref)}`,
    );
  }
  const r = await ctx.channel.send({ cla: CLA_ISO, ins: INS.VERIFY, p1: 0, p2: ref });
  return pinStatusFromSw(r.sw);
}

/** Queries the PIN's state (free) and refuses what would waste or block it. */
export async function checkTries(
  ctx: SessionContext,
  ref: number,
  force: boolean | undefined,
  what: string,
): Promise<PinStatus> {
  const st = await pinStatus(ctx, ref);
  refuseUnsafeTry(ctx, ref, st, force, what);
  return st;
}

/** refuseUnsafeTry of pin-guard.ts with what this session knows of the user PIN's retry counter. */
export function refuseUnsafeTry(
  ctx: SessionContext,
  ref: number,
  st: PinStatus,
  force: boolean | undefined,
  what: string,
): void {
  // a configured counter smaller than what the card shows was not this device's (re-initialized since)
  if (ref === PIN_USER && st.triesLeft !== undefined && st.triesLeft > (ctx.userPinRetries ?? 15)) {
    ctx.userPinRetries = undefined;
  }
  guard(ref, st, what, { force, userPinRetryCounter: ctx.userPinRetries });
}

/**
 * VERIFY with the user PIN (`00 20 00 81 Lc PIN`, spec §3.6), sent once, without a tries check:
 * the caller has made it (verifyPin) or has just set this PIN (initialize).
 */
export async function sendVerify(ctx: SessionContext, pin: Uint8Array): Promise<void> {
  try {
    await ctx.channel.exchange({ cla: CLA_ISO, ins: INS.VERIFY, p1: 0, p2: PIN_USER, data: pin }, 'VERIFY', {
      overrides: VERIFY_OVERRIDES as never,
    });
  } catch (e) {
    throw namePinError(e, PIN_USER);
  }
}

/** VERIFY of the user PIN after the tries check (spec §3.6); the PIN's bytes are wiped. */
export async function verifyPin(
  ctx: SessionContext,
  pin: string,
  opts: { force?: boolean } = {},
): Promise<void> {
  checkObject(opts, 'the options', { force: 'boolean' });
  const bytes = parseUserPin(pin);
  try {
    await ctx.channel.exclusive(async () => {
      await checkTries(ctx, PIN_USER, opts.force, 'VERIFY');
      await sendVerify(ctx, bytes);
    });
  } finally {
    wipe(bytes);
  }
}

/** CHANGE REFERENCE DATA for the user PIN (spec §3.7). */
export async function changePin(
  ctx: SessionContext,
  oldPin: string,
  newPin: string,
  opts: { force?: boolean } = {},
): Promise<void> {
  checkObject(opts, 'the options', { force: 'boolean' });
  const o = parseUserPin(oldPin, 'current user PIN');
  let n: Uint8Array;
  try {
    n = parseUserPin(newPin, 'new user PIN');
  } catch (e) {
    wipe(o);
    throw e;
  }
  await changeReferenceData(ctx, PIN_USER, o, n, opts.force);
}

/** CHANGE REFERENCE DATA for the SO-PIN (spec §3.7). */
export async function changeSoPin(
  ctx: SessionContext,
  oldSoPin: string,
  newSoPin: string,
  opts: { force?: boolean } = {},
): Promise<void> {
  checkObject(opts, 'the options', { force: 'boolean' });
  const o = parseSoPin(oldSoPin, 'current SO-PIN');
  let n: Uint8Array;
  try {
    n = parseSoPin(newSoPin, 'new SO-PIN');
  } catch (e) {
    wipe(o);
    throw e;
  }
  await changeReferenceData(ctx, PIN_SO, o, n, opts.force);
}

/**
 * CHANGE REFERENCE DATA (`00 24 00 81|88 Lc old‖new`, spec §3.7) after the tries check (a
 * transport PIN, whose tries the card does not report, only with `force`); old, new and the
 * command data are wiped.
 */
export async function changeReferenceData(
  ctx: SessionContext,
  ref: number,
  o: Uint8Array,
  n: Uint8Array,
  force?: boolean,
): Promise<void> {
  const data = concat(o, n);
  try {
    await ctx.channel.exclusive(async () => {
      if (o.length === n.length && o.every((b, i) => b === n[i])) {
        const so = ref === PIN_SO;
        throw new ScHsmError(
          so ? 'INVALID_SO_PIN' : 'INVALID_PIN',
          `the new ${so ? 'SO-PIN' : 'user PIN'} is the current one${so ? '' : ' (or the transport PIN)'}: choose another. Nothing was sent.`,
        );
      }
      const st = await pinStatus(ctx, ref);
      if (st.state === 'transport-pin' || st.state === 'public-key-auth')
        refuseUnknownTries(ref, st.state, 'CHANGE REFERENCE DATA', force);
      else refuseUnsafeTry(ctx, ref, st, force, 'CHANGE REFERENCE DATA');
      try {
        await ctx.channel.exchange(
          { cla: CLA_ISO, ins: INS.CHANGE_REFERENCE_DATA, p1: 0, p2: ref, data },
          'CHANGE REFERENCE DATA',
          { overrides: VERIFY_OVERRIDES as never },
        );
      } catch (e) {
        throw namePinError(e, ref);
      }
    });
  } finally {
    wipe(o);
    wipe(n);
    wipe(data);
  }
}

/**
 * RESET RETRY COUNTER of the user PIN with the SO-PIN (`00 2C 00|01 81 Lc SO-PIN[‖new PIN]`,
 * spec §3.8) after the SO-PIN's tries check.
 */
export async function unblockPin(
  ctx: SessionContext,
  opts: { soPin: string; newPin?: string; force?: boolean },
): Promise<void> {
  checkObject(opts, 'the unblock options', { soPin: 'string', newPin: 'string', force: 'boolean' });
  const so = parseSoPin(opts.soPin);
  let np: Uint8Array | undefined;
  try {
    np = opts.newPin === undefined ? undefined : parseUserPin(opts.newPin, 'new user PIN');
  } catch (e) {
    wipe(so);
    throw e;
  }
  const data = np ? concat(so, np) : so;
  try {
    await ctx.channel.exclusive(async () => {
      await checkTries(ctx, PIN_SO, opts.force, 'RESET RETRY COUNTER');
      try {
        await ctx.channel.exchange(
          {
            cla: CLA_ISO,
            ins: INS.RESET_RETRY_COUNTER,
            p1: np ? 0x00 : 0x01,
            p2: PIN_USER,
            data,
          },
          'RESET RETRY COUNTER',
          {
            overrides: {
              0x6986: [
                'CONDITIONS_NOT_SATISFIED',
                'this device was initialized without "reset retry counter" (option 0001): the user PIN cannot be unblocked with the SO-PIN',
              ],
              0x6a88: ['NOT_INITIALIZED', 'the device is not initialized'],
            },
          },
        );
      } catch (e) {
        throw namePinError(e, PIN_SO);
      }
    });
  } finally {
    wipe(so);
    wipe(np);
    wipe(data);
  }
}

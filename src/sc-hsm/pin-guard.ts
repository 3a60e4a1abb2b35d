/**
 * The PIN-try guard shared by the session's verbs and the `apdu` command (spec §3.6–3.9, §9):
 * which command APDUs can cost a try of which PIN, what a refused try says, and the wording of
 * PIN errors that names the PIN concerned and its consequences. A blocked user PIN can be
 * unblocked with the SO-PIN; a blocked SO-PIN is blocked for good: the device can no longer be
 * re-initialized and its user PIN no longer unblocked (spec §9).
 */
import { parseCommand } from '../apdu/command.js';
import { swHex } from '../apdu/status.js';
import { type PinKind, ScHsmError } from '../errors.js';
import { INS, PIN_SO, PIN_USER } from '../protocol/constants.js';
import type { PinStatus } from './pins.js';

/** What a blocked SO-PIN means (spec §9), in the words of every SO-PIN message. */
export const SO_PIN_BLOCKED_MEANS =
  'the device can no longer be re-initialized and its user PIN can no longer be unblocked (the keys stay usable with the user PIN)';

export function pinKindOf(ref: number): PinKind {
  return ref === PIN_SO ? 'so-pin' : 'user-pin';
}

/**
 * The PIN whose retry counter a command APDU can lower, or undefined: VERIFY and CHANGE REFERENCE
 * DATA with data (user PIN 81, SO-PIN 88), RESET RETRY COUNTER P1 00/01 (which present the
 * SO-PIN) and INITIALIZE DEVICE with data (the SO-PIN, once the device is initialized).
 */
export function pinTryOf(apdu: Uint8Array): { ref: number; command: string } | undefined {
  if (apdu.length < 4) return undefined;
  const [, ins, p1, p2] = apdu as unknown as [number, number, number, number];
  let hasData: boolean;
  try {
    hasData = parseCommand(apdu).data.length > 0;
  } catch {
    // a malformed APDU that might still carry a PIN: count it as one
    hasData = apdu.length > 5;
  }
  if (!hasData) return undefined;
  if (ins === INS.VERIFY && (p2 === PIN_USER || p2 === PIN_SO)) return { ref: p2, command: 'VERIFY' };
  if (ins === INS.CHANGE_REFERENCE_DATA && (p2 === PIN_USER || p2 === PIN_SO))
    return { ref: p2, command: 'CHANGE REFERENCE DATA' };
  if (ins === INS.RESET_RETRY_COUNTER && (p1 === 0x00 || p1 === 0x01))
    return { ref: PIN_SO, command: 'RESET RETRY COUNTER' };
  if (ins === INS.INITIALIZE) return { ref: PIN_SO, command: 'INITIALIZE DEVICE' };
  return undefined;
}

export interface TryGuard {
  /** Send although one try is left. */
  force?: boolean | undefined;
  /** The user PIN's retry counter as configured at initialization, where known (the card does not report it). */
  userPinRetryCounter?: number | undefined;
  /** Report a not-initialized device (the session does; the raw `apdu` command lets the card answer). */
  requireInitialized?: boolean;
}

/**
 * Refuses a try that is pointless or that would block a PIN nobody said they were sure of: a
 * blocked PIN, a VERIFY of a user PIN that public key authentication replaces, and a PIN with one
 * try left unless `force`. With a user-PIN retry counter of 1
 * every try is the last one; when the caller knows the counter is configured so, one try left is
 * the full counter and not a reason to refuse.
 */
export function refuseUnsafeTry(ref: number, st: PinStatus, command: string, g: TryGuard = {}): void {
  const so = ref === PIN_SO;
  const pin = pinKindOf(ref);
  if (st.state === 'blocked') {
    throw new ScHsmError(
      'PIN_BLOCKED',
      so
        ? `the SO-PIN is blocked for good: ${SO_PIN_BLOCKED_MEANS}. Nothing was sent.`
        : 'the user PIN is blocked: only the SO-PIN can unblock it (RESET RETRY COUNTER). Nothing was sent.',
      { triesLeft: 0, command, pin },
    );
  }
  if (st.state === 'not-initialized' && !so && g.requireInitialized !== false) {
    throw new ScHsmError(
      'NOT_INITIALIZED',
      'the device is not initialized: run initialize first. Nothing was sent.',
      {
        command,
      },
    );
  }
  // VERIFY of a user PIN that the custodians' keys replace (PKA without option 0010, spec §3.18):
  // the card refuses it (6400) whatever the PIN; before they authenticated it is pointless
  if (st.state === 'public-key-auth' && !so && command === 'VERIFY') {
    throw new ScHsmError(
      'CONDITIONS_NOT_SATISFIED',
      "this device authenticates with the custodians' public keys instead of the user PIN (public key authentication without option 0010): the PIN is not used. Nothing was sent.",
      { command, pin },
    );
  }
  const fullCounterOfOne = !so && g.userPinRetryCounter === 1;
  if (st.triesLeft === 1 && !g.force && !fullCounterOfOne) {
    throw new ScHsmError(
      'PIN_TRIES_LOW',
      so
        ? `the SO-PIN has one try left: a wrong SO-PIN would block it for good (${SO_PIN_BLOCKED_MEANS}). Nothing was sent.`
        : 'the user PIN has one try left: a wrong PIN would block it, and only the SO-PIN can unblock it. Nothing was sent.',
      { triesLeft: 1, command, pin },
    );
  }
}

/**
 * Refuses, unless `force`, a try of a PIN whose tries left the card does not report: a transport
 * PIN (VERIFY without data answers `69 84`, spec §3.6/§3.9 option 0002) and a user PIN that public
 * key authentication replaces (spec §3.18). CHANGE REFERENCE DATA still counts its tries down
 * (`63 Cx`) and blocks it at 0, so any try may be the last one.
 */
export function refuseUnknownTries(
  ref: number,
  state: 'transport-pin' | 'public-key-auth',
  command: string,
  force: boolean | undefined,
): void {
  if (force) return;
  const which =
    state === 'transport-pin'
      ? 'the card does not report how many tries the transport PIN has left (VERIFY answers 69 84)'
      : "this device authenticates with custodians' keys instead of the user PIN, and the card does not report how many tries that unused PIN has left";
  throw new ScHsmError(
    'PIN_TRIES_LOW',
    `${which}: this try could be the last one, and a wrong PIN would then block it (only the SO-PIN can unblock it). Nothing was sent.`,
    { command, pin: pinKindOf(ref) },
  );
}

/**
 * A PIN error from the card, reworded to name the PIN it is about (`63 Cx`, `69 83`, and what
 * INITIALIZE answers for a wrong SO-PIN). Other errors pass unchanged.
 */
export function namePinError(e: unknown, ref: number): unknown {
  if (!(e instanceof ScHsmError) || (e.code !== 'WRONG_PIN' && e.code !== 'PIN_BLOCKED') || e.pin) return e;
  const so = ref === PIN_SO;
  const name = so ? 'SO-PIN' : 'user PIN';
  const sw = e.sw === undefined ? '' : ` (SW ${swHex(e.sw)})`;
  const cmd = e.command ? `${e.command}: ` : '';
  const n = e.triesLeft;
  let message: string;
  if (e.code === 'PIN_BLOCKED') {
    message = so
      ? `${cmd}${n === 0 ? 'wrong SO-PIN, no tries left: the SO-PIN is now' : 'the SO-PIN is'} blocked for good: ${SO_PIN_BLOCKED_MEANS}${sw}`
      : `${cmd}${n === 0 ? 'wrong user PIN, no tries left: the user PIN is now' : 'the user PIN is'} blocked; only the SO-PIN can unblock it${sw}`;
  } else if (n !== undefined) {
    message = `${cmd}wrong ${name}, ${n} ${n === 1 ? 'try' : 'tries'} left before the ${name} is blocked${so ? ' for good' : ''}${sw}`;
  } else {
    message = `${cmd}wrong ${name}${so ? ' (initialization code)' : ''}${sw}`;
  }
  const o: ConstructorParameters<typeof ScHsmError>[2] = { pin: pinKindOf(ref), cause: e };
  if (e.sw !== undefined) o.sw = e.sw;
  if (e.command !== undefined) o.command = e.command;
  if (n !== undefined) o.triesLeft = n;
  return new ScHsmError(e.code, message, o);
}

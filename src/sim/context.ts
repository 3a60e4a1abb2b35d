/**
 * What every command handler of the virtual card works on: the persistent state, the volatile
 * session state (cleared by power-off, reset and SELECT of the applet) and a hook to report a
 * change of persistent state.
 */
import type { ParsedCommand } from '../apdu/command.js';
import type { CvcPublicKey } from '../pkcs15/index.js';
import { OPTION } from '../protocol/constants.js';
import type { SmSession } from './secure-messaging.js';
import type { CardState, StoredKey } from './state.js';
import { fail, type Reply, SW } from './sw.js';
import { EEPROM_FREE_BYTES, OBJECT_OVERHEAD } from './uncertain.js';

/** What the card holds of public key authentication in this session (spec §3.18, src/sim/pka.ts). */
export interface PkaSession {
  /** Public keys by CHR: the root, and every certificate PSO VERIFY CERTIFICATE accepted. */
  known: Map<string, CvcPublicKey>;
  /** CHR chosen by MSE SET DST for PSO VERIFY CERTIFICATE. */
  verifier?: string | undefined;
  /** Registered key slot chosen by MSE SET AT. */
  selected?: number | undefined;
  /** The last GET CHALLENGE answer, until spent. */
  challenge?: Uint8Array | undefined;
  /** Slots authenticated by EXTERNAL AUTHENTICATE. */
  authenticated: Set<number>;
  /** M keys were authenticated: the user's security status (with the PIN under option 0010). */
  complete?: boolean;
}

export interface VolatileState {
  /** The SmartCard-HSM applet is selected (spec §1.3). */
  selected: boolean;
  /** FID of the current EF for P1P2 = 0000 (spec §3.1). */
  currentEf?: number;
  userVerified: boolean;
  soVerified: boolean;
  /** Rest of a response longer than Ne, fetched with GET RESPONSE. */
  pending?: Uint8Array;
  /** Public key authentication of this session (src/sim/pka.ts). */
  pka?: PkaSession;
  /** MSE SET AT chose chip authentication (src/sim/secure-messaging.ts). */
  caSelected?: boolean;
  /** The secure messaging session after chip authentication (spec §3.19). */
  sm?: SmSession | undefined;
  /** True while the command being processed came protected by SM. */
  inSecureCommand?: boolean;
  /** The session PIN (spec §3.20): kept across SELECT, dropped by reset and power-off. */
  sessionPin?: Uint8Array;
}

export function freshVolatile(): VolatileState {
  return { selected: false, userVerified: false, soVerified: false };
}

export interface CardContext {
  state: CardState;
  vol: VolatileState;
  /** Call after every change of persistent state. */
  changed(): void;
}

export type Handler = (ctx: CardContext, cmd: ParsedCommand) => Reply;

/**
 * Whether the user's security status is reached in this session: the user PIN; on a device with
 * public key authentication the n-of-m keys instead, or both with option 0010 (spec §3.9, §3.18).
 */
export function userAuthenticated(ctx: CardContext): boolean {
  if (!ctx.state.pka) return ctx.vol.userVerified;
  const pkaDone = ctx.vol.pka?.complete === true;
  return (ctx.state.options & OPTION.COMBINED_AUTH) === 0 ? pkaDone : pkaDone && ctx.vol.userVerified;
}

/** 6982 unless the user is authenticated in this session (userAuthenticated). */
export function requireUser(ctx: CardContext): void {
  if (!userAuthenticated(ctx))
    fail(SW.SECURITY_STATUS, 'user not authenticated (PIN or public key authentication)');
}

function keyCost(k: StoredKey): number {
  return (k.pkcs8?.length ?? 0) + (k.secret?.length ?? 0) + (k.algorithms?.length ?? 0) + OBJECT_OVERHEAD;
}

/** Bytes used by user objects (device key CC00 and EF 2F02 belong to the base image). */
export function usedMemory(s: CardState): number {
  let n = 0;
  for (const [id, k] of s.keys) if (id !== 0) n += keyCost(k);
  for (const [fid, d] of s.files) if (fid !== 0x2f02) n += d.length + OBJECT_OVERHEAD;
  return n;
}

export function freeMemory(s: CardState): number {
  return Math.max(0, EEPROM_FREE_BYTES - usedMemory(s));
}

/** 6A84 unless `add` more bytes (net of `release` freed ones) fit. */
export function ensureSpace(s: CardState, add: number, release = 0): void {
  if (add - release > freeMemory(s)) fail(SW.MEMORY_FULL, 'not enough memory');
}

/** Bytes a key object would take, for ensureSpace. */
export function keyObjectSize(k: StoredKey): number {
  return keyCost(k);
}

/**
 * What every command handler of the virtual card works on: the persistent state, the volatile
 * session state (cleared by power-off, reset and SELECT of the applet) and a hook to report a
 * change of persistent state.
 */
import type { ParsedCommand } from '../apdu/command.js';
import type { CardState, StoredKey } from './state.js';
import { fail, type Reply, SW } from './sw.js';
import { EEPROM_FREE_BYTES, OBJECT_OVERHEAD } from './uncertain.js';

export interface VolatileState {
  /** The SmartCard-HSM applet is selected (spec §1.3). */
  selected: boolean;
  /** FID of the current EF for P1P2 = 0000 (spec §3.1). */
  currentEf?: number;
  userVerified: boolean;
  soVerified: boolean;
  /** Rest of a response longer than Ne, fetched with GET RESPONSE. */
  pending?: Uint8Array;
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

/** 6982 unless the user PIN was verified in this session. */
export function requireUser(ctx: CardContext): void {
  if (!ctx.vol.userVerified) fail(SW.SECURITY_STATUS, 'user PIN not verified');
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

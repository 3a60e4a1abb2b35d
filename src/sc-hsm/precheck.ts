/**
 * Checks before the PIN: runs a session operation up to its first command that needs the PIN or
 * changes the card, so that every check the operation makes from public card data (the key's type,
 * curve and algorithm list, its uses left, a free key reference or ID, a tweak's range; files read
 * with SELECT, READ BINARY and ENUMERATE OBJECTS, spec §3.3, §3.5) refuses bad input before VERIFY
 * (spec §3.6) can cost a PIN try. The command (`sc-hsm-ts`) runs each operation this way before it
 * sends the PIN (Ctx.login's `precheck`). When the operation stops at a key operation (SIGN,
 * DECIPHER: `80 68`/`80 62 <keyRef> <algorithm>`, spec §3.13, §3.14), the algorithm byte it was
 * about to send is checked against the key's algorithm list and uses left (tag 91/90 in the key's
 * FCP, read with SELECT): the signing code decides the byte, this checks exactly that byte.
 */
import { ScHsmError } from '../errors.js';
import { CLA_PROPRIETARY, INS } from '../protocol/constants.js';
import type { SessionContext } from './context.js';
import { algorithmNames, readKeyRestrictions } from './key-restrictions.js';
import { typeName } from './validate.js';

/** Thrown by the channel in a pre-check at the first command that is not a public read; never escapes {@link precheck}. */
export class PrecheckStop extends Error {
  /** `cmd`: the command not sent (CLA, INS, P1, P2), for the key-operation check of {@link precheck}. */
  constructor(
    readonly ins: number,
    readonly cmd?: { cla: number; ins: number; p1?: number; p2?: number },
  ) {
    super(`pre-check: stopped before INS ${ins.toString(16).padStart(2, '0').toUpperCase()}`);
    this.name = 'PrecheckStop';
  }
}

/**
 * Whether a command only reads public card data: SELECT (`00 A4`), READ BINARY (`00 B0`/`00 B1`),
 * ENUMERATE OBJECTS (`80 58`), the PIN status query (VERIFY without data, `00 20`) and the key
 * domain status query (MANAGE KEY DOMAIN without data, `80 52 00`). None needs the PIN or changes
 * anything.
 */
export function isPublicRead(cmd: {
  cla: number;
  ins: number;
  p1?: number;
  data?: Uint8Array | undefined;
}): boolean {
  const empty = !cmd.data || cmd.data.length === 0;
  const cla = cmd.cla & 0xf0;
  if (cla === 0x00 && (cmd.ins === INS.SELECT || cmd.ins === 0xb0 || cmd.ins === INS.READ_BINARY))
    return true;
  if (cla === 0x00 && cmd.ins === INS.VERIFY && empty) return true;
  if (cla === (CLA_PROPRIETARY & 0xf0) && cmd.ins === INS.ENUMERATE_OBJECTS) return true;
  // P1 0 only: P1 3 (delete the domain) and 4 (delete its DKEK) carry no data either
  if (cla === (CLA_PROPRIETARY & 0xf0) && cmd.ins === INS.MANAGE_KEY_DOMAIN && empty && (cmd.p1 ?? 0) === 0)
    return true;
  return false;
}

function stoppedByPrecheck(e: unknown): PrecheckStop | undefined {
  for (let x = e, depth = 0; x && depth < 8; x = (x as { cause?: unknown }).cause, depth++)
    if (x instanceof PrecheckStop) return x;
  return undefined;
}

/**
 * The refusal the card would give SIGN or DECIPHER (`80 68`/`80 62 <keyRef> <algorithm>`) from
 * the key's public FCP (tag 91 algorithm list, tag 90 uses left): ALGORITHM_NOT_ALLOWED when the
 * list lacks the algorithm byte the operation was about to send, USE_COUNTER_EXHAUSTED at 0 uses.
 * Other commands, and keys whose FCP says nothing, are left to the card.
 */
async function checkKeyOperation(ctx: SessionContext, stop: PrecheckStop): Promise<void> {
  const c = stop.cmd;
  if (!c || (c.cla & 0xf0) !== (CLA_PROPRIETARY & 0xf0)) return;
  if (c.ins !== INS.SIGN && c.ins !== INS.DECIPHER) return;
  const keyRef = c.p1 ?? 0;
  const algo = c.p2 ?? 0;
  if (keyRef < 1 || keyRef > 255) return;
  const r = await readKeyRestrictions(ctx, keyRef);
  const what = c.ins === INS.SIGN ? 'sign with' : 'decipher with';
  if (r.algorithms && !r.algorithms.includes(algo))
    throw new ScHsmError(
      'ALGORITHM_NOT_ALLOWED',
      `key ${keyRef} may not ${what} ${algorithmNames(Uint8Array.of(algo))[0]}, which this operation needs: its algorithm list, fixed at generation, is ${algorithmNames(r.algorithms).join(', ')}. Nothing was sent that needs the PIN.`,
      {
        keyRef,
        fix: "use a key whose algorithm list allows it (sc-hsm-ts keys shows each key's list), or generate one: sc-hsm-ts keygen --algorithms …",
      },
    );
  if (r.useCounter === 0)
    throw new ScHsmError(
      'USE_COUNTER_EXHAUSTED',
      `key ${keyRef}: key use counter exhausted (0 uses left); the card refuses every operation with it. Nothing was sent that needs the PIN.`,
      { keyRef, fix: 'use another key, or generate a new one: sc-hsm-ts keygen --use-counter N' },
    );
}

/**
 * Runs `op` with the channel limited to public reads: its checks run and throw as they would; at
 * its first command that needs the PIN or changes the card it is stopped and this returns. Nothing
 * but public reads is sent. Its errors other than the stop are thrown unchanged.
 */
export async function precheck(ctx: SessionContext, op: () => Promise<unknown>): Promise<void> {
  if (typeof op !== 'function')
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `precheck takes the operation as a function (() => hsm.…); got ${typeName(op)}`,
    );
  const ch = ctx.channel;
  if (ch.precheck) {
    await op();
    return;
  }
  ch.precheck = true;
  try {
    await op();
  } catch (e) {
    const stop = stoppedByPrecheck(e);
    if (!stop) throw e;
    await checkKeyOperation(ctx, stop);
  } finally {
    ch.precheck = false;
  }
}

/**
 * Checks before the PIN: runs a session operation up to its first command that needs the PIN or
 * changes the card, so that every check the operation makes from public card data (the key's type,
 * curve and algorithm list, its uses left, a free key reference or ID, a tweak's range; files read
 * with SELECT, READ BINARY and ENUMERATE OBJECTS, spec §3.3, §3.5) refuses bad input before VERIFY
 * (spec §3.6) can cost a PIN try. The command (`sc-hsm-ts`) runs each operation this way before it
 * sends the PIN (Ctx.login's `precheck`).
 */
import { ScHsmError } from '../errors.js';
import { CLA_PROPRIETARY, INS } from '../protocol/constants.js';
import type { SessionContext } from './context.js';
import { typeName } from './validate.js';

/** Thrown by the channel in a pre-check at the first command that is not a public read; never escapes {@link precheck}. */
export class PrecheckStop extends Error {
  constructor(readonly ins: number) {
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

function stoppedByPrecheck(e: unknown): boolean {
  for (let x = e, depth = 0; x && depth < 8; x = (x as { cause?: unknown }).cause, depth++)
    if (x instanceof PrecheckStop) return true;
  return false;
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
    if (!stoppedByPrecheck(e)) throw e;
  } finally {
    ch.precheck = false;
  }
}

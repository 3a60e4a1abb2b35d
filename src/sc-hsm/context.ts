/**
 * What the areas of the session share: the one channel of the session, its file system, and the
 * little it remembers between commands; how a session's context starts and ends. SmartCardHsm
 * holds one context and passes it to the area modules (device.ts, pins.ts, init.ts, dkek.ts,
 * keys.ts, crypto.ts, wrap.ts, objects.ts); nothing outside src/sc-hsm/ sees it.
 */
import { ApduChannel, type Transport } from '../apdu/transport.js';
import { ScHsmError } from '../errors.js';
import { type AppletInfo, selectApplet } from './device.js';
import { CardFiles } from './files.js';
import type { KeyInfo } from './keys.js';
import { isPublicRead, PrecheckStop } from './precheck.js';
import type { SecureMessaging } from './secure-messaging.js';
import { checkInt, checkObject, typeName } from './validate.js';

export interface SessionContext {
  readonly transport: Transport;
  /** Every APDU of the session goes through it; multi-APDU operations run in `channel.exclusive`. */
  readonly channel: SessionChannel;
  readonly files: CardFiles;
  /** The FCP of the last SELECT (replaced by logout, a card reset and initialize). */
  info: AppletInfo;
  /** Key information read in this session, by key reference; dropped for a key when it changes. */
  readonly keyCache: Map<number, KeyInfo>;
  /** Device CHR from EF 2F02, once read. */
  deviceChr?: string | undefined;
  /** KCVs (never the shares) of the DKEK shares this session imported into each domain's current DKEK. */
  importedShares?: Map<number, { total: number; kcvs: Uint8Array[] }> | undefined;
  /** The user PIN's configured retry counter, where known (see SmartCardHsm.userPinRetryCounter). */
  userPinRetries?: number | undefined;
}

/** The session's channel: after the session's close() it refuses everything, whatever the transport. */
export class SessionChannel extends ApduChannel {
  closed = false;
  /**
   * The secure channel (secure-channel.ts), once opened: every command is then protected and every
   * answer checked; it never goes back to plain APDUs.
   */
  sm?: SecureMessaging | undefined;

  private refused(): ScHsmError {
    return new ScHsmError(
      'SESSION_CLOSED',
      'this SmartCard-HSM session was closed; open a new one (SmartCardHsm.open). Nothing was sent.',
    );
  }

  /** Set by precheck.ts: only public reads go out; any other command throws PrecheckStop unsent. */
  precheck = false;

  override send(cmd: Parameters<ApduChannel['send']>[0]): ReturnType<ApduChannel['send']> {
    if (this.closed) return Promise.reject(this.refused());
    if (this.precheck && !isPublicRead(cmd)) return Promise.reject(new PrecheckStop(cmd.ins, cmd));
    const sm = this.sm;
    if (!sm) return super.send(cmd);
    // wrap, exchange and unwrap hold the channel together: the SSC must see them in order
    return super.exclusive(async () => {
      const wrapped = sm.wrap(cmd, this.transport.extendedLength !== false);
      let r: Awaited<ReturnType<ApduChannel['send']>>;
      try {
        r = await super.send(wrapped);
      } catch (e) {
        // the card's answer (and with it the SSC) is unknown now: the channel cannot go on
        sm.end(`the exchange failed: ${(e as Error).message}`);
        throw e;
      }
      return sm.unwrap(r, `INS ${cmd.ins.toString(16).toUpperCase().padStart(2, '0')}`);
    });
  }

  override exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.closed ? Promise.reject(this.refused()) : super.exclusive(fn);
  }
}

/** The arguments of SmartCardHsm.open, checked before anything is sent. */
export function checkOpen(transport: Transport, opts: { userPinRetryCounter?: number }): void {
  if (
    transport === null ||
    typeof transport !== 'object' ||
    typeof transport.transmit !== 'function' ||
    typeof transport.close !== 'function'
  ) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `the transport must be an object with transmit() and close(); got ${typeName(transport)}`,
    );
  }
  checkObject(opts, 'the session options', { userPinRetryCounter: 'number' }, true);
  if (opts.userPinRetryCounter !== undefined)
    checkInt(opts.userPinRetryCounter, 1, 10, 'the user PIN retry counter (userPinRetryCounter)');
}

/** A new session's context on `channel`, whose applet was just selected (`info`). */
export function sessionContext(
  transport: Transport,
  channel: SessionChannel,
  info: AppletInfo,
): SessionContext {
  const files = new CardFiles(channel, transport.extendedLength !== false);
  const ctx: SessionContext = { transport, channel, files, info, keyCache: new Map() };
  // Another application reset the card (PC/SC): select the applet again, never re-send anything.
  channel.onCardReset = async () => {
    files.forget();
    ctx.info = await selectApplet(channel);
  };
  return ctx;
}

/** Closes the channel (every later call: SESSION_CLOSED), forgets the caches, closes the transport; once. */
export async function closeSession(ctx: SessionContext): Promise<void> {
  if (ctx.channel.closed) return;
  ctx.channel.closed = true;
  ctx.channel.sm?.end('the session was closed');
  ctx.keyCache.clear();
  ctx.deviceChr = undefined;
  ctx.channel.onCardReset = undefined;
  await ctx.transport.close();
}

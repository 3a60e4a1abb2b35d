/**
 * The virtual SmartCard-HSM: a `Transport` whose `process()` answers command APDUs like CardContact
 * firmware on a Nitrokey HSM 2 (spec §11). This file holds the dispatcher and the life cycle
 * (power, reset, persistence); the command handlers live in fs.ts, pins.ts, init.ts, keys.ts and
 * dkek.ts.
 */
import { encodeResponse, type ParsedCommand, parseCommand } from '../apdu/command.js';
import type { Transport } from '../apdu/transport.js';
import { ScHsmError } from '../errors.js';
import { AID, ATR_NITROKEY_HSM2, INS } from '../protocol/constants.js';
import { bytesEqual } from '../util/bytes.js';
import { asyncDispose } from '../util/dispose.js';
import { hostFileExists, removeStaleTemps } from '../util/host-files.js';
import { FifoLock } from '../util/lock.js';
import { type CardContext, freshVolatile, type Handler, type VolatileState } from './context.js';
import { deriveEcKey } from './derive.js';
import { createDeviceIdentity, deviceChrFor } from './device.js';
import { manageKeyDomain, unwrapKey, wrapKey } from './dkek.js';
import { appletFcp, deleteFile, enumerateObjects, readBinary, selectEf, updateBinary } from './fs.js';
import { initialize } from './init.js';
import { cipher, decipher, generateKeyPair, generateSymmetricKey, sign } from './keys.js';
import { changeReferenceData, resetRetryCounter, verify } from './pins.js';
import { externalAuthenticate, getChallenge, mse, pka, verifyCertificate } from './pka.js';
import { capacityTotal, capacityUnits, exchangeMs, ModelTimer, type TimingProfile } from './profile.js';
import {
  endSecureMessaging,
  generalAuthenticate,
  mseSetAtChipAuthentication,
  secureCommand,
  sessionPin,
} from './secure-messaging.js';
import {
  type CardState,
  deserializeState,
  readStateFile,
  saveStateFile,
  saveStateFileSync,
  serializeState,
} from './state.js';
import {
  canonicalStatePath,
  lockStateFile,
  type StateFileLock,
  type StateLockOptions,
} from './state-lock.js';
import { fail, type Reply, SW, SwError } from './sw.js';
import { CAPACITY_FULL_SW, TOO_LONG_APDU_SW } from './uncertain.js';

/** Firmware version reported in FCP tag 85 by default ("SmartCard-HSM Version 3.5 on JCOP 3"). */
export const DEFAULT_FIRMWARE: [number, number] = [3, 5];

export interface VirtualCardOptions {
  /** 7 digits, or a complete device CHR `UTVH#######00000`; random when absent. */
  deviceId?: string;
  /** Firmware version in FCP tag 85; default 3.5. */
  firmware?: [number, number];
  /**
   * Answer the DKEK status with an all-zero key check value until the user PIN is verified in the
   * session, as pico-hsm does (see `KCV_BEFORE_LOGIN` in uncertain.ts). Kept in the state file.
   */
  kcvAfterLogin?: boolean;
  /**
   * A timing profile (src/sim/profile.ts): every answer then takes the modelled time of the real
   * device (real waiting, one APDU at a time), and the device's limits apply (largest APDU, key
   * capacity). Not kept in the state file; {@link VirtualSmartCardHsm.profile} sets it on any card.
   */
  profile?: TimingProfile;
}

/** How a card is bound to its state file ({@link VirtualSmartCardHsm.open}). */
export interface OpenStateFileOptions
  extends Pick<StateLockOptions, 'waitMs' | 'command' | 'onWait' | 'holderPid'> {
  /**
   * Make a fresh, uninitialized card when the file does not exist (with these options when an
   * object); it is written on its first change (or by `save`). Without it a missing file is
   * HOST_FILE_NOT_FOUND: a typing error in a path must not become a blank device.
   */
  create?: boolean | VirtualCardOptions;
  /**
   * Called when the card stopped working with its file: a save failed (the card answered `6581`,
   * memory failure, and answers so from then on) or the lock was lost.
   */
  onFailure?: (e: ScHsmError) => void;
}

/** `65 81` memory failure: what a card answers when its EEPROM write fails. */
const SW_MEMORY_FAILURE = 0x6581;

interface Binding {
  lock: StateFileLock;
  /** Set when a save failed or the lock was lost: every APDU is then answered `6581`, nothing is saved. */
  failure?: ScHsmError;
  onFailure?: (e: ScHsmError) => void;
}

/** SELECT `00 A4` (spec §1.3, §3.1): the applet by AID (P1=04) or an EF. */
const select: Handler = (ctx, cmd) => {
  if (cmd.p1 !== 0x04) {
    if (!ctx.vol.selected) fail(SW.NOT_FOUND);
    return selectEf(ctx, cmd);
  }
  if (!bytesEqual(cmd.data, AID)) fail(SW.NOT_FOUND, 'unknown application');
  if (cmd.p2 !== 0x00 && cmd.p2 !== 0x04 && cmd.p2 !== 0x0c) fail(SW.WRONG_P1P2);
  // A SELECT of the applet drops the PIN state (spec §1.3).
  ctx.vol.selected = true;
  ctx.vol.userVerified = false;
  ctx.vol.soVerified = false;
  ctx.vol.pka = undefined;
  ctx.vol.currentEf = undefined;
  return { data: cmd.p2 === 0x0c ? new Uint8Array(0) : appletFcp(ctx.state.options, ctx.state.firmware) };
};

/** Proprietary (CLA 80) handlers by INS. */
const PROPRIETARY: Record<number, Handler> = {
  [INS.INITIALIZE]: initialize,
  [INS.MANAGE_KEY_DOMAIN]: manageKeyDomain,
  [INS.PKA]: pka,
  [INS.ENUMERATE_OBJECTS]: enumerateObjects,
  [INS.SIGN]: sign,
  [INS.DECIPHER]: decipher,
  [INS.CIPHER]: cipher,
  [INS.DERIVE_EC_KEY]: deriveEcKey,
  [INS.WRAP_KEY]: wrapKey,
  [INS.UNWRAP_KEY]: unwrapKey,
  [INS.SESSION_PIN]: sessionPin,
};

/** ISO (CLA 00) handlers by INS. */
const ISO: Record<number, Handler> = {
  [INS.SELECT]: select,
  [INS.READ_BINARY]: readBinary,
  [INS.UPDATE_BINARY]: updateBinary,
  [INS.DELETE_FILE]: deleteFile,
  [INS.VERIFY]: verify,
  [INS.CHANGE_REFERENCE_DATA]: changeReferenceData,
  [INS.RESET_RETRY_COUNTER]: resetRetryCounter,
  [INS.GENERATE_ASYMMETRIC_KEY_PAIR]: generateKeyPair,
  [INS.GENERATE_SYMMETRIC_KEY]: generateSymmetricKey,
  [INS.GET_CHALLENGE]: getChallenge,
  [INS.GENERAL_AUTHENTICATE]: generalAuthenticate,
  [INS.MSE]: mse,
  [INS.PSO]: verifyCertificate,
  [INS.EXTERNAL_AUTHENTICATE]: externalAuthenticate,
};

/** Carries the state into the constructor during deserialize/load. */
let restoring: CardState | undefined;

export class VirtualSmartCardHsm implements Transport {
  readonly atr: Uint8Array = ATR_NITROKEY_HSM2.slice();
  readonly extendedLength = true;
  /** Called after every change of persistent state. */
  onChange?: () => void;

  private readonly state: CardState;
  private vol: VolatileState = freshVolatile();
  private dirty = false;
  /** Set by {@link close}: the card is out of its reader for good (its state file may be another's now). */
  private removed = false;
  /** The state file this card is bound to ({@link VirtualSmartCardHsm.open}), until `close()`. */
  private binding?: Binding;
  private timing?: { profile: TimingProfile; timer: ModelTimer; lock: FifoLock; lastMs: number };
  /** Sum of the modelled times of every APDU answered under a profile (ms): the card's side of a benchmark. */
  modelledMs = 0;

  /** A fresh, uninitialized card with its own device key and certificate chain — or, internally, a restored one. */
  constructor(o: VirtualCardOptions = {}) {
    if (restoring) {
      this.state = restoring;
      restoring = undefined;
      return;
    }
    const deviceChr = deviceChrFor(o.deviceId);
    const { key, ef2f02 } = createDeviceIdentity(deviceChr);
    const firmware = o.firmware ?? DEFAULT_FIRMWARE;
    if (firmware.length !== 2 || firmware.some((v) => !Number.isInteger(v) || v < 0 || v > 255)) {
      throw new RangeError('firmware must be [major, minor] with bytes 0..255');
    }
    this.state = {
      deviceChr,
      firmware: [firmware[0], firmware[1]],
      initialized: false,
      options: 0,
      userPinMaxTries: 3,
      userPinTries: 3,
      transportPin: false,
      soPinTries: 15,
      files: new Map([[0x2f02, ef2f02]]),
      keys: new Map([[0, key]]),
    };
    if (o.kcvAfterLogin) this.state.kcvAfterLogin = true;
    if (o.profile) this.profile = o.profile;
  }

  /** The timing profile in force (undefined: answers at once, no device limits beyond memory). */
  get profile(): TimingProfile | undefined {
    return this.timing?.profile;
  }

  set profile(p: TimingProfile | undefined) {
    this.timing = p ? { profile: p, timer: new ModelTimer(), lock: new FifoLock(), lastMs: 0 } : undefined;
  }

  /**
   * When the answer to the APDU last given to {@link process} may leave the card under the
   * profile (its modelled time, waited for real); undefined without a profile. The vpcd bridge
   * sends the answer then, so that pcscd and every other client wait for it as for a real card.
   */
  answerReady(): Promise<void> | undefined {
    const t = this.timing;
    if (!t || t.lastMs <= 0) return undefined;
    const ms = t.lastMs;
    t.lastMs = 0;
    return t.timer.wait(ms);
  }

  /** The device CHR (`UTVH#######00000`); OpenSC shows it minus the last 5 characters as serial. */
  get deviceChr(): string {
    return this.state.deviceChr;
  }

  /** Command APDU in, response APDU out; never throws (internal faults answer 6F00). */
  process(apdu: Uint8Array): Uint8Array {
    const b = this.binding;
    if (b?.failure) return encodeResponse({ data: new Uint8Array(0), sw: SW_MEMORY_FAILURE });
    let r: Reply;
    let cmd: ParsedCommand | undefined;
    try {
      try {
        cmd = parseCommand(apdu);
      } catch {
        return this.timed(apdu, encodeResponse({ data: new Uint8Array(0), sw: SW.WRONG_LENGTH }), undefined);
      }
      const limits = this.timing?.profile.limits;
      if (limits && apdu.length > limits.maxApdu) fail(TOO_LONG_APDU_SW, 'APDU longer than the buffer');
      r = limits ? this.withinCapacity(cmd) : this.dispatch(cmd);
    } catch (e) {
      r = { sw: e instanceof SwError ? e.sw : SW.UNKNOWN };
    }
    if (this.dirty) {
      this.dirty = false;
      // Bound to a file, the card saves before it answers, as real firmware writes its EEPROM before
      // the status word: whatever the host learns (a counted PIN try, a new key) is already kept.
      if (b && !this.persist(b)) r = { sw: SW_MEMORY_FAILURE };
      try {
        this.onChange?.();
      } catch {
        // a failing listener must not break the card
      }
    }
    return this.timed(apdu, encodeResponse({ data: r.data ?? new Uint8Array(0), sw: r.sw ?? SW.OK }), cmd);
  }

  /** Notes the modelled time of an exchange (profile only) for {@link answerReady}. */
  private timed(apdu: Uint8Array, response: Uint8Array, cmd: ParsedCommand | undefined): Uint8Array {
    const t = this.timing;
    if (t) {
      const key =
        cmd && (cmd.cla === 0x80 || cmd.ins === INS.GENERATE_ASYMMETRIC_KEY_PAIR)
          ? this.state.keys.get(cmd.p1)
          : undefined;
      t.lastMs = exchangeMs(t.profile, apdu, response, cmd, key);
      this.modelledMs += t.lastMs;
    }
    return response;
  }

  /**
   * A command under a profile's key capacity: a key that GAKP, GENERATE SYMMETRIC KEY or UNWRAP
   * created beyond it is taken back and the command answered 6A84, as the firmware answers when
   * its memory is full (see `CAPACITY_FULL_SW` in uncertain.ts).
   */
  private withinCapacity(cmd: ParsedCommand): Reply {
    const creates =
      cmd.ins === INS.GENERATE_ASYMMETRIC_KEY_PAIR ||
      cmd.ins === INS.GENERATE_SYMMETRIC_KEY ||
      (cmd.cla === 0x80 && cmd.ins === INS.UNWRAP_KEY);
    if (!creates) return this.dispatch(cmd);
    // what the command may change: the key and the files GAKP writes beside it (its CV request)
    const keys = new Map(this.state.keys);
    const files = new Map(this.state.files);
    const r = this.dispatch(cmd);
    const p = this.timing?.profile;
    const after = this.state.keys.get(cmd.p1);
    if (!p || !after || after === keys.get(cmd.p1)) return r;
    let used = 0;
    for (const [ref, k] of this.state.keys) if (ref !== 0) used += capacityUnits(p, k);
    if (used <= capacityTotal(p)) return r;
    this.state.keys = keys;
    this.state.files = files;
    return { sw: CAPACITY_FULL_SW };
  }

  /** Writes the state to the bound file; on failure the card stops (see {@link Binding.failure}). */
  private persist(b: Binding): boolean {
    try {
      saveStateFileSync(b.lock.path, this.serialize());
      return true;
    } catch (e) {
      this.failBinding(b, e as ScHsmError);
      return false;
    }
  }

  private failBinding(b: Binding, e: ScHsmError): void {
    if (b.failure) return;
    b.failure = e;
    try {
      b.onFailure?.(e);
    } catch {
      // a failing listener must not break the card
    }
  }

  private dispatch(cmd: ParsedCommand): Reply {
    const pending = this.vol.pending;
    this.vol.pending = undefined;
    if (cmd.ins === INS.GET_RESPONSE && cmd.cla === 0x00) {
      if (!pending) fail(SW.CONDITIONS, 'no response pending');
      return this.chunk(pending, cmd.ne ?? 256);
    }
    // secure messaging (spec §3.19, secure-messaging.ts): a protected command is checked, routed
    // and answered protected; a plain one ends SM
    if (cmd.cla === 0x0c || cmd.cla === 0x8c)
      return this.finish(
        secureCommand(this.ctx(), cmd, (c) => this.route(c)),
        cmd,
      );
    if (this.vol.sm) endSecureMessaging(this.ctx());
    return this.finish(this.route(cmd), cmd);
  }

  /** The handler's answer to a plain command (before 61xx chunking). */
  private route(cmd: ParsedCommand): Reply {
    if (cmd.cla !== 0x00 && cmd.cla !== 0x80) fail(SW.CLA_NOT_SUPPORTED);
    if (cmd.ins === INS.SELECT && cmd.cla === 0x00) return select(this.ctx(), cmd);
    if (!this.vol.selected) fail(SW.INS_NOT_SUPPORTED, 'applet not selected');
    const chipAuthentication = cmd.ins === INS.MSE && cmd.cla === 0x00 && cmd.p1 === 0x41;
    const handler = chipAuthentication
      ? mseSetAtChipAuthentication
      : cmd.cla === 0x80
        ? PROPRIETARY[cmd.ins]
        : ISO[cmd.ins];
    if (!handler) fail(SW.INS_NOT_SUPPORTED);
    return handler(this.ctx(), cmd);
  }

  /** Answers longer than Ne are split with 61xx / GET RESPONSE (ISO 7816-4). */
  private finish(r: Reply, cmd: ParsedCommand): Reply {
    const data = r.data;
    if (!data || cmd.ne === undefined || data.length <= cmd.ne || (r.sw ?? SW.OK) !== SW.OK) return r;
    return this.chunk(data, cmd.ne);
  }

  private chunk(data: Uint8Array, ne: number): Reply {
    if (data.length <= ne) return { data };
    const rest = data.subarray(ne);
    this.vol.pending = rest;
    return { data: data.subarray(0, ne), sw: 0x6100 | (rest.length > 255 ? 0 : rest.length) };
  }

  private ctx(): CardContext {
    return {
      state: this.state,
      vol: this.vol,
      changed: () => {
        this.dirty = true;
      },
    };
  }

  /** The Transport side of the card; after {@link close} it fails like a card pulled from its reader. */
  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (this.removed) {
      throw new ScHsmError(
        'CARD_REMOVED',
        'the virtual card was closed: like a removed card it answers nothing; open its state again for a new session',
      );
    }
    const t = this.timing;
    if (!t) return this.process(apdu);
    // one APDU at a time, each answered after its modelled time, as a real card through its reader
    return t.lock.run(async () => {
      const r = this.process(apdu);
      await this.answerReady();
      return r;
    });
  }

  /** The largest command APDU the profile's device takes (undefined: no limit but the 64 KiB of extended length). */
  get maxApdu(): number | undefined {
    return this.timing?.profile.limits.maxApdu;
  }

  /** Power on: volatile state cleared, the applet is not selected (spec §1.3). */
  powerOn(): void {
    this.vol = freshVolatile();
  }

  powerOff(): void {
    this.vol = freshVolatile();
  }

  /** Warm reset: like power cycling, drops selection and PIN state. */
  reset(): void {
    this.vol = freshVolatile();
  }

  /**
   * Takes the card out of its reader: the volatile state is dropped, `transmit` fails with
   * CARD_REMOVED from now on, and a card bound to its state file releases the file (nothing more
   * is saved to it). `serialize` still gives the state.
   */
  async close(): Promise<void> {
    this.removed = true;
    this.vol = freshVolatile();
    const b = this.binding;
    this.binding = undefined;
    await b?.lock.release();
  }

  /** `await using`: {@link close}. */
  [asyncDispose](): Promise<void> {
    return this.close();
  }

  /** JSON of the persistent state (format version inside). */
  serialize(): string {
    return serializeState(this.state);
  }

  /** A card from `serialize()` output; INVALID_STATE_FILE on any bad field. Volatile state starts fresh. */
  static deserialize(json: string): VirtualSmartCardHsm {
    return VirtualSmartCardHsm.fromState(deserializeState(json));
  }

  /**
   * Saves a snapshot atomically (temp file in the same directory, mode 0600, fsync, rename), under
   * the file's lock: READER_BUSY when another process holds it. A card bound to `path` by
   * {@link VirtualSmartCardHsm.open} needs no call: it saves itself before every answer.
   */
  async save(path: string, o: Pick<StateLockOptions, 'waitMs'> = {}): Promise<void> {
    const b = this.binding;
    if (b && canonicalStatePath(path) === b.lock.path) {
      saveStateFileSync(b.lock.path, this.serialize());
      return;
    }
    const lock = await lockStateFile(path, o);
    try {
      await saveStateFile(lock.path, this.serialize());
    } finally {
      await lock.release();
    }
  }

  /**
   * A card from a snapshot of a state file, read under the file's lock (READER_BUSY when another
   * process holds it). The card is not bound to the file: a `load`, change, `save` sequence of two
   * processes can still lose one's changes — use {@link VirtualSmartCardHsm.open} for anything
   * that changes the card.
   */
  static async load(path: string, o: Pick<StateLockOptions, 'waitMs'> = {}): Promise<VirtualSmartCardHsm> {
    const lock = await lockStateFile(path, o);
    try {
      return VirtualSmartCardHsm.fromState(await readStateFile(lock.path));
    } finally {
      await lock.release();
    }
  }

  /**
   * The virtual card kept in the state file `path`, as a device: this card holds the file's lock
   * until `close()` (another process's `open`, `load` or `save` waits up to `waitMs`, then gets
   * READER_BUSY naming this holder), and it saves the file before it answers every APDU that
   * changed its state (PIN retry counters, keys, files, DKEK), so nothing the card confirmed can be
   * lost by a kill or a pull. Temp files of the state file left by a killed process are removed.
   * HOST_FILE_NOT_FOUND when the file (without `create`) or its directory does not exist.
   */
  static async open(path: string, o: OpenStateFileOptions = {}): Promise<VirtualSmartCardHsm> {
    let card: VirtualSmartCardHsm | undefined;
    const lock = await lockStateFile(path, {
      ...(o.waitMs !== undefined && { waitMs: o.waitMs }),
      ...(o.command !== undefined && { command: o.command }),
      ...(o.holderPid !== undefined && { holderPid: o.holderPid }),
      ...(o.onWait && { onWait: o.onWait }),
      onCompromised: (e) => {
        const b = card?.binding;
        if (b)
          card!.failBinding(
            b,
            new ScHsmError(
              'IO_ERROR',
              `the lock on the virtual card state ${path} was lost (${e.message}); nothing more is saved to it`,
              { cause: e },
            ),
          );
      },
    });
    try {
      removeStaleTemps(lock.path);
      if (await hostFileExists(lock.path))
        card = VirtualSmartCardHsm.fromState(await readStateFile(lock.path));
      else if (o.create) card = new VirtualSmartCardHsm(o.create === true ? {} : o.create);
      else throw new ScHsmError('HOST_FILE_NOT_FOUND', `the virtual card state ${path} does not exist`);
    } catch (e) {
      await lock.release();
      throw e;
    }
    card.binding = { lock, ...(o.onFailure && { onFailure: o.onFailure }) };
    return card;
  }

  private static fromState(state: CardState): VirtualSmartCardHsm {
    restoring = state;
    try {
      return new VirtualSmartCardHsm();
    } finally {
      restoring = undefined;
    }
  }
}

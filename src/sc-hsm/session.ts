/**
 * The SmartCard-HSM session: one selection of the applet, then verbs for the commands of
 * spec §3 that a host uses. Every multi-APDU operation runs inside `channel.exclusive`, so that no
 * other exchange of this process is interleaved (and, over PC/SC, no other application).
 *
 * PIN safety: no command carrying a PIN is ever sent twice by this class; before each VERIFY,
 * RESET RETRY COUNTER or re-INITIALIZE the tries left are queried (a query costs no try), a blocked
 * PIN is reported without sending anything, and with one try left the call refuses unless
 * `force` is given.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { swHex } from '../apdu/status.js';
import { ApduChannel, type Transport } from '../apdu/transport.js';
// the modules themselves, not the dkek barrel: a session that never wraps loads no share-file KDF
import { isZeroDkekKcv, keyCheckValue } from '../dkek/dkek.js';
import { decryptKeyBlob, inspectKeyBlob } from '../dkek/key-blob.js';
import { decodeWrapFile, encodeWrapFile } from '../dkek/wrap-file.js';
import { isScHsmError, ScHsmError, type ScHsmErrorCode, type ScHsmErrorOptions } from '../errors.js';
import {
  type CertificateDescription,
  type CvCertificate,
  type CvcPublicKey,
  cvcPublicKeyToSpki,
  type DataObjectDescription,
  decodeCertificateDescription,
  decodeCvRequest,
  decodeDataObjectDescription,
  decodeDeviceCertificateFile,
  decodeDeviceCertificates,
  decodeKeyDescription,
  decodeTokenInfo,
  ecdsaDerToPlain,
  encodeCertificateDescription,
  encodeCvcBody,
  encodeDataObjectDescription,
  encodeKeyDescription,
  encodeTokenInfo,
  KEY_USAGE,
  type KeyDescription,
  OBJECT_FLAGS,
} from '../pkcs15/index.js';
import {
  AES_KEYGEN_ALGO,
  AID,
  ALGO,
  CLA_ISO,
  CLA_PROPRIETARY,
  EF,
  INIT_TAG,
  INS,
  OID,
  OPTION,
  PIN_SO,
  PIN_USER,
  PREFIX,
  SO_PIN_TRIES,
} from '../protocol/constants.js';
import { bytesEqual, concat, padStart, toHex, uintBE, wipe } from '../util/bytes.js';
import { type CurveInfo, type CurveName, curveByName, curveParams } from '../util/curves.js';
import { findTag, readAll, readTlv, tlv } from '../util/tlv.js';
import { CardFiles } from './files.js';
import { afterCreationSent, type CreationContext } from './interrupted.js';
import {
  digestInfo,
  type HashName,
  hashByLength,
  hashOf,
  oaepUnpad,
  parseDigestInfo,
  pkcs1DecryptionUnpad,
  pkcs1SignaturePad,
} from './padding.js';
import { namePinError, refuseUnsafeTry } from './pin-guard.js';
import {
  checkBytes,
  checkFid,
  checkInt,
  checkKeyRef,
  checkLabel,
  checkObject,
  checkOneOf,
  checkRetryCounter,
  checkRsaBits,
  parseSoPin,
  parseUserPin,
  typeName,
} from './validate.js';

export interface AppletInfo {
  /** Firmware version from FCP tag 85 (spec §1.3). */
  version: { major: number; minor: number };
  /** Device option word (tag 85 bytes 0–1, firmware ≥ 2.0; spec §3.9). */
  options: number;
  /** Applet type byte (tag 85 byte len−3): 0 = "SmartCard-HSM Applet for JCOP". */
  type?: number;
  fcp: Uint8Array;
}

export type PinState = 'verified' | 'not-verified' | 'blocked' | 'transport-pin' | 'not-initialized';

export interface PinStatus {
  state: PinState;
  /** Tries left where the card says (`63 Cx`), 0 when blocked. */
  triesLeft?: number;
}

export interface DkekStatus {
  /** Number of shares the DKEK is made of. */
  total: number;
  /** Shares still to be imported. */
  outstanding: number;
  /** Key check value: first 8 bytes of SHA-256(DKEK) (spec §7.4). */
  kcv: Uint8Array;
  /**
   * Set when the complete DKEK is 32 zero bytes (KCV `66687AADF862BD77`, its shares cancelled
   * out): anything wrapped under it can be unwrapped by anyone. WRAP KEY is refused then.
   */
  allZero?: true;
}

export interface ImportDkekShareOptions {
  /**
   * Key check values of the shares already imported into this DKEK by earlier sessions (e.g. a
   * ceremony record the caller keeps — never the shares). A share with one of these KCVs is
   * refused before it is sent. Shares imported through this session are remembered anyway.
   */
  importedShareKcvs?: readonly Uint8Array[];
}

export interface DeviceStatus {
  initialized: boolean;
  version: { major: number; minor: number };
  options: number;
  label?: string;
  /** Token serial: the device CHR minus its last five characters, as OpenSC shows it (spec §5.4). */
  serial?: string;
  /** Device certificate holder reference (CHR) from EF 2F02. */
  deviceChr?: string;
  userPin: { triesLeft?: number; verified: boolean; blocked: boolean; transportPin: boolean };
  soPin: { triesLeft?: number; blocked: boolean };
  /** Absent when the device has no DKEK configured. */
  dkek?: DkekStatus;
}

export interface InitializeOptions {
  /** 16 hexadecimal characters. On first initialization it becomes the SO-PIN; later it must be the current one. */
  soPin: string;
  /** Initial user PIN, 6–15 characters. */
  userPin: string;
  /** Token label written to EF.TokenInfo (2F03), as OpenSC does. */
  label?: string;
  /** User PIN retry counter (default 3; at most 3/5/10 for PINs of 6/7/≥8 characters). */
  retryCounter?: number;
  /** Number of DKEK shares; 0 = the card generates a random DKEK; undefined = no DKEK (no key backup possible). */
  dkekShares?: number;
  /** Allow RESET RETRY COUNTER with the SO-PIN (default true, as OpenSC). */
  resetRetryCounter?: boolean;
  /** Transport-PIN mode: the user PIN must be changed before first use. */
  transportPin?: boolean;
  /** Public key authentication: N keys registered, M required (spec §3.18). */
  publicKeyAuth?: { total: number; required: number };
  /** Number of key domains (firmware 3.x). */
  keyDomains?: number;
  /** Proceed although the SO-PIN has one try left (a wrong SO-PIN then locks the device for good). */
  force?: boolean;
}

/**
 * `unknown`: a key object CCxx with neither a readable description (C4xx) nor a public key
 * (CExx), e.g. left by an interrupted restore or written by another tool.
 */
export type KeyType = 'rsa' | 'ec' | 'aes' | 'unknown';

export interface KeyInfo {
  /** Key reference: the low byte of the key's file CCxx, used by SIGN/WRAP (P1). */
  keyRef: number;
  /** PKCS#15 / PKCS#11 ID (CKA_ID), a different thing from the key reference. */
  id: Uint8Array;
  label?: string;
  type: KeyType;
  /** RSA modulus length, EC field size, or AES key length, in bits. */
  bits: number;
  curve?: CurveName;
  /** PKCS#15 key usage flags (spec §6). */
  usage: number;
  /** PKCS#15 key access flags; undefined when the description carries none. */
  access?: number;
  /** True when CExx holds an X.509 certificate (not just the CV request of key generation). */
  hasCertificate: boolean;
  /** SubjectPublicKeyInfo DER, from the CV request or certificate in CExx. */
  publicKey?: Uint8Array;
  /** The decoded description, as stored in C4xx. */
  description?: KeyDescription;
}

export type KeyPairSpec =
  | {
      type: 'rsa';
      bits: number;
      label: string;
      id?: Uint8Array;
      keyRef?: number;
      publicExponent?: number;
      algorithms?: Uint8Array;
    }
  | { type: 'ec'; curve: string; label: string; id?: Uint8Array; keyRef?: number; algorithms?: Uint8Array };

export interface GeneratedKey {
  keyRef: number;
  id: Uint8Array;
  /** SubjectPublicKeyInfo DER. */
  publicKey: Uint8Array;
  /** The authenticated CV request the card returned (also stored in CExx by the card). */
  request: Uint8Array;
}

export type SignMechanism =
  | 'ECDSA'
  | 'ECDSA-SHA1'
  | 'ECDSA-SHA224'
  | 'ECDSA-SHA256'
  | 'ECDSA-SHA384'
  | 'ECDSA-SHA512'
  | 'RSA-RAW'
  | 'RSA-PKCS1'
  | 'RSA-PKCS1-SHA1'
  | 'RSA-PKCS1-SHA224'
  | 'RSA-PKCS1-SHA256'
  | 'RSA-PKCS1-SHA384'
  | 'RSA-PKCS1-SHA512'
  | 'RSA-PSS'
  | 'RSA-PSS-SHA1'
  | 'RSA-PSS-SHA224'
  | 'RSA-PSS-SHA256'
  | 'RSA-PSS-SHA384'
  | 'RSA-PSS-SHA512';

export type DecryptMechanism = 'RSA-RAW' | 'RSA-PKCS1' | 'RSA-OAEP-SHA1' | 'RSA-OAEP-SHA256';

const HASH_OF_SUFFIX: Record<string, HashName> = {
  SHA1: 'sha1',
  SHA224: 'sha224',
  SHA256: 'sha256',
  SHA384: 'sha384',
  SHA512: 'sha512',
};

/** The inner CAR OpenSC puts into key generation requests (spec §3.11). */
const REQUEST_CAR = 'UTCA00001';

const VERIFY_OVERRIDES = {
  0x6a88: ['NOT_INITIALIZED', 'the device is not initialized (no PIN set)'],
  0x6984: ['TRANSPORT_PIN_ACTIVE', 'the transport PIN is still active: change the PIN first (pin change)'],
  0x6a80: ['INVALID_PIN', 'the card rejected the PIN length'],
} as const;

function pinStatusFromSw(code: number): PinStatus {
  if (code === 0x9000) return { state: 'verified' };
  if ((code & 0xfff0) === 0x63c0) {
    const n = code & 0x0f;
    return n === 0 ? { state: 'blocked', triesLeft: 0 } : { state: 'not-verified', triesLeft: n };
  }
  if (code === 0x6983) return { state: 'blocked', triesLeft: 0 };
  if (code === 0x6984) return { state: 'transport-pin' };
  if (code === 0x6a88) return { state: 'not-initialized' };
  throw new ScHsmError('CARD_ERROR', `VERIFY (status query): unexpected SW ${swHex(code)}`, {
    sw: code,
    command: 'VERIFY',
  });
}

/**
 * Loads an SPKI with node:crypto, turning OpenSSL's refusal (e.g. a point off the curve, sent by a
 * damaged or hostile card) into MALFORMED_RESPONSE.
 */
export function publicKeyObject(spki: Uint8Array, what = 'public key'): KeyObject {
  try {
    return createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (e) {
    throw new ScHsmError('MALFORMED_RESPONSE', `the ${what} from the card is not a valid public key`, {
      cause: e,
    });
  }
}

/** OpenSC's intrinsic ID: SHA-1 of the modulus (RSA) or of the X coordinate (EC) (spec §6.2). */
export function intrinsicKeyId(spki: Uint8Array): Uint8Array {
  const key = publicKeyObject(spki);
  let material: Uint8Array;
  if (key.asymmetricKeyType === 'rsa') {
    material = Buffer.from(key.export({ format: 'jwk' }).n!, 'base64url');
  } else {
    // X from the raw point: works for every curve (JWK knows only the NIST ones)
    const point = spkiPoint(spki);
    material = point.subarray(1, 1 + (point.length - 1) / 2);
  }
  return new Uint8Array(createHash('sha1').update(material).digest());
}

/** The uncompressed point (`04‖X‖Y`) inside an EC SubjectPublicKeyInfo. */
export function spkiPoint(spki: Uint8Array): Uint8Array {
  const seq = readTlv(spki).value;
  const [, bits] = readAll(seq);
  if (bits?.tag !== 0x03 || bits.value.length < 2 || bits.value[1] !== 0x04) {
    throw new ScHsmError('INVALID_ARGUMENT', 'not an EC public key with an uncompressed point');
  }
  return bits.value.subarray(1);
}

export interface SessionOptions {
  /**
   * The user PIN's retry counter as configured at initialization (1–10), for a caller that keeps
   * it: the card does not report it. See {@link SmartCardHsm.userPinRetryCounter}.
   */
  userPinRetryCounter?: number;
}

/** The session's channel: after {@link SmartCardHsm.close} it refuses everything, whatever the transport. */
class SessionChannel extends ApduChannel {
  closed = false;

  private refused(): ScHsmError {
    return new ScHsmError(
      'SESSION_CLOSED',
      'this SmartCard-HSM session was closed; open a new one (SmartCardHsm.open). Nothing was sent.',
    );
  }

  override send(cmd: Parameters<ApduChannel['send']>[0]): ReturnType<ApduChannel['send']> {
    return this.closed ? Promise.reject(this.refused()) : super.send(cmd);
  }

  override exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.closed ? Promise.reject(this.refused()) : super.exclusive(fn);
  }
}

export class SmartCardHsm {
  readonly channel: ApduChannel;
  readonly files: CardFiles;
  private appletInfo: AppletInfo;
  private keyCache = new Map<number, KeyInfo>();
  private deviceChrCache?: string;
  /** KCVs (never the shares) of the DKEK shares this session imported into the current DKEK. */
  private importedShares?: { total: number; kcvs: Uint8Array[] };

  /** Closed sessions refuse every call (SESSION_CLOSED); see {@link close}. */
  private readonly sessionChannel: SessionChannel;
  private userPinRetries?: number;

  private constructor(
    readonly transport: Transport,
    channel: SessionChannel,
    info: AppletInfo,
  ) {
    this.channel = channel;
    this.sessionChannel = channel;
    this.appletInfo = info;
    this.files = new CardFiles(channel, transport.extendedLength !== false);
    // Another application reset the card (PC/SC): select the applet again, never re-send anything.
    channel.onCardReset = async () => {
      this.appletInfo = await SmartCardHsm.selectApplet(channel);
    };
  }

  /** Selects the applet and returns a session (spec §1.3). */
  static async open(transport: Transport, opts: SessionOptions = {}): Promise<SmartCardHsm> {
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
    const channel = new SessionChannel(transport);
    const info = await SmartCardHsm.selectApplet(channel);
    const hsm = new SmartCardHsm(transport, channel, info);
    if (opts.userPinRetryCounter !== undefined) hsm.userPinRetries = opts.userPinRetryCounter;
    return hsm;
  }

  /**
   * The user PIN's retry counter as configured at initialization, where this session knows it:
   * from {@link initialize}, or from `open(…, { userPinRetryCounter })` when the caller keeps it
   * (the card reports only the tries left, `63 Cx`, never the configured maximum: spec §3.6, §9).
   * With a counter of 1 every try is the last one, so "one try left" is the full counter and the
   * PIN is sent without `force`. Forgotten as soon as the card shows more tries left than this.
   */
  get userPinRetryCounter(): number | undefined {
    return this.userPinRetries;
  }

  set userPinRetryCounter(n: number | undefined) {
    if (n !== undefined) checkInt(n, 1, 10, 'the user PIN retry counter (userPinRetryCounter)');
    this.userPinRetries = n;
  }

  /** SELECT of the applet as OpenSC sends it (`00 A4 04 00 0B <AID> 00`), with the FCP parsed. */
  static async selectApplet(channel: ApduChannel): Promise<AppletInfo> {
    if (!(channel instanceof ApduChannel))
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `the channel must be an ApduChannel; got ${typeName(channel)}`,
      );
    const r = await channel.exchange(
      { cla: CLA_ISO, ins: INS.SELECT, p1: 0x04, p2: 0x00, data: AID, ne: 256 },
      'SELECT',
      {
        overrides: { 0x6a82: ['NOT_A_SMARTCARD_HSM', 'no SmartCard-HSM applet on this card'] },
      },
    );
    return SmartCardHsm.parseFcp(r.data);
  }

  /** Reads firmware version and options from the FCP's tag 85 (spec §1.3). */
  static parseFcp(fcp: Uint8Array): AppletInfo {
    checkBytes(fcp, 'the FCP');
    let t85: Uint8Array | undefined;
    try {
      const outer = readTlv(fcp);
      t85 = outer.tag === 0x62 ? findTag(outer.value, 0x85)?.value : undefined;
    } catch (e) {
      throw new ScHsmError('NOT_A_SMARTCARD_HSM', 'the applet answered SELECT with an unreadable FCP', {
        cause: e,
      });
    }
    if (!t85 || t85.length < 2) {
      throw new ScHsmError('NOT_A_SMARTCARD_HSM', 'the FCP carries no SmartCard-HSM version (tag 85)');
    }
    const n = t85.length;
    const info: AppletInfo = {
      version: { major: t85[n - 2]!, minor: t85[n - 1]! },
      options: n >= 5 ? (t85[0]! << 8) | t85[1]! : 0,
      fcp: fcp.slice(),
    };
    if (n >= 5) info.type = t85[n - 3]!;
    return info;
  }

  get info(): AppletInfo {
    return this.appletInfo;
  }

  /** Selects the applet again: this logs the user out (the card drops the PIN state, spec §1.3). */
  async logout(): Promise<void> {
    this.appletInfo = await SmartCardHsm.selectApplet(this.channel);
  }

  /**
   * Ends the session and closes its transport. Every later call of this session rejects with
   * SESSION_CLOSED (nothing is sent); closing again does nothing.
   */
  async close(): Promise<void> {
    if (this.sessionChannel.closed) return;
    this.sessionChannel.closed = true;
    this.keyCache.clear();
    this.deviceChrCache = undefined;
    this.channel.onCardReset = undefined;
    await this.transport.close();
  }

  // ---------------------------------------------------------------- status

  /** VERIFY without data: the PIN's state, costing no try (spec §3.6). */
  async pinStatus(ref: number = PIN_USER): Promise<PinStatus> {
    if (ref !== PIN_USER && ref !== PIN_SO) {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `the PIN reference must be 0x81 (user PIN) or 0x88 (SO-PIN); got ${typeof ref === 'number' ? `0x${ref.toString(16)}` : typeName(ref)}`,
      );
    }
    const r = await this.channel.send({ cla: CLA_ISO, ins: INS.VERIFY, p1: 0, p2: ref });
    return pinStatusFromSw(r.sw);
  }

  /** IMPORT DKEK SHARE without data: the DKEK's state (spec §3.10); undefined when no DKEK is configured. */
  async dkekStatus(): Promise<DkekStatus | undefined> {
    const r = await this.channel.send({
      cla: CLA_PROPRIETARY,
      ins: INS.MANAGE_KEY_DOMAIN,
      p1: 0,
      p2: 0,
      ne: 256,
    });
    if (r.sw !== 0x9000) {
      // 6A88 / 6D00 / 6B00: no DKEK configured, or not initialized (spec §3.10, §13 item 6)
      if ([0x6a88, 0x6d00, 0x6b00, 0x6985].includes(r.sw)) return undefined;
      throw new ScHsmError('CARD_ERROR', `DKEK status: unexpected SW ${swHex(r.sw)}`, {
        sw: r.sw,
        command: 'MANAGE KEY DOMAIN',
      });
    }
    return SmartCardHsm.parseDkekStatus(r.data);
  }

  private static parseDkekStatus(data: Uint8Array): DkekStatus {
    if (data.length < 10) {
      throw new ScHsmError(
        'MALFORMED_RESPONSE',
        `DKEK status of ${data.length} bytes (expected at least 10)`,
      );
    }
    const st: DkekStatus = { total: data[0]!, outstanding: data[1]!, kcv: data.slice(2, 10) };
    if (st.outstanding === 0 && isZeroDkekKcv(st.kcv)) st.allZero = true;
    return st;
  }

  /** Device CHR from EF 2F02 (cached). */
  async deviceChr(): Promise<string | undefined> {
    if (this.deviceChrCache === undefined) {
      const ef = await this.files.readOptional(EF.DEVICE_CERTIFICATES);
      if (!ef || ef.length === 0) return undefined;
      // tolerant: some implementations (pico-hsm) store the device certificate alone
      this.deviceChrCache = decodeDeviceCertificateFile(ef).device.chr;
    }
    return this.deviceChrCache;
  }

  /** The device certificate and its issuer from EF 2F02 (spec §5.3). */
  async deviceCertificates(): Promise<{ device: CvCertificate; issuer: CvCertificate; raw: Uint8Array }> {
    const raw = await this.files.read(EF.DEVICE_CERTIFICATES);
    return { ...decodeDeviceCertificates(raw), raw };
  }

  /** Token label from EF.TokenInfo (2F03), if written. */
  async label(): Promise<string | undefined> {
    const ti = await this.files.readOptional(EF.TOKEN_INFO);
    if (!ti || ti.length === 0) return undefined;
    return decodeTokenInfo(ti).label;
  }

  /** Everything bare `sc-hsm-tool` shows, and more (spec §1.4). Costs no PIN try. */
  async status(): Promise<DeviceStatus> {
    return this.channel.exclusive(async () => {
      const so = await this.pinStatus(PIN_SO);
      const initialized = so.state !== 'not-initialized';
      const user = initialized ? await this.pinStatus(PIN_USER) : { state: 'not-initialized' as const };
      const st: DeviceStatus = {
        initialized,
        version: this.appletInfo.version,
        options: this.appletInfo.options,
        userPin: {
          verified: user.state === 'verified',
          blocked: user.state === 'blocked',
          transportPin: user.state === 'transport-pin',
        },
        soPin: { blocked: so.state === 'blocked' },
      };
      if (user.triesLeft !== undefined) st.userPin.triesLeft = user.triesLeft;
      if (so.triesLeft !== undefined) st.soPin.triesLeft = so.triesLeft;
      // A verified SO-PIN state is not something hosts use; the counter is full then.
      if (so.state === 'verified') st.soPin.triesLeft = SO_PIN_TRIES;
      const chr = await this.deviceChr();
      if (chr) {
        st.deviceChr = chr;
        st.serial = chr.length > 5 ? chr.slice(0, -5) : chr;
      }
      if (initialized) {
        const dkek = await this.dkekStatus();
        if (dkek) st.dkek = dkek;
        const label = await this.label();
        if (label !== undefined) st.label = label;
      }
      return st;
    });
  }

  // ---------------------------------------------------------------- PINs

  /** Queries the PIN's state (free) and refuses what would waste or block it. */
  private async checkTries(ref: number, force: boolean | undefined, what: string): Promise<PinStatus> {
    const st = await this.pinStatus(ref);
    this.refuseUnsafeTry(ref, st, force, what);
    return st;
  }

  /** {@link refuseUnsafeTry} of pin-guard.ts with what this session knows of the retry counter. */
  private refuseUnsafeTry(ref: number, st: PinStatus, force: boolean | undefined, what: string): void {
    // a configured counter smaller than what the card shows was not this device's (re-initialized since)
    if (ref === PIN_USER && st.triesLeft !== undefined && st.triesLeft > (this.userPinRetries ?? 15)) {
      this.userPinRetries = undefined;
    }
    refuseUnsafeTry(ref, st, what, { force, userPinRetryCounter: this.userPinRetries });
  }

  /**
   * VERIFY the user PIN (spec §3.6). The tries left are queried first: a blocked PIN or a device
   * with one try left is reported without sending the PIN (unless `force`, or a retry counter of 1
   * known to this session, see {@link userPinRetryCounter}). The PIN is 6–15 printable ASCII
   * characters (see parseUserPin).
   */
  async verifyPin(pin: string, opts: { force?: boolean } = {}): Promise<void> {
    checkObject(opts, 'the options', { force: 'boolean' });
    const bytes = parseUserPin(pin);
    try {
      await this.channel.exclusive(async () => {
        await this.checkTries(PIN_USER, opts.force, 'VERIFY');
        try {
          await this.channel.exchange(
            { cla: CLA_ISO, ins: INS.VERIFY, p1: 0, p2: PIN_USER, data: bytes },
            'VERIFY',
            {
              overrides: VERIFY_OVERRIDES as never,
            },
          );
        } catch (e) {
          throw namePinError(e, PIN_USER);
        }
      });
    } finally {
      wipe(bytes);
    }
  }

  /** CHANGE REFERENCE DATA for the user PIN: old ‖ new (spec §3.7). Also replaces a transport PIN. */
  async changePin(oldPin: string, newPin: string, opts: { force?: boolean } = {}): Promise<void> {
    checkObject(opts, 'the options', { force: 'boolean' });
    const o = parseUserPin(oldPin, 'current user PIN');
    let n: Uint8Array;
    try {
      n = parseUserPin(newPin, 'new user PIN');
    } catch (e) {
      wipe(o);
      throw e;
    }
    await this.changeReferenceData(PIN_USER, o, n, opts.force);
  }

  /** CHANGE REFERENCE DATA for the SO-PIN: 8 ‖ 8 binary bytes (spec §3.7). */
  async changeSoPin(oldSoPin: string, newSoPin: string, opts: { force?: boolean } = {}): Promise<void> {
    checkObject(opts, 'the options', { force: 'boolean' });
    const o = parseSoPin(oldSoPin, 'current SO-PIN');
    let n: Uint8Array;
    try {
      n = parseSoPin(newSoPin, 'new SO-PIN');
    } catch (e) {
      wipe(o);
      throw e;
    }
    await this.changeReferenceData(PIN_SO, o, n, opts.force);
  }

  /** Sends old ‖ new for `ref` after the tries check (a transport PIN is replaced without one). */
  private async changeReferenceData(
    ref: number,
    o: Uint8Array,
    n: Uint8Array,
    force?: boolean,
  ): Promise<void> {
    const data = concat(o, n);
    try {
      await this.channel.exclusive(async () => {
        const st = await this.pinStatus(ref);
        if (st.state !== 'transport-pin') this.refuseUnsafeTry(ref, st, force, 'CHANGE REFERENCE DATA');
        try {
          await this.channel.exchange(
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
   * RESET RETRY COUNTER with the SO-PIN (spec §3.8): P1=00 with a new user PIN, P1=01 to reset
   * the counter only. Needs option "RESET RETRY COUNTER" (set by default at initialization).
   * The SO-PIN's tries are checked first: a blocked SO-PIN cannot be unblocked by anything.
   */
  async unblockPin(opts: { soPin: string; newPin?: string; force?: boolean }): Promise<void> {
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
      await this.channel.exclusive(async () => {
        await this.checkTries(PIN_SO, opts.force, 'RESET RETRY COUNTER');
        try {
          await this.channel.exchange(
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

  // ---------------------------------------------------------------- initialize

  /**
   * INITIALIZE DEVICE (spec §3.9), then the label into EF.TokenInfo as OpenSC writes it. Erases
   * every key, certificate and data object on the device. Everything is validated on the host
   * first; on an initialized device the SO-PIN's tries left are checked before it is sent.
   * The session then knows the user PIN's retry counter ({@link userPinRetryCounter}).
   */
  async initialize(o: InitializeOptions): Promise<void> {
    checkObject(o, 'the initialize options', {
      soPin: 'string',
      userPin: 'string',
      label: 'string',
      retryCounter: 'number',
      dkekShares: 'number',
      resetRetryCounter: 'boolean',
      transportPin: 'boolean',
      publicKeyAuth: 'object',
      keyDomains: 'number',
      force: 'boolean',
    });
    if (o.dkekShares !== undefined) checkInt(o.dkekShares, 0, 255, 'the number of DKEK shares');
    if (o.label !== undefined) checkLabel(o.label, 'token label');
    if (o.keyDomains !== undefined) checkInt(o.keyDomains, 1, 255, 'the number of key domains');
    if (o.publicKeyAuth) {
      checkInt(o.publicKeyAuth.total, 1, 90, 'the number of public keys for authentication');
      checkInt(o.publicKeyAuth.required, 1, o.publicKeyAuth.total, 'the number of required public keys');
    }
    parseSoPin(o.soPin);
    const retry = o.retryCounter ?? 3;
    checkRetryCounter(retry, parseUserPin(o.userPin).length);
    // only now the secrets' bytes: nothing above can throw past them unwiped
    const so = parseSoPin(o.soPin);
    const pin = parseUserPin(o.userPin);
    let options = 0;
    if (o.resetRetryCounter !== false) options |= OPTION.RESET_RETRY_COUNTER;
    if (o.transportPin) options |= OPTION.TRANSPORT_PIN;
    const parts = [
      tlv(INIT_TAG.OPTIONS, uintBE(options, 2)),
      tlv(INIT_TAG.USER_PIN, pin),
      tlv(INIT_TAG.SO_PIN, so),
      tlv(INIT_TAG.USER_PIN_RETRY, Uint8Array.of(retry)),
    ];
    if (o.dkekShares !== undefined) parts.push(tlv(INIT_TAG.DKEK_SHARES, Uint8Array.of(o.dkekShares)));
    if (o.publicKeyAuth) {
      parts.push(
        tlv(INIT_TAG.PUBLIC_KEY_AUTH, Uint8Array.of(o.publicKeyAuth.total, o.publicKeyAuth.required)),
      );
    }
    if (o.keyDomains !== undefined) parts.push(tlv(INIT_TAG.KEY_DOMAINS, Uint8Array.of(o.keyDomains)));
    const data = concat(...parts);
    try {
      await this.channel.exclusive(async () => {
        const st = await this.pinStatus(PIN_SO);
        if (st.state !== 'not-initialized') await this.checkTries(PIN_SO, o.force, 'INITIALIZE DEVICE');
        try {
          await this.channel.exchange(
            { cla: CLA_PROPRIETARY, ins: INS.INITIALIZE, p1: 0, p2: 0, data },
            'INITIALIZE DEVICE',
            {
              overrides: {
                0x6982: ['WRONG_PIN', 'wrong SO-PIN (initialization code)'],
                0x6985: ['WRONG_PIN', 'wrong SO-PIN (initialization code)'],
                0x6986: ['WRONG_PIN', 'wrong SO-PIN (initialization code)'],
                0x6983: ['PIN_BLOCKED', 'the SO-PIN is blocked'],
              },
            },
          );
        } catch (e) {
          throw namePinError(e, PIN_SO);
        }
        this.userPinRetries = retry;
        this.keyCache.clear();
        this.importedShares = undefined;
        this.appletInfo = { ...this.appletInfo, options };
        if (o.label !== undefined && !o.transportPin) {
          await this.channel
            .exchange({ cla: CLA_ISO, ins: INS.VERIFY, p1: 0, p2: PIN_USER, data: pin }, 'VERIFY', {
              overrides: VERIFY_OVERRIDES as never,
            })
            .catch((e) => {
              throw namePinError(e, PIN_USER);
            });
          await this.files.write(
            EF.TOKEN_INFO,
            encodeTokenInfo({ version: 0, label: o.label, flags: 0x04 }),
            {
              replace: false,
            },
          );
        }
      });
    } finally {
      wipe(data);
      wipe(pin);
      wipe(so);
    }
  }

  // ---------------------------------------------------------------- DKEK

  /**
   * IMPORT DKEK SHARE (spec §3.10): XORs a 32-byte share into the DKEK; returns the new status.
   *
   * The card XORs whatever it gets, so the host is the only guard against a DKEK anyone can
   * compute. Before sending: a share of 32 zero bytes is refused (DKEK_DEGENERATE), and so is a
   * share whose KCV matches one imported through this session or listed in
   * `importedShareKcvs` (DKEK_SHARE_REPEATED: it would cancel out). After the last share the
   * device's KCV is checked: a DKEK of 32 zero bytes, or (with two or more shares) one equal to a
   * share the host knows, throws DKEK_DEGENERATE — the card then already holds that DKEK, and only
   * a re-initialization replaces it. (Firmware that shows the KCV only after login answers zeros
   * here; the check then happens at WRAP KEY, see {@link wrapKey}.)
   */
  async importDkekShare(share: Uint8Array, opts: ImportDkekShareOptions = {}): Promise<DkekStatus> {
    checkObject(opts, 'the import options', { importedShareKcvs: 'object' });
    if (!(share instanceof Uint8Array) || share.length !== 32) {
      throw new ScHsmError('INVALID_ARGUMENT', `a DKEK share is 32 bytes; got ${share?.length ?? 0}`);
    }
    if (share.every((b) => b === 0)) {
      throw new ScHsmError(
        'DKEK_DEGENERATE',
        'the DKEK share is 32 zero bytes: it would add nothing to the DKEK. Nothing was sent.',
      );
    }
    const kcv = keyCheckValue(share);
    const noDkek = 'the device was not initialized for DKEK shares (initialize with dkekShares ≥ 1)';
    return this.channel.exclusive(async () => {
      const before = await this.dkekStatus();
      if (!before) throw new ScHsmError('NO_DKEK', `${noDkek}. Nothing was sent.`);
      if (before.outstanding === 0) {
        throw new ScHsmError(
          'CONDITIONS_NOT_SATISFIED',
          `all ${before.total} DKEK share(s) have already been imported. Nothing was sent.`,
        );
      }
      // what this session imported counts while the device's count agrees (no re-initialization since)
      const mine = this.importedShares;
      const imported = before.total - before.outstanding;
      if (!mine || mine.total !== before.total || mine.kcvs.length > imported) {
        this.importedShares = { total: before.total, kcvs: [] };
      }
      const ceremony = this.importedShares!;
      const known = [...ceremony.kcvs, ...(opts.importedShareKcvs ?? [])];
      if (known.some((k) => bytesEqual(k, kcv))) {
        throw new ScHsmError(
          'DKEK_SHARE_REPEATED',
          `this DKEK share (key check value ${toHex(kcv).toUpperCase()}) was already imported into this DKEK; importing it again would cancel it out. Nothing was sent.`,
        );
      }
      const r = await this.channel.exchange(
        { cla: CLA_PROPRIETARY, ins: INS.MANAGE_KEY_DOMAIN, p1: 0, p2: 0, data: share, ne: 256 },
        'IMPORT DKEK SHARE',
        {
          overrides: {
            0x6d00: ['NO_DKEK', noDkek],
            0x6a88: ['NO_DKEK', noDkek],
            0x6985: ['CONDITIONS_NOT_SATISFIED', 'all DKEK shares have already been imported'],
          },
        },
      );
      const after = SmartCardHsm.parseDkekStatus(r.data);
      ceremony.kcvs.push(kcv);
      if (after.outstanding === 0) SmartCardHsm.refuseDegenerateDkek(after, [...known, kcv]);
      return after;
    });
  }

  /** After the last share: a DKEK anyone can compute is reported loudly (it is on the card already). */
  private static refuseDegenerateDkek(st: DkekStatus, shareKcvs: Uint8Array[]): void {
    const remedy =
      'The device holds this DKEK now: do not generate or wrap keys on it; re-initialize it (this erases its keys) and import distinct shares.';
    if (st.allZero) {
      throw new ScHsmError(
        'DKEK_DEGENERATE',
        `the DKEK shares cancelled each other out: the DKEK is 32 zero bytes (key check value ${toHex(st.kcv).toUpperCase()}), so anything wrapped under it can be unwrapped by anyone. ${remedy}`,
      );
    }
    if (st.total >= 2 && shareKcvs.some((k) => bytesEqual(k, st.kcv))) {
      throw new ScHsmError(
        'DKEK_DEGENERATE',
        `the other DKEK shares cancelled each other out: the DKEK equals a single share (key check value ${toHex(st.kcv).toUpperCase()}), so one custodian alone knows it. ${remedy}`,
      );
    }
  }

  // ---------------------------------------------------------------- files and objects

  async enumerate(): Promise<number[]> {
    return this.files.enumerate();
  }

  async readFile(fid: number): Promise<Uint8Array> {
    checkFid(fid);
    return this.files.read(fid);
  }

  async writeFile(fid: number, data: Uint8Array): Promise<void> {
    checkFid(fid);
    checkBytes(data, 'the file content', 0, 0xffff);
    await this.files.write(fid, data);
  }

  async deleteFile(fid: number): Promise<void> {
    checkFid(fid);
    await this.files.delete(fid);
  }

  /** GET CHALLENGE (spec §3.17), in calls of at most 1024 bytes. */
  async getChallenge(length: number): Promise<Uint8Array> {
    checkInt(length, 1, 65536, 'the challenge length');
    const parts: Uint8Array[] = [];
    for (let left = length; left > 0; ) {
      const n = Math.min(left, this.transport.extendedLength === false ? 256 : 1024);
      const r = await this.channel.exchange(
        { cla: CLA_ISO, ins: INS.GET_CHALLENGE, p1: 0, p2: 0, ne: n },
        'GET CHALLENGE',
      );
      if (r.data.length !== n)
        throw new ScHsmError('MALFORMED_RESPONSE', `GET CHALLENGE returned ${r.data.length} of ${n} bytes`);
      parts.push(r.data);
      left -= n;
    }
    return concat(...parts);
  }

  // ---------------------------------------------------------------- keys

  /** Lowest free key reference from 1 (0 is the device key). */
  private async freeKeyRef(fids?: number[]): Promise<number> {
    const list = fids ?? (await this.files.enumerate());
    const used = new Set(list.filter((f) => f >> 8 === PREFIX.KEY).map((f) => f & 0xff));
    for (let i = 1; i <= 255; i++) if (!used.has(i)) return i;
    throw new ScHsmError('MEMORY_FULL', 'all 255 key references are in use');
  }

  private async checkFreeRef(keyRef: number, fids: number[]): Promise<void> {
    checkKeyRef(keyRef);
    if (fids.includes((PREFIX.KEY << 8) | keyRef)) {
      throw new ScHsmError(
        'KEY_REF_OCCUPIED',
        `key reference ${keyRef} is already in use; delete that key first or choose another`,
      );
    }
  }

  /**
   * KEY_ID_IN_USE when a key description (C4xx) on the device already carries `id`: two keys with
   * one PKCS#15 ID (CKA_ID) confuse every PKCS#11 application (OpenSC refuses it as well).
   */
  private async checkFreeId(id: Uint8Array, fids: number[], except?: number): Promise<void> {
    for (const fid of fids) {
      if (fid >> 8 !== PREFIX.PRKD || (fid & 0xff) === except) continue;
      let other: Uint8Array | undefined = this.keyCache.get(fid & 0xff)?.description?.id;
      if (!other) {
        try {
          other = decodeKeyDescription(await this.files.read(fid)).id;
        } catch (e) {
          if (!(e instanceof ScHsmError && e.code === 'MALFORMED_DATA')) throw e;
        }
      }
      if (other && bytesEqual(other, id)) {
        throw new ScHsmError(
          'KEY_ID_IN_USE',
          `the key ID ${toHex(id)} is already the ID of key reference ${fid & 0xff}; two keys with one ID confuse PKCS#11 applications. Nothing was sent.`,
        );
      }
    }
  }

  /** The 7F49 template of a key generation request (spec §3.11). */
  private static requestPublicKey(spec: KeyPairSpec): { pk: CvcPublicKey; curve?: CurveInfo } {
    if (spec.type === 'rsa') {
      checkRsaBits(spec.bits);
      const e = spec.publicExponent ?? 65537;
      if (!Number.isInteger(e) || e < 3 || e % 2 === 0 || e > 0xffffffff) {
        throw new ScHsmError(
          'INVALID_ARGUMENT',
          `the RSA public exponent must be an odd integer ≥ 3; got ${e}`,
        );
      }
      let exp = uintBE(e, 4);
      while (exp.length > 1 && exp[0] === 0) exp = exp.subarray(1);
      return { pk: { oid: OID.TA_RSA_V15_SHA256, exponent: exp, keySize: spec.bits } };
    }
    const curve = curveByName(spec.curve);
    const p = curveParams(curve);
    return {
      curve,
      pk: { oid: OID.TA_ECDSA_SHA256, p: p.p, a: p.a, b: p.b, g: p.g, n: p.n, cofactor: p.h },
    };
  }

  /**
   * GENERATE ASYMMETRIC KEY PAIR (spec §3.11), then the private key description in C4xx the way
   * OpenSC writes it, so that `pkcs15-tool --dump` and PKCS#11 applications see the key. The user
   * PIN must be verified.
   */
  async generateKeyPair(spec: KeyPairSpec): Promise<GeneratedKey> {
    checkObject(spec, 'the key pair spec', {
      type: 'string',
      label: 'string',
      id: 'bytes',
      keyRef: 'number',
      bits: 'number',
      curve: 'string',
      publicExponent: 'number',
      algorithms: 'bytes',
    });
    checkOneOf(spec.type, ['rsa', 'ec'], 'the key pair type (spec.type)');
    if (spec.type === 'ec' && typeof spec.curve !== 'string') {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `the curve (spec.curve) must be a name such as "prime256v1"; got ${typeName(spec.curve)}`,
      );
    }
    if (spec.keyRef !== undefined) checkKeyRef(spec.keyRef, 'the key reference (spec.keyRef)');
    checkLabel(spec.label, 'key label');
    if (spec.id !== undefined && (spec.id.length < 1 || spec.id.length > 255)) {
      throw new ScHsmError('INVALID_ARGUMENT', 'a key ID must be 1 to 255 bytes');
    }
    const { pk, curve } = SmartCardHsm.requestPublicKey(spec);
    if (spec.algorithms && (spec.algorithms.length < 1 || spec.algorithms.length > 16)) {
      throw new ScHsmError('INVALID_ARGUMENT', 'an allowed-algorithm list has 1 to 16 entries');
    }
    return this.channel.exclusive(async () => {
      const fids = await this.files.enumerate();
      const keyRef = spec.keyRef ?? (await this.freeKeyRef(fids));
      await this.checkFreeRef(keyRef, fids);
      if (spec.id) await this.checkFreeId(spec.id, fids);
      const serial = ((await this.deviceChr()) ?? 'UTDUMMY00000').slice(0, -5);
      const body = readTlv(encodeCvcBody({ car: REQUEST_CAR, publicKey: pk, chr: `${serial}00001` })).value;
      const data = spec.algorithms ? concat(body, tlv(0x91, spec.algorithms)) : body;
      // From here on the card may hold a new key whatever happens: a failure says so.
      const creation: CreationContext = {
        command: 'GENERATE ASYMMETRIC KEY PAIR',
        keyRef,
        label: spec.label,
        stage: 'sent',
      };
      try {
        const r = await this.channel.exchange(
          {
            cla: CLA_ISO,
            ins: INS.GENERATE_ASYMMETRIC_KEY_PAIR,
            p1: keyRef,
            p2: 0,
            data,
            ne: 65536,
            extended: true,
          },
          'GENERATE ASYMMETRIC KEY PAIR',
          {
            overrides: {
              0x6982: ['SECURITY_STATUS', 'key generation needs the user PIN: verify it first'],
              0x6a80: ['INCORRECT_DATA', 'the card rejected the key generation request'],
              0x6985: [
                'DKEK_INCOMPLETE',
                'the device refuses new keys while DKEK shares are outstanding: import them first',
              ],
              0x6a89: ['KEY_REF_OCCUPIED', `key reference ${keyRef} is already in use`],
              0x6a84: ['MEMORY_FULL', 'the device has no room for another key'],
            },
          },
        );
        creation.stage = 'created';
        const req = decodeCvRequest(r.data);
        const publicKey = cvcPublicKeyToSpki(req.certificate.publicKey);
        publicKeyObject(publicKey, 'key generation answer');
        const id = spec.id ?? intrinsicKeyId(publicKey);
        const description: KeyDescription = {
          kind: spec.type,
          label: spec.label,
          objectFlags: OBJECT_FLAGS.PRIVATE | OBJECT_FLAGS.MODIFIABLE,
          authId: Uint8Array.of(1),
          id,
          usage:
            spec.type === 'rsa'
              ? KEY_USAGE.DECRYPT | KEY_USAGE.SIGN | KEY_USAGE.SIGN_RECOVER
              : KEY_USAGE.SIGN | KEY_USAGE.SIGN_RECOVER | KEY_USAGE.DERIVE,
          keyReference: keyRef,
          bits: spec.type === 'rsa' ? spec.bits : curve!.bits,
        };
        await this.files.write((PREFIX.PRKD << 8) | keyRef, encodeKeyDescription(description));
        this.keyCache.delete(keyRef);
        return { keyRef, id, publicKey, request: r.data };
      } catch (e) {
        this.keyCache.delete(keyRef);
        throw afterCreationSent(e, creation);
      }
    });
  }

  /** GENERATE SYMMETRIC KEY for AES (spec §3.12) with its secret key description. */
  async generateAesKey(spec: {
    bits: 128 | 192 | 256;
    label: string;
    id?: Uint8Array;
    keyRef?: number;
    algorithms?: Uint8Array;
  }): Promise<{ keyRef: number; id: Uint8Array }> {
    checkObject(spec, 'the AES key spec', {
      bits: 'number',
      label: 'string',
      id: 'bytes',
      keyRef: 'number',
      algorithms: 'bytes',
    });
    if (spec.keyRef !== undefined) checkKeyRef(spec.keyRef, 'the key reference (spec.keyRef)');
    if (spec.id !== undefined) checkBytes(spec.id, 'the key ID (spec.id)', 1, 255);
    if (spec.algorithms !== undefined) checkBytes(spec.algorithms, 'the allowed-algorithm list', 1, 16);
    checkLabel(spec.label, 'key label');
    const p2 = AES_KEYGEN_ALGO[spec.bits];
    if (p2 === undefined)
      throw new ScHsmError('INVALID_ARGUMENT', `unsupported AES key size ${spec.bits}; use 128, 192 or 256`);
    const algorithms =
      spec.algorithms ??
      Uint8Array.of(ALGO.AES_CBC_ENCRYPT, ALGO.AES_CBC_DECRYPT, ALGO.AES_CMAC, ALGO.AES_DERIVE);
    return this.channel.exclusive(async () => {
      const fids = await this.files.enumerate();
      const keyRef = spec.keyRef ?? (await this.freeKeyRef(fids));
      await this.checkFreeRef(keyRef, fids);
      await this.checkFreeId(spec.id ?? Uint8Array.of(keyRef), fids);
      // From here on the card may hold a new key whatever happens: a failure says so.
      const creation: CreationContext = {
        command: 'GENERATE SYMMETRIC KEY',
        keyRef,
        label: spec.label,
        stage: 'sent',
      };
      try {
        await this.channel.exchange(
          { cla: CLA_ISO, ins: INS.GENERATE_SYMMETRIC_KEY, p1: keyRef, p2, data: tlv(0x91, algorithms) },
          'GENERATE SYMMETRIC KEY',
          {
            overrides: {
              0x6982: ['SECURITY_STATUS', 'key generation needs the user PIN: verify it first'],
              0x6985: [
                'DKEK_INCOMPLETE',
                'the device refuses new keys while DKEK shares are outstanding: import them first',
              ],
              0x6a84: ['MEMORY_FULL', 'the device has no room for another key'],
            },
          },
        );
        creation.stage = 'created';
        const id = spec.id ?? Uint8Array.of(keyRef);
        await this.files.write(
          (PREFIX.PRKD << 8) | keyRef,
          encodeKeyDescription({
            kind: 'aes',
            label: spec.label,
            objectFlags: OBJECT_FLAGS.PRIVATE | OBJECT_FLAGS.MODIFIABLE,
            authId: Uint8Array.of(1),
            id,
            usage: KEY_USAGE.ENCRYPT | KEY_USAGE.DECRYPT | KEY_USAGE.DERIVE,
            keyReference: keyRef,
            bits: spec.bits,
          }),
        );
        this.keyCache.delete(keyRef);
        return { keyRef, id };
      } catch (e) {
        this.keyCache.delete(keyRef);
        throw afterCreationSent(e, creation);
      }
    });
  }

  private async keyInfoFromFiles(keyRef: number, fids: number[]): Promise<KeyInfo | undefined> {
    const prkdFid = (PREFIX.PRKD << 8) | keyRef;
    const ceFid = (PREFIX.EE_CERTIFICATE << 8) | keyRef;
    let description: KeyDescription | undefined;
    if (fids.includes(prkdFid)) {
      try {
        description = decodeKeyDescription(await this.files.read(prkdFid));
      } catch (e) {
        if (!(e instanceof ScHsmError && e.code === 'MALFORMED_DATA')) throw e;
      }
    }
    let publicKey: Uint8Array | undefined;
    let hasCertificate = false;
    let curve: CurveName | undefined;
    let bits = description?.bits ?? 0;
    let type: KeyType | undefined = description?.kind;
    if (fids.includes(ceFid)) {
      const ce = await this.files.read(ceFid);
      try {
        if (ce[0] === 0x30) {
          hasCertificate = true;
          publicKey = certificateSpki(ce);
        } else if (ce[0] === 0x67 || ce[0] === 0x7f) {
          publicKey = cvcPublicKeyToSpki(decodeCvRequest(ce).certificate.publicKey);
        }
        if (publicKey) publicKeyObject(publicKey);
      } catch {
        // an unreadable CExx does not hide the key: it is listed without a public key
        publicKey = undefined;
      }
    }
    if (publicKey) {
      const k = publicKeyObject(publicKey);
      if (k.asymmetricKeyType === 'rsa') {
        type = 'rsa';
        bits = k.asymmetricKeyDetails?.modulusLength ?? bits;
      } else if (k.asymmetricKeyType === 'ec') {
        type = 'ec';
        const named = k.asymmetricKeyDetails?.namedCurve;
        const c = named ? safeCurve(named) : undefined;
        if (c) {
          curve = c.name;
          bits = c.bits;
        }
      }
    }
    if (!type) return undefined;
    const info: KeyInfo = {
      keyRef,
      id: description?.id ?? Uint8Array.of(keyRef),
      type,
      bits,
      usage: description?.usage ?? 0,
      hasCertificate,
    };
    if (description?.label !== undefined) info.label = description.label;
    if (curve) info.curve = curve;
    if (description?.access !== undefined) info.access = description.access;
    if (publicKey) info.publicKey = publicKey;
    if (description) info.description = description;
    return info;
  }

  /** Every key on the device (key id 0, the device key, excluded), with label, reference and ID side by side. */
  async listKeys(): Promise<KeyInfo[]> {
    return this.channel.exclusive(async () => {
      const fids = await this.files.enumerate();
      const refs = fids.filter((f) => f >> 8 === PREFIX.KEY && (f & 0xff) !== 0).map((f) => f & 0xff);
      const out: KeyInfo[] = [];
      for (const ref of refs.sort((a, b) => a - b)) {
        const info = await this.keyInfoFromFiles(ref, fids);
        if (info) {
          this.keyCache.set(ref, info);
          out.push(info);
        } else {
          // a key object without description or public key: its type cannot be known
          out.push({
            keyRef: ref,
            id: Uint8Array.of(ref),
            type: 'unknown',
            bits: 0,
            usage: 0,
            hasCertificate: false,
          });
        }
      }
      return out;
    });
  }

  /** One key's information (cached after the first read in this session). */
  async keyInfo(keyRef: number): Promise<KeyInfo> {
    checkKeyRef(keyRef);
    const cached = this.keyCache.get(keyRef);
    if (cached) return cached;
    return this.channel.exclusive(async () => {
      const fids = await this.files.enumerate();
      if (!fids.includes((PREFIX.KEY << 8) | keyRef)) {
        throw new ScHsmError('KEY_NOT_FOUND', `no key with key reference ${keyRef} on the device`);
      }
      const info = await this.keyInfoFromFiles(keyRef, fids);
      if (!info) {
        throw new ScHsmError(
          'KEY_NOT_FOUND',
          `key reference ${keyRef} has no readable description (C4) or public key (CE)`,
        );
      }
      this.keyCache.set(keyRef, info);
      return info;
    });
  }

  /** Deletes a key and its description and certificate (spec §10.4). */
  async deleteKey(keyRef: number): Promise<void> {
    checkKeyRef(keyRef);
    await this.channel.exclusive(async () => {
      try {
        await this.files.delete((PREFIX.KEY << 8) | keyRef);
      } catch (e) {
        if (e instanceof ScHsmError && e.code === 'FILE_NOT_FOUND') {
          throw new ScHsmError('KEY_NOT_FOUND', `no key with key reference ${keyRef} on the device`, {
            sw: e.sw,
            command: 'DELETE FILE',
          });
        }
        throw e;
      }
      await this.files.deleteIfExists((PREFIX.PRKD << 8) | keyRef);
      await this.files.deleteIfExists((PREFIX.EE_CERTIFICATE << 8) | keyRef);
      this.keyCache.delete(keyRef);
    });
  }

  private keyOpOverrides(keyRef: number) {
    return {
      0x6982: ['SECURITY_STATUS', 'the user PIN must be verified first'],
      0x6a88: ['KEY_NOT_FOUND', `no key with key reference ${keyRef}`],
      0x6a82: ['KEY_NOT_FOUND', `no key with key reference ${keyRef}`],
      0x6a81: ['ALGORITHM_NOT_ALLOWED', `key ${keyRef} does not allow this algorithm`],
      0x6984: ['CONDITIONS_NOT_SATISFIED', `the use counter of key ${keyRef} is exhausted`],
    } as const;
  }

  private async cardSign(keyRef: number, algo: number, data: Uint8Array): Promise<Uint8Array> {
    const r = await this.channel.exchange(
      { cla: CLA_PROPRIETARY, ins: INS.SIGN, p1: keyRef, p2: algo, data, ne: 512, extended: true },
      'SIGN',
      { overrides: this.keyOpOverrides(keyRef) as never },
    );
    return r.data;
  }

  /**
   * SIGN (spec §3.13). ECDSA answers DER (`format: 'raw'` gives r‖s); hashing and RSA PKCS#1 v1.5
   * padding happen on the host (algorithms 70 and 20, as OpenSC does), PSS on the card (40).
   */
  async sign(
    keyRef: number,
    mechanism: SignMechanism,
    data: Uint8Array,
    opts: { format?: 'der' | 'raw' } = {},
  ): Promise<Uint8Array> {
    checkKeyRef(keyRef);
    checkBytes(data, 'the data to sign');
    checkObject(opts, 'the sign options', { format: 'string' });
    if (opts.format !== undefined) checkOneOf(opts.format, ['der', 'raw'], 'the signature format');
    const [family, pad, hashSuffix] = parseMechanism(mechanism);
    const key = this.keyCache.get(keyRef) ?? (await this.keyInfo(keyRef));
    if (family === 'ECDSA') {
      if (key.type !== 'ec')
        throw new ScHsmError('INVALID_ARGUMENT', `key ${keyRef} is ${key.type.toUpperCase()}, not EC`);
      let hash = hashSuffix ? hashOf(hashSuffix, data) : data;
      const size = Math.ceil(key.bits / 8);
      if (hash.length > size) hash = hash.subarray(0, size);
      const der = await this.cardSign(keyRef, ALGO.ECDSA, hash);
      if (opts.format === 'raw') {
        return ecdsaDerToPlain(der, size);
      }
      return der;
    }
    if (key.type !== 'rsa')
      throw new ScHsmError('INVALID_ARGUMENT', `key ${keyRef} is ${key.type.toUpperCase()}, not RSA`);
    const k = key.bits / 8;
    if (pad === 'RAW') {
      if (data.length !== k)
        throw new ScHsmError('INVALID_ARGUMENT', `RSA-RAW needs exactly ${k} bytes; got ${data.length}`);
      return this.cardSign(keyRef, ALGO.RSA_RAW, data);
    }
    if (pad === 'PKCS1') {
      const di = hashSuffix ? digestInfo(hashSuffix, hashOf(hashSuffix, data)) : data;
      return padStart(await this.cardSign(keyRef, ALGO.RSA_RAW, pkcs1SignaturePad(di, k)), k);
    }
    // PSS: the card pads (salt length = hash length); it takes the bare hash
    let hash: Uint8Array;
    if (hashSuffix) hash = hashOf(hashSuffix, data);
    else {
      const inner = parseDigestInfo(data);
      hash = inner ? inner.digest : data;
      if (!hashByLength(hash.length)) {
        throw new ScHsmError(
          'INVALID_ARGUMENT',
          `RSA-PSS expects a SHA-1/224/256/384/512 hash; got ${data.length} bytes`,
        );
      }
    }
    return padStart(await this.cardSign(keyRef, ALGO.RSA_PSS, hash), k);
  }

  /** DECIPHER with an RSA key (spec §3.14): raw on the card (21), padding removed on the host. */
  async decrypt(keyRef: number, mechanism: DecryptMechanism, cryptogram: Uint8Array): Promise<Uint8Array> {
    checkKeyRef(keyRef);
    checkOneOf(
      mechanism,
      ['RSA-RAW', 'RSA-PKCS1', 'RSA-OAEP-SHA1', 'RSA-OAEP-SHA256'],
      'the decryption mechanism',
    );
    checkBytes(cryptogram, 'the cryptogram');
    const key = await this.keyInfo(keyRef);
    if (key.type !== 'rsa')
      throw new ScHsmError('INVALID_ARGUMENT', `key ${keyRef} is ${key.type.toUpperCase()}, not RSA`);
    const k = key.bits / 8;
    if (cryptogram.length !== k) {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `the cryptogram for a ${key.bits}-bit key is ${k} bytes; got ${cryptogram.length}`,
      );
    }
    const r = await this.channel.exchange(
      {
        cla: CLA_PROPRIETARY,
        ins: INS.DECIPHER,
        p1: keyRef,
        p2: ALGO.RSA_DECRYPT_RAW,
        data: cryptogram,
        ne: 512,
        extended: true,
      },
      'DECIPHER',
      { overrides: this.keyOpOverrides(keyRef) as never },
    );
    const block = padStart(r.data, k);
    if (mechanism === 'RSA-RAW') return block;
    if (mechanism === 'RSA-PKCS1') return pkcs1DecryptionUnpad(block);
    if (mechanism === 'RSA-OAEP-SHA1') return oaepUnpad(block, 'sha1');
    if (mechanism === 'RSA-OAEP-SHA256') return oaepUnpad(block, 'sha256');
    throw new ScHsmError('INVALID_ARGUMENT', `unknown decryption mechanism ${mechanism as string}`);
  }

  /**
   * ECDH (DECIPHER algorithm 80, spec §3.14) with the peer's public key (SPKI DER or an
   * uncompressed point). Returns the shared secret: the X coordinate, field length bytes.
   */
  async ecdh(keyRef: number, peer: Uint8Array): Promise<Uint8Array> {
    checkKeyRef(keyRef);
    checkBytes(peer, "the peer's public key", 1);
    const key = await this.keyInfo(keyRef);
    if (key.type !== 'ec')
      throw new ScHsmError('INVALID_ARGUMENT', `key ${keyRef} is ${key.type.toUpperCase()}, not EC`);
    const point = peer[0] === 0x04 ? peer : spkiPoint(peer);
    const size = Math.ceil(key.bits / 8);
    if (point.length !== 1 + 2 * size) {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `the peer point must be 04‖X‖Y of ${1 + 2 * size} bytes for this curve`,
      );
    }
    const r = await this.channel.exchange(
      {
        cla: CLA_PROPRIETARY,
        ins: INS.DECIPHER,
        p1: keyRef,
        p2: ALGO.ECDH,
        data: point,
        ne: 512,
        extended: true,
      },
      'DECIPHER (ECDH)',
      { overrides: this.keyOpOverrides(keyRef) as never },
    );
    // The card answers 04‖X (pico) or 04‖X‖Y: take bytes 1..1+fieldLen either way (spec §3.14).
    if (r.data.length < 1 + size)
      throw new ScHsmError('MALFORMED_RESPONSE', 'ECDH answer shorter than the field length');
    return r.data.slice(1, 1 + size);
  }

  // ---------------------------------------------------------------- wrap / unwrap

  /**
   * WRAP KEY (spec §3.16): the key blob encrypted under the DKEK. A blob made under the DKEK of 32
   * zero bytes (its KCV, the blob's first 8 bytes, is `66687AADF862BD77`) is wiped and refused
   * with DKEK_DEGENERATE: it would protect the key from nobody.
   */
  async wrapKey(keyRef: number): Promise<Uint8Array> {
    checkKeyRef(keyRef);
    const r = await this.channel.exchange(
      { cla: CLA_PROPRIETARY, ins: INS.WRAP_KEY, p1: keyRef, p2: ALGO.WRAP, ne: 65536, extended: true },
      'WRAP KEY',
      {
        overrides: {
          ...this.keyOpOverrides(keyRef),
          0x6d00: ['NO_DKEK', 'the device was not initialized for key wrapping (no DKEK)'],
          0x6985: [
            'DKEK_INCOMPLETE',
            'the DKEK is not complete (shares outstanding) or the key may not be exported',
          ],
          0x6a81: [
            'ALGORITHM_NOT_ALLOWED',
            `key ${keyRef} may not be wrapped (its algorithm list lacks WRAP)`,
          ],
        } as never,
      },
    );
    if (r.data.length >= 8 && isZeroDkekKcv(r.data.subarray(0, 8))) {
      const kcv = toHex(r.data.subarray(0, 8)).toUpperCase();
      wipe(r.data);
      throw new ScHsmError(
        'DKEK_DEGENERATE',
        `the device's DKEK is 32 zero bytes (key check value ${kcv}, its shares cancelled out): key ${keyRef} would be wrapped under a key anyone knows. The blob was discarded; re-initialize the device and import distinct DKEK shares.`,
        { command: 'WRAP KEY' },
      );
    }
    return r.data;
  }

  /**
   * UNWRAP KEY (spec §3.16) of a bare key blob onto `keyRef`. Checked before anything changes on
   * the device: the blob's structure, its KCV against the device's DKEK (a KCV the device shows as
   * zeros — firmware that reveals it only after login — is unknown, not a mismatch: the card then
   * checks), with `opts.dkek` its MAC on the host, and that the reference is free. With `force` a
   * key there is replaced so that a failure puts it back ({@link UnwrapOptions}); after the new key
   * is in, the description and certificate of the replaced key are removed.
   */
  async unwrapKey(keyRef: number, blob: Uint8Array, opts: UnwrapOptions = {}): Promise<void> {
    checkKeyRef(keyRef);
    checkObject(opts, 'the unwrap options', {
      force: 'boolean',
      allowKeyLoss: 'boolean',
      onReplaced: 'function',
      dkek: 'bytes',
      authenticate: 'function',
    });
    if (!(blob instanceof Uint8Array) || blob.length < 8 + 1 + 16)
      throw new ScHsmError('INVALID_KEY_BLOB', `a key blob of ${blob?.length ?? 0} bytes is too short`);
    await this.channel.exclusive(() => this.unwrapInto(keyRef, blob, undefined, opts));
  }

  /**
   * The checks, the safe replace and the UNWRAP of unwrapKey and restoreKey. `files` (restoreKey):
   * the description and certificate to write for the new key; a reference holding only some of
   * them then counts as occupied too.
   */
  private async unwrapInto(
    keyRef: number,
    blob: Uint8Array,
    files: { prkd?: Uint8Array; certificate?: Uint8Array } | undefined,
    opts: UnwrapOptions,
  ): Promise<void> {
    const dkek = await this.dkekStatus();
    if (!dkek)
      throw new ScHsmError(
        'NO_DKEK',
        'the device has no DKEK: initialize it with DKEK shares and import them first. Nothing was changed.',
      );
    if (dkek.outstanding > 0) {
      throw new ScHsmError(
        'DKEK_INCOMPLETE',
        `the device's DKEK still misses ${dkek.outstanding} share(s): import them first. Nothing was changed.`,
      );
    }
    // the blob's structure (and with the DKEK at hand its MAC) before anything changes
    const header = inspectKeyBlob(blob);
    if (opts.dkek) checkBlobOnHost(blob, opts.dkek);
    const mismatch = (device: Uint8Array, what = 'the wrapped key was made under') =>
      new ScHsmError(
        'KCV_MISMATCH',
        `${what} a different DKEK (key check value ${kcvHex(header.kcv)}, this device ${kcvHex(device)}). Nothing was changed.`,
      );
    // zeros from a complete DKEK: firmware that shows the KCV only after login (unknown, not a mismatch)
    let deviceKcv = dkekKcvUnknown(dkek) ? undefined : dkek.kcv;
    if (deviceKcv && !bytesEqual(header.kcv, deviceKcv)) throw mismatch(deviceKcv);
    const cc = (PREFIX.KEY << 8) | keyRef;
    const fids = await this.files.enumerate();
    const occupied = fids.includes(cc);
    if (!opts.force) {
      const used = [
        cc,
        ...(files ? [(PREFIX.PRKD << 8) | keyRef, (PREFIX.EE_CERTIFICATE << 8) | keyRef] : []),
      ];
      const taken = used.find((f) => fids.includes(f));
      if (taken !== undefined) {
        throw new ScHsmError(
          'KEY_REF_OCCUPIED',
          `key reference ${keyRef} is in use (file ${taken.toString(16).toUpperCase()} exists); choose a free one or use force to replace it. Nothing was changed.`,
          { keyRef },
        );
      }
    }
    // A forced replace keeps a way back: the old key wrapped (with its description and
    // certificate) before anything is deleted. The card has no rename, so this is the only one.
    let saved: Uint8Array | undefined;
    if (occupied) {
      try {
        saved = await this.backupKey(keyRef);
      } catch (e) {
        if (!isScHsmError(e, 'ALGORITHM_NOT_ALLOWED')) throw e;
        if (!opts.allowKeyLoss) {
          throw new ScHsmError(
            'REPLACE_UNSAFE',
            `the key at key reference ${keyRef} may not be wrapped (its algorithm list lacks WRAP), so it could not be put back if the new key were refused: it is not replaced. Nothing was changed.`,
            {
              keyRef,
              fix: 'choose a free key reference; or, only if that key may be lost, delete it first (sc-hsm-ts delete-key)',
            },
          );
        }
      }
      if (saved) {
        // WRAP KEY used the device's own DKEK: its KCV, also where the status shows zeros
        const oldKcv = decodeWrapFile(saved).blob.subarray(0, 8);
        deviceKcv ??= oldKcv;
        if (!bytesEqual(header.kcv, oldKcv)) throw mismatch(oldKcv);
        const w = decodeWrapFile(saved);
        const r: ReplacedKey = { keyRef, bin: saved };
        if (w.label !== undefined) r.label = w.label;
        if (w.id) r.id = w.id;
        await opts.onReplaced?.(r);
      }
    }
    let phase: ReplacePhase = 'delete-old';
    try {
      if (occupied) await this.files.delete(cc);
      phase = 'unwrap-new';
      await this.unwrapCommand(keyRef, blob);
      phase = 'describe-new';
      const c4 = (PREFIX.PRKD << 8) | keyRef;
      const ce = (PREFIX.EE_CERTIFICATE << 8) | keyRef;
      if (files) {
        if (files.prkd) await this.files.write(c4, files.prkd);
        else await this.files.deleteIfExists(c4);
        if (files.certificate) await this.files.write(ce, files.certificate);
        else await this.files.deleteIfExists(ce);
      } else if (occupied) {
        // they described the key that was replaced
        await this.files.deleteIfExists(c4);
        await this.files.deleteIfExists(ce);
      }
    } catch (e) {
      if (!occupied) throw e;
      throw await this.putBack(keyRef, saved, phase, e, opts.authenticate);
    } finally {
      this.keyCache.delete(keyRef);
    }
  }

  /**
   * After a forced replace failed at `phase`: puts the old key (`saved`, its `.bin` from
   * backupKey) back at `keyRef` with its description and certificate, and returns the error to
   * throw — `cause` saying the key was left or put back as it was, or a KeyReplaceError saying
   * exactly what is lost. What the reference holds is read from the card (the answer to the last
   * command may have been lost); a PIN the card forgot (reset) is verified again with
   * `authenticate`, once.
   */
  private async putBack(
    keyRef: number,
    saved: Uint8Array | undefined,
    phase: ReplacePhase,
    cause: unknown,
    authenticate: (() => Promise<void>) | undefined,
  ): Promise<ScHsmError> {
    const cc = (PREFIX.KEY << 8) | keyRef;
    const c4 = (PREFIX.PRKD << 8) | keyRef;
    const ce = (PREFIX.EE_CERTIFICATE << 8) | keyRef;
    const old = saved ? decodeWrapFile(saved) : undefined;
    // the key a present CCxx is: that of the last command which may have put one there
    let last: 'delete-old' | 'unwrap-new' | 'delete-new' | 'unwrap-old' =
      phase === 'delete-old' ? 'delete-old' : 'unwrap-new';
    let holds: 'old' | 'new' | 'none' | 'unknown' = 'unknown';
    let describedOld = phase !== 'describe-new';
    let failure: unknown;
    let reauthenticated = false;
    for (;;) {
      try {
        const present = (await this.files.enumerate()).includes(cc);
        holds = !present ? 'none' : last === 'delete-old' || last === 'unwrap-old' ? 'old' : 'new';
        if (old && holds === 'new') {
          last = 'delete-new';
          await this.files.delete(cc);
          holds = 'none';
        }
        if (old && holds === 'none') {
          last = 'unwrap-old';
          await this.unwrapCommand(keyRef, old.blob);
          holds = 'old';
        }
        if (old && holds === 'old' && !describedOld) {
          if (old.prkd) await this.files.write(c4, old.prkd);
          else await this.files.deleteIfExists(c4);
          if (old.certificate) await this.files.write(ce, old.certificate);
          else await this.files.deleteIfExists(ce);
          describedOld = true;
        }
        failure = undefined;
        break;
      } catch (e) {
        failure = e;
        if (holds === 'none' && last === 'delete-new') holds = 'unknown';
        const forgotPin = isScHsmError(e, 'SECURITY_STATUS') || isScHsmError(e, 'CARD_RESET');
        if (!old || !forgotPin || reauthenticated || !authenticate) break;
        reauthenticated = true;
        try {
          await authenticate();
        } catch (e2) {
          failure = e2;
          break;
        }
      }
    }
    this.keyCache.delete(keyRef);
    const why = errorText(cause);
    const name = `key ${keyRef}${old?.label !== undefined ? ` ${JSON.stringify(old.label)}` : ''}${old?.id ? ` (ID ${toHex(old.id)})` : ''}`;
    if (holds === 'old' && describedOld) {
      return annotate(
        cause,
        last === 'delete-old'
          ? `The old ${name} was left as it was.`
          : `The old ${name} was put back as it was (from the copy wrapped before it was deleted).`,
        keyRef,
      );
    }
    const opt: KeyReplaceErrorOptions = { keyRef, cause, now: 'unknown' };
    if (saved) opt.oldKey = saved;
    if (holds === 'old') {
      opt.now = 'old-key-without-description';
      return new KeyReplaceError(
        isScHsmError(cause) ? cause.code : 'CARD_ERROR',
        `replacing ${name} failed (${why}); the old key was put back, but its description and certificate could not be rewritten (${errorText(failure)})`,
        {
          ...opt,
          fix: 'rewrite them from the old key’s wrapped copy: unwrap it with force onto the same key reference',
        },
      );
    }
    let rest: string;
    if (holds === 'none') {
      opt.now = 'empty';
      // no orphans: a description or certificate without its key makes the reference look used
      let cleared = true;
      try {
        await this.files.deleteIfExists(c4);
        await this.files.deleteIfExists(ce);
      } catch {
        cleared = false;
      }
      rest = cleared
        ? `key reference ${keyRef} is empty`
        : `key reference ${keyRef} holds no key, but its description or certificate file could not be removed`;
    } else if (holds === 'new') {
      opt.now = 'new-key';
      rest = `key reference ${keyRef} holds the new key, possibly without its description`;
    } else
      rest = `what key reference ${keyRef} holds could not be read (${errorText(failure)}): check with \`sc-hsm-ts keys\` once the device works again`;
    const back = saved
      ? holds === 'unknown'
        ? 'the old key could not be checked or put back'
        : `putting the old key back failed too (${errorText(failure)})`
      : 'it could not be wrapped first (its algorithm list lacks WRAP) and the loss was allowed';
    const lost =
      holds === 'unknown' && last === 'delete-old'
        ? 'the old key may still be on the device, or may have been deleted'
        : 'the old key is no longer on the device';
    return new KeyReplaceError(
      'KEY_LOST',
      `replacing ${name} failed (${why}) and ${back}: ${lost}; ${rest}`,
      {
        ...opt,
        fix: saved
          ? 'unwrap the old key’s wrapped copy (KeyReplaceError.oldKey) onto the same key reference with force, once the device works again'
          : 'restore the old key from a backup, if there is one',
      },
    );
  }

  /** UNWRAP KEY with the blob in the APDU, or through EF 2F10 where extended length is not available. */
  private async unwrapCommand(keyRef: number, blob: Uint8Array): Promise<void> {
    const cmd = { cla: CLA_PROPRIETARY, ins: INS.UNWRAP_KEY, p1: keyRef, p2: ALGO.UNWRAP } as const;
    const extended = this.transport.extendedLength !== false;
    if (!extended) await this.files.write(EF.UNWRAP_TRANSFER, blob, { replace: false });
    await this.channel.exchange(extended ? { ...cmd, data: blob, extended: true } : cmd, 'UNWRAP KEY', {
      overrides: {
        0x6982: ['SECURITY_STATUS', 'the user PIN must be verified first'],
        0x6a80: [
          'MAC_INVALID',
          'the card refused the wrapped key (it does not match the DKEK or is damaged)',
        ],
        0x6a89: ['KEY_REF_OCCUPIED', `key reference ${keyRef} is already in use`],
        0x6985: ['DKEK_INCOMPLETE', 'the DKEK is not complete'],
        0x6d00: ['NO_DKEK', 'the device has no DKEK'],
      },
    });
  }

  /** The `.bin` file of `sc-hsm-tool --wrap-key` for a key: blob, description and certificate (spec §8.2). */
  async backupKey(keyRef: number): Promise<Uint8Array> {
    checkKeyRef(keyRef);
    return this.channel.exclusive(async () => {
      const blob = await this.wrapKey(keyRef);
      try {
        inspectKeyBlob(blob);
      } catch (e) {
        throw new ScHsmError('MALFORMED_RESPONSE', `WRAP KEY answered a damaged key blob for key ${keyRef}`, {
          cause: e,
        });
      }
      const prkd = await this.files.readOptional((PREFIX.PRKD << 8) | keyRef);
      const cert = await this.files.readOptional((PREFIX.EE_CERTIFICATE << 8) | keyRef);
      const w: { blob: Uint8Array; prkd?: Uint8Array; certificate?: Uint8Array } = { blob };
      if (prkd?.length) w.prkd = prkd;
      if (cert?.length) w.certificate = cert;
      return encodeWrapFile(w);
    });
  }

  /**
   * Restores a `.bin` wrap file onto `keyRef`: UNWRAP KEY, then the key description (with its
   * key reference set to `keyRef`) and the certificate (spec §8.2). The checks and the safe forced
   * replace are those of {@link unwrapKey}; without `force`, a reference holding a description or
   * certificate counts as occupied too.
   */
  async restoreKey(bin: Uint8Array, keyRef: number, opts: UnwrapOptions = {}): Promise<void> {
    checkKeyRef(keyRef);
    checkObject(opts, 'the restore options', {
      force: 'boolean',
      allowKeyLoss: 'boolean',
      onReplaced: 'function',
      dkek: 'bytes',
      authenticate: 'function',
    });
    const w = decodeWrapFile(bin);
    const files: { prkd?: Uint8Array; certificate?: Uint8Array } = {};
    if (w.prkd) {
      files.prkd =
        w.keyDescription && w.keyDescription.keyReference !== keyRef
          ? encodeKeyDescription({ ...w.keyDescription, keyReference: keyRef })
          : w.prkd;
    }
    if (w.certificate) files.certificate = w.certificate;
    await this.channel.exclusive(() => this.unwrapInto(keyRef, w.blob, files, opts));
  }

  // ---------------------------------------------------------------- certificates and data objects

  /** Stores an X.509 certificate for a key in CExx (spec §6.4, §10.4). */
  async storeCertificate(keyRef: number, der: Uint8Array): Promise<void> {
    checkKeyRef(keyRef);
    checkBytes(der, 'the certificate', 1);
    certificateSpki(der);
    await this.files.write((PREFIX.EE_CERTIFICATE << 8) | keyRef, der);
    this.keyCache.delete(keyRef);
  }

  /** The X.509 certificate stored for a key, or undefined when CExx holds none (only a CV request). */
  async readCertificate(keyRef: number): Promise<Uint8Array | undefined> {
    checkKeyRef(keyRef);
    const ce = await this.files.readOptional((PREFIX.EE_CERTIFICATE << 8) | keyRef);
    return ce && ce[0] === 0x30 ? ce : undefined;
  }

  private async freeObjectNumber(prefixes: number[], fids?: number[]): Promise<number> {
    const list = fids ?? (await this.files.enumerate());
    const used = new Set(list.filter((f) => prefixes.includes(f >> 8)).map((f) => f & 0xff));
    for (let i = 0; i <= 255; i++) if (!used.has(i)) return i;
    throw new ScHsmError('MEMORY_FULL', 'no free object number left');
  }

  /**
   * Stores a data object the way OpenSC does (spec §6.5): the data in CFxx (public) or CDxx
   * (readable only after the user PIN), its description in C9xx with the same number.
   */
  async writeDataObject(o: {
    label: string;
    data: Uint8Array;
    applicationName?: string;
    private?: boolean;
  }): Promise<{ number: number; fid: number }> {
    checkObject(o, 'the data object', {
      label: 'string',
      data: 'bytes',
      applicationName: 'string',
      private: 'boolean',
    });
    checkBytes(o.data, 'the data object content', 0, 0xffff);
    checkLabel(o.label, 'data object label');
    return this.channel.exclusive(async () => {
      const n = await this.freeObjectNumber([PREFIX.DCOD, PREFIX.DATA_PUBLIC, PREFIX.DATA_PRIVATE]);
      const fid = ((o.private ? PREFIX.DATA_PRIVATE : PREFIX.DATA_PUBLIC) << 8) | n;
      await this.files.write(fid, o.data);
      const d: DataObjectDescription = {
        label: o.label,
        objectFlags: o.private ? OBJECT_FLAGS.PRIVATE | OBJECT_FLAGS.MODIFIABLE : OBJECT_FLAGS.MODIFIABLE,
        path: uintBE(fid, 2),
      };
      if (o.private) d.authId = Uint8Array.of(1);
      if (o.applicationName !== undefined) d.applicationName = o.applicationName;
      await this.files.write((PREFIX.DCOD << 8) | n, encodeDataObjectDescription(d));
      return { number: n, fid };
    });
  }

  /** Every data object description (C9xx) with the file it points to. */
  async listDataObjects(): Promise<
    (DataObjectDescription & { number: number; fid: number; private: boolean })[]
  > {
    return this.channel.exclusive(async () => {
      const fids = await this.files.enumerate();
      const out: (DataObjectDescription & { number: number; fid: number; private: boolean })[] = [];
      for (const f of fids.filter((x) => x >> 8 === PREFIX.DCOD).sort((a, b) => a - b)) {
        const d = decodeDataObjectDescription(await this.files.read(f));
        const fid = d.path.length >= 2 ? (d.path[d.path.length - 2]! << 8) | d.path[d.path.length - 1]! : 0;
        out.push({ ...d, number: f & 0xff, fid, private: fid >> 8 === PREFIX.DATA_PRIVATE });
      }
      return out;
    });
  }

  /** Reads a data object by its number (CFxx, or CDxx which needs the user PIN). */
  async readDataObject(number: number): Promise<Uint8Array> {
    checkInt(number, 0, 255, 'a data object number');
    const d = decodeDataObjectDescription(await this.files.read((PREFIX.DCOD << 8) | number));
    const fid = (d.path[d.path.length - 2]! << 8) | d.path[d.path.length - 1]!;
    return this.files.read(fid);
  }

  /** Deletes a data object and its description. */
  async deleteDataObject(number: number): Promise<void> {
    checkInt(number, 0, 255, 'a data object number');
    await this.channel.exclusive(async () => {
      const d = decodeDataObjectDescription(await this.files.read((PREFIX.DCOD << 8) | number));
      const fid = (d.path[d.path.length - 2]! << 8) | d.path[d.path.length - 1]!;
      await this.files.deleteIfExists(fid);
      await this.files.delete((PREFIX.DCOD << 8) | number);
    });
  }

  /** Stores a CA certificate in CAxx with its description in C8xx, as OpenSC does (spec §6.4). */
  async storeCaCertificate(
    der: Uint8Array,
    o: { label: string; id: Uint8Array },
  ): Promise<{ number: number }> {
    checkBytes(der, 'the certificate', 1);
    checkObject(o, 'the certificate description', { label: 'string', id: 'bytes' });
    checkBytes(o.id, 'the certificate ID', 1, 255);
    checkLabel(o.label, 'certificate label');
    certificateSpki(der);
    return this.channel.exclusive(async () => {
      const n = await this.freeObjectNumber([PREFIX.CA_CERTIFICATE, PREFIX.CD]);
      const fid = (PREFIX.CA_CERTIFICATE << 8) | n;
      await this.files.write(fid, der);
      await this.files.write(
        (PREFIX.CD << 8) | n,
        encodeCertificateDescription({
          label: o.label,
          objectFlags: OBJECT_FLAGS.MODIFIABLE,
          id: o.id,
          path: uintBE(fid, 2),
        }),
      );
      return { number: n };
    });
  }

  /** CA certificates with their descriptions (C8xx → CAxx). */
  async listCaCertificates(): Promise<
    (CertificateDescription & { number: number; certificate: Uint8Array })[]
  > {
    return this.channel.exclusive(async () => {
      const fids = await this.files.enumerate();
      const out: (CertificateDescription & { number: number; certificate: Uint8Array })[] = [];
      for (const f of fids.filter((x) => x >> 8 === PREFIX.CD).sort((a, b) => a - b)) {
        const d = decodeCertificateDescription(await this.files.read(f));
        const fid = (d.path[d.path.length - 2]! << 8) | d.path[d.path.length - 1]!;
        out.push({ ...d, number: f & 0xff, certificate: await this.files.read(fid) });
      }
      return out;
    });
  }

  get apduCount(): number {
    return this.channel.apduCount;
  }
}

function safeCurve(name: string): CurveInfo | undefined {
  try {
    return curveByName(name);
  } catch {
    return undefined;
  }
}

/** SubjectPublicKeyInfo of an X.509 certificate (tbsCertificate field 7, after the optional version). */
export function certificateSpki(der: Uint8Array): Uint8Array {
  try {
    const tbs = readAll(readTlv(der).value)[0]!;
    const fields = readAll(tbs.value);
    const offset = fields[0]!.tag === 0xa0 ? 1 : 0;
    const spki = fields[offset + 5]!;
    if (spki.tag !== 0x30) throw new Error('no SPKI');
    return tbs.value.slice(spki.start, spki.end);
  } catch (e) {
    throw new ScHsmError('MALFORMED_DATA', 'not a DER X.509 certificate', { cause: e });
  }
}

function parseMechanism(
  m: SignMechanism,
): ['ECDSA' | 'RSA', 'RAW' | 'PKCS1' | 'PSS' | undefined, HashName | undefined] {
  if (typeof m !== 'string') {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `the signature mechanism must be a name such as "ECDSA-SHA256"; got ${typeName(m)}`,
    );
  }
  const parts = m.split('-');
  if (parts[0] === 'ECDSA') {
    const h = parts[1] ? HASH_OF_SUFFIX[parts[1]] : undefined;
    if (parts[1] && !h) throw new ScHsmError('INVALID_ARGUMENT', `unknown mechanism ${m}`);
    return ['ECDSA', undefined, h];
  }
  if (parts[0] === 'RSA' && (parts[1] === 'RAW' || parts[1] === 'PKCS1' || parts[1] === 'PSS')) {
    const h = parts[2] ? HASH_OF_SUFFIX[parts[2]] : undefined;
    if (parts[2] && !h) throw new ScHsmError('INVALID_ARGUMENT', `unknown mechanism ${m}`);
    if (parts[1] === 'RAW' && parts[2]) throw new ScHsmError('INVALID_ARGUMENT', `unknown mechanism ${m}`);
    return ['RSA', parts[1], h];
  }
  throw new ScHsmError('INVALID_ARGUMENT', `unknown signature mechanism "${m}"`);
}

// ---------------------------------------------------------------- unwrap and safe replace

/** Options of unwrapKey and restoreKey. */
export interface UnwrapOptions {
  /**
   * Replace a key at the key reference (otherwise KEY_REF_OCCUPIED). The old key is first wrapped
   * with its description and certificate (WRAP KEY, like backupKey); if anything fails after it was
   * deleted, that copy is unwrapped back and its files rewritten. Only if even that fails is a
   * KeyReplaceError (KEY_LOST) thrown, carrying the copy. A key that may not be wrapped is not
   * replaced (REPLACE_UNSAFE) unless `allowKeyLoss`.
   */
  force?: boolean;
  /** With `force`: replace also a key that cannot be wrapped first; it is lost if the new key is then refused. */
  allowKeyLoss?: boolean;
  /**
   * With `force`: called with the old key's wrapped copy before the old key is deleted, e.g. to
   * write it to a file; a throw stops the replace with nothing changed.
   */
  onReplaced?: (old: ReplacedKey) => void | Promise<void>;
  /**
   * The device's DKEK (32 bytes, left to the caller): the blob's KCV, MAC and key are then checked
   * on the host before anything is sent (KCV_MISMATCH, MAC_INVALID, INVALID_KEY_BLOB).
   */
  dkek?: Uint8Array;
  /**
   * Verifies the user PIN again: used only while an old key is being put back, when the card
   * forgot the PIN (it was reset during the replace).
   */
  authenticate?: () => Promise<void>;
}

/** The key a forced replace removes: its `.bin` wrap file (blob under the device's DKEK, description, certificate). */
export interface ReplacedKey {
  keyRef: number;
  bin: Uint8Array;
  label?: string;
  id?: Uint8Array;
}

/** Where a forced replace was when it failed. */
type ReplacePhase = 'delete-old' | 'unwrap-new' | 'describe-new';

export interface KeyReplaceErrorOptions extends ScHsmErrorOptions {
  /** What the key reference holds now. */
  now: KeyReplaceError['now'];
  oldKey?: Uint8Array;
}

/**
 * A forced replace that failed and could not undo everything: `KEY_LOST` when the old key is no
 * longer on the device; otherwise (the old key is back but its description or certificate is not)
 * the code of the failure. `oldKey` is the old key's `.bin`, wrapped before it was deleted:
 * `restoreKey(oldKey, keyRef, { force: true })` puts it back.
 */
export class KeyReplaceError extends ScHsmError {
  readonly oldKey?: Uint8Array;
  readonly now: 'empty' | 'new-key' | 'old-key-without-description' | 'unknown';
  constructor(code: ScHsmErrorCode, message: string, o: KeyReplaceErrorOptions) {
    super(code, message, o);
    this.now = o.now;
    if (o.oldKey) this.oldKey = o.oldKey;
  }
}

/**
 * A complete DKEK whose status shows an all-zero KCV: firmware that reveals the KCV only after
 * the user PIN was verified (pico-hsm). The KCV is unknown then, never a mismatch: verify the PIN
 * and read it again. (No DKEK has an all-zero KCV: that of the all-zero DKEK is 66687AADF862BD77.)
 */
export function dkekKcvUnknown(d: DkekStatus): boolean {
  return d.outstanding === 0 && d.kcv.every((b) => b === 0);
}

function kcvHex(kcv: Uint8Array): string {
  return toHex(kcv).toUpperCase();
}

function errorText(e: unknown): string {
  return ((e as Error)?.message ?? String(e)).replace(/\.\s*$/, '');
}

/** `e` with `note` added to its message (same code, status word and command). */
function annotate(e: unknown, note: string, keyRef?: number): ScHsmError {
  const o: ScHsmErrorOptions = { cause: e };
  if (keyRef !== undefined) o.keyRef = keyRef;
  if (!(e instanceof ScHsmError)) return new ScHsmError('CARD_ERROR', `${errorText(e)}. ${note}`, o);
  if (e.sw !== undefined) o.sw = e.sw;
  if (e.command !== undefined) o.command = e.command;
  if (e.fix !== undefined) o.fix = e.fix;
  return new ScHsmError(e.code, `${errorText(e)}. ${note}`, o);
}

/** The blob decrypted with the caller's DKEK (KCV, MAC, key), the key material wiped. */
function checkBlobOnHost(blob: Uint8Array, dkek: Uint8Array): void {
  try {
    const d = decryptKeyBlob(blob, dkek);
    if (d.pkcs8) wipe(d.pkcs8);
    if (d.aesKey) wipe(d.aesKey);
  } catch (e) {
    throw isScHsmError(e) ? annotate(e, 'Checked on the host: nothing was sent') : e;
  }
}

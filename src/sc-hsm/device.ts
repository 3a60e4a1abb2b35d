/**
 * The applet and the device as a whole: SELECT and its FCP (spec §1.3), the device certificates in
 * EF 2F02 (spec §5.3), the token label in EF.TokenInfo, and the status that bare `sc-hsm-tool`
 * shows (spec §1.4). Nothing here costs a PIN try.
 */
import { ApduChannel } from '../apdu/transport.js';
import { ScHsmError } from '../errors.js';
import {
  type CvCertificate,
  decodeDeviceCertificateFile,
  decodeDeviceCertificates,
  decodeTokenInfo,
} from '../pkcs15/index.js';
import { AID, CLA_ISO, EF, INS, PIN_SO, PIN_USER, SO_PIN_TRIES } from '../protocol/constants.js';
import { findTag, readTlv } from '../util/tlv.js';
import type { SessionContext } from './context.js';
import { type DkekStatus, dkekStatus } from './dkek.js';
import { pinStatus } from './pins.js';
import { type PkaStatus, pkaStatus } from './pka.js';
import { checkBytes, typeName } from './validate.js';

export interface AppletInfo {
  /** Firmware version from FCP tag 85 (spec §1.3). */
  version: { major: number; minor: number };
  /** Device option word (tag 85 bytes 0–1, firmware ≥ 2.0; spec §3.9). */
  options: number;
  /** Applet type byte (tag 85 byte len−3): 0 = "SmartCard-HSM Applet for JCOP". */
  type?: number;
  fcp: Uint8Array;
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
  /** The transport PIN is active: VERIFY answers 6984 until `pin change` (option 0002, spec §3.6). */
  transportPin: boolean;
  soPin: { triesLeft?: number; blocked: boolean };
  /** Public key authentication (spec §3.18), on a device initialized with it. */
  pka?: PkaStatus;
  /** Absent when the device has no DKEK configured. */
  dkek?: DkekStatus;
}

/** SELECT of the applet as OpenSC sends it (`00 A4 04 00 0B <AID> 00`), with the FCP parsed. */
export async function selectApplet(channel: ApduChannel): Promise<AppletInfo> {
  if (!(channel instanceof ApduChannel))
    throw new ScHsmError('INVALID_ARGUMENT', `the channel must be an ApduChannel; got ${typeName(channel)}`);
  const r = await channel.exchange(
    { cla: CLA_ISO, ins: INS.SELECT, p1: 0x04, p2: 0x00, data: AID, ne: 256 },
    'SELECT',
    {
      overrides: { 0x6a82: ['NOT_A_SMARTCARD_HSM', 'no SmartCard-HSM applet on this card'] },
    },
  );
  return parseFcp(r.data);
}

/** Firmware version and options from the FCP's tag 85 (spec §1.3). */
export function parseFcp(fcp: Uint8Array): AppletInfo {
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

/** The device CHR from the device certificate in EF 2F02 (read once a session). */
export async function deviceChr(ctx: SessionContext): Promise<string | undefined> {
  if (ctx.deviceChr === undefined) {
    const ef = await ctx.files.readOptional(EF.DEVICE_CERTIFICATES);
    if (!ef || ef.length === 0) return undefined;
    // tolerant: some implementations (pico-hsm) store the device certificate alone
    ctx.deviceChr = decodeDeviceCertificateFile(ef).device.chr;
  }
  return ctx.deviceChr;
}

/** EF 2F02: the device certificate and its issuer (spec §5.3). */
export async function deviceCertificates(
  ctx: SessionContext,
): Promise<{ device: CvCertificate; issuer: CvCertificate; raw: Uint8Array }> {
  const raw = await ctx.files.read(EF.DEVICE_CERTIFICATES);
  return { ...decodeDeviceCertificates(raw), raw };
}

/** The label in EF.TokenInfo (2F03), as OpenSC writes it. */
export async function label(ctx: SessionContext): Promise<string | undefined> {
  const ti = await ctx.files.readOptional(EF.TOKEN_INFO);
  if (!ti || ti.length === 0) return undefined;
  return decodeTokenInfo(ti).label;
}

/**
 * The device's status from free queries only: VERIFY without data for both PINs (spec §3.6),
 * EF 2F02, IMPORT DKEK SHARE without data (spec §3.10) and EF.TokenInfo.
 */
export async function status(ctx: SessionContext): Promise<DeviceStatus> {
  return ctx.channel.exclusive(async () => {
    const so = await pinStatus(ctx, PIN_SO);
    const initialized = so.state !== 'not-initialized';
    const user = initialized ? await pinStatus(ctx, PIN_USER) : { state: 'not-initialized' as const };
    const st: DeviceStatus = {
      initialized,
      version: ctx.info.version,
      options: ctx.info.options,
      userPin: {
        verified: user.state === 'verified',
        blocked: user.state === 'blocked',
        transportPin: user.state === 'transport-pin',
      },
      transportPin: user.state === 'transport-pin',
      soPin: { blocked: so.state === 'blocked' },
    };
    if (user.triesLeft !== undefined) st.userPin.triesLeft = user.triesLeft;
    if (so.triesLeft !== undefined) st.soPin.triesLeft = so.triesLeft;
    // A verified SO-PIN state is not something hosts use; the counter is full then.
    if (so.state === 'verified') st.soPin.triesLeft = SO_PIN_TRIES;
    const chr = await deviceChr(ctx);
    if (chr) {
      st.deviceChr = chr;
      st.serial = chr.length > 5 ? chr.slice(0, -5) : chr;
    }
    if (initialized) {
      const dkek = await dkekStatus(ctx);
      if (dkek) st.dkek = dkek;
      const text = await label(ctx);
      if (text !== undefined) st.label = text;
      const p = await pkaStatus(ctx);
      if (p) st.pka = p;
    }
    return st;
  });
}

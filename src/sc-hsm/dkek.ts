/**
 * The device key encryption key (DKEK): IMPORT DKEK SHARE (spec §3.10, sent as MANAGE KEY DOMAIN
 * `80 52 00 00`), with data to add a share, without to read the status. The card XORs whatever it
 * gets, so the host is the only guard against a DKEK anyone can compute.
 */
import { swHex } from '../apdu/status.js';
// the module itself, not the dkek barrel: a session that never wraps loads no share-file KDF
import { isZeroDkekKcv, keyCheckValue } from '../dkek/dkek.js';
import { ScHsmError } from '../errors.js';
import { CLA_PROPRIETARY, INS } from '../protocol/constants.js';
import { bytesEqual, toHex } from '../util/bytes.js';
import type { SessionContext } from './context.js';
import { checkObject } from './validate.js';

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

/**
 * A complete DKEK whose status shows an all-zero KCV: firmware that reveals the KCV only after
 * the user PIN was verified (pico-hsm). The KCV is unknown then, never a mismatch: verify the PIN
 * and read it again. (No DKEK has an all-zero KCV: that of the all-zero DKEK is 66687AADF862BD77.)
 */
export function dkekKcvUnknown(d: DkekStatus): boolean {
  return d.outstanding === 0 && d.kcv.every((b) => b === 0);
}

/** IMPORT DKEK SHARE without data (`80 52 00 00 00`): the DKEK's state; undefined when none is configured. */
export async function dkekStatus(ctx: SessionContext): Promise<DkekStatus | undefined> {
  const r = await ctx.channel.send({
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
  return parseDkekStatus(r.data);
}

/** The status answer: shares total, shares outstanding, KCV (spec §3.10). */
function parseDkekStatus(data: Uint8Array): DkekStatus {
  if (data.length < 10) {
    throw new ScHsmError('MALFORMED_RESPONSE', `DKEK status of ${data.length} bytes (expected at least 10)`);
  }
  const st: DkekStatus = { total: data[0]!, outstanding: data[1]!, kcv: data.slice(2, 10) };
  if (st.outstanding === 0 && isZeroDkekKcv(st.kcv)) st.allZero = true;
  return st;
}

/**
 * IMPORT DKEK SHARE with a 32-byte share (`80 52 00 00 20 <share> 00`, spec §3.10), after the
 * host's checks against a zero share and a repeated one; after the last share, the device's KCV
 * is checked for a degenerate DKEK.
 */
export async function importDkekShare(
  ctx: SessionContext,
  share: Uint8Array,
  opts: ImportDkekShareOptions = {},
): Promise<DkekStatus> {
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
  return ctx.channel.exclusive(async () => {
    const before = await dkekStatus(ctx);
    if (!before) throw new ScHsmError('NO_DKEK', `${noDkek}. Nothing was sent.`);
    if (before.outstanding === 0) {
      throw new ScHsmError(
        'CONDITIONS_NOT_SATISFIED',
        `all ${before.total} DKEK share(s) have already been imported. Nothing was sent.`,
      );
    }
    // what this session imported counts while the device's count agrees (no re-initialization since)
    const mine = ctx.importedShares;
    const imported = before.total - before.outstanding;
    if (!mine || mine.total !== before.total || mine.kcvs.length > imported) {
      ctx.importedShares = { total: before.total, kcvs: [] };
    }
    const ceremony = ctx.importedShares!;
    const known = [...ceremony.kcvs, ...(opts.importedShareKcvs ?? [])];
    if (known.some((k) => bytesEqual(k, kcv))) {
      throw new ScHsmError(
        'DKEK_SHARE_REPEATED',
        `this DKEK share (key check value ${toHex(kcv).toUpperCase()}) was already imported into this DKEK; importing it again would cancel it out. Nothing was sent.`,
      );
    }
    const r = await ctx.channel.exchange(
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
    const after = parseDkekStatus(r.data);
    ceremony.kcvs.push(kcv);
    if (after.outstanding === 0) refuseDegenerateDkek(after, [...known, kcv]);
    return after;
  });
}

/** After the last share: a DKEK anyone can compute is reported loudly (it is on the card already). */
function refuseDegenerateDkek(st: DkekStatus, shareKcvs: Uint8Array[]): void {
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

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
import { checkInt, checkObject } from './validate.js';

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

/** The status of one key domain (spec §3.10): its DKEK's state, and for an XKEK domain its UID. */
export interface KeyDomainStatus extends DkekStatus {
  domain: number;
  /** Key domain UID after the KCV: an XKEK (key agreement) domain, which sc-hsm-ts does not manage. */
  xkekUid?: Uint8Array;
}

export interface ImportDkekShareOptions {
  /** Key domain to import into (firmware 3.x, spec §3.10); default 0, the DKEK of INITIALIZE. */
  domain?: number;
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

/**
 * MANAGE KEY DOMAIN status of one domain (`80 52 00 <domain> 00`, spec §3.10): the status, or
 * `unused` (6A88: never created or deleted; also a card without domains and no DKEK, 6D00 on
 * domain 0), or `out-of-range` (6A86, or another refusal of a domain number ≠ 0 by firmware
 * without key domains).
 */
export async function queryKeyDomain(
  ctx: SessionContext,
  domain: number,
): Promise<KeyDomainStatus | 'unused' | 'out-of-range'> {
  const r = await ctx.channel.send({
    cla: CLA_PROPRIETARY,
    ins: INS.MANAGE_KEY_DOMAIN,
    p1: 0,
    p2: domain,
    ne: 256,
  });
  if (r.sw === 0x9000) {
    const st: KeyDomainStatus = { domain, ...parseDkekStatus(r.data) };
    if (r.data.length > 10) st.xkekUid = r.data.slice(10);
    return st;
  }
  if (r.sw === 0x6a88 || (domain === 0 && [0x6d00, 0x6b00, 0x6985].includes(r.sw))) return 'unused';
  if (r.sw === 0x6a86 || (domain !== 0 && [0x6d00, 0x6b00].includes(r.sw))) return 'out-of-range';
  throw new ScHsmError('CARD_ERROR', `key domain ${domain} status: unexpected SW ${swHex(r.sw)}`, {
    sw: r.sw,
    command: 'MANAGE KEY DOMAIN',
  });
}

/** The status answer: shares total, shares outstanding, KCV (spec §3.10). */
export function parseDkekStatus(data: Uint8Array): DkekStatus {
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
): Promise<KeyDomainStatus> {
  checkObject(opts, 'the import options', { importedShareKcvs: 'object', domain: 'number' });
  const domain = opts.domain ?? 0;
  checkInt(domain, 0, 254, 'the key domain');
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
  const noDkek =
    domain === 0
      ? 'the device was not initialized for DKEK shares (initialize with dkekShares ≥ 1)'
      : `key domain ${domain} has no DKEK domain (create it first: createKeyDomain)`;
  const where = domain === 0 ? 'DKEK' : `DKEK of key domain ${domain}`;
  return ctx.channel.exclusive(async () => {
    const q = await queryKeyDomain(ctx, domain);
    if (q === 'out-of-range') throw domainOutOfRange(domain);
    if (q === 'unused')
      throw new ScHsmError(domain === 0 ? 'NO_DKEK' : 'KEY_DOMAIN_UNUSED', `${noDkek}. Nothing was sent.`);
    if (q.xkekUid) throw xkekDomain(domain);
    const before = q;
    if (before.outstanding === 0) {
      throw new ScHsmError(
        'CONDITIONS_NOT_SATISFIED',
        `all ${before.total} share(s) of the ${where} have already been imported. Nothing was sent.`,
      );
    }
    // what this session imported counts while the device's count agrees (no re-initialization since)
    const mine = ctx.importedShares?.get(domain);
    const imported = before.total - before.outstanding;
    if (!mine || mine.total !== before.total || mine.kcvs.length > imported) {
      ctx.importedShares ??= new Map();
      ctx.importedShares.set(domain, { total: before.total, kcvs: [] });
    }
    const ceremony = ctx.importedShares!.get(domain)!;
    const known = [...ceremony.kcvs, ...(opts.importedShareKcvs ?? [])];
    if (known.some((k) => bytesEqual(k, kcv))) {
      throw new ScHsmError(
        'DKEK_SHARE_REPEATED',
        `this DKEK share (key check value ${toHex(kcv).toUpperCase()}) was already imported into this ${where}; importing it again would cancel it out. Nothing was sent.`,
      );
    }
    const r = await ctx.channel.exchange(
      { cla: CLA_PROPRIETARY, ins: INS.MANAGE_KEY_DOMAIN, p1: 0, p2: domain, data: share, ne: 256 },
      'IMPORT DKEK SHARE',
      {
        overrides: {
          0x6d00: ['NO_DKEK', noDkek],
          0x6a88: [domain === 0 ? 'NO_DKEK' : 'KEY_DOMAIN_UNUSED', noDkek],
          0x6985: ['CONDITIONS_NOT_SATISFIED', `all shares of the ${where} have already been imported`],
          0x6982: [
            'SECURITY_STATUS',
            `importing into key domain ${domain} needs the user PIN: verify it first`,
          ],
        },
      },
    );
    const after: KeyDomainStatus = { domain, ...parseDkekStatus(r.data) };
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

/** KEY_DOMAIN_OUT_OF_RANGE for `domain`: nothing was sent that changes anything. */
export function domainOutOfRange(domain: number): ScHsmError {
  return new ScHsmError(
    'KEY_DOMAIN_OUT_OF_RANGE',
    `the device has no key domain ${domain} (it was initialized with fewer key domains, or without any: only domain 0). Nothing was changed.`,
    {
      fix: 'choose a domain the device has (sc-hsm-ts domain status lists them), or initialize it with more key domains',
    },
  );
}

/** XKEK_NOT_SUPPORTED for `domain`. */
export function xkekDomain(domain: number): ScHsmError {
  return new ScHsmError(
    'XKEK_NOT_SUPPORTED',
    `key domain ${domain} is an XKEK domain (its key is agreed with a PKI-as-a-Service group key, not imported as DKEK shares); sc-hsm-ts does not manage XKEK domains. Nothing was changed.`,
    { fix: "manage it with CardContact's tools (Smart Card Shell), or use a DKEK domain" },
  );
}

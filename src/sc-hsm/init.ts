/**
 * INITIALIZE DEVICE (spec §3.9): PINs, retry counter, options, DKEK shares, public key
 * authentication and key domains in one TLV list; then the token label in EF.TokenInfo as OpenSC
 * writes it. Erases everything on the device.
 */
import { ScHsmError } from '../errors.js';
import { encodeTokenInfo } from '../pkcs15/index.js';
import { CLA_PROPRIETARY, EF, INIT_TAG, INS, OPTION, PIN_SO } from '../protocol/constants.js';
import { concat, uintBE, wipe } from '../util/bytes.js';
import { tlv } from '../util/tlv.js';
import type { SessionContext } from './context.js';
import { namePinError } from './pin-guard.js';
import { checkTries, pinStatus, sendVerify } from './pins.js';
import {
  checkInt,
  checkLabel,
  checkObject,
  checkRetryCounter,
  parseSoPin,
  parseUserPin,
} from './validate.js';

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
  /**
   * Public key authentication: N keys registered, M required (spec §3.18); they replace the user
   * PIN unless `combinedAuth` (option 0010) asks for both. The token label is then not written
   * (EF.TokenInfo needs the authenticated user), as with a transport PIN.
   */
  publicKeyAuth?: { total: number; required: number };
  /** Option 0010: the user PIN AND public key authentication (needs `publicKeyAuth`). */
  combinedAuth?: boolean;
  /** Number of key domains (firmware 3.x). */
  keyDomains?: number;
  /** Option 0004: the session PIN (spec §3.20), given inside a secure channel and kept until reset. */
  sessionPin?: boolean;
  /** Proceed although the SO-PIN has one try left (a wrong SO-PIN then locks the device for good). */
  force?: boolean;
}

/**
 * INITIALIZE DEVICE (`80 50 00 00 Lc <TLVs>`, spec §3.9) after host-side validation and, on an
 * initialized device, the SO-PIN's tries check; then VERIFY and EF.TokenInfo for a label. The
 * session forgets its keys and DKEK shares and learns the user PIN's retry counter.
 */
export async function initialize(ctx: SessionContext, o: InitializeOptions): Promise<void> {
  checkObject(o, 'the initialize options', {
    soPin: 'string',
    userPin: 'string',
    label: 'string',
    retryCounter: 'number',
    dkekShares: 'number',
    resetRetryCounter: 'boolean',
    transportPin: 'boolean',
    publicKeyAuth: 'object',
    combinedAuth: 'boolean',
    keyDomains: 'number',
    sessionPin: 'boolean',
    force: 'boolean',
  });
  if (o.dkekShares !== undefined) checkInt(o.dkekShares, 0, 255, 'the number of DKEK shares');
  if (o.label !== undefined) checkLabel(o.label, 'token label');
  if (o.keyDomains !== undefined) checkInt(o.keyDomains, 1, 255, 'the number of key domains');
  if (o.publicKeyAuth) {
    checkInt(o.publicKeyAuth.total, 1, 90, 'the number of public keys for authentication');
    checkInt(o.publicKeyAuth.required, 1, o.publicKeyAuth.total, 'the number of required public keys');
  }
  if (o.combinedAuth && !o.publicKeyAuth)
    throw new ScHsmError('INVALID_ARGUMENT', 'combinedAuth (PIN and public keys) needs publicKeyAuth');
  parseSoPin(o.soPin);
  const retry = o.retryCounter ?? 3;
  checkRetryCounter(retry, parseUserPin(o.userPin).length);
  // only now the secrets' bytes: nothing above can throw past them unwiped
  const so = parseSoPin(o.soPin);
  const pin = parseUserPin(o.userPin);
  let options = 0;
  if (o.resetRetryCounter !== false) options |= OPTION.RESET_RETRY_COUNTER;
  if (o.transportPin) options |= OPTION.TRANSPORT_PIN;
  if (o.combinedAuth) options |= OPTION.COMBINED_AUTH;
  if (o.sessionPin) options |= OPTION.SESSION_PIN;
  const parts = [
    tlv(INIT_TAG.OPTIONS, uintBE(options, 2)),
    tlv(INIT_TAG.USER_PIN, pin),
    tlv(INIT_TAG.SO_PIN, so),
    tlv(INIT_TAG.USER_PIN_RETRY, Uint8Array.of(retry)),
  ];
  if (o.dkekShares !== undefined) parts.push(tlv(INIT_TAG.DKEK_SHARES, Uint8Array.of(o.dkekShares)));
  if (o.publicKeyAuth) {
    parts.push(tlv(INIT_TAG.PUBLIC_KEY_AUTH, Uint8Array.of(o.publicKeyAuth.total, o.publicKeyAuth.required)));
  }
  if (o.keyDomains !== undefined) parts.push(tlv(INIT_TAG.KEY_DOMAINS, Uint8Array.of(o.keyDomains)));
  const data = concat(...parts);
  try {
    await ctx.channel.exclusive(async () => {
      const st = await pinStatus(ctx, PIN_SO);
      if (st.state !== 'not-initialized') await checkTries(ctx, PIN_SO, o.force, 'INITIALIZE DEVICE');
      ctx.files.forget(); // whatever the answer, the card's files may be gone
      try {
        await ctx.channel.exchange(
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
      ctx.userPinRetries = retry;
      ctx.keyCache.clear();
      ctx.importedShares = undefined;
      ctx.info = { ...ctx.info, options };
      if (o.label !== undefined && !o.transportPin && !o.publicKeyAuth) {
        // the PIN just set: no tries check (the counter is full)
        await sendVerify(ctx, pin);
        await ctx.files.write(EF.TOKEN_INFO, encodeTokenInfo({ version: 0, label: o.label, flags: 0x04 }), {
          replace: false,
        });
      }
    });
  } finally {
    wipe(data);
    wipe(pin);
    wipe(so);
  }
}

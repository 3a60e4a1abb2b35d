/**
 * Keys leaving and entering the device under the DKEK: WRAP KEY and UNWRAP KEY (spec §3.16), the
 * `.bin` files of `sc-hsm-tool --wrap-key` (blob, description, certificate: spec §8.2), and the
 * forced replace of a key at an occupied key reference.
 *
 * A forced replace keeps a way back: the old key is wrapped with its files before anything is
 * deleted (the card has no rename) and handed to `onReplaced` (the command writes it to a file),
 * and if anything fails after that, {@link putBack} unwraps the copy again. Only when even that
 * fails is a KeyReplaceError (KEY_LOST) thrown, carrying the copy. The card is written in an order
 * that never leaves a key under another key's description: the old certificate and description
 * first, then the old key; the new key, then its description and certificate. An interruption
 * (a killed process, a pulled card) leaves the old key (possibly without its description), an
 * empty reference, or the new key (possibly without its description); a forced rerun completes it.
 */
// the modules themselves, not the dkek barrel: a session that never wraps loads no share-file KDF
import { isZeroDkekKcv } from '../dkek/dkek.js';
import { decryptKeyBlob, inspectKeyBlob } from '../dkek/key-blob.js';
import { decodeWrapFile, encodeWrapFile } from '../dkek/wrap-file.js';
import { isScHsmError, ScHsmError, type ScHsmErrorCode, type ScHsmErrorOptions } from '../errors.js';
import { encodeKeyDescription } from '../pkcs15/index.js';
import { ALGO, CLA_PROPRIETARY, EF, INS, PREFIX } from '../protocol/constants.js';
import { bytesEqual, toHex, wipe } from '../util/bytes.js';
import type { SessionContext } from './context.js';
import { keyOpOverrides } from './crypto.js';
import { checkWrapDomain, MAX_KEY_DOMAIN, unwrapTarget } from './domains.js';
import { readKeyRestrictions } from './key-restrictions.js';
import { checkFreeId } from './keys.js';
import { checkBytes, checkInt, checkKeyRef, checkObject } from './validate.js';
import { wrapFileDamage, wrapFileInfo } from './wrap-info.js';

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
   * With `force`: called with the old key's wrapped copy before anything of the old key is
   * deleted, e.g. to write it to a file (the only copy if the process dies during the replace:
   * write it durably); a throw stops the replace with nothing changed.
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
  /**
   * restoreKey: the PKCS#15 ID (1..255 bytes) the restored key gets instead of the one in the wrap
   * file's description, e.g. when the file's ID is another key's on this device (KEY_ID_IN_USE);
   * the file must carry a description (INVALID_ARGUMENT otherwise).
   */
  id?: Uint8Array;
  /**
   * The key domain the key must land in (spec §3.10, firmware 3.x): the card picks the domain by
   * the blob's KCV, so this is a check before anything is sent — the domain exists, its DKEK is
   * complete and has the blob's KCV (KEY_DOMAIN_OUT_OF_RANGE, KEY_DOMAIN_UNUSED, DKEK_INCOMPLETE,
   * KCV_MISMATCH). Without it, any domain whose DKEK has the blob's KCV.
   */
  domain?: number;
}

/** The key a forced replace removes: its `.bin` wrap file (blob under the device's DKEK, description, certificate). */
export interface ReplacedKey {
  keyRef: number;
  bin: Uint8Array;
  label?: string;
  id?: Uint8Array;
}

/** Where a forced replace was when it failed. */
type ReplacePhase = 'delete-old-files' | 'delete-old' | 'unwrap-new' | 'describe-new';

/** The description and certificate files of a key, as a wrap file carries them. */
interface KeyFiles {
  prkd?: Uint8Array;
  certificate?: Uint8Array;
}

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

/** The option types of unwrapKey and restoreKey, checked alike. */
const UNWRAP_OPTION_TYPES = {
  force: 'boolean',
  allowKeyLoss: 'boolean',
  onReplaced: 'function',
  dkek: 'bytes',
  authenticate: 'function',
  domain: 'number',
  id: 'bytes',
} as const;

/**
 * WRAP KEY (`80 72 <keyRef> 92 00 00 00`, extended, spec §3.16): the key blob under the DKEK; a
 * blob whose KCV is that of the all-zero DKEK is wiped and refused.
 */
export async function wrapKey(ctx: SessionContext, keyRef: number): Promise<Uint8Array> {
  checkKeyRef(keyRef);
  // a list read already in this session (no extra APDU) that lacks WRAP: refused unsent
  const known = ctx.keyCache.get(keyRef);
  if (known?.algorithms && !known.algorithms.includes(ALGO.WRAP))
    throw new ScHsmError(
      'ALGORITHM_NOT_ALLOWED',
      `key ${keyRef} may not be wrapped: its algorithm list, fixed at generation, lacks WRAP. Nothing was sent.`,
    );
  // the key's domain must have a complete DKEK (public reads: refused before the PIN in a precheck)
  await checkWrapDomain(ctx, keyRef, known ? known.domain : (await readKeyRestrictions(ctx, keyRef)).domain);
  const r = await ctx.channel.exchange(
    { cla: CLA_PROPRIETARY, ins: INS.WRAP_KEY, p1: keyRef, p2: ALGO.WRAP, ne: 65536, extended: true },
    'WRAP KEY',
    {
      overrides: {
        ...keyOpOverrides(keyRef),
        0x6d00: ['NO_DKEK', 'the device was not initialized for key wrapping (no DKEK)'],
        0x6985: [
          'DKEK_INCOMPLETE',
          'the DKEK is not complete (shares outstanding) or the key may not be exported',
        ],
        0x6a81: ['ALGORITHM_NOT_ALLOWED', `key ${keyRef} may not be wrapped (its algorithm list lacks WRAP)`],
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

/** A bare key blob onto `keyRef`: the checks and the safe replace of {@link unwrapInto}. */
export async function unwrapKey(
  ctx: SessionContext,
  keyRef: number,
  blob: Uint8Array,
  opts: UnwrapOptions = {},
): Promise<void> {
  checkKeyRef(keyRef);
  checkObject(opts, 'the unwrap options', UNWRAP_OPTION_TYPES);
  if (opts.domain !== undefined) checkInt(opts.domain, 0, MAX_KEY_DOMAIN, 'the key domain (domain)');
  if (!(blob instanceof Uint8Array) || blob.length < 8 + 1 + 16)
    throw new ScHsmError('INVALID_KEY_BLOB', `a key blob of ${blob?.length ?? 0} bytes is too short`);
  await ctx.channel.exclusive(() => unwrapInto(ctx, keyRef, blob, undefined, opts));
}

/** WRAP KEY, then the key's description and certificate, as a `.bin` wrap file (spec §8.2). */
export async function backupKey(ctx: SessionContext, keyRef: number): Promise<Uint8Array> {
  checkKeyRef(keyRef);
  return ctx.channel.exclusive(async () => {
    const blob = await wrapKey(ctx, keyRef);
    try {
      inspectKeyBlob(blob);
    } catch (e) {
      throw new ScHsmError('MALFORMED_RESPONSE', `WRAP KEY answered a damaged key blob for key ${keyRef}`, {
        cause: e,
      });
    }
    const prkd = await ctx.files.readOptional((PREFIX.PRKD << 8) | keyRef);
    const cert = await ctx.files.readOptional((PREFIX.EE_CERTIFICATE << 8) | keyRef);
    const w: { blob: Uint8Array; prkd?: Uint8Array; certificate?: Uint8Array } = { blob };
    if (prkd?.length) w.prkd = prkd;
    if (cert?.length) w.certificate = cert;
    return encodeWrapFile(w);
  });
}

/** A `.bin` wrap file onto `keyRef`, its description's key reference set to `keyRef` (spec §8.2). */
export async function restoreKey(
  ctx: SessionContext,
  bin: Uint8Array,
  keyRef: number,
  opts: UnwrapOptions = {},
): Promise<void> {
  checkKeyRef(keyRef);
  checkObject(opts, 'the restore options', UNWRAP_OPTION_TYPES);
  if (opts.domain !== undefined) checkInt(opts.domain, 0, MAX_KEY_DOMAIN, 'the key domain (domain)');
  // the whole file on the host before anything is sent: the parts the blob's MAC does not cover too
  const info = wrapFileInfo(bin);
  const damage = wrapFileDamage(info, opts.dkek ? checkBlobOnHost(info.wrap.blob, opts.dkek) : undefined);
  if (damage)
    throw new ScHsmError('INVALID_WRAP_FILE', `the wrap file is damaged: ${damage}. Nothing was sent.`);
  const w = info.wrap;
  if (opts.id !== undefined) {
    checkBytes(opts.id, 'the key ID (id)', 1, 255);
    if (!w.keyDescription)
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        'the wrap file carries no key description, so there is no ID to replace. Nothing was sent.',
      );
  }
  const files: KeyFiles & { id?: Uint8Array } = {};
  const id = opts.id ?? w.id;
  if (id) files.id = id;
  if (w.prkd) {
    files.prkd =
      w.keyDescription && (w.keyDescription.keyReference !== keyRef || opts.id !== undefined)
        ? encodeKeyDescription({ ...w.keyDescription, keyReference: keyRef, ...(opts.id && { id: opts.id }) })
        : w.prkd;
  }
  if (w.certificate) files.certificate = w.certificate;
  await ctx.channel.exclusive(() => unwrapInto(ctx, keyRef, w.blob, files, opts));
}

/**
 * UNWRAP KEY (`80 74 <keyRef> 93 <blob>`, spec §3.16) with the blob in the APDU, or, where
 * extended length is not available, written to EF 2F10 first and the command sent without data.
 */
export async function unwrapCommand(ctx: SessionContext, keyRef: number, blob: Uint8Array): Promise<void> {
  const cmd = { cla: CLA_PROPRIETARY, ins: INS.UNWRAP_KEY, p1: keyRef, p2: ALGO.UNWRAP } as const;
  const extended = ctx.transport.extendedLength !== false;
  if (!extended) await ctx.files.write(EF.UNWRAP_TRANSFER, blob, { replace: false });
  await ctx.channel.exchange(extended ? { ...cmd, data: blob, extended: true } : cmd, 'UNWRAP KEY', {
    overrides: {
      0x6982: ['SECURITY_STATUS', 'the user PIN must be verified first'],
      0x6a80: ['MAC_INVALID', 'the card refused the wrapped key (it does not match the DKEK or is damaged)'],
      0x6a89: ['KEY_REF_OCCUPIED', `key reference ${keyRef} is already in use`],
      0x6985: ['DKEK_INCOMPLETE', 'the DKEK is not complete'],
      0x6d00: ['NO_DKEK', 'the device has no DKEK'],
    },
  });
}

/**
 * The checks, the safe replace and the UNWRAP of unwrapKey and restoreKey. Checked before anything
 * changes: the DKEK is complete; the blob's structure, its KCV against the device's (a KCV shown
 * as zeros is unknown, not a mismatch), with `opts.dkek` its MAC on the host; the reference is
 * free unless `force` (a description or certificate there without a key counts as used: with
 * `force` they are removed, there is nothing to lose); `files.id` is no other key's ID
 * (KEY_ID_IN_USE). `files` (restoreKey): the description and certificate to write for the new key.
 */
export async function unwrapInto(
  ctx: SessionContext,
  keyRef: number,
  blob: Uint8Array,
  files: (KeyFiles & { id?: Uint8Array }) | undefined,
  opts: UnwrapOptions,
): Promise<void> {
  // the device's DKEK first (NO_DKEK, DKEK_INCOMPLETE), then the blob's structure (and with the
  // DKEK at hand its MAC) before anything changes
  let header: ReturnType<typeof inspectKeyBlob> | undefined;
  let damaged: unknown;
  try {
    header = inspectKeyBlob(blob);
  } catch (e) {
    damaged = e;
  }
  // the key domain whose DKEK has the blob's KCV (spec §3.10); zeros from a complete DKEK:
  // firmware that shows the KCV only after login (unknown, not a mismatch)
  const target = await unwrapTarget(ctx, header?.kcv, opts.domain);
  if (!header) throw damaged;
  if (opts.dkek) checkBlobOnHost(blob, opts.dkek);
  const mismatch = (device: Uint8Array, what = 'the wrapped key was made under') =>
    new ScHsmError(
      'KCV_MISMATCH',
      `${what} a different DKEK (key check value ${kcvHex(header.kcv)}, this device ${kcvHex(device)}). Nothing was changed.`,
    );
  const deviceKcv = target.kcv;
  const cc = (PREFIX.KEY << 8) | keyRef;
  const c4 = (PREFIX.PRKD << 8) | keyRef;
  const ce = (PREFIX.EE_CERTIFICATE << 8) | keyRef;
  const fids = await ctx.files.enumerate();
  const occupied = fids.includes(cc);
  // certificate first, then description: see deleteKey
  const oldFileIds = [ce, c4].filter((f) => fids.includes(f));
  if (!opts.force && (occupied || oldFileIds.length)) {
    const fid = (f: number) => f.toString(16).toUpperCase();
    throw new ScHsmError(
      'KEY_REF_OCCUPIED',
      occupied
        ? `key reference ${keyRef} is in use (file ${fid(cc)} exists); choose a free one or use force to replace it. Nothing was changed.`
        : `key reference ${keyRef} holds no key, but the description or certificate of one (file ${oldFileIds.map(fid).join(', ')}: left by an interrupted replace or delete); delete them (deleteKey) or use force, which removes them. Nothing was changed.`,
      { keyRef },
    );
  }
  if (files?.id) {
    try {
      await checkFreeId(ctx, files.id, fids, keyRef);
    } catch (e) {
      if (!isScHsmError(e, 'KEY_ID_IN_USE') || e.existingKeyRef === undefined) throw e;
      throw new ScHsmError('KEY_ID_IN_USE', e.message, {
        existingKeyRef: e.existingKeyRef,
        fix: `key reference ${e.existingKeyRef} holds a key with this ID; only if it is the very same key (compare label, type and public key), replace it: restore onto key reference ${e.existingKeyRef} with force. An unrelated key keeps its ID: give the restored key another ID (restoreKey's id option) instead`,
      });
    }
  }
  // A forced replace keeps a way back: the old key wrapped (with its description and
  // certificate) before anything is deleted. The card has no rename, so this is the only one.
  let saved: Uint8Array | undefined;
  const oldFiles: KeyFiles = {};
  if (occupied) {
    try {
      saved = await backupKey(ctx, keyRef);
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
      const w = decodeWrapFile(saved);
      const oldKcv = w.blob.subarray(0, 8);
      // only where the device hid its KCV: the old key's blob shows it (keys of domain 0 then)
      if (!deviceKcv && !bytesEqual(header.kcv, oldKcv)) throw mismatch(oldKcv);
      if (w.prkd) oldFiles.prkd = w.prkd;
      if (w.certificate) oldFiles.certificate = w.certificate;
      const r: ReplacedKey = { keyRef, bin: saved };
      if (w.label !== undefined) r.label = w.label;
      if (w.id) r.id = w.id;
      await opts.onReplaced?.(r);
    } else {
      // no copy of the key (the loss was allowed): its files at least, to rewrite them on failure
      const prkd = await ctx.files.readOptional(c4);
      const cert = await ctx.files.readOptional(ce);
      if (prkd?.length) oldFiles.prkd = prkd;
      if (cert?.length) oldFiles.certificate = cert;
    }
  }
  let phase: ReplacePhase = 'delete-old-files';
  try {
    // the old key's certificate and description before the key: never a description of no key
    for (const f of oldFileIds) await ctx.files.deleteIfExists(f);
    phase = 'delete-old';
    if (occupied) await ctx.files.delete(cc);
    phase = 'unwrap-new';
    await unwrapCommand(ctx, keyRef, blob);
    // the new key's description and certificate after the key: never a description of another key
    phase = 'describe-new';
    // absent: the enumeration above (same exclusive section) lacked them, or they were deleted
    if (files?.prkd) await ctx.files.write(c4, files.prkd, { absent: true });
    if (files?.certificate) await ctx.files.write(ce, files.certificate, { absent: true });
  } catch (e) {
    if (!occupied) {
      // nothing was there to lose (at most leftover files, now removed)
      throw phase === 'describe-new'
        ? annotate(e, `Key reference ${keyRef} holds the new key, possibly without its description.`, keyRef)
        : e;
    }
    throw await putBack(ctx, keyRef, saved, oldFiles, phase, e, opts.authenticate);
  } finally {
    ctx.keyCache.delete(keyRef);
  }
}

/**
 * After a forced replace failed at `phase`: puts the old key (`saved`, its `.bin` from
 * backupKey) back at `keyRef` and rewrites its description and certificate (`oldFiles`), and
 * returns the error to throw — `cause` saying the key was left or put back as it was, or a
 * KeyReplaceError saying exactly what is lost. What the reference holds is read from the card (the
 * answer to the last command may have been lost); a PIN the card forgot (reset) is verified again
 * with `authenticate`, once. The same order as the replace: a key's files go before the key and
 * come after it, so an interruption here never leaves a key under another key's description either.
 */
export async function putBack(
  ctx: SessionContext,
  keyRef: number,
  saved: Uint8Array | undefined,
  oldFiles: KeyFiles,
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
    phase === 'delete-old-files' || phase === 'delete-old' ? 'delete-old' : 'unwrap-new';
  let holds: 'old' | 'new' | 'none' | 'unknown' = 'unknown';
  // the old files may be gone from the first DELETE on: rewritten whenever the old key is there
  let describedOld = false;
  let failure: unknown;
  let reauthenticated = false;
  for (;;) {
    try {
      const present = (await ctx.files.enumerate()).includes(cc);
      holds = !present ? 'none' : last === 'delete-old' || last === 'unwrap-old' ? 'old' : 'new';
      if (old && holds === 'new') {
        last = 'delete-new';
        await ctx.files.deleteIfExists(ce);
        await ctx.files.deleteIfExists(c4);
        await ctx.files.delete(cc);
        holds = 'none';
      }
      if (old && holds === 'none') {
        last = 'unwrap-old';
        // leftovers of the new key's files, if any, go before the old key comes back
        await ctx.files.deleteIfExists(ce);
        await ctx.files.deleteIfExists(c4);
        await unwrapCommand(ctx, keyRef, old.blob);
        holds = 'old';
      }
      if (holds === 'old' && !describedOld) {
        if (oldFiles.prkd) await ctx.files.write(c4, oldFiles.prkd);
        else await ctx.files.deleteIfExists(c4);
        if (oldFiles.certificate) await ctx.files.write(ce, oldFiles.certificate);
        else await ctx.files.deleteIfExists(ce);
        describedOld = true;
      }
      failure = undefined;
      break;
    } catch (e) {
      failure = e;
      if (holds === 'none' && last === 'delete-new') holds = 'unknown';
      const forgotPin = isScHsmError(e, 'SECURITY_STATUS') || isScHsmError(e, 'CARD_RESET');
      if (!forgotPin || reauthenticated || !authenticate) break;
      reauthenticated = true;
      try {
        await authenticate();
      } catch (e2) {
        failure = e2;
        break;
      }
    }
  }
  ctx.keyCache.delete(keyRef);
  const why = errorText(cause);
  const name = `key ${keyRef}${old?.label !== undefined ? ` ${JSON.stringify(old.label)}` : ''}${old?.id ? ` (ID ${toHex(old.id)})` : ''}`;
  if (holds === 'old' && describedOld) {
    return annotate(
      cause,
      last === 'delete-old'
        ? `The old ${name} was left as it was (its description and certificate rewritten as they were).`
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
      `replacing ${name} failed (${why}); the old key ${last === 'delete-old' ? 'is still there' : 'was put back'}, but its description and certificate could not be rewritten (${errorText(failure)})`,
      {
        ...opt,
        fix: saved
          ? 'rewrite them from the old key’s wrapped copy: unwrap it with force onto the same key reference'
          : 'the key is usable by its key reference; describe it again (label, ID) with the tool that made it',
      },
    );
  }
  let rest: string;
  if (holds === 'none') {
    opt.now = 'empty';
    // no orphans: a description or certificate without its key makes the reference look used
    let cleared = true;
    try {
      await ctx.files.deleteIfExists(ce);
      await ctx.files.deleteIfExists(c4);
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
  return new KeyReplaceError('KEY_LOST', `replacing ${name} failed (${why}) and ${back}: ${lost}; ${rest}`, {
    ...opt,
    fix: saved
      ? 'unwrap the old key’s wrapped copy (KeyReplaceError.oldKey) onto the same key reference with force, once the device works again'
      : 'restore the old key from a backup, if there is one',
  });
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

/** The blob decrypted with the caller's DKEK (KCV, MAC, key), the key material wiped; its public key. */
function checkBlobOnHost(blob: Uint8Array, dkek: Uint8Array): Uint8Array | undefined {
  try {
    const d = decryptKeyBlob(blob, dkek);
    if (d.pkcs8) wipe(d.pkcs8);
    if (d.aesKey) wipe(d.aesKey);
    return d.publicKey;
  } catch (e) {
    throw isScHsmError(e) ? annotate(e, 'Checked on the host: nothing was sent') : e;
  }
}

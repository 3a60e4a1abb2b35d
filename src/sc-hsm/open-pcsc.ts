/**
 * Opening the SmartCard-HSM among the PC/SC readers, the way OpenSC's sc-hsm driver matches a card
 * (spec §1.4): the ATR table first (spec §1.1), else a SELECT of the applet
 * whose FCP must carry tag 85 with at least 2 bytes (spec §1.3). The readers themselves, their
 * PC/SC context and a choice by name or index are the transport's (the APDU layer's); what
 * makes a card a SmartCard-HSM, and which one is opened when none is named, is decided here.
 */
import { type PcscContext, PcscTransport, type ReaderEvent } from '../apdu/pcsc.js';
import { chooseReader, type ReaderScanOptions, watchReaders, withPcscContext } from '../apdu/readers.js';
import { ScHsmError } from '../errors.js';
import { AID, KNOWN_ATRS } from '../protocol/constants.js';
import { bytesEqual, concat, toHex } from '../util/bytes.js';
import { findTag, readTlv } from '../util/tlv.js';

/** One reader as `listReaders()` reports it. */
export interface ReaderInfo {
  /** The reader's name as pcscd reports it, e.g. `Nitrokey Nitrokey HSM (DENK…) 00 00`. */
  name: string;
  /** Position in pcscd's list (the number `opensc-tool -r N` takes). */
  index: number;
  cardPresent: boolean;
  /** ATR as upper-case hex, when a card is present. */
  atr?: string;
  isSmartCardHsm: boolean;
  /** How the card was recognised: by its ATR, or by a SELECT of the applet. */
  reason?: 'atr' | 'select';
  /** The name in the ATR table (spec §1.1), when recognised by ATR. */
  model?: string;
  /** Why the SELECT probe could not run (e.g. READER_BUSY while another program holds the card). */
  probeError?: string;
}

export interface ListReadersOptions extends ReaderScanOptions {
  /**
   * Probe cards whose ATR is unknown with a SELECT of the applet (default true). The probe connects
   * SHARED and disconnects with LEAVE_CARD; note that a SELECT of the applet logs out a PIN that
   * another program verified (spec §1.3), which is why a known ATR is never probed.
   */
  probe?: boolean;
}

/** `00 A4 04 00 0B <AID> 00`, OpenSC's form: P2=00 asks for the FCP (spec §1.3). */
export const SELECT_APPLET = concat(
  Uint8Array.of(0x00, 0xa4, 0x04, 0x00, AID.length),
  AID,
  Uint8Array.of(0x00),
);

/** True when the answer to SELECT_APPLET is 9000 with an FCP (`62`) holding tag 85 of ≥ 2 bytes. */
export function isSmartCardHsmSelectResponse(resp: Uint8Array): boolean {
  if (resp.length < 2 || resp[resp.length - 2] !== 0x90 || resp[resp.length - 1] !== 0x00) return false;
  const data = resp.subarray(0, resp.length - 2);
  try {
    const fcp = readTlv(data);
    if (fcp.tag !== 0x62) return false;
    const t85 = findTag(fcp.value, 0x85);
    return t85 !== undefined && t85.value.length >= 2;
  } catch {
    return false;
  }
}

function knownAtr(atr: Uint8Array | undefined): string | undefined {
  if (!atr) return undefined;
  return KNOWN_ATRS.find((k) => bytesEqual(k.atr, atr))?.name;
}

async function describe(ctx: PcscContext, probe: boolean): Promise<ReaderInfo[]> {
  const out: ReaderInfo[] = [];
  for (const [index, r] of ctx.readers().entries()) {
    const info: ReaderInfo = { name: r.name, index, cardPresent: r.cardPresent, isSmartCardHsm: false };
    if (r.cardPresent && r.atr) info.atr = toHex(r.atr).toUpperCase();
    const model = knownAtr(r.atr);
    if (model) {
      info.isSmartCardHsm = true;
      info.reason = 'atr';
      info.model = model;
    } else if (r.cardPresent && probe) {
      let t: PcscTransport | undefined;
      try {
        t = await PcscTransport.connect(ctx, r.name, { ownsContext: false });
        if (isSmartCardHsmSelectResponse(await t.transmit(SELECT_APPLET))) {
          info.isSmartCardHsm = true;
          info.reason = 'select';
        }
      } catch (e) {
        info.probeError = e instanceof ScHsmError ? e.code : String(e);
      } finally {
        await t?.close();
      }
    }
    out.push(info);
  }
  return out;
}

/**
 * Lists the PC/SC readers and tells which hold a SmartCard-HSM. Rejects with PCSC_UNAVAILABLE
 * when pcscd is not running or `pcsclite` is not installed.
 */
export async function listReaders(o: ListReadersOptions = {}): Promise<ReaderInfo[]> {
  return withPcscContext(async (ctx) => {
    const list = await describe(ctx, o.probe ?? true);
    await ctx.close();
    return list;
  }, o);
}

export interface OpenPcscOptions extends ListReadersOptions {
  /** Exact reader name, a substring matching exactly one reader, or an index from `listReaders()`. */
  reader?: string | number;
  /**
   * The caller is about to change or erase the device. Then the reader must be named: the only
   * SmartCard-HSM present is never picked automatically (guide, lesson 7).
   */
  destructive?: boolean;
  /**
   * How long one APDU may take, ms (the transport's `timeoutMs`; `timeoutMs` here bounds the
   * reader scan): on expiry TIMEOUT and the transport is dead. Default none.
   */
  apduTimeoutMs?: number;
}

function describeList(list: readonly ReaderInfo[]): string {
  if (list.length === 0) return '(none)';
  return list
    .map(
      (r) =>
        `  ${r.index}: ${r.name}${r.cardPresent ? '' : ' (no card)'}` +
        `${r.isSmartCardHsm ? ' [SmartCard-HSM]' : r.atr ? ` [ATR ${r.atr}]` : ''}`,
    )
    .join('\n');
}

function pick(list: ReaderInfo[], o: OpenPcscOptions): ReaderInfo {
  const sel = o.reader;
  const hint =
    'choose one with --reader NAME|SUBSTRING|INDEX (`sc-hsm-ts readers` or `opensc-tool -l` lists them)';
  if (list.length === 0) {
    throw new ScHsmError(
      'NO_READER',
      'no PC/SC reader found; plug the Nitrokey HSM in (if it is plugged in: is libccid installed ' +
        'and does `opensc-tool -l` list it?)',
    );
  }
  if (typeof sel === 'number' || typeof sel === 'string') return chooseReader(list, sel, describeList);
  const hsms = list.filter((r) => r.isSmartCardHsm);
  if (o.destructive) {
    throw new ScHsmError(
      'AMBIGUOUS_READER',
      `this operation changes the device, so it is never picked automatically; ${hint}:\n${describeList(hsms.length > 0 ? hsms : list)}`,
    );
  }
  if (hsms.length === 1) return hsms[0]!;
  if (hsms.length > 1) {
    throw new ScHsmError(
      'AMBIGUOUS_READER',
      `${hsms.length} SmartCard-HSMs are present; ${hint}:\n${describeList(hsms)}`,
    );
  }
  if (!list.some((r) => r.cardPresent)) {
    throw new ScHsmError(
      'NO_CARD',
      `no card in any reader; insert the SmartCard-HSM. Readers:\n${describeList(list)}`,
    );
  }
  const busy = list.find((r) => r.probeError === 'READER_BUSY');
  if (busy) {
    throw new ScHsmError(
      'READER_BUSY',
      `the card in '${busy.name}' is held exclusively by another program (pkcs11-tool, a browser, scdaemon…); close it and retry`,
    );
  }
  throw new ScHsmError(
    'NOT_A_SMARTCARD_HSM',
    `no SmartCard-HSM found (no known ATR and no applet answering SELECT); readers:\n${describeList(list)}`,
  );
}

/**
 * Opens the SmartCard-HSM: the reader chosen by `o.reader`, else the only SmartCard-HSM present.
 * Two or more and no choice → AMBIGUOUS_READER listing them; `destructive` always needs a choice.
 * A named reader must hold a SmartCard-HSM too. The returned transport is connected SHARED and
 * owns its PC/SC context (close it).
 */
export async function openPcsc(o: OpenPcscOptions = {}): Promise<PcscTransport> {
  return withPcscContext(async (ctx) => {
    const list = await describe(ctx, o.probe ?? true);
    const chosen = pick(list, o);
    if (!chosen.cardPresent) {
      throw new ScHsmError('NO_CARD', `no card in reader '${chosen.name}'; insert the SmartCard-HSM`);
    }
    if (!chosen.isSmartCardHsm) {
      if (chosen.probeError === 'READER_BUSY') {
        throw new ScHsmError(
          'READER_BUSY',
          `the card in '${chosen.name}' is held exclusively by another program (pkcs11-tool, a browser, scdaemon…); close it and retry`,
        );
      }
      throw new ScHsmError(
        'NOT_A_SMARTCARD_HSM',
        `the card in '${chosen.name}' (ATR ${chosen.atr ?? '?'}) is not a SmartCard-HSM: unknown ATR and no applet answering SELECT`,
      );
    }
    return PcscTransport.connect(
      ctx,
      chosen.name,
      o.apduTimeoutMs !== undefined ? { timeoutMs: o.apduTimeoutMs } : {},
    );
  }, o);
}

/** A reader event with what the ATR table (spec §1.1) says of the card. */
export interface SmartCardHsmEvent extends ReaderEvent {
  /** `card-inserted`/`card-removed`: the card's ATR is a SmartCard-HSM's (no SELECT probe is sent). */
  isSmartCardHsm?: boolean;
  /** The model from the ATR table, for a SmartCard-HSM. */
  model?: string;
}

/**
 * SmartCard-HSMs inserted and removed, and readers coming and going ({@link watchReaders} with
 * the ATR table applied): card events carry `isSmartCardHsm` and `model`, and a removal says
 * whether the card that went was a SmartCard-HSM. Recognition is by ATR only, since a SELECT
 * probe would log out a PIN another program verified (spec §1.3); a card of unknown ATR is
 * reported with `isSmartCardHsm: false` (`listReaders()` probes it on request).
 *
 * ```ts
 * for await (const e of watchSmartCardHsms({ signal }))
 *   if (e.type === 'card-inserted' && e.isSmartCardHsm) serve(await openPcsc({ reader: e.reader }));
 * ```
 */
export async function* watchSmartCardHsms(
  o: { signal?: AbortSignal } = {},
): AsyncGenerator<SmartCardHsmEvent, void, undefined> {
  const hsmIn = new Map<string, string | undefined>();
  for await (const e of watchReaders(o)) {
    if (e.type === 'card-inserted') {
      const known = e.atr ? KNOWN_ATRS.find((k) => bytesEqual(k.atr, e.atr!)) : undefined;
      if (known) hsmIn.set(e.reader, known.name);
      else hsmIn.delete(e.reader);
      yield { ...e, isSmartCardHsm: known !== undefined, ...(known ? { model: known.name } : {}) };
    } else if (e.type === 'card-removed') {
      const was = hsmIn.has(e.reader);
      const model = hsmIn.get(e.reader);
      hsmIn.delete(e.reader);
      yield { ...e, isSmartCardHsm: was, ...(model ? { model } : {}) };
    } else yield e;
  }
}

/**
 * Public key authentication, n-of-m (spec §3.18): status (`80 54 00 00`), the registered keys
 * (`80 54 02 idx`), registration after the custodian's device chain is verified by the card as
 * OpenSC does it (MSE SET DST `00 22 81 B6`, PSO VERIFY CERTIFICATE `00 2A 00 BE`, §5), the
 * challenge (GET CHALLENGE `00 84`, §3.17), a custodian's answer made with their own token
 * (SIGN over SHA-256(target device CHR ‖ challenge)) and the authentication (MSE SET AT
 * `00 22 81 A4`, EXTERNAL AUTHENTICATE `00 82`). The device's security status lives in this
 * session: a SELECT of the applet (logout), a reset or another session drops it.
 */
import { ScHsmError } from '../errors.js';
import { decodeCvc, decodeCvRequest, decodePkaFile, encodePkaFile, type PkaFile } from '../pkcs15/index.js';
import { CLA_ISO, CLA_PROPRIETARY, EF, INS, PREFIX } from '../protocol/constants.js';
import { ascii, concat, fresh } from '../util/bytes.js';
import { tlv } from '../util/tlv.js';
import type { SessionContext } from './context.js';
import * as crypto from './crypto.js';
import { deviceChr } from './device.js';
import { keyInfo } from './keys.js';
import { checkBytes, checkKeyRef } from './validate.js';

/** `80 54 00 00`: N, missing, M, authenticated (spec §3.18). */
export interface PkaStatus {
  /** N: public keys the device was initialized for. */
  total: number;
  /** Of N, not yet registered. */
  missing: number;
  /** M: keys needed to authenticate. */
  required: number;
  /** Keys authenticated in this session. */
  authenticated: number;
}

/** A registration slot (`80 54 02 idx`). */
export interface PkaSlot {
  index: number;
  /** CHR of the registered key; absent for a free slot. */
  chr?: string;
  authenticated: boolean;
}

/** What a target device asks its custodians to sign (`pka challenge`). */
export interface PkaChallenge {
  /** CHR of the target device's certificate: part of what is signed. */
  deviceChr: string;
  /** The GET CHALLENGE answer (8 bytes). */
  challenge: Uint8Array<ArrayBuffer>;
}

/** A custodian's answer: the CHR of their registered key and its signature. */
export interface PkaResponse {
  chr: string;
  signature: Uint8Array;
}

function statusOf(data: Uint8Array): PkaStatus {
  if (data.length !== 4)
    throw new ScHsmError('MALFORMED_RESPONSE', `PKA status: expected 4 bytes, got ${data.length}`);
  return { total: data[0]!, missing: data[1]!, required: data[2]!, authenticated: data[3]! };
}

/** PKA status `80 54 00 00` (spec §3.18); undefined when the device has no PKA (`6D00`). */
export async function pkaStatus(ctx: SessionContext): Promise<PkaStatus | undefined> {
  const r = await ctx.channel.send({ cla: CLA_PROPRIETARY, ins: INS.PKA, p1: 0, p2: 0, ne: 4 });
  if (r.sw === 0x6d00 || r.sw === 0x6a86 || r.sw === 0x6b00) return undefined;
  if (r.sw !== 0x9000)
    throw new ScHsmError('CARD_ERROR', `PKA status: SW ${r.sw.toString(16).toUpperCase()}`, {
      sw: r.sw,
      command: 'PKA STATUS',
    });
  return statusOf(r.data);
}

async function requireStatus(ctx: SessionContext): Promise<PkaStatus> {
  const st = await pkaStatus(ctx);
  if (!st)
    throw new ScHsmError(
      'PKA_NOT_CONFIGURED',
      'the device was initialized without public key authentication',
    );
  return st;
}

/** Every slot `80 54 02 idx` (spec §3.18): the CHR of each registered key and whether it is authenticated. */
export async function pkaSlots(ctx: SessionContext): Promise<PkaSlot[]> {
  return ctx.channel.exclusive(async () => {
    const st = await requireStatus(ctx);
    const slots: PkaSlot[] = [];
    for (let i = 0; i < st.total; i++) {
      const r = await ctx.channel.send({ cla: CLA_PROPRIETARY, ins: INS.PKA, p1: 0x02, p2: i, ne: 256 });
      if (r.sw === 0x6a88) slots.push({ index: i, authenticated: false });
      else if (r.sw === 0x9000 || r.sw === 0x9001)
        slots.push({ index: i, chr: Buffer.from(r.data).toString('latin1'), authenticated: r.sw === 0x9001 });
      else
        throw new ScHsmError('CARD_ERROR', `PKA enumerate slot ${i}: SW ${r.sw.toString(16).toUpperCase()}`, {
          sw: r.sw,
          command: 'PKA ENUMERATE',
        });
    }
    return slots;
  });
}

/** MSE SET DST `00 22 81 B6 <83 ref>`: true when the card knows that public key (spec §3.18). */
async function knowsKey(ctx: SessionContext, ref: string): Promise<boolean> {
  const r = await ctx.channel.send({
    cla: CLA_ISO,
    ins: INS.MSE,
    p1: 0x81,
    p2: 0xb6,
    data: tlv(0x83, ascii(ref)),
  });
  if (r.sw === 0x9000) return true;
  if (r.sw === 0x6a88) return false;
  throw new ScHsmError('CARD_ERROR', `MSE SET DST: SW ${r.sw.toString(16).toUpperCase()}`, {
    sw: r.sw,
    command: 'MSE SET DST',
  });
}

/**
 * Makes a CV certificate's key known to the card as OpenSC's `verify_certificate` does: nothing
 * when the card knows its CHR; else MSE SET DST with its CAR and PSO VERIFY CERTIFICATE with the
 * body of `7F21`. PKA_CHAIN_UNTRUSTED when the card knows neither or refuses the signature.
 */
async function verifyOnCard(ctx: SessionContext, cert: Uint8Array, what: string): Promise<void> {
  const c = decodeCvc(cert);
  if (await knowsKey(ctx, c.chr)) return;
  if (!c.car || !(await knowsKey(ctx, c.car)))
    throw new ScHsmError(
      'PKA_CHAIN_UNTRUSTED',
      `the ${what} ${c.chr} was issued by ${c.car ?? '(no CAR)'}, a key this device does not know: the chain does not end at this device's root`,
    );
  const r = await ctx.channel.send({
    cla: CLA_ISO,
    ins: INS.PSO,
    p1: 0x00,
    p2: 0xbe,
    data: bodyOf(cert),
  });
  if (r.sw !== 0x9000)
    throw new ScHsmError(
      'PKA_CHAIN_UNTRUSTED',
      `the device refused the ${what} ${c.chr} (PSO VERIFY CERTIFICATE answered ${r.sw.toString(16).toUpperCase()}): its signature does not verify`,
      { sw: r.sw, command: 'PSO VERIFY CERTIFICATE' },
    );
}

/** The value of a `7F21` TLV: `7F4E … 5F37 …` (what PSO VERIFY CERTIFICATE takes). */
function bodyOf(cert: Uint8Array): Uint8Array {
  const c = decodeCvc(cert);
  return concat(c.body, tlv(0x5f37, c.signature));
}

/**
 * Registers a custodian's public key (spec §3.18) from the file `sc-hsm-tool
 * --export-for-pub-key-auth` (or {@link pkaExport}) writes: checks on the host that the file is
 * whole, that this key is not registered yet and that a slot is free; then lets the card verify
 * the issuer and the device certificate and registers the request. Returns the new status.
 */
export async function pkaRegister(
  ctx: SessionContext,
  file: Uint8Array,
): Promise<{ status: PkaStatus; chr: string }> {
  checkBytes(file, 'the PKA file');
  const f: PkaFile = decodePkaFile(file);
  const chr = f.decoded.certificate.chr;
  return ctx.channel.exclusive(async () => {
    const st = await requireStatus(ctx);
    if (st.missing === 0)
      throw new ScHsmError(
        'PKA_KEY_REGISTERED',
        `all ${st.total} public keys are registered on this device; none can be added`,
      );
    const slots = await pkaSlots(ctx);
    if (slots.some((s) => s.chr === chr))
      throw new ScHsmError('PKA_KEY_REGISTERED', `the key ${chr} is registered on this device already`);
    await verifyOnCard(ctx, f.issuer.raw, 'issuer certificate');
    await verifyOnCard(ctx, f.device.raw, 'device certificate');
    if (!(await knowsKey(ctx, f.decoded.outerCar!)))
      throw new ScHsmError('PKA_CHAIN_UNTRUSTED', `the device does not know ${f.decoded.outerCar}`);
    const content = decodeCvRequestContent(f.request);
    const r = await ctx.channel.exchange(
      { cla: CLA_PROPRIETARY, ins: INS.PKA, p1: 0, p2: 0, data: content, ne: 4 },
      'PKA REGISTER',
      {
        overrides: {
          0x6d00: ['PKA_NOT_CONFIGURED', 'the device was initialized without public key authentication'],
          0x6a84: ['PKA_KEY_REGISTERED', 'every public key slot of the device is taken'],
          0x6a80: [
            'PKA_CHAIN_UNTRUSTED',
            'the device refused the request: its device signature does not verify',
          ],
          0x6a88: ['PKA_CHAIN_UNTRUSTED', 'the device does not know the key that signed the request'],
        },
      },
    );
    return { status: statusOf(r.data), chr };
  });
}

/** The content of a `67` TLV (what `80 54 00 00` carries). */
function decodeCvRequestContent(request: Uint8Array): Uint8Array {
  const raw = decodeCvRequest(request).raw;
  const len = raw[1]! < 0x80 ? 2 : 2 + (raw[1]! & 0x7f);
  return raw.subarray(len);
}

/**
 * The registration file of one of this device's keys, in sc-hsm-tool's old format
 * (`30 { EF CE<keyRef>, EF 2F02 }`), for registration on another device (spec §3.18).
 */
export async function pkaExport(ctx: SessionContext, keyRef: number): Promise<Uint8Array<ArrayBuffer>> {
  checkKeyRef(keyRef);
  return ctx.channel.exclusive(async () => {
    const ce = await ctx.files.readOptional((PREFIX.EE_CERTIFICATE << 8) | keyRef);
    if (!ce || ce.length === 0)
      throw new ScHsmError(
        'KEY_NOT_FOUND',
        `no key request (EF CE${keyRef.toString(16).padStart(2, '0')}) for key ${keyRef}`,
      );
    let req: ReturnType<typeof decodeCvRequest>;
    try {
      req = decodeCvRequest(ce);
    } catch {
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `EF CE${keyRef.toString(16).padStart(2, '0')} holds a certificate, not the key's CV request: only a key generated on a SmartCard-HSM (whose request the device signed) can be registered`,
      );
    }
    if (!req.outerCar)
      throw new ScHsmError('INVALID_ARGUMENT', `key ${keyRef}'s request carries no device signature`);
    const ef2f02 = await ctx.files.read(EF.DEVICE_CERTIFICATES);
    return fresh(encodePkaFile(req.raw, ef2f02));
  });
}

/** GET CHALLENGE of 8 bytes for the custodians, with the device CHR they sign with it (spec §3.17–3.18). */
export async function pkaChallenge(ctx: SessionContext): Promise<PkaChallenge> {
  return ctx.channel.exclusive(async () => {
    await requireStatus(ctx);
    const chr = await deviceChr(ctx);
    if (!chr) throw new ScHsmError('MALFORMED_RESPONSE', 'the device has no device certificate (EF 2F02)');
    const r = await ctx.channel.exchange(
      { cla: CLA_ISO, ins: INS.GET_CHALLENGE, p1: 0, p2: 0, ne: 8 },
      'GET CHALLENGE',
    );
    if (r.data.length !== 8) throw new ScHsmError('MALFORMED_RESPONSE', 'GET CHALLENGE: expected 8 bytes');
    return { deviceChr: chr, challenge: fresh(r.data) };
  });
}

/**
 * A custodian's answer with their own token (this session): SIGN with key `keyRef` over
 * SHA-256(device CHR ‖ challenge) — ECDSA (DER) or RSA PKCS#1 v1.5 — and the CHR of the key's
 * request, which names it on the target device (spec §3.18).
 */
export async function pkaRespond(ctx: SessionContext, keyRef: number, c: PkaChallenge): Promise<PkaResponse> {
  checkKeyRef(keyRef);
  checkBytes(c?.challenge, 'the challenge');
  if (typeof c.deviceChr !== 'string' || !/^[\x20-\x7e]{1,32}$/.test(c.deviceChr))
    throw new ScHsmError('INVALID_ARGUMENT', 'the challenge names no valid device CHR');
  const ce = await ctx.files.readOptional((PREFIX.EE_CERTIFICATE << 8) | keyRef);
  if (!ce)
    throw new ScHsmError(
      'KEY_NOT_FOUND',
      `key ${keyRef} has no CV request (EF CE): it cannot have been registered`,
    );
  let chr: string;
  try {
    chr = decodeCvRequest(ce).certificate.chr;
  } catch {
    throw new ScHsmError('INVALID_ARGUMENT', `key ${keyRef} has a certificate, not its CV request, in EF CE`);
  }
  const key = await keyInfo(ctx, keyRef);
  if (key.type !== 'rsa' && key.type !== 'ec')
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `key ${keyRef} is not an EC or RSA key: it cannot answer a challenge`,
    );
  const message = concat(ascii(c.deviceChr), c.challenge);
  const signature = await crypto.sign(
    ctx,
    keyRef,
    key.type === 'rsa' ? 'RSA-PKCS1-SHA256' : 'ECDSA-SHA256',
    message,
  );
  return { chr, signature };
}

/**
 * Submits custodians' answers (spec §3.18): MSE SET AT with each CHR (a key authenticated already
 * is skipped), EXTERNAL AUTHENTICATE with its signature. PKA_AUTH_FAILED when the device refuses
 * one (wrong key, wrong or stale challenge). Returns the status after the last one.
 */
export async function pkaAuthenticate(ctx: SessionContext, responses: PkaResponse[]): Promise<PkaStatus> {
  if (!Array.isArray(responses) || responses.length === 0)
    throw new ScHsmError('INVALID_ARGUMENT', 'give at least one custodian answer');
  for (const r of responses) {
    if (typeof r?.chr !== 'string' || r.chr.length === 0 || r.chr.length > 32)
      throw new ScHsmError('INVALID_ARGUMENT', 'an answer names no key (CHR)');
    checkBytes(r.signature, 'the signature');
  }
  return ctx.channel.exclusive(async () => {
    await requireStatus(ctx);
    for (const a of responses) {
      const sel = await ctx.channel.send({
        cla: CLA_ISO,
        ins: INS.MSE,
        p1: 0x81,
        p2: 0xa4,
        data: tlv(0x83, ascii(a.chr)),
      });
      if (sel.sw === 0x6985) continue;
      if (sel.sw === 0x6a88)
        throw new ScHsmError('PKA_AUTH_FAILED', `the key ${a.chr} is not registered on this device`, {
          sw: sel.sw,
          command: 'MSE SET AT',
        });
      if (sel.sw !== 0x9000)
        throw new ScHsmError('CARD_ERROR', `MSE SET AT: SW ${sel.sw.toString(16).toUpperCase()}`, {
          sw: sel.sw,
          command: 'MSE SET AT',
        });
      const r = await ctx.channel.send({
        cla: CLA_ISO,
        ins: INS.EXTERNAL_AUTHENTICATE,
        p1: 0,
        p2: 0,
        data: a.signature,
      });
      if (r.sw !== 0x9000)
        throw new ScHsmError(
          'PKA_AUTH_FAILED',
          `the device refused ${a.chr}'s answer (SW ${r.sw.toString(16).toUpperCase()}): not signed by that key over this device's current challenge (a newer challenge replaces an older one)`,
          { sw: r.sw, command: 'EXTERNAL AUTHENTICATE' },
        );
    }
    return requireStatus(ctx);
  });
}

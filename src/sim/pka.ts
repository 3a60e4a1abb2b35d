/**
 * Public key authentication, n-of-m (spec §3.18) and the certificate verification that precedes a
 * registration (spec §5): MSE SET DST / AT (`00 22 81 B6|A4`), PSO VERIFY CERTIFICATE
 * (`00 2A 00 BE`), PKA status / register / enumerate (`80 54`), GET CHALLENGE (`00 84`, §3.17)
 * and EXTERNAL AUTHENTICATE (`00 82`).
 *
 * The registered keys are persistent (state.pka.keys, the content of each `67` request); what the
 * card has verified, selected, challenged and authenticated in this session is volatile
 * (vol.pka), dropped by SELECT, reset and power-off like the PIN state.
 */
import { createPublicKey, verify as nodeVerify, randomBytes } from 'node:crypto';
import {
  type CvCertificate,
  type CvcPublicKey,
  cvcPublicKeyToSpki,
  decodeCvc,
  decodeCvRequest,
  verifyCvcSignature,
} from '../pkcs15/index.js';
import { OPTION } from '../protocol/constants.js';
import { ascii, concat } from '../util/bytes.js';
import { readAll, tlv } from '../util/tlv.js';
import type { CardContext, Handler, PkaSession } from './context.js';
import { VIRTUAL_ROOT_CERTIFICATE } from './device.js';
import { fail, type Reply, SW } from './sw.js';
import { PKA_AUTH_FAILED_SW, PKA_PIN_REPLACED_SW, PKA_VERIFY_CERT_FAILED_SW } from './uncertain.js';

/** The public keys every card trusts without a PSO VERIFY: its own root (spec §5.3). */
function trustAnchors(): Map<string, CvcPublicKey> {
  const root = decodeCvc(VIRTUAL_ROOT_CERTIFICATE);
  return new Map([[root.chr, root.publicKey]]);
}

function session(ctx: CardContext): PkaSession {
  ctx.vol.pka ??= { known: trustAnchors(), authenticated: new Set() };
  return ctx.vol.pka;
}

/** The `83` key reference of an MSE SET data field, as text. */
function keyReference(data: Uint8Array): string {
  let ref: Uint8Array | undefined;
  try {
    ref = readAll(data).find((t) => t.tag === 0x83)?.value;
  } catch {
    fail(SW.WRONG_DATA, 'malformed MSE data');
  }
  if (!ref || ref.length === 0) fail(SW.WRONG_DATA, 'key reference (83) missing');
  return Buffer.from(ref).toString('latin1');
}

/** EC keys of DICA/device certificates may inherit their domain parameters (spec §5.3). */
function withDomain(pk: CvcPublicKey, domain: CvcPublicKey): CvcPublicKey {
  if (pk.modulus || pk.p) return pk;
  return { ...domain, oid: pk.oid, point: pk.point! };
}

/**
 * MSE SET `00 22 81 B6|A4 <83 CHR>` (spec §3.18): B6 selects a public key for PSO VERIFY
 * CERTIFICATE (`6A88` when the card does not know it), A4 selects a registered key for EXTERNAL
 * AUTHENTICATE (`6985` when it is authenticated already, `6A88` when none has that CHR).
 */
export const mse: Handler = (ctx, cmd) => {
  if (cmd.p1 !== 0x81 || (cmd.p2 !== 0xb6 && cmd.p2 !== 0xa4)) fail(SW.WRONG_P1P2);
  const chr = keyReference(cmd.data);
  const s = session(ctx);
  if (cmd.p2 === 0xb6) {
    if (!s.known.has(chr)) {
      s.verifier = undefined;
      fail(SW.REF_NOT_FOUND, 'public key unknown');
    }
    s.verifier = chr;
    return {};
  }
  const keys = ctx.state.pka?.keys ?? [];
  const i = keys.findIndex((k) => decodeCvRequest(requestTlv(k)).certificate.chr === chr);
  if (i < 0) {
    s.selected = undefined;
    fail(SW.REF_NOT_FOUND, 'no registered key with this CHR');
  }
  s.selected = i;
  if (s.authenticated.has(i)) fail(SW.CONDITIONS, 'already authenticated');
  return {};
};

/** PSO VERIFY CERTIFICATE `00 2A 00 BE <7F4E … 5F37 …>` with the key chosen by MSE SET DST. */
export const verifyCertificate: Handler = (ctx, cmd) => {
  if (cmd.p1 !== 0x00 || cmd.p2 !== 0xbe) fail(SW.WRONG_P1P2);
  const s = session(ctx);
  const signer = s.verifier === undefined ? undefined : s.known.get(s.verifier);
  if (!signer) fail(SW.CONDITIONS, 'no verification key selected (MSE SET DST)');
  let cert: CvCertificate;
  try {
    cert = decodeCvc(tlv(0x7f21, cmd.data));
  } catch {
    fail(SW.WRONG_DATA, 'not a CV certificate body');
  }
  if (cert.car !== s.verifier) fail(PKA_VERIFY_CERT_FAILED_SW, 'certificate not issued by the selected key');
  let ok = false;
  try {
    ok = verifyCvcSignature(cert, signer, signer);
  } catch {
    ok = false;
  }
  if (!ok) fail(PKA_VERIFY_CERT_FAILED_SW, 'certificate signature invalid');
  s.known.set(cert.chr, withDomain(cert.publicKey, signer));
  return {};
};

/** The stored content of a `67` request as the complete TLV. */
function requestTlv(content: Uint8Array): Uint8Array {
  return tlv(0x67, content);
}

/** Checks the outer signature of a `67` request with a key this card knows (spec §3.11, §3.18). */
function checkOuterSignature(ctx: CardContext, content: Uint8Array): void {
  let req: ReturnType<typeof decodeCvRequest>;
  try {
    req = decodeCvRequest(requestTlv(content));
  } catch {
    fail(SW.WRONG_DATA, 'not an authenticated request');
  }
  if (!req.outerCar || !req.outerSignature) fail(SW.WRONG_DATA, 'request without outer signature');
  const signer = session(ctx).known.get(req.outerCar);
  if (!signer)
    fail(SW.REF_NOT_FOUND, 'the device that signed the request is unknown (verify its chain first)');
  const signed = concat(req.certificate.raw, tlv(0x42, ascii(req.outerCar)));
  const asCert = { ...req.certificate, body: signed, signature: req.outerSignature };
  let ok = false;
  try {
    ok = verifyCvcSignature(asCert, signer, signer);
  } catch {
    ok = false;
  }
  if (!ok) fail(PKA_VERIFY_CERT_FAILED_SW, 'outer signature of the request invalid');
}

function statusBytes(ctx: CardContext): Uint8Array {
  const p = ctx.state.pka!;
  const registered = p.keys.length;
  return Uint8Array.of(p.total, p.total - registered, p.required, ctx.vol.pka?.authenticated.size ?? 0);
}

/**
 * `80 54` (spec §3.18): P1=00 without data = status `N missing M authenticated`; P1=00 with the
 * content of a `67` request = register it in the next free slot (its outer signature checked with
 * a key made known by PSO VERIFY CERTIFICATE); P1=02 P2=idx = the CHR of slot idx (`9001` when
 * authenticated). `6D00` when the device was initialized without PKA.
 */
export const pka: Handler = (ctx, cmd) => {
  const p = ctx.state.pka;
  if (!p || !ctx.state.initialized) fail(SW.INS_NOT_SUPPORTED);
  if (cmd.p1 === 0x02) {
    if (cmd.data.length > 0) fail(SW.WRONG_LENGTH);
    if (cmd.p2 >= p.total) fail(SW.WRONG_P1P2);
    const k = p.keys[cmd.p2];
    if (!k) fail(SW.REF_NOT_FOUND, 'slot empty');
    const chr = ascii(decodeCvRequest(requestTlv(k)).certificate.chr);
    return { data: chr, sw: ctx.vol.pka?.authenticated.has(cmd.p2) ? 0x9001 : SW.OK };
  }
  if (cmd.p1 !== 0 || cmd.p2 !== 0) fail(SW.WRONG_P1P2);
  if (cmd.data.length > 0) {
    if (p.keys.length >= p.total) fail(SW.MEMORY_FULL, 'all public keys registered');
    checkOuterSignature(ctx, cmd.data);
    p.keys.push(cmd.data.slice());
    ctx.changed();
  }
  return { data: statusBytes(ctx) };
};

/**
 * GET CHALLENGE `00 84 00 00 Le` (spec §3.17): Le random bytes. On a device with PKA the answer is
 * also the challenge the next EXTERNAL AUTHENTICATE must sign; a new one replaces it and drops the
 * keys authenticated towards an n-of-m not yet complete (PKA_NEW_CHALLENGE in uncertain.ts).
 */
export const getChallenge: Handler = (ctx, cmd) => {
  if (cmd.p1 !== 0 || cmd.p2 !== 0) fail(SW.WRONG_P1P2);
  if (cmd.ne === undefined || cmd.data.length > 0) fail(SW.WRONG_LENGTH);
  const data = new Uint8Array(randomBytes(cmd.ne));
  if (ctx.state.pka && ctx.state.initialized) {
    const s = session(ctx);
    s.challenge = data.slice();
    if (!s.complete) s.authenticated.clear();
  }
  return { data };
};

/** Verifies a custodian's signature over SHA-256(device CHR ‖ challenge) with its registered key. */
function custodianSignatureOk(key: CvcPublicKey, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    const spki = createPublicKey({ key: Buffer.from(cvcPublicKeyToSpki(key)), format: 'der', type: 'spki' });
    if (key.modulus) return nodeVerify('sha256', message, spki, signature);
    return nodeVerify('sha256', message, { key: spki, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}

/**
 * EXTERNAL AUTHENTICATE `00 82 00 00 <signature>` (spec §3.18): the key chosen by MSE SET AT must
 * have signed SHA-256(device CHR ‖ last challenge) — ECDSA as DER (what SIGN answers) or RSA
 * PKCS#1 v1.5. When M keys are authenticated the session is authenticated and the challenge spent.
 */
export const externalAuthenticate: Handler = (ctx, cmd) => {
  if (cmd.p1 !== 0 || cmd.p2 !== 0) fail(SW.WRONG_P1P2);
  const p = ctx.state.pka;
  if (!p || !ctx.state.initialized) fail(SW.INS_NOT_SUPPORTED);
  if (cmd.data.length === 0) fail(SW.WRONG_LENGTH);
  const s = session(ctx);
  const k = s.selected === undefined ? undefined : p.keys[s.selected];
  if (!k) fail(SW.REF_NOT_FOUND, 'no key selected (MSE SET AT)');
  if (!s.challenge) fail(SW.CONDITIONS, 'no challenge pending (GET CHALLENGE)');
  const key = decodeCvRequest(requestTlv(k)).certificate.publicKey;
  const message = concat(ascii(ctx.state.deviceChr), s.challenge);
  if (!custodianSignatureOk(key, message, cmd.data)) fail(PKA_AUTH_FAILED_SW, 'signature invalid');
  s.authenticated.add(s.selected!);
  if (s.authenticated.size >= p.required) {
    s.complete = true;
    s.challenge = undefined;
  }
  return {};
};

/**
 * With PKA configured the user is authenticated by the n-of-m keys, and also by the PIN when the
 * option "combined authentication" (0010) is set; without it the PIN is not used at all.
 */
export function pkaReplacesPin(ctx: CardContext): boolean {
  return !!ctx.state.pka && (ctx.state.options & OPTION.COMBINED_AUTH) === 0;
}

/** VERIFY `00 20 00 81` on a device whose PIN PKA replaces: `9000` once authenticated, else refused. */
export function verifyReplacedPin(ctx: CardContext): Reply {
  if (ctx.vol.pka?.complete) return {};
  fail(PKA_PIN_REPLACED_SW, 'public key authentication replaces the PIN');
}

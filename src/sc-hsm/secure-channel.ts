/**
 * Chip authentication and secure messaging (spec §3.19), and the session PIN (spec §3.20).
 *
 * `openSecureChannel` reads EF 2F02 (device CVC ‖ issuer CVC), has the caller's verifier judge the
 * chain (spec §5.3; `deviceChainVerifier` of `sc-hsm-ts/x509` checks it against the SmartCard-HSM
 * Root CA), then runs EAC chip authentication with the device key: MSE SET AT
 * (`00 22 41 A4 80 0A <id-CA-ECDH-AES-CBC-CMAC-128>`), GENERAL AUTHENTICATE with an ephemeral key
 * on the device key's curve (`00 86 00 00 7C { 80 <04‖X‖Y> }` → `7C { 81 nonce, 82 token }`),
 * K_enc / K_mac = SHA-1(Z ‖ nonce ‖ 00000001 / 00000002)[0..16] with Z the X coordinate of the
 * shared point, and checks the card's token AES-CMAC(K_mac, `7F49 { 06 OID, 86 <ephemeral> }`)[0..8]:
 * only the holder of the certified device key can compute it. From then on every APDU of the
 * session is protected (secure-messaging.ts).
 */
import { createECDH, createHash, timingSafeEqual } from 'node:crypto';
import { aesCmac } from '../dkek/dkek.js';
import { ScHsmError } from '../errors.js';
import { cvcPublicKeyToSpki, decodeDeviceCertificateFile } from '../pkcs15/index.js';
import { CLA_ISO, CLA_PROPRIETARY, EF, INS, OID, PIN_USER } from '../protocol/constants.js';
import { concat, wipe } from '../util/bytes.js';
import { curveByOid } from '../util/curves.js';
import { readAll, readTlv, requireTag, tlv } from '../util/tlv.js';
import type { SessionContext } from './context.js';
import { namePinError } from './pin-guard.js';
import { checkTries } from './pins.js';
import { SecureMessaging } from './secure-messaging.js';
import { checkBytes, checkObject, typeName } from './validate.js';

/** What a chain verifier says about EF 2F02. */
export interface DeviceChainVerdict {
  /** True: the chain verifies to a root the caller trusts. */
  trusted: boolean;
  /** One sentence: why (shown in DEVICE_NOT_AUTHENTIC). */
  reason: string;
}

export interface SecureChannelOptions {
  /**
   * Judges the bytes of EF 2F02 before the device key is used (required): e.g.
   * `deviceChainVerifier()` of `sc-hsm-ts/x509`. Untrusted → DEVICE_NOT_AUTHENTIC, nothing more sent.
   */
  verifyChain: (ef2f02: Uint8Array) => DeviceChainVerdict;
}

/** The curve name node:crypto knows a SubjectPublicKeyInfo's named curve by, and its point. */
function spkiCurveAndPoint(spki: Uint8Array): { curve: string; point: Uint8Array } {
  const [alg, key] = readAll(readTlv(spki).value);
  const curveOid = alg ? readAll(alg.value)[1] : undefined;
  const curve = curveOid ? curveByOid(curveOid.value) : undefined;
  if (!curve || !key) {
    throw new ScHsmError(
      'NOT_SUPPORTED',
      'the device key is not an EC key on a curve the SmartCard-HSM uses: no chip authentication',
    );
  }
  return { curve: curve.name, point: key.value.subarray(1) };
}

function kdf(z: Uint8Array, nonce: Uint8Array, counter: number): Uint8Array {
  const h = createHash('sha1')
    .update(z)
    .update(nonce)
    .update(Uint8Array.of(0, 0, 0, counter))
    .digest();
  const k = new Uint8Array(h.subarray(0, 16));
  h.fill(0);
  return k;
}

/**
 * Chip authentication with the device key and the start of secure messaging (spec §3.19, §5.3).
 * INVALID_ARGUMENT when a channel is open already; DEVICE_NOT_AUTHENTIC when the chain is not
 * trusted or the card's token is wrong (it does not hold the certified key).
 */
export async function openSecureChannel(ctx: SessionContext, opts: SecureChannelOptions): Promise<void> {
  checkObject(opts, 'the secure channel options', { verifyChain: 'function' });
  if (typeof opts.verifyChain !== 'function') {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `openSecureChannel needs verifyChain (a function judging EF 2F02, e.g. deviceChainVerifier() of sc-hsm-ts/x509); got ${typeName(opts.verifyChain)}`,
    );
  }
  // a closed session answers SESSION_CLOSED from its channel, below
  if (ctx.channel.sm?.active && !ctx.channel.closed) {
    throw new ScHsmError('INVALID_ARGUMENT', 'the secure channel of this session is open already');
  }
  if (ctx.channel.sm && !ctx.channel.closed) throw ctx.channel.sm.refusal();
  await ctx.channel.exclusive(async () => {
    const raw = await ctx.files.read(EF.DEVICE_CERTIFICATES);
    const verdict = opts.verifyChain(raw);
    if (verdict?.trusted !== true) {
      throw new ScHsmError(
        'DEVICE_NOT_AUTHENTIC',
        `the device certificate chain does not verify: ${verdict?.reason ?? 'no reason given'}; no secure channel was opened`,
      );
    }
    const { device, issuer } = decodeDeviceCertificateFile(raw);
    const { curve, point } = spkiCurveAndPoint(cvcPublicKeyToSpki(device.publicKey, issuer?.publicKey));
    const eph = createECDH(curve);
    const ephPublic = new Uint8Array(eph.generateKeys());
    const z = new Uint8Array(eph.computeSecret(point));
    const oid = OID.CA_ECDH_AES_CBC_CMAC_128;
    await ctx.channel.exchange(
      { cla: CLA_ISO, ins: INS.MSE, p1: 0x41, p2: 0xa4, data: tlv(0x80, oid) },
      'MSE SET AT (chip authentication)',
    );
    const r = await ctx.channel.exchange(
      {
        cla: CLA_ISO,
        ins: INS.GENERAL_AUTHENTICATE,
        p1: 0,
        p2: 0,
        data: tlv(0x7c, tlv(0x80, ephPublic)),
        ne: 256,
      },
      'GENERAL AUTHENTICATE',
    );
    let nonce: Uint8Array;
    let token: Uint8Array;
    try {
      const dyn = requireTag(r.data, 0x7c, 'dynamic authentication data');
      nonce = requireTag(dyn.value, 0x81, 'nonce').value;
      token = requireTag(dyn.value, 0x82, 'authentication token').value;
    } catch (cause) {
      throw new ScHsmError(
        'MALFORMED_RESPONSE',
        'GENERAL AUTHENTICATE: the answer is not 7C { 81 nonce, 82 token }',
        {
          cause,
        },
      );
    }
    if (token.length !== 8)
      throw new ScHsmError('MALFORMED_RESPONSE', 'GENERAL AUTHENTICATE: the token is not 8 bytes');
    const kEnc = kdf(z, nonce, 1);
    const kMac = kdf(z, nonce, 2);
    wipe(z);
    const expected = aesCmac(kMac, tlv(0x7f49, tlv(0x06, oid), tlv(0x86, ephPublic))).subarray(0, 8);
    if (!timingSafeEqual(expected, token)) {
      wipe(kEnc);
      wipe(kMac);
      throw new ScHsmError(
        'DEVICE_NOT_AUTHENTIC',
        `chip authentication failed: the card's token does not prove the private key of the device certificate ${device.chr}; no secure channel was opened`,
      );
    }
    ctx.channel.sm = new SecureMessaging(kEnc, kMac);
    wipe(kEnc);
    wipe(kMac);
  });
}

function requireSecureChannel(ctx: SessionContext, what: string): void {
  // a closed session answers SESSION_CLOSED from its channel
  if (!ctx.channel.sm?.active && !ctx.channel.closed) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `${what} works only inside a secure channel (spec §3.20); nothing was sent`,
      { fix: 'open the secure channel first: openSecureChannel (the command: --secure)' },
    );
  }
}

/**
 * The session PIN (`80 5A 01 81 00`, spec §3.20): bytes the card accepts instead of the user PIN
 * in a later secure channel, while it keeps them (option `0004`: until the card is reset). Only
 * inside a secure channel and after the PIN was verified. NOT_SUPPORTED when the device was not
 * initialized with the session-PIN option.
 */
export async function getSessionPin(ctx: SessionContext): Promise<Uint8Array<ArrayBuffer>> {
  requireSecureChannel(ctx, 'the session PIN');
  const r = await ctx.channel.exchange(
    { cla: CLA_PROPRIETARY, ins: INS.SESSION_PIN, p1: 0x01, p2: PIN_USER, ne: 256 },
    'GET SESSION PIN',
    {
      overrides: {
        0x6982: [
          'SECURITY_STATUS',
          'the session PIN is given after the user PIN was verified: verify it first',
        ],
        0x6985: [
          'NOT_SUPPORTED',
          'the device was not initialized with the session PIN enabled (option 0004)',
        ],
        0x6a81: [
          'NOT_SUPPORTED',
          'the device was not initialized with the session PIN enabled (option 0004)',
        ],
      } as never,
    },
  );
  if (r.data.length < 6 || r.data.length > 16) {
    throw new ScHsmError('MALFORMED_RESPONSE', `GET SESSION PIN: ${r.data.length} bytes, expected 6 to 16`);
  }
  const pin = new Uint8Array(r.data.length);
  pin.set(r.data);
  wipe(r.data);
  return pin;
}

/**
 * VERIFY with a session PIN (`00 20 00 81`, spec §3.6, §3.20) inside a secure channel, after the
 * tries check of the user PIN (a wrong session PIN costs a user-PIN try, uncertain.ts).
 */
export async function verifySessionPin(
  ctx: SessionContext,
  sessionPin: Uint8Array,
  opts: { force?: boolean } = {},
): Promise<void> {
  checkObject(opts, 'the options', { force: 'boolean' });
  checkBytes(sessionPin, 'the session PIN', 6, 16);
  requireSecureChannel(ctx, 'a session PIN');
  const pin = concat(sessionPin);
  try {
    await ctx.channel.exclusive(async () => {
      await checkTries(ctx, PIN_USER, opts.force, 'VERIFY');
      try {
        await ctx.channel.exchange(
          { cla: CLA_ISO, ins: INS.VERIFY, p1: 0, p2: PIN_USER, data: pin },
          'VERIFY',
          {
            overrides: {
              0x6a88: ['NOT_INITIALIZED', 'the device is not initialized (no PIN set)'],
              0x6984: [
                'TRANSPORT_PIN_ACTIVE',
                'the transport PIN is still active: change the PIN first (pin change)',
              ],
            } as never,
          },
        );
      } catch (e) {
        throw namePinError(e, PIN_USER);
      }
    });
  } finally {
    wipe(pin);
  }
}

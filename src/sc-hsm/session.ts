/**
 * The SmartCard-HSM session: one selection of the applet, then verbs for the commands of
 * spec §3 that a host uses. Every multi-APDU operation runs inside `channel.exclusive`, so that no
 * other exchange of this process is interleaved (and, over PC/SC, no other application).
 *
 * PIN safety: no command carrying a PIN is ever sent twice by this class; before each VERIFY,
 * RESET RETRY COUNTER or re-INITIALIZE the tries left are queried (a query costs no try), a blocked
 * PIN is reported without sending anything, and with one try left the call refuses unless
 * `force` is given (pins.ts, init.ts).
 *
 * This class composes the areas, each a file with the bytes of its commands: device.ts (SELECT,
 * status), pins.ts, init.ts, dkek.ts, keys.ts (generation, listing, deletion), crypto.ts (sign,
 * decipher, ECDH, random), wrap.ts (wrap, unwrap, forced replace), objects.ts (certificates, data
 * objects) and files.ts. Each method passes its area the session's context (context.ts).
 */
import type { ApduChannel, Transport } from '../apdu/transport.js';
import type { ScHsmError } from '../errors.js';
import type { CertificateDescription, CvCertificate, DataObjectDescription } from '../pkcs15/index.js';
import { PIN_USER } from '../protocol/constants.js';
import { asyncDispose } from '../util/dispose.js';
import type { AesCbcOptions } from './aes.js';
import * as aes from './aes.js';
import { checkOpen, closeSession, SessionChannel, type SessionContext, sessionContext } from './context.js';
import type { DecryptMechanism, SignMechanism } from './crypto.js';
import * as crypto from './crypto.js';
import type { DerivedKey, DeriveEcKeyOptions } from './derive.js';
import * as derive from './derive.js';
import type { AppletInfo, DeviceStatus } from './device.js';
import * as device from './device.js';
import type { DkekStatus, ImportDkekShareOptions, KeyDomainStatus } from './dkek.js';
import * as dkek from './dkek.js';
import type { DeleteKeyDomainOptions, KeyDomains } from './domains.js';
import * as domains from './domains.js';
import type { CardFiles } from './files.js';
import type { InitializeOptions } from './init.js';
import * as init from './init.js';
import { type KeyRestrictions, readKeyRestrictions } from './key-restrictions.js';
import type { GeneratedKey, KeyInfo, KeyPairSpec, OrphanedKeyFiles } from './keys.js';
import * as keys from './keys.js';
import * as objects from './objects.js';
import type { PinStatus } from './pins.js';
import * as pins from './pins.js';
import type { PkaChallenge, PkaResponse, PkaSlot, PkaStatus } from './pka.js';
import * as pka from './pka.js';
import { precheck as precheckOp } from './precheck.js';
import type { SecureChannelOptions } from './secure-channel.js';
import * as secure from './secure-channel.js';
import { checkBytes, checkFid, checkInt } from './validate.js';
import type { UnwrapOptions } from './wrap.js';
import * as wrap from './wrap.js';

export type { AesCbcOptions } from './aes.js';
export type { DecryptMechanism, SignMechanism } from './crypto.js';
export { signAlgorithm, signAlgorithmChoices } from './crypto.js';
export type { DerivedKey, DerivedKeyWarning, DeriveEcKeyOptions, LostRestriction } from './derive.js';
export type { AppletInfo, DeviceStatus } from './device.js';
export {
  type DkekStatus,
  dkekKcvUnknown,
  type ImportDkekShareOptions,
  type KeyDomainStatus,
} from './dkek.js';
export type { DeleteKeyDomainOptions, KeyDomains } from './domains.js';

/** What generateAesKey takes (keys.ts): size, label, ID, key reference, restrictions, key domain. */
export type AesKeySpec = Parameters<typeof keys.generateAesKey>[1];
export type { InitializeOptions } from './init.js';
export {
  algorithmBytes,
  algorithmNameList,
  algorithmNames,
  type KeyRestrictions,
} from './key-restrictions.js';
export type { GeneratedKey, KeyInfo, KeyPairSpec, KeyType, OrphanedKeyFiles } from './keys.js';
export { intrinsicKeyId, publicKeyObject, spkiPoint } from './keys.js';
export { certificateSpki } from './objects.js';
export type { PinState, PinStatus } from './pins.js';
export type { PkaChallenge, PkaResponse, PkaSlot, PkaStatus } from './pka.js';
export type { DeviceChainVerdict, SecureChannelOptions } from './secure-channel.js';
export type { KeyReplaceErrorOptions, ReplacedKey, UnwrapOptions } from './wrap.js';
export { KeyReplaceError } from './wrap.js';

export interface SessionOptions {
  /**
   * The user PIN's retry counter as configured at initialization (1–10), for a caller that keeps
   * it: the card does not report it. See {@link SmartCardHsm.userPinRetryCounter}.
   */
  userPinRetryCounter?: number;
}

export class SmartCardHsm {
  readonly channel: ApduChannel;
  readonly files: CardFiles;
  /** What the areas share: the channel, the files and what the session remembers (context.ts). */
  private readonly ctx: SessionContext;

  private constructor(
    readonly transport: Transport,
    channel: SessionChannel,
    info: AppletInfo,
  ) {
    this.ctx = sessionContext(transport, channel, info);
    this.channel = channel;
    this.files = this.ctx.files;
  }

  /** Selects the applet and returns a session (spec §1.3). */
  static async open(transport: Transport, opts: SessionOptions = {}): Promise<SmartCardHsm> {
    checkOpen(transport, opts);
    const channel = new SessionChannel(transport);
    const hsm = new SmartCardHsm(transport, channel, await SmartCardHsm.selectApplet(channel));
    if (opts.userPinRetryCounter !== undefined) hsm.ctx.userPinRetries = opts.userPinRetryCounter;
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
    return this.ctx.userPinRetries;
  }

  set userPinRetryCounter(n: number | undefined) {
    if (n !== undefined) checkInt(n, 1, 10, 'the user PIN retry counter (userPinRetryCounter)');
    this.ctx.userPinRetries = n;
  }

  /** SELECT of the applet as OpenSC sends it (`00 A4 04 00 0B <AID> 00`), with the FCP parsed. */
  static async selectApplet(channel: ApduChannel): Promise<AppletInfo> {
    return device.selectApplet(channel);
  }

  /** Reads firmware version and options from the FCP's tag 85 (spec §1.3). */
  static parseFcp(fcp: Uint8Array): AppletInfo {
    return device.parseFcp(fcp);
  }

  /** Firmware version and options of the applet, from the FCP of the last SELECT. */
  get info(): AppletInfo {
    return this.ctx.info;
  }

  /** Selects the applet again: this logs the user out (the card drops the PIN state, spec §1.3). */
  async logout(): Promise<void> {
    this.ctx.info = await SmartCardHsm.selectApplet(this.channel);
  }

  /**
   * Ends the session and closes its transport. Every later call of this session rejects with
   * SESSION_CLOSED (nothing is sent); closing again does nothing.
   */
  async close(): Promise<void> {
    return closeSession(this.ctx);
  }

  /**
   * Resolves (never rejects) with a CARD_REMOVED error once the device is gone, where the
   * transport can tell (the PC/SC transport's `cardRemoved`: pcscd reported the card removed or
   * its reader unplugged); pending forever otherwise. A long-running service awaits it to drop
   * the session and wait for the device again (`watchSmartCardHsms`).
   */
  get removed(): Promise<ScHsmError> {
    const t = this.ctx.transport as { cardRemoved?: Promise<ScHsmError> };
    return t.cardRemoved ?? new Promise<ScHsmError>(() => undefined);
  }

  /** `await using hsm = await SmartCardHsm.open(t)`: {@link close} on leaving the block. */
  [asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Number of APDUs this session's channel has exchanged. */
  get apduCount(): number {
    return this.channel.apduCount;
  }

  /** VERIFY without data: the PIN's state, costing no try (spec §3.6). */
  async pinStatus(ref: number = PIN_USER): Promise<PinStatus> {
    return pins.pinStatus(this.ctx, ref);
  }

  /** IMPORT DKEK SHARE without data: the DKEK's state (spec §3.10); undefined when no DKEK is configured. */
  async dkekStatus(): Promise<DkekStatus | undefined> {
    return dkek.dkekStatus(this.ctx);
  }

  /** Device CHR from EF 2F02 (cached). */
  async deviceChr(): Promise<string | undefined> {
    return device.deviceChr(this.ctx);
  }

  /** The device certificate and its issuer from EF 2F02 (spec §5.3). */
  async deviceCertificates(): Promise<{ device: CvCertificate; issuer: CvCertificate; raw: Uint8Array }> {
    return device.deviceCertificates(this.ctx);
  }

  /** Token label from EF.TokenInfo (2F03), if written. */
  async label(): Promise<string | undefined> {
    return device.label(this.ctx);
  }

  /** Everything bare `sc-hsm-tool` shows, and more (spec §1.4). Costs no PIN try. */
  async status(): Promise<DeviceStatus> {
    return device.status(this.ctx);
  }

  /**
   * VERIFY the user PIN (spec §3.6). The tries left are queried first: a blocked PIN or a device
   * with one try left is reported without sending the PIN (unless `force`, or a retry counter of 1
   * known to this session, see {@link userPinRetryCounter}). The PIN is 6–15 printable ASCII
   * characters (see parseUserPin).
   */
  async verifyPin(pin: string, opts: { force?: boolean } = {}): Promise<void> {
    return pins.verifyPin(this.ctx, pin, opts);
  }

  /**
   * Chip authentication with the device key and secure messaging for the rest of the session
   * (GENERAL AUTHENTICATE, spec §3.19): EF 2F02 is judged by `opts.verifyChain` first (e.g.
   * `deviceChainVerifier()` of `sc-hsm-ts/x509`). Afterwards every APDU is protected and every
   * answer checked; a fault ends the channel (SECURE_MESSAGING) and nothing is re-sent.
   */
  async openSecureChannel(opts: SecureChannelOptions): Promise<void> {
    return secure.openSecureChannel(this.ctx, opts);
  }

  /** True while this session's secure channel is open (see {@link openSecureChannel}). */
  get secureChannel(): boolean {
    return this.ctx.channel.sm?.active === true;
  }

  /**
   * A session PIN (`80 5A 01 81`, spec §3.20), inside the secure channel after the PIN was verified:
   * a later secure session may verify with it instead of the PIN ({@link verifySessionPin}) while
   * the card keeps it (option `0004`: until the card is reset). A secret: keep it like the PIN.
   */
  async getSessionPin(): Promise<Uint8Array<ArrayBuffer>> {
    return secure.getSessionPin(this.ctx);
  }

  /** VERIFY with a session PIN inside the secure channel (spec §3.20), after the tries check. */
  async verifySessionPin(sessionPin: Uint8Array, opts: { force?: boolean } = {}): Promise<void> {
    return secure.verifySessionPin(this.ctx, sessionPin, opts);
  }

  /** CHANGE REFERENCE DATA for the user PIN: old ‖ new (spec §3.7). Also replaces a transport PIN. */
  async changePin(oldPin: string, newPin: string, opts: { force?: boolean } = {}): Promise<void> {
    return pins.changePin(this.ctx, oldPin, newPin, opts);
  }

  /** Public key authentication status `80 54 00 00` (spec §3.18); undefined without PKA. */
  async pkaStatus(): Promise<PkaStatus | undefined> {
    return pka.pkaStatus(this.ctx);
  }

  /** The PKA registration slots `80 54 02 idx`: CHR and authenticated state of each (spec §3.18). */
  async pkaSlots(): Promise<PkaSlot[]> {
    return pka.pkaSlots(this.ctx);
  }

  /**
   * Registers a custodian's key from an `sc-hsm-tool --export-for-pub-key-auth` file (old or new
   * format) after the card verified its device chain (MSE SET DST, PSO VERIFY CERTIFICATE; §3.18).
   */
  async pkaRegister(file: Uint8Array): Promise<{ status: PkaStatus; chr: string }> {
    return pka.pkaRegister(this.ctx, file);
  }

  /** Key `keyRef` of this device as a PKA registration file in sc-hsm-tool's format (spec §3.18). */
  async pkaExport(keyRef: number): Promise<Uint8Array<ArrayBuffer>> {
    return pka.pkaExport(this.ctx, keyRef);
  }

  /** GET CHALLENGE for the custodians, with this device's CHR (spec §3.17, §3.18). */
  async pkaChallenge(): Promise<PkaChallenge> {
    return pka.pkaChallenge(this.ctx);
  }

  /** A custodian's answer to another device's challenge, signed here with key `keyRef` (spec §3.18). */
  async pkaRespond(keyRef: number, challenge: PkaChallenge): Promise<PkaResponse> {
    return pka.pkaRespond(this.ctx, keyRef, challenge);
  }

  /** MSE SET AT + EXTERNAL AUTHENTICATE for each answer to this session's challenge (spec §3.18). */
  async pkaAuthenticate(responses: PkaResponse[]): Promise<PkaStatus> {
    return pka.pkaAuthenticate(this.ctx, responses);
  }

  /** CHANGE REFERENCE DATA for the SO-PIN: 8 ‖ 8 binary bytes (spec §3.7). */
  async changeSoPin(oldSoPin: string, newSoPin: string, opts: { force?: boolean } = {}): Promise<void> {
    return pins.changeSoPin(this.ctx, oldSoPin, newSoPin, opts);
  }

  /**
   * RESET RETRY COUNTER with the SO-PIN (spec §3.8): P1=00 with a new user PIN, P1=01 to reset
   * the counter only. Needs option "RESET RETRY COUNTER" (set by default at initialization).
   * The SO-PIN's tries are checked first: a blocked SO-PIN cannot be unblocked by anything.
   */
  async unblockPin(opts: { soPin: string; newPin?: string; force?: boolean }): Promise<void> {
    return pins.unblockPin(this.ctx, opts);
  }

  /**
   * INITIALIZE DEVICE (spec §3.9), then the label into EF.TokenInfo as OpenSC writes it. Erases
   * every key, certificate and data object on the device. Everything is validated on the host
   * first; on an initialized device the SO-PIN's tries left are checked before it is sent.
   * The session then knows the user PIN's retry counter ({@link userPinRetryCounter}).
   */
  async initialize(o: InitializeOptions): Promise<void> {
    return init.initialize(this.ctx, o);
  }

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
  async importDkekShare(share: Uint8Array, opts: ImportDkekShareOptions = {}): Promise<KeyDomainStatus> {
    return dkek.importDkekShare(this.ctx, share, opts);
  }

  /**
   * MANAGE KEY DOMAIN status of one key domain (`80 52 00 <domain>`, spec §3.10): its DKEK's
   * shares, outstanding count and KCV; undefined when the domain is unused; KEY_DOMAIN_OUT_OF_RANGE
   * beyond the device's domains. Costs no PIN try.
   */
  async keyDomainStatus(domain: number): Promise<KeyDomainStatus | undefined> {
    return domains.keyDomainStatus(this.ctx, domain);
  }

  /** Every key domain slot of the device and the status of those in use (spec §3.10). */
  async listKeyDomains(): Promise<KeyDomains> {
    return domains.listKeyDomains(this.ctx);
  }

  /**
   * MANAGE KEY DOMAIN `80 52 01 <domain>` (spec §3.10): creates a DKEK domain expecting `shares`
   * shares (1–255), to be imported with `importDkekShare(share, { domain })`. Needs the user PIN.
   * A domain beyond the device's (KEY_DOMAIN_OUT_OF_RANGE) or one that exists (KEY_DOMAIN_EXISTS)
   * is refused before anything that changes the device is sent.
   */
  async createKeyDomain(domain: number, shares: number): Promise<KeyDomainStatus> {
    return domains.createKeyDomain(this.ctx, domain, shares);
  }

  /**
   * MANAGE KEY DOMAIN `80 52 03 <domain>` (delete the domain: refused with KEY_DOMAIN_NOT_EMPTY
   * while keys belong to it) or, with `dkekOnly`, `80 52 04 <domain>` (delete its DKEK: the shares
   * must be imported again; the keys stay). Needs the user PIN (spec §3.10).
   */
  async deleteKeyDomain(
    domain: number,
    opts: DeleteKeyDomainOptions = {},
  ): Promise<KeyDomainStatus | undefined> {
    return domains.deleteKeyDomain(this.ctx, domain, opts);
  }

  /** ENUMERATE OBJECTS: the id of every key and file on the device (spec §3.5). */
  async enumerate(): Promise<number[]> {
    return this.files.enumerate();
  }

  /** Reads a whole file (READ BINARY, spec §3.2). */
  async readFile(fid: number): Promise<Uint8Array> {
    checkFid(fid);
    return this.files.read(fid);
  }

  /** Writes a file, replacing one that exists (UPDATE BINARY, spec §3.3). */
  async writeFile(fid: number, data: Uint8Array): Promise<void> {
    checkFid(fid);
    checkBytes(data, 'the file content', 0, 0xffff);
    await this.files.write(fid, data);
  }

  /** DELETE FILE (spec §3.4). */
  async deleteFile(fid: number): Promise<void> {
    checkFid(fid);
    await this.files.delete(fid);
  }

  /**
   * GENERATE ASYMMETRIC KEY PAIR (spec §3.11), then the private key description in C4xx the way
   * OpenSC writes it, so that `pkcs15-tool --dump` and PKCS#11 applications see the key. The user
   * PIN must be verified.
   */
  async generateKeyPair(spec: KeyPairSpec): Promise<GeneratedKey> {
    return keys.generateKeyPair(this.ctx, spec);
  }

  /** GENERATE SYMMETRIC KEY for AES (spec §3.12) with its secret key description. */
  async generateAesKey(spec: AesKeySpec): Promise<{ keyRef: number; id: Uint8Array }> {
    return keys.generateAesKey(this.ctx, spec);
  }

  /**
   * The restrictions the card reports for a key (SELECT of CCxx, its FCP; spec §3.11): the
   * algorithm list (tag 91) and the uses left (tag 90). A field is absent when the key has none or
   * the card does not report it (key-restrictions.ts).
   */
  async keyRestrictions(keyRef: number): Promise<KeyRestrictions> {
    return this.channel.exclusive(() => readKeyRestrictions(this.ctx, keyRef));
  }

  /**
   * DERIVE EC KEY (`80 76`, spec §3.15): a new EC key at `dstKeyRef` with d' = d + tweak mod n
   * from the key at `srcKeyRef`. The host computes Q' = Q + tweak·G, checks the card's key with a
   * signature over a CV request of Q', and stores that request (CExx) and the description (C4xx).
   * The result carries the new key's restrictions as the card reports them and `warning` when the
   * card made it less restricted than the source (delete it then). Needs the user PIN. See
   * derive.ts for what is refused before anything is sent.
   */
  async deriveEcKey(
    srcKeyRef: number,
    dstKeyRef: number,
    tweak: Uint8Array,
    opts: DeriveEcKeyOptions,
  ): Promise<DerivedKey> {
    return derive.deriveEcKey(this.ctx, srcKeyRef, dstKeyRef, tweak, opts);
  }

  /** Every key on the device (key id 0, the device key, excluded), with label, reference and ID side by side. */
  async listKeys(): Promise<KeyInfo[]> {
    return keys.listKeys(this.ctx);
  }

  /**
   * Runs `op` (a call on this session) only up to its first command that needs the PIN or changes
   * the card: its checks from public card data throw as they would, nothing else is sent
   * (precheck.ts). Call it before verifyPin so that refusable input costs no PIN try.
   */
  async precheck(op: () => Promise<unknown>): Promise<void> {
    return precheckOp(this.ctx, op);
  }

  /** One key's information (cached after the first read in this session). */
  async keyInfo(keyRef: number): Promise<KeyInfo> {
    return keys.keyInfo(this.ctx, keyRef);
  }

  /**
   * Descriptions (C4xx) and certificates (CExx) of key references that hold no key (CCxx): what an
   * interrupted replace or delete can leave. `deleteKey` removes them; a forced unwrap or restore
   * onto the reference does too.
   */
  async listOrphanedKeyFiles(): Promise<OrphanedKeyFiles[]> {
    return keys.listOrphanedKeyFiles(this.ctx);
  }

  /**
   * Deletes a key: its certificate and description first, then the key (spec §10.4); on a
   * reference holding only a leftover description or certificate, those (KEY_NOT_FOUND: nothing).
   */
  async deleteKey(keyRef: number): Promise<void> {
    return keys.deleteKey(this.ctx, keyRef);
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
  ): Promise<Uint8Array<ArrayBuffer>> {
    return crypto.sign(this.ctx, keyRef, mechanism, data, opts);
  }

  /** DECIPHER with an RSA key (spec §3.14): raw on the card (21), padding removed on the host. */
  async decrypt(
    keyRef: number,
    mechanism: DecryptMechanism,
    cryptogram: Uint8Array,
  ): Promise<Uint8Array<ArrayBuffer>> {
    return crypto.decrypt(this.ctx, keyRef, mechanism, cryptogram);
  }

  /**
   * ECDH (DECIPHER algorithm 80, spec §3.14) with the peer's public key (SPKI DER or an
   * uncompressed point). Returns the shared secret: the X coordinate, field length bytes.
   */
  async ecdh(keyRef: number, peer: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    return crypto.ecdh(this.ctx, keyRef, peer);
  }

  /**
   * AES-CBC encryption with an AES key (CIPHER algorithm 10, spec §3.15): the caller's IV and
   * PKCS#7 padding (unless `padding: 'none'`) applied on the host around the card's zero-IV CBC;
   * long data in several APDUs (aes.ts). Standard AES-CBC output.
   */
  async aesEncrypt(keyRef: number, data: Uint8Array, opts: AesCbcOptions): Promise<Uint8Array<ArrayBuffer>> {
    return aes.aesEncrypt(this.ctx, keyRef, data, opts);
  }

  /**
   * AES-CBC decryption with an AES key (CIPHER algorithm 11, spec §3.15), IV and PKCS#7 on the
   * host; a bad padding is INCORRECT_DATA with one fixed message (no padding oracle).
   */
  async aesDecrypt(
    keyRef: number,
    ciphertext: Uint8Array,
    opts: AesCbcOptions,
  ): Promise<Uint8Array<ArrayBuffer>> {
    return aes.aesDecrypt(this.ctx, keyRef, ciphertext, opts);
  }

  /** AES-CMAC by the card (CIPHER algorithm 18, spec §3.15): 16 bytes; the message fits one APDU. */
  async aesCmac(keyRef: number, data: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    return aes.aesCmac(this.ctx, keyRef, data);
  }

  /**
   * Key derivation from an AES key (CIPHER algorithm 99, spec §3.15), 1–32 bytes. The firmware's
   * KDF is UNCERTAIN (spec §13 item 12; the virtual card runs HKDF-SHA-256): see aes.ts.
   */
  async aesDerive(
    keyRef: number,
    data: Uint8Array,
    opts: { length?: number } = {},
  ): Promise<Uint8Array<ArrayBuffer>> {
    return aes.aesDerive(this.ctx, keyRef, data, opts);
  }

  /** GET CHALLENGE (spec §3.17), in calls of at most 1024 bytes. */
  async getChallenge(length: number): Promise<Uint8Array<ArrayBuffer>> {
    return crypto.getChallenge(this.ctx, length);
  }

  /**
   * WRAP KEY (spec §3.16): the key blob encrypted under the DKEK. A blob made under the DKEK of 32
   * zero bytes (its KCV, the blob's first 8 bytes, is `66687AADF862BD77`) is wiped and refused
   * with DKEK_DEGENERATE: it would protect the key from nobody.
   */
  async wrapKey(keyRef: number): Promise<Uint8Array> {
    return wrap.wrapKey(this.ctx, keyRef);
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
    return wrap.unwrapKey(this.ctx, keyRef, blob, opts);
  }

  /** The `.bin` file of `sc-hsm-tool --wrap-key` for a key: blob, description and certificate (spec §8.2). */
  async backupKey(keyRef: number): Promise<Uint8Array> {
    return wrap.backupKey(this.ctx, keyRef);
  }

  /**
   * Restores a `.bin` wrap file onto `keyRef`: UNWRAP KEY, then the key description (with its
   * key reference set to `keyRef`) and the certificate (spec §8.2). The checks and the safe forced
   * replace are those of {@link unwrapKey}; without `force`, a reference holding a description or
   * certificate counts as occupied too.
   */
  async restoreKey(bin: Uint8Array, keyRef: number, opts: UnwrapOptions = {}): Promise<void> {
    return wrap.restoreKey(this.ctx, bin, keyRef, opts);
  }

  /** Stores an X.509 certificate for a key in CExx (spec §6.4, §10.4). */
  async storeCertificate(keyRef: number, der: Uint8Array): Promise<void> {
    return objects.storeCertificate(this.ctx, keyRef, der);
  }

  /** The X.509 certificate stored for a key, or undefined when CExx holds none (only a CV request). */
  async readCertificate(keyRef: number): Promise<Uint8Array | undefined> {
    return objects.readCertificate(this.ctx, keyRef);
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
    return objects.writeDataObject(this.ctx, o);
  }

  /** Every data object description (C9xx) with the file it points to. */
  async listDataObjects(): Promise<
    (DataObjectDescription & { number: number; fid: number; private: boolean })[]
  > {
    return objects.listDataObjects(this.ctx);
  }

  /** Reads a data object by its number (CFxx, or CDxx which needs the user PIN). */
  async readDataObject(number: number): Promise<Uint8Array> {
    return objects.readDataObject(this.ctx, number);
  }

  /** Deletes a data object and its description. */
  async deleteDataObject(number: number): Promise<void> {
    return objects.deleteDataObject(this.ctx, number);
  }

  /** Stores a CA certificate in CAxx with its description in C8xx, as OpenSC does (spec §6.4). */
  async storeCaCertificate(
    der: Uint8Array,
    o: { label: string; id: Uint8Array },
  ): Promise<{ number: number }> {
    return objects.storeCaCertificate(this.ctx, der, o);
  }

  /** CA certificates with their descriptions (C8xx → CAxx). */
  async listCaCertificates(): Promise<
    (CertificateDescription & { number: number; certificate: Uint8Array })[]
  > {
    return objects.listCaCertificates(this.ctx);
  }
}

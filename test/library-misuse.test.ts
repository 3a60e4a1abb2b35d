/**
 * The library's own misuse (issue #10 §9). Every public method of the session, enumerated from the
 * prototype so that a new one cannot escape:
 *   - with wrong argument types or ranges it rejects with a typed ScHsmError (INVALID_ARGUMENT, or
 *     INVALID_PIN / INVALID_SO_PIN for PINs), never a TypeError, and sends nothing;
 *   - after close() it rejects with SESSION_CLOSED and sends nothing, on any transport;
 * and a closed virtual card refuses like a removed one.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { testCertificate } from '../harness/certificate.js';
import { encodeCommand } from '../src/apdu/command.js';
import type { Transport } from '../src/apdu/transport.js';
import { ScHsmError } from '../src/errors.js';
import { type KeyPairSpec, SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { ascii, concat, fromHex } from '../src/util/bytes.js';
import { deviceChainVerifier } from '../src/x509/index.js';

const SO_PIN = '3537363231383830';
const PIN = '648219';
const SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');

/** Counts what reaches the card. */
class Counting implements Transport {
  readonly extendedLength = true;
  sent = 0;
  constructor(readonly card: VirtualSmartCardHsm) {}
  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    this.sent++;
    return this.card.transmit(apdu);
  }
  async close(): Promise<void> {
    await this.card.close();
  }
}

type Call = (h: SmartCardHsm) => Promise<unknown>;

/** What a wrong argument may be reported as: the argument's own kind of error where it has one. */
const TYPED = ['INVALID_ARGUMENT', 'INVALID_PIN', 'INVALID_SO_PIN', 'INVALID_KEY_BLOB', 'INVALID_WRAP_FILE'];
// biome-ignore lint/suspicious/noExplicitAny: deliberately wrong arguments
const any = (v: unknown): any => v;

let state: string;
let blob: Uint8Array;
let bin: Uint8Array;
let der: Uint8Array;
const ec: KeyPairSpec = { type: 'ec', curve: 'prime256v1', label: 'ec' };
const data = ascii('data');
/** An sc-hsm-tool export file (fixtures/pka/README.md). */
const PKA_FILE = new Uint8Array(readFileSync(new URL('../fixtures/pka/opensc-export.pka', import.meta.url)));

/**
 * For each public method: calls with wrong arguments, and one call with good ones (used on a
 * closed session). A new public method must be added here.
 */
const METHODS: Record<string, { bad: Call[]; ok: Call }> = {
  openSecureChannel: {
    bad: [
      (h) => h.openSecureChannel(any(undefined)),
      (h) => h.openSecureChannel(any(null)),
      (h) => h.openSecureChannel(any({})),
      (h) => h.openSecureChannel(any({ verifyChain: 'trusted' })),
    ],
    ok: (h) => h.openSecureChannel({ verifyChain: deviceChainVerifier({ acceptVirtual: true }) }),
  },
  // outside a secure channel both are refused before anything is sent
  getSessionPin: { bad: [(h) => h.getSessionPin()], ok: (h) => h.getSessionPin() },
  verifySessionPin: {
    bad: [
      (h) => h.verifySessionPin(any('12345678')),
      (h) => h.verifySessionPin(new Uint8Array(8)),
      (h) => h.verifySessionPin(new Uint8Array(8), any({ force: 1 })),
    ],
    ok: (h) => h.verifySessionPin(new Uint8Array(8)),
  },
  logout: { bad: [], ok: (h) => h.logout() },
  close: { bad: [], ok: (h) => h.close() },
  pinStatus: {
    bad: [(h) => h.pinStatus(0x85), (h) => h.pinStatus(any('81')), (h) => h.pinStatus(0x181)],
    ok: (h) => h.pinStatus(),
  },
  dkekStatus: { bad: [], ok: (h) => h.dkekStatus() },
  deviceChr: { bad: [], ok: (h) => h.deviceChr() },
  deviceCertificates: { bad: [], ok: (h) => h.deviceCertificates() },
  label: { bad: [], ok: (h) => h.label() },
  status: { bad: [], ok: (h) => h.status() },
  verifyPin: {
    bad: [
      (h) => h.verifyPin(any(undefined)),
      (h) => h.verifyPin(any(648219)),
      (h) => h.verifyPin(PIN, any(null)),
      (h) => h.verifyPin(PIN, any({ force: 'yes' })),
      (h) => h.verifyPin('ééé'),
      (h) => h.verifyPin(` ${PIN}`),
    ],
    ok: (h) => h.verifyPin(PIN),
  },
  changePin: {
    bad: [
      (h) => h.changePin(PIN, any(undefined)),
      (h) => h.changePin(any(undefined), PIN),
      (h) => h.changePin(PIN, '123456', any('force')),
    ],
    ok: (h) => h.changePin(PIN, '123456'),
  },
  changeSoPin: {
    bad: [(h) => h.changeSoPin(SO_PIN, any(null)), (h) => h.changeSoPin(SO_PIN, 'xyz')],
    ok: (h) => h.changeSoPin(SO_PIN, SO_PIN),
  },
  unblockPin: {
    bad: [
      (h) => h.unblockPin(any(undefined)),
      (h) => h.unblockPin(any(null)),
      (h) => h.unblockPin(any({ soPin: 1234 })),
      (h) => h.unblockPin(any({ soPin: SO_PIN, newPin: 5 })),
    ],
    ok: (h) => h.unblockPin({ soPin: SO_PIN }),
  },
  initialize: {
    bad: [
      (h) => h.initialize(any(undefined)),
      (h) => h.initialize(any(null)),
      (h) => h.initialize(any({ soPin: SO_PIN, userPin: PIN, retryCounter: '3' })),
      (h) => h.initialize(any({ soPin: SO_PIN, userPin: PIN, label: 7 })),
      (h) => h.initialize({ soPin: SO_PIN, userPin: PIN, retryCounter: 4 }),
      (h) => h.initialize(any({ soPin: SO_PIN, userPin: PIN, dkekShares: '1' })),
    ],
    ok: (h) => h.initialize({ soPin: SO_PIN, userPin: PIN }),
  },
  importDkekShare: {
    bad: [
      (h) => h.importDkekShare(any(undefined)),
      (h) => h.importDkekShare(new Uint8Array(31)),
      (h) => h.importDkekShare(SHARE, any(null)),
    ],
    ok: (h) => h.importDkekShare(SHARE),
  },
  keyDomainStatus: {
    bad: [
      (h) => h.keyDomainStatus(any(undefined)),
      (h) => h.keyDomainStatus(-1),
      (h) => h.keyDomainStatus(255),
    ],
    ok: (h) => h.keyDomainStatus(0),
  },
  listKeyDomains: { bad: [], ok: (h) => h.listKeyDomains() },
  createKeyDomain: {
    bad: [
      (h) => h.createKeyDomain(any('1'), 1),
      (h) => h.createKeyDomain(1, 0),
      (h) => h.createKeyDomain(1, 256),
      (h) => h.createKeyDomain(1, any(undefined)),
    ],
    ok: (h) => h.createKeyDomain(1, 1),
  },
  deleteKeyDomain: {
    bad: [
      (h) => h.deleteKeyDomain(any(null)),
      (h) => h.deleteKeyDomain(1, any({ dkekOnly: 'yes' })),
      (h) => h.deleteKeyDomain(1, any('dkek-only')),
    ],
    ok: (h) => h.deleteKeyDomain(1),
  },
  enumerate: { bad: [], ok: (h) => h.enumerate() },
  readFile: {
    bad: [
      (h) => h.readFile(0x12f02),
      (h) => h.readFile(-1),
      (h) => h.readFile(any('2F02')),
      (h) => h.readFile(0),
    ],
    ok: (h) => h.readFile(0x2f02),
  },
  writeFile: {
    bad: [
      (h) => h.writeFile(0x1cf10, data),
      (h) => h.writeFile(0xcf10, any('abc')),
      (h) => h.writeFile(0xcf10, any(undefined)),
    ],
    ok: (h) => h.writeFile(0xcf10, data),
  },
  deleteFile: {
    bad: [(h) => h.deleteFile(0x1c401), (h) => h.deleteFile(any(undefined))],
    ok: (h) => h.deleteFile(0xc401),
  },
  getChallenge: {
    bad: [
      (h) => h.getChallenge(0),
      (h) => h.getChallenge(65537),
      (h) => h.getChallenge(any('8')),
      (h) => h.getChallenge(1.5),
    ],
    ok: (h) => h.getChallenge(8),
  },
  generateKeyPair: {
    bad: [
      (h) => h.generateKeyPair(any(null)),
      (h) => h.generateKeyPair(any(undefined)),
      (h) => h.generateKeyPair(any({ type: 'dsa', label: 'x' })),
      (h) => h.generateKeyPair(any({ type: 'ec', label: 'x' })),
      (h) => h.generateKeyPair({ ...ec, keyRef: 256 }),
      (h) => h.generateKeyPair(any({ type: 'rsa', bits: 2048, label: 5 })),
      (h) => h.generateKeyPair(any({ ...ec, id: 'ab' })),
      (h) => h.generateKeyPair({ ...ec, useCounter: 0 }),
      (h) => h.generateKeyPair(any({ ...ec, useCounter: '5' })),
      (h) => h.generateKeyPair(any({ ...ec, algorithms: [0x73] })),
    ],
    ok: (h) => h.generateKeyPair(ec),
  },
  generateAesKey: {
    bad: [
      (h) => h.generateAesKey(any(null)),
      (h) => h.generateAesKey(any({ bits: 100, label: 'x' })),
      (h) => h.generateAesKey({ bits: 128, label: 'x', keyRef: 0 }),
      (h) => h.generateAesKey(any({ bits: 128, label: 'x', algorithms: [] })),
    ],
    ok: (h) => h.generateAesKey({ bits: 128, label: 'aes' }),
  },
  listKeys: { bad: [], ok: (h) => h.listKeys() },
  listOrphanedKeyFiles: { bad: [], ok: (h) => h.listOrphanedKeyFiles() },
  keyInfo: {
    bad: [
      (h) => h.keyInfo(0),
      (h) => h.keyInfo(256),
      (h) => h.keyInfo(any('1')),
      (h) => h.keyInfo(any(undefined)),
    ],
    ok: (h) => h.keyInfo(1),
  },
  deleteKey: {
    bad: [(h) => h.deleteKey(0), (h) => h.deleteKey(any(null))],
    ok: (h) => h.deleteKey(1),
  },
  sign: {
    bad: [
      (h) => h.sign(1, any(undefined), data),
      (h) => h.sign(1, 'ECDSA-SHA256', any(undefined)),
      (h) => h.sign(1, 'ECDSA-SHA256', any('text')),
      (h) => h.sign(1, 'ECDSA-SHA256', data, any({ format: 'pem' })),
      (h) => h.sign(1, any('ECDSA-MD5'), data),
      (h) => h.sign(0x101, 'ECDSA', data),
      (h) => h.sign(1, 'ECDSA', data, any(null)),
    ],
    ok: (h) => h.sign(1, 'ECDSA-SHA256', data),
  },
  decrypt: {
    bad: [
      (h) => h.decrypt(2, any('RSA-OAEP-MD5'), new Uint8Array(128)),
      (h) => h.decrypt(2, 'RSA-RAW', any(undefined)),
      (h) => h.decrypt(256, 'RSA-RAW', new Uint8Array(128)),
    ],
    ok: (h) => h.decrypt(2, 'RSA-RAW', new Uint8Array(128).fill(1)),
  },
  ecdh: {
    bad: [(h) => h.ecdh(1, any(undefined)), (h) => h.ecdh(1, new Uint8Array(0))],
    ok: (h) => h.ecdh(1, concat(Uint8Array.of(4), new Uint8Array(64))),
  },
  aesEncrypt: {
    bad: [
      (h) => h.aesEncrypt(3, data, any(undefined)),
      (h) => h.aesEncrypt(3, data, { iv: new Uint8Array(15) }),
      (h) => h.aesEncrypt(3, data, { iv: any('00'.repeat(16)) }),
      (h) => h.aesEncrypt(3, data, { iv: new Uint8Array(16), padding: any('zero') }),
      (h) => h.aesEncrypt(3, data, { iv: new Uint8Array(16), padding: 'none' }),
      (h) => h.aesEncrypt(3, any('data'), { iv: new Uint8Array(16) }),
      (h) => h.aesEncrypt(0, data, { iv: new Uint8Array(16) }),
    ],
    ok: (h) => h.aesEncrypt(3, data, { iv: new Uint8Array(16) }),
  },
  aesDecrypt: {
    bad: [
      (h) => h.aesDecrypt(3, new Uint8Array(16), any(null)),
      (h) => h.aesDecrypt(3, new Uint8Array(17), { iv: new Uint8Array(16) }),
      (h) => h.aesDecrypt(3, new Uint8Array(0), { iv: new Uint8Array(16) }),
      (h) => h.aesDecrypt(any('3'), new Uint8Array(16), { iv: new Uint8Array(16) }),
    ],
    ok: (h) => h.aesDecrypt(3, new Uint8Array(16), { iv: new Uint8Array(16) }),
  },
  aesCmac: {
    bad: [
      (h) => h.aesCmac(3, any(undefined)),
      (h) => h.aesCmac(3, new Uint8Array(1025)),
      (h) => h.aesCmac(256, data),
    ],
    ok: (h) => h.aesCmac(3, data),
  },
  aesDerive: {
    bad: [
      (h) => h.aesDerive(3, new Uint8Array(0)),
      (h) => h.aesDerive(3, data, { length: 33 }),
      (h) => h.aesDerive(3, data, any({ length: '16' })),
      (h) => h.aesDerive(3, data, any(null)),
    ],
    ok: (h) => h.aesDerive(3, data),
  },
  precheck: {
    bad: [(h) => h.precheck(any(undefined)), (h) => h.precheck(any('keyInfo'))],
    ok: (h) => h.precheck(() => h.keyInfo(1)),
  },
  keyRestrictions: {
    bad: [(h) => h.keyRestrictions(0), (h) => h.keyRestrictions(any('1')), (h) => h.keyRestrictions(256)],
    ok: (h) => h.keyRestrictions(1),
  },
  deriveEcKey: {
    bad: [
      (h) => h.deriveEcKey(1, 7, any(undefined), { label: 'd' }),
      (h) => h.deriveEcKey(1, 7, any('01'), { label: 'd' }),
      (h) => h.deriveEcKey(1, 7, Uint8Array.of(1), any(undefined)),
      (h) => h.deriveEcKey(1, 7, Uint8Array.of(1), any({ label: 5 })),
      (h) => h.deriveEcKey(any('1'), 7, Uint8Array.of(1), { label: 'd' }),
      (h) => h.deriveEcKey(1, 1, Uint8Array.of(1), { label: 'd' }),
    ],
    ok: (h) => h.deriveEcKey(1, 7, Uint8Array.of(1), { label: 'derived' }),
  },
  wrapKey: { bad: [(h) => h.wrapKey(0), (h) => h.wrapKey(any(null))], ok: (h) => h.wrapKey(1) },
  unwrapKey: {
    bad: [
      (h) => h.unwrapKey(5, any(undefined)),
      (h) => h.unwrapKey(5, blob, any(null)),
      (h) => h.unwrapKey(300, blob),
    ],
    ok: (h) => h.unwrapKey(5, blob),
  },
  backupKey: { bad: [(h) => h.backupKey(0), (h) => h.backupKey(any(undefined))], ok: (h) => h.backupKey(1) },
  restoreKey: {
    bad: [
      (h) => h.restoreKey(any(undefined), 6),
      (h) => h.restoreKey(bin, 0),
      (h) => h.restoreKey(bin, 6, any('force')),
    ],
    ok: (h) => h.restoreKey(bin, 6),
  },
  storeCertificate: {
    bad: [(h) => h.storeCertificate(1, any(undefined)), (h) => h.storeCertificate(0, der)],
    ok: (h) => h.storeCertificate(1, der),
  },
  readCertificate: { bad: [(h) => h.readCertificate(0)], ok: (h) => h.readCertificate(1) },
  writeDataObject: {
    bad: [
      (h) => h.writeDataObject(any(null)),
      (h) => h.writeDataObject(any({ label: 'd' })),
      (h) => h.writeDataObject(any({ label: 'd', data: 'x' })),
      (h) => h.writeDataObject(any({ label: 'd', data, private: 'yes' })),
    ],
    ok: (h) => h.writeDataObject({ label: 'd', data }),
  },
  listDataObjects: { bad: [], ok: (h) => h.listDataObjects() },
  readDataObject: {
    bad: [(h) => h.readDataObject(256), (h) => h.readDataObject(-1)],
    ok: (h) => h.readDataObject(0),
  },
  deleteDataObject: { bad: [(h) => h.deleteDataObject(any('0'))], ok: (h) => h.deleteDataObject(0) },
  pkaStatus: { bad: [], ok: (h) => h.pkaStatus() },
  pkaSlots: { bad: [], ok: (h) => h.pkaSlots() },
  pkaChallenge: { bad: [], ok: (h) => h.pkaChallenge() },
  pkaRegister: {
    bad: [
      (h) => h.pkaRegister(any(undefined)),
      (h) => h.pkaRegister(any('30 00')),
      (h) => h.pkaRegister(any([0x30])),
    ],
    ok: (h) => h.pkaRegister(PKA_FILE),
  },
  pkaExport: {
    bad: [
      (h) => h.pkaExport(any('1')),
      (h) => h.pkaExport(0),
      (h) => h.pkaExport(256),
      (h) => h.pkaExport(1.5),
    ],
    ok: (h) => h.pkaExport(1),
  },
  pkaRespond: {
    bad: [
      (h) => h.pkaRespond(0, { deviceChr: 'UTVH000000100000', challenge: new Uint8Array(8) }),
      (h) => h.pkaRespond(1, any(undefined)),
      (h) => h.pkaRespond(1, any({ deviceChr: 'UTVH000000100000', challenge: 'x' })),
      (h) => h.pkaRespond(1, any({ deviceChr: 42, challenge: new Uint8Array(8) })),
      (h) => h.pkaRespond(1, { deviceChr: 'UTVH\u0000', challenge: new Uint8Array(8) }),
    ],
    ok: (h) => h.pkaRespond(1, { deviceChr: 'UTVH000000100000', challenge: new Uint8Array(8) }),
  },
  pkaAuthenticate: {
    bad: [
      (h) => h.pkaAuthenticate([]),
      (h) => h.pkaAuthenticate(any(undefined)),
      (h) => h.pkaAuthenticate(any([{ chr: '', signature: new Uint8Array(8) }])),
      (h) => h.pkaAuthenticate(any([{ chr: 'UTCA00001', signature: 'ab' }])),
      (h) => h.pkaAuthenticate(any([null])),
    ],
    ok: (h) => h.pkaAuthenticate([{ chr: 'UTCA00001', signature: new Uint8Array(8) }]),
  },
  storeCaCertificate: {
    bad: [
      (h) => h.storeCaCertificate(any(undefined), { label: 'ca', id: Uint8Array.of(9) }),
      (h) => h.storeCaCertificate(der, any(null)),
      (h) => h.storeCaCertificate(der, any({ label: 'ca' })),
      (h) => h.storeCaCertificate(der, { label: 'ca', id: new Uint8Array(0) }),
    ],
    ok: (h) => h.storeCaCertificate(der, { label: 'ca', id: Uint8Array.of(9) }),
  },
  listCaCertificates: { bad: [], ok: (h) => h.listCaCertificates() },
};

/** Public methods of the session prototype: its own methods less those session.ts declares private. */
function publicMethods(): string[] {
  const source = readFileSync('src/sc-hsm/session.ts', 'utf8');
  const privates = new Set(
    [...source.matchAll(/^ {2}private (?:static )?(?:async )?(\w+)\s*[(<]/gm)].map((m) => m[1]),
  );
  const proto = SmartCardHsm.prototype as unknown as Record<string, unknown>;
  return Object.getOwnPropertyNames(proto).filter((n) => {
    const d = Object.getOwnPropertyDescriptor(proto, n);
    return n !== 'constructor' && typeof d?.value === 'function' && !privates.has(n);
  });
}

async function session(): Promise<{ hsm: SmartCardHsm; t: Counting }> {
  const t = new Counting(VirtualSmartCardHsm.deserialize(state));
  const hsm = await SmartCardHsm.open(t);
  await hsm.verifyPin(PIN);
  return { hsm, t };
}

beforeAll(async () => {
  const card = new VirtualSmartCardHsm();
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1 });
  await hsm.importDkekShare(SHARE);
  await hsm.verifyPin(PIN);
  const k = await hsm.generateKeyPair(ec);
  await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'rsa' });
  await hsm.writeDataObject({ label: 'obj', data: Uint8Array.of(7) });
  blob = await hsm.wrapKey(1);
  bin = await hsm.backupKey(1);
  der = testCertificate(k.publicKey, 'misuse');
  state = card.serialize();
});

describe('every public method validates its arguments', () => {
  it('the table covers every public method of the session (a new method must be added here)', () => {
    expect(publicMethods().filter((n) => !(n in METHODS))).toEqual([]);
    expect(Object.keys(METHODS).filter((n) => !publicMethods().includes(n))).toEqual([]);
  });

  for (const [name, m] of Object.entries(METHODS)) {
    if (m.bad.length === 0) continue;
    it(`${name}: wrong arguments are a typed error and send nothing`, async () => {
      const { hsm, t } = await session();
      for (const [i, call] of m.bad.entries()) {
        const before = t.sent;
        let err: unknown;
        try {
          await call(hsm);
        } catch (e) {
          err = e;
        }
        expect(err, `${name} bad call #${i + 1} did not fail`).toBeInstanceOf(ScHsmError);
        expect(TYPED, `${name} #${i + 1}: ${err}`).toContain((err as ScHsmError).code);
        expect(t.sent, `${name} bad call #${i + 1} sent an APDU`).toBe(before);
      }
    });
  }

  it('static entry points and the retry counter setter too', async () => {
    const card = VirtualSmartCardHsm.deserialize(state);
    for (const f of [
      () => SmartCardHsm.open(any(null)),
      () => SmartCardHsm.open(any({})),
      () => SmartCardHsm.open(card, { userPinRetryCounter: 0 }),
      () => SmartCardHsm.open(card, any({ userPinRetryCounter: '1' })),
      () => SmartCardHsm.selectApplet(any(card)),
      async () => SmartCardHsm.parseFcp(any(undefined)),
    ]) {
      await expect(f()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
    const hsm = await SmartCardHsm.open(card);
    expect(() => {
      hsm.userPinRetryCounter = 11;
    }).toThrow(ScHsmError);
  });

  it('a file id, key reference or header byte out of range is never sent truncated', async () => {
    const { hsm, t } = await session();
    const before = t.sent;
    await expect(hsm.readFile(0x12f02)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(hsm.files.read(0x12f02)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(hsm.files.write(0x1cf01, data)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(hsm.files.delete(0x1cc01)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(t.sent).toBe(before);
    expect(() => encodeCommand({ cla: 0, ins: 0xb1, p1: 0x12f, p2: 0x02 })).toThrow(/P1 must be 0..255/);
    expect(() => encodeCommand({ cla: 0x100, ins: 0xb1, p1: 0, p2: 0 })).toThrow(/CLA/);
  });
});

describe('a closed session', () => {
  for (const [name, m] of Object.entries(METHODS)) {
    if (name === 'close') continue;
    it(`${name} after close(): SESSION_CLOSED, nothing sent`, async () => {
      const { hsm, t } = await session();
      await hsm.keyInfo(1); // something cached must not answer either
      await hsm.close();
      const before = t.sent;
      await expect(m.ok(hsm)).rejects.toMatchObject({ code: 'SESSION_CLOSED' });
      expect(t.sent).toBe(before);
    });
  }

  it('close() twice is harmless; the same on a transport that stays open', async () => {
    const card = VirtualSmartCardHsm.deserialize(state);
    // a transport whose close() does nothing: the session must still refuse
    const lasting: Transport = {
      extendedLength: true,
      transmit: (a) => card.transmit(a),
      close: async () => {},
    };
    const hsm = await SmartCardHsm.open(lasting);
    await hsm.close();
    await expect(hsm.close()).resolves.toBeUndefined();
    await expect(hsm.listKeys()).rejects.toMatchObject({ code: 'SESSION_CLOSED' });
    await expect(hsm.sign(1, 'ECDSA-SHA256', data)).rejects.toMatchObject({ code: 'SESSION_CLOSED' });
    await expect(hsm.pinStatus()).rejects.toMatchObject({ code: 'SESSION_CLOSED' });
  });
});

describe('a closed virtual card', () => {
  it('refuses like a removed one: CARD_REMOVED, also for a new session', async () => {
    const card = VirtualSmartCardHsm.deserialize(state);
    const hsm = await SmartCardHsm.open(card);
    await hsm.close();
    await expect(card.transmit(fromHex('0020008100'))).rejects.toMatchObject({ code: 'CARD_REMOVED' });
    await expect(SmartCardHsm.open(card)).rejects.toMatchObject({ code: 'CARD_REMOVED' });
    // its state is still there to be saved
    expect(JSON.parse(card.serialize())).toMatchObject({ initialized: true });
  });
});

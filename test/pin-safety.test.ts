/**
 * PIN safety: no path in the library consumes a PIN try except an explicit user attempt.
 *
 * A recording transport in front of the virtual card notes every APDU that carries a PIN
 * (VERIFY 00 20 00 81/88 with data, CHANGE REFERENCE DATA 00 24, RESET RETRY COUNTER 00 2C,
 * INITIALIZE 80 50 with data on an initialized device) together with the session call that was
 * running. Every session method, enumerated from the prototype so that a new one cannot escape,
 * is driven fault-free and with a fault at every APDU; every function of the area modules the
 * session is composed of (pins.ts, keys.ts, …) is either such a method's delegate or named with a
 * method that reaches it. Asserted:
 *   - a PIN-carrying APDU happens only inside a call that was given a PIN, and carries that PIN;
 *   - within one call no PIN-carrying APDU is ever sent twice (no automatic retry), also after a fault;
 *   - before each PIN-carrying APDU the tries left of that PIN were queried in the same call
 *     (VERIFY without data), except the VERIFY right after INITIALIZE set that very PIN;
 *   - a wrong PIN costs exactly one try per explicit call; with one try left every PIN-carrying
 *     call refuses with PIN_TRIES_LOW and sends nothing unless forced (user PIN and SO-PIN);
 *   - a blocked PIN is reported without sending it.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { FAULT_KINDS, FaultInjectingTransport } from '../src/apdu/fault.js';
import type { Transport } from '../src/apdu/transport.js';
import { isScHsmError } from '../src/errors.js';
import * as context from '../src/sc-hsm/context.js';
import * as crypto from '../src/sc-hsm/crypto.js';
import * as device from '../src/sc-hsm/device.js';
import * as dkek from '../src/sc-hsm/dkek.js';
import * as init from '../src/sc-hsm/init.js';
import * as keys from '../src/sc-hsm/keys.js';
import * as objects from '../src/sc-hsm/objects.js';
import { pinTryOf } from '../src/sc-hsm/pin-guard.js';
import * as pins from '../src/sc-hsm/pins.js';
import * as pka from '../src/sc-hsm/pka.js';
import * as secureChannel from '../src/sc-hsm/secure-channel.js';
import { type KeyPairSpec, SmartCardHsm } from '../src/sc-hsm/session.js';
import { parseUserPin } from '../src/sc-hsm/validate.js';
import * as wrap from '../src/sc-hsm/wrap.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { ascii, concat, fromHex, toHex } from '../src/util/bytes.js';
import { deviceChainVerifier } from '../src/x509/index.js';

const SO_PIN = '3537363231383830';
const SO_PIN_2 = '0102030405060708';
const PIN = '648219';
const PIN_2 = '123456789';
const SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');

interface PinApdu {
  call: string;
  hex: string;
  ins: number;
  p2: number;
}

/** Which bytes a call was given: a user PIN as ASCII, an SO-PIN as 8 binary bytes. */
function secretBytes(pins: string[]): Uint8Array[] {
  return pins.map((p) => (/^[0-9a-fA-F]{16}$/.test(p) ? fromHex(p) : ascii(p)));
}

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** Notes every PIN-carrying APDU and every status query, tagged with the running call. */
class PinWatch implements Transport {
  readonly extendedLength = true;
  current = 'outside any call';
  given: Uint8Array[] = [];
  readonly pinApdus: PinApdu[] = [];
  /** Problems seen at the moment of sending (status not queried first, PIN not the call's). */
  readonly problems: string[] = [];
  private queried = new Set<number>();
  private sentInCall = new Set<string>();

  constructor(readonly card: VirtualSmartCardHsm) {}

  begin(call: string, pins: string[]): void {
    this.current = call;
    this.given = secretBytes(pins);
    this.queried.clear();
    this.sentInCall.clear();
  }

  private initialized(): boolean {
    return (JSON.parse(this.card.serialize()) as { initialized: boolean }).initialized;
  }

  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    const [cla, ins, , p2] = apdu as unknown as number[];
    const hasData = apdu.length > 5;
    let pin = false;
    if (cla === 0x00 && ins === 0x20 && (p2 === 0x81 || p2 === 0x88)) {
      if (hasData) pin = true;
      else this.queried.add(p2!);
    } else if (cla === 0x00 && (ins === 0x24 || ins === 0x2c)) pin = true;
    else if (cla === 0x80 && ins === 0x50 && hasData && this.initialized()) pin = true;
    if (pin) {
      const hex = toHex(apdu);
      this.pinApdus.push({ call: this.current, hex, ins: ins!, p2: p2! });
      if (this.sentInCall.has(hex))
        this.problems.push(`${this.current}: the same PIN-carrying APDU was sent twice`);
      this.sentInCall.add(hex);
      const data = apdu.subarray(5);
      if (!this.given.some((g) => contains(data, g))) {
        this.problems.push(
          `${this.current}: sent a PIN-carrying APDU (INS ${ins!.toString(16)}) without a PIN it was given`,
        );
      }
      // The reference whose tries this command can cost: the SO-PIN for INITIALIZE, RESET RETRY
      // COUNTER and CHANGE REFERENCE DATA 88; the user PIN otherwise.
      const ref = ins === 0x50 || ins === 0x2c ? 0x88 : p2!;
      const afterInit = ins === 0x20 && this.sentInCall.size > 0 && this.current === 'initialize';
      if (!this.queried.has(ref) && !afterInit) {
        this.problems.push(
          `${this.current}: PIN-carrying APDU without querying the tries left of ${ref.toString(16)} first`,
        );
      }
    }
    if (cla === 0x80 && ins === 0x50 && hasData) this.sentInCall.add('init');
    return this.card.transmit(apdu);
  }

  async close(): Promise<void> {}

  reset(): void {
    this.card.reset();
  }
}

type Call = (hsm: SmartCardHsm) => Promise<unknown>;

interface Driven {
  /** The PINs the call is given (empty: it must send none). */
  pins: string[];
  call: Call;
  /** The card state the call starts from. */
  from: 'fresh' | 'ready' | 'keys';
  /** Log in first (outside the watched call). */
  login?: boolean;
}

let blobEc: Uint8Array;
let binEc: Uint8Array;
const ecSpec: KeyPairSpec = { type: 'ec', curve: 'secp256r1', label: 'pin-safety' };

/** How each public method is driven. Every own method of the prototype must appear here. */
const CALLS: Record<string, Driven> = {
  logout: { pins: [], from: 'ready', login: true, call: (h) => h.logout() },
  close: { pins: [], from: 'ready', call: (h) => h.close() },
  pinStatus: { pins: [], from: 'ready', call: (h) => h.pinStatus() },
  dkekStatus: { pins: [], from: 'ready', call: (h) => h.dkekStatus() },
  deviceChr: { pins: [], from: 'ready', call: (h) => h.deviceChr() },
  deviceCertificates: { pins: [], from: 'ready', call: (h) => h.deviceCertificates() },
  label: { pins: [], from: 'ready', call: (h) => h.label() },
  status: { pins: [], from: 'ready', call: (h) => h.status() },
  verifyPin: { pins: [PIN], from: 'ready', call: (h) => h.verifyPin(PIN) },
  changePin: { pins: [PIN, PIN_2], from: 'ready', call: (h) => h.changePin(PIN, PIN_2) },
  changeSoPin: { pins: [SO_PIN, SO_PIN_2], from: 'ready', call: (h) => h.changeSoPin(SO_PIN, SO_PIN_2) },
  // public key authentication sends no PIN (on a device without PKA: PKA_NOT_CONFIGURED)
  pkaStatus: { pins: [], from: 'ready', call: (h) => h.pkaStatus() },
  pkaSlots: { pins: [], from: 'ready', call: (h) => h.pkaSlots() },
  pkaChallenge: { pins: [], from: 'ready', call: (h) => h.pkaChallenge() },
  pkaRegister: { pins: [], from: 'ready', call: (h) => h.pkaRegister(Uint8Array.of(0x30, 0x00)) },
  pkaExport: { pins: [], from: 'keys', call: (h) => h.pkaExport(1) },
  pkaRespond: {
    pins: [],
    from: 'keys',
    login: true,
    call: (h) => h.pkaRespond(1, { deviceChr: 'UTVH000000100000', challenge: new Uint8Array(8) }),
  },
  pkaAuthenticate: {
    pins: [],
    from: 'ready',
    call: (h) => h.pkaAuthenticate([{ chr: 'UTCA00001', signature: new Uint8Array(8) }]),
  },
  unblockPin: {
    pins: [SO_PIN, PIN_2],
    from: 'ready',
    call: (h) => h.unblockPin({ soPin: SO_PIN, newPin: PIN_2 }),
  },
  initialize: {
    pins: [SO_PIN, PIN],
    from: 'ready',
    call: (h) => h.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1, label: 'again' }),
  },
  importDkekShare: { pins: [], from: 'fresh', call: (h) => h.importDkekShare(SHARE) },
  enumerate: { pins: [], from: 'keys', call: (h) => h.enumerate() },
  readFile: { pins: [], from: 'keys', call: (h) => h.readFile(0xc401) },
  writeFile: {
    pins: [],
    from: 'keys',
    login: true,
    call: (h) => h.writeFile(0xcf10, Uint8Array.of(1, 2, 3)),
  },
  deleteFile: { pins: [], from: 'keys', login: true, call: (h) => h.deleteFile(0xc401) },
  getChallenge: { pins: [], from: 'ready', call: (h) => h.getChallenge(40) },
  generateKeyPair: { pins: [], from: 'ready', login: true, call: (h) => h.generateKeyPair(ecSpec) },
  generateAesKey: {
    pins: [],
    from: 'ready',
    login: true,
    call: (h) => h.generateAesKey({ bits: 128, label: 'aes' }),
  },
  listKeys: { pins: [], from: 'keys', call: (h) => h.listKeys() },
  keyDomainStatus: { pins: [], from: 'ready', call: (h) => h.keyDomainStatus(0) },
  listKeyDomains: { pins: [], from: 'ready', call: (h) => h.listKeyDomains() },
  // the device has no key domains beyond 0: a typed refusal, no PIN APDU
  createKeyDomain: { pins: [], from: 'ready', login: true, call: (h) => h.createKeyDomain(1, 1) },
  deleteKeyDomain: { pins: [], from: 'ready', login: true, call: (h) => h.deleteKeyDomain(1) },
  keyRestrictions: { pins: [], from: 'keys', call: (h) => h.keyRestrictions(1) },
  precheck: {
    pins: [],
    from: 'keys',
    call: (h) => h.precheck(() => h.deriveEcKey(1, 9, Uint8Array.of(1), { label: 'p' })),
  },
  deriveEcKey: {
    pins: [],
    from: 'keys',
    login: true,
    call: (h) => h.deriveEcKey(1, 9, Uint8Array.of(1), { label: 'derived' }),
  },
  aesEncrypt: {
    pins: [],
    from: 'ready',
    login: true,
    call: async (h) => {
      const k = await h.generateAesKey({ bits: 128, label: 'aes' });
      await h.aesEncrypt(k.keyRef, ascii('x'), { iv: new Uint8Array(16) });
    },
  },
  aesDecrypt: {
    pins: [],
    from: 'ready',
    login: true,
    call: async (h) => {
      const k = await h.generateAesKey({ bits: 128, label: 'aes' });
      const iv = new Uint8Array(16);
      await h.aesDecrypt(k.keyRef, await h.aesEncrypt(k.keyRef, ascii('x'), { iv }), { iv });
    },
  },
  aesCmac: {
    pins: [],
    from: 'ready',
    login: true,
    call: async (h) => {
      const k = await h.generateAesKey({ bits: 128, label: 'aes' });
      await h.aesCmac(k.keyRef, ascii('x'));
    },
  },
  aesDerive: {
    pins: [],
    from: 'ready',
    login: true,
    call: async (h) => {
      const k = await h.generateAesKey({ bits: 128, label: 'aes' });
      await h.aesDerive(k.keyRef, ascii('x'));
    },
  },
  keyInfo: { pins: [], from: 'keys', call: (h) => h.keyInfo(1) },
  listOrphanedKeyFiles: { pins: [], from: 'keys', call: (h) => h.listOrphanedKeyFiles() },
  deleteKey: { pins: [], from: 'keys', login: true, call: (h) => h.deleteKey(1) },
  sign: { pins: [], from: 'keys', login: true, call: (h) => h.sign(1, 'ECDSA-SHA256', ascii('x')) },
  decrypt: {
    pins: [],
    from: 'keys',
    login: true,
    call: (h) => h.decrypt(2, 'RSA-RAW', new Uint8Array(128).fill(1)),
  },
  ecdh: {
    pins: [],
    from: 'keys',
    login: true,
    call: (h) => h.ecdh(1, concat(Uint8Array.of(4), new Uint8Array(64))),
  },
  wrapKey: { pins: [], from: 'keys', login: true, call: (h) => h.wrapKey(1) },
  unwrapKey: { pins: [], from: 'ready', login: true, call: (h) => h.unwrapKey(5, blobEc) },
  backupKey: { pins: [], from: 'keys', login: true, call: (h) => h.backupKey(1) },
  restoreKey: { pins: [], from: 'ready', login: true, call: (h) => h.restoreKey(binEc, 6) },
  storeCertificate: {
    pins: [],
    from: 'keys',
    login: true,
    call: (h) => h.storeCertificate(1, fromHex('3000')),
  },
  readCertificate: { pins: [], from: 'keys', call: (h) => h.readCertificate(1) },
  writeDataObject: {
    pins: [],
    from: 'keys',
    login: true,
    call: (h) => h.writeDataObject({ label: 'd', data: Uint8Array.of(1), private: true }),
  },
  listDataObjects: { pins: [], from: 'keys', call: (h) => h.listDataObjects() },
  readDataObject: { pins: [], from: 'keys', call: (h) => h.readDataObject(0) },
  deleteDataObject: { pins: [], from: 'keys', login: true, call: (h) => h.deleteDataObject(0) },
  storeCaCertificate: {
    pins: [],
    from: 'keys',
    login: true,
    call: (h) => h.storeCaCertificate(fromHex('3000'), { label: 'ca', id: Uint8Array.of(9) }),
  },
  listCaCertificates: { pins: [], from: 'keys', call: (h) => h.listCaCertificates() },
  openSecureChannel: {
    pins: [],
    from: 'ready',
    call: (h) => h.openSecureChannel({ verifyChain: deviceChainVerifier({ acceptVirtual: true }) }),
  },
  getSessionPin: {
    pins: [],
    from: 'ready',
    login: true,
    call: async (h) => {
      await h.openSecureChannel({ verifyChain: deviceChainVerifier({ acceptVirtual: true }) });
      return h.getSessionPin();
    },
  },
  // outside a secure channel: refused on the host (inside, its VERIFY is encrypted: secure-messaging.test.ts)
  verifySessionPin: { pins: [], from: 'ready', call: (h) => h.verifySessionPin(new Uint8Array(8)) },
};

/**
 * The modules the session is composed of: each method of the prototype delegates to the function
 * of the same name in one of them, so their functions are the session's code too.
 */
const AREAS: Record<string, Record<string, unknown>> = {
  context,
  device,
  pins,
  init,
  dkek,
  keys,
  crypto,
  wrap,
  objects,
  secureChannel,
  pka,
};

/**
 * The area functions that are not the delegate of a public method: reached only through the
 * public methods above (each named with one that uses it).
 */
const PRIVATE: Record<string, string> = {
  'context.checkOpen': 'logout',
  'context.sessionContext': 'logout',
  'context.closeSession': 'close',
  'device.selectApplet': 'logout',
  'device.parseFcp': 'logout',
  'pins.checkTries': 'verifyPin',
  'pins.refuseUnsafeTry': 'verifyPin',
  'pins.sendVerify': 'verifyPin',
  'pins.changeReferenceData': 'changePin',
  'dkek.dkekKcvUnknown': 'unwrapKey',
  'dkek.queryKeyDomain': 'keyDomainStatus',
  'dkek.parseDkekStatus': 'dkekStatus',
  'dkek.domainOutOfRange': 'keyDomainStatus',
  'dkek.xkekDomain': 'createKeyDomain',
  'keys.publicKeyObject': 'listKeys',
  'keys.intrinsicKeyId': 'generateKeyPair',
  'keys.spkiPoint': 'ecdh',
  'keys.freeKeyRef': 'generateKeyPair',
  'keys.checkFreeRef': 'generateKeyPair',
  'keys.checkFreeId': 'generateKeyPair',
  'keys.keyInfoFromFiles': 'listKeys',
  'crypto.keyOpOverrides': 'sign',
  'crypto.cardSign': 'sign',
  'crypto.signAlgorithm': 'sign',
  'crypto.signAlgorithmChoices': 'sign',
  'wrap.unwrapCommand': 'unwrapKey',
  'wrap.unwrapInto': 'unwrapKey',
  'wrap.putBack': 'restoreKey',
  'objects.certificateSpki': 'storeCertificate',
  'objects.freeObjectNumber': 'writeDataObject',
};

/** Every function the area modules export (classes left out), as `module.name`. */
function areaFunctions(): string[] {
  return Object.entries(AREAS).flatMap(([area, m]) =>
    Object.entries(m)
      .filter(([, v]) => typeof v === 'function' && !/^class\b/.test(Function.prototype.toString.call(v)))
      .map(([name]) => `${area}.${name}`),
  );
}

function prototypeMethods(): string[] {
  const proto = SmartCardHsm.prototype as unknown as Record<string, unknown>;
  return Object.getOwnPropertyNames(proto).filter((n) => {
    const d = Object.getOwnPropertyDescriptor(proto, n);
    return n !== 'constructor' && typeof d?.value === 'function';
  });
}

const states: Record<'fresh' | 'ready' | 'keys', string> = { fresh: '', ready: '', keys: '' };

beforeAll(async () => {
  const card = new VirtualSmartCardHsm({ deviceId: '1112223' });
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1 });
  states.fresh = card.serialize();
  await hsm.importDkekShare(SHARE);
  states.ready = card.serialize();
  await hsm.verifyPin(PIN);
  await hsm.generateKeyPair(ecSpec);
  await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'rsa' });
  await hsm.writeDataObject({ label: 'obj', data: Uint8Array.of(7), private: false });
  blobEc = await hsm.wrapKey(1);
  binEc = await hsm.backupKey(1);
  states.keys = card.serialize();
});

/** Runs one driven call on a fresh copy of its state, through `wrap` around the watch. */
async function drive(
  name: string,
  d: Driven,
  wrap: (w: PinWatch) => Transport = (w) => w,
): Promise<{ watch: PinWatch; outcome: unknown; card: VirtualSmartCardHsm }> {
  const card = VirtualSmartCardHsm.deserialize(states[d.from]);
  const watch = new PinWatch(card);
  const t = wrap(watch);
  let outcome: unknown = 'ok';
  try {
    watch.begin('open', []);
    const hsm = await SmartCardHsm.open(t);
    if (d.login) {
      watch.begin('login', [PIN]);
      await hsm.verifyPin(PIN);
    }
    watch.begin(name, d.pins);
    await d.call(hsm);
  } catch (e) {
    outcome = e;
  }
  return { watch, outcome, card };
}

const tries = (card: VirtualSmartCardHsm) =>
  JSON.parse(card.serialize()) as { userPinTries: number; soPinTries: number; userPinMaxTries: number };

describe('PIN safety', () => {
  it('drives every method of the session prototype and reaches every area function (a new one must be added here)', () => {
    const missing = prototypeMethods().filter((n) => !(n in CALLS));
    expect(missing).toEqual([]);
    const helpers = areaFunctions().filter((q) => !(q.slice(q.indexOf('.') + 1) in CALLS));
    expect(helpers.filter((q) => !(q in PRIVATE))).toEqual([]);
    const stale = [
      ...Object.keys(CALLS).filter((n) => !prototypeMethods().includes(n)),
      ...Object.keys(PRIVATE).filter((q) => !helpers.includes(q)),
    ];
    expect(stale).toEqual([]);
  });

  for (const [name, d] of Object.entries(CALLS)) {
    it(`${name}: PIN-carrying APDUs only with the PIN it was given, each once, tries queried first`, async () => {
      const { watch, outcome } = await drive(name, d);
      expect(outcome === 'ok' || isScHsmError(outcome), String(outcome)).toBe(true);
      expect(watch.problems).toEqual([]);
      const mine = watch.pinApdus.filter((p) => p.call === name);
      if (d.pins.length === 0) expect(mine).toEqual([]);
      else expect(mine.length).toBeGreaterThan(0);
      expect(watch.pinApdus.every((p) => p.call === name || p.call === 'login')).toBe(true);
    });
  }

  it('with a fault at every APDU of every PIN-taking call: never a retry, never a lost try', async () => {
    const problems: string[] = [];
    for (const [name, d] of Object.entries(CALLS)) {
      if (d.pins.length === 0) continue;
      let counter: FaultInjectingTransport | undefined;
      const clean = await drive(name, d, (w) => {
        counter = new FaultInjectingTransport(w);
        return counter;
      });
      const n = counter!.count;
      expect(n).toBeGreaterThan(2);
      const cleanPin = clean.watch.pinApdus.filter((p) => p.call === name).length;
      for (const kind of FAULT_KINDS) {
        for (const delivered of [false, true]) {
          for (let k = 1; k <= n; k++) {
            let ft: FaultInjectingTransport | undefined;
            const r = await drive(name, d, (w) => {
              ft = new FaultInjectingTransport(w, { at: k, kind, delivered });
              return ft;
            });
            if (!ft?.fired) problems.push(`${name} k=${k}: the fault did not fire`);
            const where = `${name} ${kind}${delivered ? ' delivered' : ''} k=${k}`;
            if (r.outcome !== 'ok' && !isScHsmError(r.outcome))
              problems.push(`${where}: raw ${String(r.outcome)}`);
            for (const p of r.watch.problems) problems.push(`${where}: ${p}`);
            const mine = r.watch.pinApdus.filter((p) => p.call === name).length;
            if (mine > cleanPin)
              problems.push(`${where}: ${mine} PIN-carrying APDUs, ${cleanPin} without the fault`);
            const t = tries(r.card);
            if (t.userPinTries !== t.userPinMaxTries || t.soPinTries !== 15) {
              problems.push(`${where}: tries consumed (user ${t.userPinTries}, SO ${t.soPinTries})`);
            }
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('a wrong PIN costs exactly one try per explicit call, and a blocked PIN is not sent', async () => {
    const card = VirtualSmartCardHsm.deserialize(states.ready);
    const watch = new PinWatch(card);
    const hsm = await SmartCardHsm.open(watch);
    watch.begin('verifyPin', ['000000']);
    await expect(hsm.verifyPin('000000')).rejects.toMatchObject({ code: 'WRONG_PIN', triesLeft: 2 });
    expect(tries(card).userPinTries).toBe(2);
    watch.begin('verifyPin', ['000001']);
    await expect(hsm.verifyPin('000001')).rejects.toMatchObject({ code: 'WRONG_PIN', triesLeft: 1 });
    expect(tries(card).userPinTries).toBe(1);
    const before = watch.pinApdus.length;
    watch.begin('verifyPin', ['000002']);
    await expect(hsm.verifyPin('000002')).rejects.toMatchObject({ code: 'PIN_TRIES_LOW', triesLeft: 1 });
    await expect(hsm.changePin('000002', PIN_2)).rejects.toMatchObject({ code: 'PIN_TRIES_LOW' });
    expect(watch.pinApdus.length).toBe(before);
    expect(tries(card).userPinTries).toBe(1);
    await expect(hsm.verifyPin('000002', { force: true })).rejects.toMatchObject({ code: 'PIN_BLOCKED' });
    expect(watch.pinApdus.length).toBe(before + 1);
    watch.begin('verifyPin', [PIN]);
    await expect(hsm.verifyPin(PIN, { force: true })).rejects.toMatchObject({ code: 'PIN_BLOCKED' });
    expect(watch.pinApdus.length).toBe(before + 1);
    watch.begin('unblockPin', [SO_PIN, PIN]);
    await hsm.unblockPin({ soPin: SO_PIN, newPin: PIN });
    watch.begin('verifyPin', [PIN]);
    await hsm.verifyPin(PIN);
    expect(tries(card).userPinTries).toBe(3);
    expect(watch.problems).toEqual([]);
  });

  it('the SO-PIN: 15 tries; with one left, changeSoPin, unblockPin and initialize refuse unless forced', async () => {
    const state = JSON.parse(states.ready) as { soPinTries: number };
    state.soPinTries = 2;
    const card = VirtualSmartCardHsm.deserialize(JSON.stringify(state));
    const watch = new PinWatch(card);
    const hsm = await SmartCardHsm.open(watch);
    expect((await hsm.status()).soPin.triesLeft).toBe(2);
    watch.begin('unblockPin', [SO_PIN_2]);
    await expect(hsm.unblockPin({ soPin: SO_PIN_2 })).rejects.toMatchObject({
      code: 'WRONG_PIN',
      triesLeft: 1,
    });
    const before = watch.pinApdus.length;
    await expect(hsm.unblockPin({ soPin: SO_PIN })).rejects.toMatchObject({ code: 'PIN_TRIES_LOW' });
    await expect(hsm.changeSoPin(SO_PIN, SO_PIN_2)).rejects.toMatchObject({ code: 'PIN_TRIES_LOW' });
    await expect(hsm.initialize({ soPin: SO_PIN, userPin: PIN })).rejects.toMatchObject({
      code: 'PIN_TRIES_LOW',
    });
    expect(watch.pinApdus.length).toBe(before);
    expect(tries(card).soPinTries).toBe(1);
    watch.begin('changeSoPin', [SO_PIN, SO_PIN_2]);
    await hsm.changeSoPin(SO_PIN, SO_PIN_2, { force: true });
    expect(tries(card).soPinTries).toBe(15);
    expect(watch.problems).toEqual([]);
  });

  it('a blocked SO-PIN is reported without sending it', async () => {
    const state = JSON.parse(states.ready) as { soPinTries: number };
    state.soPinTries = 0;
    const card = VirtualSmartCardHsm.deserialize(JSON.stringify(state));
    const watch = new PinWatch(card);
    const hsm = await SmartCardHsm.open(watch);
    for (const f of [
      () => hsm.unblockPin({ soPin: SO_PIN, force: true }),
      () => hsm.changeSoPin(SO_PIN, SO_PIN_2, { force: true }),
      () => hsm.initialize({ soPin: SO_PIN, userPin: PIN, force: true }),
    ]) {
      await expect(f()).rejects.toMatchObject({ code: 'PIN_BLOCKED' });
    }
    expect(watch.pinApdus).toEqual([]);
  });
});

describe('PIN tries nobody meant to spend (library)', () => {
  it('a retry counter of 1: "1 try left" is the full counter where the session knows it, the last try where not', async () => {
    const card = VirtualSmartCardHsm.deserialize(states.ready);
    const watch = new PinWatch(card);
    const hsm = await SmartCardHsm.open(watch);
    watch.begin('initialize', [SO_PIN, PIN]);
    await hsm.initialize({ soPin: SO_PIN, userPin: PIN, retryCounter: 1 });
    expect(hsm.userPinRetryCounter).toBe(1);
    expect(tries(card)).toMatchObject({ userPinTries: 1, userPinMaxTries: 1 });
    watch.begin('verifyPin', [PIN]);
    await hsm.verifyPin(PIN);

    // a new session does not know: the guard refuses, as it must for a counter of 3 after two wrong PINs
    const other = await SmartCardHsm.open(watch);
    await expect(other.verifyPin(PIN)).rejects.toMatchObject({ code: 'PIN_TRIES_LOW', pin: 'user-pin' });
    const told = await SmartCardHsm.open(watch, { userPinRetryCounter: 1 });
    watch.begin('verifyPin', [PIN]);
    await told.verifyPin(PIN);
    expect(watch.problems).toEqual([]);

    // told 1, but the card shows 3 (re-initialized since): forgotten, and one try left is the last again
    const again = VirtualSmartCardHsm.deserialize(states.ready);
    const stale = await SmartCardHsm.open(again, { userPinRetryCounter: 1 });
    for (const left of [2, 1]) {
      await expect(stale.verifyPin('000000')).rejects.toMatchObject({ code: 'WRONG_PIN', triesLeft: left });
    }
    expect(stale.userPinRetryCounter).toBeUndefined();
    await expect(stale.verifyPin(PIN)).rejects.toMatchObject({ code: 'PIN_TRIES_LOW' });
    expect(tries(again).userPinTries).toBe(1);
  });

  it('the wrong SO-PIN that exhausts its counter says SO-PIN and what that means, not the user-PIN remedy', async () => {
    const state = JSON.parse(states.ready) as { soPinTries: number };
    state.soPinTries = 1;
    const card = VirtualSmartCardHsm.deserialize(JSON.stringify(state));
    const hsm = await SmartCardHsm.open(card);
    const e = await hsm.unblockPin({ soPin: SO_PIN_2, force: true }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'PIN_BLOCKED', pin: 'so-pin', triesLeft: 0 });
    expect((e as Error).message).toMatch(/wrong SO-PIN, no tries left: the SO-PIN is now blocked for good/);
    expect((e as Error).message).toMatch(
      /can no longer be re-initialized and its user PIN can no longer be unblocked/,
    );
    expect((e as Error).message).not.toMatch(/user PIN is/);
    const wrongUser = await hsm.verifyPin('000000').catch((x: unknown) => x);
    expect(wrongUser).toMatchObject({ code: 'WRONG_PIN', pin: 'user-pin' });
    expect((wrongUser as Error).message).toMatch(/wrong user PIN, 2 tries left/);
    // and the refusal before it is sent
    const st = JSON.parse(states.ready) as { soPinTries: number };
    st.soPinTries = 1;
    const h2 = await SmartCardHsm.open(VirtualSmartCardHsm.deserialize(JSON.stringify(st)));
    const low = await h2.changeSoPin(SO_PIN, SO_PIN_2).catch((x: unknown) => x);
    expect(low).toMatchObject({ code: 'PIN_TRIES_LOW', pin: 'so-pin' });
    expect((low as Error).message).toMatch(/SO-PIN has one try left.*for good.*re-initialized/);
    expect((low as Error).message).not.toMatch(/\bforce\b/);
  });

  it('a user PIN is 6-15 printable ASCII characters, counted and reported in characters', () => {
    expect(parseUserPin('648219')).toEqual(ascii('648219'));
    expect(parseUserPin('aB3$ x~')).toEqual(ascii('aB3$ x~'));
    for (const bad of [
      'ééé',
      'é'.repeat(8),
      'caf\u00e9123',
      'cafe\u0301123',
      '648219\n',
      '\uFEFF648219',
      ' 648219',
      '648219 ',
    ]) {
      expect(() => parseUserPin(bad)).toThrow(expect.objectContaining({ code: 'INVALID_PIN' }));
    }
    expect(() => parseUserPin('é'.repeat(8))).toThrow(/printable ASCII/);
    expect(() => parseUserPin('a'.repeat(16))).toThrow(/6 to 15 characters long; it has 16\b/);
    expect(() => parseUserPin('12345')).toThrow(/it has 5\b/);
  });

  it('pinTryOf names the PIN of every raw APDU that can cost a try, and of nothing else', () => {
    const so = SO_PIN;
    const cases: [string, number | undefined][] = [
      [`0020008106${toHex(ascii(PIN))}`, 0x81],
      ['0020008100', undefined],
      ['00200081', undefined],
      [`0020008808${so}`, 0x88],
      [`002400810C${toHex(ascii(PIN))}${toHex(ascii('123456'))}`, 0x81],
      [`0024008810${so}${so}`, 0x88],
      [`002C018108${so}`, 0x88],
      [`002C00810E${so}${toHex(ascii(PIN))}`, 0x88],
      [`002C028106${toHex(ascii(PIN))}`, undefined],
      [`8050000019800200018106${toHex(ascii(PIN))}8208${so}910103`, 0x88],
      ['80500000', undefined],
      ['00A4040C0BE82B0601040181C31F0201', undefined],
      // extended length form
      [`00200081000006${toHex(ascii(PIN))}`, 0x81],
    ];
    for (const [hex, ref] of cases) expect(pinTryOf(fromHex(hex))?.ref, hex).toBe(ref);
  });
});

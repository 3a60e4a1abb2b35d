/**
 * A hostile card: the session's status, listKeys, generateKeyPair and backupKey driven against
 * answers of the virtual card that are mutated on the way back (flipped bits, truncation, extra
 * or missing bytes, wrong length bytes, random status words). 10,000 cases per operation, replayed
 * from the card's recorded answers so that each case is cheap, plus a smaller run against the
 * live virtual card. The only outcomes allowed: the operation's value or an ScHsmError; no hang
 * (every case must settle), and the heap stays bounded.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ApduChannel, Transport } from '../src/apdu/transport.js';
import { ScHsmError } from '../src/errors.js';
import { type AppletInfo, SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { fromHex } from '../src/util/bytes.js';

const RUNS = 10_000;
const LIVE_RUNS = 300;
const PIN = '648219';
const SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');

interface Damage {
  /** Which answer (index into the exchange) is damaged. */
  at: number;
  kind: 'flip' | 'truncate' | 'extend' | 'sw' | 'lengthByte' | 'empty';
  pos: number;
  value: number;
}

function damage(answer: Uint8Array, d: Damage): Uint8Array {
  const a = Array.from(answer);
  const i = a.length ? d.pos % a.length : 0;
  switch (d.kind) {
    case 'flip':
      if (a.length) a[i] = a[i]! ^ (1 << (d.value & 7));
      return Uint8Array.from(a);
    case 'truncate':
      return Uint8Array.from(a.slice(0, i));
    case 'extend':
      return Uint8Array.from([...a.slice(0, i), d.value, ...a.slice(i)]);
    case 'sw':
      return Uint8Array.from([...a.slice(0, -2), d.value, (d.value * 7 + d.pos) & 0xff]);
    case 'lengthByte':
      // typical TLV length positions are early: make one of the first bytes a long-form length
      if (a.length > 2)
        a[(d.pos % Math.min(6, a.length - 2)) + 1] = [0x81, 0x82, 0x83, 0x84, 0xff][d.value % 5]!;
      return Uint8Array.from(a);
    case 'empty':
      return new Uint8Array(0);
  }
}

const damageArb = (n: number): fc.Arbitrary<Damage[]> =>
  fc.array(
    fc.record({
      at: fc.nat({ max: n - 1 }),
      kind: fc.constantFrom('flip', 'truncate', 'extend', 'sw', 'lengthByte', 'empty'),
      pos: fc.nat(),
      value: fc.integer({ min: 0, max: 255 }),
    }),
    { minLength: 1, maxLength: 3 },
  );

/** Plays the recorded answers back in order (whatever the host sends), damaged as told. */
class ReplayHostileCard implements Transport {
  readonly extendedLength = true;
  private i = 0;
  constructor(
    private readonly answers: Uint8Array[],
    private readonly damages: Damage[],
  ) {}
  async transmit(_apdu: Uint8Array): Promise<Uint8Array> {
    const i = this.i++;
    let a = this.answers[i] ?? fromHex('6f00');
    for (const d of this.damages) if (d.at === i) a = damage(a, d);
    return a;
  }
  async close(): Promise<void> {}
}

/** The live virtual card, its answers damaged as told. */
class LiveHostileCard implements Transport {
  readonly extendedLength = true;
  private i = 0;
  constructor(
    private readonly card: VirtualSmartCardHsm,
    private readonly damages: Damage[],
  ) {}
  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    const i = this.i++;
    let a = this.card.process(apdu);
    for (const d of this.damages) if (d.at === i) a = damage(a, d);
    return a;
  }
  async close(): Promise<void> {}
}

/** Records every answer of the virtual card. */
class Recorder implements Transport {
  readonly extendedLength = true;
  readonly answers: Uint8Array[] = [];
  constructor(private readonly card: VirtualSmartCardHsm) {}
  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    const a = this.card.process(apdu);
    this.answers.push(a.slice());
    return a;
  }
  async close(): Promise<void> {}
}

type Op = (hsm: SmartCardHsm) => Promise<unknown>;

const OPS: Record<string, { op: Op; login: boolean }> = {
  status: { op: (h) => h.status(), login: false },
  listKeys: { op: (h) => h.listKeys(), login: true },
  generateKeyPair: {
    op: (h) => h.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'hostile' }),
    login: true,
  },
  backupKey: { op: (h) => h.backupKey(1), login: true },
};

let state = '';
const recorded: Record<string, Uint8Array[]> = {};

/** Forwards to whichever transport the current case uses. */
class SwitchTransport implements Transport {
  readonly extendedLength = true;
  target: Transport | undefined;
  transmit(apdu: Uint8Array): Promise<Uint8Array> {
    return this.target!.transmit(apdu);
  }
  async close(): Promise<void> {}
}

const shared = new SwitchTransport();
let sharedChannel: ApduChannel | undefined;
type Ctor = new (t: Transport, c: ApduChannel, i: AppletInfo) => SmartCardHsm;

/**
 * A fresh session (SELECT, FCP parsed, empty caches) on `t`. Every case shares one ApduChannel:
 * each ApduChannel creates an AsyncLocalStorage that Node never releases, so 10,000 channels make
 * every later await slower and slower (see test/load-channel.test.ts). The session's own
 * constructor is used (it is private in TypeScript only) so that nothing of the session is mocked.
 */
async function session(t: Transport, login: boolean): Promise<SmartCardHsm> {
  shared.target = t;
  sharedChannel ??= (await SmartCardHsm.open(shared)).channel;
  const info = await SmartCardHsm.selectApplet(sharedChannel);
  const hsm = new (SmartCardHsm as unknown as Ctor)(shared, sharedChannel, info);
  if (login) await hsm.verifyPin(PIN);
  return hsm;
}

beforeAll(async () => {
  const card = new VirtualSmartCardHsm({ deviceId: '5550001' });
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: '3537363231383830', userPin: PIN, dkekShares: 1, label: 'hostile' });
  await hsm.importDkekShare(SHARE);
  await hsm.verifyPin(PIN);
  await hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'one' });
  await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'two' });
  await hsm.writeDataObject({ label: 'obj', data: Uint8Array.of(1, 2, 3) });
  state = card.serialize();
  for (const [name, { op, login }] of Object.entries(OPS)) {
    const rec = new Recorder(VirtualSmartCardHsm.deserialize(state));
    const hsm = await SmartCardHsm.open(rec);
    if (login) await hsm.verifyPin(PIN);
    await op(hsm);
    recorded[name] = rec.answers;
  }
});

/** Runs a case to its end; a hang would show as the test's timeout. */
async function settle(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (v) => ({ ok: v }),
    (e) => ({ err: e }),
  );
}

function checkOutcome(o: unknown): 'value' | 'error' {
  const x = o as { ok?: unknown; err?: unknown };
  if ('err' in x) {
    if (!(x.err instanceof ScHsmError)) throw x.err;
    return 'error';
  }
  return 'value';
}

describe('a hostile card', () => {
  const heap0 = { v: 0 };
  beforeAll(() => {
    (globalThis as { gc?: () => void }).gc?.();
    heap0.v = process.memoryUsage().heapUsed;
  });

  for (const [name, { op, login }] of Object.entries(OPS)) {
    it(`${name}: a value or an ScHsmError for ${RUNS} damaged replays`, async () => {
      const answers = recorded[name]!;
      const counts = { value: 0, error: 0 };
      await fc.assert(
        fc.asyncProperty(damageArb(answers.length), async (damages) => {
          const t = new ReplayHostileCard(answers, damages);
          counts[checkOutcome(await settle((async () => op(await session(t, login)))()))]++;
        }),
        { numRuns: RUNS },
      );
      expect(counts.error).toBeGreaterThan(0);
      expect(counts.value).toBeGreaterThan(0);
    });

    it(`${name}: a value or an ScHsmError for ${LIVE_RUNS} damaged answers of the live card`, async () => {
      const n = recorded[name]!.length;
      await fc.assert(
        fc.asyncProperty(damageArb(n), async (damages) => {
          const t = new LiveHostileCard(VirtualSmartCardHsm.deserialize(state), damages);
          checkOutcome(await settle((async () => op(await session(t, login)))()));
        }),
        { numRuns: LIVE_RUNS },
      );
    });
  }

  it('keeps the heap bounded over all runs', () => {
    (globalThis as { gc?: () => void }).gc?.();
    expect(process.memoryUsage().heapUsed - heap0.v).toBeLessThan(200 * 1024 * 1024);
  });
});

/** Flips one bit of the X coordinate of the first `86 41 04 …` EC point in `bytes`. */
function corruptPoint(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  for (let i = 0; i + 3 < out.length; i++) {
    if (out[i] === 0x86 && out[i + 1] === 0x41 && out[i + 2] === 0x04) {
      out[i + 3 + 10] = out[i + 3 + 10]! ^ 0x01;
      return out;
    }
  }
  throw new Error('no EC point in the sample');
}

describe('bugs found by the hostile card (precise reproductions)', () => {
  // BUG (src/sc-hsm/session.ts listKeys → keyInfoFromFiles): when CExx holds a CV request whose EC
  // point is not on the curve, cvcPublicKeyToSpki succeeds inside the try, but the later
  // createPublicKey(publicKey) outside it throws node's raw Error ERR_OSSL_EVP_DECODE_ERROR
  // instead of an ScHsmError (or of treating the public key as unreadable, as for other faults).
  it('listKeys: a CV request with an off-curve point in CExx gives an ScHsmError, not a raw OpenSSL error', async () => {
    const card = VirtualSmartCardHsm.deserialize(state);
    const hsm = await SmartCardHsm.open(card);
    await hsm.verifyPin(PIN);
    const ce = await hsm.readFile(0xce01);
    await hsm.writeFile(0xce01, corruptPoint(ce));
    const fresh = await SmartCardHsm.open(card);
    const outcome = await fresh.listKeys().then(
      (v) => v,
      (e: unknown) => e,
    );
    if (!Array.isArray(outcome)) expect(outcome).toBeInstanceOf(ScHsmError);
  });

  // BUG (src/sc-hsm/session.ts generateKeyPair → intrinsicKeyId): a GAKP answer whose EC point is
  // not on the curve passes decodeCvRequest and cvcPublicKeyToSpki, then intrinsicKeyId's
  // createPublicKey throws node's raw Error ERR_OSSL_EVP_DECODE_ERROR instead of an ScHsmError
  // (MALFORMED_RESPONSE would say what happened).
  it('generateKeyPair: an off-curve point in the card’s answer gives an ScHsmError, not a raw OpenSSL error', async () => {
    const card = VirtualSmartCardHsm.deserialize(state);
    const t: Transport = {
      extendedLength: true,
      async transmit(apdu) {
        const a = card.process(apdu);
        return apdu[1] === 0x46 ? corruptPoint(a) : a;
      },
      async close() {},
    };
    const hsm = await SmartCardHsm.open(t);
    await hsm.verifyPin(PIN);
    await expect(hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'x' })).rejects.toBeInstanceOf(
      ScHsmError,
    );
  });
});

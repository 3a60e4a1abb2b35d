/**
 * Restrictions fixed at key generation (spec §3.11: tag 91 algorithm list, tag 90 key-use counter)
 * and EC key derivation (`80 76`, spec §3.15), on the in-process virtual card through the session.
 */
import { createPublicKey, verify } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FaultInjectingTransport } from '../src/apdu/fault.js';
import { isScHsmError } from '../src/errors.js';
import { ALGORITHM_NAMES, INS } from '../src/protocol/constants.js';
import { backupDevice, restoreDevice } from '../src/sc-hsm/backup.js';
import { algorithmBytes, algorithmNames, SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { fromHex } from '../src/util/bytes.js';
import { FAULT_COMBOS, initializedHsm, rejection } from './helpers/fixtures.js';

const SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');
const PIN = '648219';

/** A fresh card initialized (with the DKEK of one share, SHARE, when `dkek`), the user PIN verified. */
async function device(dkek = false): Promise<{ card: VirtualSmartCardHsm; hsm: SmartCardHsm }> {
  const card = new VirtualSmartCardHsm();
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: '3537363231383830', userPin: PIN, ...(dkek ? { dkekShares: 1 } : {}) });
  if (dkek) await hsm.importDkekShare(SHARE);
  await hsm.verifyPin(PIN);
  return { card, hsm };
}
const withDkek = () => device(true);

/** An EC P-256 key pair LABEL with the restrictions in `more`. */
const ecKey = (
  hsm: SmartCardHsm,
  label: string,
  more: { useCounter?: number; algorithms?: Uint8Array; keyRef?: number } = {},
) => hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label, ...more });

/** Counts the APDUs the card gets. */
function counting(card: VirtualSmartCardHsm): { n: number } {
  const c = { n: 0 };
  const orig = card.transmit.bind(card);
  card.transmit = async (a: Uint8Array) => {
    c.n++;
    return orig(a);
  };
  return c;
}

describe('algorithm names', () => {
  it('map names to the spec bytes and back, case-insensitively', () => {
    expect([...algorithmBytes(['ecdsa-sha256', 'WRAP', 'DERIVE'])]).toEqual([0x73, 0x92, 0x98]);
    expect(algorithmNames(Uint8Array.of(0x70, 0x21, 0x80, 0x10, 0x55))).toEqual([
      'ECDSA',
      'RSA-DECRYPT-RAW',
      'ECDH',
      'AES-CBC-ENCRYPT',
      '0x55',
    ]);
    // one name per byte: the table is a bijection
    expect(new Set(Object.values(ALGORITHM_NAMES)).size).toBe(Object.keys(ALGORITHM_NAMES).length);
  });

  it('refuse unknown names (listing the valid ones), duplicates, empty and overlong lists', () => {
    expect(() => algorithmBytes(['ECDSA-SHA257'])).toThrow(
      /unknown algorithm name "ECDSA-SHA257"; valid names: RSA-RAW/,
    );
    expect(() => algorithmBytes(['WRAP', 'wrap'])).toThrow(/WRAP is named twice/);
    expect(() => algorithmBytes([])).toThrow(/1 to 16/);
    expect(() => algorithmBytes(Object.keys(ALGORITHM_NAMES).slice(0, 17))).toThrow(/at most 16/);
    expect(() => algorithmBytes(['toString'])).toThrow(/unknown algorithm name/);
    expect(() => algorithmBytes(['WR\u0007AP'])).toThrow(/unknown algorithm name/);
  });
});

describe('algorithm list and use counter at key generation', () => {
  it('the card refuses other algorithms, wrap included, and keys() reports the list', async () => {
    const { hsm } = await withDkek();
    const k = await ecKey(hsm, 'restricted', { algorithms: algorithmBytes(['ECDSA-SHA256']) });
    const info = (await hsm.listKeys()).find((x) => x.keyRef === k.keyRef)!;
    expect(algorithmNames(info.algorithms!)).toEqual(['ECDSA-SHA256']);
    expect(info.useCounter).toBeUndefined();
    // ECDSA-SHA256: the library lets the card hash, as the list allows only that
    const msg = new TextEncoder().encode('hello');
    const sig = await hsm.sign(k.keyRef, 'ECDSA-SHA256', msg);
    const pub = createPublicKey({ key: Buffer.from(k.publicKey), format: 'der', type: 'spki' });
    expect(verify('sha256', msg, { key: pub, dsaEncoding: 'der' }, sig)).toBe(true);
    // ECDSA over a host hash (70) is not in the list
    expect((await rejection(hsm.sign(k.keyRef, 'ECDSA', new Uint8Array(32)))).code).toBe(
      'ALGORITHM_NOT_ALLOWED',
    );
    expect((await rejection(hsm.sign(k.keyRef, 'ECDSA-SHA384', msg))).code).toBe('ALGORITHM_NOT_ALLOWED');
    expect((await rejection(hsm.wrapKey(k.keyRef))).code).toBe('ALGORITHM_NOT_ALLOWED');
    expect((await rejection(hsm.ecdh(k.keyRef, k.publicKey))).code).toBe('ALGORITHM_NOT_ALLOWED');
  });

  it('counts down every private-key operation; the exhausted key answers 6984 = USE_COUNTER_EXHAUSTED', async () => {
    const hsm = await initializedHsm();
    const k = await ecKey(hsm, 'twice', { useCounter: 2 });
    expect((await hsm.keyInfo(k.keyRef)).useCounter).toBe(2);
    await hsm.sign(k.keyRef, 'ECDSA-SHA256', Uint8Array.of(1));
    expect((await hsm.keyInfo(k.keyRef)).useCounter).toBe(1);
    await hsm.ecdh(k.keyRef, k.publicKey);
    expect((await hsm.listKeys())[0]!.useCounter).toBe(0);
    const e = await rejection(hsm.sign(k.keyRef, 'ECDSA-SHA256', Uint8Array.of(1)));
    expect(e.code).toBe('USE_COUNTER_EXHAUSTED');
    expect(e.sw).toBe(0x6984);
    expect(e.message).toMatch(/key use counter exhausted/);
    // a refused operation does not count: still 0, not wrapped around
    expect((await hsm.keyInfo(k.keyRef)).useCounter).toBe(0);
  });

  it('RSA keys too: the counter and a list of card-hashing algorithms', async () => {
    const hsm = await initializedHsm();
    const k = await hsm.generateKeyPair({
      type: 'rsa',
      bits: 1024,
      label: 'rsa',
      useCounter: 1,
      algorithms: algorithmBytes(['RSA-PKCS1-SHA256']),
    });
    const sig = await hsm.sign(k.keyRef, 'RSA-PKCS1-SHA256', Uint8Array.of(1, 2, 3));
    const pub = createPublicKey({ key: Buffer.from(k.publicKey), format: 'der', type: 'spki' });
    expect(verify('sha256', Uint8Array.of(1, 2, 3), pub, sig)).toBe(true);
    expect((await rejection(hsm.sign(k.keyRef, 'RSA-PKCS1-SHA256', Uint8Array.of(1)))).code).toBe(
      'USE_COUNTER_EXHAUSTED',
    );
  });

  it('hostile: counter 0, negative, fractional, huge, duplicate list bytes are refused before anything is sent', async () => {
    const { card, hsm } = await device();
    const c = counting(card);
    for (const useCounter of [0, -1, 1.5, 2 ** 32, Number.NaN]) {
      const e = await rejection(ecKey(hsm, 'x', { useCounter }));
      expect(e.code).toBe('INVALID_ARGUMENT');
    }
    for (const algorithms of [
      new Uint8Array(0),
      Uint8Array.of(0x73, 0x73),
      new Uint8Array(17).map((_, i) => i),
    ]) {
      const e = await rejection(ecKey(hsm, 'x', { algorithms }));
      expect(e.code).toBe('INVALID_ARGUMENT');
    }
    // an algorithm that cannot apply to the key's kind
    const misfit = await rejection(ecKey(hsm, 'x', { algorithms: algorithmBytes(['RSA-RAW', 'WRAP']) }));
    expect(misfit.message).toMatch(/names RSA-RAW, which cannot apply to an EC key/);
    const aes = await rejection(
      hsm.generateAesKey({ bits: 128, label: 'x', algorithms: algorithmBytes(['ECDSA']) }),
    );
    expect(aes.message).toMatch(/ECDSA, which cannot apply to an AES key/);
    expect(c.n).toBe(0);
    // the largest counter is accepted
    const k = await ecKey(hsm, 'max', { useCounter: 2 ** 32 - 1 });
    expect((await hsm.keyInfo(k.keyRef)).useCounter).toBe(2 ** 32 - 1);
  });

  it('the virtual card refuses a counter of 0 sent by another host (6A80)', async () => {
    const { hsm } = await device();
    const r = await hsm.channel.exchange(
      { cla: 0, ins: 0x48, p1: 5, p2: 0xb2, data: fromHex('900400000000') },
      'GENERATE SYMMETRIC KEY',
      { accept: [0x6a80] },
    );
    expect(r.sw).toBe(0x6a80);
  });

  it('survive the state file (and a state file without them still loads)', async () => {
    const { card, hsm } = await withDkek();
    await ecKey(hsm, 'kept', { useCounter: 7, algorithms: algorithmBytes(['ECDSA', 'WRAP']) });
    await hsm.sign(1, 'ECDSA', new Uint8Array(32));
    const json = card.serialize();
    const again = await SmartCardHsm.open(VirtualSmartCardHsm.deserialize(json));
    const info = await again.keyInfo(1);
    expect(info.useCounter).toBe(6);
    expect(algorithmNames(info.algorithms!)).toEqual(['ECDSA', 'WRAP']);
    // an old state file: no algorithms/useCounter fields at all
    const old = JSON.parse(json);
    for (const k of Object.values(old.keys) as Record<string, unknown>[]) {
      delete k.algorithms;
      delete k.useCounter;
    }
    const oldHsm = await SmartCardHsm.open(VirtualSmartCardHsm.deserialize(JSON.stringify(old)));
    const o = await oldHsm.keyInfo(1);
    expect(o.algorithms).toBeUndefined();
    expect(o.useCounter).toBeUndefined();
  });

  it('wrap/unwrap keeps the algorithm list (blob field, spec §8.1); the counter is not in the blob', async () => {
    const { hsm } = await withDkek();
    await ecKey(hsm, 'w', { useCounter: 3, algorithms: algorithmBytes(['ECDSA-SHA256', 'WRAP']) });
    const bin = await hsm.backupKey(1);
    const { hsm: other } = await withDkek();
    await other.restoreKey(bin, 9);
    const info = await other.keyInfo(9);
    expect(algorithmNames(info.algorithms!)).toEqual(['ECDSA-SHA256', 'WRAP']);
    expect(info.useCounter).toBeUndefined();
    expect((await rejection(other.sign(9, 'ECDSA', new Uint8Array(32)))).code).toBe('ALGORITHM_NOT_ALLOWED');
  });

  it('backup/restore of a device keeps the algorithm list; the restored key obeys it', async () => {
    const { hsm } = await withDkek();
    await ecKey(hsm, 'b', { useCounter: 4, algorithms: algorithmBytes(['ECDSA', 'WRAP']) });
    const dir = await mkdtemp(join(tmpdir(), 'sc-hsm-ts-restr-backup-'));
    try {
      await backupDevice(hsm, join(dir, 'b'), { authenticate: () => hsm.verifyPin(PIN) });
      const { hsm: spare } = await withDkek();
      await restoreDevice(spare, join(dir, 'b'), { authenticate: () => spare.verifyPin(PIN) });
      const info = await spare.keyInfo(1);
      expect(algorithmNames(info.algorithms!)).toEqual(['ECDSA', 'WRAP']);
      expect(info.useCounter).toBeUndefined();
      expect((await rejection(spare.ecdh(1, info.publicKey!))).code).toBe('ALGORITHM_NOT_ALLOWED');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a key without restrictions reports none; the card answers its FCP without A5', async () => {
    const hsm = await initializedHsm();
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'free' });
    const info = await hsm.keyInfo(1);
    expect(info.algorithms).toBeUndefined();
    expect(info.useCounter).toBeUndefined();
    const r = await hsm.channel.exchange(
      { cla: 0, ins: 0xa4, p1: 0, p2: 4, data: Uint8Array.of(0xcc, 1), ne: 256 },
      'SELECT',
    );
    expect(r.data.includes(0xa5)).toBe(false);
  });
});

describe('deriveEcKey (80 76)', () => {
  const TWEAK = fromHex('0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20');

  it('derives d + tweak: the public key the host computed signs, and is listed', async () => {
    for (const curve of ['prime256v1', 'brainpoolP256r1', 'secp384r1', 'secp256k1'] as const) {
      const hsm = await initializedHsm();
      const src = await hsm.generateKeyPair({ type: 'ec', curve, label: 'src' });
      const d = await hsm.deriveEcKey(src.keyRef, 7, TWEAK, { label: 'child' });
      expect(d.keyRef).toBe(7);
      const info = await hsm.keyInfo(7);
      expect(info).toMatchObject({ type: 'ec', curve, label: 'child' });
      expect(Buffer.from(info.publicKey!)).toEqual(Buffer.from(d.publicKey));
      const msg = Uint8Array.of(9, 9);
      const sig = await hsm.sign(7, 'ECDSA-SHA256', msg);
      const pub = createPublicKey({ key: Buffer.from(d.publicKey), format: 'der', type: 'spki' });
      expect(verify('sha256', msg, { key: pub, dsaEncoding: 'der' }, sig)).toBe(true);
      // derivation is additive: deriving again from the child with tweak t2 equals src + (t + t2)
      const d2 = await hsm.deriveEcKey(7, 8, Uint8Array.of(1), { label: 'grandchild' });
      const plus = new Uint8Array(TWEAK);
      plus[31]! += 1;
      const d3 = await hsm.deriveEcKey(src.keyRef, 9, plus, { label: 'same', id: Uint8Array.of(9) });
      expect(Buffer.from(d3.publicKey)).toEqual(Buffer.from(d2.publicKey));
    }
  });

  it('counts a use of the source and honours its algorithm list', async () => {
    const hsm = await initializedHsm();
    // 3 uses: the derive takes one, the derived key inherits the 2 left (DERIVE_INHERITS) and its check signature takes one
    await ecKey(hsm, 'src', { useCounter: 3, algorithms: algorithmBytes(['DERIVE', 'ECDSA']) });
    await hsm.deriveEcKey(1, 2, TWEAK, { label: 'a' });
    expect((await hsm.keyInfo(2)).useCounter).toBe(1);
    expect((await hsm.keyInfo(1)).useCounter).toBe(2);
    // 2 uses left: the derived key would keep none after its check, refused before anything is sent
    const e = await rejection(hsm.deriveEcKey(1, 3, TWEAK, { label: 'b' }));
    expect(e.code).toBe('USE_COUNTER_EXHAUSTED');
    expect(e.fix).toMatch(/at least 3 uses left/);
    expect((await hsm.keyInfo(1)).useCounter).toBe(2);
    await ecKey(hsm, 'no-derive', { keyRef: 10, algorithms: algorithmBytes(['ECDSA']) });
    expect((await rejection(hsm.deriveEcKey(10, 11, TWEAK, { label: 'c' }))).code).toBe(
      'ALGORITHM_NOT_ALLOWED',
    );
  });

  it('hostile: RSA source, existing destination, same reference, bad tweaks — refused before anything is sent', async () => {
    const { card, hsm } = await device();
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'ec' });
    await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'rsa' });
    const c = counting(card);
    const n = fromHex('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
    const cases: [Promise<unknown>, string, RegExp][] = [
      [hsm.deriveEcKey(2, 5, TWEAK, { label: 'x' }), 'INVALID_ARGUMENT', /RSA: only EC keys/],
      [hsm.deriveEcKey(1, 2, TWEAK, { label: 'x' }), 'KEY_REF_OCCUPIED', /already in use/],
      [hsm.deriveEcKey(1, 1, TWEAK, { label: 'x' }), 'INVALID_ARGUMENT', /of its own/],
      [hsm.deriveEcKey(3, 5, TWEAK, { label: 'x' }), 'KEY_NOT_FOUND', /no key/],
      [hsm.deriveEcKey(1, 5, new Uint8Array(32), { label: 'x' }), 'INVALID_ARGUMENT', /not be zero/],
      [hsm.deriveEcKey(1, 5, new Uint8Array(0), { label: 'x' }), 'INVALID_ARGUMENT', /tweak/],
      [
        hsm.deriveEcKey(1, 5, new Uint8Array(33).fill(1), { label: 'x' }),
        'INVALID_ARGUMENT',
        /at most 32 bytes/,
      ],
      [hsm.deriveEcKey(1, 5, n, { label: 'x' }), 'INVALID_ARGUMENT', /below the order/],
      [hsm.deriveEcKey(1, 0, TWEAK, { label: 'x' }), 'INVALID_ARGUMENT', /key reference/],
      [hsm.deriveEcKey(1, 256, TWEAK, { label: 'x' }), 'INVALID_ARGUMENT', /key reference/],
      [hsm.deriveEcKey(1, 5, TWEAK, { label: 'bad\nlabel' }), 'INVALID_ARGUMENT', /label/],
    ];
    for (const [p, code, re] of cases) {
      const e = await rejection(p);
      expect(e.code).toBe(code);
      expect(e.message).toMatch(re);
    }
    // only read commands went out (ENUMERATE, READ BINARY, SELECT): the card holds the same keys
    const keys = await hsm.listKeys();
    expect(keys.map((k) => k.keyRef)).toEqual([1, 2]);
    expect(c.n).toBeGreaterThan(0);
  });

  it('a fault at any APDU: a typed error; once 80 76 was sent it names the key reference to check', async () => {
    const hsm0 = await initializedHsm();
    await hsm0.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'src' });
    const base = (hsm0 as unknown as { transport: VirtualSmartCardHsm }).transport.serialize();
    const run = async (t: FaultInjectingTransport) => {
      const hsm = await SmartCardHsm.open(t);
      await hsm.verifyPin(PIN);
      return hsm.deriveEcKey(1, 6, TWEAK, { label: 'child' });
    };
    const clean = new FaultInjectingTransport(VirtualSmartCardHsm.deserialize(base));
    await run(clean);
    const n = clean.count;
    for (let k = 1; k <= n; k++) {
      for (const combo of FAULT_COMBOS) {
        const card = VirtualSmartCardHsm.deserialize(base);
        const t = new FaultInjectingTransport(card, { at: k, ...combo });
        let outcome: unknown = 'ok';
        try {
          await run(t);
        } catch (e) {
          outcome = e;
        }
        const where = `k=${k} ${combo.kind} delivered=${combo.delivered}`;
        if (outcome === 'ok') continue; // a truncated answer the host could still use
        expect(isScHsmError(outcome), where).toBe(true);
        const e = outcome as { keyRef?: number; fix?: string; command?: string };
        const keys = await SmartCardHsm.open(card).then((h) => h.listKeys());
        const derived = keys.find((x) => x.keyRef === 6);
        // a derived key the error does not mention would be a silent leftover
        if (derived) expect(e.keyRef, where).toBe(6);
      }
    }
  });

  it('the card itself refuses what the host would have caught (raw APDUs)', async () => {
    const hsm = await initializedHsm();
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'ec' });
    await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'rsa' });
    const send = async (p1: number, p2: number, data: Uint8Array) =>
      (
        await hsm.channel.exchange({ cla: 0x80, ins: INS.DERIVE_EC_KEY, p1, p2, data }, 'DERIVE', {
          accept: [0x6a81, 0x6a89, 0x6a80, 0x6a88, 0x6700, 0x9000],
        })
      ).sw;
    const t = Uint8Array.of(0x98, 1);
    expect(await send(2, 5, t)).toBe(0x6a81); // RSA source
    expect(await send(1, 2, t)).toBe(0x6a89); // destination exists
    expect(await send(1, 1, t)).toBe(0x6a89); // onto itself
    expect(await send(9, 5, t)).toBe(0x6a88); // no source
    expect(await send(1, 5, Uint8Array.of(0x99, 1))).toBe(0x6a80); // not 98
    expect(await send(1, 5, Uint8Array.of(0x98))).toBe(0x6700); // no tweak
    expect(await send(1, 5, t)).toBe(0x9000);
  });
});

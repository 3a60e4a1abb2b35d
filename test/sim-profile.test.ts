/**
 * Timing profiles of the virtual card (src/sim/profile.ts): the parser's typed errors, that the
 * modelled time is real waiting one APDU at a time (asserted on order and occupancy with fake
 * timers, never on durations), the profile's key capacity and largest APDU, and that the host
 * copes with both (a full device dumps; file writes stay under the largest APDU).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { testCertificate } from '../harness/certificate.js';
import { gatherDump } from '../src/sc-hsm/dump.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import {
  BUILTIN_PROFILES,
  loadProfile,
  NITROKEY_HSM2,
  parseProfile,
  type TimingProfile,
  timeForSize,
  validateProfile,
} from '../src/sim/profile.js';
import { fromHex, toHex } from '../src/util/bytes.js';
import { rejection } from './helpers/fixtures.js';
import { ext, ok, SELECT_AID, tx } from './sim-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'sc-hsm-profile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A profile where nothing takes time except what a test sets. */
function zeroProfile(
  over: { limits?: Partial<TimingProfile['limits']>; fixedMs?: number } = {},
): TimingProfile {
  const p = structuredClone(NITROKEY_HSM2) as TimingProfile;
  const zero = (o: Record<string, unknown>) => {
    for (const k of Object.keys(o)) {
      if (typeof o[k] === 'number') o[k] = 0;
      else zero(o[k] as Record<string, unknown>);
    }
  };
  zero(p.card as unknown as Record<string, unknown>);
  zero(p.transfer as unknown as Record<string, unknown>);
  p.transfer.fixedMs = over.fixedMs ?? 0;
  p.name = 'test';
  p.limits = { ...p.limits, ...over.limits };
  return p;
}

describe('profile parser', () => {
  const good = JSON.stringify(NITROKEY_HSM2);

  it('takes the built-in profile back from its own JSON', () => {
    expect(parseProfile(good)).toEqual(NITROKEY_HSM2);
    expect(validateProfile(NITROKEY_HSM2)).toEqual(NITROKEY_HSM2);
  });

  it.each([
    ['not JSON', '{"name": "x",', /is not JSON/],
    ['an array', '[]', /must be an object/],
    ['a negative cost', good.replace('"fixedMs":24', '"fixedMs":-1'), /transfer\.fixedMs: must be a number/],
    ['a cost as a string', good.replace('"verifyMs":8', '"verifyMs":"8"'), /card\.verifyMs/],
    ['an infinite-looking cost', good.replace('"wrapMs":250', '"wrapMs":1e999'), /card\.wrapMs/],
    ['an unknown key', good.replace('"name":', '"speed":1,"name":'), /unknown key "speed"/],
    [
      'an unknown card time',
      good.replace('"verifyMs":8', '"verifyMs":8,"verfyMs":8'),
      /unknown key "verfyMs"/,
    ],
    ['a missing key', good.replace('"wrapMs":250,', ''), /"wrapMs" is missing/],
    ['a key size that is not one', good.replace('"1024":75', '"big":75'), /"big" is not a key size/],
    ['no key sizes', good.replace(/"signEc":\{[^}]*\}/, '"signEc":{}'), /at least one key size/],
    ['a tiny largest APDU', good.replace('"maxApdu":1462', '"maxApdu":10'), /limits\.maxApdu/],
    ['a zero capacity', good.replace('"ecKeys":300', '"ecKeys":0'), /limits\.capacity\.ecKeys/],
    ['a name with control characters', good.replace('"nitrokey-hsm2"', '"a\\u001bb"'), /name/],
  ])('refuses %s with INVALID_ARGUMENT naming the field', async (_what, json, message) => {
    const e = await rejection((async () => parseProfile(json))());
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(message);
    expect(e.fix).toMatch(/--profile nitrokey-hsm2/);
  });

  it('loads a built-in by name and a JSON file by path; refuses anything else', async () => {
    expect(await loadProfile('nitrokey-hsm2')).toBe(BUILTIN_PROFILES['nitrokey-hsm2']);
    const file = join(dir, 'slow.json');
    writeFileSync(file, JSON.stringify({ ...NITROKEY_HSM2, name: 'slow' }));
    expect((await loadProfile(file)).name).toBe('slow');
    expect((await rejection(loadProfile(join(dir, 'missing.json')))).code).toBe('HOST_FILE_NOT_FOUND');
    expect((await rejection(loadProfile('nitrokey-hsm3'))).code).toBe('INVALID_ARGUMENT');
    expect((await rejection(loadProfile('toString'))).code).toBe('INVALID_ARGUMENT');
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{');
    const e = await rejection(loadProfile(broken));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toContain(broken);
  });

  it('looks key sizes up at the next listed size, else the largest', () => {
    expect(timeForSize({ 1024: 1, 2048: 2 }, 2048)).toBe(2);
    expect(timeForSize({ 1024: 1, 2048: 2 }, 1536)).toBe(2);
    expect(timeForSize({ 1024: 1, 2048: 2 }, 4096)).toBe(2);
  });
});

describe('modelled time is real waiting', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('answers one APDU at a time, each after its modelled time; a second caller waits for the first', async () => {
    vi.useFakeTimers();
    const card = new VirtualSmartCardHsm({ profile: zeroProfile({ fixedMs: 100 }) });
    const done: string[] = [];
    const a = card.transmit(fromHex(SELECT_AID)).then(() => done.push('a'));
    const b = card.transmit(fromHex('0084000008')).then(() => done.push('b'));
    await vi.advanceTimersByTimeAsync(90);
    expect(done).toEqual([]); // the card is still busy with a: nothing answered
    await vi.advanceTimersByTimeAsync(20);
    expect(done).toEqual(['a']); // b waits behind a: the card is occupied
    await vi.advanceTimersByTimeAsync(80);
    expect(done).toEqual(['a']);
    await vi.advanceTimersByTimeAsync(30);
    expect(done).toEqual(['a', 'b']);
    await Promise.all([a, b]);
    expect(card.modelledMs).toBe(200);
  });

  it('takes the card time by operation: a key generation keeps the next command waiting', async () => {
    const p = zeroProfile();
    p.card.generateEc = { 256: 5000 };
    const hsm = await SmartCardHsm.open(new VirtualSmartCardHsm());
    await hsm.initialize({ soPin: '3537363231383830', userPin: '648219' });
    await hsm.verifyPin('648219');
    const card = hsm.transport as VirtualSmartCardHsm;
    card.profile = p;
    vi.useFakeTimers();
    const order: string[] = [];
    const gen = hsm
      .generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'slow' })
      .then(() => order.push('generated'));
    await vi.advanceTimersByTimeAsync(4000);
    const other = card.transmit(fromHex('0084000008')).then(() => order.push('challenge'));
    await vi.advanceTimersByTimeAsync(500);
    expect(order).toEqual([]);
    await vi.advanceTimersByTimeAsync(2000);
    await Promise.all([gen, other]);
    expect(order[0]).toBe('challenge'); // queued behind the key generation, ahead of its later APDUs
    expect(order).toEqual(['challenge', 'generated']);
  });

  it('waits nothing without a profile, and a profile can be turned off again', async () => {
    const card = new VirtualSmartCardHsm({ profile: zeroProfile({ fixedMs: 1e6 }) });
    expect(card.answerReady()).toBeUndefined();
    card.profile = undefined;
    await card.transmit(fromHex(SELECT_AID));
    expect(card.answerReady()).toBeUndefined();
    expect(card.modelledMs).toBe(0);
  });
});

async function fresh(profile: TimingProfile): Promise<SmartCardHsm> {
  const hsm = await SmartCardHsm.open(new VirtualSmartCardHsm({ profile }));
  await hsm.initialize({ soPin: '3537363231383830', userPin: '648219' });
  await hsm.verifyPin('648219');
  return hsm;
}

describe('device limits', () => {
  it('refuses a key beyond the capacity with 6A84, keeps nothing of it, and dumps the full device', async () => {
    const hsm = await fresh(zeroProfile({ limits: { capacity: { ecKeys: 3, rsa2048Keys: 1 } } }));
    const first = await hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'one' });
    await hsm.storeCertificate(first.keyRef, testCertificate(first.publicKey, 'one'));
    // an RSA-1024 key takes two EC keys' room here (3 EC = 1 RSA-2048)
    await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'two' });
    const before = await hsm.listKeys();
    const fidsBefore = await hsm.files.enumerate();
    const e = await rejection(hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'three' }));
    expect(e.code).toBe('MEMORY_FULL');
    expect(e.sw).toBe(0x6a84);
    expect((await hsm.listKeys()).map((k) => k.keyRef)).toEqual(before.map((k) => k.keyRef));
    expect(await hsm.files.enumerate()).toEqual(fidsBefore);
    // the same again: still refused, nothing left behind
    expect(
      (await rejection(hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'again' }))).code,
    ).toBe('MEMORY_FULL');
    const d = await gatherDump(hsm);
    expect(d.keys.map((k) => k.label).sort()).toEqual(['one', 'two']);
    expect(d.keys.find((k) => k.label === 'one')?.certificate).toBeDefined();
    // a key deleted makes room again
    await hsm.deleteKey(first.keyRef);
    await hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'three' });
  });

  it('refuses an APDU longer than the largest with 6700; the host splits its writes under it', async () => {
    const hsm = await fresh(zeroProfile());
    const card = hsm.transport as VirtualSmartCardHsm;
    const k = await hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'cert' });
    card.profile = zeroProfile({ limits: { maxApdu: 261 } });
    expect(card.maxApdu).toBe(261);
    const longest: number[] = [];
    const process = card.process.bind(card);
    card.process = (apdu) => {
      longest.push(apdu.length);
      return process(apdu);
    };
    const cert = testCertificate(k.publicKey, 'cert');
    expect(cert.length).toBeGreaterThan(261);
    await hsm.storeCertificate(k.keyRef, cert);
    expect(Math.max(...longest)).toBeLessThanOrEqual(261);
    const d = await gatherDump(hsm);
    expect(toHex(d.keys[0]!.certificate!)).toBe(toHex(cert));
    // a raw UPDATE BINARY of 400 bytes is refused and changes nothing
    const raw = card as VirtualSmartCardHsm;
    ok(raw, SELECT_AID);
    const body = `5402000053820190${'00'.repeat(400)}`;
    const apdu = `00D7CE05000198${body}`;
    expect(tx(raw, apdu).sw).toBe('6700');
    expect(tx(raw, ext('00 B1 CE 05', '54020000')).sw).toBe('6A82');
  });
});

/**
 * Firmware that shows the DKEK's key check value only after the user PIN was verified (pico-hsm:
 * an all-zero KCV until then; issue #10, item 7). The virtual card's option `kcvAfterLogin`
 * behaves that way; `unwrap`, `backup`, `restore` and the library's backup, restore and import
 * must log in and read the KCV again instead of calling the zeros a mismatch — and still refuse a
 * real mismatch.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backupDevice, importPrivateKey, restoreDevice } from '../src/sc-hsm/backup.js';
import { dkekKcvUnknown, SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { fromHex, toHex } from '../src/util/bytes.js';
import { cli, PIN, SO_PIN, tempDir } from './cli-helpers.js';

const SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');
const OTHER = fromHex('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff');
const KCV = '2927c2c6cb63086a';

/** A card showing its KCV only after login, initialized with one DKEK share, optionally with two keys. */
async function device(share: Uint8Array, keys: boolean): Promise<VirtualSmartCardHsm> {
  const card = new VirtualSmartCardHsm({ kcvAfterLogin: true });
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1, label: 'pico-like' });
  await hsm.importDkekShare(share);
  if (keys) {
    await hsm.verifyPin(PIN);
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'ec' });
    await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'rsa' });
  }
  return card;
}

let source = '';
let blank = '';
let other = '';

beforeAll(async () => {
  source = (await device(SHARE, true)).serialize();
  blank = (await device(SHARE, false)).serialize();
  other = (await device(OTHER, false)).serialize();
});

describe('the virtual card option kcvAfterLogin', () => {
  it('answers zeros until the user PIN is verified in the session, and is kept in the state file', async () => {
    const card = VirtualSmartCardHsm.deserialize(source);
    const hsm = await SmartCardHsm.open(card);
    const before = (await hsm.dkekStatus())!;
    expect(toHex(before.kcv)).toBe('0000000000000000');
    expect(dkekKcvUnknown(before)).toBe(true);
    await hsm.verifyPin(PIN);
    const after = (await hsm.dkekStatus())!;
    expect(toHex(after.kcv)).toBe(KCV);
    expect(dkekKcvUnknown(after)).toBe(false);
    await hsm.logout();
    expect(toHex((await hsm.dkekStatus())!.kcv)).toBe('0000000000000000');
    expect(JSON.parse(source).kcvAfterLogin).toBe(true);
    // cards without the option: no such field, the KCV without login
    const plain = new VirtualSmartCardHsm();
    expect('kcvAfterLogin' in JSON.parse(plain.serialize())).toBe(false);
  });
});

describe('the commands log in first and compare the KCV after', () => {
  it('wrap, unwrap, backup and restore succeed; another DKEK is still a KCV mismatch, refused unchanged', async () => {
    const dir = await tempDir();
    const src = join(dir, 'src.json');
    const spare = join(dir, 'spare.json');
    const wrong = join(dir, 'wrong.json');
    await writeFile(src, source);
    await writeFile(spare, blank);
    await writeFile(wrong, other);
    const bin = join(dir, 'k1.bin');
    const w = await cli(['wrap', '--sim', src, '--key-ref', '1', '--out', bin, '--pin', PIN, '--json']);
    expect(w.code, w.stdout).toBe(0);
    // the wrapped key moves from reference 1 to 5 (its ID may be on the device once only)
    const del = await cli(['delete-key', '--sim', src, '--key-ref', '1', '--pin', PIN, '--yes', '--json']);
    expect(del.code, del.stdout).toBe(0);
    const u = await cli(['unwrap', bin, '--sim', src, '--key-ref', '5', '--pin', PIN, '--json']);
    expect(u.code, u.stdout).toBe(0);
    expect(u.json()).toMatchObject({ keyRef: 5, label: 'ec' });
    const bdir = join(dir, 'backup');
    const b = await cli(['backup', bdir, '--sim', src, '--pin', PIN, '--json']);
    expect(b.code, b.stdout).toBe(0);
    expect(b.json().manifest.device.kcv).toBe(KCV);
    const r = await cli(['restore', bdir, '--sim', spare, '--pin', PIN, '--json']);
    expect(r.code, r.stdout).toBe(0);
    expect(r.json().keys.map((k: { action: string }) => k.action)).toEqual(['restore', 'restore']);
    const before = await readFile(wrong, 'utf8');
    const mm = await cli(['restore', bdir, '--sim', wrong, '--pin', PIN, '--json']);
    expect(mm.code).toBe(6);
    expect(mm.json().error.code).toBe('KCV_MISMATCH');
    expect(mm.json().error.message).not.toMatch(/0000000000000000/);
    const um = await cli(['unwrap', bin, '--sim', wrong, '--key-ref', '1', '--pin', PIN, '--json']);
    expect(um.code).toBe(6);
    expect(um.json().error.code).toBe('KCV_MISMATCH');
    expect(await readFile(wrong, 'utf8')).toBe(before);
  });
});

describe('the library', () => {
  it('backupDevice, restoreDevice and importPrivateKey log in, then compare', async () => {
    const dir = await tempDir();
    const s = await SmartCardHsm.open(VirtualSmartCardHsm.deserialize(source));
    const b = await backupDevice(s, join(dir, 'b'), { authenticate: () => s.verifyPin(PIN) });
    expect(b.manifest.device.kcv).toBe(KCV);
    const t = await SmartCardHsm.open(VirtualSmartCardHsm.deserialize(blank));
    const r = await restoreDevice(t, join(dir, 'b'), { authenticate: () => t.verifyPin(PIN) });
    expect(r.written).toBe(2);
    expect(toHex(r.kcv)).toBe(KCV);
    const x = await SmartCardHsm.open(VirtualSmartCardHsm.deserialize(other));
    await expect(
      restoreDevice(x, join(dir, 'b'), { authenticate: () => x.verifyPin(PIN) }),
    ).rejects.toMatchObject({ code: 'KCV_MISMATCH' });
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const i = await SmartCardHsm.open(VirtualSmartCardHsm.deserialize(blank));
    const imported = await importPrivateKey(i, {
      key,
      keyRef: 7,
      label: 'imported',
      dkekShares: [SHARE],
      authenticate: () => i.verifyPin(PIN),
    });
    expect(imported.keyRef).toBe(7);
    const j = await SmartCardHsm.open(VirtualSmartCardHsm.deserialize(blank));
    await expect(
      importPrivateKey(j, {
        key,
        keyRef: 7,
        label: 'imported',
        dkekShares: [OTHER],
        authenticate: () => j.verifyPin(PIN),
      }),
    ).rejects.toMatchObject({ code: 'KCV_MISMATCH' });
  });
});

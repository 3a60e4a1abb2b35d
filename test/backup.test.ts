/**
 * The library's whole-device backup and restore and key import (src/sc-hsm/backup.ts), on
 * virtual cards: round trip onto a second device with the same DKEK share, refusals before any
 * write (KCV mismatch, damaged file, occupied reference), an interrupted restore completed by a
 * second run, and PEM imports under the right and the wrong DKEK.
 */
import { createPublicKey, verify as cryptoVerify, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testCertificate } from '../harness/certificate.js';
import {
  backupDevice,
  importPrivateKey,
  isScHsmError,
  MANIFEST,
  MANIFEST_FORMAT,
  type Manifest,
  restoreDevice,
  ScHsmError,
  SmartCardHsm,
} from '../src/index.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { fromHex } from '../src/util/bytes.js';
import { rejection } from './helpers/fixtures.js';

const SO_PIN = '3537363231383830';
const PIN = '648219';
const SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');
const OTHER_SHARE = fromHex('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff');

let root: string;
let sourceState = '';
let blankState = '';
let otherState = '';
let backupDir = '';

async function device(share: Uint8Array | undefined): Promise<VirtualSmartCardHsm> {
  const card = new VirtualSmartCardHsm();
  const hsm = await SmartCardHsm.open(card);
  // no share: no DKEK at all (dkekShares 0 would let the card make a random one)
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, label: 'backup', ...(share ? { dkekShares: 1 } : {}) });
  if (share) await hsm.importDkekShare(share);
  return card;
}

async function open(state: string): Promise<{ card: VirtualSmartCardHsm; hsm: SmartCardHsm }> {
  const card = VirtualSmartCardHsm.deserialize(state);
  return { card, hsm: await SmartCardHsm.open(card) };
}

async function publicKeys(hsm: SmartCardHsm): Promise<Map<number, string>> {
  return new Map(
    (await hsm.listKeys()).map((k) => [k.keyRef, Buffer.from(k.publicKey ?? []).toString('hex')]),
  );
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sc-hsm-backup-'));
  const card = await device(SHARE);
  blankState = card.serialize();
  const hsm = await SmartCardHsm.open(card);
  await hsm.verifyPin(PIN);
  const ec = await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'ec key' });
  const rsa = await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'rsa key' });
  await hsm.storeCertificate(ec.keyRef, testCertificate(ec.publicKey, 'ec'));
  await hsm.storeCertificate(rsa.keyRef, testCertificate(rsa.publicKey, 'rsa'));
  sourceState = card.serialize();
  otherState = (await device(OTHER_SHARE)).serialize();
  backupDir = join(root, 'backup');
  const progress: [number, number][] = [];
  const { hsm: src } = await open(sourceState);
  let logins = 0;
  const r = await backupDevice(src, backupDir, {
    authenticate: async () => {
      logins++;
      await src.verifyPin(PIN);
    },
    onProgress: (d, t) => progress.push([d, t]),
  });
  expect(logins).toBe(1);
  expect(progress).toEqual([
    [1, 2],
    [2, 2],
  ]);
  expect(r.verified).toBe(true);
  expect(r.keys.map((k) => k.file)).toEqual(['key-001.bin', 'key-002.bin']);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('backupDevice', () => {
  it('writes one .bin per key (0600) and a manifest that describes them', async () => {
    expect((await readdir(backupDir)).sort()).toEqual(['key-001.bin', 'key-002.bin', MANIFEST]);
    const m = JSON.parse(await readFile(join(backupDir, MANIFEST), 'utf8')) as Manifest;
    expect(m.format).toBe(MANIFEST_FORMAT);
    expect(m.version).toBe(1);
    expect(m.keys).toHaveLength(2);
    expect(m.keys[0]).toMatchObject({
      keyRef: 1,
      label: 'ec key',
      type: 'ec',
      curve: 'prime256v1',
      bits: 256,
    });
    expect(m.keys[1]).toMatchObject({ keyRef: 2, label: 'rsa key', type: 'rsa', bits: 1024 });
    for (const k of m.keys) {
      expect(k.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(k.publicKeySha256).toMatch(/^[0-9a-f]{64}$/);
      if (process.platform !== 'win32')
        expect((await stat(join(backupDir, k.file))).mode & 0o777).toBe(0o600);
    }
    // the manifest names the device and every key: as private as the key files
    if (process.platform !== 'win32')
      expect((await stat(join(backupDir, MANIFEST))).mode & 0o777).toBe(0o600);
  });

  it('refuses a directory that already holds a backup unless force', async () => {
    const { hsm } = await open(sourceState);
    const e = await rejection(backupDevice(hsm, backupDir));
    expect(e.code).toBe('FILE_EXISTS');
    const dir = join(root, 'again');
    await backupDevice(hsm, dir, { authenticate: () => hsm.verifyPin(PIN) });
    const r = await backupDevice(hsm, dir, { force: true });
    expect(r.manifest.keys).toHaveLength(2);
  });

  it('refuses a device without a DKEK', async () => {
    const { hsm } = await open((await device(undefined)).serialize());
    const dir = join(root, 'nodkek');
    expect((await rejection(backupDevice(hsm, dir))).code).toBe('NO_DKEK');
  });
});

describe('restoreDevice', () => {
  it('restores every key onto a second device with the same DKEK share', async () => {
    const { hsm } = await open(blankState);
    const r = await restoreDevice(hsm, backupDir, { authenticate: () => hsm.verifyPin(PIN) });
    expect(r.keys.map((k) => [k.keyRef, k.action, k.written])).toEqual([
      [1, 'restore', true],
      [2, 'restore', true],
    ]);
    expect(r.written).toBe(2);
    const src = await open(sourceState);
    expect(await publicKeys(hsm)).toEqual(await publicKeys(src.hsm));
    const keys = await hsm.listKeys();
    expect(keys.map((k) => [k.label, k.hasCertificate])).toEqual([
      ['ec key', true],
      ['rsa key', true],
    ]);
    // the restored keys work: sign with each
    const data = new TextEncoder().encode('restored');
    await hsm.verifyPin(PIN);
    const verify = (alg: string, keyRef: number, sig: Uint8Array) =>
      cryptoVerify(
        alg,
        data,
        createPublicKey({ key: Buffer.from(keys[keyRef - 1]!.publicKey!), format: 'der', type: 'spki' }),
        sig,
      );
    expect(verify('sha256', 1, await hsm.sign(1, 'ECDSA-SHA256', data))).toBe(true);
    expect(verify('sha256', 2, await hsm.sign(2, 'RSA-PKCS1-SHA256', data))).toBe(true);
  });

  it('refuses a device with another DKEK before anything is written', async () => {
    const { card, hsm } = await open(otherState);
    const before = card.serialize();
    let called = false;
    const e = await rejection(
      restoreDevice(hsm, backupDir, {
        authenticate: async () => {
          called = true;
        },
      }),
    );
    expect(e.code).toBe('KCV_MISMATCH');
    expect(called).toBe(false);
    expect(card.serialize()).toBe(before);
  });

  it('refuses a file whose hash differs from the manifest before anything is written', async () => {
    const dir = join(root, 'tampered');
    const { hsm: src } = await open(sourceState);
    await backupDevice(src, dir, { authenticate: () => src.verifyPin(PIN) });
    const bin = join(dir, 'key-002.bin');
    const data = await readFile(bin);
    data[data.length - 1]! ^= 1;
    await writeFile(bin, data);
    const { card, hsm } = await open(blankState);
    const before = card.serialize();
    const e = await rejection(restoreDevice(hsm, dir, { authenticate: () => hsm.verifyPin(PIN) }));
    expect(e.code).toBe('BACKUP_INVALID');
    expect(e.message).toMatch(/key-002\.bin/);
    expect(card.serialize()).toBe(before);
  });

  it('refuses a reference occupied by another key unless force, and asks before replacing', async () => {
    const { card, hsm } = await open(blankState);
    await hsm.verifyPin(PIN);
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'intruder', keyRef: 1 });
    const before = card.serialize();
    const e = await rejection(restoreDevice(hsm, backupDir));
    expect(e.code).toBe('KEY_REF_OCCUPIED');
    expect(e.message).toMatch(/intruder/);
    expect(card.serialize()).toBe(before);

    const declined = await rejection(
      restoreDevice(hsm, backupDir, { force: true, confirmReplace: () => false }),
    );
    expect(declined.code).toBe('KEY_REF_OCCUPIED');
    expect(card.serialize()).toBe(before);

    const asked: number[] = [];
    const r = await restoreDevice(hsm, backupDir, {
      force: true,
      confirmReplace: (c) => {
        asked.push(...c.map((x) => x.keyRef));
        return true;
      },
    });
    expect(asked).toEqual([1]);
    expect(r.keys.map((k) => k.action)).toEqual(['replace', 'restore']);
    const src = await open(sourceState);
    expect(await publicKeys(hsm)).toEqual(await publicKeys(src.hsm));
  });

  it('completes an interrupted restore on a second run and leaves what is there', async () => {
    const { card, hsm } = await open(blankState);
    await hsm.verifyPin(PIN);
    // interrupted after the first key: fail the restore's first command for the second key
    let n = 0;
    const process = card.process.bind(card);
    let failAt = -1;
    card.transmit = async (apdu) => {
      n++;
      if (n === failAt) throw new ScHsmError('CARD_REMOVED', 'the card was removed');
      return process(apdu);
    };
    let progressAtFailure = 0;
    failAt = Number.POSITIVE_INFINITY;
    const first = await rejection(
      restoreDevice(hsm, backupDir, {
        onProgress: (d) => {
          progressAtFailure = d;
          // the first key is on the device: the next APDU fails
          if (d === 1) failAt = n + 1;
        },
      }),
    );
    expect(isScHsmError(first)).toBe(true);
    expect(progressAtFailure).toBe(1);
    card.transmit = async (apdu) => process(apdu);
    const again = await SmartCardHsm.open(card);
    await again.verifyPin(PIN);
    const r = await restoreDevice(again, backupDir);
    expect(r.keys.map((k) => [k.keyRef, k.action])).toEqual([
      [1, 'present'],
      [2, 'restore'],
    ]);
    const third = await restoreDevice(again, backupDir, {
      authenticate: () => {
        throw new Error('nothing to write: no PIN needed');
      },
    });
    expect(third.keys.every((k) => k.action === 'present' && !k.written)).toBe(true);
    expect(third.written).toBe(0);
    const src = await open(sourceState);
    expect(await publicKeys(again)).toEqual(await publicKeys(src.hsm));
  });
});

describe('importPrivateKey', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ecPem = ec.privateKey.export({ format: 'pem', type: 'sec1' }) as string;
  const rsaPem = rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;

  it('imports a PEM EC and a PEM RSA key with the right DKEK share', async () => {
    const { hsm } = await open(blankState);
    await hsm.verifyPin(PIN);
    const a = await importPrivateKey(hsm, {
      key: new TextEncoder().encode(ecPem),
      keyRef: 3,
      label: 'imported ec',
      dkekShares: [SHARE],
    });
    expect(a).toMatchObject({ keyRef: 3, type: 'ec', bits: 256, label: 'imported ec', replaced: false });
    const b = await importPrivateKey(hsm, {
      key: rsaPem,
      keyRef: 4,
      label: 'imported rsa',
      id: Uint8Array.of(0xab, 0xcd),
      dkek: async () => SHARE.slice(),
    });
    expect(b).toMatchObject({ keyRef: 4, type: 'rsa', bits: 2048 });
    // the device holds the imported private keys: their signatures verify with the originals
    const data = new TextEncoder().encode('imported');
    expect(cryptoVerify('sha256', data, ec.publicKey, await hsm.sign(3, 'ECDSA-SHA256', data))).toBe(true);
    expect(cryptoVerify('sha256', data, rsa.publicKey, await hsm.sign(4, 'RSA-PKCS1-SHA256', data))).toBe(
      true,
    );
    expect(Buffer.from(a.publicKey)).toEqual(ec.publicKey.export({ format: 'der', type: 'spki' }));
    const keys = new Map((await hsm.listKeys()).map((k) => [k.keyRef, k]));
    expect(keys.get(4)!.id).toEqual(Uint8Array.of(0xab, 0xcd));
    expect(keys.get(3)!.label).toBe('imported ec');
    // the share given directly is the caller's: left as it is
    expect(SHARE[0]).toBe(0x9b);
  });

  it('refuses the wrong DKEK and an occupied reference before anything is written', async () => {
    const { card, hsm } = await open(sourceState);
    await hsm.verifyPin(PIN);
    const before = card.serialize();
    for (const key of [ecPem, rsaPem]) {
      const e = await rejection(
        importPrivateKey(hsm, { key, keyRef: 9, label: 'wrong dkek', dkekShares: [OTHER_SHARE] }),
      );
      expect(e.code).toBe('KCV_MISMATCH');
      expect(card.serialize()).toBe(before);
    }
    const occupied = await rejection(
      importPrivateKey(hsm, { key: ecPem, keyRef: 1, label: 'x', dkekShares: [SHARE] }),
    );
    expect(occupied.code).toBe('KEY_REF_OCCUPIED');
    expect(card.serialize()).toBe(before);
    const bad = await rejection(
      importPrivateKey(hsm, { key: 'not a key', keyRef: 9, label: 'x', dkekShares: [SHARE] }),
    );
    expect(bad.code).toBe('INVALID_ARGUMENT');
    expect(card.serialize()).toBe(before);
    const replaced = await importPrivateKey(hsm, {
      key: ecPem,
      keyRef: 1,
      label: 'replacement',
      dkekShares: [SHARE],
      force: true,
    });
    expect(replaced.replaced).toBe(true);
    expect((await hsm.keyInfo(1)).label).toBe('replacement');
  });
});

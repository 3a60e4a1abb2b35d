/** Backup and restore of keys in several key domains (spec §3.10): the manifest records each key's domain and its KCV. */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyCheckValue } from '../src/dkek/index.js';
import { backupDevice, checkBackup, restoreDevice } from '../src/sc-hsm/backup.js';
import { isPublicRead } from '../src/sc-hsm/precheck.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { NITROKEY_HSM2, type TimingProfile } from '../src/sim/profile.js';
import { toHex } from '../src/util/bytes.js';
import { rejection } from './helpers/fixtures.js';

const SO_PIN = '3537363231383830';
const PIN = '648219';
const S0 = randomBytes(32);
const S1 = randomBytes(32);
let root: string;

/** A device with 2 key domains; domain 0 from `s0`, domain 1 (when `s1`) from `s1`; PIN verified. */
async function device(s0: Uint8Array, s1?: Uint8Array) {
  const card = new VirtualSmartCardHsm();
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1, keyDomains: 2 });
  await hsm.importDkekShare(s0);
  await hsm.verifyPin(PIN);
  if (s1) {
    await hsm.createKeyDomain(1, 1);
    await hsm.importDkekShare(s1, { domain: 1 });
  }
  return { card, hsm };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sc-hsm-ts-backup-domains-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('backup and restore across key domains', () => {
  it('records each key’s domain and KCV, restores onto a device with the same domains, refuses one without', async () => {
    const src = await device(S0, S1);
    await src.hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'zero' });
    await src.hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'one', domain: 1 });
    const dir = join(root, 'b1');
    await backupDevice(src.hsm, dir);
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
    expect(m.device.kcv).toBe(toHex(keyCheckValue(S0)));
    expect(m.device.domains).toEqual({ 1: toHex(keyCheckValue(S1)) });
    expect(m.keys.map((k: { label: string; domain?: number }) => [k.label, k.domain])).toEqual([
      ['zero', undefined],
      ['one', 1],
    ]);
    await checkBackup(dir);

    // a device without domain 1's DKEK: refused before anything is written
    const bare = await device(S0);
    const before = bare.card.serialize();
    const e = await rejection(restoreDevice(bare.hsm, dir));
    expect(e.code).toBe('KCV_MISMATCH');
    expect(e.fix).toMatch(/^create the domain.*domain create --domain 1/);
    // domain 1 there, with another DKEK: the fix says so (not "create it", not "dkek import")
    const otherDkek = await device(S0, randomBytes(32));
    const e2 = await rejection(restoreDevice(otherDkek.hsm, dir));
    expect(e2.code).toBe('KCV_MISMATCH');
    expect(e2.fix).toMatch(/^key domain 1 holds another DKEK: .*--dkek-only/);
    expect(bare.card.serialize()).toBe(before);
    // the same domains: both keys back, each in its domain
    const dst = await device(S0, S1);
    await restoreDevice(dst.hsm, dir);
    const keys = await dst.hsm.listKeys();
    expect(keys.map((k) => [k.label, k.domain])).toEqual([
      ['zero', 0],
      ['one', 1],
    ]);
    expect(toHex((await dst.hsm.wrapKey(2)).subarray(0, 8))).toBe(toHex(keyCheckValue(S1)));
  });

  it('a manifest whose key claims a domain without a KCV, or a blob under another domain’s DKEK, is BACKUP_INVALID', async () => {
    const src = await device(S0, S1);
    await src.hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'one', domain: 1 });
    const dir = join(root, 'b2');
    await backupDevice(src.hsm, dir);
    const path = join(dir, 'manifest.json');
    const good = await readFile(path, 'utf8');
    const m = JSON.parse(good);
    delete m.device.domains;
    await writeFile(path, JSON.stringify(m));
    expect((await rejection(checkBackup(dir))).code).toBe('BACKUP_INVALID');
    const m2 = JSON.parse(good);
    m2.device.domains['1'] = toHex(keyCheckValue(S0));
    await writeFile(path, JSON.stringify(m2));
    expect((await rejection(checkBackup(dir))).message).toMatch(/another DKEK/);
  });
});

describe('reruns of backups and restores with keys in domains ≠ 0', () => {
  it('a backup run again (resumed, or --force) over its own files of a domain-1 key is not refused as foreign', async () => {
    const src = await device(S0, S1);
    await src.hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'zero' });
    await src.hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'one', domain: 1 });
    const dir = join(root, 'rerun-backup');
    await backupDevice(src.hsm, dir);
    // --force over the complete backup
    await backupDevice(src.hsm, dir, { force: true });
    // an interrupted run: key files without the manifest, resumed
    await rm(join(dir, 'manifest.json'));
    const r = await backupDevice(src.hsm, dir);
    expect(r.manifest.keys.map((k) => k.domain)).toEqual([undefined, 1]);
    await checkBackup(dir);
  });

  it('a key file of a domain-1 key under another DKEK is still foreign', async () => {
    const src = await device(S0, S1);
    await src.hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'one', domain: 1 });
    const dir = join(root, 'rerun-foreign');
    await backupDevice(src.hsm, dir);
    await rm(join(dir, 'manifest.json'));
    // the same device layout, domain 1 from another share: its files are not this device's
    const other = await device(S0, randomBytes(32));
    await other.hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'one', domain: 1 });
    const e = await rejection(backupDevice(other.hsm, dir));
    expect(e.code).toBe('FILE_EXISTS');
    expect(e.message).toMatch(/key-001\.bin \((wrapped under another DKEK|another key)/);
  });

  it('a restore run again (and --force) over an AES key of domain 1 is no false KCV_MISMATCH', async () => {
    const src = await device(S0, S1);
    await src.hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'zero' });
    await src.hsm.generateAesKey({ bits: 256, label: 'aes1', domain: 1 });
    const dir = join(root, 'rerun-restore');
    await backupDevice(src.hsm, dir);
    const dst = await device(S0, S1);
    await restoreDevice(dst.hsm, dir);
    await restoreDevice(dst.hsm, dir);
    await restoreDevice(dst.hsm, dir, { force: true });
    expect((await dst.hsm.listKeys()).map((k) => [k.label, k.domain])).toEqual([
      ['zero', 0],
      ['aes1', 1],
    ]);
  });
});

describe('checks from public data before the PIN (hostile user)', () => {
  it('a key whose domain lost its DKEK: wrap (in a precheck) and backup refuse before the PIN, nothing written', async () => {
    const src = await device(S0, S1);
    await src.hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'one', domain: 1 });
    await src.hsm.deleteKeyDomain(1, { dkekOnly: true });
    const e = await rejection(src.hsm.precheck(() => src.hsm.backupKey(1)));
    expect(e.code).toBe('DKEK_INCOMPLETE');
    expect(e.message).toMatch(/key domain 1.*Nothing was sent/);
    expect(e.fix).toContain('domain import FILE.pbe --domain 1');
    let asked = false;
    const dir = join(root, 'lost-domain');
    const b = await rejection(
      backupDevice(src.hsm, dir, {
        authenticate: async () => {
          asked = true;
        },
      }),
    );
    expect(b.code).toBe('DKEK_INCOMPLETE');
    expect(asked).toBe(false);
    await expect(readFile(join(dir, 'manifest.json'))).rejects.toThrow(/ENOENT/);
  });

  it('deleting a domain that holds keys is refused in a precheck (no PIN needed to know)', async () => {
    const src = await device(S0, S1);
    await src.hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'one', domain: 1 });
    const e = await rejection(src.hsm.precheck(() => src.hsm.deleteKeyDomain(1)));
    expect(e.code).toBe('KEY_DOMAIN_NOT_EMPTY');
    expect(e.message).toMatch(/key reference\(s\) 1\. Nothing was sent/);
  });

  it('keygen without a domain while domain 0 still misses shares is refused in a precheck, fix naming dkek import', async () => {
    const card = new VirtualSmartCardHsm();
    const hsm = await SmartCardHsm.open(card);
    await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 2 });
    await hsm.importDkekShare(S0);
    for (const op of [
      () => hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'x' }),
      () => hsm.generateAesKey({ bits: 128, label: 'y' }),
    ]) {
      const e = await rejection(hsm.precheck(op));
      expect(e.code).toBe('DKEK_INCOMPLETE');
      expect(e.fix).toBe('import the outstanding share(s): sc-hsm-ts dkek import FILE.pbe');
    }
  });
});

describe('precheck: MANAGE KEY DOMAIN', () => {
  it('only the status query (P1 0) is a public read: deleting a domain or its DKEK (P1 3, 4, no data) is not', async () => {
    expect(isPublicRead({ cla: 0x80, ins: 0x52, p1: 0 })).toBe(true);
    expect(isPublicRead({ cla: 0x80, ins: 0x52, p1: 3 })).toBe(false);
    expect(isPublicRead({ cla: 0x80, ins: 0x52, p1: 4 })).toBe(false);
    // an empty domain's DKEK: the precheck stops before the delete, which needs the PIN
    const src = await device(S0, S1);
    await src.hsm.precheck(() => src.hsm.deleteKeyDomain(1, { dkekOnly: true }));
    await src.hsm.precheck(() => src.hsm.deleteKeyDomain(1));
    expect(await src.hsm.keyDomainStatus(1)).toMatchObject({ outstanding: 0 });
  });
});

describe('a device without a domain-0 DKEK', () => {
  /** Key domains, no DKEK in domain 0; domain 1 from `s1`; PIN verified. */
  async function noDomain0(s1: Uint8Array) {
    const card = new VirtualSmartCardHsm();
    const hsm = await SmartCardHsm.open(card);
    await hsm.initialize({ soPin: SO_PIN, userPin: PIN, keyDomains: 2 });
    await hsm.verifyPin(PIN);
    await hsm.createKeyDomain(1, 1);
    await hsm.importDkekShare(s1, { domain: 1 });
    return hsm;
  }

  it('backs up and restores keys that all live in domain 1; a key of domain 0 is named', async () => {
    const src = await noDomain0(S1);
    await src.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'one', domain: 1 });
    const dir = join(root, 'no-dkek0');
    const r = await backupDevice(src, dir);
    expect(r.manifest.keys.map((k) => k.domain)).toEqual([1]);
    const dst = await noDomain0(S1);
    await restoreDevice(dst, dir);
    expect((await dst.listKeys()).map((k) => [k.label, k.domain])).toEqual([['one', 1]]);
    await src.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'zero' });
    const e = await rejection(backupDevice(src, join(root, 'no-dkek0-b')));
    expect(e.code).toBe('NO_DKEK');
    expect(e.message).toMatch(/key ref 2 is in key domain 0/);
  });
});

describe('restore into a domain that shares its DKEK with a lower one', () => {
  it('the key lands in the lower domain (the card’s choice) and the step says so', async () => {
    async function dev() {
      const card = new VirtualSmartCardHsm();
      const hsm = await SmartCardHsm.open(card);
      await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1, keyDomains: 3 });
      await hsm.importDkekShare(S0);
      await hsm.verifyPin(PIN);
      for (const d of [1, 2]) {
        await hsm.createKeyDomain(d, 1);
        await hsm.importDkekShare(S1, { domain: d });
      }
      return hsm;
    }
    const src = await dev();
    await src.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'two', domain: 2 });
    const dir = join(root, 'same-kcv');
    await backupDevice(src, dir);
    const dst = await dev();
    const r = await restoreDevice(dst, dir);
    expect(r.keys[0]!.note).toMatch(/was in key domain 2.*lands in key domain 1/);
    expect((await dst.listKeys()).map((k) => k.domain)).toEqual([1]);
  });
});

describe('restore onto a full device', () => {
  it('the card’s 6A84 is said as a full device (keys that do not fit, what to do), not only “run it again”', async () => {
    const src = await device(S0);
    for (const l of ['a', 'b', 'c']) await src.hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: l });
    const dir = join(root, 'full');
    await backupDevice(src.hsm, dir);
    const dst = await device(S0);
    const p = JSON.parse(JSON.stringify(NITROKEY_HSM2)) as TimingProfile;
    const zero = (o: Record<string, unknown>) => {
      for (const k of Object.keys(o)) {
        if (typeof o[k] === 'number') o[k] = 0;
        else zero(o[k] as Record<string, unknown>);
      }
    };
    zero(p.card as unknown as Record<string, unknown>);
    zero(p.transfer as unknown as Record<string, unknown>);
    p.limits.capacity = { ecKeys: 2, rsa2048Keys: 1 };
    dst.card.profile = p;
    const e = await rejection(restoreDevice(dst.hsm, dir));
    expect(e.code).toBe('MEMORY_FULL');
    expect(e.message).toMatch(/the device is full: 1 key\(s\) of the backup do not fit.*delete-key/);
  });
});

describe('the replaced key’s wrapped copy (unwrap/restore --force)', () => {
  it('is said to be under its key domain’s DKEK (by KCV), not “the device’s”', async () => {
    const { replacedKeySaver } = await import('../src/cli/commands/backup/replaced.js');
    const src = await device(S0, S1);
    await src.hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'one', domain: 1 });
    const bin = await src.hsm.backupKey(1);
    const lines: string[] = [];
    const save = replacedKeySaver({ serial: 'UT0001' }, new Map(), {
      dir: join(root, 'replaced'),
      fix: 'x',
      say: (l) => lines.push(l),
    });
    await mkdir(join(root, 'replaced'), { recursive: true });
    await save({ keyRef: 1, bin, label: 'one' });
    expect(lines[0]).toContain(
      `under the DKEK with key check value ${toHex(keyCheckValue(S1)).toUpperCase()}`,
    );
    expect(lines[0]).not.toContain("device's DKEK");
  });
});

/**
 * Backup directories under misuse (issue #10, items 5, 8 and 10): a manifest is validated whole
 * before anything is sent to a card; a backup resumed into a directory holding another device's
 * (or deleted keys') files is refused; temp files of a killed backup are removed and a failed
 * backup leaves no empty directory of its own; a restore started on one device and rerun on
 * another says so; the device is named in what changes it.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ScHsmError } from '../src/errors.js';
import {
  backupDevice,
  checkBackup,
  MANIFEST,
  RESTORE_PROGRESS,
  type RestoreElsewhere,
  restoreDevice,
} from '../src/sc-hsm/backup.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { fromHex } from '../src/util/bytes.js';
import { cli, PIN, SO_PIN, tempDir } from './cli-helpers.js';
import { rejection } from './helpers/fixtures.js';

const SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');

/** A device with its own serial, the DKEK of SHARE and `n` EC keys at references 1..n. */
async function device(id: string, label: string, n: number): Promise<string> {
  const card = new VirtualSmartCardHsm({ deviceId: id });
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1, label });
  await hsm.importDkekShare(SHARE);
  await hsm.verifyPin(PIN);
  for (let i = 1; i <= n; i++) await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: `k${i}` });
  return card.serialize();
}

async function open(state: string): Promise<{ card: VirtualSmartCardHsm; hsm: SmartCardHsm }> {
  const card = VirtualSmartCardHsm.deserialize(state);
  return { card, hsm: await SmartCardHsm.open(card) };
}

let devA = ''; // serial UTVH1111111, 3 keys
let devB = ''; // serial UTVH2222222, 2 keys
let blankX = ''; // UTVH3333333, no keys
let blankY = ''; // UTVH4444444, no keys
let good = ''; // a complete backup of A

beforeAll(async () => {
  devA = await device('1111111', 'device A', 3);
  devB = await device('2222222', 'device B', 2);
  blankX = await device('3333333', 'spare X', 0);
  blankY = await device('4444444', 'spare Y', 0);
  good = join(await tempDir(), 'good');
  const { hsm } = await open(devA);
  const r = await backupDevice(hsm, good, { authenticate: () => hsm.verifyPin(PIN) });
  expect(r.device).toEqual({ serial: 'UTVH1111111', label: 'device A' });
  expect(r.manifest.device).toMatchObject({ serial: 'UTVH1111111', label: 'device A' });
});

/** A copy of the good backup whose manifest `edit` changed. */
async function edited(edit: (m: Record<string, unknown> & { keys: Record<string, unknown>[] }) => void) {
  const dir = join(await tempDir(), 'edited');
  mkdirSync(dir);
  for (const f of readdirSync(good)) writeFileSync(join(dir, f), readFileSync(join(good, f)));
  const m = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8'));
  edit(m);
  writeFileSync(join(dir, MANIFEST), JSON.stringify(m));
  return dir;
}

/** An edit setting `field` of the manifest's key entry `i` to `value`. */
function at(i: number, field: string, value: unknown) {
  return (m: { keys: Record<string, unknown>[] }) => {
    m.keys[i]![field] = value;
  };
}

describe('the manifest is validated whole before anything is sent', () => {
  const CASES: [
    string,
    (m: { keys: Record<string, unknown>[] } & Record<string, unknown>) => void,
    RegExp,
  ][] = [
    ['two entries for one key reference', at(1, 'keyRef', 1), /key reference 1 appears twice/],
    ['an empty file name', at(0, 'file', ''), /keys\[0\]\.file must name/],
    ['a path', at(0, 'file', '../key-001.bin'), /not a plain file name/],
    ['a sub-directory', at(0, 'file', 'sub/key-001.bin'), /not a plain file name/],
    ['a backslash', at(0, 'file', 'sub\\key-001.bin'), /not a plain file name/],
    ['..', at(0, 'file', '..'), /not a plain file name/],
    ['a hidden file', at(0, 'file', '.key-001.bin'), /not a plain file name/],
    ['a control character', at(0, 'file', 'key\n001.bin'), /not a plain file name/],
    ['two entries for one file', at(1, 'file', 'key-001.bin'), /name the same file/],
    ['key reference 0', at(0, 'keyRef', 0), /keyRef must be a key reference from 1 to 255/],
    ['key reference 256', at(0, 'keyRef', 256), /keyRef must be/],
    ['a key reference as text', at(0, 'keyRef', '1'), /keyRef must be/],
    [
      'an upper-case hash',
      (m) => {
        m.keys[0]!.sha256 = String(m.keys[0]!.sha256).toUpperCase();
      },
      /sha256 must be 64/,
    ],
    ['a short hash', at(0, 'sha256', 'abcd'), /sha256 must be 64/],
    ['an ID that is not hex', at(0, 'id', 'zz'), /id must be/],
    [
      'a short device KCV',
      (m) => {
        (m.device as Record<string, unknown>).kcv = '2927';
      },
      /device\.kcv/,
    ],
    [
      'an entry that is not an object',
      (m) => {
        m.keys[0] = 7 as never;
      },
      /keys\[0\] is not an object/,
    ],
    [
      'more than 255 keys',
      (m) => {
        m.keys = Array.from({ length: 256 }, (_, i) => ({ ...m.keys[0], keyRef: i + 1 }));
      },
      /at most 255/,
    ],
  ];

  for (const [name, edit, reason] of CASES) {
    it(`${name}: BACKUP_INVALID with the reason`, async () => {
      const dir = await edited(edit);
      const e = await rejection(checkBackup(dir));
      expect(e.code).toBe('BACKUP_INVALID');
      expect(e.message).toMatch(reason);
      // restoreDevice from the directory: refused before any APDU
      const { card, hsm } = await open(blankX);
      const before = hsm.channel.apduCount;
      const state = card.serialize();
      expect((await rejection(restoreDevice(hsm, dir))).code).toBe('BACKUP_INVALID');
      expect(hsm.channel.apduCount).toBe(before);
      expect(card.serialize()).toBe(state);
    });
  }

  it('the command: exit 6 with the reason, the device file untouched', async () => {
    const dir = await edited((m) => {
      m.keys[1]!.keyRef = 1;
    });
    const tmp = await tempDir();
    const f = join(tmp, 'x.json');
    await writeFile(f, blankX);
    const r = await cli(['restore', dir, '--sim', f, '--pin', PIN, '--json']);
    expect(r.code).toBe(6);
    expect(r.json().error).toMatchObject({ code: 'BACKUP_INVALID' });
    expect(r.json().error.message).toMatch(/appears twice/);
    expect(await readFile(f, 'utf8')).toBe(blankX);
    const empty = await edited((m) => {
      m.keys[0]!.file = '';
    });
    const r2 = await cli(['restore', empty, '--sim', f, '--pin', PIN, '--json']);
    expect(r2.code).toBe(6);
    expect(r2.json().error.code).toBe('BACKUP_INVALID');
  });
});

describe('a backup directory holds one device’s backup', () => {
  /** A's backup, interrupted: the key files without the manifest. */
  async function interruptedA(): Promise<string> {
    const dir = join(await tempDir(), 'partial');
    mkdirSync(dir);
    for (const f of readdirSync(good))
      if (f !== MANIFEST) writeFileSync(join(dir, f), readFileSync(join(good, f)));
    return dir;
  }

  it('resuming into another device’s interrupted backup is refused, naming the files and a fix', async () => {
    const dir = await interruptedA();
    const before = readdirSync(dir).sort();
    const { hsm } = await open(devB);
    let logins = 0;
    const e = await rejection(
      backupDevice(hsm, dir, {
        authenticate: async () => {
          logins++;
          await hsm.verifyPin(PIN);
        },
      }),
    );
    expect(e.code).toBe('FILE_EXISTS');
    expect(e.message).toMatch(/key-003\.bin \(this device has no key at that reference\)/);
    expect(e.message).toMatch(/UTVH2222222/);
    expect(e.fix).toMatch(/new or empty directory/);
    expect(logins).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(before);
  });

  it('--force over another device’s complete backup is refused too', async () => {
    const dir = await edited(() => undefined);
    const { hsm } = await open(devB);
    const e = await rejection(
      backupDevice(hsm, dir, { force: true, authenticate: () => hsm.verifyPin(PIN) }),
    );
    expect(e.code).toBe('FILE_EXISTS');
    expect(e.message).toMatch(/backup of another device \(serial UTVH1111111/);
  });

  it('the same device resumes; a key deleted since its interrupted backup is not overwritten silently', async () => {
    const dir = await interruptedA();
    const { hsm } = await open(devA);
    const r = await backupDevice(hsm, dir, { authenticate: () => hsm.verifyPin(PIN) });
    expect(r.manifest.keys).toHaveLength(3);
    const again = await interruptedA();
    await hsm.deleteKey(3);
    const e = await rejection(backupDevice(hsm, again, {}));
    expect(e.code).toBe('FILE_EXISTS');
    expect(e.message).toMatch(/key-003\.bin/);
  });

  it('the command: exit 7 with the fix', async () => {
    const dir = await interruptedA();
    const tmp = await tempDir();
    const f = join(tmp, 'b.json');
    await writeFile(f, devB);
    const r = await cli(['backup', dir, '--sim', f, '--pin', PIN, '--json']);
    expect(r.code).toBe(7);
    expect(r.json().error.code).toBe('FILE_EXISTS');
    expect(r.json().error.fix).toMatch(/new or empty directory/);
  });
});

describe('what a killed or failed backup leaves', () => {
  it('a resumed backup removes the temp files of our naming, and nothing else', async () => {
    const dir = join(await tempDir(), 'temps');
    mkdirSync(dir);
    writeFileSync(join(dir, '.key-001.bin.0123456789ab.tmp'), 'x');
    writeFileSync(join(dir, '.manifest.json.aaaaaaaaaaaa.tmp'), 'x');
    writeFileSync(join(dir, '.notes.txt.0123456789ab.tmp'), 'someone else’s');
    const { hsm } = await open(devA);
    const r = await backupDevice(hsm, dir, { authenticate: () => hsm.verifyPin(PIN) });
    expect(r.removedTemps.sort()).toEqual([
      '.key-001.bin.0123456789ab.tmp',
      '.manifest.json.aaaaaaaaaaaa.tmp',
    ]);
    expect(readdirSync(dir).sort()).toEqual([
      '.notes.txt.0123456789ab.tmp',
      'key-001.bin',
      'key-002.bin',
      'key-003.bin',
      MANIFEST,
    ]);
  });

  it('a backup that fails before writing a file removes the directories it created, not others', async () => {
    const root = await tempDir();
    const { hsm } = await open(devA);
    // no PIN verified: the first WRAP KEY fails (6982)
    const e = await rejection(backupDevice(hsm, join(root, 'a', 'b'), {}));
    expect(e.code).toBe('SECURITY_STATUS');
    expect(existsSync(join(root, 'a'))).toBe(false);
    mkdirSync(join(root, 'mine'));
    await rejection(backupDevice(hsm, join(root, 'mine'), {}));
    expect(existsSync(join(root, 'mine'))).toBe(true);
  });
});

describe('a restore rerun on another device says so', () => {
  /** Restores `dir` onto the card of `state`, failing the APDU after the first key was restored. */
  async function interruptedRestore(state: string, dir: string): Promise<VirtualSmartCardHsm> {
    const card = VirtualSmartCardHsm.deserialize(state);
    const hsm = await SmartCardHsm.open(card);
    const process = card.process.bind(card);
    let failNext = false;
    card.transmit = async (apdu) => {
      if (failNext) throw new ScHsmError('CARD_REMOVED', 'the card was removed (test)');
      return process(apdu);
    };
    await rejection(
      restoreDevice(hsm, dir, {
        authenticate: () => hsm.verifyPin(PIN),
        onProgress: (d) => {
          if (d === 1) failNext = true;
        },
      }),
    );
    return card;
  }

  it('library: the device that started is reported before anything is written; it leaves the note when complete', async () => {
    const dir = await edited(() => undefined);
    const x = await interruptedRestore(blankX, dir);
    expect(JSON.parse(readFileSync(join(dir, RESTORE_PROGRESS), 'utf8')).devices).toMatchObject([
      { serial: 'UTVH3333333', label: 'spare X' },
    ]);
    const { hsm } = await open(blankY);
    const told: RestoreElsewhere[] = [];
    let toldBeforeLogin = false;
    let loggedIn = false;
    const r = await restoreDevice(hsm, dir, {
      authenticate: async () => {
        loggedIn = true;
        await hsm.verifyPin(PIN);
      },
      onInterrupted: (e) => {
        told.push(...e);
        toldBeforeLogin = !loggedIn;
      },
    });
    expect(told).toMatchObject([{ serial: 'UTVH3333333', label: 'spare X' }]);
    expect(toldBeforeLogin).toBe(true);
    expect(r.interrupted).toMatchObject([{ serial: 'UTVH3333333' }]);
    expect(r.device).toEqual({ serial: 'UTVH4444444', label: 'spare Y' });
    // Y is complete: only X is noted
    expect(JSON.parse(readFileSync(join(dir, RESTORE_PROGRESS), 'utf8')).devices).toHaveLength(1);
    // X completes: the note goes
    x.transmit = async (a) => x.process(a);
    const hx = await SmartCardHsm.open(x);
    const rx = await restoreDevice(hx, dir, { authenticate: () => hx.verifyPin(PIN) });
    expect(rx.interrupted).toEqual([]);
    expect(existsSync(join(dir, RESTORE_PROGRESS))).toBe(false);
  });

  it('the command warns on stderr and names both devices', async () => {
    const dir = await edited(() => undefined);
    await interruptedRestore(blankX, dir);
    const tmp = await tempDir();
    const f = join(tmp, 'y.json');
    await writeFile(f, blankY);
    const r = await cli(['restore', dir, '--sim', f, '--pin', PIN]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      /onto device serial UTVH3333333 \("spare X"\).*was not completed there; this run restores onto device serial UTVH4444444 \("spare Y"\)/,
    );
    expect(r.stdout).toMatch(/Device +: serial UTVH4444444 \("spare Y"\)/);
  });
});

describe('the device is named in what changes it', () => {
  it('wrap, unwrap, delete-key, backup and restore: JSON and text', async () => {
    const tmp = await tempDir();
    const f = join(tmp, 'a.json');
    await writeFile(f, devA);
    const device = { serial: 'UTVH1111111', label: 'device A' };
    const bin = join(tmp, 'k1.bin');
    const w = await cli(['wrap', '--sim', f, '--key-ref', '1', '--out', bin, '--pin', PIN, '--json']);
    expect(w.json().device).toEqual(device);
    // the key moves from reference 1 to 9 (its ID may be on the device once only)
    const d = await cli(['delete-key', '--sim', f, '--key-ref', '1', '--pin', PIN, '--yes', '--json']);
    expect(d.json().device).toEqual(device);
    const u = await cli(['unwrap', bin, '--sim', f, '--key-ref', '9', '--pin', PIN, '--json']);
    expect(u.json().device).toEqual(device);
    const b = await cli(['backup', join(tmp, 'b'), '--sim', f, '--pin', PIN, '--json']);
    expect(b.json().device).toEqual(device);
    expect(b.json().manifest.device).toMatchObject(device);
    const y = join(tmp, 'y.json');
    await writeFile(y, blankY);
    const r = await cli(['restore', join(tmp, 'b'), '--sim', y, '--pin', PIN, '--json']);
    expect(r.json().device).toEqual({ serial: 'UTVH4444444', label: 'spare Y' });
    const text = await cli(['delete-key', '--sim', y, '--key-ref', '9', '--pin', PIN, '--yes']);
    expect(text.stdout).toMatch(/Device +: serial UTVH4444444 \("spare Y"\)/);
  });
});

/**
 * A repeated DKEK share must never silently zero the DKEK (issue #10 §1). The card XORs whatever
 * it gets and shows a KCV of zeros while shares are outstanding, so the host is the only guard:
 * the session refuses a share it knows was imported (in this session, or listed by the caller's
 * ceremony record) before sending it; after the last share it reports a DKEK anyone can compute
 * (all zero, or equal to one share); WRAP KEY and backups refuse the all-zero DKEK; the command
 * keeps a record of fingerprints across processes; status, dump and backup flag the device.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  backupDevice,
  combineShares,
  encryptDkekShare,
  keyCheckValue,
  SmartCardHsm,
  ZERO_DKEK_KCV,
} from '../src/index.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { toHex } from '../src/util/bytes.js';
import { cli, ENV, PIN, SO_PIN, tempDir } from './cli-helpers.js';
import { buildCli, runCliProcess } from './helpers/cli-process.js';
import { rejection } from './helpers/fixtures.js';

const A = Uint8Array.from(randomBytes(32));
const B = Uint8Array.from(randomBytes(32));
const xor = (...s: Uint8Array[]) => s.reduce((a, b) => a.map((x, i) => x ^ b[i]!), new Uint8Array(32));

async function device(shares: number): Promise<{ card: VirtualSmartCardHsm; hsm: SmartCardHsm }> {
  const card = new VirtualSmartCardHsm();
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: shares });
  return { card, hsm };
}

describe('the all-zero DKEK', () => {
  it('has the key check value 66687AADF862BD77 (computed with the project\u2019s KCV code)', () => {
    expect(toHex(keyCheckValue(new Uint8Array(32)))).toBe('66687aadf862bd77');
    expect(toHex(ZERO_DKEK_KCV)).toBe('66687aadf862bd77');
  });
});

describe('library: importDkekShare', () => {
  it('refuses the same share twice in one session before sending it; the DKEK stays pending', async () => {
    const { hsm } = await device(2);
    await hsm.importDkekShare(A);
    const sent = hsm.apduCount;
    const e = await rejection(hsm.importDkekShare(A.slice()));
    expect(e.code).toBe('DKEK_SHARE_REPEATED');
    expect(e.message).toMatch(/Nothing was sent/);
    // one status query, no IMPORT DKEK SHARE
    expect(hsm.apduCount - sent).toBe(1);
    expect(await hsm.dkekStatus()).toMatchObject({ total: 2, outstanding: 1 });
    const done = await hsm.importDkekShare(B);
    expect(toHex(done.kcv)).toBe(toHex(keyCheckValue(xor(A, B))));
    expect(done.allZero).toBeUndefined();
  });

  it('refuses a share whose KCV the caller recorded in an earlier session', async () => {
    const { card, hsm } = await device(2);
    await hsm.importDkekShare(A);
    const later = await SmartCardHsm.open(card);
    const e = await rejection(later.importDkekShare(A, { importedShareKcvs: [keyCheckValue(A)] }));
    expect(e.code).toBe('DKEK_SHARE_REPEATED');
    expect((await later.dkekStatus())?.outstanding).toBe(1);
  });

  it('refuses a share of 32 zero bytes before sending it', async () => {
    const { hsm } = await device(1);
    expect((await rejection(hsm.importDkekShare(new Uint8Array(32)))).code).toBe('DKEK_DEGENERATE');
    expect((await hsm.dkekStatus())?.outstanding).toBe(1);
  });

  it('after the last share, a DKEK of zeros is reported loudly, with the remedy; status flags it', async () => {
    const { card, hsm } = await device(2);
    await hsm.importDkekShare(A);
    // another process without a record: the card XORs A twice
    const other = await SmartCardHsm.open(card);
    const e = await rejection(other.importDkekShare(A));
    expect(e.code).toBe('DKEK_DEGENERATE');
    expect(e.message).toMatch(/32 zero bytes/);
    expect(e.message).toMatch(/holds this DKEK now/);
    expect(e.message).toMatch(/re-initialize/);
    const st = await other.dkekStatus();
    expect(st).toMatchObject({ total: 2, outstanding: 0, allZero: true });
    expect(toHex(st!.kcv)).toBe('66687aadf862bd77');
    expect((await other.status()).dkek?.allZero).toBe(true);
  });

  it('after the last share, a DKEK equal to a share the host knows (the others cancelled out) is reported', async () => {
    const { card, hsm } = await device(3);
    await hsm.importDkekShare(A);
    await (await SmartCardHsm.open(card)).importDkekShare(B);
    // the third custodian brings A again; the host knows only B: DKEK = A ^ B ^ A = B
    const last = await SmartCardHsm.open(card);
    const e = await rejection(last.importDkekShare(A, { importedShareKcvs: [keyCheckValue(B)] }));
    expect(e.code).toBe('DKEK_DEGENERATE');
    expect(e.message).toMatch(/equals a single share/);
    expect(toHex((await last.dkekStatus())!.kcv)).toBe(toHex(keyCheckValue(B)));
  });

  it('forgets the shares of a DKEK that was re-initialized', async () => {
    const { hsm } = await device(2);
    await hsm.importDkekShare(A);
    await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 2 });
    await hsm.importDkekShare(A);
    expect((await hsm.importDkekShare(B)).outstanding).toBe(0);
  });
});

describe('library: nothing is wrapped under the all-zero DKEK', () => {
  let zeroState = '';
  beforeAll(async () => {
    const { card, hsm } = await device(2);
    await hsm.importDkekShare(A);
    await (await SmartCardHsm.open(card)).importDkekShare(A).catch(() => undefined);
    await hsm.verifyPin(PIN);
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'k' });
    zeroState = card.serialize();
  });

  it('wrapKey and backupKey refuse with DKEK_DEGENERATE', async () => {
    const hsm = await SmartCardHsm.open(VirtualSmartCardHsm.deserialize(zeroState));
    await hsm.verifyPin(PIN);
    expect((await rejection(hsm.wrapKey(1))).code).toBe('DKEK_DEGENERATE');
    expect((await rejection(hsm.backupKey(1))).code).toBe('DKEK_DEGENERATE');
  });

  it('backupDevice refuses before it creates the directory', async () => {
    const hsm = await SmartCardHsm.open(VirtualSmartCardHsm.deserialize(zeroState));
    const dir = join(await tempDir(), 'backup');
    const e = await rejection(backupDevice(hsm, dir, { authenticate: () => hsm.verifyPin(PIN) }));
    expect(e.code).toBe('DKEK_DEGENERATE');
    await expect(stat(dir)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('combineShares (the host\u2019s own DKEK from share files)', () => {
  it('refuses a repeated share, a zero share, and shares that cancel out', () => {
    expect(() => combineShares([A, B, A])).toThrowError(
      expect.objectContaining({ code: 'DKEK_SHARE_REPEATED' }),
    );
    expect(() => combineShares([A, new Uint8Array(32)])).toThrowError(
      expect.objectContaining({ code: 'DKEK_DEGENERATE' }),
    );
    // A, B, A^B: all different, but they cancel out to zero
    expect(() => combineShares([A, B, xor(A, B)])).toThrowError(
      expect.objectContaining({ code: 'DKEK_DEGENERATE' }),
    );
    // A, B, C, A^B^C... no: A, B^C, B, C — the combination equals A alone
    const C = Uint8Array.from(randomBytes(32));
    expect(() => combineShares([A, xor(B, C), B, C])).toThrowError(/equals share 1 alone/);
    expect(toHex(combineShares([A, B]))).toBe(toHex(xor(A, B)));
  });
});

describe('command: dkek import keeps a record of the ceremony', () => {
  let dir: string;
  let share1: string;
  let share1Again: string;
  const env = { ...ENV, PW2: 'another-password-2' };

  beforeAll(async () => {
    dir = await tempDir();
    share1 = join(dir, 'share-1.pbe');
    share1Again = join(dir, 'share-1-reencrypted.pbe');
    // the same share in two files with different passwords (different bytes)
    await writeFile(share1, await encryptDkekShare(A, ENV.PW), { mode: 0o600 });
    await writeFile(share1Again, await encryptDkekShare(A, env.PW2), { mode: 0o600 });
  });

  async function initTwoShares(name: string): Promise<string> {
    const sim = join(dir, name);
    const r = await cli(
      [
        'init',
        '--sim',
        sim,
        '--so-pin',
        'env:SO_PIN',
        '--pin',
        'env:PIN',
        '--label',
        'CA',
        '--dkek-shares',
        '2',
        '--yes',
      ],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    return sim;
  }

  it('refuses the same share file twice (before its password is asked) and a re-encrypted copy (before sending)', async () => {
    const sim = await initTwoShares('repeat.json');
    const first = await cli(['dkek', 'import', share1, '--sim', sim, '--password', 'env:PW'], { env });
    expect(first.code, first.stderr).toBe(0);
    const record = `${sim}.dkek-import.json`;
    expect((await stat(record)).mode & 0o777).toBe(0o600);
    const text = await readFile(record, 'utf8');
    const r = JSON.parse(text);
    expect(Object.keys(r).sort()).toEqual(['format', 'serial', 'shares', 'total', 'version']);
    expect(r.shares).toHaveLength(1);
    expect(Object.keys(r.shares[0]).sort()).toEqual(['file', 'fileSha256', 'kcv']);
    expect(r.shares[0].kcv).toBe(toHex(keyCheckValue(A)));
    // never the share itself, nor the password
    expect(text).not.toContain(toHex(A));
    expect(text).not.toContain(ENV.PW);

    // the same file again, no password given and no terminal: refused before the password is needed
    const again = await cli(['dkek', 'import', share1, '--sim', sim, '--json'], { env });
    expect(again.code).toBe(7);
    expect(again.json().error.code).toBe('DKEK_SHARE_REPEATED');
    expect(again.json().error.message).toContain('share-1.pbe');
    expect(again.json().error.fix).toMatch(/import the other share file/);

    // the same share, re-encrypted under another password: recognised by its KCV, nothing sent
    const copy = await cli(['dkek', 'import', share1Again, '--sim', sim, '--password', 'env:PW2', '--json'], {
      env,
    });
    expect(copy.code).toBe(7);
    expect(copy.json().error.code).toBe('DKEK_SHARE_REPEATED');
    const st = await cli(['status', '--sim', sim, '--json']);
    expect(st.json().dkek).toMatchObject({ total: 2, outstanding: 1 });
  });

  it('a record that cannot be written before sending: the share is not sent', async () => {
    const sim = await initTwoShares('unrecordable.json');
    // a directory in the record's place
    await mkdir(`${sim}.dkek-import.json`);
    const r = await cli(['dkek', 'import', share1, '--sim', sim, '--password', 'env:PW', '--json'], { env });
    expect(r.code).toBe(1);
    expect(r.json().error.code).toBe('IO_ERROR');
    // a directory is no record: refused when it is read (EISDIR), before anything is sent
    expect(r.json().error.message).toMatch(/cannot be read .*EISDIR.*The share was not sent/);
    expect(r.json().error.fix).toContain(`${sim}.dkek-import.json`);
    expect((await cli(['status', '--sim', sim, '--json'])).json().dkek).toMatchObject({
      total: 2,
      outstanding: 2,
    });
  });

  it('without a record the last share is still checked: DKEK_DEGENERATE, then status, dump, backup and wrap flag the device', async () => {
    const sim = await initTwoShares('zero.json');
    const first = await cli(['dkek', 'import', share1, '--sim', sim, '--password', 'env:PW'], { env });
    expect(first.code, first.stderr).toBe(0);
    // the record is lost (another host, a deleted file): the repeat is only caught after the last share
    await rm(`${sim}.dkek-import.json`);
    const last = await cli(['dkek', 'import', share1, '--sim', sim, '--password', 'env:PW'], { env });
    expect(last.code).toBe(6);
    expect(last.stderr).toMatch(/imported without a record/);
    expect(last.stderr).toMatch(/DKEK is 32 zero bytes/);
    expect(last.stderr).toMatch(/fix: re-initialize the device/);

    const human = await cli(['status', '--sim', sim]);
    expect(human.stdout).toMatch(/DKEK key check value : 66687AADF862BD77/);
    expect(human.stdout).toMatch(/WARNING: the DKEK is 32 zero bytes/);
    const json = await cli(['status', '--sim', sim, '--json']);
    expect(json.json().dkek).toMatchObject({ outstanding: 0, kcv: '66687aadf862bd77', allZero: true });
    expect(json.stderr).toMatch(/warning: the DKEK is 32 zero bytes/);
    const dump = await cli(['dump', '--sim', sim]);
    expect(dump.stdout).toMatch(/WARNING: the DKEK is 32 zero bytes/);
    expect((await cli(['dump', '--sim', sim, '--json'])).json().dkek.allZero).toBe(true);

    expect(
      (await cli(['keygen', '--sim', sim, '--type', 'ec:prime256v1', '--label', 'k', '--pin', PIN])).code,
    ).toBe(0);
    const backupDir = join(dir, 'zero-backup');
    const b = await cli(['backup', backupDir, '--sim', sim, '--pin', PIN, '--json']);
    expect(b.code).toBe(6);
    expect(b.json().error.code).toBe('DKEK_DEGENERATE');
    await expect(readdir(backupDir)).rejects.toMatchObject({ code: 'ENOENT' });
    const w = await cli([
      'wrap',
      '--sim',
      sim,
      '--key-ref',
      '1',
      '--out',
      join(dir, 'k.bin'),
      '--pin',
      PIN,
      '--json',
    ]);
    expect(w.code).toBe(6);
    expect(w.json().error.code).toBe('DKEK_DEGENERATE');
    await expect(stat(join(dir, 'k.bin'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('--dkek given the same share twice is refused: the same file before any password is asked', async () => {
    const bin = join(process.cwd(), 'fixtures', 'dkek', 'key1.bin');
    // no password and no terminal: refused before a password would be needed (was SECRET_REQUIRED)
    const same = await cli(['wrapped', 'inspect', bin, '--dkek', share1, '--dkek', share1, '--json'], {
      env,
    });
    expect(same.code).toBe(7);
    expect(same.json().error).toMatchObject({ code: 'DKEK_SHARE_REPEATED' });
    expect(same.json().error.fix).toMatch(/--dkek/);
    // a re-encrypted copy: recognised once both are decrypted, before the DKEK is used
    const copy = await cli(
      [
        'wrapped',
        'inspect',
        bin,
        '--dkek',
        share1,
        '--password',
        'env:PW',
        '--dkek',
        share1Again,
        '--password',
        'env:PW2',
        '--json',
      ],
      { env },
    );
    expect(copy.code).toBe(7);
    expect(copy.json().error.code).toBe('DKEK_SHARE_REPEATED');
    expect(copy.json().error.message).toContain('share-1-reencrypted.pbe');
  });
});

/**
 * A preloaded module that SIGKILLs the command right after its Nth rename onto a file named NAME
 * (the atomic writes of the state file and of the import record end in a rename): a kill at an
 * exact point of the command, not after a time.
 */
const KILL_HOOK = `
import fs from 'node:fs';
import { basename } from 'node:path';
import { syncBuiltinESMExports } from 'node:module';
const name = process.env.KILL_AFTER_RENAME_TO;
const nth = Number(process.env.KILL_AFTER_RENAME_N ?? '1');
let n = 0;
const after = (to) => {
  if (basename(String(to)) === name && ++n === nth) process.kill(process.pid, 'SIGKILL');
};
const rename = fs.promises.rename;
fs.promises.rename = async (from, to) => {
  await rename(from, to);
  after(to);
};
const renameSync = fs.renameSync;
fs.renameSync = (from, to) => {
  renameSync(from, to);
  after(to);
};
syncBuiltinESMExports();
`;

describe('command: a dkek import killed half-way', () => {
  let dir: string;
  let hook: string;
  let share1: string;
  const env = { ...ENV };

  beforeAll(async () => {
    await buildCli();
    dir = await tempDir();
    hook = join(dir, 'kill-hook.mjs');
    await writeFile(hook, KILL_HOOK);
    share1 = join(dir, 'share-1.pbe');
    await writeFile(share1, await encryptDkekShare(A, ENV.PW), { mode: 0o600 });
  });

  async function initTwoShares(name: string): Promise<string> {
    const sim = join(dir, name);
    const args = ['init', '--sim', sim, '--so-pin', 'env:SO_PIN', '--pin', 'env:PIN', '--label', 'CA'];
    const r = await cli([...args, '--dkek-shares', '2', '--yes'], { env });
    expect(r.code, r.stderr).toBe(0);
    return sim;
  }

  /** Runs `dkek import` killed at the first rename onto `at`; its lock is then aged as after the stale time. */
  async function killedImport(sim: string, at: string) {
    const r = await runCliProcess(['dkek', 'import', share1, '--sim', sim, '--password', 'env:PW'], {
      env: { ...env, NODE_OPTIONS: `--import ${hook}`, KILL_AFTER_RENAME_TO: at },
    });
    const old = new Date(Date.now() - 120_000);
    await utimes(`${sim}.lock`, old, old);
    return r;
  }

  it('killed after the card took the share: a plain rerun refuses the same share, nothing is sent', async () => {
    const sim = await initTwoShares('killed-after.json');
    // the first save of the state file is the card taking the share
    const killed = await killedImport(sim, 'killed-after.json');
    expect(killed.signal).toBe('SIGKILL');
    expect((await cli(['status', '--sim', sim, '--json'])).json().dkek).toMatchObject({ outstanding: 1 });
    const record = JSON.parse(await readFile(`${sim}.dkek-import.json`, 'utf8'));
    expect(record.pending).toMatchObject({ kcv: toHex(keyCheckValue(A)), outstanding: 2 });
    expect(record.shares).toEqual([]);

    const again = await cli(['dkek', 'import', share1, '--sim', sim, '--password', 'env:PW', '--json'], {
      env,
    });
    expect(again.code).toBe(7);
    expect(again.json().error.code).toBe('DKEK_SHARE_REPEATED');
    expect(again.stderr).not.toMatch(/without a record/);
    // still waiting for the second share, not the all-zero DKEK
    expect((await cli(['status', '--sim', sim, '--json'])).json().dkek).toMatchObject({
      total: 2,
      outstanding: 1,
    });
  });

  it('killed after the record was written but before the share was sent: the rerun imports it', async () => {
    const sim = await initTwoShares('killed-before.json');
    const killed = await killedImport(sim, 'killed-before.json.dkek-import.json');
    expect(killed.signal).toBe('SIGKILL');
    // the pending entry was on disk before anything was sent; the card never saw the share
    const record = JSON.parse(await readFile(`${sim}.dkek-import.json`, 'utf8'));
    expect(record.pending).toMatchObject({ outstanding: 2 });
    expect((await cli(['status', '--sim', sim, '--json'])).json().dkek).toMatchObject({ outstanding: 2 });

    const again = await cli(['dkek', 'import', share1, '--sim', sim, '--password', 'env:PW'], { env });
    expect(again.code, again.stderr).toBe(0);
    const after = JSON.parse(await readFile(`${sim}.dkek-import.json`, 'utf8'));
    expect(after.pending).toBeUndefined();
    expect(after.shares).toHaveLength(1);
    expect((await cli(['status', '--sim', sim, '--json'])).json().dkek).toMatchObject({ outstanding: 1 });
  });
});

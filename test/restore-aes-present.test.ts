/**
 * A restore never replaces a key that is on the device without --force, AES keys included
 * (findings A and B of a hostile pass, through the command on virtual cards, in-process). An AES key
 * has no public key and its wrapped value cannot be compared on the host (no DKEK there): one with
 * the backup's label, ID, type and size is reported present but unverifiable (`unverified: true`)
 * and left as it is — its use counter too (spec §8: the blob carries none) — reruns send nothing
 * for it and write no replaced-key copy; anything else there is KEY_REF_OCCUPIED; --force replaces
 * it (the replaced key's copy kept, the lost counter said).
 */
import { generateKeyPairSync } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SmartCardHsm } from '../src/index.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { cli, copyState, dkekState, ENV, PIN, tempDir } from './cli-helpers.js';

let dir: string;
/** Initialized with one DKEK share (imported), no keys. */
let base: string;
let msg: string;
let n = 0;

beforeAll(async () => {
  dir = await tempDir();
  base = await dkekState(dir, 'R');
  msg = join(dir, 'msg');
  await writeFile(msg, 'the message');
});

const fresh = () => copyState(base, dir, `d${++n}.json`);
const run = (sim: string, ...args: string[]) => cli([...args, '--sim', sim, '--pin', PIN, '--json']);
/** `restore BK` without --force and without a terminal (stdin empty, as `</dev/null`). */
const restore = (sim: string, bk: string, ...more: string[]) =>
  cli(['restore', bk, '--sim', sim, '--pin', 'env:PIN', '--json', ...more], { env: ENV, stdin: '' });
const cmac = (sim: string) => run(sim, 'aes', 'cmac', '--key-ref', '1', '--in', msg);
const replacedCopies = async (d: string) => (await readdir(d)).filter((f) => f.startsWith('replaced-key-'));
const triesLeft = async (sim: string) =>
  (await cli(['status', '--sim', sim, '--json'])).json().userPin.triesLeft as number;

describe('A: a key with an exhausted use counter is not restored over (its counter is kept)', () => {
  it('present but unverifiable, left as it is, on every rerun; --force replaces it and says the counter is lost', async () => {
    const m = await fresh();
    const kg = await run(m, 'keygen', '--type', 'aes:256', '--label', 'vault', '--use-counter', '2');
    expect(kg.code, kg.stderr).toBe(0);
    expect((await cmac(m)).code).toBe(0);
    const mac = (await cmac(m)).json().cmac as string;
    expect((await cmac(m)).json().error.code).toBe('USE_COUNTER_EXHAUSTED');
    const bk = join(dir, `bkm-${n}`);
    expect((await run(m, 'backup', bk)).code).toBe(0);
    const before = await readFile(m, 'utf8');
    for (let i = 0; i < 2; i++) {
      const r = await restore(m, bk);
      expect(r.code, r.stderr).toBe(0);
      expect(r.json().keys).toEqual([
        { keyRef: 1, action: 'present', unverified: true, note: expect.any(String) },
      ]);
      expect(r.json().keys[0].note).toBe(
        `AES key 1 "vault" is on the device; its value cannot be compared with the backup's on the host: left as it is; --force replaces it with the backup's copy`,
      );
      expect(r.stderr).toContain('warning: AES key 1 "vault" is on the device');
      // nothing written, nothing replaced: the card's state is as it was, the counter still spent
      expect(await replacedCopies(bk)).toEqual([]);
      expect(await readFile(m, 'utf8')).toBe(before);
      expect((await cmac(m)).json().error.code).toBe('USE_COUNTER_EXHAUSTED');
    }
    const plain = await cli(['restore', bk, '--sim', m, '--pin', 'env:PIN'], { env: ENV });
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/key ref 1 {2}"vault" {2}on the device, left as it is \(an AES key/);
    expect(plain.stdout).toMatch(
      /0 written, 1 already present \(1 of them AES key\(s\) .*--force replaces them\)/,
    );
    // --force without --yes and without a terminal: refused, nothing changed
    const unconfirmed = await restore(m, bk, '--force');
    expect(unconfirmed.json().error.code).toBe('CONFIRMATION_REQUIRED');
    expect(await readFile(m, 'utf8')).toBe(before);
    const forced = await restore(m, bk, '--force', '--yes');
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.json().keys[0]).toMatchObject({ keyRef: 1, action: 'replace' });
    expect(forced.json().keys[0].unverified).toBeUndefined();
    expect(forced.json().keys[0].note).toMatch(/key use counter \(0 use\(s\) left\).*without limit/);
    expect(forced.stderr).toMatch(/warning: .*key use counter \(0 use\(s\) left\)/);
    expect(await replacedCopies(bk)).toHaveLength(1);
    // the backup's copy, without a counter
    expect((await cmac(m)).json().cmac).toBe(mac);
  });
});

describe('B: another AES key with the backup label, ID, type and size is not overwritten', () => {
  it('left as it is (its ciphertext still decrypts); --force replaces it', async () => {
    const s = await fresh();
    const kg = () => run(s, 'keygen', '--type', 'aes:256', '--label', 'v', '--id', '0102');
    expect((await kg()).code).toBe(0);
    const bk = join(dir, `bkn-${n}`);
    expect((await run(s, 'backup', bk)).code).toBe(0);
    const del = await cli(['delete-key', '--sim', s, '--key-ref', '1', '--pin', 'env:PIN', '--yes'], {
      env: ENV,
    });
    expect(del.code, del.stderr).toBe(0);
    expect((await kg()).code).toBe(0);
    const eB = join(dir, `eB-${n}`);
    expect((await run(s, 'aes', 'encrypt', '--key-ref', '1', '--in', msg, '--out', eB)).code).toBe(0);
    const decrypts = async () => {
      const out = join(dir, `dB-${n}-${Math.random().toString(16).slice(2)}`);
      const d = await run(s, 'aes', 'decrypt', '--key-ref', '1', '--in', eB, '--out', out);
      return d.code === 0 && (await readFile(out, 'utf8')) === 'the message';
    };
    for (let i = 0; i < 2; i++) {
      const r = await restore(s, bk);
      expect(r.code, r.stderr).toBe(0);
      expect(r.json().keys[0]).toMatchObject({ keyRef: 1, action: 'present', unverified: true });
      expect(await decrypts()).toBe(true);
      expect(await replacedCopies(bk)).toEqual([]);
    }
    const forced = await restore(s, bk, '--force', '--yes');
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.json().keys[0]).toMatchObject({ keyRef: 1, action: 'replace' });
    expect(forced.json().keys[0].note).toBeUndefined();
    expect(forced.json().keys[0].replacedSavedTo).toMatch(/replaced-key-001-/);
    expect(await decrypts()).toBe(false);
    // now the backup's key; a rerun leaves it (unverified as ever), nothing replaced again
    const again = await restore(s, bk);
    expect(again.json().keys[0]).toMatchObject({ action: 'present', unverified: true });
    expect(await replacedCopies(bk)).toHaveLength(1);
  });

  it('an AES key differing in size, label or ID: KEY_REF_OCCUPIED, before the PIN', async () => {
    const a = await fresh();
    expect((await run(a, 'keygen', '--type', 'aes:256', '--label', 'v', '--id', '0102')).code).toBe(0);
    const bk = join(dir, `bko-${n}`);
    expect((await run(a, 'backup', bk)).code).toBe(0);
    for (const other of [
      ['--type', 'aes:128', '--label', 'v', '--id', '0102'],
      ['--type', 'aes:256', '--label', 'w', '--id', '0102'],
      ['--type', 'aes:256', '--label', 'v', '--id', '0103'],
    ]) {
      const c = await fresh();
      expect((await run(c, 'keygen', ...other)).code).toBe(0);
      const state = await readFile(c, 'utf8');
      const r = await cli(['restore', bk, '--sim', c, '--pin', '111111', '--json']);
      expect(r.code).toBe(7);
      expect(r.json().error.code).toBe('KEY_REF_OCCUPIED');
      expect(r.json().error.fix).toContain('--force');
      expect(await triesLeft(c)).toBe(3);
      expect(await readFile(c, 'utf8')).toBe(state);
    }
  });
});

describe('the interrupted-restore path never lifts a use counter', () => {
  it('a key without description but with a use counter is not what a restore leaves: KEY_REF_OCCUPIED', async () => {
    const a = await fresh();
    expect((await run(a, 'keygen', '--type', 'aes:256', '--label', 'v')).code).toBe(0);
    const bk = join(dir, `bkc-${n}`);
    expect((await run(a, 'backup', bk)).code).toBe(0);
    // a counted key at reference 1 whose description is gone (e.g. a keygen killed before C401)
    const c = await fresh();
    const card = await VirtualSmartCardHsm.open(c);
    const hsm = await SmartCardHsm.open(card);
    await hsm.verifyPin(PIN);
    await hsm.generateAesKey({ bits: 256, label: 'counted', keyRef: 1, useCounter: 3 });
    await hsm.files.delete(0xc401);
    await card.save(c);
    await card.close();
    const state = await readFile(c, 'utf8');
    const r = await restore(c, bk);
    expect(r.code).toBe(7);
    expect(r.json().error.code).toBe('KEY_REF_OCCUPIED');
    expect(r.json().error.message).toMatch(/key use counter \(3 use\(s\) left\)/);
    expect(await readFile(c, 'utf8')).toBe(state);
    const forced = await restore(c, bk, '--force', '--yes');
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.json().keys[0]).toMatchObject({ keyRef: 1, action: 'replace' });
    expect(forced.json().keys[0].note).toMatch(/key use counter \(3 use\(s\) left\).*without limit/);
  });
});

describe('backup resume judges AES key files as restore does', () => {
  it('a key file of a deleted AES key is not overwritten by another AES key at its reference', async () => {
    const s = await fresh();
    expect((await run(s, 'keygen', '--type', 'aes:256', '--label', 'old')).code).toBe(0);
    const bk = join(dir, `bkr-${n}`);
    expect((await run(s, 'backup', bk)).code).toBe(0);
    // what a backup killed before its manifest leaves: the key files alone
    await rm(join(bk, 'manifest.json'));
    const file = await readFile(join(bk, 'key-001.bin'));
    const del = await cli(['delete-key', '--sim', s, '--key-ref', '1', '--pin', 'env:PIN', '--yes'], {
      env: ENV,
    });
    expect(del.code, del.stderr).toBe(0);
    expect((await run(s, 'keygen', '--type', 'aes:256', '--label', 'new')).code).toBe(0);
    const r = await run(s, 'backup', bk);
    expect(r.code).toBe(7);
    expect(r.json().error.code).toBe('FILE_EXISTS');
    expect(r.json().error.message).toMatch(/key-001\.bin \(another AES key than this device.s/);
    expect(await readFile(join(bk, 'key-001.bin'))).toEqual(file);
    // the same key (label, ID, type, size): the resumed backup completes
    const t = await fresh();
    expect((await run(t, 'keygen', '--type', 'aes:128', '--label', 'same')).code).toBe(0);
    const bt = join(dir, `bkt-${n}`);
    expect((await run(t, 'backup', bt)).code).toBe(0);
    await rm(join(bt, 'manifest.json'));
    const again = await run(t, 'backup', bt);
    expect(again.code, again.stderr).toBe(0);
  });
});

describe('unwrap onto an occupied reference', () => {
  it('without --force: KEY_REF_OCCUPIED, the counted key kept; --force says the use counter is lost', async () => {
    const a = await fresh();
    expect((await run(a, 'keygen', '--type', 'aes:256', '--label', 'w')).code).toBe(0);
    const bin = join(dir, `w-${n}.bin`);
    expect((await run(a, 'wrap', '--key-ref', '1', '--out', bin)).code).toBe(0);
    const s = await fresh();
    const kg = await run(s, 'keygen', '--type', 'aes:256', '--label', 'w', '--use-counter', '4');
    expect(kg.code, kg.stderr).toBe(0);
    const state = await readFile(s, 'utf8');
    const plain = await run(s, 'unwrap', bin, '--key-ref', '1');
    expect(plain.json().error.code).toBe('KEY_REF_OCCUPIED');
    expect(await readFile(s, 'utf8')).toBe(state);
    const forced = await run(s, 'unwrap', bin, '--key-ref', '1', '--force', '--yes');
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stderr).toMatch(
      /warning: --force replaces key 1 "w" .*key use counter \(4 use\(s\) left\), which .* does not carry: the key unwrapped there can be used without limit/,
    );
    expect((await cmac(s)).json().cmac).toBe((await cmac(a)).json().cmac);
  });
});

describe('import-key --force over a key with a use counter', () => {
  it('the confirmation says the counter is lost', async () => {
    const s = await fresh();
    const kg = await run(s, 'keygen', '--type', 'ec:prime256v1', '--label', 'counted', '--use-counter', '3');
    expect(kg.code, kg.stderr).toBe(0);
    const pem = join(dir, `imp-${n}.pem`);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    await writeFile(pem, privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const args = [
      ...['import-key', pem, '--sim', s, '--key-ref', '1', '--label', 'imported'],
      ...['--dkek', join(dir, 'share.pbe'), '--password', 'env:PW', '--pin', 'env:PIN', '--json'],
    ];
    const plain = await cli(args, { env: ENV });
    expect(plain.json().error.code).toBe('KEY_REF_OCCUPIED');
    const r = await cli([...args, '--force', '--yes'], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      /warning: --force replaces key 1 "counted".*key use counter \(3 use\(s\) left\), which the imported key does not get/,
    );
  });
});

/**
 * Findings A–C of a hostile user (AES keys, backup and restore), through the command on virtual
 * cards (in-process): AES keys get random IDs, and a restore never replaces an AES key without
 * --force (one like the backup's is left as it is, unverified); `unwrap --id`; KEY_ID_IN_USE names the existing key in
 * `existingKeyRef`, not `keyRef`; a duplicate derive says it is the same key; `backup` names keys
 * that may not be wrapped before the PIN and anything is written (`--skip-unwrappable`), and
 * backup/wrap warn about key use counters the copy does not carry.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeWrapFile } from '../src/dkek/index.js';
import { SmartCardHsm } from '../src/index.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { cli, copyState, dkekState, PIN, tempDir } from './cli-helpers.js';

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
const keygen = (sim: string, ...args: string[]) => run(sim, 'keygen', ...args);
const cmac = async (sim: string, ref: string) =>
  (await run(sim, 'aes', 'cmac', '--key-ref', ref, '--in', msg)).json().cmac as string;
const triesLeft = async (sim: string) =>
  (await cli(['status', '--sim', sim, '--json'])).json().userPin.triesLeft as number;

describe('A: AES key IDs and restore', () => {
  it('an AES key without --id gets 16 random bytes as ID, another on each key and device', async () => {
    const a = await fresh();
    const b = await fresh();
    const ka = await keygen(a, '--type', 'aes:256', '--label', 'vault');
    const kb = await keygen(b, '--type', 'aes:256', '--label', 'vault');
    expect(ka.code, ka.stderr).toBe(0);
    expect(ka.json().id).toMatch(/^[0-9a-f]{32}$/);
    expect(kb.json().id).toMatch(/^[0-9a-f]{32}$/);
    expect(kb.json().id).not.toBe(ka.json().id);
    expect((await cli(['keygen', '--help'])).stdout).toContain('AES keys: 16 random bytes');
  });

  it('restore without --force does not replace another AES key with the old default ID (ref as ID)', async () => {
    const a = await fresh();
    expect((await keygen(a, '--type', 'aes:256', '--label', 'vault', '--id', '01')).code).toBe(0);
    const bk = join(dir, `bk-${n}`);
    expect((await run(a, 'backup', bk)).code).toBe(0);
    const c2 = await fresh();
    expect((await keygen(c2, '--type', 'aes:256', '--label', 'vault', '--id', '01')).code).toBe(0);
    const before = await cmac(c2, '1');
    const r = await run(c2, 'restore', bk);
    expect(r.code).toBe(7);
    expect(r.json().error.code).toBe('KEY_REF_OCCUPIED');
    expect(r.json().error.message).toMatch(/material cannot be compared/);
    expect(r.json().error.fix).toContain('--force');
    expect(await cmac(c2, '1')).toBe(before);
  });

  it('restore onto an AES key with the backup label, random-style ID, type and size: left as it is (unverified), --force replaces it', async () => {
    const a = await fresh();
    const id = '00112233445566778899aabbccddeeff';
    expect((await keygen(a, '--type', 'aes:128', '--label', 'v', '--id', id)).code).toBe(0);
    const bk = join(dir, `bk-${n}`);
    expect((await run(a, 'backup', bk)).code).toBe(0);
    const c = await fresh();
    expect((await keygen(c, '--type', 'aes:128', '--label', 'v', '--id', id)).code).toBe(0);
    const mine = await cmac(c, '1');
    const r = await run(c, 'restore', bk);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().keys[0]).toMatchObject({ keyRef: 1, action: 'present', unverified: true });
    expect(r.json().keys[0].note).toMatch(/cannot be compared with the backup's on the host/);
    expect(r.stderr).toMatch(/warning: AES key 1 "v" is on the device.*--force replaces it/);
    expect(await cmac(c, '1')).toBe(mine);
    const forced = await run(c, 'restore', bk, '--force', '--yes');
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.json().keys[0]).toMatchObject({ keyRef: 1, action: 'replace' });
    // now the backup's key
    expect(await cmac(c, '1')).toBe(await cmac(a, '1'));
  });

  it('restore onto an AES key of another size, or another label: KEY_REF_OCCUPIED', async () => {
    const a = await fresh();
    const id = '0a0b0c0d';
    expect((await keygen(a, '--type', 'aes:256', '--label', 'v', '--id', id)).code).toBe(0);
    const bk = join(dir, `bk-${n}`);
    expect((await run(a, 'backup', bk)).code).toBe(0);
    for (const other of [
      ['--type', 'aes:128', '--label', 'v'],
      ['--type', 'aes:256', '--label', 'w'],
    ]) {
      const c = await fresh();
      expect((await keygen(c, ...other, '--id', id)).code).toBe(0);
      const r = await run(c, 'restore', bk);
      expect(r.json().error.code).toBe('KEY_REF_OCCUPIED');
    }
  });

  it('a key without description (an interrupted restore) is completed, with a warning saying so', async () => {
    const a = await fresh();
    expect((await keygen(a, '--type', 'aes:256', '--label', 'v')).code).toBe(0);
    const bk = join(dir, `bk-${n}`);
    expect((await run(a, 'backup', bk)).code).toBe(0);
    const c = await fresh();
    // what a restore killed after UNWRAP KEY leaves: the key, no description
    const card = await VirtualSmartCardHsm.open(c);
    const hsm = await SmartCardHsm.open(card);
    await hsm.verifyPin(PIN);
    await hsm.unwrapKey(1, decodeWrapFile(await readFile(join(bk, 'key-001.bin'))).blob);
    await card.save(c);
    await card.close();
    const r = await run(c, 'restore', bk);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().keys[0]).toMatchObject({ keyRef: 1, action: 'complete' });
    expect(r.stderr).toMatch(/warning: key ref 1 holds a key without description .*interrupted restore/);
    expect(await cmac(c, '1')).toBe(await cmac(a, '1'));
  });

  it('an old-style AES ID (the key reference) matches only after a restore of this backup started on this device', async () => {
    const a = await fresh();
    expect((await keygen(a, '--type', 'aes:256', '--label', 'vault', '--id', '01')).code).toBe(0);
    const bk = join(dir, `bk-${n}`);
    expect((await run(a, 'backup', bk)).code).toBe(0);
    const c = await fresh();
    expect((await keygen(c, '--type', 'aes:256', '--label', 'vault', '--id', '01')).code).toBe(0);
    expect((await run(c, 'restore', bk)).json().error.code).toBe('KEY_REF_OCCUPIED');
    // the copies of one state file are one device (serial, label): as the manifest names it
    const st = JSON.parse(await readFile(join(bk, 'manifest.json'), 'utf8')).device;
    expect(st.serial).toMatch(/./);
    const devices = [{ serial: st.serial, label: st.label, started: new Date().toISOString() }];
    const doc = { format: 'sc-hsm-ts/restore-progress', version: 1, devices };
    await writeFile(join(bk, 'restore-progress.json'), JSON.stringify(doc));
    const r = await run(c, 'restore', bk);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().keys[0]).toMatchObject({ keyRef: 1, action: 'present', unverified: true });
    expect(r.json().keys[0].note).toMatch(/cannot be compared/);
    // the restore of this device is complete: restore-progress.json is gone
    expect(existsSync(join(bk, 'restore-progress.json'))).toBe(false);
  });

  it('unwrap onto a device whose unrelated key has the ID: the fix offers --id, which works', async () => {
    const a = await fresh();
    expect((await keygen(a, '--type', 'aes:256', '--label', 'a1', '--id', '01')).code).toBe(0);
    const bin = join(dir, `aes-${n}.bin`);
    expect((await run(a, 'wrap', '--key-ref', '1', '--out', bin)).code).toBe(0);
    const d = await fresh();
    expect((await keygen(d, '--type', 'aes:256', '--label', 'other', '--id', '01')).code).toBe(0);
    const clash = await run(d, 'unwrap', bin, '--key-ref', '2');
    expect(clash.code).toBe(7);
    expect(clash.json().error.code).toBe('KEY_ID_IN_USE');
    expect(clash.json().error.fix).toMatch(/unrelated key .*--id HEX/);
    expect(clash.json().error.fix).toMatch(
      /only if key reference 1 is no longer needed, free its ID: sc-hsm-ts delete-key/,
    );
    const bad = await run(d, 'unwrap', bin, '--key-ref', '2', '--id', 'xyz');
    expect(bad.json().error.code).toBe('USAGE_ERROR');
    const same = await run(d, 'unwrap', bin, '--key-ref', '2', '--id', '01');
    expect(same.json().error.code).toBe('KEY_ID_IN_USE');
    const ok = await run(d, 'unwrap', bin, '--key-ref', '2', '--id', '0202');
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json()).toMatchObject({ keyRef: 2, id: '0202', label: 'a1' });
    expect(await cmac(d, '2')).toBe(await cmac(a, '1'));
    expect(await cmac(d, '1')).not.toBe(await cmac(a, '1'));
  });
});

describe('B: KEY_ID_IN_USE names the existing key apart from keyRef', () => {
  it('keygen with a taken --id: existingKeyRef, no keyRef', async () => {
    const s = await fresh();
    expect((await keygen(s, '--type', 'aes:256', '--label', 'z', '--id', '05')).code).toBe(0);
    const again = await keygen(s, '--type', 'aes:256', '--label', 'z2', '--id', '05', '--key-ref', '9');
    expect(again.code).toBe(7);
    const e = again.json().error;
    expect(e).toMatchObject({ code: 'KEY_ID_IN_USE', existingKeyRef: 1 });
    expect(e.keyRef).toBeUndefined();
  });

  it('deriving the same tweak twice: the same key, named as such', async () => {
    const s = await fresh();
    expect((await keygen(s, '--type', 'ec:prime256v1', '--label', 'root')).code).toBe(0);
    const tweak = '0102030405060708090a0b0c0d0e0f10';
    const d = (ref: string) =>
      keygen(s, '--derive-from', '1', '--tweak', tweak, '--key-ref', ref, '--label', `d${ref}`);
    expect((await d('41')).code).toBe(0);
    const twice = await d('42');
    expect(twice.code).toBe(7);
    const e = twice.json().error;
    expect(e).toMatchObject({ code: 'KEY_ID_IN_USE', existingKeyRef: 41 });
    expect(e.keyRef).toBeUndefined();
    expect(e.message).toMatch(/already holds this very key/);
    expect(e.fix).toMatch(/use key reference 41/);
  });
});

describe('C: backup of keys that may not be wrapped; use counters', () => {
  it('a key without WRAP is named before the PIN and nothing is written; --skip-unwrappable backs up the rest', async () => {
    const s = await fresh();
    expect((await keygen(s, '--type', 'ec:prime256v1', '--label', 'ok')).code).toBe(0);
    const nw = await keygen(
      s,
      '--type',
      'ec:prime256v1',
      '--label',
      'nowrap',
      '--algorithms',
      'ecdsa-sha256',
    );
    expect(nw.code, nw.stderr).toBe(0);
    const bk = join(dir, `bk-${n}`);
    const wrong = await cli(['backup', bk, '--sim', s, '--pin', '111111', '--json']);
    expect(wrong.json().error.code).toBe('ALGORITHM_NOT_ALLOWED');
    expect(wrong.json().error.message).toMatch(/key ref 2 \("nowrap"\)/);
    expect(wrong.json().error.fix).toContain('--skip-unwrappable');
    expect(await triesLeft(s)).toBe(3);
    expect(existsSync(bk)).toBe(false);
    const r = await run(s, 'backup', bk, '--skip-unwrappable');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().skipped).toEqual([
      { keyRef: 2, id: expect.any(String), label: 'nowrap', type: 'ec', bits: 256, reason: 'not-wrappable' },
    ]);
    expect(r.stderr).toMatch(/key ref 2 "nowrap" was NOT backed up/);
    const m = JSON.parse(await readFile(join(bk, 'manifest.json'), 'utf8'));
    expect(m.keys.map((k: { keyRef: number }) => k.keyRef)).toEqual([1]);
    expect(m.skipped[0]).toMatchObject({ keyRef: 2, reason: 'not-wrappable' });
    expect(existsSync(join(bk, 'key-002.bin'))).toBe(false);
    // the backup restores (the manifest's skipped list is no obstacle)
    const t = await fresh();
    const restored = await run(t, 'restore', bk);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stderr).toMatch(/warning: the backup does not hold key ref 2 "nowrap"/);
    // a manifest whose skipped list is not one is refused
    await writeFile(join(bk, 'manifest.json'), JSON.stringify({ ...m, skipped: 'x' }));
    expect((await run(await fresh(), 'restore', bk)).json().error.code).toBe('BACKUP_INVALID');
  });

  it('backup and wrap warn (stderr and JSON) when a key has a use counter', async () => {
    const s = await fresh();
    expect((await keygen(s, '--type', 'aes:256', '--label', 'c', '--use-counter', '5')).code).toBe(0);
    const b = await run(s, 'backup', join(dir, `bk-${n}`));
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).toMatch(/warning: key ref 1 "c" has a key use counter \(5 use\(s\) left\)/);
    expect(b.json().warnings[0]).toMatch(/without limit/);
    const w = await run(s, 'wrap', '--key-ref', '1', '--out', join(dir, `c-${n}.bin`));
    expect(w.code, w.stderr).toBe(0);
    expect(w.stderr).toMatch(/warning: key 1 has a key use counter/);
    expect(w.json().warnings[0]).toMatch(/without limit/);
    const plain = await fresh();
    expect((await keygen(plain, '--type', 'aes:256', '--label', 'p')).code).toBe(0);
    const pb = await run(plain, 'backup', join(dir, `bk-p${n}`));
    expect(pb.json().warnings).toBeUndefined();
  });
});

import { generateKeyPairSync } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, copyState, ENV, PASSWORD, PIN, secretForms, tempDir } from './cli-helpers.js';

let dir: string;
let share: string;
/** Initialized with one DKEK share (imported), an EC key at ref 1 and an RSA key at ref 2. */
let base: string;
let kcv: string;

beforeAll(async () => {
  dir = await tempDir();
  share = join(dir, 'share1.pbe');
  const c = await cli(['dkek', 'create', share, '--password', 'env:PW', '--json'], { env: ENV });
  expect(c.code, c.stdout + c.stderr).toBe(0);
  kcv = c.json().kcv;
  base = join(dir, 'base.json');
  expect(
    (
      await cli(
        [
          'init',
          '--sim',
          base,
          '--so-pin',
          'env:SO_PIN',
          '--pin',
          'env:PIN',
          '--label',
          'D',
          '--dkek-shares',
          '1',
          '--yes',
        ],
        { env: ENV },
      )
    ).code,
  ).toBe(0);
  const i = await cli(['dkek', 'import', share, '--sim', base, '--password', 'env:PW', '--json'], {
    env: ENV,
  });
  expect(i.code, i.stdout).toBe(0);
  expect(i.json().dkek).toMatchObject({ total: 1, outstanding: 0, kcv });
  expect(
    (await cli(['keygen', '--sim', base, '--type', 'ec:prime256v1', '--label', 'ec', '--pin', PIN])).code,
  ).toBe(0);
  expect(
    (await cli(['keygen', '--sim', base, '--type', 'rsa:2048', '--label', 'rsa', '--pin', PIN])).code,
  ).toBe(0);
});

/** A second virtual device at `path`, initialized without DKEK shares (so with another DKEK). */
async function initWithoutDkek(path: string): Promise<void> {
  const r = await cli(
    [
      'init',
      '--sim',
      path,
      '--so-pin',
      'env:SO_PIN',
      '--pin',
      'env:PIN',
      '--label',
      'O',
      '--dkek-shares',
      '0',
      '--yes',
    ],
    { env: ENV },
  );
  expect(r.code, r.stderr).toBe(0);
}
describe('dkek', () => {
  it('status shows the KCV as 16 hex digits; the share file is 64 bytes, mode 0600; never overwritten', async () => {
    const f = await copyState(base, dir, 'st.json');
    const r = await cli(['status', '--sim', f]);
    expect(r.stdout).toMatch(new RegExp(`DKEK key check value : ${kcv.toUpperCase()}`));
    expect(kcv).toMatch(/^[0-9a-f]{16}$/);
    const s = await stat(share);
    expect(s.size).toBe(64);
    expect(s.mode & 0o777).toBe(0o600);
    const before = await readFile(share);
    const again = await cli(['dkek', 'create', share, '--password', 'env:PW', '--json'], { env: ENV });
    expect(again.code).toBe(7);
    expect(again.json().error.code).toBe('FILE_EXISTS');
    expect(await readFile(share)).toEqual(before);
    expect(r.stdout + (await readFile(share, 'latin1'))).not.toContain(PASSWORD);
  });

  it('refuses a share when all are imported, before the slow key derivation', async () => {
    const f = await copyState(base, dir, 'full.json');
    const r = await cli(['dkek', 'import', share, '--sim', f, '--password', 'env:PW', '--json'], {
      env: ENV,
    });
    expect(r.code).toBe(7);
    expect(r.json().error.code).toBe('DKEK_SHARE_REPEATED');
  });

  it('inspect: a wrong password is exit 6; the right one prints the KCV', async () => {
    const bad = await cli(['dkek', 'inspect', share, '--password', 'wrong-password', '--json']);
    expect(bad.code).toBe(6);
    expect(bad.json().error.code).toBe('WRONG_PASSWORD');
    expect(bad.stdout).not.toContain('wrong-password');
    const ok = await cli(['dkek', 'inspect', share, '--password', 'env:PW', '--json'], { env: ENV });
    expect(ok.code).toBe(0);
    expect(ok.json().kcv).toBe(kcv);
    expect((await cli(['dkek', 'inspect', join(dir, 'nope.pbe'), '--password', 'x'])).code).toBe(5);
  });

  it('n-of-m password shares: create, import with 2 of 3, resplit', async () => {
    const f2 = join(dir, 'share-t.pbe');
    const c = await cli(['dkek', 'create', f2, '--threshold', '2', '--total', '3']);
    expect(c.code, c.stderr).toBe(0);
    const blocks = c.stdout.split(/\n(?=Share \d of 3)/).filter((b) => b.startsWith('Share '));
    expect(blocks).toHaveLength(3);
    expect(blocks[0]).toMatch(/Prime +: [0-9a-f]{2}(:[0-9a-f]{2})+/);
    const paths = await Promise.all(
      blocks.map(async (b, i) => {
        const p = join(dir, `custodian-${i + 1}.txt`);
        await writeFile(p, b);
        return p;
      }),
    );
    const dev = join(dir, 'two.json');
    expect(
      (
        await cli(
          [
            'init',
            '--sim',
            dev,
            '--so-pin',
            'env:SO_PIN',
            '--pin',
            'env:PIN',
            '--label',
            'T',
            '--dkek-shares',
            '2',
            '--yes',
          ],
          { env: ENV },
        )
      ).code,
    ).toBe(0);
    const i1 = await cli([
      'dkek',
      'import',
      f2,
      '--sim',
      dev,
      '--shares',
      paths[0]!,
      '--shares',
      paths[2]!,
      '--json',
    ]);
    expect(i1.code, i1.stdout).toBe(0);
    expect(i1.json().dkek.outstanding).toBe(1);
    const rs = await cli([
      'dkek',
      'resplit',
      f2,
      '--shares',
      paths[1]!,
      '--shares',
      paths[2]!,
      '--threshold',
      '3',
      '--total',
      '4',
      '--json',
    ]);
    expect(rs.code, rs.stdout).toBe(0);
    expect(rs.json().passwordShares).toHaveLength(4);
    expect(rs.json().kcv.toUpperCase()).toBe(/Share key check value *: ([0-9A-F]{16})/.exec(c.stdout)![1]);
    const one = await cli(['dkek', 'resplit', f2, '--shares', paths[0]!, '--threshold', '2', '--total', '3']);
    expect(one.code).toBe(2);
  });
});

describe('wrap, unwrap, backup, restore', () => {
  it('wrap writes an sc-hsm-tool .bin; wrapped inspect reads it; unwrap refuses occupied refs', async () => {
    const f = await copyState(base, dir, 'wrap.json');
    const bin = join(dir, 'k1.bin');
    const w = await cli(['wrap', '--sim', f, '--key-ref', '1', '--out', bin, '--pin', PIN, '--json']);
    expect(w.code, w.stdout).toBe(0);
    expect(w.json()).toMatchObject({ keyRef: 1, kcv, keyType: 'ec' });
    expect((await cli(['wrap', '--sim', f, '--key-ref', '1', '--out', bin, '--pin', PIN])).code).toBe(7);
    const ins = await cli(['wrapped', 'inspect', bin, '--json']);
    expect(ins.code).toBe(0);
    expect(ins.json()).toMatchObject({ kcv, keyType: 'ec', label: 'ec', keyRef: 1 });
    const before = await readFile(f);
    const occ = await cli(['unwrap', bin, '--sim', f, '--key-ref', '2', '--pin', PIN, '--json']);
    expect(occ.code).toBe(7);
    expect(occ.json().error.code).toBe('KEY_REF_OCCUPIED');
    expect(await readFile(f)).toEqual(before);
    // the same key at another reference while key 1 has its ID: refused (one ID, one key)
    const dup = await cli(['unwrap', bin, '--sim', f, '--key-ref', '5', '--pin', PIN, '--json']);
    expect(dup.code).toBe(7);
    expect(dup.json().error.code).toBe('KEY_ID_IN_USE');
    expect(await readFile(f)).toEqual(before);
    const del = await cli(['delete-key', '--sim', f, '--key-ref', '1', '--pin', PIN, '--yes', '--json']);
    expect(del.code, del.stdout).toBe(0);
    const u = await cli(['unwrap', bin, '--sim', f, '--key-ref', '5', '--pin', PIN, '--json']);
    expect(u.code, u.stdout).toBe(0);
    expect(u.json()).toMatchObject({ keyRef: 5, label: 'ec', type: 'ec' });
    const other = join(dir, 'other.json');
    await initWithoutDkek(other);
    const ob = await readFile(other);
    const mm = await cli(['unwrap', bin, '--sim', other, '--key-ref', '1', '--pin', PIN, '--json']);
    expect(mm.code).toBe(6);
    expect(mm.json().error.code).toBe('KCV_MISMATCH');
    expect(await readFile(other)).toEqual(ob);
  });

  it('backup verifies; restore checks KCV and hashes first, and is idempotent', async () => {
    const f = await copyState(base, dir, 'bk.json');
    const bdir = join(dir, 'backup');
    const b = await cli(['backup', bdir, '--sim', f, '--pin', PIN, '--json']);
    expect(b.code, b.stdout).toBe(0);
    const m = b.json().manifest;
    expect(b.json().verified).toBe(true);
    expect(m.device.kcv).toBe(kcv);
    expect(m.keys).toHaveLength(2);
    expect(m.keys[0]).toMatchObject({ keyRef: 1, label: 'ec', type: 'ec', curve: 'prime256v1' });
    expect(m.keys[0].sha256).toMatch(/^[0-9a-f]{64}$/);
    expect((await readdir(bdir)).sort()).toEqual(['key-001.bin', 'key-002.bin', 'manifest.json']);
    // a rerun into the complete backup: the fix names a new or empty directory and what --force does
    const rerun = await cli(['backup', bdir, '--sim', f, '--pin', PIN, '--json']);
    expect(rerun.code).toBe(7);
    expect(rerun.json().error.code).toBe('FILE_EXISTS');
    expect(rerun.json().error.message).toMatch(/already holds a complete backup \(manifest\.json\)/);
    expect(rerun.json().error.fix).toMatch(
      /new or empty directory.*--force to write this device.s backup over/,
    );
    expect(rerun.json().error.fix).not.toMatch(/file name/);

    // a device with another DKEK: refused before anything is written
    const other = join(dir, 'other2.json');
    await initWithoutDkek(other);
    const ob = await readFile(other);
    const mm = await cli(['restore', bdir, '--sim', other, '--pin', PIN, '--json']);
    expect(mm.code).toBe(6);
    expect(mm.json().error.code).toBe('KCV_MISMATCH');
    expect(await readFile(other)).toEqual(ob);

    // the same DKEK: copy the device, delete a key ("interrupted restore"), restore completes it
    const target = await copyState(base, dir, 'target.json');
    expect((await cli(['delete-key', '--sim', target, '--key-ref', '2', '--pin', PIN, '--yes'])).code).toBe(
      0,
    );
    const r = await cli(['restore', bdir, '--sim', target, '--pin', PIN, '--json']);
    expect(r.code, r.stdout).toBe(0);
    expect(r.json().keys).toEqual([
      { keyRef: 1, action: 'present' },
      { keyRef: 2, action: 'restore' },
    ]);
    const again = await cli(['restore', bdir, '--sim', target, '--pin', PIN, '--json']);
    expect(again.json().keys.every((k: { action: string }) => k.action === 'present')).toBe(true);
    const keys = (await cli(['keys', '--sim', target, '--json'])).json().keys;
    const orig = (await cli(['keys', '--sim', f, '--json'])).json().keys;
    expect(keys.map((k: { publicKeySha256: string }) => k.publicKeySha256)).toEqual(
      orig.map((k: { publicKeySha256: string }) => k.publicKeySha256),
    );

    // an occupied reference with another key is refused unless --force
    const occ = await copyState(base, dir, 'occ.json');
    await cli(['delete-key', '--sim', occ, '--key-ref', '1', '--pin', PIN, '--yes']);
    await cli([
      'keygen',
      '--sim',
      occ,
      '--type',
      'ec:prime256v1',
      '--label',
      'intruder',
      '--key-ref',
      '1',
      '--pin',
      PIN,
    ]);
    const ocb = await readFile(occ);
    const refused = await cli(['restore', bdir, '--sim', occ, '--pin', PIN, '--json']);
    expect(refused.code).toBe(7);
    expect(await readFile(occ)).toEqual(ocb);
    expect((await cli(['restore', bdir, '--sim', occ, '--pin', PIN, '--force', '--yes'])).code).toBe(0);

    // a damaged file is found before anything is written
    const bin = join(bdir, 'key-002.bin');
    const data = await readFile(bin);
    data[data.length - 1]! ^= 1;
    await writeFile(bin, data);
    const dmg = await cli(['restore', bdir, '--sim', other, '--pin', PIN, '--json']);
    expect(dmg.code).toBe(6);
    expect(dmg.json().error.code).toBe('BACKUP_INVALID');
  });

  it('import-key puts a PEM key on the device; wrapped export gets it back (0600)', async () => {
    const f = await copyState(base, dir, 'imp.json');
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const pem = join(dir, 'in.pem');
    await writeFile(pem, privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const r = await cli(
      [
        'import-key',
        pem,
        '--sim',
        f,
        '--key-ref',
        '9',
        '--label',
        'imported',
        '--dkek',
        share,
        '--password',
        'env:PW',
        '--pin',
        PIN,
        '--json',
      ],
      { env: ENV },
    );
    expect(r.code, r.stdout).toBe(0);
    expect(r.json()).toMatchObject({ keyRef: 9, label: 'imported', type: 'ec', bits: 256 });
    const bin = join(dir, 'k9.bin');
    expect((await cli(['wrap', '--sim', f, '--key-ref', '9', '--out', bin, '--pin', PIN])).code).toBe(0);
    const out = join(dir, 'out.pem');
    const no = await cli(['wrapped', 'export', bin, '--dkek', share, '--password', 'env:PW', '--out', out], {
      env: ENV,
    });
    expect(no.code).toBe(7);
    const ex = await cli(
      [
        'wrapped',
        'export',
        bin,
        '--dkek',
        share,
        '--password',
        'env:PW',
        '--out',
        out,
        '--i-understand-this-exports-a-private-key',
        '--json',
      ],
      { env: ENV },
    );
    expect(ex.code, ex.stdout).toBe(0);
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    const { createPrivateKey, createPublicKey } = await import('node:crypto');
    const back = createPublicKey(createPrivateKey(await readFile(out, 'utf8')));
    expect(back.export({ format: 'der', type: 'spki' })).toEqual(
      publicKey.export({ format: 'der', type: 'spki' }),
    );
    for (const s of secretForms(PASSWORD))
      expect(r.stdout + r.stderr + ex.stdout + ex.stderr).not.toContain(s);
  });
});

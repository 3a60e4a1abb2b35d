/** `domain create|import|status|delete`, `keygen --domain`, `unwrap --domain`, `status`/`dump`/`keys` JSON with domains. */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, copyState, ENV, initArgs, keygenArgs, tempDir } from './cli-helpers.js';

let dir: string;
let share0: string;
let shareA: string;
let shareB: string;
/** Initialized with 3 key domains, domain 0 with one share imported; domain 1 created for 2 shares, none imported. */
let base: string;

async function ok(args: string[]) {
  const r = await cli(args, { env: ENV });
  expect(r.code, `${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
  return r;
}

/** `domain import SHARE --domain 1 --sim SIM --password PW --pin PIN`. */
const importArgs = (sim: string, share: string, pw = 'env:PW', pin = 'env:PIN') => [
  'domain',
  'import',
  share,
  '--domain',
  '1',
  '--sim',
  sim,
  '--password',
  pw,
  '--pin',
  pin,
];
/** `keys --json` of SIM: the list of keys. */
async function keyList(sim: string) {
  const keys = (await ok(['keys', '--sim', sim, '--json'])).json();
  return Array.isArray(keys) ? keys : keys.keys;
}
/** An EC P-256 key LABEL generated in key domain 1. */
const keygenD1 = (sim: string, label: string) =>
  ok(keygenArgs(sim, 'ec:prime256v1', label, '--domain', '1', '--pin', 'env:PIN'));

beforeAll(async () => {
  dir = await tempDir();
  share0 = join(dir, 'share0.pbe');
  shareA = join(dir, 'shareA.pbe');
  shareB = join(dir, 'shareB.pbe');
  for (const f of [share0, shareA, shareB]) await ok(['dkek', 'create', f, '--password', 'env:PW']);
  base = join(dir, 'base.json');
  await ok(initArgs(base, 'Domains', '--dkek-shares', '1', '--key-domains', '3', '--yes'));
  await ok(['dkek', 'import', share0, '--sim', base, '--password', 'env:PW']);
  const c = await ok([
    'domain',
    'create',
    '--domain',
    '1',
    '--shares',
    '2',
    '--sim',
    base,
    '--pin',
    'env:PIN',
    '--json',
  ]);
  expect(c.json()).toEqual({ domain: 1, total: 2, outstanding: 2, kcv: null });
}, 120_000);

describe('domain commands', () => {
  it('imports both shares into domain 1 (own KCV), refuses the same share twice; status/dump/keys show the domains', async () => {
    const sim = await copyState(base, dir, 'full.json');
    const a = await ok([...importArgs(sim, shareA), '--json']);
    expect(a.json().dkek).toMatchObject({ domain: 1, total: 2, outstanding: 1 });
    // domain 1 keeps its own record of the ceremony, beside (never in place of) domain 0's
    const record = JSON.parse(await readFile(`${sim}.dkek-import-domain-1.json`, 'utf8'));
    expect([record.total, record.shares.length]).toEqual([2, 1]);
    await expect(readFile(`${sim}.dkek-import.json`, 'utf8')).rejects.toThrow(/ENOENT/);
    // the record is a companion of the state file: no output may be written over it
    const over = await cli(
      [
        'wrap',
        '--sim',
        sim,
        '--key-ref',
        '1',
        '--out',
        `${sim}.dkek-import-domain-1.json`,
        '--force',
        '--pin',
        'env:PIN',
      ],
      { env: ENV },
    );
    expect(over.code).toBe(2);
    const again = await cli(importArgs(sim, shareA), { env: ENV });
    expect(again.code).toBe(7);
    expect(again.stderr).toMatch(/DKEK_SHARE_REPEATED|already imported/);
    const b = await ok([...importArgs(sim, shareB), '--json']);
    expect(b.json().dkek.outstanding).toBe(0);
    const st = await ok(['status', '--sim', sim, '--json']);
    const domains = st.json().domains;
    expect(domains.map((d: { domain: number }) => d.domain)).toEqual([0, 1]);
    expect(domains[1]).toMatchObject({ domain: 1, total: 2, outstanding: 0 });
    // lowercase, as dkek.kcv and the backup manifest
    expect(domains[1].kcv).toMatch(/^[0-9a-f]{16}$/);
    expect(st.json().dkek.kcv).toBe(domains[0].kcv);
    expect(domains[1].kcv).not.toBe(domains[0].kcv);
    const text = await ok(['status', '--sim', sim]);
    expect(text.stdout).toContain(`domain 1`);
    expect(text.stdout).toContain(domains[1].kcv.toUpperCase().match(/../g).join(' ').slice(0, 2));
    const ds = await ok(['domain', 'status', '--sim', sim, '--json']);
    expect(ds.json()).toEqual({ slots: 3, domains });
    expect((await ok(['domain', 'status', '--domain', '2', '--sim', sim, '--json'])).json()).toEqual({
      domain: 2,
      unused: true,
    });
    // a key in domain 1: keys --json carries it, dump lists the domains
    await keygenD1(sim, 'd1');
    await ok(keygenArgs(sim, 'ec:prime256v1', 'd0', '--pin', 'env:PIN'));
    const list = await keyList(sim);
    expect(list.map((k: { label: string; domain: number }) => [k.label, k.domain])).toEqual([
      ['d1', 1],
      ['d0', 0],
    ]);
    const dump = (await ok(['dump', '--sim', sim, '--json'])).json();
    expect(dump.domains).toEqual(domains);
    // the keys table shows each key's domain once one is outside domain 0
    const table = (await ok(['keys', '--sim', sim])).stdout.split('\n');
    expect(table[0]).toMatch(/Certificate\s+Domain$/);
    expect(table.find((l) => /\sd1\s/.test(l))).toMatch(/\s1$/);
    expect(table.find((l) => /\sd0\s/.test(l))).toMatch(/\s0$/);
    // wrap under domain 1, unwrap onto another reference with --domain 1, refused with --domain 0
    const bin = join(dir, 'd1.bin');
    await ok(['wrap', '--sim', sim, '--key-ref', '1', '--out', bin, '--pin', 'env:PIN']);
    const before = await readFile(sim, 'utf8');
    const wrong = await cli(
      ['unwrap', bin, '--key-ref', '9', '--domain', '0', '--sim', sim, '--pin', 'env:PIN'],
      { env: ENV },
    );
    expect(wrong.code).toBe(6);
    expect(wrong.stderr).toMatch(/KCV_MISMATCH|another DKEK/);
    const far = await cli(
      ['unwrap', bin, '--key-ref', '9', '--domain', '7', '--sim', sim, '--pin', 'env:PIN'],
      { env: ENV },
    );
    expect(far.code).toBe(6);
    expect(await readFile(sim, 'utf8')).toBe(before);
    await ok(['delete-key', '--sim', sim, '--key-ref', '1', '--pin', 'env:PIN', '--yes']);
    await ok(['unwrap', bin, '--key-ref', '9', '--domain', '1', '--sim', sim, '--pin', 'env:PIN']);
    const l2 = await keyList(sim);
    expect(l2.find((k: { keyRef: number }) => k.keyRef === 9)).toMatchObject({ label: 'd1', domain: 1 });
  }, 180_000);

  it('wrapped files of domain 1 cross between the card and the host tools both ways (wrapped inspect, import-key --domain)', async () => {
    const sim = await copyState(base, dir, 'cross.json');
    for (const f of [shareA, shareB]) await ok(importArgs(sim, f));
    const kcv1 = (await ok(['domain', 'status', '--domain', '1', '--sim', sim, '--json'])).json().kcv;
    await keygenD1(sim, 'card');
    const bin = join(dir, 'cross.bin');
    await ok(['wrap', '--sim', sim, '--key-ref', '1', '--out', bin, '--pin', 'env:PIN']);
    // the host decrypts the card's blob with domain 1's shares, not with domain 0's
    const shares = ['--dkek', shareA, '--dkek', shareB, '--password', 'env:PW', '--password', 'env:PW'];
    const insp = await ok(['wrapped', 'inspect', bin, ...shares, '--json']);
    expect(JSON.stringify(insp.json()).toUpperCase()).toContain(kcv1.toUpperCase());
    const other = await cli(['wrapped', 'inspect', bin, '--dkek', share0, '--password', 'env:PW'], {
      env: ENV,
    });
    expect(other.code).toBe(6);
    // a key wrapped on the host under domain 1's DKEK lands in domain 1
    const pem = join(dir, 'host-key.pem');
    const { generateKeyPairSync } = await import('node:crypto');
    await (await import('node:fs/promises')).writeFile(
      pem,
      generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({
        format: 'pem',
        type: 'pkcs8',
      }),
    );
    const importKey = ['import-key', pem, '--sim', sim, '--key-ref', '5', '--label', 'host'];
    const wrong = await cli([...importKey, ...shares, '--pin', 'env:PIN'], { env: ENV });
    expect(wrong.code).toBe(6); // domain 0 by default: another KCV
    await ok([...importKey, '--domain', '1', ...shares, '--pin', 'env:PIN']);
    expect((await keyList(sim)).find((k: { keyRef: number }) => k.keyRef === 5)).toMatchObject({
      label: 'host',
      domain: 1,
    });
  }, 240_000);

  it('domain delete and domain create obey the last-try PIN guard: one try left, refused before the PIN is sent', async () => {
    const sim = await copyState(base, dir, 'last-try.json');
    for (let i = 0; i < 2; i++) {
      const bad = await cli(['pin', 'verify', '--sim', sim, '--pin', '000000'], { env: ENV });
      expect(bad.code).toBe(3);
    }
    const before = await readFile(sim, 'utf8');
    for (const args of [
      ['domain', 'delete', '--domain', '1', '--yes'],
      ['domain', 'create', '--domain', '2', '--shares', '1'],
    ]) {
      const r = await cli([...args, '--sim', sim, '--pin', 'env:PIN', '--json'], { env: ENV });
      expect(r.code, r.stdout + r.stderr).toBe(7);
      expect(r.json().error.code).toBe('PIN_TRIES_LOW');
    }
    expect(await readFile(sim, 'utf8')).toBe(before);
  }, 60_000);

  it('hostile: out of range, create twice, import into a domain never created, bad numbers; nothing changes', async () => {
    const sim = await copyState(base, dir, 'hostile.json');
    const before = await readFile(sim, 'utf8');
    const cases: [string[], number, RegExp][] = [
      [['domain', 'create', '--domain', '3', '--shares', '1'], 6, /no key domain 3|KEY_DOMAIN_OUT_OF_RANGE/],
      [['domain', 'create', '--domain', '1', '--shares', '1'], 7, /exists already/],
      [['domain', 'create', '--domain', '2', '--shares', '0'], 2, /--shares/],
      [['domain', 'create', '--domain', '-1', '--shares', '1'], 2, /--domain/],
      [['domain', 'create', '--shares', '1'], 2, /--domain N is required/],
      [['domain', 'create', '--domain', '2\u0007', '--shares', '1'], 2, /--domain/],
      [['domain', 'import', shareA, '--domain', '2', '--password', 'env:PW'], 6, /unused/],
      [['domain', 'status', '--domain', '9'], 6, /no key domain 9/],
      [['domain', 'delete', '--domain', '2', '--yes'], 6, /unused/],
      [['keygen', '--type', 'ec:prime256v1', '--label', 'x', '--domain', '1'], 6, /misses 2 share/],
      [['keygen', '--type', 'ec:prime256v1', '--label', 'x', '--domain', '2'], 6, /unused/],
      [['keygen', '--type', 'ec:prime256v1', '--label', 'x', '--domain', '255'], 2, /--domain/],
    ];
    for (const [args, code, re] of cases) {
      const pin = args[1] === 'status' ? [] : ['--pin', 'env:PIN'];
      const r = await cli([...args, '--sim', sim, ...pin], { env: ENV });
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(code);
      expect(r.stderr + r.stdout).toMatch(re);
    }
    expect(await readFile(sim, 'utf8')).toBe(before);
  }, 120_000);

  it('delete asks like init (no terminal, no --yes: refused); refuses a domain with keys; --dkek-only keeps the keys', async () => {
    const sim = await copyState(base, dir, 'delete.json');
    for (const f of [shareA, shareB]) await ok(importArgs(sim, f));
    await keygenD1(sim, 'k');
    const before = await readFile(sim, 'utf8');
    const ask = await cli(['domain', 'delete', '--domain', '1', '--sim', sim, '--pin', 'env:PIN'], {
      env: ENV,
    });
    expect(ask.code).toBe(7);
    expect(ask.stderr).toMatch(/confirmation/);
    expect(await readFile(sim, 'utf8')).toBe(before);
    const full = await cli(['domain', 'delete', '--domain', '1', '--sim', sim, '--pin', 'env:PIN', '--yes'], {
      env: ENV,
    });
    expect(full.code).toBe(7);
    expect(full.stderr).toMatch(/still holds key/);
    // known from the keys' public FCPs: refused before the PIN (a wrong one costs no try)
    const bad = await cli(
      ['domain', 'delete', '--domain', '1', '--sim', sim, '--pin', 'env:BADPIN', '--yes'],
      {
        env: { ...ENV, BADPIN: '111111' },
      },
    );
    expect(bad.stderr).toMatch(/still holds key.*Nothing was sent/);
    expect(JSON.parse(await readFile(sim, 'utf8')).userPinTries).toBe(3);
    const only = await ok([
      'domain',
      'delete',
      '--domain',
      '1',
      '--dkek-only',
      '--sim',
      sim,
      '--pin',
      'env:PIN',
      '--yes',
      '--json',
    ]);
    expect(only.json()).toEqual({ domain: 1, total: 2, outstanding: 2, kcv: null });
    expect((await ok(['keys', '--sim', sim, '--json'])).stdout).toContain('"k"');
    const wrap = await cli(
      ['wrap', '--sim', sim, '--key-ref', '1', '--out', join(dir, 'x.bin'), '--pin', 'env:PIN'],
      { env: ENV },
    );
    expect(wrap.code).toBe(6);
    // a new ceremony: the same share files are accepted again after the DKEK was deleted
    await ok(importArgs(sim, shareA));
    await ok(['domain', 'delete', '--domain', '2', '--sim', sim, '--pin', 'env:PIN', '--yes']).catch(
      () => undefined,
    );
    await ok(['delete-key', '--sim', sim, '--key-ref', '1', '--pin', 'env:PIN', '--yes']);
    await ok(['domain', 'delete', '--domain', '1', '--sim', sim, '--pin', 'env:PIN', '--yes']);
    expect(
      (await ok(['domain', 'status', '--sim', sim, '--json']))
        .json()
        .domains.map((d: { domain: number }) => d.domain),
    ).toEqual([0]);
  }, 180_000);
});

describe('the DKEK repeat guard and PIN tries (hostile user)', () => {
  const tries = async (sim: string) => JSON.parse(await readFile(sim, 'utf8')).userPinTries;

  it('--trace onto a DKEK import record (domain 0 or N) is refused before anything is sent', async () => {
    const sim = await copyState(base, dir, 'trace-record.json');
    for (const rec of [`${sim}.dkek-import.json`, `${sim}.dkek-import-domain-1.json`]) {
      const r = await cli(['status', '--sim', sim, '--trace', rec, '--trace-overwrite', '--json'], {
        env: ENV,
      });
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(r.json().error.code).toBe('USAGE_ERROR');
      expect(r.json().error.message).toMatch(/DKEK import record/);
      await expect(readFile(rec, 'utf8')).rejects.toThrow(/ENOENT/);
    }
  });

  it('a damaged DKEK import record stops the import (naming the file) instead of counting as no record', async () => {
    const sim = await copyState(base, dir, 'garbage-record.json');
    const rec = `${sim}.dkek-import-domain-1.json`;
    await ok(importArgs(sim, shareA));
    await writeFile(rec, '{"trace": []}\n');
    const r = await cli([...importArgs(sim, shareA), '--json'], { env: ENV });
    expect(r.code).not.toBe(0);
    expect(r.json().error.code).toBe('IO_ERROR');
    expect(r.json().error.message).toContain(rec);
    expect(r.json().error.fix).toMatch(/move .* away/);
    const st = await ok(['domain', 'status', '--sim', sim, '--json']);
    expect(st.json().domains.find((d: { domain: number }) => d.domain === 1)).toMatchObject({
      outstanding: 1,
    });
  });

  it('domain import: a missing share file, the state file as share, a wrong password cost no PIN try', async () => {
    const sim = await copyState(base, dir, 'no-pin-spent.json');
    const junk = join(dir, 'junk64.bin');
    await writeFile(junk, randomBytes(64));
    const attempts: [string, string][] = [
      [join(dir, 'nofile.pbe'), 'env:PW'],
      [sim, 'env:PW'],
      [junk, 'env:PW'],
      [shareA, 'env:PW2'],
    ];
    for (const [share, pw] of attempts) {
      const r = await cli([...importArgs(sim, share, pw, 'env:BADPIN'), '--json'], {
        env: { ...ENV, PW2: 'another-pass-word', BADPIN: '111111' },
      });
      expect(r.code, `${share}: ${r.stdout}`).not.toBe(0);
      expect(r.json().error.code).not.toMatch(/PIN/);
      expect(await tries(sim)).toBe(3);
    }
  });
});

describe('init --key-domains without --dkek-shares', () => {
  it('warns that domain-0 keys cannot be backed up, not that no key ever can', async () => {
    const sim = join(dir, 'no-dkek0.json');
    const r = await ok(initArgs(sim, 'D', '--key-domains', '4', '--yes'));
    expect(r.stderr).toMatch(/key domain 0 gets no DKEK.*domains 1\.\.3 can/);
    expect(r.stderr).not.toMatch(/keys can NEVER be backed up or moved to a replacement device/);
  });
});

/**
 * Findings D–K of a hostile user (fix-aes-findings): checks from public card data before the PIN
 * (Ctx.login's precheck), use counters per APDU, the shared --out mechanism (src/cli/files.ts:
 * `-`, devices, FIFOs, symbolic links, directories), strict decimal numbers, keygen's domain and
 * usage, group --help, and an interrupted derive. In-process, on virtual cards (--sim).
 */
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/main.js';
import { aesArgs, cli, copyState, ENV, initArgs, keygenArgs, tempDir } from './cli-helpers.js';

let dir: string;
/** Initialized with a DKEK share; EC P-256 at 1, AES-256 at 2, AES restricted to CBC-ENCRYPT,CMAC at 3. */
let base: string;
const WRONG = '111111';
const TWEAK = '0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20';
/** The order n of P-256. */
const N_P256 = 'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551';

beforeAll(async () => {
  dir = await tempDir();
  const share = join(dir, 'share.pbe');
  expect((await cli(['dkek', 'create', share, '--password', 'env:PW'], { env: ENV })).code).toBe(0);
  base = join(dir, 'base.json');
  expect((await cli(initArgs(base, 'T', '--dkek-shares', '1', '--yes'), { env: ENV })).code).toBe(0);
  const imp = await cli(['dkek', 'import', share, '--sim', base, '--password', 'env:PW'], { env: ENV });
  expect(imp.code, imp.stderr).toBe(0);
  for (const args of [
    ['--type', 'ec:prime256v1', '--label', 'ec'],
    ['--type', 'aes:256', '--label', 'aes'],
    ['--type', 'aes:256', '--label', 'enc-only', '--algorithms', 'AES-CBC-ENCRYPT,AES-CMAC'],
  ]) {
    const k = await cli(['keygen', '--sim', base, '--pin', 'env:PIN', ...args], { env: ENV });
    expect(k.code, k.stderr).toBe(0);
  }
});

let n = 0;
const fresh = () => copyState(base, dir, `c${++n}.json`);
const tries = async (s: string) => (await cli(['status', '--sim', s, '--json'])).json().userPin.triesLeft;
/** The command with a wrong PIN: it must be refused before the PIN is sent. */
const wrongPin = (args: string[]) => cli([...args, '--pin', WRONG]);
const ok = (args: string[]) => cli([...args, '--pin', 'env:PIN'], { env: ENV });
async function input(bytes: number): Promise<string> {
  const p = join(dir, `in-${++n}`);
  await writeFile(p, Buffer.alloc(bytes, 7));
  return p;
}

describe('D: checks from public card data come before the PIN', () => {
  it.each([
    [
      'derive from an AES key',
      ['--derive-from', '2', '--tweak', '01', '--key-ref', '20'],
      'INVALID_ARGUMENT',
    ],
    ['derive from no key', ['--derive-from', '99', '--tweak', '01', '--key-ref', '20'], 'KEY_NOT_FOUND'],
    [
      'derive onto an occupied ref',
      ['--derive-from', '1', '--tweak', '01', '--key-ref', '2'],
      'KEY_REF_OCCUPIED',
    ],
    ['a tweak equal to n', ['--derive-from', '1', '--tweak', N_P256, '--key-ref', '20'], 'INVALID_ARGUMENT'],
    ['an AES key with an ECDSA list', ['--type', 'aes:256', '--algorithms', 'ECDSA'], 'INVALID_ARGUMENT'],
    ['keygen onto an occupied ref', ['--type', 'ec:prime256v1', '--key-ref', '1'], 'KEY_REF_OCCUPIED'],
  ])('keygen: %s costs no PIN try', async (_what, args, code) => {
    const s = await fresh();
    const r = await wrongPin(['keygen', '--sim', s, '--label', 'd', ...args, '--json']);
    expect(r.json().error.code, r.stdout).toBe(code);
    expect(await tries(s)).toBe(3);
  });

  it('aes decrypt and wrap of a key whose list forbids them: ALGORITHM_NOT_ALLOWED (exit 7) before the PIN', async () => {
    const s = await fresh();
    const ct = await input(32);
    const d = await wrongPin(aesArgs('decrypt', s, '3', '--in', ct, '--out', join(dir, `o${n}`), '--json'));
    expect(d.code).toBe(7);
    expect(d.json().error).toMatchObject({ code: 'ALGORITHM_NOT_ALLOWED' });
    expect(d.json().error.message).toMatch(/AES-CBC-DECRYPT.*AES-CBC-ENCRYPT, AES-CMAC/);
    const w = await wrongPin([
      'wrap',
      '--sim',
      s,
      '--key-ref',
      '3',
      '--out',
      join(dir, `w${n}.bin`),
      '--json',
    ]);
    expect(w.code).toBe(7);
    expect(w.json().error.code).toBe('ALGORITHM_NOT_ALLOWED');
    expect(await tries(s)).toBe(3);
    // the allowed ones still work
    expect((await ok(aesArgs('cmac', s, '3', '--in', ct))).code).toBe(0);
  });
});

describe('D: signing commands check the key before the PIN', () => {
  it('csr and cert self-sign with no key or an AES key cost no PIN try', async () => {
    const s = await fresh();
    for (const [cmd, ref, code] of [
      [['csr'], '99', 'KEY_NOT_FOUND'],
      [['cert', 'self-sign', '--days', '30'], '2', 'INVALID_ARGUMENT'],
    ] as const) {
      const r = await wrongPin([...cmd, '--sim', s, '--key-ref', ref, '--subject', 'CN=x', '--json']);
      expect(r.json().error.code, r.stdout).toBe(code);
    }
    expect(await tries(s)).toBe(3);
  });
});

describe('E: use counters count CIPHER APDUs', () => {
  it('a job needing more APDUs than uses left is refused before the PIN and spends nothing', async () => {
    const s = await fresh();
    const k = await ok(keygenArgs(s, 'aes:256', 'c2', '--use-counter', '2', '--key-ref', '10'));
    expect(k.code, k.stderr).toBe(0);
    const big = await input(3000); // 3008 padded bytes: 3 APDUs of 1024
    const r = await wrongPin(aesArgs('encrypt', s, '10', '--in', big, '--out', join(dir, `e${n}`), '--json'));
    expect(r.code).toBe(7);
    expect(r.json().error.code).toBe('USE_COUNTER_EXHAUSTED');
    expect(r.json().error.message).toMatch(/2 uses left; this needs 3/);
    // uses are left: the fix says how much they cover, not that the key is used up
    expect(r.json().error.fix).toContain('at most 2048 bytes');
    expect(r.json().error.fix).not.toContain('may not be used any more');
    expect(await tries(s)).toBe(3);
    const keys = (await cli(['keys', '--sim', s, '--json'])).json().keys;
    expect(keys.find((x: { keyRef: number }) => x.keyRef === 10).useCounter).toBe(2);
    // spend both, then a CMAC with a wrong PIN costs no try
    const small = await input(10);
    for (let i = 0; i < 2; i++) expect((await ok(aesArgs('cmac', s, '10', '--in', small))).code).toBe(0);
    const c = await wrongPin(aesArgs('cmac', s, '10', '--in', small, '--json'));
    expect(c.json().error.code).toBe('USE_COUNTER_EXHAUSTED');
    expect(await tries(s)).toBe(3);
  });
});

describe('F/G: --out kinds, checked before the PIN', () => {
  const enc = (s: string, out: string, ...more: string[]) =>
    aesArgs('encrypt', s, '2', '--in', join(dir, 'plain'), '--out', out, ...more);
  beforeAll(async () => {
    await writeFile(join(dir, 'plain'), 'secret text');
  });

  it('a character device is written in place, never replaced', async () => {
    const s = await fresh();
    for (const force of [[], ['--force']]) {
      const r = await ok(enc(s, '/dev/null', ...force));
      expect(r.code, r.stderr).toBe(0);
      expect((await stat('/dev/null')).isCharacterDevice()).toBe(true);
    }
  });

  it('a FIFO is written in place (wrap too)', async () => {
    const s = await fresh();
    const fifo = join(dir, `fifo${n}`);
    execFileSync('mkfifo', [fifo]);
    const reading = readFile(fifo);
    const r = await ok(enc(s, fifo, '--force'));
    expect(r.code, r.stderr).toBe(0);
    expect((await reading).length).toBe(32); // IV + one block
    expect((await lstat(fifo)).isFIFO()).toBe(true);
    const reading2 = readFile(fifo);
    const w = await ok(['wrap', '--sim', s, '--key-ref', '2', '--out', fifo, '--force']);
    expect(w.code, w.stderr).toBe(0);
    expect((await reading2).length).toBeGreaterThan(32);
    expect((await lstat(fifo)).isFIFO()).toBe(true);
  });

  it('a symbolic link is refused naming its target, before the PIN; /dev/stdout points to --out -', async () => {
    const s = await fresh();
    const target = join(dir, `target${n}`);
    await writeFile(target, 'keep');
    const link = join(dir, `link${n}`);
    await symlink(target, link);
    for (const force of [[], ['--force']]) {
      const r = await wrongPin([...enc(s, link, ...force), '--json']);
      expect(r.code).toBe(2);
      expect(r.json().error.message).toContain(`symbolic link to ${target}`);
    }
    expect(await readFile(target, 'utf8')).toBe('keep');
    expect(await readlink(link)).toBe(target);
    const so = await wrongPin([...enc(s, '/dev/stdout', '--force'), '--json']);
    expect(so.code).toBe(2);
    expect(so.json().error.fix).toMatch(/--out -/);
    expect(await tries(s)).toBe(3);
  });

  it('a missing directory or a directory as --out is refused before the PIN', async () => {
    const s = await fresh();
    const r = await wrongPin([...enc(s, join(dir, 'nodir', 'o8')), '--json']);
    expect(r.code).toBe(5);
    expect(r.json().error.message).toMatch(/does not exist/);
    const d = join(dir, `d${n}`);
    await mkdir(d);
    const r2 = await wrongPin([...enc(s, d, '--force'), '--json']);
    expect(r2.code).toBe(2);
    expect(r2.json().error.message).toMatch(/is a directory/);
    const w = await wrongPin(['wrap', '--sim', s, '--key-ref', '2', '--out', d, '--force', '--json']);
    expect(w.json().error.message).toMatch(/is a directory/);
    expect(await tries(s)).toBe(3);
  });
});

describe('H: numbers are strict decimal', () => {
  it.each(['0x10', '010', '1e3', '0b11', '1_000', ' 5', '+5', '5 '])(
    '--use-counter %j is refused',
    async (x) => {
      const s = await fresh();
      const r = await ok(keygenArgs(s, 'aes:256', 'h', '--use-counter', x, '--json'));
      expect(r.code).toBe(2);
      expect(r.json().error.message).toMatch(/--use-counter must be an integer from 1 .* in decimal digits/);
    },
  );
  it('--type rsa:0x800 and --key-ref 02 are refused', async () => {
    const s = await fresh();
    expect((await ok(keygenArgs(s, 'rsa:0x800', 'h'))).code).toBe(2);
    expect((await ok(keygenArgs(s, 'aes:256', 'h', '--key-ref', '02'))).code).toBe(2);
  });
});

describe('I: keygen reports what keys reports', () => {
  it('domain agrees with keys --json; a restricted AES key has the usage of its list', async () => {
    const s = await fresh();
    const k = await ok(keygenArgs(s, 'aes:256', 'i', '--algorithms', 'AES-CBC-ENCRYPT,AES-CMAC', '--json'));
    expect(k.code, k.stderr).toBe(0);
    const keys = (await cli(['keys', '--sim', s, '--json'])).json().keys;
    const listed = keys.find((x: { keyRef: number }) => x.keyRef === k.json().keyRef);
    expect(k.json().domain).toEqual(listed.domain);
    expect(listed.usageNames).toContain('encrypt');
    expect(listed.usageNames).not.toContain('decrypt');
    expect(listed.usageNames).not.toContain('derive');
    const e = await ok(keygenArgs(s, 'ec:prime256v1', 'i2', '--algorithms', 'ECDSA-SHA256', '--json'));
    const ec = (await cli(['keys', '--sim', s, '--json']))
      .json()
      .keys.find((x: { keyRef: number }) => x.keyRef === e.json().keyRef);
    expect(ec.usageNames).toContain('sign');
    expect(ec.usageNames).not.toContain('derive');
  });
});

describe('J: --out - and group --help', () => {
  async function run(argv: string[], stdoutIsTty: boolean) {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    if (stdoutIsTty) Object.assign(stdout, { isTTY: true });
    const chunks: Buffer[] = [];
    let err = '';
    stdout.on('data', (d) => chunks.push(Buffer.from(d)));
    stderr.on('data', (d) => {
      err += d.toString();
    });
    const code = await runCli(argv, {
      stdout,
      stderr,
      stdin: new PassThrough(),
      env: { ...ENV },
      isTTY: false,
    });
    await new Promise((r) => setImmediate(r));
    return { code, out: Buffer.concat(chunks), err };
  }

  it('--out - writes the binary to a non-terminal stdout, the text to stderr; refused on a terminal and with --json', async () => {
    const s = await fresh();
    const plain = await input(20);
    const args = aesArgs('encrypt', s, '2', '--in', plain, '--out', '-', '--pin', 'env:PIN');
    const r = await run(args, false);
    expect(r.code, r.err).toBe(0);
    expect(r.out.length).toBe(48); // IV + 2 blocks
    expect(r.err).toMatch(/encrypted with key 2/);
    const t = await run([...args.slice(0, -2), '--pin', WRONG], true);
    expect(t.code).toBe(2);
    expect(t.err).toMatch(/terminal/);
    const j = await run([...args.slice(0, -2), '--pin', WRONG, '--json'], false);
    expect(j.code).toBe(2);
    expect(await tries(s)).toBe(3);
    const w = await run(['wrap', '--sim', s, '--key-ref', '2', '--out', '-', '--pin', 'env:PIN'], false);
    expect(w.code, w.err).toBe(0);
    expect(w.out.length).toBeGreaterThan(32);
  });

  it.each(['aes', 'dkek', 'pka', 'domain', 'sim', 'pin', 'wrapped', 'cert', 'so-pin'])(
    '%s --help prints the group help (exit 0)',
    async (g) => {
      for (const argv of [
        [g, '--help'],
        [g, '-h'],
        ['--help', g],
        ['help', g],
      ]) {
        const r = await cli(argv);
        expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
        expect(r.stdout).toContain(`Usage: sc-hsm-ts ${g} SUBCOMMAND`);
        expect(r.stdout).toMatch(new RegExp(`\\n  ${g} \\S+`));
      }
    },
  );
});

describe('K: a rerun after a derive interrupted between DERIVE and the description', () => {
  it('explains the key without description and how to recover, before the PIN', async () => {
    const s = await fresh();
    const derive = [
      'keygen',
      '--sim',
      s,
      '--derive-from',
      '1',
      '--tweak',
      TWEAK,
      '--key-ref',
      '30',
      '--label',
      'k',
    ];
    const d = await ok(derive);
    expect(d.code, d.stderr).toBe(0);
    // what a kill after DERIVE leaves: the key (CC1E) without C41E and CE1E
    const state = JSON.parse(await readFile(s, 'utf8'));
    delete state.files.C41E;
    delete state.files.CE1E;
    await writeFile(s, JSON.stringify(state));
    const r = await wrongPin([...derive, '--json']);
    expect(r.code).toBe(7);
    const e = r.json().error;
    expect(e).toMatchObject({ code: 'KEY_REF_OCCUPIED', keyRef: 30 });
    expect(e.message).toMatch(/without description .* interrupted/);
    expect(e.fix).toMatch(/delete-key --key-ref 30\) and derive again/);
    expect(await tries(s)).toBe(3);
  });
});

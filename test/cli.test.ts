import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  blankDevice,
  cli,
  copyState,
  ENV,
  fileText,
  initArgs,
  initializedState,
  keygenArgs,
  PIN,
  SO_PIN,
  secretForms,
  tempDir,
} from './cli-helpers.js';

let dir: string;
/** An initialized virtual card without DKEK and with an EC key at ref 1. */
let base: string;

beforeAll(async () => {
  dir = await tempDir();
  base = await initializedState(dir, 'Test');
  const k = await cli(keygenArgs(base, 'ec:prime256v1', 'eckey', '--pin', 'env:PIN'), { env: ENV });
  expect(k.code, k.stderr).toBe(0);
});

async function fresh(name: string): Promise<string> {
  return copyState(base, dir, `${name}.json`);
}

describe('general', () => {
  it('prints help with the exit code table', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Exit codes:');
    expect(r.stdout).toContain('dkek create');
    const s = await cli(['init', '--help']);
    expect(s.code).toBe(0);
    expect(s.stdout).toContain('--dkek-shares');
    expect(s.stdout).toMatch(/7 +refused for safety/);
  });

  it('rejects unknown commands and options with exit 2, also as JSON', async () => {
    expect((await cli(['frobnicate'])).code).toBe(2);
    const r = await cli(['status', '--bogus', '--json']);
    expect(r.code).toBe(2);
    expect(r.json().error.code).toBe('USAGE_ERROR');
    expect((await cli(['dkek'])).stderr).toContain('needs a subcommand');
  });

  it('takes the global options before the command as after it; an unknown one there is named', async () => {
    const f = await fresh('globals-first');
    for (const argv of [
      ['--sim', f, '--json', 'status'],
      [`--sim=${f}`, '--json', 'status'],
      ['--json', 'status', '--sim', f],
      ['--json', '--sim', f, 'pin', 'status'],
    ]) {
      const r = await cli(argv);
      expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r.json(), argv.join(' ')).toHaveProperty('initialized', true);
    }
    const t = join(dir, 'globals-first.apdu');
    const traced = await cli(['--trace', t, '-y', '--sim', f, 'keys']);
    expect(traced.code, traced.stderr).toBe(0);
    expect(await fileText(t)).toContain('=> 00a4');
    // --help and --version keep working, also after a global option
    expect((await cli(['--json', '--help'])).stdout).toContain('Usage: sc-hsm-ts COMMAND');
    expect((await cli(['--sim', f, '--help', 'status'])).stdout).toContain('Usage: sc-hsm-ts status');
    expect((await cli(['--version'])).stdout).toMatch(/^sc-hsm-ts \d/);
    const unknown = await cli(['--bogus', 'status', '--json']);
    expect(unknown.code).toBe(2);
    expect(unknown.json().error.message).toBe('unknown option --bogus before the command');
    // a command's own option before the command is not a global one
    const own = await cli(['--pin', '987654', 'pin', 'verify', '--sim', f]);
    expect(own.code).toBe(2);
    expect(own.stderr).toContain('unknown option --pin before the command');
    expect(own.stdout + own.stderr).not.toContain('987654');
    const noValue = await cli(['--sim']);
    expect(noValue.code).toBe(2);
    expect(noValue.stderr).toMatch(/option --sim needs a value/);
  });

  it('refuses an option that takes one value given twice (repeatable ones repeat)', async () => {
    const f = await fresh('twice');
    const other = join(dir, 'twice-other.json');
    for (const argv of [
      ['status', '--sim', f, '--sim', other],
      ['--sim', f, 'status', '--sim', other],
      ['status', `--sim=${f}`, `--sim=${other}`],
    ]) {
      const r = await cli([...argv, '--json']);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.json().error.message).toBe('option --sim was given more than once; it takes one value');
      expect(r.json().error.fix).toBe('give --sim once');
    }
    const label = await cli(
      [
        'keygen',
        '--sim',
        f,
        '--type',
        'ec:prime256v1',
        '--label',
        'x',
        '--label',
        'y',
        '--pin',
        'env:PIN',
        '--json',
      ],
      { env: ENV },
    );
    expect(label.code).toBe(2);
    expect(label.json().error.message).toMatch(/option --label was given more than once/);
    expect((await cli(['keys', '--sim', f, '--json'])).json().keys).toHaveLength(1);
    // --dkek and --password repeat: one per share file (refused later for another reason, not this one)
    const dkek = await cli(['wrapped', 'inspect', 'no.bin', '--dkek', 'a.pbe', '--dkek', 'b.pbe', '--json']);
    expect(dkek.json().error.message).not.toMatch(/more than once/);
  });

  it('a control character in a path is refused with a fix about paths, in a label with one about labels', async () => {
    const path = await cli(['status', '--sim', join(dir, 'a\u001bb.json'), '--json']);
    expect(path.code).toBe(2);
    expect(path.json().error.message).toMatch(
      /^--sim contains a control or text-direction character \(U\+001B/,
    );
    expect(path.json().error.fix).toMatch(/path without control characters/);
    expect(path.json().error.fix).not.toMatch(/label/);
    const arg = await cli(['dkek', 'inspect', 'share\u0007.pbe', '--json']);
    expect(arg.json().error.message).toMatch(/^argument 1 contains/);
    expect(arg.json().error.fix).toMatch(/path without control characters/);
    const label = await cli(['init', '--sim', join(dir, 'l.json'), '--label', 'a\u0007', '--json']);
    expect(label.json().error.fix).toMatch(/a label is 1 to 32 bytes/);
  });

  it('never repeats a misplaced positional (it may be a PIN)', async () => {
    const r = await cli(['pin', 'verify', '--sim', join(dir, 'x.json'), '987654']);
    expect(r.code).toBe(2);
    expect(r.stdout + r.stderr).not.toContain('987654');
  });
});

describe('status and pins', () => {
  it('shows an uninitialized device; a missing state file is an error, not a new device', async () => {
    const f = join(dir, 'new.json');
    const missing = await cli(['status', '--sim', f, '--json']);
    expect(missing.code).toBe(5);
    expect(missing.json().error).toMatchObject({ code: 'HOST_FILE_NOT_FOUND' });
    expect(missing.json().error.fix).toContain(`sc-hsm-ts init --sim ${f}`);
    await expect(stat(f)).rejects.toMatchObject({ code: 'ENOENT' });
    await blankDevice(f);
    const r = await cli(['status', '--sim', f, '--json']);
    expect(r.code).toBe(0);
    const j = r.json();
    expect(j.initialized).toBe(false);
    expect(j.version.major).toBeGreaterThan(0);
    expect((await stat(f)).isFile()).toBe(true);
    const h = await cli(['status', '--sim', f]);
    expect(h.stdout).toContain('uninitialized');
  });

  it('shows PIN tries and label of an initialized device', async () => {
    const f = await fresh('status');
    const r = await cli(['status', '--sim', f, '--json']);
    const j = r.json();
    expect(j.initialized).toBe(true);
    expect(j.label).toBe('Test');
    expect(j.userPin.triesLeft).toBe(3);
    expect(j.soPin.triesLeft).toBe(15);
    expect(j.dkek).toBeUndefined();
    const h = await cli(['status', '--sim', f]);
    expect(h.stdout).toMatch(/SO-PIN tries left +: 15/);
    expect(h.stdout).toMatch(/User PIN tries left +: 3/);
  });

  it('a wrong PIN says how many tries are left (exit 3), one try left is refused (exit 7)', async () => {
    const f = await fresh('wrongpin');
    const r1 = await cli(['pin', 'verify', '--sim', f, '--pin', '111111', '--json']);
    expect(r1.code).toBe(3);
    expect(r1.json().error).toMatchObject({ code: 'WRONG_PIN', triesLeft: 2, sw: '63C2' });
    const r2 = await cli(['pin', 'verify', '--sim', f, '--pin', '111111']);
    expect(r2.code).toBe(3);
    expect(r2.stderr).toContain('1 try left');
    const r3 = await cli(['pin', 'verify', '--sim', f, '--pin', '111111', '--json']);
    expect(r3.code).toBe(7);
    expect(r3.json().error.code).toBe('PIN_TRIES_LOW');
    const st = await cli(['pin', 'status', '--sim', f, '--json']);
    expect(st.json().userPin.triesLeft).toBe(1);
    const r4 = await cli(['pin', 'verify', '--sim', f, '--pin', '111111', '--last-try']);
    expect(r4.code).toBe(3);
    const blocked = await cli(['pin', 'verify', '--sim', f, '--pin', 'env:PIN', '--json'], { env: ENV });
    expect(blocked.code).toBe(3);
    expect(blocked.json().error.code).toBe('PIN_BLOCKED');
    const u = await cli(
      ['pin', 'unblock', '--sim', f, '--so-pin', 'env:SO_PIN', '--new-pin', 'env:NEW', '--json'],
      {
        env: { ...ENV, NEW: '123456' },
      },
    );
    expect(u.code, u.stdout).toBe(0);
    expect(u.json().userPin.triesLeft).toBe(3);
    expect((await cli(['pin', 'verify', '--sim', f, '--pin', '123456'])).code).toBe(0);
  });

  it('changes the user PIN and the SO-PIN', async () => {
    const f = await fresh('change');
    const env = { ...ENV, NEW: '24681357', NEWSO: '0011223344556677' };
    expect(
      (await cli(['pin', 'change', '--sim', f, '--pin', 'env:PIN', '--new-pin', 'env:NEW'], { env })).code,
    ).toBe(0);
    expect((await cli(['pin', 'verify', '--sim', f, '--pin', 'env:NEW'], { env })).code).toBe(0);
    expect(
      (
        await cli(['so-pin', 'change', '--sim', f, '--so-pin', 'env:SO_PIN', '--new-so-pin', 'env:NEWSO'], {
          env,
        })
      ).code,
    ).toBe(0);
    const bad = await cli(
      ['pin', 'unblock', '--sim', f, '--so-pin', 'env:SO_PIN', '--reset-only', '--json'],
      { env },
    );
    expect(bad.code).toBe(3);
    expect(
      (await cli(['pin', 'unblock', '--sim', f, '--so-pin', 'env:NEWSO', '--reset-only'], { env })).code,
    ).toBe(0);
  });

  it('an omitted secret without a terminal is exit 2, never an empty PIN; the card is untouched', async () => {
    const f = await fresh('nosecret');
    const before = await readFile(f);
    const r = await cli(['pin', 'verify', '--sim', f, '--json']);
    expect(r.code).toBe(2);
    expect(r.json().error.code).toBe('SECRET_REQUIRED');
    expect(await readFile(f)).toEqual(before);
    const e = await cli(['pin', 'verify', '--sim', f, '--pin', 'env:MISSING']);
    expect(e.code).toBe(2);
    expect(await readFile(f)).toEqual(before);
    expect((await cli(['pin', 'status', '--sim', f, '--json'])).json().userPin.triesLeft).toBe(3);
  });

  it('reads secrets from file: and prompts without echo on a terminal', async () => {
    const f = await fresh('prompt');
    const pf = join(dir, 'pin.txt');
    await writeFile(pf, `${PIN}\n`);
    expect((await cli(['pin', 'verify', '--sim', f, '--pin', `file:${pf}`])).code).toBe(0);
    const r = await cli(['pin', 'verify', '--sim', f], { isTTY: true, stdin: `${PIN}\n` });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('User PIN:');
    expect(r.stdout + r.stderr).not.toContain(PIN);
  });
});

describe('init', () => {
  it('validates the SO-PIN on the host: nothing sent, state unchanged, exit 2', async () => {
    const f = await blankDevice(join(dir, 'init-bad.json'));
    const before = await readFile(f);
    for (const so of ['9f9f', '353736323138383G', '35373632313838301']) {
      const r = await cli([
        'init',
        '--sim',
        f,
        '--so-pin',
        so,
        '--pin',
        PIN,
        '--label',
        'X',
        '--yes',
        '--json',
      ]);
      expect(r.code).toBe(2);
      expect(r.json().error.code).toBe('INVALID_SO_PIN');
      expect(r.stdout).not.toContain(so);
    }
    const p = await cli([
      'init',
      '--sim',
      f,
      '--so-pin',
      SO_PIN,
      '--pin',
      '123',
      '--label',
      'X',
      '--yes',
      '--json',
    ]);
    expect(p.json().error.code).toBe('INVALID_PIN');
    const rc = await cli([
      'init',
      '--sim',
      f,
      '--so-pin',
      SO_PIN,
      '--pin',
      PIN,
      '--pin-retry',
      '5',
      '--label',
      'X',
      '--yes',
    ]);
    expect(rc.code).toBe(2);
    expect(await readFile(f)).toEqual(before);
  });

  it('needs confirmation: without --yes and without a terminal it refuses (exit 7); "no" declines', async () => {
    const f = await blankDevice(join(dir, 'init-confirm.json'));
    const r = await cli([
      'init',
      '--sim',
      f,
      '--so-pin',
      SO_PIN,
      '--pin',
      PIN,
      '--label',
      'X',
      '--dkek-shares',
      '1',
      '--json',
    ]);
    expect(r.code).toBe(7);
    expect(r.json().error.code).toBe('CONFIRMATION_REQUIRED');
    const n = await cli(
      ['init', '--sim', f, '--so-pin', SO_PIN, '--pin', PIN, '--label', 'X', '--dkek-shares', '1'],
      {
        isTTY: true,
        stdin: 'no\n',
      },
    );
    expect(n.code).toBe(7);
    expect((await cli(['status', '--sim', f, '--json'])).json().initialized).toBe(false);
    const y = await cli(
      ['init', '--sim', f, '--so-pin', SO_PIN, '--pin', PIN, '--label', 'X', '--dkek-shares', '1'],
      {
        isTTY: true,
        stdin: 'yes\n',
      },
    );
    expect(y.code, y.stderr).toBe(0);
  });

  it('warns about missing or zero DKEK shares and prints a generated SO-PIN once', async () => {
    const f = join(dir, 'init-gen.json');
    const r = await cli([
      'init',
      '--sim',
      f,
      '--generate-so-pin',
      '--pin',
      PIN,
      '--label',
      'G',
      '--yes',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('can NEVER be backed up');
    const so = r.json().soPin as string;
    expect(so).toMatch(/^[0-9A-F]{16}$/);
    expect((await cli(['pin', 'unblock', '--sim', f, '--so-pin', so, '--reset-only'])).code).toBe(0);
    const z = await cli([
      'init',
      '--sim',
      join(dir, 'init-zero.json'),
      '--so-pin',
      SO_PIN,
      '--pin',
      PIN,
      '--label',
      'Z',
      '--dkek-shares',
      '0',
      '--yes',
    ]);
    expect(z.code).toBe(0);
    expect(z.stderr).toContain('only ever restored onto THIS device');
    const again = await cli(['init', '--sim', f, '--generate-so-pin', '--pin', PIN, '--label', 'G', '--yes']);
    expect(again.code).toBe(2);
  });

  it('re-initialization with a wrong SO-PIN fails with exit 3 and keeps the keys', async () => {
    const f = await fresh('reinit');
    const r = await cli([
      'init',
      '--sim',
      f,
      '--so-pin',
      '0000000000000000',
      '--pin',
      PIN,
      '--label',
      'X',
      '--yes',
      '--json',
    ]);
    expect(r.code).toBe(3);
    expect((await cli(['keys', '--sim', f, '--json'])).json().keys).toHaveLength(1);
  });
});

describe('keys', () => {
  it('lists key reference, ID and label side by side, with the note', async () => {
    const f = await fresh('keys');
    const r = await cli(['keys', '--sim', f]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Key ref +ID +Label/);
    expect(r.stdout).toContain('--key-ref is the number in the first column');
    const j = (await cli(['keys', '--sim', f, '--json'])).json();
    expect(j.keys[0]).toMatchObject({
      keyRef: 1,
      label: 'eckey',
      type: 'ec',
      curve: 'prime256v1',
      bits: 256,
    });
    expect(j.keys[0].id).toMatch(/^[0-9a-f]{40}$/);
    expect(j.keys[0].publicKeySha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('generates keys with --id and --key-ref, refuses bad types and occupied references', async () => {
    const f = await fresh('keygen');
    const r = await cli(
      [
        'keygen',
        '--sim',
        f,
        '--type',
        'rsa:2048',
        '--label',
        'rsa',
        '--id',
        'a1b2',
        '--key-ref',
        '7',
        '--pin',
        'env:PIN',
        '--json',
      ],
      { env: ENV },
    );
    expect(r.code, r.stdout).toBe(0);
    expect(r.json()).toMatchObject({ keyRef: 7, id: 'a1b2', type: 'rsa', bits: 2048 });
    const before = await readFile(f);
    expect((await cli(['keygen', '--sim', f, '--type', 'dsa:1024', '--label', 'x', '--pin', PIN])).code).toBe(
      2,
    );
    const occ = await cli([
      'keygen',
      '--sim',
      f,
      '--type',
      'ec:prime256v1',
      '--label',
      'x',
      '--key-ref',
      '7',
      '--pin',
      PIN,
      '--json',
    ]);
    expect(occ.code).toBe(7);
    expect(occ.json().error.code).toBe('KEY_REF_OCCUPIED');
    expect((await cli(['keys', '--sim', f, '--json'])).json().keys).toHaveLength(2);
    expect(before.length).toBeGreaterThan(0);
  });

  it('delete-key asks for confirmation and reports unknown references (exit 5)', async () => {
    const f = await fresh('delete');
    const nf = await cli(['delete-key', '--sim', f, '--key-ref', '9', '--pin', PIN, '--yes', '--json']);
    expect(nf.code).toBe(5);
    expect(nf.json().error.code).toBe('KEY_NOT_FOUND');
    const no = await cli(['delete-key', '--sim', f, '--key-ref', '1', '--pin', PIN]);
    expect(no.code).toBe(7);
    expect((await cli(['keys', '--sim', f, '--json'])).json().keys).toHaveLength(1);
    const ok = await cli(['delete-key', '--sim', f, '--key-ref', '1', '--pin', PIN, '--yes', '--json']);
    expect(ok.code).toBe(0);
    expect(ok.json()).toMatchObject({ deleted: true, keyRef: 1 });
    expect((await cli(['keys', '--sim', f, '--json'])).json().keys).toHaveLength(0);
    expect((await cli(['delete-key', '--sim', f, '--key-ref', '0', '--yes'])).code).toBe(2);
  });
});

describe('dump, apdu, trace', () => {
  it('dumps device, PINs and keys the pkcs15-tool way, with few APDUs', async () => {
    const f = await fresh('dump');
    const r = await cli(['dump', '--sim', f]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Private EC Key [eckey]');
    expect(r.stdout).toMatch(/Usage +: \[0x10C\], sign, signRecover, derive/);
    expect(r.stdout).toMatch(/Key ref +: 1 \(0x01\)/);
    const j = (await cli(['dump', '--sim', f, '--json'])).json();
    expect(j.device.initialized).toBe(true);
    expect(j.device.label).toBe('Test');
    expect(j.keys[0]).toMatchObject({ keyRef: 1, label: 'eckey', usage: 0x10c });
    expect(j.keys[0].publicKeySha256).toMatch(/^[0-9a-f]{64}$/);
    expect(j.deviceCertificates.length).toBeGreaterThan(0);
    expect(j.apduCount).toBeLessThan(30);
  });

  it('writes a trace with PINs masked', async () => {
    const f = await fresh('trace');
    const t = join(dir, 'trace.apdu');
    const r = await cli(['pin', 'verify', '--sim', f, '--pin', 'env:PIN', '--trace', t], { env: ENV });
    expect(r.code).toBe(0);
    const text = await fileText(t);
    expect(text).toMatch(/^=> 00a4/m);
    expect(text).toContain('=> 0020008106************');
    for (const s of secretForms(PIN)) expect(text).not.toContain(s);
  });

  it('keeps the SO-PIN out of output and trace files', async () => {
    const f = join(dir, 'trace-so.json');
    const t = join(dir, 'trace-so.apdu');
    const r = await cli(initArgs(f, 'T', '--yes', '--trace', t, '--json'), { env: ENV });
    expect(r.code).toBe(0);
    const all = r.stdout + r.stderr + (await fileText(t));
    for (const s of [...secretForms(SO_PIN), ...secretForms('57621880'), ...secretForms(PIN)])
      expect(all).not.toContain(s);
  });

  it('sends raw APDUs after selecting the applet', async () => {
    const f = await fresh('apdu');
    const r = await cli(['apdu', '--sim', f, '0020008100', '--json']);
    expect(r.code).toBe(0);
    expect(r.json().responses[0].sw).toBe('63C3');
    expect((await cli(['apdu', '--sim', f, 'zz'])).code).toBe(2);
  });

  it('reports a damaged state file as a device problem (exit 4)', async () => {
    const f = join(dir, 'broken.json');
    await writeFile(f, '{"nope":1}');
    const r = await cli(['status', '--sim', f, '--json']);
    expect(r.code).toBe(4);
    expect(r.json().error.code).toBe('INVALID_STATE_FILE');
    expect(await fileText(f)).toBe('{"nope":1}');
  });

  it('doctor prints each check with a result', async () => {
    const r = await cli(['doctor', '--json']);
    expect([0, 1]).toContain(r.code);
    const j = r.json();
    expect(j.checks.map((c: { name: string }) => c.name)).toEqual(
      expect.arrayContaining(['pcscd', 'readers', 'usb', 'udev rule', 'opensc pkcs11 module']),
    );
    for (const c of j.checks) expect(['ok', 'warn', 'fail', 'skip']).toContain(c.status);
  });

  it('readers with --sim shows the virtual card and its state', async () => {
    const r = await cli(['readers', '--sim', await blankDevice(join(dir, 'rd.json')), '--json']);
    expect(r.code).toBe(0);
    expect(r.json().readers[0]).toMatchObject({ isSmartCardHsm: true, initialized: false });
  });
});

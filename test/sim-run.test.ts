/**
 * `sim run` before anything starts: its options, the --init values (checked before a card or a
 * pcscd exists: a stand-in `unshare` on PATH records whether it was ever run) and what the host
 * lacks (checkSimHost, the Debian package names). The runs themselves: test/sim-run.pcsc.test.ts.
 */
import { existsSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSimHost, PCSCD_SOCKET } from '../src/cli/commands/sim/host.js';
import { encryptDkekShare } from '../src/dkek/index.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { blankDevice, cli, PIN, SO_PIN, tempDir } from './cli-helpers.js';

/** A PATH whose pcscd, unshare, mount and ip only leave a mark that they ran. */
async function fakeTools(): Promise<{ path: string; ran: () => boolean }> {
  const dir = await tempDir();
  const mark = join(dir, 'ran');
  for (const t of ['pcscd', 'unshare', 'mount', 'ip']) {
    await writeFile(join(dir, t), `#!/bin/sh\ntouch ${mark}\nexit 1\n`);
    await chmod(join(dir, t), 0o755);
  }
  return { path: `${dir}:/usr/bin:/bin`, ran: () => existsSync(mark) };
}

/** The --init values of a card labelled L with the DKEK share SHARE (its password PW). */
const initWithShare = (share: string, pw: string) => [
  ...['--so-pin', SO_PIN, '--pin', PIN, '--label', 'L'],
  ...['--dkek-share', share, '--password', pw],
];

describe('sim run: options refused before anything starts (exit 2)', () => {
  const cases: [string, string[], RegExp][] = [
    ['three cards', ['--cards', '3'], /--cards/],
    ['a negative number of cards', ['--cards', '-1'], /--cards/],
    [
      'more --state files than --cards',
      ['--cards', '1', '--state', 'a.json', '--state', 'b.json'],
      /--cards 1 but 2/,
    ],
    ['--so-pin without --init', ['--so-pin', 'env:X'], /need --init/],
    ['--label without --init', ['--label', 'L'], /need --init/],
    [
      '--password without --dkek-share',
      ['--init', '--password', 'env:X', '--label', 'L'],
      /--password is the password of --dkek-share/,
    ],
    ['--sim', ['--sim', 'x.json'], /sim run takes no --sim:/],
    ["--state ''", ['--state', ''], /--state was given an empty path/],
    ["--cards ''", ['--cards', ''], /--cards must be an integer/],
    ['--trace', ['--trace', '-'], /sim run takes no --trace:/],
  ];
  for (const [name, args, msg] of cases) {
    it(name, async () => {
      const t = await fakeTools();
      const r = await cli(['sim', 'run', ...args, '--', 'true'], { env: { PATH: t.path } });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(t.ran()).toBe(false);
    });
  }

  it('a --profile that does not load (before pcscd or a card exists)', async () => {
    const t = await fakeTools();
    const r = await cli(['sim', 'run', '--profile', '/nonexistent/p.json', '--', 'true'], {
      env: { PATH: t.path },
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('timing profile');
    expect(t.ran()).toBe(false);
  });

  it('a --state file that does not exist (exit 5)', async () => {
    const t = await fakeTools();
    const r = await cli(['sim', 'run', '--state', '/nonexistent/s.json', '--', 'true'], {
      env: { PATH: t.path },
    });
    expect(r.code).toBe(5);
    expect(t.ran()).toBe(false);
  });

  it('a --state file that is no JSON (a password file): refused without a character of it', async () => {
    const t = await fakeTools();
    const dir = await tempDir();
    const pw = join(dir, 'pw.txt');
    await writeFile(pw, 'hunter2-my-secret\n');
    const prof = join(dir, 'p.json');
    await writeFile(prof, 'hunter2-my-secret\n');
    for (const argv of [
      ['sim', 'run', '--json', '--state', pw, '--', 'true'],
      ['status', '--sim', pw],
      ['--profile', prof, 'sim', 'run', '--', 'true'],
    ]) {
      const r = await cli(argv, { env: { PATH: t.path } });
      expect(r.code, argv.join(' ')).not.toBe(0);
      expect(r.stderr + r.stdout).toContain('not JSON');
      expect(r.stderr + r.stdout).not.toMatch(/hunt|"h/);
    }
    expect(t.ran()).toBe(false);
  });

  it('a --state file another process holds (READER_BUSY, exit 4)', async () => {
    const t = await fakeTools();
    const dir = await tempDir();
    const s = await blankDevice(join(dir, 'held.json'));
    const holder = await VirtualSmartCardHsm.open(s);
    try {
      const r = await cli(['sim', 'run', '--state', s, '--', 'true'], {
        env: { PATH: t.path, SC_HSM_TS_LOCK_WAIT: '0' },
      });
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toContain('in use');
      // what works for sim run (it refuses --reader)
      expect(r.stderr).not.toContain('--reader');
      expect(r.stderr).toContain(`fix: stop the process that holds ${s}`);
      expect(t.ran()).toBe(false);
    } finally {
      await holder.close();
    }
  });

  it('the inner run\u2019s variable set from outside: refused, nothing mounted or started', async () => {
    const t = await fakeTools();
    const r = await cli(['sim', 'run', '--', 'true'], {
      env: { PATH: t.path, SC_HSM_TS_SIM_RUN_INNER: '/tmp/plan.json' },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('SC_HSM_TS_SIM_RUN_INNER is set');
    expect(t.ran()).toBe(false);
  });

  it('COMMAND without -- (sim run ls -la): the unknown option says to put COMMAND after --', async () => {
    const t = await fakeTools();
    const r = await cli(['sim', 'run', 'ls', '-la'], { env: { PATH: t.path } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown option -l (sim run passes on only what follows --)');
    expect(r.stderr).toContain('fix: put COMMAND after --: sc-hsm-ts sim run [options] -- COMMAND…');
    expect(t.ran()).toBe(false);
    // an unknown option with COMMAND after --: no such hint
    const o = await cli(['sim', 'run', '--bogus', '--', 'ls'], { env: { PATH: t.path } });
    expect(o.stderr).toContain('unknown option --bogus');
    expect(o.stderr).not.toContain('put COMMAND after');
  });

  for (const n of ['0x1', ' 1', '1.0', '3', '-1']) {
    it(`--cards '${n}' (decimal 0 to 2 only)`, async () => {
      const t = await fakeTools();
      const r = await cli(['sim', 'run', '--cards', n, '--', 'true'], { env: { PATH: t.path } });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('--cards');
      expect(t.ran()).toBe(false);
    });
  }

  it('--help: the options before -- COMMAND…', async () => {
    const r = await cli(['sim', 'run', '--help']);
    expect(r.stdout).toContain('Usage: sc-hsm-ts sim run [options] -- COMMAND…\n');
  });

  it('no COMMAND', async () => {
    expect((await cli(['sim', 'run'])).code).toBe(2);
  });

  it('the same state file twice (also through another path)', async () => {
    const dir = await tempDir();
    const s = await blankDevice(join(dir, 'a.json'));
    const r = await cli(['sim', 'run', '--state', s, '--state', join(dir, '.', 'a.json'), '--', 'true']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('given twice');
  });

  it('--init with every card from a --state file', async () => {
    const dir = await tempDir();
    const s = await blankDevice(join(dir, 'a.json'));
    const r = await cli(['sim', 'run', '--state', s, '--init', '--label', 'L', '--', 'true']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--init initializes the fresh cards');
  });
});

describe('sim run --init: every value checked before a card or pcscd exists', () => {
  const bad: [string, string[], RegExp, number][] = [
    ['a malformed SO-PIN', ['--so-pin', '1234', '--pin', PIN, '--label', 'L'], /SO-PIN/, 2],
    ['a user PIN too short', ['--so-pin', SO_PIN, '--pin', '12', '--label', 'L'], /PIN/, 2],
    ['no label', ['--so-pin', SO_PIN, '--pin', PIN], /needs --label/, 2],
    [
      'a label with a control character',
      ['--so-pin', SO_PIN, '--pin', PIN, '--label', 'a\u0007b'],
      /control/,
      2,
    ],
    ['a missing SO-PIN variable', ['--so-pin', 'env:NOPE', '--pin', PIN, '--label', 'L'], /NOPE/, 2],
    ['a missing share file', initWithShare('/nonexistent/s.pbe', 'x'), /dkek-share/, 5],
  ];
  for (const [name, args, msg, code] of bad) {
    it(name, async () => {
      const t = await fakeTools();
      const r = await cli(['sim', 'run', '--init', ...args, '--', 'true'], { env: { PATH: t.path } });
      expect(r.code, r.stderr).toBe(code);
      expect(r.stderr).toMatch(msg);
      expect(t.ran()).toBe(false);
      expect(r.stderr).not.toContain(PIN);
    });
  }
});

describe('sim run --init --dkek-share with a wrong --password', () => {
  it('is found before any card exists (the key derivation is host-side); --json gives the error document', async () => {
    const t = await fakeTools();
    const dir = await tempDir();
    const share = join(dir, 's.pbe');
    const made = await cli(['dkek', 'create', share, '--password', 'env:PW'], {
      env: { PW: 'correct-horse-battery' },
    });
    expect(made.code, made.stderr).toBe(0);
    const r = await cli(['sim', 'run', '--json', '--init', ...initWithShare(share, 'env:DP'), '--', 'true'], {
      env: { PATH: t.path, DP: 'wrong-horse-battery' },
    });
    expect(r.code, r.stderr).toBe(6);
    expect(r.json().error.code).toBe('WRONG_PASSWORD');
    expect(r.stderr).not.toContain('--init failed');
    expect(r.stderr).not.toContain('sim run: root');
    expect(t.ran()).toBe(false);
  });
});

describe('sim run --json: an --init that fails after init ran', () => {
  it('gives the failing command’s error document (a zero DKEK share: DKEK_DEGENERATE), exit its code', async () => {
    const t = await fakeTools();
    const dir = await tempDir();
    const share = join(dir, 'zero.pbe');
    await writeFile(share, await encryptDkekShare(new Uint8Array(32), 'zero-share-password'));
    const r = await cli(['sim', 'run', '--json', '--init', ...initWithShare(share, 'env:DP'), '--', 'true'], {
      env: { PATH: t.path, DP: 'zero-share-password' },
    });
    expect(r.code, r.stderr).not.toBe(0);
    const doc = r.json();
    expect(doc.error.code).toBe('DKEK_DEGENERATE');
    expect(doc.error.message).toContain('nothing was started');
    expect(t.ran()).toBe(false);
  });
});

describe('checkSimHost: what sim run lacks, with the Debian packages', () => {
  it('as root without the tools on PATH', async () => {
    const h = await checkSimHost({ PATH: '/nonexistent' }, 0);
    expect(h.mode).toBe('private');
    const text = h.problems.map((p) => `${p.what}: ${p.fix}`).join('\n');
    expect(text).toContain("'pcscd' is not on PATH: apt-get install pcscd");
    expect(text).toContain("'unshare' is not on PATH: apt-get install util-linux");
    expect(text).toContain("'ip' is not on PATH: apt-get install iproute2");
    expect(h.gives).toMatch(/quickack/);
  });

  it('without root: the system pcscd, its latency and sharing said', async () => {
    const h = await checkSimHost({ PATH: process.env.PATH }, 1000);
    expect(h.mode).toBe('system');
    expect(h.gives).toMatch(/44 ms/);
    expect(h.gives).toMatch(/shared/);
    const noSocket = !existsSync(PCSCD_SOCKET);
    expect(h.problems.some((p) => /no system pcscd is running/.test(p.what))).toBe(noSocket);
  });
});

describe('doctor', () => {
  it('checks what sim run needs, naming the Debian package of what is missing', async () => {
    const r = await cli(['doctor', '--json'], { env: { PATH: '/nonexistent' } });
    const check = r.json().checks.find((c: { name: string }) => c.name === 'sim run');
    expect(check).toBeDefined();
    if (process.getuid?.() === 0) {
      expect(check.status).toBe('warn');
      expect(check.fix).toContain('apt-get install pcscd');
    } else expect(check.detail).toMatch(/system|pcscd/);
  });
});

/**
 * `sim run` as a downstream CI job uses it: a real process (the bundled command), as root, with its
 * own private pcscd in namespaces (nested inside scripts/with-pcscd.sh's, which changes nothing
 * for it). Exit codes, teardown by pid after COMMAND or `sim run` itself is killed, two runs at
 * once, --init, and no secret in any child's command line or environment.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { cli, PASSWORD, PIN, SO_PIN, tempDir } from './cli-helpers.js';
import { buildCli, finished, ROOT, startCli } from './helpers/cli-process.js';
import { describePcsc, waitForCard } from './helpers/pcsc-env.js';

/** Host pids of every process below `root` (from /proc/PID/stat's ppid). */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(d), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [c, pp] of parent) {
      if (pp !== p) continue;
      out.push(c);
      walk(c);
    }
  };
  walk(root);
  return out;
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

async function until(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The private pcscd of a running `sim run` (a descendant named pcscd), once it is there. */
async function pcscdOf(child: ChildProcess): Promise<number> {
  let found = 0;
  await until('the private pcscd started', () => {
    found = descendants(child.pid!).find((p) => comm(p) === 'pcscd') ?? 0;
    return found !== 0;
  });
  return found;
}

/** `dkek create DIR/share.pbe --password env:PW` (PASSWORD); the share file's path. */
async function dkekShare(dir: string): Promise<string> {
  const share = join(dir, 'share.pbe');
  const made = await cli(['dkek', 'create', share, '--password', 'env:PW'], { env: { PW: PASSWORD } });
  expect(made.code, made.stderr).toBe(0);
  return share;
}

/** A COMMAND that says it runs (a file) and waits for the test to let it go (another file). */
function waiting(dir: string, tag: string, then = 'exit 0'): string[] {
  const started = join(dir, `${tag}.started`);
  const go = join(dir, `${tag}.go`);
  return [
    'sh',
    '-c',
    `opensc-tool -l > ${started}.tmp; mv ${started}.tmp ${started}; while [ ! -e ${go} ]; do sleep 0.05; done; ${then}`,
  ];
}

describePcsc('sim run (private pcscd as root)', () => {
  beforeAll(buildCli, 120_000);

  it('exits with COMMAND’s code and hands it the reader, the socket and the PKCS#11 module', async () => {
    const r = await finished(
      startCli([
        'sim',
        'run',
        '--',
        'sh',
        '-c',
        'echo "R=$SC_HSM_READER|S=$PCSCLITE_CSOCK_NAME|M=$SC_HSM_PKCS11_MODULE|X=$SC_HSM_SIM_RUN"; opensc-tool -l; exit 3',
      ]),
    );
    expect(r.code, r.stderr).toBe(3);
    expect(r.stdout).toContain(
      'R=Virtual PCD 00 00|S=/run/pcscd/pcscd.comm|M=/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so|X=private',
    );
    expect(r.stdout).toMatch(/0 +Yes +Virtual PCD 00 00/);
    expect(r.stderr).toContain('private pcscd');
  });

  it('--json: standard output holds just its document; COMMAND’s output goes to standard error', async () => {
    const r = await finished(
      startCli(['sim', 'run', '--json', '--', 'sh', '-c', 'echo hello; echo err >&2']),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ exitCode: 0, mode: 'private' });
    expect(r.stderr).toContain('hello\n');
    expect(r.stderr).toContain('err\n');
  });

  it('passes a multi-line script with control characters to COMMAND as it is', async () => {
    const r = await finished(
      startCli(['sim', 'run', '--', 'sh', '-c', 'printf "a\\tb\\n"\necho two\nexit 7']),
    );
    expect(r.code, r.stderr).toBe(7);
    expect(r.stdout).toBe('a\tb\ntwo\n');
  });

  it('exits 128+n when a signal ended COMMAND (143 for SIGTERM)', async () => {
    const r = await finished(startCli(['sim', 'run', '--', 'sh', '-c', 'kill -TERM $$']));
    expect(r.code, r.stderr).toBe(143);
  });

  it('COMMAND that does not exist: 127, as a shell says, and nothing left', async () => {
    const child = startCli(['sim', 'run', '--', '/nonexistent/command']);
    const r = await finished(child);
    expect(r.code, r.stderr).toBe(127);
    expect(r.stderr).toContain("cannot start COMMAND '/nonexistent/command': ENOENT");
  });

  it('COMMAND killed from outside: sim run exits 137 and its pcscd is gone', async () => {
    const dir = await tempDir();
    const child = startCli(['sim', 'run', '--', ...waiting(dir, 'k')]);
    const result = finished(child);
    const pcscd = await pcscdOf(child);
    await until('COMMAND started', () => existsSync(join(dir, 'k.started')));
    const sh = descendants(child.pid!).find((p) => comm(p) === 'sh');
    expect(sh).toBeDefined();
    process.kill(sh!, 'SIGKILL');
    const r = await result;
    expect(r.code, r.stderr).toBe(137);
    expect(alive(pcscd)).toBe(false);
  });

  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    it(`sim run itself killed (${sig}): COMMAND and pcscd end, none left over`, async () => {
      const dir = await tempDir();
      const child = startCli(['sim', 'run', '--', ...waiting(dir, sig)]);
      const result = finished(child);
      const pcscd = await pcscdOf(child);
      await until('COMMAND started', () => existsSync(join(dir, `${sig}.started`)));
      const all = descendants(child.pid!);
      child.kill(sig);
      const r = await result;
      if (sig === 'SIGTERM') expect(r.code, r.stderr).toBe(143);
      else expect(r.signal).toBe('SIGKILL');
      await until('every process of the run gone', () => !alive(pcscd) && all.every((p) => !alive(p)));
    });
  }

  it('SIGTERM while --init runs: exit 143, the temporary cards (PINs inside) removed', async () => {
    const dir = await tempDir();
    const tmp = await tempDir();
    const share = await dkekShare(dir);
    const child = startCli(
      [
        'sim',
        'run',
        '--init',
        '--so-pin',
        'env:SO',
        '--pin',
        'env:P',
        '--label',
        'X',
        '--dkek-share',
        share,
        '--password',
        'env:PW',
        '--',
        'true',
      ],
      { env: { SO: SO_PIN, P: PIN, PW: PASSWORD, TMPDIR: tmp } },
    );
    const result = finished(child);
    await until('a temporary card made', () =>
      readdirSync(tmp).some((d) => existsSync(join(tmp, d, 'card-0.json'))),
    );
    child.kill('SIGTERM');
    const r = await result;
    expect(r.code, r.stderr).toBe(143);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('sim run killed (SIGKILL) while COMMAND runs: its directory goes with the namespace', async () => {
    const dir = await tempDir();
    const tmp = await tempDir();
    const child = startCli(['sim', 'run', '--', ...waiting(dir, 'd')], { env: { TMPDIR: tmp } });
    const result = finished(child);
    await until('COMMAND started', () => existsSync(join(dir, 'd.started')));
    expect(readdirSync(tmp)).toHaveLength(1);
    child.kill('SIGKILL');
    await result;
    await until('the run directory removed', () => readdirSync(tmp).length === 0);
  });

  it('a held --state file names the host pid of sim run; its inner process killed: 137, said, lock released by the host', async () => {
    const dir = await tempDir();
    const state = join(dir, 'a.json');
    const made = await VirtualSmartCardHsm.open(state, { create: true });
    await made.save(state);
    await made.close();
    const child = startCli(['sim', 'run', '--state', state, '--', ...waiting(dir, 'h')]);
    const result = finished(child);
    await until('COMMAND started', () => existsSync(join(dir, 'h.started')));
    const held = await cli(['status', '--sim', state], { env: { SC_HSM_TS_LOCK_WAIT: '0' } });
    expect(held.code).toBe(4);
    expect(held.stderr).toContain(`in use by pid ${child.pid} (sc-hsm-ts sim run)`);
    const inner = descendants(child.pid!).find((p) => comm(p) === 'node');
    expect(inner).toBeDefined();
    process.kill(inner!, 'SIGKILL');
    const r = await result;
    expect(r.code, r.stderr).toBe(137);
    expect(r.stderr).toContain('inside the namespaces ended without COMMAND');
    // not left held in the name of the (live until now) host pid, nor stale for 30 s
    const after = await cli(['status', '--sim', state], { env: { SC_HSM_TS_LOCK_WAIT: '0' } });
    expect(after.code, after.stderr).toBe(0);
    expect(existsSync(`${state}.lock`)).toBe(false);
  });

  it('two runs at once are isolated: each sees only its own cards', async () => {
    const dir = await tempDir();
    const a = startCli(['sim', 'run', '--cards', '2', '--', ...waiting(dir, 'a')]);
    const b = startCli(['sim', 'run', '--', ...waiting(dir, 'b')]);
    const ra = finished(a);
    const rb = finished(b);
    await until(
      'both COMMANDs running',
      () => existsSync(join(dir, 'a.started')) && existsSync(join(dir, 'b.started')),
      30_000,
    );
    await writeFile(join(dir, 'a.go'), '');
    await writeFile(join(dir, 'b.go'), '');
    expect((await ra).code).toBe(0);
    expect((await rb).code).toBe(0);
    const la = readFileSync(join(dir, 'a.started'), 'utf8');
    const lb = readFileSync(join(dir, 'b.started'), 'utf8');
    expect(la).toMatch(/0 +Yes +Virtual PCD 00 00/);
    expect(la).toMatch(/1 +Yes +Virtual PCD 00 01/);
    expect(lb).toMatch(/0 +Yes +Virtual PCD 00 00/);
    expect(lb).toMatch(/1 +No +Virtual PCD 00 01/);
  });

  it('--init: COMMAND finds an initialized device; no secret nor stale kit variable in any child’s command line or environment', async () => {
    const dir = await tempDir();
    const child = startCli(
      [
        'sim',
        'run',
        '--init',
        '--so-pin',
        SO_PIN,
        '--pin',
        'env:RUN_PIN',
        '--label',
        'CI-HSM',
        '--',
        ...waiting(dir, 'i', 'pkcs11-tool --module "$SC_HSM_PKCS11_MODULE" -L'),
      ],
      { env: { RUN_PIN: PIN, SC_HSM_READER_1: 'stale reader' } },
    );
    const result = finished(child);
    await until('COMMAND started', () => existsSync(join(dir, 'i.started')), 30_000);
    const kids = descendants(child.pid!);
    expect(kids.length).toBeGreaterThanOrEqual(3);
    for (const p of kids) {
      let cmdline = '';
      let environ = '';
      try {
        cmdline = readFileSync(`/proc/${p}/cmdline`, 'utf8');
        environ = readFileSync(`/proc/${p}/environ`, 'utf8');
      } catch {
        continue;
      }
      expect(cmdline, `pid ${p} (${comm(p)})`).not.toContain(SO_PIN);
      expect(cmdline).not.toContain(PIN);
      expect(environ, `pid ${p} (${comm(p)})`).not.toContain(SO_PIN);
      // RUN_PIN, named by --pin env:RUN_PIN, is taken out of every child's environment
      expect(environ.split('\0').filter((e) => e.includes(PIN))).toEqual([]);
      expect(environ).not.toContain('stale reader');
      if (comm(p) === 'pcscd')
        expect(environ.split('\0').filter(Boolean)).toEqual([`PATH=${process.env.PATH}`]);
    }
    await writeFile(join(dir, 'i.go'), '');
    const r = await result;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('CI-HSM');
    expect(r.stderr).not.toContain(SO_PIN);
  });

  it('--init --dkek-share: both fresh cards get the same DKEK (the share imported into each)', async () => {
    const dir = await tempDir();
    const share = await dkekShare(dir);
    const r = await finished(
      startCli(
        [
          'sim',
          'run',
          '--cards',
          '2',
          '--init',
          '--so-pin',
          'env:SO',
          '--pin',
          'env:P',
          '--label',
          'TWO',
          '--dkek-share',
          share,
          '--password',
          'env:PW',
          '--',
          'sh',
          '-c',
          'sc-hsm-tool -r 0; sc-hsm-tool -r 1',
        ],
        { env: { SO: SO_PIN, P: PIN, PW: PASSWORD } },
      ),
    );
    expect(r.code, r.stderr).toBe(0);
    const kcvs = [...r.stdout.matchAll(/DKEK key check value : ([0-9A-F]{16})/g)].map((m) => m[1]);
    expect(kcvs).toHaveLength(2);
    expect(kcvs[0]).toBe(kcvs[1]);
    expect(kcvs[0]).not.toBe('0000000000000000');
    expect(r.stderr).not.toContain(PASSWORD);
  });

  // nobody must be able to read the checkout (not so under a 0700 home): else said loudly, not run
  const nobodyReads =
    spawnSync('setpriv', [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      'test',
      '-r',
      join(ROOT, 'src/cli/main.ts'),
    ]).status === 0;
  if (!nobodyReads) console.warn(`*** sim run without root NOT TESTED: user nobody cannot read ${ROOT} ***`);
  it.runIf(nobodyReads)(
    'not root: the system pcscd (here the one of with-pcscd.sh), said so; the card is gone afterwards',
    async () => {
      // as nobody: the same command, from the sources (the test bundle lives under root's cache)
      const r = await finished(
        spawn(
          'setpriv',
          [
            '--reuid=65534',
            '--regid=65534',
            '--clear-groups',
            process.execPath,
            '--import',
            'tsx',
            join(ROOT, 'src/cli/main.ts'),
            'sim',
            'run',
            '--',
            'sh',
            '-c',
            'echo "mode=$SC_HSM_SIM_RUN host=$VPCD_HOST"; opensc-tool -l; exit 4',
          ],
          { cwd: ROOT, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/tmp' } },
        ),
      );
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toContain('not root: the system');
      expect(r.stderr).toContain('44 ms');
      expect(r.stdout).toContain('mode=system host=127.0.0.1');
      expect(r.stdout).toMatch(/0 +Yes +Virtual PCD 00 00/);
      await waitForCard('Virtual PCD 00 00', false);
    },
  );

  it('says what it lacks before anything starts (PATH without pcscd): the Debian package, exit 4', async () => {
    const r = await finished(startCli(['sim', 'run', '--', 'true'], { env: { PATH: '/nonexistent' } }));
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("'pcscd' is not on PATH: apt-get install pcscd");
    expect(r.stderr).toContain('apt-get install iproute2');
  });
});

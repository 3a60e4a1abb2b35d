/**
 * `sim run` findings of a new user's pass, through its private pcscd (root): `--profile FILE` is
 * what COMMAND waits for (a lower bound on the modelled time, not a speed target), sim run killed
 * with SIGKILL during --init leaves no directory with the fresh cards' secrets, `--cards 0` prints
 * no empty line, an outer SC_HSM_PKCS11_MODULE is dropped like the kit's other variables, and
 * without root (as nobody, beside the namespace's pcscd) a SIGKILL while COMMAND runs leaves no directory.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { NITROKEY_HSM2, type TimingProfile } from '../src/sim/index.js';
import { cli, PASSWORD, PIN, SO_PIN, tempDir } from './cli-helpers.js';
import { buildCli, finished, ROOT, startCli } from './helpers/cli-process.js';
import { describePcsc, waitForCard } from './helpers/pcsc-env.js';

async function until(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describePcsc('sim run: what a new user tried (private pcscd as root)', () => {
  beforeAll(buildCli, 120_000);

  it('--profile FILE: N APDUs of COMMAND through pcscd take at least N × its per-APDU cost', async () => {
    const dir = await tempDir();
    const p = structuredClone(NITROKEY_HSM2) as TimingProfile;
    p.name = 'slow';
    p.transfer.fixedMs = 200;
    const file = join(dir, 'slow.json');
    await writeFile(file, JSON.stringify(p));
    const n = 5;
    const apdus = Array.from({ length: n }, () => '-s 0084000008').join(' ');
    const r = await finished(
      startCli([
        'sim',
        'run',
        '--profile',
        file,
        '--',
        'sh',
        '-c',
        `a=$(date +%s%N); opensc-tool -r "$SC_HSM_READER" ${apdus} >/dev/null || exit 9; b=$(date +%s%N); echo "MS=$(( (b - a) / 1000000 ))"`,
      ]),
    );
    expect(r.code, r.stderr).toBe(0);
    const ms = Number(/MS=(\d+)/.exec(r.stdout)?.[1]);
    expect(ms).toBeGreaterThanOrEqual(n * 200);
  }, 60_000);

  it('SIGKILL while --init runs: the directory with the fresh cards (PINs, DKEK, keys) is removed', async () => {
    const dir = await tempDir();
    const tmp = await tempDir();
    const share = join(dir, 'share.pbe');
    const made = await cli(['dkek', 'create', share, '--password', 'env:PW'], { env: { PW: PASSWORD } });
    expect(made.code, made.stderr).toBe(0);
    const child = startCli(
      [
        ...['sim', 'run', '--init', '--so-pin', 'env:SO', '--pin', 'env:P', '--label', 'X'],
        ...['--dkek-share', share, '--password', 'env:PW', '--', 'true'],
      ],
      { env: { SO: SO_PIN, P: PIN, PW: PASSWORD, TMPDIR: tmp } },
    );
    const result = finished(child);
    await until(
      'a fresh card made',
      () => readdirSync(tmp).some((d) => existsSync(join(tmp, d, 'card-0.json'))),
      60_000,
    );
    child.kill('SIGKILL');
    expect((await result).signal).toBe('SIGKILL');
    await until('the run directory removed', () => readdirSync(tmp).length === 0);
  }, 120_000);

  it('--cards 0: no empty line; an outer SC_HSM_PKCS11_MODULE is not passed on', async () => {
    const r = await finished(
      startCli(['sim', 'run', '--cards', '0', '--', 'sh', '-c', 'echo "M=$SC_HSM_PKCS11_MODULE"'], {
        env: { SC_HSM_PKCS11_MODULE: '/bin/sh' },
      }),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/^sim run: *$/m);
    expect(r.stdout).not.toContain('M=/bin/sh');
    expect(r.stdout).toMatch(/^M=(\/.*opensc-pkcs11\.so)?$/m);
  }, 60_000);

  it('without root (the system pcscd), SIGKILL while COMMAND runs: the run directory is removed', async () => {
    // a directory every user may write: the run's TMPDIR and COMMAND's marker
    const tmp = await tempDir();
    await chmod(tmp, 0o1777);
    const runs = join(tmp, 'runs');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(runs, { mode: 0o1777 });
    await chmod(runs, 0o1777);
    const marker = join(tmp, 'command.pid');
    await waitForCard('Virtual PCD 00 00', false, 30_000);
    const child = spawn(
      process.execPath,
      [
        ...['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'sim', 'run', '--cards', '1', '--'],
        ...['sh', '-c', `echo $$ > ${marker}.tmp && mv ${marker}.tmp ${marker}; exec sleep 120`],
      ],
      {
        cwd: ROOT,
        uid: 65534,
        gid: 65534,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmp, TMPDIR: runs },
        // COMMAND outlives a killed sim run here (nothing of ours can stop it): no pipes to wait on
        stdio: 'ignore',
      },
    );
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_, sig) => r(sig)));
    let commandPid = 0;
    try {
      await until('COMMAND started', () => existsSync(marker), 60_000);
      commandPid = Number(readFileSync(marker, 'utf8'));
      const dirs = readdirSync(runs).filter((d) => d.startsWith('sc-hsm-ts-sim-run-'));
      expect(dirs).toHaveLength(1);
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      await until('the run directory removed', () => !existsSync(join(runs, dirs[0]!)));
    } finally {
      child.kill('SIGKILL');
      if (commandPid) process.kill(commandPid, 'SIGKILL');
    }
    await waitForCard('Virtual PCD 00 00', false, 30_000);
  }, 120_000);
});

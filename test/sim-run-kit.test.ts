/**
 * Findings of a new user's pass on the test kit (`sim run`, `sc-hsm-ts/testing`) that need no
 * pcscd: the vpcd wrapper of `sim run`/`startPcscCard` keeps a timing profile's waiting, the run
 * directory cannot outlive `sim run`, and the usage errors name the option. Through pcscd:
 * test/sim-run.pcsc.test.ts, test/testing-kit-slots.pcsc.test.ts.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { guardRunDir, RUN_DIR_PREFIX, watched } from '../src/cli/commands/sim/run-cards.js';
import { NITROKEY_HSM2, type TimingProfile, VirtualSmartCardHsm } from '../src/sim/index.js';
import { fromHex } from '../src/util/bytes.js';
import { tempDir } from './cli-helpers.js';
import { ROOT } from './helpers/cli-process.js';

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The real device's profile with a per-APDU cost of `fixedMs` on top. */
function slowProfile(fixedMs: number): TimingProfile {
  const p = structuredClone(NITROKEY_HSM2) as TimingProfile;
  p.transfer.fixedMs = fixedMs;
  return p;
}

describe('the vpcd wrapper of sim run and startPcscCard (watched)', () => {
  it('passes on the card’s answerReady: --profile and card.profile reach vpcd', async () => {
    const card = new VirtualSmartCardHsm();
    const w = watched(card);
    // a profile set after plugging in (startPcscCard's caller) counts too
    card.profile = slowProfile(1e6);
    w.card.process(fromHex('00A4040C0BE82B0601040181C31F0201'));
    const ready = w.card.answerReady?.();
    expect(ready).toBeInstanceOf(Promise);
    // consumed: the next answer without an APDU waits for nothing
    expect(w.card.answerReady?.()).toBeUndefined();
    card.profile = undefined;
    w.card.process(fromHex('0084000008'));
    expect(w.card.answerReady?.()).toBeUndefined();
    await card.close();
  });
});

describe('the run directory cannot outlive sim run (guardRunDir)', () => {
  it('the process that made it killed with SIGKILL: the guardian removes it (card file inside)', async () => {
    const dir = join(await tempDir(), `${RUN_DIR_PREFIX}x`);
    await mkdir(dir);
    await writeFile(join(dir, 'card-0.json'), '{}');
    const code = `import { guardRunDir } from ${JSON.stringify(join(ROOT, 'src/cli/commands/sim/run-cards.ts'))};
guardRunDir(${JSON.stringify(dir)});
console.log('guarded');
setInterval(() => undefined, 1000);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d.toString();
    });
    await until('the guardian started', () => out.includes('guarded'), 20_000);
    expect(existsSync(join(dir, 'card-0.json'))).toBe(true);
    const ended = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await ended;
    await until('the directory removed', () => !existsSync(dir));
  }, 30_000);

  it('released while the process lives: the directory goes, the process is not held', async () => {
    const dir = join(await tempDir(), `${RUN_DIR_PREFIX}y`);
    await mkdir(dir);
    process.env.KIT1_TEST_SECRET = 'not-for-the-guardian';
    const release = guardRunDir(dir);
    delete process.env.KIT1_TEST_SECRET;
    expect(existsSync(dir)).toBe(true);
    // the guardian: no child of this process, and none of its environment (the --init secrets are there)
    let guardian: string | undefined;
    await until('the guardian runs', () => {
      guardian = readdirSync('/proc').find((d) => {
        if (!/^\d+$/.test(d)) return false;
        try {
          return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(dir);
        } catch {
          return false;
        }
      });
      return guardian !== undefined;
    });
    const stat = readFileSync(`/proc/${guardian}/stat`, 'utf8');
    expect(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])).not.toBe(process.pid);
    expect(readFileSync(`/proc/${guardian}/environ`, 'utf8').split('\0').filter(Boolean)).toEqual([
      'PATH=/usr/bin:/bin',
    ]);
    release();
    await until('the directory removed', () => !existsSync(dir));
  });

  it('guards nothing but a sim run directory', async () => {
    const plain = await tempDir();
    expect(() => guardRunDir(plain)).toThrow(/not a sim run directory/);
    expect(existsSync(plain)).toBe(true);
  });
});

describe('README: the example commands run as written', () => {
  it('every env: secret is set on the command line, and an app that reads PIN gets PIN', async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const rows = [...readme.matchAll(/^\| `([\w-]+)` \| `([^`]*sim run[^`]*)` \|/gm)];
    expect(rows.map((r) => r[1])).toEqual(['pkcs11-node', 'openssl-engine', 'provision', 'vitest-app']);
    for (const [, name, command] of rows) {
      const set = new Set([...command!.matchAll(/(?:^| )([A-Z_]+)=/g)].map((m) => m[1]));
      for (const [, v] of command!.matchAll(/env:([A-Z_]+)/g)) expect(set, `${name}: ${v}`).toContain(v);
      const dir = join(ROOT, 'examples', name!);
      const sources = await Promise.all(
        readdirSync(dir)
          .filter((f) => /\.(mjs|sh)$/.test(f))
          .map((f) => readFile(join(dir, f), 'utf8')),
      );
      // needs PIN (provision.sh has a default: ${PIN:-…})
      const readsPin = sources.some((t) => /process\.env\.PIN\b|\$\{PIN:\?/.test(t));
      if (readsPin) expect(set, `${name} reads PIN`).toContain('PIN');
      // what sim run strips (the names its env: secrets give) is not what the app reads
      for (const [, v] of command!.matchAll(/env:([A-Z_]+)/g)) expect(v).not.toBe('PIN');
    }
  });
});

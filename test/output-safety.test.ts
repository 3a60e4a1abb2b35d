/**
 * Outputs never destroy files and never lose work (issue #10 §4, §5): a closed standard output ends
 * a command quietly with its work kept; `--trace` refuses an existing file, writes `-`, devices and
 * FIFOs in place; files that must not replace another are created exclusively at the final step.
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  createReadStream,
  existsSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { lockStateFile } from '../src/sim/state-lock.js';
import { writeAtomicExclusive } from '../src/util/host-files.js';
import { cli, ENV, tempDir } from './cli-helpers.js';
import { buildCli, finished, runCliProcess, startCli, stderrSays } from './helpers/cli-process.js';

let dir: string;
/** Initialized with one DKEK share (imported), an EC key at ref 1. */
let base: string;

beforeAll(async () => {
  await buildCli();
  dir = await tempDir();
  base = join(dir, 'base.json');
  const share = join(dir, 'share.pbe');
  const env = { ...ENV };
  for (const args of [
    ['dkek', 'create', share, '--password', 'env:PW'],
    [
      'init',
      '--sim',
      base,
      '--so-pin',
      'env:SO_PIN',
      '--pin',
      'env:PIN',
      '--label',
      'Out',
      '--dkek-shares',
      '1',
      '--yes',
    ],
    ['dkek', 'import', share, '--sim', base, '--password', 'env:PW'],
    ['keygen', '--sim', base, '--type', 'ec:prime256v1', '--label', 'k', '--pin', 'env:PIN'],
  ]) {
    const r = await cli(args, { env });
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  }
}, 120_000);

function copyOfBase(name: string): string {
  const f = join(dir, name);
  writeFileSync(f, readFileSync(base), { mode: 0o600 });
  return f;
}

function userPinTries(f: string): number {
  return JSON.parse(readFileSync(f, 'utf8')).userPinTries;
}

/**
 * A write end of a pipe whose reader is gone: every write to it fails with EPIPE, from the first
 * byte on (a FIFO opened read-write, then for writing, then the read-write end closed).
 */
function closedPipe(name: string): number {
  const p = join(dir, name);
  execFileSync('mkfifo', [p]);
  const rw = openSync(p, 'r+');
  const w = openSync(p, 'w');
  closeSync(rw);
  return w;
}

describe('a closed standard output (| head)', () => {
  it('keygen: quiet, exit 141, the key is kept', async () => {
    const f = copyOfBase('epipe-keygen.json');
    const fd = closedPipe('keygen.fifo');
    const r = await runCliProcess(
      ['keygen', '--sim', f, '--type', 'ec:prime256v1', '--label', 'piped', '--pin', 'env:PIN'],
      { env: ENV, stdio: ['ignore', fd, 'pipe'] },
    );
    closeSync(fd);
    expect(r.code, r.stderr).toBe(141);
    expect(r.stderr).not.toMatch(/EPIPE|\n\s+at /);
    const keys = await cli(['keys', '--sim', f, '--json']);
    expect(
      keys
        .json()
        .keys.map((k: { label: string }) => k.label)
        .sort(),
    ).toEqual(['k', 'piped']);
  });

  it('init: quiet, exit 141, the device is initialized', async () => {
    const f = join(dir, 'epipe-init.json');
    const fd = closedPipe('init.fifo');
    const r = await runCliProcess(
      ['init', '--sim', f, '--so-pin', 'env:SO_PIN', '--pin', 'env:PIN', '--label', 'P', '--yes'],
      { env: ENV, stdio: ['ignore', fd, 'pipe'] },
    );
    closeSync(fd);
    expect(r.code, r.stderr).toBe(141);
    expect(r.stderr).not.toMatch(/EPIPE|\n\s+at /);
    expect((await cli(['status', '--sim', f, '--json'])).json()).toMatchObject({
      initialized: true,
      label: 'P',
    });
  });

  it('a failing command keeps its own exit code and message', async () => {
    const fd = closedPipe('fail.fifo');
    const r = await runCliProcess(['keys', '--sim', join(dir, 'nothing.json')], {
      stdio: ['ignore', fd, 'pipe'],
    });
    closeSync(fd);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain('does not exist');
  });
});

describe('--trace', () => {
  it('refuses an existing file before anything is sent: its bytes and mode are kept', async () => {
    const f = copyOfBase('trace-refused.json');
    const victim = join(dir, 'precious.pbe');
    writeFileSync(victim, 'a share file', { mode: 0o600 });
    const r = await cli(['pin', 'verify', '--sim', f, '--pin', '111111', '--trace', victim, '--json']);
    expect(r.code).toBe(7);
    expect(r.json().error.code).toBe('FILE_EXISTS');
    expect(r.json().error.fix).toContain('--trace-overwrite');
    expect(readFileSync(victim, 'utf8')).toBe('a share file');
    expect(statSync(victim).mode & 0o777).toBe(0o600);
    expect(userPinTries(f)).toBe(3);
  });

  it('never the --sim state file itself, not even forced (nor a forced wrap --out)', async () => {
    const f = copyOfBase('trace-self.json');
    const before = readFileSync(f);
    const t = await cli(['keys', '--sim', f, '--trace', f, '--trace-overwrite', '--json']);
    expect(t.code).toBe(2);
    expect(t.json().error.message).toContain('state file of the virtual device');
    const w = await cli(
      ['wrap', '--sim', f, '--key-ref', '1', '--out', f, '--force', '--pin', 'env:PIN', '--json'],
      { env: ENV },
    );
    expect(w.code).toBe(2);
    expect(readFileSync(f)).toEqual(before);
  });

  it('never a file the command writes or reads: refused before anything is sent, also forced', async () => {
    const f = copyOfBase('trace-same.json');
    const out = join(dir, 'same.bin');
    for (const extra of [[], ['--force', '--trace-overwrite']]) {
      const w = await cli(
        [
          'wrap',
          '--sim',
          f,
          '--key-ref',
          '1',
          '--out',
          out,
          '--trace',
          out,
          ...extra,
          '--pin',
          'env:PIN',
          '--json',
        ],
        { env: ENV },
      );
      expect(w.code, extra.join(' ')).toBe(2);
      expect(w.json().error.code).toBe('USAGE_ERROR');
      expect(w.json().error.message).toMatch(
        /--trace .*same\.bin is the same file as --out .*Nothing was sent/,
      );
      expect(w.json().error.fix).toMatch(/another file for --trace/);
      expect(existsSync(out)).toBe(false);
    }
    // the same file by another name (./, a symbolic link)
    const viaDot = await cli(
      ['wrap', '--sim', f, '--key-ref', '1', '--out', out, '--trace', join(dir, '.', 'same.bin'), '--json'],
      { env: ENV },
    );
    expect(viaDot.code).toBe(2);
    const input = join(dir, 'in.bin');
    writeFileSync(input, 'wrapped key', { mode: 0o600 });
    const link = join(dir, 'in-link.bin');
    symlinkSync(input, link);
    const u = await cli(['unwrap', input, '--sim', f, '--trace', link, '--trace-overwrite', '--json']);
    expect(u.code).toBe(2);
    expect(u.json().error.message).toMatch(/is the same file as the argument/);
    expect(readFileSync(input, 'utf8')).toBe('wrapped key');
    // a file: secret
    const pinFile = join(dir, 'pin.txt');
    writeFileSync(pinFile, `${ENV.PIN}\n`, { mode: 0o600 });
    const p = await cli([
      'pin',
      'verify',
      '--sim',
      f,
      '--pin',
      `file:${pinFile}`,
      '--trace',
      pinFile,
      '--trace-overwrite',
    ]);
    expect(p.code).toBe(2);
    expect(readFileSync(pinFile, 'utf8')).toBe(`${ENV.PIN}\n`);
    // inside the directory a backup writes; the share file of dkek create
    const b = await cli([
      'backup',
      join(dir, 'bk'),
      '--sim',
      f,
      '--trace',
      join(dir, 'bk', 'manifest.json'),
      '--json',
    ]);
    expect(b.code).toBe(2);
    expect(b.json().error.message).toMatch(/inside the directory .*bk that backup writes into/);
    const share = join(dir, 'trace-share.pbe');
    const c = await cli(['dkek', 'create', share, '--trace', share, '--password', 'env:PW', '--json'], {
      env: ENV,
    });
    expect(c.code).toBe(2);
    expect(existsSync(share)).toBe(false);
    expect(userPinTries(f)).toBe(3);
  });

  it('a trace file that appears while the command runs is kept; the fix names --trace-overwrite, not --force', async () => {
    const f = copyOfBase('trace-appears.json');
    const t = join(dir, 'appears.apdu');
    // this test holds the state file: the command checks its trace path, then waits for the card
    const held = await lockStateFile(f);
    const child = startCli(['keys', '--sim', f, '--trace', t, '--json']);
    const done = finished(child);
    await stderrSays(child, 'waiting for');
    writeFileSync(t, 'someone else');
    await held.release();
    const r = await done;
    expect(r.code).toBe(7);
    const e = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{\n  "error"'))).error;
    expect(e.code).toBe('FILE_EXISTS');
    expect(e.fix).toContain('--trace-overwrite');
    expect(e.fix).not.toMatch(/--force/);
    expect(readFileSync(t, 'utf8')).toBe('someone else');
  });

  it('--trace-overwrite replaces it, keeping its mode', async () => {
    const f = copyOfBase('trace-over.json');
    const t = join(dir, 'old.apdu');
    writeFileSync(t, 'old', { mode: 0o640 });
    const r = await cli(['keys', '--sim', f, '--trace', t, '--trace-overwrite']);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(t, 'utf8')).toMatch(/^# sc-hsm-ts/);
    expect(statSync(t).mode & 0o777).toBe(0o640);
  });

  it('a new file is created 0600, with the PIN masked', async () => {
    const f = copyOfBase('trace-new.json');
    const t = join(dir, 'new.apdu');
    const r = await cli(['pin', 'verify', '--sim', f, '--pin', 'env:PIN', '--trace', t], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(t).mode & 0o777).toBe(0o600);
    expect(readFileSync(t, 'utf8')).toContain('=> 00200081');
    expect(readFileSync(t, 'utf8')).not.toContain(Buffer.from(ENV.PIN).toString('hex'));
  });

  it('- is standard error (no file named -)', async () => {
    const f = copyOfBase('trace-dash.json');
    const r = await cli(['keys', '--sim', f, '--trace', '-']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('# sc-hsm-ts virtual:');
    expect(r.stderr).toContain('=> 00a4');
    expect(existsSync(join(process.cwd(), '-'))).toBe(false);
  });

  it('a FIFO is written in place', async () => {
    const f = copyOfBase('trace-fifo.json');
    const fifo = join(dir, 'trace.fifo');
    execFileSync('mkfifo', [fifo]);
    let got = '';
    const reader = createReadStream(fifo);
    reader.on('data', (d) => {
      got += d.toString();
    });
    const ended = new Promise<void>((r) => reader.on('end', () => r()));
    const r = await cli(['keys', '--sim', f, '--trace', fifo]);
    expect(r.code, r.stderr).toBe(0);
    await ended;
    expect(got).toContain('=> 00a4');
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });

  it('a link to /proc/self/fd/2 (what /dev/stderr is) stays a link: the stream gets the transcript', async () => {
    const f = copyOfBase('trace-link.json');
    const link = join(dir, 'stderr-link');
    symlinkSync('/proc/self/fd/2', link);
    const r = await runCliProcess(['keys', '--sim', f, '--trace', link]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('=> 00a4');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
  });
});

describe('files that must not replace another are created exclusively at the final step', () => {
  it('writeAtomicExclusive: of concurrent writers exactly one wins; nothing replaced, no temp left', async () => {
    const d = join(dir, 'excl');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(d);
    const p = join(d, 'out.bin');
    const results = await Promise.allSettled(
      [0, 1, 2, 3, 4].map((i) => writeAtomicExclusive(p, `writer ${i}`, 0o600, 'output file')),
    );
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    expect(won).toHaveLength(1);
    for (const r of results)
      if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'FILE_EXISTS' });
    expect(readFileSync(p, 'utf8')).toBe(`writer ${won[0]}`);
    expect(statSync(p).mode & 0o777).toBe(0o600);
    expect(readdirSync(d)).toEqual(['out.bin']);
  });

  it('wrap --out: a file that appeared while the card wrapped is kept, the command says so', async () => {
    const f = copyOfBase('wrap-race.json');
    const out = join(dir, 'raced.bin');
    const real = SmartCardHsm.prototype.backupKey;
    const spy = vi.spyOn(SmartCardHsm.prototype, 'backupKey').mockImplementation(async function (
      this: SmartCardHsm,
      ...args: Parameters<SmartCardHsm['backupKey']>
    ) {
      const bin = await real.apply(this, args);
      writeFileSync(out, 'written meanwhile by another process');
      return bin;
    });
    try {
      const r = await cli(
        ['wrap', '--sim', f, '--key-ref', '1', '--out', out, '--pin', 'env:PIN', '--json'],
        {
          env: ENV,
        },
      );
      expect(r.code).toBe(7);
      expect(r.json().error.code).toBe('FILE_EXISTS');
    } finally {
      spy.mockRestore();
    }
    expect(readFileSync(out, 'utf8')).toBe('written meanwhile by another process');
  });

  it('cert self-sign --out: a file that appeared while the card signed is kept', async () => {
    const f = copyOfBase('cert-race.json');
    const out = join(dir, 'raced.pem');
    const real = SmartCardHsm.prototype.sign;
    const spy = vi.spyOn(SmartCardHsm.prototype, 'sign').mockImplementation(async function (
      this: SmartCardHsm,
      ...args: Parameters<SmartCardHsm['sign']>
    ) {
      const sig = await real.apply(this, args);
      writeFileSync(out, 'written meanwhile by another process');
      return sig;
    });
    try {
      const r = await cli(
        ['cert', 'self-sign', '--sim', f, '--key-ref', '1', '--subject', 'CN=race', '--days', '30'].concat([
          '--out',
          out,
          '--pin',
          'env:PIN',
          '--json',
        ]),
        { env: ENV },
      );
      expect(spy).toHaveBeenCalled();
      expect(r.code, r.stdout).toBe(7);
      expect(r.json().error.code).toBe('FILE_EXISTS');
    } finally {
      spy.mockRestore();
    }
    expect(readFileSync(out, 'utf8')).toBe('written meanwhile by another process');
  });

  it('two concurrent `wrapped export … --out F`: one PEM file, the other command fails (created exclusively after the share KDF)', async () => {
    const f = copyOfBase('export-race.json');
    const bin = join(dir, 'export-race.bin');
    const w = await cli(['wrap', '--sim', f, '--key-ref', '1', '--out', bin, '--pin', 'env:PIN'], {
      env: ENV,
    });
    expect(w.code, w.stderr).toBe(0);
    const out = join(dir, 'export-race.pem');
    const args = ['wrapped', 'export', bin, '--dkek', join(dir, 'share.pbe'), '--password', 'env:PW'].concat([
      '--out',
      out,
      '--i-understand-this-exports-a-private-key',
      '--json',
    ]);
    const runs = await Promise.all([0, 1].map(() => runCliProcess(args, { env: { PW: ENV.PW! } })));
    const codes = runs.map((r) => r.code).sort();
    expect(codes, runs.map((r) => r.stderr).join('\n')).toEqual([0, 7]);
    expect(runs.find((r) => r.code === 7)!.json().error.code).toBe('FILE_EXISTS');
    expect(readFileSync(out, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  }, 180_000);

  it('--out, a created file or a backup directory that is the --sim state file or its companions is refused before anything is sent, also with --force', async () => {
    const f = copyOfBase('out-on-state.json');
    const before = readFileSync(f);
    const link = join(dir, 'out-on-state-link.json');
    symlinkSync(f, link);
    const cert = ['--key-ref', '1', '--pin', 'env:PIN', '--force', '--json'];
    const attempts: string[][] = [
      ['csr', '--sim', f, '--subject', 'CN=x', ...cert, '--out', f],
      ['cert', 'self-sign', '--sim', f, '--subject', 'CN=x', '--days', '2', ...cert, '--out', f],
      ['cert', 'export', '--sim', f, '--key-ref', '1', '--force', '--json', '--out', link],
      ['--sim', f, 'csr', '--subject', 'CN=x', ...cert, '--out', `${dir}/./out-on-state.json`],
      ['csr', '--sim', f, '--subject', 'CN=x', ...cert, '--out', `${f}.lock.holder`],
      ['csr', '--sim', f, '--subject', 'CN=x', ...cert, '--out', `${f}.dkek-import.json`],
      ['wrap', '--sim', f, '--key-ref', '1', '--pin', 'env:PIN', '--force', '--json', '--out', f],
      ['backup', `${f}.lock`, '--sim', f, '--pin', 'env:PIN', '--json'],
    ];
    for (const argv of attempts) {
      const r = await cli(argv, { env: ENV });
      expect(r.code, `${argv.join(' ')}: ${r.stdout}`).toBe(2);
      expect(r.json().error.code).toBe('USAGE_ERROR');
      expect(r.json().error.message).toMatch(/state file|beside its state file/);
    }
    expect(readFileSync(f).equals(before)).toBe(true);
    expect(userPinTries(f)).toBe(3);
  });

  it('two concurrent `dkek create F`: one share file, the other command fails; the file is the winner’s', async () => {
    const share = join(dir, 'race.pbe');
    const pw = ['first-password', 'second-password'];
    const runs = await Promise.all(
      pw.map((p) =>
        runCliProcess(['dkek', 'create', share, '--password', 'env:PW', '--json'], { env: { PW: p } }),
      ),
    );
    const winners = runs.flatMap((r, i) => (r.code === 0 ? [i] : []));
    expect(winners, runs.map((r) => r.stderr).join('\n')).toHaveLength(1);
    const loser = runs[1 - winners[0]!]!;
    expect(loser.code).toBe(7);
    expect(loser.json().error.code).toBe('FILE_EXISTS');
    const inspect = await cli(['dkek', 'inspect', share, '--password', 'env:PW', '--json'], {
      env: { PW: pw[winners[0]!]! },
    });
    expect(inspect.code, inspect.stderr).toBe(0);
    expect(inspect.json().kcv).toBe(runs[winners[0]!]!.json().kcv);
  }, 180_000);
});

/**
 * End to end: `sim run --state FILE -- COMMAND` where COMMAND names the same FILE with --sim. The
 * file is sim run's (its pid is a host pid, hidden in its PID namespace): COMMAND is told that
 * sim run holds it and to use the reader, never "no longer running" with `rmdir FILE.lock`
 * (hostile-pass finding: following that advice gives the file two holders).
 */
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { blankDevice, tempDir } from './cli-helpers.js';
import { buildCli, finished, ROOT, startCli } from './helpers/cli-process.js';
import { describePcsc } from './helpers/pcsc-env.js';

describePcsc('sim run: COMMAND given the same state file with --sim', () => {
  beforeAll(buildCli, 120_000);

  it('is told the file is held by sim run and to use --reader "$SC_HSM_READER"', async () => {
    const dir = await tempDir();
    const state = await blankDevice(join(dir, 'sr.json'));
    const inner = `"${process.execPath}" --import tsx "${join(ROOT, 'src/cli/main.ts')}"`;
    const r = await finished(
      startCli([
        'sim',
        'run',
        '--state',
        state,
        '--',
        'sh',
        '-c',
        `SC_HSM_TS_LOCK_WAIT=0 ${inner} keys --sim "${state}" --json; echo "rc=$?"`,
      ]),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/rc=4\b/);
    const error = JSON.parse(r.stdout.slice(0, r.stdout.indexOf('rc='))).error;
    expect(error.code).toBe('READER_BUSY');
    expect(error.message).toContain('held by `sim run`');
    expect(error.message).not.toMatch(/no longer running/);
    expect(error.fix).toContain('--reader "$SC_HSM_READER"');
    expect(error.fix).not.toMatch(/rmdir/);
  }, 120_000);
});

/**
 * The lock message inside `sim run`: its COMMAND (SC_HSM_SIM_RUN set) that names the card with
 * --sim finds the file held by sim run, whose recorded pid is a host pid invisible in sim run's PID
 * namespace. It is told the truth (held by sim run; use the reader), never "no longer running" nor
 * `rmdir FILE.lock` (following that would give the file two holders). Hostile-pass finding.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isScHsmError } from '../src/errors.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { blankDevice, tempDir } from './cli-helpers.js';

/** A pid no process has here: above the kernel's pid_max limit (2^22). */
const HOST_PID = 2 ** 22 + 7;
const saved = { run: process.env.SC_HSM_SIM_RUN, inner: process.env.SC_HSM_TS_SIM_RUN_INNER };

afterEach(() => {
  for (const [k, v] of [
    ['SC_HSM_SIM_RUN', saved.run],
    ['SC_HSM_TS_SIM_RUN_INNER', saved.inner],
  ] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

async function heldBySimRun(name: string) {
  const f = await blankDevice(join(await tempDir(), name));
  const holder = await VirtualSmartCardHsm.open(f, { command: 'sc-hsm-ts sim run', holderPid: HOST_PID });
  return { f, holder };
}

async function busy(f: string) {
  const e = await VirtualSmartCardHsm.open(f, { waitMs: 0 }).catch((x: unknown) => x);
  expect(isScHsmError(e, 'READER_BUSY')).toBe(true);
  return e as Error & { fix?: string };
}

describe('a state file held by sim run, opened with --sim by its COMMAND', () => {
  it('says sim run holds it (pid on the host) and to use the reader; no rmdir, no "no longer running"', async () => {
    const { f, holder } = await heldBySimRun('sr.json');
    try {
      process.env.SC_HSM_SIM_RUN = 'namespace';
      const e = await busy(f);
      expect(e.message).toContain(`held by \`sim run\` (pid ${HOST_PID} on the host`);
      expect(e.message).not.toMatch(/no longer running|expires/);
      expect(e.fix).toContain('--reader "$SC_HSM_READER" instead of --sim');
      expect(e.fix).not.toMatch(/rmdir/);
      // the same again: the same answer, the lock still sim run's
      expect((await busy(f)).message).toBe(e.message);
      // sim run's own inner process (the marker only) is told the same
      delete process.env.SC_HSM_SIM_RUN;
      process.env.SC_HSM_TS_SIM_RUN_INNER = '/tmp/plan.json';
      expect((await busy(f)).message).toContain('held by `sim run`');
    } finally {
      await holder.close();
    }
  });

  it('outside sim run, a holder whose pid is gone is still called stale (the rmdir advice kept there)', async () => {
    const { f, holder } = await heldBySimRun('outside.json');
    try {
      delete process.env.SC_HSM_SIM_RUN;
      delete process.env.SC_HSM_TS_SIM_RUN_INNER;
      const e = await busy(f);
      expect(e.message).toContain('no longer running');
      expect(e.fix).toMatch(/rmdir/);
    } finally {
      await holder.close();
    }
  });
});

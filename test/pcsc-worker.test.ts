/**
 * PC/SC from a worker thread (node:worker_threads): the pcsclite addon is not worker-safe and
 * aborts the whole process (exit 134, `FATAL ERROR: ... HandleScope`) once pcscd answers, so the
 * library refuses before loading it, with PCSC_UNAVAILABLE naming the cause and the fix.
 * The check comes before pcscd is asked, so this runs without one.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { WORKER_THREAD_REFUSAL } from '../src/apdu/pcsc.js';
import { listReaders } from '../src/sc-hsm/open-pcsc.js';

interface Outcome {
  resolved?: boolean;
  branded?: boolean;
  code?: string;
  message?: string;
  fix?: string;
}

/** Runs `call` `times` times in one worker thread; resolves with what it posted and its exit code. */
function inWorker(
  call: 'listReaders' | 'openPcsc',
  times = 1,
): Promise<{ outcomes: Outcome[]; exit: number }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./helpers/pcsc-in-worker.mjs', import.meta.url), {
      workerData: { call, times },
    });
    const outcomes: Outcome[] = [];
    w.on('message', (m: Outcome) => {
      outcomes.push(m);
    });
    w.on('error', reject);
    w.on('exit', (exit) =>
      outcomes.length > 0
        ? resolve({ outcomes, exit })
        : reject(new Error(`worker exited ${exit}, said nothing`)),
    );
  });
}

describe('PC/SC in a worker thread', () => {
  for (const call of ['listReaders', 'openPcsc'] as const) {
    it(`${call}() is refused with PCSC_UNAVAILABLE naming the worker thread and pool: 'forks'`, async () => {
      const { outcomes, exit } = await inWorker(call);
      expect(outcomes).toHaveLength(1);
      const outcome = outcomes[0]!;
      expect(outcome).toEqual({
        branded: true,
        code: 'PCSC_UNAVAILABLE',
        message: WORKER_THREAD_REFUSAL,
        fix: expect.stringContaining("pool: 'forks'"),
      });
      expect(outcome.message).toMatch(
        /^PC\/SC works only on the main thread \(the pcsclite addon is not worker-safe/,
      );
      expect(outcome.message).toContain('worker thread (node:worker_threads)');
      expect(outcome.message).toContain("vitest `pool: 'forks'`");
      // the worker ended normally, and this process is still here to see it
      expect(exit).toBe(0);
    });
  }

  it('a second call in the same worker is refused the same way (no load attempt cached)', async () => {
    const { outcomes, exit } = await inWorker('listReaders', 2);
    expect(outcomes).toHaveLength(2);
    expect(outcomes[1]).toEqual(outcomes[0]);
    expect(outcomes[0]?.message).toBe(WORKER_THREAD_REFUSAL);
    expect(exit).toBe(0);
  });

  it('the main thread is not refused', async () => {
    const r = await listReaders().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(r?.message ?? '').not.toContain('worker thread');
  });
});

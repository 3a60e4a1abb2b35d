/**
 * `startPcscCard` of `sc-hsm-ts/testing` as a hostile user uses it: two cards in one process, a
 * card of another process (a parallel test file) on slot 0, every slot taken by `sim run`, no
 * pcscd at all, and a test runner whose test fails before close() (must not hang).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { SmartCardHsm } from '../src/index.js';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { type PcscTestCard, startPcscCard, TEST_LABEL } from '../src/testing.js';
import { tempDir } from './cli-helpers.js';
import { finished, ROOT } from './helpers/cli-process.js';
import { rejection as refused } from './helpers/fixtures.js';
import { describePcsc, waitForCard } from './helpers/pcsc-env.js';

const TESTING = join(ROOT, 'src', 'testing.ts');

/** A node process with a test card on the first free slot; resolves with its reader once it has one. */
function holder(): { child: ChildProcess; reader: Promise<string> } {
  const code = `import { startPcscCard } from ${JSON.stringify(TESTING)};
const c = await startPcscCard({ initialized: false });
console.log(c.reader);
process.stdin.on('data', () => undefined);
process.stdin.on('end', async () => { await c.close(); });`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: ROOT,
    env: process.env,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const reader = new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    child.once('exit', (c) => reject(new Error(`holder exited ${c}: ${out}`)));
  });
  return { child, reader };
}

describePcsc('startPcscCard: vpcd slots and a forgotten close()', () => {
  // a card of the previous test file may still be listed while pcscd notices its removal
  beforeAll(async () => {
    await waitForCard('Virtual PCD 00 00', false, 30_000);
    await waitForCard('Virtual PCD 00 01', false, 30_000);
  }, 70_000);

  it('a second card in one process takes slot 1; a third is refused at once, naming the holders', async () => {
    const a = await startPcscCard({ initialized: false });
    let b: PcscTestCard | undefined;
    try {
      b = await startPcscCard({ initialized: false });
      expect([a.reader, b.reader]).toEqual(['Virtual PCD 00 00', 'Virtual PCD 00 01']);
      const e = await refused(startPcscCard({ initialized: false }));
      expect(e.code).toBe('PCSC_UNAVAILABLE');
      expect(e.message).toContain('no free vpcd slot');
      expect(e.message).toContain('Virtual PCD 00 00 holds another test card of this process');
      const e1 = await refused(startPcscCard({ initialized: false, slot: 1 }));
      expect(e1.message).toContain('vpcd slot 1 is busy');
    } finally {
      await b?.close();
      await a.close();
    }
    // closed slots are free again
    const c = await startPcscCard({ initialized: false });
    expect(c.reader).toBe('Virtual PCD 00 00');
    await c.close();
    await waitForCard('Virtual PCD 00 00', false);
  });

  // vpcd drops a closed link and takes a waiting one in a single presence poll: pcscd then never saw
  // the slot empty, never powered the new card on, and the kit waited 30 s for it (a CI failure)
  it('a card closed and the next plugged in at once on the same slot: each is a fresh card that pcscd talks to', async () => {
    // untouched and closed at once, talked to, talked to after a pause (pcscd powers an idle card down)
    for (const [i, initialized] of [false, true, false, true, false, true].entries()) {
      const c = await startPcscCard({ initialized, slot: 0 });
      try {
        if (i % 3 === 0) continue;
        if (i % 3 === 2) await new Promise((r) => setTimeout(r, 1500));
        const hsm = await SmartCardHsm.open(await openPcsc({ reader: c.reader }));
        try {
          const st = await hsm.status();
          expect(st.initialized).toBe(initialized);
          if (initialized) expect(st.label).toBe(TEST_LABEL);
        } finally {
          await hsm.close();
        }
      } finally {
        await c.close();
      }
    }
  }, 120_000);

  it('a card of another process (a parallel test file) on slot 0: this one takes slot 1', async () => {
    const h = holder();
    try {
      expect(await h.reader).toBe('Virtual PCD 00 00');
      const c = await startPcscCard({ initialized: false });
      expect(c.reader).toBe('Virtual PCD 00 01');
      await c.close();
      const e = await refused(startPcscCard({ initialized: false, slot: 0 }));
      expect(e.message).toMatch(/Virtual PCD 00 00 holds a test card of pid \d+/);
    } finally {
      h.child.stdin!.end();
      await finished(h.child);
    }
  });

  it('every slot holds a card of sim run (--cards 2): refused at once', async () => {
    const env = {
      ...process.env,
      SC_HSM_READER_0: 'Virtual PCD 00 00',
      SC_HSM_READER_1: 'Virtual PCD 00 01',
    };
    const e = await refused(startPcscCard({ initialized: false, env }));
    expect(e.message).toContain('no free vpcd slot');
    expect(e.message).toContain('Virtual PCD 00 01 holds a card of sim run');
    expect(e.fix).toContain('sim run --cards 1');
  });

  it('no pcscd (outside sim run): refused at once, pointing to sim run --cards 0', async () => {
    const env = { ...process.env, PCSCLITE_CSOCK_NAME: '/nonexistent/pcscd.comm' };
    const e = await refused(startPcscCard({ initialized: false, env }));
    expect(e.code).toBe('PCSC_UNAVAILABLE');
    expect(e.message).toContain('no pcscd here');
    expect(e.fix).toContain('sim run --cards 0');
  });

  for (const slot of [-1, 2, 0.5, Number.NaN]) {
    it(`slot ${slot}: INVALID_ARGUMENT`, async () => {
      expect((await refused(startPcscCard({ slot }))).code).toBe('INVALID_ARGUMENT');
    });
  }

  it('node --test: a failing assertion before close() ends the run (exit 1), it does not hang', async () => {
    const dir = await tempDir();
    const file = join(dir, 'app.test.mjs');
    await writeFile(
      file,
      `import { test } from 'node:test';
import assert from 'node:assert';
import { startPcscCard } from ${JSON.stringify(TESTING)};
test('app', async () => {
  const hsm = await startPcscCard({ initialized: false });
  assert.equal(hsm.reader, 'no such reader');
  await hsm.close();
});
`,
    );
    const r = await finished(
      spawn(process.execPath, ['--import', 'tsx', '--test', file], { cwd: ROOT, env: process.env }),
    );
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toContain('no such reader');
  }, 30_000);
});

/**
 * `startPcscCard` findings of a new user's pass through pcscd: a timing profile set on the card
 * is what the application waits for through PC/SC (a lower bound on the modelled time, not a
 * speed target), an unresolvable `host` is refused at once, and with no slot given a slot whose
 * reader shows a card that is not ours (a `sim serve`) is skipped.
 */
import { execFile } from 'node:child_process';
import { beforeAll, expect, it } from 'vitest';
import { NITROKEY_HSM2, type TimingProfile } from '../src/sim/index.js';
import { startPcscCard } from '../src/testing.js';
import { describePcsc, waitForCard } from './helpers/pcsc-env.js';

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((r, j) =>
    execFile(cmd, args, { timeout: 60_000 }, (e, out, err) =>
      e ? j(new Error(`${e.message}\n${err}`)) : r(out),
    ),
  );
}

/** The real device's profile with a per-APDU cost of `fixedMs` on top. */
function slowProfile(fixedMs: number): TimingProfile {
  const p = structuredClone(NITROKEY_HSM2) as TimingProfile;
  p.transfer.fixedMs = fixedMs;
  return p;
}

describePcsc('startPcscCard: what a new user tried', () => {
  beforeAll(async () => {
    await waitForCard('Virtual PCD 00 00', false, 30_000);
    await waitForCard('Virtual PCD 00 01', false, 30_000);
  }, 70_000);

  it('card.profile set after plugging in: N APDUs through pcscd take at least N × its per-APDU cost', async () => {
    const dev = await startPcscCard({ initialized: false });
    try {
      dev.card.profile = slowProfile(200);
      const n = 5;
      const apdus = Array.from({ length: n }, () => ['-s', '0084000008']).flat();
      const t0 = performance.now();
      const out = await run('opensc-tool', ['-r', dev.reader, ...apdus]);
      const ms = performance.now() - t0;
      expect(out.match(/SW1=0x90, SW2=0x00/g)?.length).toBe(n);
      expect(ms).toBeGreaterThanOrEqual(n * 200);
    } finally {
      await dev.close();
    }
  }, 60_000);
});

/**
 * `startPcscCard` findings of a new user's pass through pcscd: a timing profile set on the card
 * is what the application waits for through PC/SC (a lower bound on the modelled time, not a
 * speed target), an unresolvable `host` is refused at once, and with no slot given a slot whose
 * reader shows a card that is not ours (a `sim serve`) is skipped.
 */
import { execFile } from 'node:child_process';
import { beforeAll, expect, it } from 'vitest';
import { NITROKEY_HSM2, type TimingProfile, VirtualSmartCardHsm } from '../src/sim/index.js';
import { connectToVpcd } from '../src/sim/vpcd.js';
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

  it('no slot given: a reader showing a card that is not ours (a sim serve on slot 0) is skipped for slot 1', async () => {
    // the previous test's card gone first: a card this process took out counts as its own for a while
    await waitForCard('Virtual PCD 00 00', false, 30_000);
    await new Promise((r) => setTimeout(r, 5_000));
    // a card plugged in as sim serve does it: no claim of the kit
    const other = new VirtualSmartCardHsm();
    const link = connectToVpcd(other, { host: process.env.VPCD_HOST ?? '127.0.0.1', port: 35963 });
    try {
      await waitForCard('Virtual PCD 00 00', true, 30_000);
      const dev = await startPcscCard({ initialized: false });
      try {
        expect(dev.reader).toBe('Virtual PCD 00 01');
      } finally {
        await dev.close();
      }
    } finally {
      await link.close();
      await other.close();
    }
    await waitForCard('Virtual PCD 00 00', false, 30_000);
    await waitForCard('Virtual PCD 00 01', false, 30_000);
  }, 90_000);
});

/**
 * Sessions that come and go in one long-running process must not leave anything behind.
 *
 * BUG (src/apdu/transport.ts ApduChannel): every ApduChannel creates its own AsyncLocalStorage
 * (`held`) and never disables it. Node keeps every enabled AsyncLocalStorage in a process-wide
 * list and copies each one's store into every new async resource, so each channel ever opened
 * stays alive for good and makes every later promise of the process slower: measured here, after
 * 4,000 SmartCardHsm.open() calls one exchange takes ~8 ms instead of ~0.06 ms (a server opening a
 * session per request degrades linearly). A fix: one module-level AsyncLocalStorage whose store is
 * the set of channels held by the current async context (or `held.disable()` in close()).
 * The test below is not timing-based: it checks that a dropped channel's AsyncLocalStorage can be
 * garbage-collected.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { ApduChannel } from '../src/apdu/transport.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function collected(refs: WeakRef<object>[]): Promise<number> {
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  return refs.filter((r) => r.deref() === undefined).length;
}

describe('channels and sessions leave nothing behind', () => {
  it("a dropped channel's AsyncLocalStorage is garbage-collected", async () => {
    const card = new VirtualSmartCardHsm();
    const refs: WeakRef<object>[] = [];
    for (let i = 0; i < 20; i++) {
      const ch = new ApduChannel(card);
      await ch.exclusive(() => ch.send({ cla: 0x00, ins: 0x84, p1: 0, p2: 0, ne: 8 }));
      const held = (ch as unknown as Record<string, unknown>).held;
      if (held && typeof held === 'object') refs.push(new WeakRef(held));
    }
    expect(await collected(refs)).toBe(refs.length);
  });
});

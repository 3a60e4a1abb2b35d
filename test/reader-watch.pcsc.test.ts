/**
 * Readers and cards coming and going (issue #11), through pcscd with the virtual card on vpcd:
 * watchReaders / watchSmartCardHsms report the card inserted and removed, and a session's
 * `removed` promise resolves with CARD_REMOVED when its card is pulled.
 * Run with: bash scripts/with-pcscd.sh npx vitest run --project pcsc test/reader-watch.pcsc.test.ts
 */
import { afterAll, expect, it } from 'vitest';
import type { ReaderEvent } from '../src/apdu/pcsc.js';
import { watchReaders } from '../src/apdu/readers.js';
import { openPcsc, type SmartCardHsmEvent, watchSmartCardHsms } from '../src/sc-hsm/open-pcsc.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import type { VpcdConnection } from '../src/sim/vpcd.js';
import { describePcsc, insertCard, vpcdSlot, waitForCard } from './helpers/pcsc-env.js';

const { host, port, reader: READER } = vpcdSlot();

/** Collects a watcher's events; `next(pred)` waits (bounded) for the first matching one. */
function collect<E extends ReaderEvent>(it: AsyncGenerator<E>) {
  const seen: E[] = [];
  const waiting: { pred: (e: E) => boolean; resolve: (e: E) => void }[] = [];
  const pump = (async () => {
    for await (const e of it) {
      seen.push(e);
      for (const w of [...waiting])
        if (w.pred(e)) {
          waiting.splice(waiting.indexOf(w), 1);
          w.resolve(e);
        }
    }
  })();
  return {
    seen,
    pump,
    next(pred: (e: E) => boolean, ms = 6000): Promise<E> {
      const old = seen.find(pred);
      if (old) {
        seen.splice(seen.indexOf(old), 1);
        return Promise.resolve(old);
      }
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no matching reader event within ${ms} ms`)), ms);
        waiting.push({
          pred,
          resolve: (e) => {
            clearTimeout(t);
            seen.splice(seen.indexOf(e), 1);
            resolve(e);
          },
        });
      });
    },
  };
}

describePcsc('watching readers and cards', () => {
  let link: VpcdConnection | undefined;
  afterAll(async () => {
    await link?.close();
    await waitForCard(READER, false, 5000).catch(() => undefined);
  });

  it('reports the reader, the card inserted and removed; the session says it was removed', async () => {
    const stop = new AbortController();
    const raw = collect(watchReaders({ signal: stop.signal }));
    const hsms = collect<SmartCardHsmEvent>(watchSmartCardHsms({ signal: stop.signal }));
    await raw.next((e) => e.type === 'reader-added' && e.reader === READER);

    link = await insertCard(new VirtualSmartCardHsm(), { host, port });
    const inserted = await raw.next((e) => e.type === 'card-inserted' && e.reader === READER);
    expect(inserted.atr?.length).toBeGreaterThan(0);
    const hsmIn = await hsms.next((e) => e.type === 'card-inserted' && e.reader === READER);
    expect(hsmIn.isSmartCardHsm).toBe(true);
    expect(hsmIn.model).toMatch(/HSM/);

    const hsm = await SmartCardHsm.open(await openPcsc({ reader: READER }));
    await hsm.status();
    let removed: unknown;
    void hsm.removed.then((e) => {
      removed = e;
    });
    await link.close();
    link = undefined;
    await raw.next((e) => e.type === 'card-removed' && e.reader === READER);
    const hsmOut = await hsms.next((e) => e.type === 'card-removed' && e.reader === READER);
    expect(hsmOut.isSmartCardHsm).toBe(true);
    const err = await Promise.race([
      hsm.removed,
      new Promise((_, reject) => setTimeout(() => reject(new Error('hsm.removed did not resolve')), 3000)),
    ]);
    expect(err).toMatchObject({ code: 'CARD_REMOVED' });
    await new Promise((r) => setImmediate(r));
    expect(removed).toBe(err);
    await expect(hsm.status()).rejects.toMatchObject({ code: 'CARD_REMOVED' });
    await hsm.close();

    // a card put back is seen again
    link = await insertCard(new VirtualSmartCardHsm(), { host, port });
    await raw.next((e) => e.type === 'card-inserted' && e.reader === READER);

    stop.abort();
    await Promise.all([raw.pump, hsms.pump]);
  });

  it('a session on a transport that cannot tell never resolves removed', async () => {
    const hsm = await SmartCardHsm.open(new VirtualSmartCardHsm());
    const r = await Promise.race([
      hsm.removed.then(() => 'removed'),
      new Promise((res) => setTimeout(() => res('pending'), 50)),
    ]);
    expect(r).toBe('pending');
  });
});

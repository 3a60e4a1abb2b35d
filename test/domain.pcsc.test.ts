/**
 * Key domains through the real stack: pcsclite → pcscd → vpcd → the virtual card; the same suite
 * as test/session-domains.test.ts (test/helpers/domain-suite.ts). Run inside scripts/with-pcscd.sh.
 */
import { afterAll } from 'vitest';
import { RelayCard } from '../harness/relay-card.js';
import type { PcscTransport } from '../src/apdu/pcsc.js';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import type { VpcdConnection } from '../src/sim/vpcd.js';
import { defineDomainSuite } from './helpers/domain-suite.js';
import { describePcsc, insertCard, vpcdEndpoint } from './helpers/pcsc-env.js';

/** One vpcd connection for the file; a fresh device swaps the virtual card behind it. */
class CardSlot extends RelayCard<VirtualSmartCardHsm> {
  constructor() {
    super(new VirtualSmartCardHsm());
  }
}

let setup: Promise<{ slot: CardSlot; vpcd: VpcdConnection; transport: PcscTransport }> | undefined;

function env() {
  setup ??= (async () => {
    const slot = new CardSlot();
    const vpcd = await insertCard(slot, vpcdEndpoint());
    const transport = await openPcsc({ reader: 'Virtual PCD 00 00' });
    return { slot, vpcd, transport };
  })();
  return setup;
}

describePcsc('key domains through pcscd', () => {
  afterAll(async () => {
    if (!setup) return;
    const { vpcd, transport } = await setup;
    await transport.close();
    await vpcd.close();
  });
  defineDomainSuite('pcscd and vpcd', () => ({
    async fresh() {
      const { slot, transport } = await env();
      slot.card = new VirtualSmartCardHsm();
      return { card: slot.card, hsm: await SmartCardHsm.open(transport) };
    },
  }));
});

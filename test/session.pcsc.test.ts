/**
 * The session suite again, through the real stack: pcsclite → pcscd → vpcd → the virtual card
 * (spec/pcsc-stack.md). Run inside scripts/with-pcscd.sh; under CI=true without it, this fails.
 */
import { afterAll } from 'vitest';
import { RelayCard } from '../harness/relay-card.js';
import type { PcscTransport } from '../src/apdu/pcsc.js';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import type { VpcdConnection } from '../src/sim/vpcd.js';
import { describePcsc, insertCard, vpcdEndpoint } from './helpers/pcsc-env.js';
import { defineSessionSuite } from './helpers/session-suite.js';

/**
 * One vpcd connection for the whole file; "a fresh device" swaps the virtual card behind it, as if
 * the token were replaced between two exchanges (each session starts with its own SELECT).
 */
class CardSlot extends RelayCard<VirtualSmartCardHsm> {
  constructor() {
    super(new VirtualSmartCardHsm());
  }
}

let setup: Promise<{ slot: CardSlot; vpcd: VpcdConnection; transport: PcscTransport }> | undefined;

function env() {
  setup ??= (async () => {
    const slot = new CardSlot();
    // vpcd takes the card at its next presence poll (≤ ~0.5 s); insertCard waits for this card
    const vpcd = await insertCard(slot, vpcdEndpoint());
    const transport = await openPcsc({ reader: 'Virtual PCD 00 00' });
    return { slot, vpcd, transport };
  })();
  return setup;
}

describePcsc('session suite through pcscd', () => {
  afterAll(async () => {
    if (!setup) return;
    const { vpcd, transport } = await setup;
    await transport.close();
    await vpcd.close();
  });
  defineSessionSuite('pcscd and vpcd', () => ({
    async fresh() {
      const { slot, transport } = await env();
      slot.card = new VirtualSmartCardHsm();
      return { card: slot.card, hsm: await SmartCardHsm.open(transport) };
    },
  }));
});

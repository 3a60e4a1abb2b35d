import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { defineDomainSuite } from './helpers/domain-suite.js';

defineDomainSuite('the in-process virtual card', () => ({
  async fresh() {
    const card = new VirtualSmartCardHsm();
    return { card, hsm: await SmartCardHsm.open(card) };
  },
}));

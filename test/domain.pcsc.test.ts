/**
 * Key domains through the real stack: pcsclite → pcscd → vpcd → the virtual card; the same suite
 * as test/session-domains.test.ts (test/helpers/domain-suite.ts). Run inside scripts/with-pcscd.sh.
 * One vpcd connection for the file; a fresh device swaps the virtual card behind it.
 */
import { afterAll } from 'vitest';
import { defineDomainSuite } from './helpers/domain-suite.js';
import { describePcsc, swappedCardHarness } from './helpers/pcsc-env.js';

describePcsc('key domains through pcscd', () => {
  const harness = swappedCardHarness();
  afterAll(() => harness.close());
  defineDomainSuite('pcscd and vpcd', () => harness);
});

/**
 * The session suite again, through the real stack: pcsclite → pcscd → vpcd → the virtual card
 * (spec/pcsc-stack.md). Run inside scripts/with-pcscd.sh; under CI=true without it, this fails.
 * One vpcd connection for the whole file; "a fresh device" swaps the virtual card behind it, as if
 * the token were replaced between two exchanges (swappedCardHarness).
 */
import { afterAll } from 'vitest';
import { describePcsc, swappedCardHarness } from './helpers/pcsc-env.js';
import { defineSessionSuite } from './helpers/session-suite.js';

describePcsc('session suite through pcscd', () => {
  const harness = swappedCardHarness();
  afterAll(() => harness.close());
  defineSessionSuite('pcscd and vpcd', () => harness);
});

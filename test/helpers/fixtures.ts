/** Small builders shared by tests (the benchmarks' share is in harness/). */
import { FAULT_KINDS, type FaultPlan } from '../../src/apdu/fault.js';
import { ScHsmError } from '../../src/errors.js';
import { SmartCardHsm } from '../../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../../src/sim/index.js';

/** Every fault kind, before and after delivery (a truncated answer is always the card's own, so delivered). */
export const FAULT_COMBOS: { kind: FaultPlan['kind']; delivered: boolean }[] = FAULT_KINDS.flatMap(
  (kind): { kind: FaultPlan['kind']; delivered: boolean }[] =>
    kind === 'truncated-response'
      ? [{ kind, delivered: true }]
      : [
          { kind, delivered: false },
          { kind, delivered: true },
        ],
);

/** A fresh virtual card, initialized with the well-known test PINs, the user PIN verified. */
export async function initializedHsm(): Promise<SmartCardHsm> {
  const hsm = await SmartCardHsm.open(new VirtualSmartCardHsm());
  await hsm.initialize({ soPin: '3537363231383830', userPin: '648219' });
  await hsm.verifyPin('648219');
  return hsm;
}

/** The ScHsmError `p` rejects with; fails the test when it resolves or rejects with anything else. */
export async function rejection(p: Promise<unknown>): Promise<ScHsmError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ScHsmError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

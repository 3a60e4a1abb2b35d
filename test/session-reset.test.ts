/**
 * A card reset by another application (PC/SC `CARD_RESET`): the session selects the applet again
 * and reports that the PIN must be verified again; it never re-sends anything by itself.
 */
import { describe, expect, it } from 'vitest';
import type { Transport } from '../src/apdu/transport.js';
import { ScHsmError } from '../src/errors.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { toHex } from '../src/util/bytes.js';

/** Behaves like PcscTransport after a reset by someone else: the card loses its state, one transmit fails. */
class ResettingTransport implements Transport {
  readonly sent: string[] = [];
  resetBeforeNext = false;
  constructor(readonly card: VirtualSmartCardHsm) {}
  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (this.resetBeforeNext) {
      this.resetBeforeNext = false;
      this.card.reset();
      throw new ScHsmError('CARD_RESET', 'the card was reset by another application');
    }
    this.sent.push(toHex(apdu));
    return this.card.process(apdu);
  }
  async close(): Promise<void> {}
}

describe('card reset by another application', () => {
  it('re-selects the applet, reports that the PIN is gone, and re-sends nothing', async () => {
    const t = new ResettingTransport(new VirtualSmartCardHsm());
    const hsm = await SmartCardHsm.open(t);
    await hsm.initialize({ soPin: '3537363231383830', userPin: '648219', dkekShares: 1 });
    await hsm.importDkekShare(new Uint8Array(32).fill(3));
    await hsm.verifyPin('648219');
    const k = await hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'k' });
    const pinApdus = () => t.sent.filter((a) => a.startsWith('0020008106')).length;
    const before = pinApdus();
    t.resetBeforeNext = true;
    const err = await hsm.sign(k.keyRef, 'ECDSA-SHA256', new Uint8Array(8)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScHsmError);
    expect((err as ScHsmError).code).toBe('CARD_RESET');
    expect((err as ScHsmError).message).toMatch(/verify it again/);
    expect(pinApdus()).toBe(before);
    // the applet was selected again: the card answers PIN queries (not 6D00), the PIN is no longer verified
    expect(t.sent.at(-1)).toBe('00a404000be82b0601040181c31f020100');
    expect((await hsm.pinStatus()).state).toBe('not-verified');
    await expect(hsm.sign(k.keyRef, 'ECDSA-SHA256', new Uint8Array(8))).rejects.toMatchObject({
      code: 'SECURITY_STATUS',
    });
    await hsm.verifyPin('648219');
    expect((await hsm.sign(k.keyRef, 'ECDSA-SHA256', new Uint8Array(8))).length).toBeGreaterThan(60);
  });
});

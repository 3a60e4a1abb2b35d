/**
 * A card in front of another card, for vpcd: passes the ATR, every APDU and the power and reset
 * control bytes on to `card`. Tests and benchmarks extend it to count or time what the card sees,
 * or swap `card` to replace the token behind one vpcd connection. No vitest import: harness/ is
 * what test/ and bench/ share.
 */
import type { VpcdCard } from '../src/sim/vpcd.js';

export class RelayCard<C extends VpcdCard = VpcdCard> implements VpcdCard {
  constructor(public card: C) {}
  get atr(): Uint8Array {
    return this.card.atr;
  }
  process(apdu: Uint8Array): Uint8Array {
    return this.card.process(apdu);
  }
  powerOn(): void {
    this.card.powerOn();
  }
  powerOff(): void {
    this.card.powerOff();
  }
  reset(): void {
    this.card.reset();
  }
  answerReady(): Promise<void> | undefined {
    return this.card.answerReady?.();
  }
}

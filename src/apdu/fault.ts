/**
 * A transport that fails on purpose: it wraps another transport and makes the k-th APDU fail the
 * way real readers and cards fail (card pulled, card reset, broken reader link, garbled or cut
 * answer), with the command delivered to the card first or not. "Delivered" is the hardest case:
 * the card did the work (a key was generated, a file written, a PIN try consumed) but the host
 * never heard the answer. Used by the fault-enumeration tests to prove that every operation ends
 * in a typed `ScHsmError` and leaves the device in a state that `status()` describes truthfully.
 */
import { ScHsmError } from '../errors.js';
import { asyncDispose } from '../util/dispose.js';
import type { Transport } from './transport.js';

export type FaultKind =
  /** The card left the reader: CARD_REMOVED now and for every later APDU. */
  | 'card-removed'
  /** The card was reset: CARD_RESET, and the inner card's `reset()` drops its selection and PIN state. */
  | 'card-reset'
  /** The reader link broke for this one exchange: TRANSPORT_ERROR. */
  | 'transport-error'
  /** A response of one byte (no status word). */
  | 'malformed-response'
  /** The response data cut in half, the status word kept. */
  | 'truncated-response'
  /**
   * The last data byte of the answer flipped, the status word kept: a link that alters answers.
   * Not in FAULT_KINDS: a plain answer has nothing that could notice it; secure messaging's MAC does.
   */
  | 'corrupted-response';

export const FAULT_KINDS: readonly FaultKind[] = [
  'card-removed',
  'card-reset',
  'transport-error',
  'malformed-response',
  'truncated-response',
];

export interface FaultPlan {
  /** 1-based number of the APDU that fails (GET RESPONSE counts). */
  at: number;
  kind: FaultKind;
  /**
   * True: the APDU reaches the card, which acts on it, and only the answer is lost or damaged.
   * A truncated or corrupted response is always delivered (it is the card's own answer, damaged).
   */
  delivered: boolean;
}

/**
 * INVALID_ARGUMENT for a plan that could never fire or names no fault (`at` not a positive integer,
 * an unknown `kind`, `delivered` not a boolean): a test must not pass because its fault never came.
 */
function checkPlan(plan: FaultPlan | undefined): void {
  if (plan === undefined) return;
  const kinds: readonly string[] = [...FAULT_KINDS, 'corrupted-response'];
  const bad = (what: string) =>
    new ScHsmError('INVALID_ARGUMENT', `FaultInjectingTransport: ${what}`, {
      fix: `give { at: N (1, 2, …: the APDU that fails), kind: ${kinds.map((k) => `'${k}'`).join(' | ')}, delivered: true | false }`,
    });
  if (typeof plan !== 'object' || plan === null) throw bad('the plan must be an object');
  if (!Number.isSafeInteger(plan.at) || plan.at < 1)
    throw bad(`at must be a whole number from 1 (the first APDU), not ${String(plan.at).slice(0, 20)}`);
  if (typeof plan.kind !== 'string' || !kinds.includes(plan.kind))
    throw bad(`unknown fault kind ${JSON.stringify(plan.kind)?.slice(0, 40)}`);
  if (plan.delivered !== undefined && typeof plan.delivered !== 'boolean')
    throw bad('delivered must be true or false');
}

/** What a wrapped transport may offer besides `Transport` (the virtual card has all of these). */
export interface ResettableTransport extends Transport {
  reset?(): void;
}

export class FaultInjectingTransport implements Transport {
  /** APDUs given to this transport so far (the faulted one included). */
  count = 0;
  /** True once the planned fault has happened. */
  fired = false;
  private removed = false;

  constructor(
    readonly inner: ResettableTransport,
    private plan?: FaultPlan,
  ) {
    checkPlan(plan);
  }

  get extendedLength(): boolean | undefined {
    return this.inner.extendedLength;
  }

  /** Replaces the plan and starts counting from zero again (the card stays as it is). */
  arm(plan: FaultPlan | undefined): void {
    checkPlan(plan);
    this.plan = plan;
    this.count = 0;
    this.fired = false;
    this.removed = false;
  }

  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (this.removed) throw new ScHsmError('CARD_REMOVED', 'the card was removed from the reader (injected)');
    this.count++;
    const p = this.plan;
    if (!p || this.fired || this.count !== p.at) return this.inner.transmit(apdu);
    this.fired = true;
    // A cut or altered answer is an answer: the card always got that command.
    const deliver = p.delivered || p.kind === 'truncated-response' || p.kind === 'corrupted-response';
    const answer = deliver ? await this.inner.transmit(apdu) : undefined;
    switch (p.kind) {
      case 'card-removed':
        this.removed = true;
        throw new ScHsmError(
          'CARD_REMOVED',
          `the card was removed from the reader (injected at APDU ${p.at})`,
        );
      case 'card-reset':
        this.inner.reset?.();
        throw new ScHsmError('CARD_RESET', `the card was reset (injected at APDU ${p.at})`);
      case 'transport-error':
        throw new ScHsmError('TRANSPORT_ERROR', `the reader link failed (injected at APDU ${p.at})`);
      case 'malformed-response':
        return Uint8Array.of(answer?.[0] ?? 0x6f);
      case 'corrupted-response': {
        const a = answer!.slice();
        if (a.length > 2) a[a.length - 3]! ^= 0x01;
        return a;
      }
      case 'truncated-response': {
        const a = answer!;
        const dataLength = a.length - 2;
        const out = new Uint8Array(Math.floor(dataLength / 2) + 2);
        out.set(a.subarray(0, Math.floor(dataLength / 2)));
        out.set(a.subarray(dataLength), out.length - 2);
        return out;
      }
    }
  }

  async close(): Promise<void> {
    await this.inner.close();
  }

  /** `await using`: {@link close}. */
  [asyncDispose](): Promise<void> {
    return this.close();
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.inner.exclusive ? this.inner.exclusive(fn) : fn();
  }
}

/**
 * What a failure means once a command that creates a key has been sent (GENERATE ASYMMETRIC KEY
 * PAIR, GENERATE SYMMETRIC KEY). The card may have done the work while its answer was lost (card
 * pulled, reader link broken, answer cut), and a key is written in two steps: the card makes the
 * key (CCxx, and the public key in CExx for a key pair), then the host writes its description
 * (C4xx: label, ID, usage). A failure between the two leaves a key without its label; a failure
 * after both leaves a complete key although the call failed. Either way a plain retry makes a
 * second key, so the error names the key reference and how to check it.
 */
import { ScHsmError } from '../errors.js';

export interface CreationContext {
  /** The card command that creates the key, as the channel names it. */
  command: string;
  keyRef: number;
  label: string;
  /**
   * `sent`: the command went to the card, no success answer arrived (yet);
   * `created`: the card answered success, the description was being written.
   */
  stage: 'sent' | 'created';
}

/**
 * The error to throw for `e`, raised after `c.command` was sent. The card's own refusal of that
 * command (a status word for it: wrong PIN state, occupied reference, no room) created nothing
 * and is returned unchanged; anything else keeps its code and gains what may now exist at
 * `c.keyRef`, `keyRef`, and a fix naming the commands that check and remove it.
 */
export function afterCreationSent(e: unknown, c: CreationContext): unknown {
  if (c.stage === 'sent' && e instanceof ScHsmError && e.sw !== undefined && e.command === c.command)
    return e;
  const label = JSON.stringify(c.label);
  const ref = c.keyRef;
  const what =
    c.stage === 'sent'
      ? `${c.command} had been sent for key reference ${ref}: the card may have generated that key, ` +
        `which would then be on the device without its description (label ${label})`
      : `the card generated the key at key reference ${ref}, but writing its description (label ` +
        `${label}) did not complete: the key may be on the device without its label`;
  const fix =
    `check with \`sc-hsm-ts keys\` whether key reference ${ref} is there (without the label ${label} ` +
    `if its description is missing); keep it, or delete it with \`sc-hsm-ts delete-key --key-ref ${ref}\` ` +
    'before generating again: generating again without checking makes a second key';
  const base = e instanceof ScHsmError ? e : undefined;
  const message = `${base ? base.message : String((e as Error)?.message ?? e)}; ${what}`;
  return new ScHsmError(base?.code ?? 'TRANSPORT_ERROR', message, {
    ...(base?.sw !== undefined ? { sw: base.sw } : {}),
    ...(base?.command !== undefined ? { command: base.command } : {}),
    ...(base?.triesLeft !== undefined ? { triesLeft: base.triesLeft } : {}),
    keyRef: ref,
    fix,
    cause: e,
  });
}

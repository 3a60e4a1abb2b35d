/**
 * The host's side of making a key on the device, shared by GENERATE ASYMMETRIC KEY PAIR (spec
 * §3.11), GENERATE SYMMETRIC KEY (§3.12) and DERIVE EC KEY (§3.15): what a failure after the card
 * command means ({@link afterCreationSent}) and the PKCS#15 description written into C4xx once the
 * card has made the key. Not a session method of its own: keys.ts and derive.ts call it.
 */
import { isScHsmError, type ScHsmErrorCode } from '../errors.js';
import { encodeKeyDescription, type KeyDescription, OBJECT_FLAGS } from '../pkcs15/index.js';
import { PREFIX } from '../protocol/constants.js';
import type { SessionContext } from './context.js';
import { afterCreationSent, type CreationContext } from './interrupted.js';

/**
 * Runs `create`: the card command that makes key `what.keyRef` (`what.command`, spec §3.11,
 * §3.12, §3.15), `created()` once the card answered success, then the host's steps after it (the
 * key's description, …). Whatever happens, the cached information of that key (and of
 * `what.alsoUncache`: a source key whose use counter counted) is dropped; a failure becomes what
 * it means for the device ({@link afterCreationSent}), except one with the code `what.unchanged`,
 * which already says so itself.
 */
export async function creatingKey<T>(
  ctx: SessionContext,
  what: {
    command: string;
    keyRef: number;
    label: string;
    alsoUncache?: number;
    unchanged?: ScHsmErrorCode;
  },
  create: (created: () => void) => Promise<T>,
): Promise<T> {
  const { command, keyRef, label, alsoUncache, unchanged } = what;
  // From here on the card may hold a new key whatever happens: a failure says so.
  const creation: CreationContext = { command, keyRef, label, stage: 'sent' };
  try {
    return await create(() => {
      creation.stage = 'created';
    });
  } catch (e) {
    if (unchanged !== undefined && isScHsmError(e, unchanged)) throw e;
    throw afterCreationSent(e, creation);
  } finally {
    ctx.keyCache.delete(keyRef);
    if (alsoUncache !== undefined) ctx.keyCache.delete(alsoUncache);
  }
}

/**
 * Writes the PKCS#15 description of a key the card has just made into C4<keyRef> (spec §6.1–6.3),
 * as OpenSC writes it: private and modifiable, guarded by the user PIN (auth ID 01).
 */
export async function writeNewKeyDescription(
  ctx: SessionContext,
  keyRef: number,
  d: Pick<KeyDescription, 'kind' | 'label' | 'id' | 'usage' | 'bits'>,
): Promise<void> {
  await ctx.files.write(
    (PREFIX.PRKD << 8) | keyRef,
    encodeKeyDescription({
      kind: d.kind,
      label: d.label,
      objectFlags: OBJECT_FLAGS.PRIVATE | OBJECT_FLAGS.MODIFIABLE,
      authId: Uint8Array.of(1),
      id: d.id,
      usage: d.usage,
      keyReference: keyRef,
      bits: d.bits,
    }),
  );
}

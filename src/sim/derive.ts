/**
 * DERIVE EC KEY `80 76 srcId dstId`, data `98 ‖ tweak` (spec §3.15): the virtual card makes
 * `CC<dst>` with d' = d + tweak mod n from the EC key `CC<src>`. No answer data; the host learns
 * the new public key by computing Q + tweak·G itself. The new key inherits the source's key domain,
 * algorithm list and uses left (DERIVE_INHERITS). Choices: DERIVE_* in uncertain.ts.
 */
import { createPrivateKey } from 'node:crypto';
import { ecPkcs8 } from '../dkek/keys.js';
import { ALGO } from '../protocol/constants.js';
import { mod } from '../util/bigint.js';
import { bigintFromBytes, bigintToBytes } from '../util/bytes.js';
import { curveByName } from '../util/curves.js';
import { domain } from '../util/ec-point.js';
import { type CardContext, ensureSpace, type Handler, keyObjectSize, requireUser } from './context.js';
import { bindKeyDomain, keyDomain } from './domains.js';
import { ecPrivateScalar } from './ec.js';
import { checkNewKey, keyFor } from './keys.js';
import type { StoredKey } from './state.js';
import { fail, SW } from './sw.js';
import {
  DERIVE_DST_OCCUPIED_SW,
  DERIVE_INHERITS,
  DERIVE_NOT_ALLOWED_SW,
  USE_COUNTER_EXHAUSTED_SW,
} from './uncertain.js';

/**
 * What a derived key takes over from its source (DERIVE_INHERITS in uncertain.ts): the key domain,
 * the algorithm list and the uses the source has left once this derivation has counted.
 */
function inherited(
  ctx: CardContext,
  src: StoredKey,
): Pick<StoredKey, 'algorithms' | 'useCounter' | 'domain'> {
  if (!DERIVE_INHERITS) return {};
  const meta: Pick<StoredKey, 'algorithms' | 'useCounter' | 'domain'> = {};
  if (src.algorithms) meta.algorithms = src.algorithms.slice();
  if (src.useCounter !== undefined) meta.useCounter = src.useCounter - 1;
  if (src.domain !== undefined) meta.domain = src.domain;
  bindKeyDomain(ctx.state, meta);
  return meta;
}

/** DERIVE EC KEY (spec §3.15). */
export const deriveEcKey: Handler = (ctx: CardContext, cmd) => {
  requireUser(ctx);
  const src = keyFor(ctx, cmd.p1);
  if (cmd.p2 === cmd.p1 || ctx.state.keys.has(cmd.p2)) fail(DERIVE_DST_OCCUPIED_SW, `key ${cmd.p2} exists`);
  // PIN, destination 1..255 and free, the source's domain ready (no DKEK import pending): as for key generation
  checkNewKey(ctx, cmd.p2, keyDomain(src));
  if (src.kind !== 'ec') fail(SW.FUNC_NOT_SUPPORTED, 'only EC keys can be derived');
  if (src.algorithms && !src.algorithms.includes(ALGO.EC_DERIVE))
    fail(DERIVE_NOT_ALLOWED_SW, 'the key may not be derived from');
  if (src.useCounter === 0) fail(USE_COUNTER_EXHAUSTED_SW, 'key use counter exhausted');
  if (cmd.data.length < 2) fail(SW.WRONG_LENGTH, 'data is 98 ‖ tweak');
  if (cmd.data[0] !== ALGO.EC_DERIVE) fail(SW.WRONG_DATA, 'unknown derivation');
  const curve = curveByName(src.curve!);
  const d = domain(curve.name);
  const tweakBytes = cmd.data.subarray(1);
  if (tweakBytes.length > d.size) fail(SW.WRONG_DATA, 'tweak longer than the field');
  const tweak = bigintFromBytes(tweakBytes);
  if (tweak >= d.n) fail(SW.WRONG_DATA, 'tweak not below the order');
  const dNew = mod(bigintFromBytes(ecPrivateScalar(src.pkcs8!)) + tweak, d.n);
  if (dNew === 0n) fail(SW.WRONG_DATA, 'derived key would be zero');
  const nLen = Math.ceil(d.n.toString(2).length / 8);
  const pkcs8 = ecPkcs8(curve, bigintToBytes(dNew, nLen));
  // node:crypto computes the public point and re-encodes with it, as a generated key is kept
  const full = new Uint8Array(
    createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' }).export({
      type: 'pkcs8',
      format: 'der',
    }),
  );
  const key: StoredKey = {
    kind: 'ec',
    curve: curve.name,
    bits: curve.bits,
    pkcs8: full,
    ...inherited(ctx, src),
  };
  ensureSpace(ctx.state, keyObjectSize(key));
  ctx.state.keys.set(cmd.p2, key);
  if (src.useCounter !== undefined) src.useCounter--;
  ctx.changed();
  return {};
};

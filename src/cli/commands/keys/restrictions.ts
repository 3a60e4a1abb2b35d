/**
 * The parts of `keygen` for restrictions fixed at generation (`--algorithms`, `--use-counter`;
 * spec §3.11–3.12) and for EC key derivation (`--derive-from N --tweak HEX`, `80 76`, spec §3.15).
 * Everything is checked here before the device is opened.
 */
import { ScHsmError } from '../../../errors.js';
import { USE_COUNTER_MAX } from '../../../protocol/constants.js';
import { algorithmBytes, algorithmNameList, algorithmNames } from '../../../sc-hsm/key-restrictions.js';
import { checkLabel } from '../../../sc-hsm/validate.js';
import type { Ctx, Values } from '../../context.js';
import { int, reqStr, str } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { parseHexArg, printable, restrictionsText, spkiFingerprint } from '../../format.js';

/** `--algorithms A,B` and `--use-counter N` as the library takes them; `{}` when neither is given. */
export function parseRestrictions(v: Values): { algorithms?: Uint8Array; useCounter?: number } {
  const out: { algorithms?: Uint8Array; useCounter?: number } = {};
  const list = str(v, 'algorithms');
  if (list !== undefined) {
    try {
      out.algorithms = algorithmBytes(list.split(','));
    } catch (e) {
      if (!(e instanceof ScHsmError)) throw e;
      throw new CliError(
        'USAGE_ERROR',
        `--algorithms: ${e.message}`,
        `--algorithms takes comma-separated names, each once, e.g. ECDSA-SHA256,WRAP (names: ${algorithmNameList()})`,
      );
    }
  }
  const n = int(v, 'use-counter', 1, USE_COUNTER_MAX);
  if (n !== undefined) out.useCounter = n;
  return out;
}

/** The options that belong to generating, which a derivation refuses. */
const NOT_WITH_DERIVE = ['type', 'algorithms', 'use-counter', 'domain'] as const;

/**
 * `keygen --derive-from N --tweak HEX --key-ref M --label L [--id HEX]`: DERIVE EC KEY. The
 * tweak is hex, 1–66 bytes, not zero (its range below the curve order is checked by the library
 * once the source key's curve is known, before anything is sent).
 */
export async function runDerive(ctx: Ctx, v: Values): Promise<unknown> {
  const fromText = str(v, 'derive-from');
  const tweakText = str(v, 'tweak');
  if (fromText === undefined)
    throw new CliError(
      'USAGE_ERROR',
      '--tweak belongs to --derive-from N',
      'add --derive-from N (the EC key to derive from)',
    );
  for (const o of NOT_WITH_DERIVE)
    if (v[o] !== undefined)
      throw new CliError(
        'USAGE_ERROR',
        `--${o} does not go with --derive-from: the derived key is an EC key on the source key's curve that takes over the source's key domain, algorithm list and uses left (on the virtual card; real firmware is uncertain, and the command warns if the card made it less restricted)`,
        `leave out --${o}`,
      );
  const src = int(v, 'derive-from', 1, 255)!;
  if (tweakText === undefined)
    throw new CliError(
      'USAGE_ERROR',
      '--derive-from needs --tweak HEX',
      'add --tweak HEX (the value added to the private key)',
    );
  // key material: hex digits only, no spaces or colons (` 0 1` is not taken for 01)
  const tweak = parseHexArg(tweakText, { strict: true });
  if (!tweak || tweak.length > 66)
    throw new CliError(
      'USAGE_ERROR',
      `--tweak takes 1 to 66 hex bytes written as hex digits only (no spaces or colons), e.g. --tweak 0102…20 (32 bytes for a 256-bit curve)`,
    );
  if (tweak.every((b) => b === 0))
    throw new CliError('USAGE_ERROR', '--tweak must not be zero: the derived key would equal the source key');
  if (str(v, 'key-ref') === undefined)
    throw new CliError(
      'USAGE_ERROR',
      '--derive-from needs --key-ref M: the key reference of the new key',
      'add --key-ref M (a free key reference, see `sc-hsm-ts keys`)',
    );
  const dst = int(v, 'key-ref', 1, 255)!;
  if (dst === src)
    throw new CliError(
      'USAGE_ERROR',
      '--key-ref must differ from --derive-from: the derived key needs a reference of its own',
    );
  const label = reqStr(v, 'label');
  checkLabel(label, 'key label');
  const idText = str(v, 'id');
  const id = idText === undefined ? undefined : parseHexArg(idText);
  if (idText !== undefined && !id)
    throw new CliError('USAGE_ERROR', '--id takes hex bytes, e.g. 01 or a1b2c3');
  const hsm = await ctx.hsm();
  const derive = () => hsm.deriveEcKey(src, dst, tweak, { label, ...(id ? { id } : {}) });
  // source type and curve, DERIVE in its list, uses left, free --key-ref, tweak below n: before the PIN
  await ctx.login(hsm, v, derive);
  const r = await derive();
  const info = await hsm.keyInfo(r.keyRef);
  const o = ctx.out;
  o.ok(`derived EC key "${printable(label)}" from key reference ${src}`);
  o.kv('Key ref', `${r.keyRef} (use --key-ref ${r.keyRef})`);
  o.kv('ID', Buffer.from(r.id).toString('hex'));
  if (info.curve) o.kv('Curve', info.curve);
  o.kv('Public key SHA-256', spkiFingerprint(r.publicKey));
  // what the card reports for the new key now (as `keys`), not what it should have inherited
  const limits = restrictionsText(info);
  if (limits) o.kv('Restrictions', limits);
  if (info.domain !== undefined) o.kv('Key domain', info.domain);
  if (r.warning) o.warn(`${r.warning.message}; fix: ${r.warning.fix}`);
  return {
    keyRef: r.keyRef,
    derivedFrom: src,
    id: r.id,
    label,
    type: 'ec',
    bits: info.bits,
    curve: info.curve,
    publicKey: r.publicKey,
    publicKeySha256: spkiFingerprint(r.publicKey),
    algorithms: info.algorithms ? algorithmNames(info.algorithms) : null,
    useCounter: info.useCounter ?? null,
    // null: the card does not say (as keys --json)
    domain: info.domain ?? null,
    warning: r.warning ?? null,
  };
}

import { RSA_SIZES } from '../../../protocol/constants.js';
import { algorithmNames } from '../../../sc-hsm/key-restrictions.js';
import { checkLabel } from '../../../sc-hsm/validate.js';
import { curveByName } from '../../../util/curves.js';
import type { Command } from '../../command.js';
import { int, parseDecimal, reqStr, str } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { parseHexArg, printable, restrictionsText, spkiFingerprint } from '../../format.js';
import { keygenSpec } from '../meta.js';
import { parseRestrictions, runDerive } from './restrictions.js';

export type KeySpec =
  | { kind: 'rsa'; bits: number }
  | { kind: 'ec'; curve: string }
  | { kind: 'aes'; bits: 128 | 192 | 256 };

export function parseKeyType(s: string): KeySpec {
  const [kind, arg] = s.toLowerCase().split(':');
  if (kind === 'rsa') {
    const bits = arg === undefined ? 2048 : parseDecimal(arg);
    // the card's sizes, the same list key import is checked against
    if (!(RSA_SIZES as readonly number[]).includes(bits))
      throw new CliError('USAGE_ERROR', `--type rsa:BITS takes ${RSA_SIZES.join(', ')}`);
    return { kind: 'rsa', bits };
  }
  if (kind === 'ec') {
    if (!arg)
      throw new CliError(
        'USAGE_ERROR',
        '--type ec:CURVE needs a curve, e.g. ec:prime256v1, ec:secp384r1, ec:brainpoolP256r1',
      );
    return {
      kind: 'ec',
      curve:
        arg === 'p-256'
          ? 'prime256v1'
          : arg === 'p-384'
            ? 'secp384r1'
            : arg === 'p-521'
              ? 'secp521r1'
              : s.split(':')[1]!,
    };
  }
  if (kind === 'aes') {
    const bits = arg === undefined ? 256 : parseDecimal(arg);
    if (bits !== 128 && bits !== 192 && bits !== 256)
      throw new CliError('USAGE_ERROR', '--type aes:BITS takes 128, 192 or 256');
    return { kind: 'aes', bits };
  }
  throw new CliError('USAGE_ERROR', `unknown key type '${s}': use rsa:2048, ec:prime256v1, aes:256, …`);
}

export const keygen: Command = {
  ...keygenSpec,
  async run(ctx, v) {
    if (v['derive-from'] !== undefined || v.tweak !== undefined) return runDerive(ctx, v);
    const restrictions = parseRestrictions(v);
    const spec = parseKeyType(reqStr(v, 'type', 'e.g. rsa:2048 or ec:prime256v1'));
    const label = reqStr(v, 'label');
    checkLabel(label, 'key label');
    const idText = str(v, 'id');
    const id = idText === undefined ? undefined : parseHexArg(idText);
    if (idText !== undefined && !id)
      throw new CliError('USAGE_ERROR', '--id takes hex bytes, e.g. 01 or a1b2c3');
    const keyRef = int(v, 'key-ref', 1, 255);
    const domain = int(v, 'domain', 0, 254);
    const inDomain = domain === undefined ? {} : { domain };
    // What the key is comes from the request, not from reading it back: once the key exists, a
    // failure then (card pulled) would report a generated key as a failure, and a rerun makes a second.
    const curve = spec.kind === 'ec' ? curveByName(spec.curve) : undefined;
    const hsm = await ctx.hsm();
    const generate = (): Promise<{ keyRef: number; id: Uint8Array; publicKey?: Uint8Array }> => {
      const common = {
        label,
        ...(id ? { id } : {}),
        ...(keyRef ? { keyRef } : {}),
        ...restrictions,
        ...inDomain,
      };
      if (spec.kind === 'aes') return hsm.generateAesKey({ bits: spec.bits, ...common });
      if (spec.kind === 'rsa') return hsm.generateKeyPair({ type: 'rsa', bits: spec.bits, ...common });
      return hsm.generateKeyPair({ type: 'ec', curve: curve!.name, ...common });
    };
    // the library's checks from public data (occupied reference, ID in use, algorithm list) first
    await ctx.login(hsm, v, generate);
    const p = ctx.progress(`Generating ${spec.kind.toUpperCase()} key on the device…`);
    p.update(0);
    let result: { keyRef: number; id: Uint8Array; publicKey?: Uint8Array };
    try {
      result = await generate();
      p.update(1);
    } finally {
      p.done();
    }
    // the key domain as `keys` reports it (the key's FCP, read afresh: one SELECT), not as requested
    const reported = await hsm.keyRestrictions(result.keyRef).catch(() => undefined);
    // what the card applied (an AES key gets its default algorithm list when none was asked)
    const applied = {
      ...restrictions,
      ...(reported?.algorithms && { algorithms: reported.algorithms }),
      ...(reported?.useCounter !== undefined && { useCounter: reported.useCounter }),
    };
    const o = ctx.out;
    o.ok(`generated ${spec.kind.toUpperCase()} key "${printable(label)}"`);
    o.kv('Key ref', `${result.keyRef} (use --key-ref ${result.keyRef})`);
    o.kv('ID', Buffer.from(result.id).toString('hex'));
    if (result.publicKey) o.kv('Public key SHA-256', spkiFingerprint(result.publicKey));
    const limits = restrictionsText(applied);
    if (limits) o.kv('Restrictions', limits);
    if (domain !== undefined) o.kv('Key domain', domain);
    return {
      keyRef: result.keyRef,
      id: result.id,
      label,
      type: spec.kind,
      bits: spec.kind === 'ec' ? curve!.bits : spec.bits,
      curve: curve?.name,
      publicKey: result.publicKey,
      publicKeySha256: result.publicKey ? spkiFingerprint(result.publicKey) : undefined,
      algorithms: applied.algorithms ? algorithmNames(applied.algorithms) : null,
      useCounter: applied.useCounter ?? null,
      // null: the card does not say (as keys --json); what was asked when it could not be read
      domain: reported ? (reported.domain ?? null) : (domain ?? null),
    };
  },
};

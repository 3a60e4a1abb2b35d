import type { Command } from '../../command.js';
import { int, reqStr, str } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { parseHexArg, spkiFingerprint } from '../../format.js';
import { keygenSpec } from '../meta.js';

const RSA_BITS = [1024, 1536, 2048, 3072, 4096];

export type KeySpec =
  | { kind: 'rsa'; bits: number }
  | { kind: 'ec'; curve: string }
  | { kind: 'aes'; bits: 128 | 192 | 256 };

export function parseKeyType(s: string): KeySpec {
  const [kind, arg] = s.toLowerCase().split(':');
  if (kind === 'rsa') {
    const bits = Number(arg ?? '2048');
    if (!RSA_BITS.includes(bits))
      throw new CliError('USAGE_ERROR', `--type rsa:BITS takes ${RSA_BITS.join(', ')}`);
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
    const bits = Number(arg ?? '256');
    if (bits !== 128 && bits !== 192 && bits !== 256)
      throw new CliError('USAGE_ERROR', '--type aes:BITS takes 128, 192 or 256');
    return { kind: 'aes', bits };
  }
  throw new CliError('USAGE_ERROR', `unknown key type '${s}': use rsa:2048, ec:prime256v1, aes:256, …`);
}

export const keygen: Command = {
  ...keygenSpec,
  async run(ctx, v) {
    const spec = parseKeyType(reqStr(v, 'type', 'e.g. rsa:2048 or ec:prime256v1'));
    const label = reqStr(v, 'label');
    const idText = str(v, 'id');
    const id = idText === undefined ? undefined : parseHexArg(idText);
    if (idText !== undefined && !id)
      throw new CliError('USAGE_ERROR', '--id takes hex bytes, e.g. 01 or a1b2c3');
    const keyRef = int(v, 'key-ref', 1, 255);
    const hsm = await ctx.hsm();
    await ctx.login(hsm, v);
    const p = ctx.progress(`Generating ${spec.kind.toUpperCase()} key on the device…`);
    p.update(0);
    let result: { keyRef: number; id: Uint8Array; publicKey?: Uint8Array };
    try {
      if (spec.kind === 'aes')
        result = await hsm.generateAesKey({
          bits: spec.bits,
          label,
          ...(id ? { id } : {}),
          ...(keyRef ? { keyRef } : {}),
        });
      else if (spec.kind === 'rsa')
        result = await hsm.generateKeyPair({
          type: 'rsa',
          bits: spec.bits,
          label,
          ...(id ? { id } : {}),
          ...(keyRef ? { keyRef } : {}),
        });
      else
        result = await hsm.generateKeyPair({
          type: 'ec',
          curve: spec.curve,
          label,
          ...(id ? { id } : {}),
          ...(keyRef ? { keyRef } : {}),
        });
      p.update(1);
    } finally {
      p.done();
    }
    const info = await hsm.keyInfo(result.keyRef);
    const o = ctx.out;
    o.ok(`generated ${spec.kind.toUpperCase()} key "${label}"`);
    o.kv('Key ref', `${result.keyRef} (use --key-ref ${result.keyRef})`);
    o.kv('ID', Buffer.from(result.id).toString('hex'));
    if (result.publicKey) o.kv('Public key SHA-256', spkiFingerprint(result.publicKey));
    return {
      keyRef: result.keyRef,
      id: result.id,
      label,
      type: info.type,
      bits: info.bits,
      curve: info.curve,
      publicKey: result.publicKey,
      publicKeySha256: result.publicKey ? spkiFingerprint(result.publicKey) : undefined,
    };
  },
};

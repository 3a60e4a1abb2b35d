import { toHex } from '../../../util/bytes.js';
import { type Command, SECRET_HELP } from '../../command.js';
import { reqInt } from '../../context.js';
import { keyTypeText } from '../../format.js';

export const deleteKey: Command = {
  name: 'delete-key',
  summary: 'Delete a key, its description and its certificate (asks for confirmation).',
  options: {
    'key-ref': { type: 'string', arg: 'N', help: 'key reference (first column of `sc-hsm-ts keys`)' },
    pin: { type: 'string', arg: 'SECRET', help: `user PIN (${SECRET_HELP})` },
  },
  async run(ctx, v) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const hsm = await ctx.hsm();
    const k = await hsm.keyInfo(keyRef);
    await ctx.login(hsm, v);
    await ctx.confirm(
      `deleting key ${keyRef} "${k.label ?? ''}" (ID ${toHex(k.id)}, ${keyTypeText(k)}): without a backup it is gone for good.`,
    );
    await hsm.deleteKey(keyRef);
    ctx.out.ok(`key ${keyRef} deleted`);
    return { deleted: true, keyRef, id: k.id, label: k.label };
  },
};

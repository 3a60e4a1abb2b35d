import { isScHsmError } from '../../../errors.js';
import { deviceIdentity, deviceText } from '../../../sc-hsm/backup.js';
import { toHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { reqInt } from '../../context.js';
import { keyTypeText, printable } from '../../format.js';
import { deleteKeySpec } from '../meta.js';

export const deleteKey: Command = {
  ...deleteKeySpec,
  async run(ctx, v) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const hsm = await ctx.hsm();
    // named in the confirmation and the output: a scripted delete after a card swap says which device
    const device = await deviceIdentity(hsm);
    // A key with neither description nor public key (what an interrupted AES keygen leaves) is
    // listed by `keys` as type unknown; it can be deleted too.
    const k = await hsm.keyInfo(keyRef).catch(async (e: unknown) => {
      const listed = isScHsmError(e, 'KEY_NOT_FOUND')
        ? (await hsm.listKeys()).find((x) => x.keyRef === keyRef)
        : undefined;
      if (!listed) throw e;
      return listed;
    });
    await ctx.login(hsm, v);
    await ctx.confirm(
      `deleting key ${keyRef} "${printable(k.label)}" (ID ${toHex(k.id)}, ${keyTypeText(k)}) on device ${deviceText(device)}: without a backup it is gone for good.`,
    );
    await hsm.deleteKey(keyRef);
    ctx.out.ok(`key ${keyRef} deleted`);
    ctx.out.kv('Device', printable(deviceText(device)));
    return { deleted: true, keyRef, id: k.id, label: k.label, device };
  },
};

import { isScHsmError } from '../../../errors.js';
import { deviceIdentity, deviceText } from '../../../sc-hsm/backup.js';
import { toHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { reqInt } from '../../context.js';
import { keyTypeText, printable } from '../../format.js';
import { deleteKeySpec } from '../meta.js';
import { fidList } from './list.js';

export const deleteKey: Command = {
  ...deleteKeySpec,
  async run(ctx, v) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const hsm = await ctx.hsm();
    // named in the confirmation and the output: a scripted delete after a card swap says which device
    const device = await deviceIdentity(hsm);
    // A key with neither description nor public key (what an interrupted AES keygen leaves) is
    // listed by `keys` as type unknown; it can be deleted too. A reference holding no key but its
    // description or certificate (what an interrupted replace or delete left) has them removed.
    const leftover = async () => (await hsm.listOrphanedKeyFiles()).find((x) => x.keyRef === keyRef);
    const k = await hsm.keyInfo(keyRef).catch(async (e: unknown) => {
      if (!isScHsmError(e, 'KEY_NOT_FOUND')) throw e;
      const listed = (await hsm.listKeys()).find((x) => x.keyRef === keyRef);
      if (listed) return listed;
      const x = await leftover();
      if (!x) throw e;
      return x;
    });
    await ctx.login(hsm, v);
    if ('fids' in k) {
      await ctx.confirm(
        `key reference ${keyRef} on device ${deviceText(device)} holds no key, only the leftover ${fidList(k.fids)}${k.label !== undefined ? ` of "${printable(k.label)}"` : ''}${k.id ? ` (ID ${toHex(k.id)})` : ''}: they are deleted.`,
      );
      await hsm.deleteKey(keyRef);
      ctx.out.ok(`leftover files ${fidList(k.fids)} of key reference ${keyRef} deleted (there was no key)`);
      ctx.out.kv('Device', printable(deviceText(device)));
      return {
        deleted: true,
        keyRef,
        id: k.id,
        label: k.label,
        leftoverFiles: k.fids.map((f) => fidList([f])),
        device,
      };
    }
    await ctx.confirm(
      `deleting key ${keyRef} "${printable(k.label)}" (ID ${toHex(k.id)}, ${keyTypeText(k)}) on device ${deviceText(device)}: without a backup it is gone for good.`,
    );
    await hsm.deleteKey(keyRef);
    ctx.out.ok(`key ${keyRef} deleted`);
    ctx.out.kv('Device', printable(deviceText(device)));
    return { deleted: true, keyRef, id: k.id, label: k.label, device };
  },
};

import type { KeyInfo } from '../../../sc-hsm/session.js';
import { toHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import type { Ctx } from '../../context.js';
import { keyJson, keyTypeText, printable, usageNames } from '../../format.js';
import { table } from '../../io.js';
import { keysSpec } from '../meta.js';

export const KEY_REF_NOTE =
  'Note: --key-ref is the number in the first column (the key reference, the low byte of the key file CCxx,\n' +
  'shown as "Key ref" by pkcs15-tool --dump). The ID column is the PKCS#15/PKCS#11 ID (CKA_ID), a different\n' +
  'thing: sc-hsm-tool --wrap-key/--unwrap-key -i and this tool\u2019s --key-ref both take the key reference.';

export function printKeys(ctx: Ctx, keys: KeyInfo[]): void {
  if (keys.length === 0) {
    ctx.out.line('No keys on the device.');
    return;
  }
  const rows = keys.map((k) => [
    String(k.keyRef),
    toHex(k.id),
    printable(k.label),
    keyTypeText(k),
    usageNames(k.usage).join(','),
    k.hasCertificate ? 'yes' : 'no',
  ]);
  for (const l of table(['Key ref', 'ID', 'Label', 'Type', 'Usage', 'Certificate'], rows)) ctx.out.line(l);
  ctx.out.line('');
  ctx.out.line(KEY_REF_NOTE);
}

export const keys: Command = {
  ...keysSpec,
  async run(ctx, v) {
    const hsm = await ctx.hsm();
    // --pin: checked, as dump does; the key list itself is public on the SmartCard-HSM
    if (v.pin !== undefined) await ctx.login(hsm, v);
    const list = await hsm.listKeys();
    printKeys(ctx, list);
    return { keys: list.map(keyJson) };
  },
};

import type { KeyInfo, OrphanedKeyFiles } from '../../../sc-hsm/session.js';
import { toHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import type { Ctx } from '../../context.js';
import { keyJson, keyTypeText, printable, restrictionsText, usageNames } from '../../format.js';
import { table } from '../../io.js';
import { keysSpec } from '../meta.js';

export const KEY_REF_NOTE =
  'Note: --key-ref is the number in the first column (the key reference, the low byte of the key file CCxx,\n' +
  'shown as "Key ref" by pkcs15-tool --dump). The ID column is the PKCS#15/PKCS#11 ID (CKA_ID), a different\n' +
  'thing: sc-hsm-tool --wrap-key/--unwrap-key -i and this tool\u2019s --key-ref both take the key reference.';

/** `C401, CE01`. */
export function fidList(fids: number[]): string {
  return fids.map((f) => f.toString(16).toUpperCase().padStart(4, '0')).join(', ');
}

/** The keys, and the references holding only a leftover description or certificate (no key). */
export function printKeys(ctx: Ctx, keys: KeyInfo[], leftovers: OrphanedKeyFiles[] = []): void {
  if (keys.length === 0 && leftovers.length === 0) {
    ctx.out.line('No keys on the device.');
    return;
  }
  // a key domain column once a key is outside domain 0 (spec §3.10: wrapped under that domain's DKEK)
  const domains = keys.some((k) => (k.domain ?? 0) !== 0);
  const rows = [
    ...keys.map((k) => ({
      ref: k.keyRef,
      cells: [
        String(k.keyRef),
        toHex(k.id),
        printable(k.label),
        keyTypeText(k),
        usageNames(k.usage).join(','),
        k.hasCertificate ? 'yes' : 'no',
        ...(domains ? [k.domain === undefined ? '?' : String(k.domain)] : []),
      ],
    })),
    ...leftovers.map((x) => ({
      ref: x.keyRef,
      cells: [
        String(x.keyRef),
        x.id ? toHex(x.id) : '',
        printable(x.label),
        `NO KEY (only ${fidList(x.fids)})`,
        '',
        '',
        ...(domains ? [''] : []),
      ],
    })),
  ].sort((a, b) => a.ref - b.ref);
  for (const l of table(
    ['Key ref', 'ID', 'Label', 'Type', 'Usage', 'Certificate', ...(domains ? ['Domain'] : [])],
    rows.map((r) => r.cells),
  ))
    ctx.out.line(l);
  ctx.out.line('');
  const restricted = keys.filter((k) => restrictionsText(k) !== undefined);
  for (const k of restricted) ctx.out.line(`Key ref ${k.keyRef}: ${restrictionsText(k)}`);
  if (restricted.length) ctx.out.line('');
  if (leftovers.length) {
    ctx.out.line(
      `Incomplete: key reference(s) ${leftovers.map((x) => x.keyRef).join(', ')} hold no key, only the description or certificate of one`,
    );
    ctx.out.line(
      '(left by an interrupted replace or delete). Remove them with sc-hsm-ts delete-key --key-ref N; a forced unwrap or restore',
    );
    ctx.out.line('onto the reference removes them too.');
    ctx.out.line('');
  }
  ctx.out.line(KEY_REF_NOTE);
}

export const keys: Command = {
  ...keysSpec,
  async run(ctx, v) {
    const hsm = await ctx.hsm();
    // --pin: checked, as dump does; the key list itself is public on the SmartCard-HSM
    if (v.pin !== undefined) await ctx.login(hsm, v);
    const list = await hsm.listKeys();
    const leftovers = await hsm.listOrphanedKeyFiles();
    printKeys(ctx, list, leftovers);
    return {
      keys: list.map(keyJson),
      // references without a key but with its description or certificate (docs/cli.md `keys`)
      incomplete: leftovers.map((x) => ({
        keyRef: x.keyRef,
        files: x.fids.map((f) => f.toString(16).toUpperCase().padStart(4, '0')),
        id: x.id,
        label: x.label,
      })),
    };
  },
};

import { type Command, SECRET_HELP } from '../../command.js';
import { flag, reqInt, reqStr } from '../../context.js';
import { refuseOverwrite, writeAtomic } from '../../files.js';
import { kcvText, sha256Hex } from '../../format.js';
import { wrapFileInfo } from '../../wrapfile-info.js';

export const PIN_OPTION = { type: 'string', arg: 'SECRET', help: `user PIN (${SECRET_HELP})` } as const;

export const wrap: Command = {
  name: 'wrap',
  summary: 'Export one key encrypted under the DKEK into a .bin file (sc-hsm-tool --wrap-key format).',
  options: {
    'key-ref': { type: 'string', arg: 'N', help: 'key reference (first column of `sc-hsm-ts keys`)' },
    out: { type: 'string', arg: 'FILE.bin', help: 'output file (must not exist unless --force)' },
    force: { type: 'boolean', help: 'replace an existing output file' },
    pin: PIN_OPTION,
  },
  examples: ['sc-hsm-ts wrap --key-ref 1 --out key1.bin --pin env:PIN'],
  async run(ctx, v) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const out = reqStr(v, 'out', 'the .bin file to write');
    await refuseOverwrite(out, flag(v, 'force'), 'output file');
    const hsm = await ctx.hsm();
    await hsm.keyInfo(keyRef);
    await ctx.login(hsm, v);
    const bin = await hsm.backupKey(keyRef);
    const info = wrapFileInfo(bin);
    await writeAtomic(out, bin, 0o600);
    ctx.out.ok(`key ${keyRef} wrapped into ${out}`);
    ctx.out.kv('DKEK key check value', kcvText(info.header.kcv));
    return { keyRef, file: out, kcv: info.header.kcv, keyType: info.header.keyType, sha256: sha256Hex(bin) };
  },
};

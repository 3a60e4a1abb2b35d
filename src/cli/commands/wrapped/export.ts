import { createPrivateKey } from 'node:crypto';
import { decryptKeyBlob } from '../../../dkek/index.js';
import { wrapFileInfo } from '../../../sc-hsm/wrap-info.js';
import { toHex, wipe } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { flag, list, reqStr } from '../../context.js';
import { readDkek } from '../../dkek-input.js';
import { CliError } from '../../exit-codes.js';
import { prepareOutput, readHostFile, writeOutput } from '../../files.js';
import { wrappedExportSpec } from '../meta.js';

export const wrappedExport: Command = {
  ...wrappedExportSpec,
  async run(ctx, v, [file]) {
    if (!flag(v, 'i-understand-this-exports-a-private-key')) {
      throw new CliError(
        'CONFIRMATION_REQUIRED',
        'this writes a private key in clear; add --i-understand-this-exports-a-private-key to proceed',
      );
    }
    const out = reqStr(v, 'out', 'the PEM file to write');
    const target = await prepareOutput(ctx, out);
    const info = wrapFileInfo(await readHostFile(file!, 'wrap file'));
    const dkek = await readDkek(ctx, list(v, 'dkek'), list(v, 'password'));
    let dec: ReturnType<typeof decryptKeyBlob>;
    try {
      dec = decryptKeyBlob(info.wrap.blob, dkek);
    } finally {
      wipe(dkek);
    }
    let content: string;
    if (dec.pkcs8) {
      content = createPrivateKey({ key: Buffer.from(dec.pkcs8), format: 'der', type: 'pkcs8' })
        .export({ format: 'pem', type: 'pkcs8' })
        .toString();
      wipe(dec.pkcs8);
    } else if (dec.aesKey) {
      content = `${toHex(dec.aesKey)}\n`;
      wipe(dec.aesKey);
    } else throw new CliError('INVALID_KEY_BLOB', 'the blob holds no key material');
    // created exclusively at the last step: a file that appeared meanwhile is never replaced
    await writeOutput(ctx, target, content, 0o600);
    ctx.out.warn(
      `the private key is now in clear in ${out} (mode 0600): protect it and destroy it when done`,
    );
    ctx.out.ok(`exported ${dec.keyType} ${dec.curve ?? dec.bits} key to ${out}`);
    return { file, out, keyType: dec.keyType, bits: dec.bits, curve: dec.curve, mode: '0600' };
  },
};

import type { KeyObject } from 'node:crypto';
import { isScHsmError } from '../../../errors.js';
import { deviceIdentity, importPrivateKey, readPrivateKey } from '../../../sc-hsm/backup.js';
import { algorithmNames, checkAlgorithmList } from '../../../sc-hsm/key-restrictions.js';
import { checkLabel } from '../../../sc-hsm/validate.js';
import { toHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { flag, int, list, reqInt, reqStr, str } from '../../context.js';
import { readDkek } from '../../dkek-input.js';
import { CliError } from '../../exit-codes.js';
import { readHostFile } from '../../files.js';
import { parseHexArg, printable } from '../../format.js';
import { parseRestrictions } from '../keys/restrictions.js';
import { importKeySpec } from '../meta.js';
import { besideInput, replacedKeySaver, replaceFailure } from './replaced.js';

export const importKey: Command = {
  ...importKeySpec,
  async run(ctx, v, [file]) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const label = reqStr(v, 'label');
    checkLabel(label, 'key label');
    const idText = str(v, 'id');
    const givenId = idText === undefined ? undefined : parseHexArg(idText);
    if (idText !== undefined && !givenId) throw new CliError('USAGE_ERROR', '--id takes hex bytes');
    const dkekFiles = list(v, 'dkek');
    if (dkekFiles.length === 0)
      throw new CliError('USAGE_ERROR', '--dkek FILE.pbe is required (repeat it for each share)');
    const pem = await readHostFile(file!, 'key file');
    const encrypted = /ENCRYPTED/.test(Buffer.from(pem).toString('utf8'));
    const passphrase = encrypted
      ? await ctx.secret(v['key-password'], { option: 'key-password', prompt: `Passphrase of ${file}` })
      : undefined;
    // read before the device is opened: a bad key file is a usage error
    let key: KeyObject;
    try {
      key = readPrivateKey(pem, passphrase);
    } catch (e) {
      if (!isScHsmError(e, 'INVALID_ARGUMENT')) throw e;
      throw new CliError(
        'USAGE_ERROR',
        /^not a readable/.test(e.message)
          ? `${file} is not a readable private key (PEM or PKCS#8 DER; encrypted PEM needs --key-password)`
          : `${file}: ${e.message}`,
      );
    }
    const { algorithms } = parseRestrictions({ algorithms: v.algorithms });
    if (algorithms)
      checkAlgorithmList(algorithms, '--algorithms', key.asymmetricKeyType === 'rsa' ? 'rsa' : 'ec');
    const domain = int(v, 'domain', 0, 254);
    const hsm = await ctx.hsm();
    const device = await deviceIdentity(hsm);
    const force = flag(v, 'force');
    // a replaced key's wrapped copy goes beside FILE before the key is deleted; a failed forced
    // replace puts the old key back
    const saved = new Map<number, string>();
    const r = await importPrivateKey(hsm, {
      key,
      keyRef,
      label,
      ...(givenId ? { id: givenId } : {}),
      ...(algorithms ? { algorithms } : {}),
      ...(domain !== undefined ? { domain } : {}),
      force,
      // the shares' passwords are asked only once the device is known to accept the key
      dkek: () => readDkek(ctx, dkekFiles, list(v, 'password')),
      authenticate: () => ctx.login(hsm, v),
      confirmReplace: async (present) => {
        await ctx.confirm(
          `--force replaces key ${keyRef} "${printable(present.label)}": its wrapped copy is written into ${besideInput(file!)} before it is deleted${
            // an imported key has no use counter (the blob has no field for it, spec §8)
            present.useCounter === undefined
              ? ''
              : `; it has a key use counter (${present.useCounter} use(s) left), which the imported key does not get: it can be used without limit`
          }.`,
        );
        return true;
      },
      onReplaced: replacedKeySaver(device, saved, {
        dir: besideInput(file!),
        fix: `copy ${file} into a writable directory and import it from there`,
        say: (line) => ctx.out.note(line),
      }),
    }).catch(async (e: unknown) => {
      throw await replaceFailure(e, {
        choices: { force, allowKeyLoss: false },
        device,
        saved,
        input: besideInput(file!),
      });
    });
    ctx.out.ok(`${file} imported to key reference ${keyRef} ("${printable(label)}", ID ${toHex(r.id)})`);
    ctx.out.kv('Public key SHA-256', r.publicKeySha256);
    const copy = saved.get(keyRef);
    if (copy) ctx.out.line(`  the replaced key's wrapped copy: ${copy}`);
    return {
      ...(copy ? { replacedSavedTo: copy } : {}),
      keyRef,
      id: r.id,
      label,
      type: r.type,
      bits: r.bits,
      publicKeySha256: r.publicKeySha256,
      algorithms: algorithms ? algorithmNames(algorithms) : null,
    };
  },
};

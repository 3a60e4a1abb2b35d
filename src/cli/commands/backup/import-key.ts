import { createPrivateKey, createPublicKey } from 'node:crypto';
import { encodeWrapFile, encryptKeyBlob, keyCheckValue } from '../../../dkek/index.js';
import { encodeKeyDescription, KEY_USAGE, OBJECT_FLAGS } from '../../../pkcs15/index.js';
import { intrinsicKeyId } from '../../../sc-hsm/session.js';
import { checkLabel } from '../../../sc-hsm/validate.js';
import { bytesEqual, toHex, wipe } from '../../../util/bytes.js';
import { curveByName } from '../../../util/curves.js';
import type { Command } from '../../command.js';
import { flag, list, reqInt, reqStr, str } from '../../context.js';
import { readDkek } from '../../dkek-input.js';
import { CliError } from '../../exit-codes.js';
import { readHostFile } from '../../files.js';
import { kcvText, parseHexArg, spkiFingerprint } from '../../format.js';
import { importKeySpec } from '../meta.js';

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
    const text = Buffer.from(pem).toString('utf8');
    const encrypted = /ENCRYPTED/.test(text);
    const passphrase = encrypted
      ? await ctx.secret(v['key-password'], { option: 'key-password', prompt: `Passphrase of ${file}` })
      : undefined;
    let key: ReturnType<typeof createPrivateKey>;
    try {
      key = text.includes('-----BEGIN')
        ? createPrivateKey(passphrase === undefined ? text : { key: text, passphrase })
        : createPrivateKey({ key: Buffer.from(pem), format: 'der', type: 'pkcs8' });
    } catch {
      throw new CliError(
        'USAGE_ERROR',
        `${file} is not a readable private key (PEM or PKCS#8 DER; encrypted PEM needs --key-password)`,
      );
    }
    const kind = key.asymmetricKeyType;
    if (kind !== 'rsa' && kind !== 'ec')
      throw new CliError('USAGE_ERROR', `${file}: only RSA and EC keys can be imported (got ${kind})`);
    const spki = new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }));
    const bits =
      kind === 'rsa'
        ? key.asymmetricKeyDetails!.modulusLength!
        : curveByName(key.asymmetricKeyDetails!.namedCurve!).bits;
    const hsm = await ctx.hsm();
    const st = await hsm.dkekStatus();
    if (!st)
      throw new CliError('NO_DKEK', 'the device has no DKEK: keys cannot be imported. Nothing was changed.');
    if (st.outstanding > 0)
      throw new CliError(
        'DKEK_INCOMPLETE',
        `the DKEK still misses ${st.outstanding} share(s). Nothing was changed.`,
      );
    const occupied = (await hsm.listKeys()).find((k) => k.keyRef === keyRef);
    if (occupied && !flag(v, 'force'))
      throw new CliError(
        'KEY_REF_OCCUPIED',
        `key reference ${keyRef} is in use ("${occupied.label ?? ''}"). Nothing was changed.`,
      );
    const dkek = await readDkek(ctx, dkekFiles, list(v, 'password'));
    const pkcs8 = new Uint8Array(key.export({ format: 'der', type: 'pkcs8' }));
    let blob: Uint8Array;
    try {
      if (!bytesEqual(keyCheckValue(dkek), st.kcv)) {
        throw new CliError(
          'KCV_MISMATCH',
          `the share files give DKEK ${kcvText(keyCheckValue(dkek))}, the device has ${kcvText(st.kcv)}. Nothing was changed.`,
        );
      }
      blob = encryptKeyBlob({ pkcs8 }, dkek);
    } finally {
      wipe(dkek);
      wipe(pkcs8);
    }
    const id = givenId ?? intrinsicKeyId(spki);
    const prkd = encodeKeyDescription({
      kind,
      label,
      objectFlags: OBJECT_FLAGS.PRIVATE | OBJECT_FLAGS.MODIFIABLE,
      authId: Uint8Array.of(1),
      id,
      usage:
        kind === 'rsa'
          ? KEY_USAGE.DECRYPT | KEY_USAGE.SIGN | KEY_USAGE.SIGN_RECOVER
          : KEY_USAGE.SIGN | KEY_USAGE.SIGN_RECOVER | KEY_USAGE.DERIVE,
      keyReference: keyRef,
      bits,
    });
    await ctx.login(hsm, v);
    if (occupied) await ctx.confirm(`--force replaces key ${keyRef} "${occupied.label ?? ''}".`);
    await hsm.restoreKey(encodeWrapFile({ blob, prkd }), keyRef, { force: Boolean(occupied) });
    ctx.out.ok(`${file} imported to key reference ${keyRef} ("${label}", ID ${toHex(id)})`);
    ctx.out.kv('Public key SHA-256', spkiFingerprint(spki));
    return { keyRef, id, label, type: kind, bits, publicKeySha256: spkiFingerprint(spki) };
  },
};

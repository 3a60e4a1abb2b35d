import { isScHsmError } from '../../../errors.js';
import { deviceIdentity, deviceText } from '../../../sc-hsm/backup.js';
import { dkekKcvUnknown, type UnwrapOptions } from '../../../sc-hsm/session.js';
import { wrapFileDamage, wrapFileInfo } from '../../../sc-hsm/wrap-info.js';
import { bytesEqual, toHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { int, reqInt, str } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { readHostFile } from '../../files.js';
import { kcvText, parseHexArg, printable } from '../../format.js';
import { unwrapSpec } from '../meta.js';
import {
  besideInput,
  copyDir,
  replaceChoices,
  replacedKeySaver,
  replaceFailure,
  UNSAFE_FIX,
} from './replaced.js';

export const unwrap: Command = {
  ...unwrapSpec,
  async run(ctx, v, [file]) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const idText = str(v, 'id');
    const givenId = idText === undefined ? undefined : parseHexArg(idText);
    if (idText !== undefined && (!givenId || givenId.length > 255))
      throw new CliError('USAGE_ERROR', '--id takes 1 to 255 hex bytes, e.g. --id 0a1b2c');
    const choices = await replaceChoices(v);
    const bin = await readHostFile(file!, 'wrap file');
    const info = wrapFileInfo(bin);
    // the whole file before the device is opened: a damaged description or public key would end
    // up on the device beside a key that is not its own
    const damage = wrapFileDamage(info);
    if (damage)
      throw new CliError(
        'INVALID_WRAP_FILE',
        `${file} is damaged: ${damage}. Nothing was changed.`,
        'wrap the key again from a device that has it (sc-hsm-ts wrap), or use another copy of the file',
      );
    if (givenId && !info.wrap.keyDescription)
      throw new CliError(
        'USAGE_ERROR',
        `${file} carries no key description, so it has no ID to replace: nothing was changed`,
        'leave --id out',
      );
    const hsm = await ctx.hsm();
    const device = await deviceIdentity(hsm);
    // the card puts the key into the lowest key domain whose DKEK has the blob's KCV (spec §3.10)
    const domain = int(v, 'domain', 0, 254);
    const { slots, domains } = await hsm.listKeyDomains();
    if (domain !== undefined && domain >= slots)
      throw new CliError(
        'KEY_DOMAIN_OUT_OF_RANGE',
        `the device has ${slots} key domain(s), no domain ${domain}: nothing was changed`,
        'sc-hsm-ts domain status lists the domains',
      );
    const candidates = domains.filter((d) => !d.xkekUid && (domain === undefined || d.domain === domain));
    const dkek = candidates.find(
      (d) => d.outstanding === 0 && (bytesEqual(d.kcv, info.header.kcv) || dkekKcvUnknown(d)),
    );
    const where = domain === undefined ? 'the device' : `key domain ${domain}`;
    if (!dkek) {
      if (candidates.length === 0)
        throw new CliError(
          domain ? 'KEY_DOMAIN_UNUSED' : 'NO_DKEK',
          `${where} has no DKEK: nothing was changed`,
          domain
            ? `create it and import its shares: sc-hsm-ts domain create --domain ${domain} --shares K`
            : undefined,
        );
      const complete = candidates.filter((d) => d.outstanding === 0);
      if (complete.length === 0)
        throw new CliError(
          'DKEK_INCOMPLETE',
          `${where} still misses ${candidates.map((d) => d.outstanding).join('/')} DKEK share(s): nothing was changed`,
        );
      throw new CliError(
        'KCV_MISMATCH',
        `${file} was wrapped under another DKEK (key check value ${kcvText(info.header.kcv)}, ${
          complete.length === 1 && domains.length === 1
            ? `this device ${kcvText(complete[0]!.kcv)}`
            : `this device: ${complete.map((d) => `domain ${d.domain} ${kcvText(d.kcv)}`).join(', ')}`
        }): nothing was changed`,
      );
    }
    const checkKcv = (kcv: Uint8Array) => {
      if (!bytesEqual(kcv, info.header.kcv)) {
        throw new CliError(
          'KCV_MISMATCH',
          `${file} was wrapped under another DKEK (key check value ${kcvText(info.header.kcv)}, this device ${kcvText(kcv)}): nothing was changed`,
        );
      }
    };
    // zeros from a complete DKEK: firmware that shows the KCV only after login (checked below)
    const kcvUnknown = dkekKcvUnknown(dkek);
    const keys = await hsm.listKeys();
    const leftovers = await hsm.listOrphanedKeyFiles();
    const present = keys.find((k) => k.keyRef === keyRef);
    if (present && !choices.force) {
      throw new CliError(
        'KEY_REF_OCCUPIED',
        `key reference ${keyRef} holds key "${printable(present.label)}" (ID ${toHex(present.id)}): nothing was changed`,
      );
    }
    const leftover = leftovers.find((x) => x.keyRef === keyRef);
    const leftoverFiles = leftover?.fids.map((f) => f.toString(16).toUpperCase()).join(', ');
    if (leftover && !choices.force) {
      throw new CliError(
        'KEY_REF_OCCUPIED',
        `key reference ${keyRef} holds no key, but the description or certificate of one (${leftoverFiles}; left by an interrupted replace or delete): nothing was changed`,
        `repeat with --force, which removes them; or remove them first: sc-hsm-ts delete-key --key-ref ${keyRef}`,
      );
    }
    // one ID, one key (as keygen --id): unless the key with this ID is the one replaced
    const id = givenId ?? info.wrap.id;
    const sameId = id
      ? (keys.find((k) => k.keyRef !== keyRef && k.description && bytesEqual(k.id, id)) ??
        leftovers.find((x) => x.keyRef !== keyRef && x.id && bytesEqual(x.id, id)))
      : undefined;
    if (id && sameId) {
      throw new CliError(
        'KEY_ID_IN_USE',
        `${givenId ? `--id ${toHex(id)}` : `${file} holds a key with the ID ${toHex(id)}, which`} key reference ${sameId.keyRef} ("${printable(sameId.label)}") on this device already has: two keys with one ID confuse PKCS#11 applications. Nothing was changed.`,
        `if key reference ${sameId.keyRef} is an unrelated key (another label or type; an AES key cannot be compared), keep it and give this key another ID: sc-hsm-ts unwrap ${file} --key-ref ${keyRef} --id HEX. Only if it is this very key, it is on the device already (replace it with: sc-hsm-ts unwrap ${file} --key-ref ${sameId.keyRef} --force); only if key reference ${sameId.keyRef} is no longer needed, free its ID: sc-hsm-ts delete-key --key-ref ${sameId.keyRef} (back it up first)`,
      );
    }
    await ctx.login(hsm, v);
    if (kcvUnknown) {
      const again = await hsm.dkekStatus();
      if (again && !dkekKcvUnknown(again)) checkKcv(again.kcv);
      else ctx.out.note('the device does not show its DKEK key check value: the card checks the wrapped key');
    }
    const saved = new Map<number, string>();
    const dir = copyDir(choices, besideInput(file!));
    const failure = (e: unknown) =>
      replaceFailure(e, {
        choices,
        device,
        saved,
        input: dir,
        unsafeFix: UNSAFE_FIX,
      });
    if (present) {
      // can the old key be put back if the new one is refused? (WRAP KEY changes nothing)
      let wrappable = true;
      try {
        await hsm.backupKey(keyRef);
      } catch (e) {
        if (!isScHsmError(e, 'ALGORITHM_NOT_ALLOWED')) throw e;
        wrappable = false;
        if (!choices.allowKeyLoss) {
          throw new CliError(
            'REPLACE_UNSAFE',
            `key ${keyRef} "${printable(present.label)}" may not be wrapped (its algorithm list lacks WRAP), so it could not be put back if the new key were refused: it is not replaced. Nothing was changed.`,
            UNSAFE_FIX,
          );
        }
      }
      await ctx.confirm(
        `--force replaces key ${keyRef} "${printable(present.label)}" (ID ${toHex(present.id)}) on device ${deviceText(device)}${
          wrappable
            ? `: its wrapped copy is written into ${dir} before it is deleted, and it is put back if the new key is refused`
            : ': it may not be wrapped, so if the new key is refused it is lost'
        }${
          // the wrapped key carries no use counter (spec §8): the limit goes with the old key
          present.useCounter === undefined
            ? ''
            : `; it has a key use counter (${present.useCounter} use(s) left), which ${printable(file!)} does not carry: the key unwrapped there can be used without limit`
        }.`,
      );
    }
    if (leftover)
      ctx.out.note(
        `key reference ${keyRef} holds no key but leftover files (${leftoverFiles}) of one: they are removed`,
      );
    const opts: UnwrapOptions = {
      ...(domain !== undefined && { domain }),
      ...(givenId && { id: givenId }),
      force: choices.force,
      allowKeyLoss: choices.allowKeyLoss,
      authenticate: () => ctx.login(hsm, v),
      onReplaced: replacedKeySaver(device, saved, {
        dir,
        fix: 'name a writable directory for the copy: --save-replaced DIR',
        say: (line) => ctx.out.note(line),
      }),
    };
    try {
      await hsm.restoreKey(bin, keyRef, opts);
    } catch (e) {
      throw await failure(e);
    }
    const k = await hsm.keyInfo(keyRef);
    ctx.out.ok(`key restored to key reference ${keyRef} ("${printable(k.label)}", ID ${toHex(k.id)})`);
    ctx.out.kv('Device', printable(deviceText(device)));
    const replaced = present
      ? { id: present.id, label: present.label, savedTo: saved.get(keyRef) }
      : undefined;
    if (replaced)
      ctx.out.line(
        `  replaced key "${printable(replaced.label)}" (ID ${toHex(replaced.id)})${
          replaced.savedTo
            ? `: its wrapped copy is ${replaced.savedTo} (keep it until the new key is known to be right; sc-hsm-ts unwrap ${replaced.savedTo} --key-ref ${keyRef} --force puts it back)`
            : ''
        }`,
      );
    return {
      keyRef,
      file,
      id: k.id,
      label: k.label,
      type: k.type,
      bits: k.bits,
      curve: k.curve,
      device,
      replaced,
    };
  },
};

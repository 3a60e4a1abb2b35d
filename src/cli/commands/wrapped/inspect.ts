import { X509Certificate } from 'node:crypto';
import { decryptKeyBlob } from '../../../dkek/index.js';
import { algorithmNames } from '../../../sc-hsm/key-restrictions.js';
import { wrapFileDamage, wrapFileInfo } from '../../../sc-hsm/wrap-info.js';
import { toHex, wipe } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { list } from '../../context.js';
import { readDkek } from '../../dkek-input.js';
import { CliError } from '../../exit-codes.js';
import { readHostFile } from '../../files.js';
import { kcvText, printable, spkiFingerprint, usageText } from '../../format.js';
import { wrappedInspectSpec } from '../meta.js';

export const wrappedInspect: Command = {
  ...wrappedInspectSpec,
  async run(ctx, v, [file]) {
    const info = wrapFileInfo(await readHostFile(file!, 'wrap file'));
    const o = ctx.out;
    const h = info.header;
    const out: Record<string, unknown> = {
      file,
      kcv: h.kcv,
      keyType: h.keyType,
      defaultAlgorithm: h.defaultAlgorithm,
      algorithms: h.algorithms,
      algorithmNames: algorithmNames(h.algorithms),
      label: info.description?.label,
      id: info.description?.id,
      keyRef: info.description?.keyReference,
      usage: info.description?.usage,
      bits: info.description?.bits,
    };
    o.kv('File', file!);
    o.kv('DKEK key check value', kcvText(h.kcv));
    o.kv('Key type', h.keyType);
    o.kv(
      'Algorithms',
      h.algorithms.length
        ? `${algorithmNames(h.algorithms).join(', ')} (${toHex(h.algorithms)})`
        : 'none listed',
    );
    if (info.description) {
      o.kv('Label', printable(info.description.label));
      o.kv('ID', toHex(info.description.id));
      if (info.description.keyReference !== undefined)
        o.kv('Key ref (at wrap)', info.description.keyReference);
      o.kv('Size', info.description.bits);
      o.kv('Usage', usageText(info.description.usage));
    }
    if (info.certificate) {
      try {
        const c = new X509Certificate(Buffer.from(info.certificate));
        o.kv('Certificate subject', printable(c.subject.replace(/\n/g, ', ')));
        out.certificateSubject = c.subject.replace(/\n/g, ', ');
      } catch {
        o.kv('Certificate', 'present (unreadable)');
      }
    } else if (info.wrap.certificate) o.kv('Certificate', 'none (CV request of key generation)');
    if (info.publicKey) {
      o.kv('Public key SHA-256', spkiFingerprint(info.publicKey));
      out.publicKeySha256 = spkiFingerprint(info.publicKey);
    }
    const files = list(v, 'dkek');
    let decodedPublicKey: Uint8Array | undefined;
    if (files.length) {
      const dkek = await readDkek(ctx, files, list(v, 'password'));
      try {
        const dec = decryptKeyBlob(info.wrap.blob, dkek);
        o.ok('MAC verified: the DKEK matches and the blob is intact');
        o.kv('Key', `${dec.keyType} ${dec.curve ?? dec.bits}`);
        out.macVerified = true;
        out.bits = dec.bits;
        out.curve = dec.curve;
        if (dec.publicKey) {
          out.publicKeySha256 = spkiFingerprint(dec.publicKey);
          decodedPublicKey = dec.publicKey;
        }
        wipe(dec.pkcs8);
        wipe(dec.aesKey);
      } finally {
        wipe(dkek);
      }
    }
    // the parts the blob's MAC does not cover: what unwrap and restore refuse
    const damage = wrapFileDamage(info, decodedPublicKey);
    if (damage)
      throw new CliError(
        'INVALID_WRAP_FILE',
        `${file} is damaged: ${damage}; unwrap and restore refuse it`,
        'wrap the key again from a device that has it (sc-hsm-ts wrap), or use another copy of the file',
      );
    return out;
  },
};

import { X509Certificate } from 'node:crypto';
import {
  cvcPublicKeyToSpki,
  decodeCertificateDescription,
  decodeCvRequest,
  decodeDataObjectDescription,
  decodeDeviceCertificateFile,
  decodeKeyDescription,
  decodeTokenInfo,
  type KeyDescription,
} from '../../../pkcs15/index.js';
import { EF, PIN_SO, PIN_USER, PREFIX } from '../../../sc-hsm/constants.js';
import { certificateSpki } from '../../../sc-hsm/session.js';
import { toHex } from '../../../util/bytes.js';
import { type Command, SECRET_HELP } from '../../command.js';
import {
  accessText,
  kcvText,
  objectFlagsText,
  spkiFingerprint,
  usageNames,
  usageText,
} from '../../format.js';
import { optionLines } from './status.js';

function certJson(der: Uint8Array): Record<string, unknown> {
  try {
    const c = new X509Certificate(Buffer.from(der));
    return {
      subject: c.subject.replace(/\n/g, ', '),
      issuer: c.issuer.replace(/\n/g, ', '),
      notBefore: new Date(c.validFrom).toISOString(),
      notAfter: new Date(c.validTo).toISOString(),
      serialNumber: c.serialNumber.toLowerCase(),
      sha256: c.fingerprint256.replace(/:/g, '').toLowerCase(),
    };
  } catch {
    return { unreadable: true };
  }
}

export const dump: Command = {
  name: 'dump',
  summary:
    'Everything on the card: device, PINs, DKEK, keys (pkcs15-tool style), certificates, data objects, device certificate chain.',
  description: [
    'Public information needs no PIN; --pin adds the PIN-protected data objects. The card is enumerated',
    'once and each file read once. With --trace FILE the APDU transcript (PINs masked) makes a bug report.',
  ].join('\n'),
  options: {
    pin: {
      type: 'string',
      arg: 'SECRET',
      help: `user PIN, to include PIN-protected data objects (${SECRET_HELP})`,
    },
  },
  examples: ['sc-hsm-ts dump', 'sc-hsm-ts dump --json > dump.json', 'sc-hsm-ts dump --trace dump.apdu'],
  async run(ctx, v) {
    const d = await ctx.open();
    const hsm = d.hsm;
    const so = await hsm.pinStatus(PIN_SO);
    const initialized = so.state !== 'not-initialized';
    const user = initialized ? await hsm.pinStatus(PIN_USER) : undefined;
    if (initialized && v.pin !== undefined) await ctx.login(hsm, v);
    const dkek = initialized ? await hsm.dkekStatus() : undefined;
    const fids = initialized ? await hsm.enumerate() : [];
    const read = async (fid: number) => {
      try {
        return await hsm.readFile(fid);
      } catch {
        return undefined;
      }
    };
    const ef2f02 = await read(EF.DEVICE_CERTIFICATES);
    const ef2f03 = initialized ? await read(EF.TOKEN_INFO) : undefined;
    const device: Record<string, unknown> = {
      reader: d.reader,
      atr: d.atr,
      version: `${hsm.info.version.major}.${hsm.info.version.minor}`,
      options: hsm.info.options,
      optionNames: optionLines(hsm.info.options),
      initialized,
    };
    const chain: Record<string, unknown>[] = [];
    if (ef2f02?.length) {
      try {
        const dc = decodeDeviceCertificateFile(ef2f02);
        device.deviceChr = dc.device.chr;
        device.serial = dc.device.chr.length > 5 ? dc.device.chr.slice(0, -5) : dc.device.chr;
        for (const c of [dc.device, dc.issuer])
          if (c)
            chain.push({
              chr: c.chr,
              car: c.car,
              effectiveDate: c.effectiveDate,
              expirationDate: c.expirationDate,
            });
      } catch {
        device.deviceCertificates = 'unreadable';
      }
    }
    if (ef2f03?.length) {
      try {
        device.label = decodeTokenInfo(ef2f03).label;
      } catch {
        // no readable label
      }
    }
    const byPrefix = (p: number) =>
      fids
        .filter((f) => f >> 8 === p)
        .map((f) => f & 0xff)
        .sort((a, b) => a - b);
    const keys: Record<string, unknown>[] = [];
    const keyRefs = byPrefix(PREFIX.KEY).filter((r) => r !== 0);
    for (const ref of keyRefs) {
      const k: Record<string, unknown> = { keyRef: ref };
      let desc: KeyDescription | undefined;
      if (fids.includes((PREFIX.PRKD << 8) | ref)) {
        const raw = await read((PREFIX.PRKD << 8) | ref);
        try {
          if (raw) desc = decodeKeyDescription(raw);
        } catch {
          k.descriptionError = 'unreadable key description';
        }
      }
      if (desc) {
        Object.assign(k, {
          label: desc.label,
          id: desc.id,
          type: desc.kind,
          bits: desc.bits,
          objectFlags: desc.objectFlags,
          usage: desc.usage,
          usageNames: usageNames(desc.usage),
          access: desc.access,
          authId: desc.authId,
          native: desc.native,
        });
      }
      if (fids.includes((PREFIX.EE_CERTIFICATE << 8) | ref)) {
        const ce = await read((PREFIX.EE_CERTIFICATE << 8) | ref);
        try {
          if (ce?.[0] === 0x30) {
            k.certificate = certJson(ce);
            k.publicKeySha256 = spkiFingerprint(certificateSpki(ce));
          } else if (ce) {
            const spki = cvcPublicKeyToSpki(decodeCvRequest(ce).certificate.publicKey);
            k.publicKeySha256 = spkiFingerprint(spki);
          }
        } catch {
          k.publicKeyError = 'unreadable certificate or request';
        }
      }
      keys.push(k);
    }
    const certificates: Record<string, unknown>[] = [];
    for (const n of byPrefix(PREFIX.CA_CERTIFICATE)) {
      const c: Record<string, unknown> = {
        fid: ((PREFIX.CA_CERTIFICATE << 8) | n).toString(16).toUpperCase(),
      };
      if (fids.includes((PREFIX.CD << 8) | n)) {
        const raw = await read((PREFIX.CD << 8) | n);
        try {
          if (raw) {
            const cd = decodeCertificateDescription(raw);
            Object.assign(c, { label: cd.label, id: cd.id, authority: cd.authority });
          }
        } catch {
          // description unreadable
        }
      }
      const der = await read((PREFIX.CA_CERTIFICATE << 8) | n);
      if (der) Object.assign(c, certJson(der));
      certificates.push(c);
    }
    const dataObjects: Record<string, unknown>[] = [];
    for (const n of byPrefix(PREFIX.DCOD)) {
      const raw = await read((PREFIX.DCOD << 8) | n);
      const o: Record<string, unknown> = { fid: ((PREFIX.DCOD << 8) | n).toString(16).toUpperCase() };
      try {
        if (raw) {
          const dd = decodeDataObjectDescription(raw);
          Object.assign(o, {
            label: dd.label,
            applicationName: dd.applicationName,
            applicationOid: dd.applicationOid,
            path: dd.path,
            private: Boolean(dd.objectFlags & 1),
          });
        }
      } catch {
        o.error = 'unreadable description';
      }
      dataObjects.push(o);
    }
    for (const [prefix, isPrivate] of [
      [PREFIX.DATA_PUBLIC, false],
      [PREFIX.DATA_PRIVATE, true],
    ] as const) {
      for (const n of byPrefix(prefix)) {
        const fid = (prefix << 8) | n;
        const o: Record<string, unknown> = { fid: fid.toString(16).toUpperCase(), private: isPrivate };
        if (!isPrivate || v.pin !== undefined) {
          const data = await read(fid);
          o.size = data?.length;
          if (data === undefined) o.error = 'not readable';
        } else o.note = 'PIN-protected: add --pin to read';
        dataObjects.push(o);
      }
    }
    const result = {
      device,
      userPin: user ? { state: user.state, triesLeft: user.triesLeft } : undefined,
      soPin: initialized ? { state: so.state, triesLeft: so.triesLeft } : undefined,
      dkek,
      keys,
      certificates,
      dataObjects,
      deviceCertificates: chain,
      apduCount: hsm.apduCount,
    };
    const out = ctx.out;
    out.heading('Device');
    out.kv('Reader', d.reader, 16);
    if (d.atr) out.kv('ATR', toHex(d.atr).toUpperCase(), 16);
    out.kv('Firmware', String(device.version), 16);
    if (device.serial) out.kv('Serial', String(device.serial), 16);
    if (device.label !== undefined) out.kv('Label', String(device.label), 16);
    out.kv('Options', optionLines(hsm.info.options).join('; ') || 'none', 16);
    out.line('');
    out.heading('PINs and DKEK');
    if (!initialized) out.line('Device not initialized.');
    else {
      out.kv(
        'User PIN',
        `${user?.state}${user?.triesLeft !== undefined ? `, ${user.triesLeft} tries left` : ''}`,
        16,
      );
      out.kv('SO-PIN', `${so.state}${so.triesLeft !== undefined ? `, ${so.triesLeft} tries left` : ''}`, 16);
      out.kv(
        'DKEK',
        dkek ? `${dkek.total} share(s), ${dkek.outstanding} outstanding, KCV ${kcvText(dkek.kcv)}` : 'none',
        16,
      );
    }
    for (const k of keys) {
      out.line('');
      out.line(`Private ${String(k.type ?? 'unknown').toUpperCase()} Key [${k.label ?? ''}]`);
      const row = (a: string, b: string) => out.line(`\t${a.padEnd(15)}: ${b}`);
      if (k.objectFlags !== undefined) row('Object Flags', objectFlagsText(k.objectFlags as number));
      if (k.usage !== undefined) row('Usage', usageText(k.usage as number));
      if (k.access !== undefined) row('Access Flags', accessText(k.access as number));
      row(k.type === 'rsa' ? 'ModLength' : 'FieldLength', String(k.bits ?? '?'));
      row('Key ref', `${k.keyRef} (0x${(k.keyRef as number).toString(16).padStart(2, '0')})`);
      if (k.authId) row('Auth ID', toHex(k.authId as Uint8Array));
      if (k.id) row('ID', toHex(k.id as Uint8Array));
      if (k.publicKeySha256) row('Public key SHA-256', String(k.publicKeySha256));
      const c = k.certificate as Record<string, unknown> | undefined;
      if (c) row('Certificate', `${c.subject} (issuer ${c.issuer}, ${c.notBefore} .. ${c.notAfter})`);
    }
    if (certificates.length) {
      out.line('');
      out.heading('Certificates');
      for (const c of certificates)
        out.line(
          `  ${c.fid} [${c.label ?? ''}] ${c.subject ?? ''} issuer ${c.issuer ?? ''} ${c.notBefore ?? ''} .. ${c.notAfter ?? ''}`,
        );
    }
    if (dataObjects.length) {
      out.line('');
      out.heading('Data objects');
      for (const o of dataObjects)
        out.line(
          `  ${o.fid} ${o.label ? `[${o.label}] ` : ''}${o.private ? 'private' : 'public'}${o.size !== undefined ? `, ${o.size} bytes` : ''}${o.note ? `, ${o.note}` : ''}`,
        );
    }
    if (chain.length) {
      out.line('');
      out.heading('Device certificate chain');
      for (const c of chain)
        out.line(
          `  CHR ${c.chr}  CAR ${c.car ?? ''}${c.expirationDate ? `  valid until ${c.expirationDate}` : ''}`,
        );
    }
    out.line('');
    out.line(`${hsm.apduCount} APDUs`);
    return result;
  },
};

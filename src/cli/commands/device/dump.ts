import { X509Certificate } from 'node:crypto';
import { type DumpData, gatherDump } from '../../../sc-hsm/dump.js';
import { algorithmNames } from '../../../sc-hsm/key-restrictions.js';
import { toHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import {
  accessText,
  kcvText,
  objectFlagsText,
  printable,
  spkiFingerprint,
  triesText,
  usageNames,
  usageText,
} from '../../format.js';
import { domainJson, domainText } from '../domain/format.js';
import { dumpSpec } from '../meta.js';
import { optionLines, TRANSPORT_PIN_TEXT, warnZeroDkek } from './status.js';

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

const fidText = (fid: number) => fid.toString(16).toUpperCase();

/** The `--json` shape of `dump` (docs/cli.md), from the library's DumpData. */
function dumpJson(
  dd: DumpData,
  d: { reader: string; atr?: Uint8Array },
  apduCount: number,
): Record<string, unknown> {
  const device: Record<string, unknown> = {
    reader: d.reader,
    atr: d.atr,
    version: `${dd.applet.version.major}.${dd.applet.version.minor}`,
    options: dd.applet.options,
    optionNames: optionLines(dd.applet.options),
    initialized: dd.initialized,
  };
  if (dd.deviceChr !== undefined) {
    device.deviceChr = dd.deviceChr;
    device.serial = dd.serial;
  }
  if (dd.deviceCertificatesError !== undefined) device.deviceCertificates = 'unreadable';
  if (dd.label !== undefined) device.label = dd.label;
  const chain: Record<string, unknown>[] = [];
  const dc = dd.deviceCertificates;
  if (dc)
    for (const c of [dc.device, dc.issuer])
      if (c)
        chain.push({
          chr: c.chr,
          car: c.car,
          effectiveDate: c.effectiveDate,
          expirationDate: c.expirationDate,
        });
  const keys = dd.keys.map((key) => {
    const k: Record<string, unknown> = { keyRef: key.keyRef };
    if (key.noKey) k.noKey = true;
    if (key.descriptionError) k.descriptionError = key.descriptionError;
    const desc = key.description;
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
    if (key.certificate) k.certificate = certJson(key.certificate);
    if (key.publicKey) k.publicKeySha256 = spkiFingerprint(key.publicKey);
    if (key.publicKeyError) k.publicKeyError = key.publicKeyError;
    if (!key.noKey) {
      k.algorithms = key.algorithms ? algorithmNames(key.algorithms) : null;
      k.useCounter = key.useCounter ?? null;
      k.domain = key.domain ?? null;
    }
    return k;
  });
  const certificates = dd.caCertificates.map((ca) => {
    const c: Record<string, unknown> = { fid: fidText(ca.fid) };
    const cd = ca.description;
    if (cd) Object.assign(c, { label: cd.label, id: cd.id, authority: cd.authority });
    if (ca.certificate) Object.assign(c, certJson(ca.certificate));
    return c;
  });
  const dataObjects = dd.dataObjects.map((x) => {
    if (x.kind === 'description') {
      const o: Record<string, unknown> = { fid: fidText(x.fid) };
      const dd = x.description;
      if (dd)
        Object.assign(o, {
          label: dd.label,
          applicationName: dd.applicationName,
          applicationOid: dd.applicationOid,
          path: dd.path,
          private: Boolean(dd.objectFlags & 1),
        });
      if (x.error) o.error = x.error;
      return o;
    }
    const o: Record<string, unknown> = { fid: fidText(x.fid), private: x.private };
    if (x.read) {
      o.size = x.data?.length;
      if (x.error) o.error = x.error;
    } else o.note = 'PIN-protected: add --pin to read';
    return o;
  });
  const user = dd.userPin;
  const so = dd.soPin;
  return {
    device,
    userPin: user ? { state: user.state, triesLeft: user.triesLeft } : undefined,
    soPin: so ? { state: so.state, triesLeft: so.triesLeft } : undefined,
    dkek: dd.dkek,
    ...(dd.keyDomains && { keyDomains: dd.keyDomains.slots, domains: dd.keyDomains.domains.map(domainJson) }),
    keys,
    certificates,
    dataObjects,
    deviceCertificates: chain,
    apduCount,
  };
}

export const dump: Command = {
  ...dumpSpec,
  async run(ctx, v) {
    const d = await ctx.open();
    const hsm = d.hsm;
    const dd = await gatherDump(hsm, v.pin !== undefined ? { login: () => ctx.login(hsm, v) } : {});
    const result = dumpJson(dd, d, hsm.apduCount);
    const device = result.device as Record<string, unknown>;
    const { userPin: user, soPin: so, dkek } = dd;
    const out = ctx.out;
    out.heading('Device');
    out.kv('Reader', printable(d.reader), 16);
    if (d.atr) out.kv('ATR', toHex(d.atr).toUpperCase(), 16);
    out.kv('Firmware', String(device.version), 16);
    if (device.serial) out.kv('Serial', printable(String(device.serial)), 16);
    if (device.label !== undefined) out.kv('Label', printable(String(device.label)), 16);
    out.kv('Options', optionLines(hsm.info.options).join('; ') || 'none', 16);
    out.line('');
    out.heading('PINs and DKEK');
    if (!dd.initialized) out.line('Device not initialized.');
    else {
      out.kv(
        'User PIN',
        user?.state === 'transport-pin'
          ? TRANSPORT_PIN_TEXT
          : `${user?.state}${user?.triesLeft !== undefined ? `, ${triesText(user.triesLeft)}` : ''}`,
        16,
      );
      out.kv(
        'SO-PIN',
        `${so?.state}${so?.triesLeft !== undefined ? `, ${triesText(so.triesLeft)}` : ''}`,
        16,
      );
      out.kv(
        'DKEK',
        dkek ? `${dkek.total} share(s), ${dkek.outstanding} outstanding, KCV ${kcvText(dkek.kcv)}` : 'none',
        16,
      );
      if (dkek?.allZero) warnZeroDkek(ctx);
      // a device with key domains: every domain with its KCV
      if (dd.keyDomains && dd.keyDomains.slots > 1) {
        out.kv('Key domains', dd.keyDomains.slots, 16);
        for (const kd of dd.keyDomains.domains) out.kv(`  domain ${kd.domain}`, domainText(kd), 16);
      }
    }
    for (const k of result.keys as Record<string, unknown>[]) {
      out.line('');
      out.line(
        k.noKey
          ? `Incomplete: NO KEY at key ref ${k.keyRef}, only its leftover description/certificate [${printable(k.label as string | undefined)}] (remove with sc-hsm-ts delete-key --key-ref ${k.keyRef})`
          : `${k.type === 'aes' ? 'Secret' : 'Private'} ${String(k.type ?? 'unknown').toUpperCase()} Key [${printable(k.label as string | undefined)}]`,
      );
      const row = (a: string, b: string) => out.line(`\t${a.padEnd(15)}: ${b}`);
      if (k.objectFlags !== undefined) row('Object Flags', objectFlagsText(k.objectFlags as number));
      if (k.usage !== undefined) row('Usage', usageText(k.usage as number));
      if (k.access !== undefined) row('Access Flags', accessText(k.access as number));
      row(
        k.type === 'rsa' ? 'ModLength' : k.type === 'aes' ? 'Key length' : 'FieldLength',
        String(k.bits ?? '?'),
      );
      row('Key ref', `${k.keyRef} (0x${(k.keyRef as number).toString(16).padStart(2, '0')})`);
      if (k.authId) row('Auth ID', toHex(k.authId as Uint8Array));
      if (k.id) row('ID', toHex(k.id as Uint8Array));
      if (k.publicKeySha256) row('Public key SHA-256', String(k.publicKeySha256));
      if (k.algorithms) row('Algorithms', (k.algorithms as string[]).join(', '));
      if (k.useCounter !== null && k.useCounter !== undefined) row('Uses left', String(k.useCounter));
      if (k.domain !== null && k.domain !== undefined) row('Key domain', String(k.domain));
      const c = k.certificate as Record<string, unknown> | undefined;
      if (c)
        row(
          'Certificate',
          c.unreadable
            ? 'unreadable'
            : `${printable(c.subject as string)} (issuer ${printable(c.issuer as string)}, ${c.notBefore} .. ${c.notAfter})`,
        );
    }
    const certificates = result.certificates as Record<string, unknown>[];
    if (certificates.length) {
      out.line('');
      out.heading('Certificates');
      for (const c of certificates)
        out.line(
          `  ${c.fid} [${printable(c.label as string | undefined)}] ${printable(c.subject as string | undefined)} issuer ${printable(c.issuer as string | undefined)} ${c.notBefore ?? ''} .. ${c.notAfter ?? ''}`,
        );
    }
    const dataObjects = result.dataObjects as Record<string, unknown>[];
    if (dataObjects.length) {
      out.line('');
      out.heading('Data objects');
      for (const o of dataObjects)
        out.line(
          `  ${o.fid} ${o.label ? `[${printable(o.label as string)}] ` : ''}${o.private ? 'private' : 'public'}${o.size !== undefined ? `, ${o.size} bytes` : ''}${o.note ? `, ${o.note}` : ''}`,
        );
    }
    const chain = result.deviceCertificates as Record<string, unknown>[];
    if (chain.length) {
      out.line('');
      out.heading('Device certificate chain');
      for (const c of chain)
        out.line(
          `  CHR ${printable(c.chr as string)}  CAR ${printable(c.car as string | undefined)}${c.expirationDate ? `  valid until ${c.expirationDate}` : ''}`,
        );
    }
    out.line('');
    out.line(`${hsm.apduCount} APDUs`);
    return result;
  },
};

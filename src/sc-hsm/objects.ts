/**
 * Certificates and data objects, stored as OpenSC stores them (spec §6.4, §6.5): a key's X.509
 * certificate in CExx; CA certificates in CAxx with their descriptions in C8xx; data objects in
 * CFxx (public) or CDxx (readable after the user PIN) with their descriptions in C9xx. Only file
 * commands (files.ts) are sent.
 */
import { ScHsmError } from '../errors.js';
import {
  type CertificateDescription,
  type DataObjectDescription,
  decodeCertificateDescription,
  decodeDataObjectDescription,
  encodeCertificateDescription,
  encodeDataObjectDescription,
  OBJECT_FLAGS,
} from '../pkcs15/index.js';
import { PREFIX } from '../protocol/constants.js';
import { uintBE } from '../util/bytes.js';
import { readAll, readTlv } from '../util/tlv.js';
import type { SessionContext } from './context.js';
import { checkBytes, checkInt, checkKeyRef, checkLabel, checkObject } from './validate.js';

/** SubjectPublicKeyInfo of an X.509 certificate (tbsCertificate field 7, after the optional version). */
export function certificateSpki(der: Uint8Array): Uint8Array {
  try {
    const tbs = readAll(readTlv(der).value)[0]!;
    const fields = readAll(tbs.value);
    const offset = fields[0]!.tag === 0xa0 ? 1 : 0;
    const spki = fields[offset + 5]!;
    if (spki.tag !== 0x30) throw new Error('no SPKI');
    return tbs.value.slice(spki.start, spki.end);
  } catch (e) {
    throw new ScHsmError('MALFORMED_DATA', 'not a DER X.509 certificate', { cause: e });
  }
}

/** The certificate into CExx (replacing the CV request of key generation). */
export async function storeCertificate(ctx: SessionContext, keyRef: number, der: Uint8Array): Promise<void> {
  checkKeyRef(keyRef);
  checkBytes(der, 'the certificate', 1);
  certificateSpki(der);
  await ctx.files.write((PREFIX.EE_CERTIFICATE << 8) | keyRef, der);
  ctx.keyCache.delete(keyRef);
}

/** CExx when it holds an X.509 certificate (a SEQUENCE, tag 30). */
export async function readCertificate(ctx: SessionContext, keyRef: number): Promise<Uint8Array | undefined> {
  checkKeyRef(keyRef);
  const ce = await ctx.files.readOptional((PREFIX.EE_CERTIFICATE << 8) | keyRef);
  return ce && ce[0] === 0x30 ? ce : undefined;
}

/** The lowest object number (low byte) unused by files of any of `prefixes`. */
export async function freeObjectNumber(
  ctx: SessionContext,
  prefixes: number[],
  fids?: number[],
): Promise<number> {
  const list = fids ?? (await ctx.files.enumerate());
  const used = new Set(list.filter((f) => prefixes.includes(f >> 8)).map((f) => f & 0xff));
  for (let i = 0; i <= 255; i++) if (!used.has(i)) return i;
  throw new ScHsmError('MEMORY_FULL', 'no free object number left');
}

/** The file a description's path names (its last two bytes). */
function pathFid(path: Uint8Array): number {
  return (path[path.length - 2]! << 8) | path[path.length - 1]!;
}

/** The data into CFxx or CDxx, then its description into C9xx, under the lowest free number. */
export async function writeDataObject(
  ctx: SessionContext,
  o: { label: string; data: Uint8Array; applicationName?: string; private?: boolean },
): Promise<{ number: number; fid: number }> {
  checkObject(o, 'the data object', {
    label: 'string',
    data: 'bytes',
    applicationName: 'string',
    private: 'boolean',
  });
  checkBytes(o.data, 'the data object content', 0, 0xffff);
  checkLabel(o.label, 'data object label');
  return ctx.channel.exclusive(async () => {
    const n = await freeObjectNumber(ctx, [PREFIX.DCOD, PREFIX.DATA_PUBLIC, PREFIX.DATA_PRIVATE]);
    const fid = ((o.private ? PREFIX.DATA_PRIVATE : PREFIX.DATA_PUBLIC) << 8) | n;
    await ctx.files.write(fid, o.data);
    const d: DataObjectDescription = {
      label: o.label,
      objectFlags: o.private ? OBJECT_FLAGS.PRIVATE | OBJECT_FLAGS.MODIFIABLE : OBJECT_FLAGS.MODIFIABLE,
      path: uintBE(fid, 2),
    };
    if (o.private) d.authId = Uint8Array.of(1);
    if (o.applicationName !== undefined) d.applicationName = o.applicationName;
    await ctx.files.write((PREFIX.DCOD << 8) | n, encodeDataObjectDescription(d));
    return { number: n, fid };
  });
}

/** ENUMERATE OBJECTS, then every description C9xx. */
export async function listDataObjects(
  ctx: SessionContext,
): Promise<(DataObjectDescription & { number: number; fid: number; private: boolean })[]> {
  return ctx.channel.exclusive(async () => {
    const fids = await ctx.files.enumerate();
    const out: (DataObjectDescription & { number: number; fid: number; private: boolean })[] = [];
    for (const f of fids.filter((x) => x >> 8 === PREFIX.DCOD).sort((a, b) => a - b)) {
      const d = decodeDataObjectDescription(await ctx.files.read(f));
      const fid = d.path.length >= 2 ? pathFid(d.path) : 0;
      out.push({ ...d, number: f & 0xff, fid, private: fid >> 8 === PREFIX.DATA_PRIVATE });
    }
    return out;
  });
}

/** C9xx, then the file its path names. */
export async function readDataObject(ctx: SessionContext, number: number): Promise<Uint8Array> {
  checkInt(number, 0, 255, 'a data object number');
  const d = decodeDataObjectDescription(await ctx.files.read((PREFIX.DCOD << 8) | number));
  return ctx.files.read(pathFid(d.path));
}

/** C9xx read, the data file deleted where it exists, then C9xx deleted. */
export async function deleteDataObject(ctx: SessionContext, number: number): Promise<void> {
  checkInt(number, 0, 255, 'a data object number');
  await ctx.channel.exclusive(async () => {
    const d = decodeDataObjectDescription(await ctx.files.read((PREFIX.DCOD << 8) | number));
    await ctx.files.deleteIfExists(pathFid(d.path));
    await ctx.files.delete((PREFIX.DCOD << 8) | number);
  });
}

/** The certificate into CAxx, then its description into C8xx, under the lowest free number. */
export async function storeCaCertificate(
  ctx: SessionContext,
  der: Uint8Array,
  o: { label: string; id: Uint8Array },
): Promise<{ number: number }> {
  checkBytes(der, 'the certificate', 1);
  checkObject(o, 'the certificate description', { label: 'string', id: 'bytes' });
  checkBytes(o.id, 'the certificate ID', 1, 255);
  checkLabel(o.label, 'certificate label');
  certificateSpki(der);
  return ctx.channel.exclusive(async () => {
    const n = await freeObjectNumber(ctx, [PREFIX.CA_CERTIFICATE, PREFIX.CD]);
    const fid = (PREFIX.CA_CERTIFICATE << 8) | n;
    await ctx.files.write(fid, der);
    await ctx.files.write(
      (PREFIX.CD << 8) | n,
      encodeCertificateDescription({
        label: o.label,
        objectFlags: OBJECT_FLAGS.MODIFIABLE,
        id: o.id,
        path: uintBE(fid, 2),
      }),
    );
    return { number: n };
  });
}

/** ENUMERATE OBJECTS, then every description C8xx with the certificate its path names. */
export async function listCaCertificates(
  ctx: SessionContext,
): Promise<(CertificateDescription & { number: number; certificate: Uint8Array })[]> {
  return ctx.channel.exclusive(async () => {
    const fids = await ctx.files.enumerate();
    const out: (CertificateDescription & { number: number; certificate: Uint8Array })[] = [];
    for (const f of fids.filter((x) => x >> 8 === PREFIX.CD).sort((a, b) => a - b)) {
      const d = decodeCertificateDescription(await ctx.files.read(f));
      out.push({ ...d, number: f & 0xff, certificate: await ctx.files.read(pathFid(d.path)) });
    }
    return out;
  });
}

/**
 * Everything on a SmartCard-HSM in one plain object, read the cheapest way: two PIN state queries
 * (they cost no try), one DKEK status, one ENUMERATE OBJECTS, and each file read once; nothing is
 * read twice and no status is queried twice. This is the data behind `sc-hsm-ts dump`; the command
 * only prints it.
 */
import { ScHsmError, type ScHsmErrorCode } from '../errors.js';
import type { CvCertificate } from '../pkcs15/cvc.js';
import { cvcPublicKeyToSpki, decodeCvRequest, decodeDeviceCertificateFile } from '../pkcs15/cvc.js';
import {
  type CertificateDescription,
  type DataObjectDescription,
  decodeCertificateDescription,
  decodeDataObjectDescription,
} from '../pkcs15/descriptions.js';
import { decodeKeyDescription, type KeyDescription } from '../pkcs15/key-description.js';
import { decodeTokenInfo } from '../pkcs15/token-info.js';
import { EF, PIN_SO, PIN_USER, PREFIX } from '../protocol/constants.js';
import { type CurveName, curveByOid } from '../util/curves.js';
import { readAll, readTlv } from '../util/tlv.js';
import {
  type AppletInfo,
  certificateSpki,
  type DkekStatus,
  type KeyDomains,
  type KeyType,
  type PinStatus,
  type SmartCardHsm,
} from './session.js';

export interface DumpKey {
  /** Key reference: the low byte of CCxx. */
  keyRef: number;
  /** The description in C4xx, as stored (absent when there is none or it is unreadable). */
  description?: KeyDescription;
  /** Why the description in C4xx could not be used. */
  descriptionError?: string;
  /** PKCS#15 ID (from the description). */
  id?: Uint8Array;
  label?: string;
  /** From the description, else from the public key; `unknown` when neither tells. */
  type: KeyType;
  /** RSA modulus length, EC field size or AES key length (from the description), in bits. */
  bits?: number;
  /** The EC curve, from the public key's named-curve parameter. */
  curve?: CurveName;
  usage?: number;
  access?: number;
  /** SubjectPublicKeyInfo DER, from the X.509 certificate or the CV request in CExx. */
  publicKey?: Uint8Array;
  /** X.509 certificate DER, when CExx holds one (not just the CV request of key generation). */
  certificate?: Uint8Array;
  /** The authenticated CV request of key generation, when CExx holds that instead. */
  request?: Uint8Array;
  /** Why no public key could be taken from CExx. */
  publicKeyError?: string;
  /**
   * There is no key object CCxx: only its description and/or certificate are left (an interrupted
   * replace or delete); `sc-hsm-ts delete-key` removes them.
   */
  noKey?: true;
  /** Allowed algorithms (tag 91) as the card reports them in the key's FCP (key-restrictions.ts). */
  algorithms?: Uint8Array;
  /** Private-key operations left (tag 90) as the card reports them. */
  useCounter?: number;
  /** The key's key domain (tag 92, spec §3.10) as the card reports it. */
  domain?: number;
}

export interface DumpCaCertificate {
  /** Object number: the certificate is in CAxx, its description in C8xx. */
  number: number;
  fid: number;
  description?: CertificateDescription;
  descriptionError?: string;
  /** The certificate (DER), unless CAxx could not be read. */
  certificate?: Uint8Array;
}

/** A data object description (C9xx). */
export interface DumpDataObjectDescription {
  kind: 'description';
  number: number;
  fid: number;
  description?: DataObjectDescription;
  error?: string;
}

/** A data file: CFxx (public) or CDxx (private, readable after the user PIN). */
export interface DumpDataFile {
  kind: 'data';
  number: number;
  fid: number;
  private: boolean;
  /** False for a private file when the dump was made without the PIN (then it was not read). */
  read: boolean;
  /** The contents, when read. */
  data?: Uint8Array;
  /** Why a file that was read gave nothing. */
  error?: string;
}

export interface DumpData {
  applet: AppletInfo;
  initialized: boolean;
  /** The PIN states as queried before the optional login (undefined on an uninitialized device). */
  userPin?: PinStatus;
  soPin?: PinStatus;
  dkek?: DkekStatus;
  /** Every key domain slot and the domains in use (domain 0 included), on an initialized device. */
  keyDomains?: KeyDomains;
  /** Token label from EF.TokenInfo (2F03). */
  label?: string;
  /** CHR of the device certificate (EF 2F02) and the serial number it carries. */
  deviceChr?: string;
  serial?: string;
  /** The device certificate and its issuer (EF 2F02), when readable. */
  deviceCertificates?: { device: CvCertificate; issuer?: CvCertificate; raw: Uint8Array };
  /** Why EF 2F02 could not be decoded. */
  deviceCertificatesError?: string;
  keys: DumpKey[];
  caCertificates: DumpCaCertificate[];
  /** Descriptions (C9xx) first, then the public and private data files, each by number. */
  dataObjects: (DumpDataObjectDescription | DumpDataFile)[];
  /** Every file id ENUMERATE OBJECTS returned. */
  fids: number[];
}

export interface GatherDumpOptions {
  /**
   * Called once on an initialized device after the PIN states were queried and before any file
   * is read, e.g. `() => hsm.verifyPin(pin)`. When given, the private data files are read too.
   */
  login?: () => Promise<void>;
  /** Read the private data files (CDxx) too: the caller verified the PIN already. */
  withPin?: boolean;
}

/** Errors that mean the link to the card is gone or unusable: a dump must not hide those. */
const LINK_ERRORS: ReadonlySet<ScHsmErrorCode> = new Set<ScHsmErrorCode>([
  'TRANSPORT_ERROR',
  'PCSC_UNAVAILABLE',
  'NO_READER',
  'NO_CARD',
  'CARD_REMOVED',
  'CARD_RESET',
  'READER_BUSY',
  'REPLAY_MISMATCH',
]);

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The named curve of an EC SubjectPublicKeyInfo, read from its AlgorithmIdentifier. */
function spkiCurve(spki: Uint8Array): CurveName | undefined {
  try {
    const [alg] = readAll(readTlv(spki).value);
    const params = alg?.tag === 0x30 ? readAll(alg.value)[1] : undefined;
    return params?.tag === 0x06 ? curveByOid(params.value)?.name : undefined;
  } catch {
    return undefined;
  }
}

const RSA_ENCRYPTION = Uint8Array.of(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01);

function spkiType(spki: Uint8Array): 'rsa' | 'ec' | undefined {
  try {
    const [alg] = readAll(readTlv(spki).value);
    const oid = alg?.tag === 0x30 ? readAll(alg.value)[0] : undefined;
    if (oid?.tag !== 0x06) return undefined;
    if (oid.value.length === RSA_ENCRYPTION.length && oid.value.every((b, i) => b === RSA_ENCRYPTION[i]))
      return 'rsa';
    return spkiCurve(spki) ? 'ec' : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Gathers everything on the card (spec §4, §6): applet info, PIN and DKEK state, label, serial
 * and device certificate chain, keys with description, public key and certificate, CA
 * certificates and data objects. Public information needs no PIN. A file that cannot be read or
 * decoded is reported in place (an `…Error` field); a failing link (card removed, pcscd gone)
 * rejects.
 */
export async function gatherDump(hsm: SmartCardHsm, o: GatherDumpOptions = {}): Promise<DumpData> {
  const files = hsm.files;
  const read = async (fid: number): Promise<Uint8Array | undefined> => {
    try {
      return await files.read(fid);
    } catch (e) {
      if (e instanceof ScHsmError && !LINK_ERRORS.has(e.code)) return undefined;
      throw e;
    }
  };

  const so = await hsm.pinStatus(PIN_SO);
  const initialized = so.state !== 'not-initialized';
  const out: DumpData = {
    applet: hsm.info,
    initialized,
    keys: [],
    caCertificates: [],
    dataObjects: [],
    fids: [],
  };
  if (initialized) {
    out.soPin = so;
    out.userPin = await hsm.pinStatus(PIN_USER);
    if (o.login) await o.login();
    // every key domain (spec §3.10); domain 0 is the DKEK of before key domains
    const domains = await hsm.listKeyDomains();
    const dkek = domains.domains.find((d) => d.domain === 0);
    if (dkek) out.dkek = dkek;
    out.keyDomains = domains;
    out.fids = await files.enumerate();
  }
  const withPin = o.withPin === true || o.login !== undefined;
  const fids = new Set(out.fids);

  const ef2f02 = await read(EF.DEVICE_CERTIFICATES);
  if (ef2f02?.length) {
    try {
      const dc = decodeDeviceCertificateFile(ef2f02);
      out.deviceCertificates = { ...dc, raw: ef2f02 };
      out.deviceChr = dc.device.chr;
      out.serial = dc.device.chr.length > 5 ? dc.device.chr.slice(0, -5) : dc.device.chr;
    } catch (e) {
      out.deviceCertificatesError = reason(e);
    }
  }
  if (initialized) {
    const ef2f03 = await read(EF.TOKEN_INFO);
    if (ef2f03?.length) {
      try {
        const label = decodeTokenInfo(ef2f03).label;
        if (label !== undefined) out.label = label;
      } catch {
        // no readable label
      }
    }
  }

  const byPrefix = (p: number) =>
    out.fids
      .filter((f) => f >> 8 === p)
      .map((f) => f & 0xff)
      .sort((a, b) => a - b);

  // every key reference with a key (CCxx), or with only the description or certificate of one
  const keyRefs = [
    ...new Set([...byPrefix(PREFIX.KEY), ...byPrefix(PREFIX.PRKD), ...byPrefix(PREFIX.EE_CERTIFICATE)]),
  ].sort((a, b) => a - b);
  for (const ref of keyRefs) {
    if (ref === 0) continue; // the device key
    const k: DumpKey = { keyRef: ref, type: 'unknown' };
    if (!fids.has((PREFIX.KEY << 8) | ref)) k.noKey = true;
    const prkd = (PREFIX.PRKD << 8) | ref;
    if (fids.has(prkd)) {
      const raw = await read(prkd);
      try {
        if (raw) {
          const d = decodeKeyDescription(raw);
          k.description = d;
          k.id = d.id;
          if (d.label !== undefined) k.label = d.label;
          k.type = d.kind;
          k.bits = d.bits;
          k.usage = d.usage;
          if (d.access !== undefined) k.access = d.access;
        }
      } catch {
        k.descriptionError = 'unreadable key description';
      }
    }
    const ceFid = (PREFIX.EE_CERTIFICATE << 8) | ref;
    if (fids.has(ceFid)) {
      const ce = await read(ceFid);
      try {
        if (ce?.[0] === 0x30) {
          k.certificate = ce;
          k.publicKey = certificateSpki(ce);
        } else if (ce) {
          k.request = ce;
          k.publicKey = cvcPublicKeyToSpki(decodeCvRequest(ce).certificate.publicKey);
        }
      } catch {
        k.publicKeyError = 'unreadable certificate or request';
      }
      if (k.publicKey) {
        const curve = spkiCurve(k.publicKey);
        if (curve) k.curve = curve;
        if (k.type === 'unknown') k.type = spkiType(k.publicKey) ?? 'unknown';
      }
    }
    if (!k.noKey) {
      const r = await hsm.keyRestrictions(ref);
      if (r.algorithms) k.algorithms = r.algorithms;
      if (r.useCounter !== undefined) k.useCounter = r.useCounter;
      if (r.domain !== undefined) k.domain = r.domain;
    }
    out.keys.push(k);
  }

  for (const n of byPrefix(PREFIX.CA_CERTIFICATE)) {
    const fid = (PREFIX.CA_CERTIFICATE << 8) | n;
    const c: DumpCaCertificate = { number: n, fid };
    const cdFid = (PREFIX.CD << 8) | n;
    if (fids.has(cdFid)) {
      const raw = await read(cdFid);
      try {
        if (raw) c.description = decodeCertificateDescription(raw);
      } catch (e) {
        c.descriptionError = reason(e);
      }
    }
    const der = await read(fid);
    if (der) c.certificate = der;
    out.caCertificates.push(c);
  }

  for (const n of byPrefix(PREFIX.DCOD)) {
    const fid = (PREFIX.DCOD << 8) | n;
    const raw = await read(fid);
    const d: DumpDataObjectDescription = { kind: 'description', number: n, fid };
    try {
      if (raw) d.description = decodeDataObjectDescription(raw);
    } catch {
      d.error = 'unreadable description';
    }
    out.dataObjects.push(d);
  }
  for (const [prefix, isPrivate] of [
    [PREFIX.DATA_PUBLIC, false],
    [PREFIX.DATA_PRIVATE, true],
  ] as const) {
    for (const n of byPrefix(prefix)) {
      const fid = (prefix << 8) | n;
      const f: DumpDataFile = { kind: 'data', number: n, fid, private: isPrivate, read: false };
      if (!isPrivate || withPin) {
        f.read = true;
        const data = await read(fid);
        if (data === undefined) f.error = 'not readable';
        else f.data = data;
      }
      out.dataObjects.push(f);
    }
  }
  return out;
}

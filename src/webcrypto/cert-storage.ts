/**
 * The certificates on the device as webcrypto-core's `CryptoCertificateStorage`
 * (`crypto.certStorage`), the shape node-webcrypto-p11 gives a PKCS#11 token's certificates, so
 * that code written for a token ports with few changes: `importCert` parses a certificate on the
 * host, `setItem` stores it beside the device key whose public key it carries, `keys()` lists an
 * index per certificate, `getItem` and `exportCert` give it back.
 *
 * Indexes: `x509-<ID hex>` for a key's certificate (CExx, the PKCS#15 ID of the key, as
 * keyStorage's `private-<ID hex>`), `ca-<nn>` for a CA certificate (CAnn with its description
 * C8nn, spec §6.4). Certificates are parsed with @peculiar/x509, loaded on first use
 * (src/webcrypto/x509-lib.ts).
 */
import { createPublicKey, type KeyObject, type webcrypto } from 'node:crypto';
import type {
  CryptoCertificate,
  CryptoCertificateFormat,
  CryptoCertificateStorage,
  CryptoX509Certificate,
  ImportAlgorithms,
} from 'webcrypto-core';
import { decodeKeyDescription, encodeKeyDescription, KEY_ACCESS } from '../pkcs15/index.js';
import { PREFIX } from '../protocol/constants.js';
import type { SmartCardHsm } from '../sc-hsm/session.js';
import { bytesEqual, fresh, toHex } from '../util/bytes.js';
import { curveByName } from '../util/curves.js';
import type { ScHsmCrypto } from './crypto.js';
import { webCryptoError } from './errors.js';
import { type KeyUsage, webCurveName } from './keys.js';
import { x509 } from './x509-lib.js';

/** Access flags OpenSC writes into the PRKD once a certificate is stored (0x1D, spec §6.2). */
export const STORED_CERT_ACCESS =
  KEY_ACCESS.SENSITIVE | KEY_ACCESS.ALWAYS_SENSITIVE | KEY_ACCESS.NEVER_EXTRACTABLE | KEY_ACCESS.LOCAL;

/**
 * Stores an X.509 certificate for a device key as OpenSC does (spec §6.2, §10.4): the certificate
 * into `CExx` (UPDATE BINARY), then the PRKD `C4xx` rewritten with access flags 0x1D (unless it
 * has some) and the certificate's subject name. The caller has checked that the certificate's
 * public key is the key's.
 */
export async function storeKeyCertificate(hsm: SmartCardHsm, keyRef: number, der: Uint8Array): Promise<void> {
  const subjectName = new Uint8Array(new (x509().X509Certificate)(der).subjectName.toArrayBuffer());
  const prkdFid = (PREFIX.PRKD << 8) | keyRef;
  await hsm.channel.exclusive(async () => {
    const description = decodeKeyDescription(await hsm.readFile(prkdFid));
    await hsm.storeCertificate(keyRef, der);
    await hsm.writeFile(
      prkdFid,
      encodeKeyDescription({
        ...description,
        access: description.access ?? STORED_CERT_ACCESS,
        subjectName,
      }),
    );
  });
}

/** A certificate of {@link HsmCertificateStorage}: webcrypto-core's CryptoX509Certificate plus its DER. */
export class HsmX509Certificate implements CryptoX509Certificate {
  readonly type = 'x509' as const;
  /** RFC 4514 names, as @peculiar/x509 prints them. */
  readonly subjectName: string;
  readonly issuerName: string;
  /** Hex, as webcrypto-core's HexString. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;

  constructor(
    /** The certificate's DER (a fresh array). */
    readonly der: Uint8Array<ArrayBuffer>,
    /** Its public key, imported on the host with the algorithm and usages asked for. */
    readonly publicKey: webcrypto.CryptoKey,
    /** Its index in the storage; undefined for a certificate imported but not stored. */
    readonly index?: string,
    /** The device key it belongs to (a key certificate). */
    readonly keyRef?: number,
    /** The PKCS#15 label of its key or of the CA certificate. */
    readonly label?: string,
  ) {
    const c = new (x509().X509Certificate)(der);
    this.subjectName = c.subject;
    this.issuerName = c.issuer;
    this.serialNumber = c.serialNumber;
    this.notBefore = c.notBefore;
    this.notAfter = c.notAfter;
  }
}

interface Entry {
  index: string;
  der: Uint8Array;
  keyRef?: number;
  label?: string;
}

/** The DER of a certificate given as PEM; DataError for anything else, NotSupportedError for a request. */
function pemDer(pem: string): Uint8Array<ArrayBuffer> {
  if (/-----BEGIN (NEW )?CERTIFICATE REQUEST-----/.test(pem))
    throw webCryptoError(
      'NotSupportedError',
      'NOT_SUPPORTED',
      'a certificate request is not stored on the SmartCard-HSM; certStorage holds X.509 certificates',
    );
  const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem);
  if (!m)
    throw webCryptoError('DataError', 'MALFORMED_DATA', 'no PEM certificate (-----BEGIN CERTIFICATE-----)');
  return new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}

function bufferSourceBytes(data: unknown): Uint8Array<ArrayBuffer> {
  if (data instanceof ArrayBuffer) return new Uint8Array(data.slice(0));
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  throw webCryptoError('DataError', 'INVALID_ARGUMENT', "format 'raw' takes the DER as a BufferSource");
}

function spkiKey(spki: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
}

/** The WebCrypto algorithm a certificate's public key gets by default: ECDSA on its curve, or RSASSA-PKCS1-v1_5 with SHA-256. */
function defaultAlgorithm(key: KeyObject): ImportAlgorithms {
  if (key.asymmetricKeyType === 'ec') {
    const named = key.asymmetricKeyDetails?.namedCurve ?? '';
    let curve: string;
    try {
      curve = webCurveName(curveByName(named).name);
    } catch (e) {
      throw webCryptoError(
        'NotSupportedError',
        'NOT_SUPPORTED',
        `the certificate's key is on a curve the card does not have (${named})`,
        {
          cause: e,
        },
      );
    }
    return { name: 'ECDSA', namedCurve: curve } as ImportAlgorithms;
  }
  if (key.asymmetricKeyType === 'rsa')
    return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as ImportAlgorithms;
  throw webCryptoError(
    'NotSupportedError',
    'NOT_SUPPORTED',
    `the certificate's key is ${key.asymmetricKeyType ?? 'of an unknown type'}; the card holds RSA and EC keys`,
  );
}

/** `crypto.certStorage`: the device's X.509 certificates (of its keys, and CA certificates). */
export class HsmCertificateStorage implements CryptoCertificateStorage {
  constructor(private readonly crypto: ScHsmCrypto) {}

  /** Every certificate on the device with its index (ENUMERATE, READ BINARY of CExx, C8xx, CAxx). */
  private async entries(): Promise<Entry[]> {
    const hsm = this.crypto.hsm;
    const out: Entry[] = [];
    for (const k of await hsm.listKeys()) {
      if (!k.hasCertificate) continue;
      const der = await hsm.readCertificate(k.keyRef);
      if (!der) continue;
      const e: Entry = { index: `x509-${toHex(k.id)}`, der, keyRef: k.keyRef };
      if (k.label !== undefined) e.label = k.label;
      out.push(e);
    }
    for (const ca of await hsm.listCaCertificates()) {
      const e: Entry = { index: `ca-${ca.number.toString(16).padStart(2, '0')}`, der: ca.certificate };
      if (ca.label !== undefined) e.label = ca.label;
      out.push(e);
    }
    return out;
  }

  private async certificate(
    e: Entry,
    algorithm?: ImportAlgorithms,
    usages?: KeyUsage[],
  ): Promise<HsmX509Certificate> {
    const der = fresh(e.der.slice());
    let spki: Uint8Array;
    try {
      spki = new Uint8Array(new (x509().X509Certificate)(der).publicKey.rawData);
    } catch (cause) {
      throw webCryptoError('DataError', 'MALFORMED_DATA', 'not an X.509 certificate', { cause });
    }
    const publicKey = (await this.crypto.subtle.importKey(
      'spki',
      spki as never,
      (algorithm ?? defaultAlgorithm(spkiKey(spki))) as never,
      true,
      (usages ?? ['verify']) as never,
    )) as unknown as webcrypto.CryptoKey;
    return new HsmX509Certificate(der, publicKey, e.index || undefined, e.keyRef, e.label);
  }

  /** An index per certificate on the device: `x509-<key ID hex>`, `ca-<nn>`. */
  async keys(): Promise<string[]> {
    return (await this.entries()).map((e) => e.index);
  }

  /** The index of a certificate stored on the device (compared by its DER), else null. */
  async indexOf(item: CryptoCertificate): Promise<string | null> {
    if (!(item instanceof HsmX509Certificate)) return null;
    return (await this.entries()).find((e) => bytesEqual(e.der, item.der))?.index ?? null;
  }

  async hasItem(item: CryptoCertificate): Promise<boolean> {
    return (await this.indexOf(item)) !== null;
  }

  /**
   * The certificate of `index`, its public key imported with `algorithm` and `usages` (default:
   * ECDSA on its curve or RSASSA-PKCS1-v1_5 with SHA-256, `verify`). NotFoundError when the device
   * holds none under that index.
   */
  getItem(index: string): Promise<HsmX509Certificate>;
  getItem(index: string, algorithm: ImportAlgorithms, keyUsages: KeyUsage[]): Promise<HsmX509Certificate>;
  async getItem(
    index: string,
    algorithm?: ImportAlgorithms,
    usages?: KeyUsage[],
  ): Promise<HsmX509Certificate> {
    const e = (await this.entries()).find((x) => x.index === index.toLowerCase());
    if (!e)
      throw webCryptoError(
        'NotFoundError',
        'FILE_NOT_FOUND',
        `no certificate ${String(index)} on the device`,
        {
          fix: 'list the indexes with certStorage.keys()',
        },
      );
    return this.certificate(e, algorithm, usages);
  }

  /**
   * Parses a certificate on the host (`raw`: DER as a BufferSource; `pem`: a PEM string); nothing
   * is stored until {@link HsmCertificateStorage.setItem}. A certificate request is
   * NotSupportedError, anything else that is not a certificate DataError.
   */
  importCert(
    format: CryptoCertificateFormat,
    data: webcrypto.BufferSource | string,
    algorithm?: ImportAlgorithms,
    keyUsages?: KeyUsage[],
  ): Promise<HsmX509Certificate>;
  async importCert(
    format: CryptoCertificateFormat,
    data: unknown,
    algorithm?: ImportAlgorithms,
    usages?: KeyUsage[],
  ): Promise<HsmX509Certificate> {
    let der: Uint8Array<ArrayBuffer>;
    if (format === 'pem') {
      if (typeof data !== 'string')
        throw webCryptoError(
          'DataError',
          'INVALID_ARGUMENT',
          "format 'pem' takes the certificate as a string",
        );
      der = pemDer(data);
    } else if (format === 'raw') der = bufferSourceBytes(data);
    else
      throw webCryptoError(
        'NotSupportedError',
        'NOT_SUPPORTED',
        `certificate format ${String(format)}: use 'raw' or 'pem'`,
      );
    return this.certificate({ index: '', der }, algorithm, usages);
  }

  /** The certificate as DER (`raw`, an ArrayBuffer) or PEM (`pem`). */
  exportCert(format: 'raw', item: CryptoCertificate): Promise<ArrayBuffer>;
  exportCert(format: 'pem', item: CryptoCertificate): Promise<string>;
  exportCert(format: CryptoCertificateFormat, item: CryptoCertificate): Promise<ArrayBuffer | string>;
  async exportCert(format: CryptoCertificateFormat, item: CryptoCertificate): Promise<ArrayBuffer | string> {
    if (!(item instanceof HsmX509Certificate))
      throw webCryptoError('InvalidAccessError', 'INVALID_ARGUMENT', 'not a certificate of this storage');
    if (format === 'raw') return item.der.slice().buffer;
    if (format === 'pem') return `${x509().PemConverter.encode(item.der.slice().buffer, 'CERTIFICATE')}\n`;
    throw webCryptoError(
      'NotSupportedError',
      'NOT_SUPPORTED',
      `certificate format ${String(format)}: use 'raw' or 'pem'`,
    );
  }

  /**
   * Stores a certificate beside the device key whose public key it carries, as OpenSC does
   * ({@link storeKeyCertificate}: CExx, then the PRKD's subject name); a certificate the key had
   * is replaced (the public key stays the same). Its index; NotFoundError when no key on the
   * device has the certificate's public key (a CA certificate: `hsm.storeCaCertificate`).
   */
  async setItem(item: CryptoCertificate): Promise<string> {
    if (!(item instanceof HsmX509Certificate))
      throw webCryptoError(
        'NotSupportedError',
        'NOT_SUPPORTED',
        'only certificates from certStorage.importCert can be stored',
        {
          fix: "parse it first: certStorage.importCert('raw' | 'pem', data)",
        },
      );
    const index = await this.indexOf(item);
    if (index) return index;
    const certKey = spkiKey(new Uint8Array(new (x509().X509Certificate)(item.der).publicKey.rawData));
    const hsm = this.crypto.hsm;
    const key = (await hsm.listKeys()).find(
      (k) => (k.type === 'rsa' || k.type === 'ec') && k.publicKey && spkiKey(k.publicKey).equals(certKey),
    );
    if (!key)
      throw webCryptoError(
        'NotFoundError',
        'KEY_NOT_FOUND',
        `no key on the device has the public key of the certificate for "${item.subjectName}"`,
        { fix: 'store a CA certificate with hsm.storeCaCertificate(der, { label, id })' },
      );
    await storeKeyCertificate(hsm, key.keyRef, item.der);
    return `x509-${toHex(key.id)}`;
  }

  /**
   * Removes a CA certificate (DELETE FILE of CAnn and its description C8nn). A key's certificate
   * is not removed (NotSupportedError): CExx is the only copy of the key's public key on the
   * device, so the key pair would no longer be usable; store another certificate for the key
   * (setItem replaces it) or delete the key pair (keyStorage.removeItem).
   */
  async removeItem(index: string): Promise<void> {
    const e = (await this.entries()).find((x) => x.index === String(index).toLowerCase());
    if (!e)
      throw webCryptoError(
        'NotFoundError',
        'FILE_NOT_FOUND',
        `no certificate ${String(index)} on the device`,
      );
    if (e.keyRef !== undefined)
      throw webCryptoError(
        'NotSupportedError',
        'NOT_SUPPORTED',
        `the certificate of key reference ${e.keyRef} holds the only copy of the key's public key on the device`,
        {
          fix: 'store another certificate for the key (setItem), or delete the key pair (keyStorage.removeItem)',
        },
      );
    const n = Number.parseInt(e.index.slice(3), 16);
    const hsm = this.crypto.hsm;
    await hsm.channel.exclusive(async () => {
      await hsm.deleteFile((PREFIX.CA_CERTIFICATE << 8) | n);
      await hsm.deleteFile((PREFIX.CD << 8) | n);
    });
  }

  /** Refused (NotSupportedError): a key's certificate holds its public key; remove CA certificates one by one. */
  async clear(): Promise<void> {
    throw webCryptoError(
      'NotSupportedError',
      'NOT_SUPPORTED',
      'certStorage.clear() would remove the public keys of the device keys',
      {
        fix: 'remove CA certificates one by one (removeItem)',
      },
    );
  }
}

/**
 * X.509 with a key that never leaves the SmartCard-HSM: a PKCS#10 request or a self-signed
 * certificate built with `@peculiar/x509` and signed through {@link ScHsmCrypto}; a certificate
 * stored beside its key the way OpenSC stores it (spec §6.2, §10.4): the certificate in `CExx`,
 * then the private key description `C4xx` rewritten with access flags and the subject name, so
 * that `pkcs15-tool --dump` and PKCS#11 applications show it with the key's label and ID.
 *
 * Host-only helpers over the session (guide/style.md: CSR building stays outside the session).
 * @peculiar/x509 is loaded on the first call that needs it (src/x509/lib.ts).
 */
import { createPublicKey } from 'node:crypto';
import type { Extension, Name, Pkcs10CertificateRequest, X509Certificate } from '@peculiar/x509';
import { ScHsmError } from '../errors.js';
import { signAlgorithm } from '../sc-hsm/crypto.js';
import type { SignMechanism, SmartCardHsm } from '../sc-hsm/session.js';
import { storeKeyCertificate } from '../webcrypto/cert-storage.js';
import { ScHsmCrypto } from '../webcrypto/crypto.js';
import type { HsmAlgorithmName } from '../webcrypto/keys.js';
import { parseDistinguishedName } from './dn.js';
import { x509 } from './lib.js';

/** Access flags OpenSC writes into the PRKD once a certificate is stored (0x1D, spec §6.2). */
export { STORED_CERT_ACCESS } from '../webcrypto/cert-storage.js';

/** Hash of the signature; for RSA keys also the padding. */
export interface SigningOptions {
  /** Default SHA-256. */
  hash?: 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512';
  /** RSA keys only: `pkcs1` (default, sha256WithRSAEncryption) or `pss` (salt length = hash length). */
  rsaPadding?: 'pkcs1' | 'pss';
}

export interface CsrOptions extends SigningOptions {
  /** Key reference of the key pair on the device. */
  keyRef: number;
  /** Subject as an RFC 4514 string, e.g. `CN=Example Root CA, O=Example, C=DE`. */
  subject: string;
  /** Extensions requested (extensionRequest attribute). */
  extensions?: Extension[];
}

export interface SelfSignOptions extends SigningOptions {
  keyRef: number;
  subject: string;
  /** Validity in days from now (1 to 36500). */
  days: number;
  /** Serial number as hex; default 16 random bytes. */
  serialNumber?: string;
  /**
   * A CA certificate (default): basicConstraints cA (critical), keyUsage keyCertSign, cRLSign,
   * digitalSignature (critical). `false` gives an end-entity certificate (digitalSignature, plus
   * keyEncipherment for RSA).
   */
  ca?: boolean;
  /** Extra extensions, added after the default ones. */
  extensions?: Extension[];
}

/** A DER object with its PEM form. */
export interface Encoded {
  /** A fresh array over its own ArrayBuffer: a `BufferSource` as it is. */
  der: Uint8Array<ArrayBuffer>;
  pem: string;
}

/**
 * The subject as an X.509 Name, parsed strictly ({@link parseDistinguishedName}: an unknown
 * attribute, a part without `=` or an empty value is INVALID_ARGUMENT, never an empty subject).
 */
function subjectName(subject: string): Name {
  const rdns = parseDistinguishedName(subject);
  return new (x509().Name)(
    rdns.map((rdn) => {
      const o: Record<string, Record<string, string>[]> = {};
      for (const a of rdn) {
        const values = o[a.oid] ?? [];
        values.push({ [a.encoding]: a.value });
        o[a.oid] = values;
      }
      return o;
    }) as never,
  );
}

/**
 * The session's signature mechanism (crypto.ts) a request or certificate by a key of `keyType`
 * is signed with under options `o`: `ECDSA-SHA256`, `RSA-PKCS1-SHA384`, `RSA-PSS-SHA256`, …
 * `signAlgorithm(keyInfo, mechanism)` (src/sc-hsm/crypto.ts) then names the SIGN algorithm byte
 * (spec §3.13) the card gets, and refuses a key whose algorithm list allows none (`csr`,
 * `cert self-sign`). INVALID_ARGUMENT for an unknown hash or an option that does not fit the key.
 */
export function signatureMechanism(keyType: string, o: SigningOptions = {}): SignMechanism {
  const hash = o.hash ?? 'SHA-256';
  const suffix = { 'SHA-1': 'SHA1', 'SHA-256': 'SHA256', 'SHA-384': 'SHA384', 'SHA-512': 'SHA512' }[hash];
  if (!suffix)
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `unsupported hash ${String(hash)}; use SHA-256, SHA-384, SHA-512 or SHA-1`,
    );
  if (keyType === 'ec') {
    if (o.rsaPadding) throw new ScHsmError('INVALID_ARGUMENT', 'an EC key: rsaPadding does not apply');
    return `ECDSA-${suffix}` as SignMechanism;
  }
  if (keyType === 'rsa') return `RSA-${o.rsaPadding === 'pss' ? 'PSS' : 'PKCS1'}-${suffix}` as SignMechanism;
  throw new ScHsmError(
    'INVALID_ARGUMENT',
    `a ${keyType.toUpperCase()} key cannot sign; certificates need an RSA or EC key pair`,
  );
}

/** The key pair as WebCrypto keys with the algorithm the options ask for, plus the signature algorithm. */
async function signer(hsm: SmartCardHsm, keyRef: number, o: SigningOptions) {
  const crypto = new ScHsmCrypto(hsm);
  const info = await crypto.findKey({ keyRef });
  const hash = o.hash ?? 'SHA-256';
  if (!['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512'].includes(hash)) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `unsupported hash ${hash}; use SHA-256, SHA-384, SHA-512 or SHA-1`,
    );
  }
  let name: HsmAlgorithmName;
  let signingAlgorithm: Record<string, unknown>;
  if (info.type === 'ec') {
    if (o.rsaPadding)
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `key reference ${keyRef} is an EC key: rsaPadding does not apply`,
      );
    name = 'ECDSA';
    signingAlgorithm = { name, hash };
  } else if (info.type === 'rsa') {
    name = o.rsaPadding === 'pss' ? 'RSA-PSS' : 'RSASSA-PKCS1-v1_5';
    const saltLength = { 'SHA-1': 20, 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 }[hash];
    signingAlgorithm = name === 'RSA-PSS' ? { name, hash, saltLength } : { name, hash };
  } else {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `key reference ${keyRef} is an AES key; certificates need an RSA or EC key pair`,
    );
  }
  // a key whose algorithm list allows no form of this signature is refused here, before anything
  // is built or sent (a list with only ECDSA-SHA256 signs with the hash computed by the card)
  signAlgorithm(info, signatureMechanism(info.type, o));
  const pair = await crypto.getKeyPair({ keyRef }, { algorithm: { name, hash } });
  return { crypto, pair, signingAlgorithm, info };
}

function encoded(der: ArrayBuffer, tag: string): Encoded {
  return { der: new Uint8Array(der), pem: `${x509().PemConverter.encode(der, tag)}\n` };
}

/**
 * A PKCS#10 certificate request for a device key, signed on the device (ECDSA, RSASSA-PKCS1-v1_5
 * or RSA-PSS). The user PIN must be verified.
 */
export async function createCsr(
  hsm: SmartCardHsm,
  o: CsrOptions,
): Promise<Encoded & { request: Pkcs10CertificateRequest }> {
  const name = subjectName(o.subject);
  const { crypto, pair, signingAlgorithm } = await signer(hsm, o.keyRef, o);
  const request = await x509().Pkcs10CertificateRequestGenerator.create(
    {
      name,
      keys: { privateKey: pair.privateKey, publicKey: pair.publicKey } as unknown as CryptoKeyPair,
      signingAlgorithm: signingAlgorithm as never,
      ...(o.extensions?.length ? { extensions: o.extensions } : {}),
    },
    crypto as never,
  );
  return { ...encoded(request.rawData, 'CERTIFICATE REQUEST'), request };
}

/**
 * A self-signed certificate for a device key (a root CA by default), signed on the device.
 * The certificate is returned, not stored: store it with {@link importCertificate}.
 */
export async function selfSignCertificate(
  hsm: SmartCardHsm,
  o: SelfSignOptions,
): Promise<Encoded & { certificate: X509Certificate }> {
  const name = subjectName(o.subject);
  if (!Number.isInteger(o.days) || o.days < 1 || o.days > 36500) {
    throw new ScHsmError('INVALID_ARGUMENT', `the validity must be 1 to 36500 days; got ${o.days}`);
  }
  let serialNumber: string | undefined;
  if (o.serialNumber !== undefined) {
    serialNumber = o.serialNumber.replace(/^0x/i, '').replace(/[\s:]/g, '');
    if (!/^[0-9a-f]{1,40}$/i.test(serialNumber)) {
      throw new ScHsmError('INVALID_ARGUMENT', 'the serial number must be 1 to 40 hex digits');
    }
  }
  const { crypto, pair, signingAlgorithm, info } = await signer(hsm, o.keyRef, o);
  const {
    BasicConstraintsExtension,
    KeyUsageFlags,
    KeyUsagesExtension,
    SubjectKeyIdentifierExtension,
    X509CertificateGenerator,
  } = x509();
  const ca = o.ca ?? true;
  const usage = ca
    ? KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature
    : KeyUsageFlags.digitalSignature |
      (info.type === 'rsa' ? KeyUsageFlags.keyEncipherment : KeyUsageFlags.keyAgreement);
  const extensions: Extension[] = [
    new BasicConstraintsExtension(ca, undefined, true),
    new KeyUsagesExtension(usage, true),
    await SubjectKeyIdentifierExtension.create(pair.publicKey as never, false, crypto as never),
    ...(o.extensions ?? []),
  ];
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + o.days * 86_400_000);
  const certificate = await X509CertificateGenerator.createSelfSigned(
    {
      name,
      notBefore,
      notAfter,
      keys: { privateKey: pair.privateKey, publicKey: pair.publicKey } as unknown as CryptoKeyPair,
      signingAlgorithm: signingAlgorithm as never,
      extensions,
      ...(serialNumber !== undefined ? { serialNumber } : {}),
    },
    crypto as never,
  );
  return { ...encoded(certificate.rawData, 'CERTIFICATE'), certificate };
}

/** PEM (`-----BEGIN CERTIFICATE-----`) or DER → DER (a fresh array); MALFORMED_DATA for anything else. */
export function certificateDer(derOrPem: Uint8Array | string): Uint8Array<ArrayBuffer> {
  let der: Uint8Array<ArrayBuffer>;
  if (typeof derOrPem === 'string' || (derOrPem.length > 0 && derOrPem[0] === 0x2d) /* '-' */) {
    const text = typeof derOrPem === 'string' ? derOrPem : new TextDecoder().decode(derOrPem);
    const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(text);
    if (!m)
      throw new ScHsmError('MALFORMED_DATA', 'no PEM certificate (-----BEGIN CERTIFICATE-----) in the input');
    der = new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  } else {
    der = derOrPem.slice();
  }
  try {
    new (x509().X509Certificate)(der);
  } catch (e) {
    throw new ScHsmError('MALFORMED_DATA', 'not an X.509 certificate (DER or PEM)', { cause: e });
  }
  return der;
}

/**
 * Stores a certificate for a device key as OpenSC does (spec §6.2, §10.4): checks that its public
 * key is the key's, writes it to `CExx`, then rewrites the PRKD `C4xx` with access flags 0x1D
 * (unless it has some) and the certificate's subject name. KEY_MISMATCH-style refusals are
 * INVALID_ARGUMENT. Returns the stored certificate.
 */
export async function importCertificate(
  hsm: SmartCardHsm,
  keyRef: number,
  derOrPem: Uint8Array | string,
): Promise<{ der: Uint8Array<ArrayBuffer>; subject: string; certificate: X509Certificate }> {
  const der = certificateDer(derOrPem);
  const certificate = new (x509().X509Certificate)(der);
  const info = await hsm.keyInfo(keyRef);
  if (info.type === 'aes')
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `key reference ${keyRef} is an AES key; it takes no certificate`,
    );
  if (!info.publicKey) {
    throw new ScHsmError(
      'KEY_NOT_FOUND',
      `key reference ${keyRef} has no public key on the device to compare the certificate with`,
    );
  }
  const certKey = createPublicKey({
    key: Buffer.from(certificate.publicKey.rawData),
    format: 'der',
    type: 'spki',
  });
  const ownKey = createPublicKey({ key: Buffer.from(info.publicKey), format: 'der', type: 'spki' });
  if (!certKey.equals(ownKey)) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `the certificate for "${certificate.subject}" does not belong to key reference ${keyRef}: its public key differs`,
    );
  }
  await storeKeyCertificate(hsm, keyRef, der);
  return { der, subject: certificate.subject, certificate };
}

/** The certificate stored for a key, as PEM. FILE_NOT_FOUND when `CExx` holds none (only the CV request). */
export async function exportCertificate(hsm: SmartCardHsm, keyRef: number): Promise<string> {
  await hsm.keyInfo(keyRef);
  const der = await hsm.readCertificate(keyRef);
  if (!der) {
    throw new ScHsmError(
      'FILE_NOT_FOUND',
      `key reference ${keyRef} has no X.509 certificate (CE${keyRef.toString(16).padStart(2, '0').toUpperCase()} holds only the key generation request)`,
    );
  }
  return `${x509().PemConverter.encode(der.slice().buffer as ArrayBuffer, 'CERTIFICATE')}\n`;
}

/** Reads a PEM or DER certificate request (for tests and tools). */
export function parseCsr(derOrPem: Uint8Array | string): Pkcs10CertificateRequest {
  return new (x509().Pkcs10CertificateRequest)(
    typeof derOrPem === 'string' ? derOrPem : new Uint8Array(derOrPem),
  );
}

type CryptoKeyPair = import('node:crypto').webcrypto.CryptoKeyPair;

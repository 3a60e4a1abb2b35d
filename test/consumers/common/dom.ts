// Host-side work over a session: WebCrypto keys on the HSM, CSRs and certificates (lib: DOM);
// checked as ESM and as CommonJS by the -dom consumer projects.
import { SmartCardHsm } from 'sc-hsm-ts';
import { VirtualSmartCardHsm } from 'sc-hsm-ts/sim';
import { ScHsmCrypto } from 'sc-hsm-ts/webcrypto';
import { createCsr, selfSignCertificate, verifyDeviceAuthenticity } from 'sc-hsm-ts/x509';

export async function host(data: Uint8Array<ArrayBuffer>): Promise<boolean> {
  const hsm = await SmartCardHsm.open(new VirtualSmartCardHsm());
  await hsm.verifyPin('648219');
  // the example of ScHsmCrypto's TSDoc
  const crypto = new ScHsmCrypto(hsm);
  const { privateKey, publicKey } = await crypto.getKeyPair({ keyRef: 1 });
  const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, data);
  const ok = await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, publicKey, sig, data);
  const raw = await hsm.sign(1, 'ECDSA-SHA256', data, { format: 'raw' });
  // what the session returns is a fresh array, a BufferSource for the platform's WebCrypto
  const digest = await globalThis.crypto.subtle.digest('SHA-256', raw);
  const challenge = await hsm.getChallenge(8);
  await globalThis.crypto.subtle.digest('SHA-256', challenge);
  const csr = await createCsr(hsm, { keyRef: 1, subject: 'CN=Example' });
  const cert = await selfSignCertificate(hsm, { keyRef: 1, subject: 'CN=Example Root CA', days: 365 });
  const device = await verifyDeviceAuthenticity(hsm);
  // a key's SPKI (KeyInfo.publicKey) is a BufferSource for the platform's WebCrypto as it is
  const spki = (await hsm.keyInfo(1)).publicKey;
  if (spki)
    await globalThis.crypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'verify',
    ]);
  await globalThis.crypto.subtle.digest('SHA-256', cert.der);
  // certificates on the card the node-webcrypto-p11 way: importCert, setItem, keys, getItem, exportCert
  const parsed = await crypto.certStorage.importCert(
    'pem',
    cert.pem,
    { name: 'ECDSA', namedCurve: 'P-256' },
    ['verify'],
  );
  const index = await crypto.certStorage.setItem(parsed);
  const stored = await crypto.certStorage.getItem(index);
  const der: ArrayBuffer = await crypto.certStorage.exportCert('raw', stored);
  const pem: string = await crypto.certStorage.exportCert('pem', stored);
  const indexes: string[] = await crypto.certStorage.keys();
  return (
    ok &&
    digest.byteLength === 32 &&
    csr.pem.length > 0 &&
    cert.certificate.subject.length > 0 &&
    device !== undefined &&
    der.byteLength > 0 &&
    pem.length > 0 &&
    indexes.includes(index)
  );
}

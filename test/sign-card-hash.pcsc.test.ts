/**
 * A key restricted to ECDSA-SHA256 (SIGN 73, the card hashes; spec §3.11, §3.13) through pcscd and
 * vpcd: our session over PC/SC makes a certificate request and a self-signed certificate that
 * node:crypto verifies, and WebCrypto refuses SHA-384 with InvalidAccessError before any SIGN.
 */
import { createPublicKey, verify, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { algorithmBytes, SmartCardHsm } from '../src/sc-hsm/session.js';
import type { VpcdConnection } from '../src/sim/vpcd.js';
import { readAll, readTlv } from '../src/util/tlv.js';
import { ScHsmCrypto } from '../src/webcrypto/index.js';
import { createCsr, selfSignCertificate } from '../src/x509/index.js';
import { rejection } from './helpers/fixtures.js';
import { waitForReader } from './helpers/opensc.js';
import { describePcsc, initializedCard, insertCard, removeCard, vpcdSlot } from './helpers/pcsc-env.js';

const PIN = '648219';
const { host, port, reader: READER } = vpcdSlot();

describePcsc('an ECDSA-SHA256-only key signs through pcscd', () => {
  let link: VpcdConnection | undefined;

  beforeAll(async () => {
    const { card, hsm } = await initializedCard(PIN, { label: 'CARDHASH' });
    await hsm.generateKeyPair({
      type: 'ec',
      curve: 'prime256v1',
      label: 'restricted',
      keyRef: 50,
      algorithms: algorithmBytes(['ECDSA-SHA256', 'WRAP', 'DERIVE']),
    });
    card.reset();
    link = await insertCard(card, { host, port });
    await waitForReader(port - 35963, true);
  }, 30_000);

  afterAll(async () => {
    await removeCard(link, port);
  });

  it('createCsr and selfSignCertificate verify; WebCrypto SHA-384 is InvalidAccessError', async () => {
    const transport = await openPcsc({ reader: READER });
    try {
      const hsm = await SmartCardHsm.open(transport);
      await hsm.verifyPin(PIN);
      const csr = await createCsr(hsm, { keyRef: 50, subject: 'CN=pcsc' });
      const top = readTlv(csr.der);
      const [tbs, , sig] = readAll(top.value);
      const fields = readAll(tbs!.value);
      const spki = tbs!.value.subarray(fields[2]!.start, fields[2]!.end);
      const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
      expect(verify('sha256', top.value.subarray(tbs!.start, tbs!.end), key, sig!.value.subarray(1))).toBe(
        true,
      );
      const cert = new X509Certificate(
        (await selfSignCertificate(hsm, { keyRef: 50, subject: 'CN=pcsc', days: 1 })).der,
      );
      expect(cert.verify(cert.publicKey)).toBe(true);
      const crypto = new ScHsmCrypto(hsm);
      const { privateKey } = await crypto.getKeyPair({ keyRef: 50 });
      const e = await rejection(
        crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-384' }, privateKey, Uint8Array.of(1)),
      );
      expect([e.name, e.code]).toEqual(['InvalidAccessError', 'ALGORITHM_NOT_ALLOWED']);
    } finally {
      await transport.close();
    }
  }, 60_000);
});

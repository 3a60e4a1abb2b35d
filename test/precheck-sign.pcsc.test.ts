/**
 * Checks before the PIN through pcscd and vpcd: the pre-check (SmartCardHsm.precheck) of a CSR,
 * a PKA response signature and a certificate import refuses what the key's public FCP and public
 * key rule out (ALGORITHM_NOT_ALLOWED, USE_COUNTER_EXHAUSTED, a certificate of another key) with
 * only public reads sent, so the user PIN keeps its 3 tries.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { algorithmBytes, SmartCardHsm } from '../src/sc-hsm/session.js';
import type { VpcdConnection } from '../src/sim/vpcd.js';
import { createCsr, importCertificate, selfSignCertificate } from '../src/x509/index.js';
import { rejection } from './helpers/fixtures.js';
import { waitForReader } from './helpers/opensc.js';
import { describePcsc, initializedCard, insertCard, removeCard, vpcdSlot } from './helpers/pcsc-env.js';

const PIN = '648219';
const { host, port, reader: READER } = vpcdSlot();

describePcsc('checks before the PIN through pcscd', () => {
  let link: VpcdConnection | undefined;
  let otherCert: Uint8Array;

  beforeAll(async () => {
    const { card, hsm } = await initializedCard(PIN, { label: 'PRECHECK' });
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'plain', keyRef: 1 });
    await hsm.generateKeyPair({
      type: 'ec',
      curve: 'prime256v1',
      label: 'ecdh',
      keyRef: 2,
      algorithms: algorithmBytes(['ECDH']),
    });
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'once', keyRef: 3, useCounter: 1 });
    await hsm.verifyPin(PIN);
    await hsm.sign(3, 'ECDSA-SHA256', Uint8Array.of(1));
    otherCert = (await selfSignCertificate(hsm, { keyRef: 1, subject: 'CN=other', days: 1 })).der;
    card.reset();
    link = await insertCard(card, { host, port });
    await waitForReader(port - 35963, true);
  }, 30_000);

  afterAll(async () => {
    await removeCard(link, port);
  });

  it('csr with an ECDH-only key, csr with an exhausted key, another key\u2019s certificate: refused, 3 tries left', async () => {
    const transport = await openPcsc({ reader: READER });
    try {
      const hsm = await SmartCardHsm.open(transport);
      const pre = (op: () => Promise<unknown>) => rejection(hsm.precheck(op));
      expect((await pre(() => createCsr(hsm, { keyRef: 2, subject: 'CN=a' }))).code).toBe(
        'ALGORITHM_NOT_ALLOWED',
      );
      expect((await pre(() => createCsr(hsm, { keyRef: 3, subject: 'CN=a' }))).code).toBe(
        'USE_COUNTER_EXHAUSTED',
      );
      const e = await pre(() => importCertificate(hsm, 2, otherCert));
      expect(e.message).toContain('does not belong to key reference 2');
      // the allowed key passes the pre-check (it stops at SIGN, unsent)
      await hsm.precheck(() => createCsr(hsm, { keyRef: 1, subject: 'CN=a' }));
      expect((await hsm.pinStatus()).triesLeft).toBe(3);
    } finally {
      await transport.close();
    }
  }, 60_000);
});

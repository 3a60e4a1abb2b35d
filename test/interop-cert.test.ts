/**
 * A certificate stored with importCertificate, as OpenSC sees it through pcscd: `pkcs15-tool --dump`
 * and `pkcs11-tool --list-objects` show it with the key's label and the subject. Runs inside
 * `bash scripts/with-pcscd.sh`; the virtual card sits on vpcd slot 1 ("Virtual PCD 00 01").
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { connectToVpcd, type VpcdConnection } from '../src/sim/vpcd.js';
import { toHex } from '../src/util/bytes.js';
import { importCertificate, selfSignCertificate } from '../src/x509/index.js';
import { argv, grab, ok, pkcs11Tool, pkcs15Tool, READER1, waitForReader } from './helpers/opensc.js';
import { describePcsc, vpcdEndpoint, waitAdopted } from './helpers/pcsc-env.js';

describePcsc('a stored certificate as OpenSC sees it', () => {
  let vpcd: VpcdConnection | undefined;
  let id = '';

  beforeAll(async () => {
    const card = new VirtualSmartCardHsm();
    // personalise in-process (the card object is the transport), then insert it into vpcd slot 1
    const hsm = await SmartCardHsm.open(card);
    await hsm.initialize({ soPin: '3537363231383830', userPin: '648219', label: 'CertTest' });
    await hsm.verifyPin('648219');
    const g = await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'ca-key' });
    id = toHex(g.id).toLowerCase();
    const cert = await selfSignCertificate(hsm, {
      keyRef: g.keyRef,
      subject: 'CN=Interop Root CA, O=Example',
      days: 365,
    });
    await importCertificate(hsm, g.keyRef, cert.der);
    const rsa = await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'rsa-key' });
    await importCertificate(
      hsm,
      rsa.keyRef,
      (await selfSignCertificate(hsm, { keyRef: rsa.keyRef, subject: 'CN=Interop RSA', days: 30 })).der,
    );
    const port = vpcdEndpoint().port + 1;
    vpcd = connectToVpcd(card, { host: vpcdEndpoint().host, port });
    await vpcd.connected;
    await waitAdopted(vpcd, port);
    await waitForReader(1, true, 8000);
  }, 60_000);

  afterAll(async () => {
    await vpcd?.close();
  });

  it('pkcs15-tool --dump shows the X.509 certificate with the key’s label and ID, and the key with access flags', async () => {
    const r = ok(await pkcs15Tool(argv`--reader 1 --dump`));
    const block = grab(
      r,
      /X\.509 Certificate \[ca-key\][\s\S]*?(?=\n\n|$)/,
      'the certificate block of ca-key',
    )[0];
    expect(block).toMatch(new RegExp(`ID\\s*:\\s*${id}`, 'i'));
    expect(r.stdout).toMatch(/X\.509 Certificate \[rsa-key\]/);
    const key = grab(r, /Private EC Key \[ca-key\][\s\S]*?(?=\n\n|$)/, 'the private key block of ca-key')[0];
    expect(key).toMatch(/Access Flags\s*:\s*\[0x1D\]/i);
  });

  it('pkcs15-tool --read-certificate returns the certificate with its subject', async () => {
    const r = ok(await pkcs15Tool(argv`--reader 1 --read-certificate ${id}`));
    expect(r.stdout).toMatch(/-----BEGIN CERTIFICATE-----/);
  });

  it('pkcs11-tool --list-objects shows the certificate object with label and subject', async () => {
    const slots = ok(await pkcs11Tool(argv`--list-slots`));
    const slot = grab(
      slots,
      new RegExp(`^Slot (\\d+) \\(0x[0-9a-f]+\\): ${READER1}\\s*$`, 'm'),
      `the slot of ${READER1}`,
    )[1]!;
    const r = ok(await pkcs11Tool(argv`--slot-index ${slot} --list-objects --type cert`));
    const block = grab(
      r,
      /Certificate Object; type = X\.509 cert\s*\n\s*label:\s*ca-key[\s\S]*?(?=\nCertificate Object|$)/,
      'the ca-key certificate object',
    )[0];
    expect(block).toMatch(/subject:\s*DN: .*CN\s*=\s*Interop Root CA/);
    expect(block).toMatch(new RegExp(`ID:\\s*${id}`, 'i'));
    expect(r.stdout).toMatch(/label:\s*rsa-key/);
  });
});

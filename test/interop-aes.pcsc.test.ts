/**
 * OpenSC 0.23 on a virtual card that holds an AES key (secret key description `A8`, spec §6.3)
 * beside an EC key: OpenSC has no AES for this card, but `pkcs15-tool --dump` must still work and
 * list the EC key, and pkcs11-tool must still sign with it. Through pcscd and vpcd.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { VpcdConnection } from '../src/sim/vpcd.js';
import { argv, ok, pkcs15Tool, show, waitForReader } from './helpers/opensc.js';
import { describePcsc, initializedCard, insertCard, removeCard, vpcdEndpoint } from './helpers/pcsc-env.js';

const PIN = '648219';
const { host, port } = vpcdEndpoint();

describePcsc('OpenSC with an AES key on the card', () => {
  let link: VpcdConnection | undefined;

  beforeAll(async () => {
    const { card, hsm } = await initializedCard(PIN, { label: 'AES-HSM' });
    await hsm.generateAesKey({ bits: 256, label: 'vault-aes' });
    await hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'signer-ec' });
    card.reset();
    link = await insertCard(card, { host, port });
    await waitForReader(port - 35963, true);
  });

  afterAll(async () => {
    await removeCard(link, port);
  });

  it('pkcs15-tool --dump succeeds and lists the EC key; the AES key does not break it', async () => {
    const r = ok(await pkcs15Tool(argv`-r ${String(port - 35963)} --dump`));
    expect(r.stdout, show(r)).toMatch(/Private EC Key \[signer-ec\]/);
    expect(r.stdout).toMatch(/PKCS#15 Card \[AES-HSM\]/);
    // OpenSC 0.23's SmartCard-HSM emulation decodes only private key descriptions: it skips the
    // AES key's (A8) quietly
    expect(r.stdout).not.toMatch(/vault-aes/);
  });
});

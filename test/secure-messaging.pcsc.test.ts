/**
 * Secure messaging (spec §3.19) and the session PIN (§3.20) through the real stack: pcsclite →
 * pcscd → vpcd → the virtual card. Run inside scripts/with-pcscd.sh.
 */
import { createPublicKey, verify } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import type { PcscTransport } from '../src/apdu/pcsc.js';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import type { VpcdConnection } from '../src/sim/vpcd.js';
import { deviceChainVerifier } from '../src/x509/index.js';
import { rejection } from './helpers/fixtures.js';
import { describePcsc, insertCard, vpcdEndpoint, vpcdReaderName } from './helpers/pcsc-env.js';

describePcsc('secure messaging through pcscd', () => {
  let vpcd: VpcdConnection | undefined;
  const transports: PcscTransport[] = [];
  afterAll(async () => {
    for (const t of transports) await t.close().catch(() => undefined);
    await vpcd?.close();
  });

  it('login, key generation and signature under SM; the session PIN in a second connection', async () => {
    const card = new VirtualSmartCardHsm();
    const endpoint = vpcdEndpoint();
    vpcd = await insertCard(card, endpoint);
    const open = async () => {
      const t = await openPcsc({ reader: vpcdReaderName(endpoint.port) });
      transports.push(t);
      return SmartCardHsm.open(t);
    };
    const a = await open();
    await a.initialize({ soPin: '3537363231383830', userPin: '648219', sessionPin: true });
    await a.logout();
    await a.openSecureChannel({ verifyChain: deviceChainVerifier({ acceptVirtual: true }) });
    await a.verifyPin('648219');
    const key = await a.generateKeyPair({ type: 'ec', curve: 'brainpoolP256r1', label: 'pcsc sm' });
    const msg = new TextEncoder().encode('through pcscd, protected');
    const sig = await a.sign(key.keyRef, 'ECDSA-SHA256', msg);
    const pub = createPublicKey({ key: Buffer.from(key.publicKey), format: 'der', type: 'spki' });
    expect(verify('sha256', msg, { key: pub, dsaEncoding: 'der' }, sig)).toBe(true);
    const sp = await a.getSessionPin();
    await a.close();

    const b = await open();
    expect((await b.pinStatus()).state).not.toBe('verified');
    await b.openSecureChannel({ verifyChain: deviceChainVerifier({ acceptVirtual: true }) });
    // a plain command would end SM on the card: the host never sends one once the channel is open
    await b.verifySessionPin(sp);
    expect((await b.sign(key.keyRef, 'ECDSA-SHA256', msg)).length).toBeGreaterThan(60);
    await b.close();

    const c = await open();
    expect((await rejection(c.openSecureChannel({ verifyChain: deviceChainVerifier() }))).code).toBe(
      'DEVICE_NOT_AUTHENTIC',
    );
    await c.close();
  });
});

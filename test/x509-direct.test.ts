/**
 * @peculiar/x509 used directly with a device key, the way a consumer does, in a fresh process
 * (vitest runs each file in its own fork) where nothing of src/x509/ has loaded it. On curves
 * @peculiar/x509 does not know (it sizes WebCrypto's r‖s by the curve name and knows only
 * P-256/384/521 and K-256), it cut the signature at 32 bytes and made a certificate whose
 * signature did not verify, until src/x509/lib.ts had taught it the card's curves.
 */
import 'reflect-metadata';
import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SmartCardHsm } from '../src/sc-hsm/session.js';
import type { CurveName } from '../src/util/curves.js';
import { ScHsmCrypto } from '../src/webcrypto/crypto.js';
import { isX509Loaded } from '../src/x509/lib.js';
import { initializedHsm } from './helpers/fixtures.js';

const CURVES: CurveName[] = ['brainpoolP384r1', 'prime192v1', 'secp192k1', 'brainpoolP512r1', 'prime256v1'];

describe('@peculiar/x509 directly with a device key, in a fresh process', () => {
  let hsm: SmartCardHsm;
  beforeAll(async () => {
    hsm = await initializedHsm();
  });

  it('nothing has taught @peculiar/x509 the card curves yet (the reproduction holds)', () => {
    expect(isX509Loaded()).toBe(false);
    expect(x509.AsnEcSignatureFormatter.namedCurveSize.has('brainpoolP384r1')).toBe(false);
  });

  for (const curve of CURVES) {
    it(`a self-signed certificate on ${curve} verifies (openssl via node:crypto)`, async () => {
      const crypto = new ScHsmCrypto(hsm);
      const k = await hsm.generateKeyPair({ type: 'ec', curve, label: `direct-${curve}` });
      const pair = await crypto.getKeyPair({ keyRef: k.keyRef });
      const cert = await x509.X509CertificateGenerator.createSelfSigned(
        {
          name: `CN=direct ${curve}`,
          notBefore: new Date(Date.now() - 60_000),
          notAfter: new Date(Date.now() + 86_400_000),
          keys: pair as never,
          signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
        },
        crypto as never,
      );
      const node = new NodeX509Certificate(Buffer.from(cert.rawData));
      expect(node.verify(node.publicKey)).toBe(true);
      // and @peculiar/x509's own check, through the same crypto
      expect(await cert.verify({ signatureOnly: true }, crypto as never)).toBe(true);
      expect(isX509Loaded()).toBe(false);
    });
  }
});

// A downstream test suite on sc-hsm-ts/testing: the in-process test device, a fault injected into
// the application's own error path, and (under `sc-hsm-ts sim run --cards 0`) a card in pcscd
// used through OpenSC's PKCS#11 module.
import { execFile } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { SmartCardHsm } from 'sc-hsm-ts';
import {
  FaultInjectingTransport,
  initializedTestDevice,
  type PcscTestCard,
  startPcscCard,
  TEST_LABEL,
  TEST_PIN,
} from 'sc-hsm-ts/testing';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signDocument } from './app.js';

const doc = new TextEncoder().encode('contract v7');

describe('signDocument on the in-process test device', () => {
  it('signs what node:crypto verifies', async () => {
    await using dev = await initializedTestDevice();
    const sig = await signDocument(dev.hsm, dev.keys.ec.keyRef, doc);
    const key = createPublicKey({ key: Buffer.from(dev.keys.ec.publicKey), format: 'der', type: 'spki' });
    expect(verify('sha256', doc, key, sig)).toBe(true);
  });

  it('says the HSM was unplugged when the card goes during the sign (fault injection)', async () => {
    await using dev = await initializedTestDevice();
    const faulty = new FaultInjectingTransport(dev.card);
    const hsm = await SmartCardHsm.open(faulty);
    await hsm.verifyPin(TEST_PIN);
    faulty.arm({ at: faulty.count + 1, kind: 'card-removed', delivered: false });
    await expect(signDocument(hsm, dev.keys.ec.keyRef, doc)).rejects.toThrow(/unplugged while signing/);
  });
});

describe.runIf(process.env.SC_HSM_SIM_RUN)('a test device in pcscd (sim run --cards 0)', () => {
  let dev: PcscTestCard;
  beforeAll(async () => {
    dev = await startPcscCard();
  });
  afterAll(() => dev?.close());

  it('OpenSC’s PKCS#11 module lists the token on the reader it gave', async () => {
    // asynchronously: the card answers from this process's event loop (execFileSync would deadlock)
    const { stdout: out } = await promisify(execFile)('pkcs11-tool', ['--module', dev.pkcs11Module!, '-L']);
    expect(out).toContain(TEST_LABEL);
    expect(dev.reader).toMatch(/^Virtual PCD 00 0[01]$/);
  });
});

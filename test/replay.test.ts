/**
 * The recorded transcript of fixtures/transcripts/ replays green: the session sends exactly the
 * APDUs it sent when recorded (secrets masked), nothing missing, nothing left over.
 * Re-record deliberately with `npx tsx scripts/record-fixtures.ts`.
 */

import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ReplayTransport } from '../src/apdu/transcript.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';

const transcript = readFileSync(
  new URL('../fixtures/transcripts/init-and-keygen.apdu', import.meta.url),
  'utf8',
);

describe('replay of fixtures/transcripts/init-and-keygen.apdu', () => {
  it('contains no secret: PINs, SO-PIN and the DKEK share are masked', () => {
    expect(transcript).not.toMatch(/363438323139/); // "648219"
    expect(transcript).not.toMatch(/3537363231383830/i);
    expect(transcript).not.toMatch(/(5a){32}/);
    expect(transcript).toMatch(/\*\*/);
  });

  it('replays initialize, DKEK import and key generation byte for byte', async () => {
    const replay = new ReplayTransport(transcript);
    const hsm = await SmartCardHsm.open(replay);
    // different secret values of the same length match the masked bytes
    await hsm.initialize({
      soPin: '0011223344556677',
      userPin: '111111',
      label: 'MTG-CARA-HSM',
      dkekShares: 1,
    });
    const st = await hsm.importDkekShare(new Uint8Array(32).fill(1));
    expect(st).toMatchObject({ total: 1, outstanding: 0 });
    await hsm.verifyPin('222222');
    const ec = await hsm.generateKeyPair({
      type: 'ec',
      curve: 'prime256v1',
      label: 'cara-ec-ca',
      id: Uint8Array.of(2),
    });
    const rsa = await hsm.generateKeyPair({
      type: 'rsa',
      bits: 2048,
      label: 'cara-rsa-ca',
      id: Uint8Array.of(1),
    });
    expect(ec.keyRef).toBe(1);
    expect(rsa.keyRef).toBe(2);
    expect(
      createPublicKey({ key: Buffer.from(ec.publicKey), format: 'der', type: 'spki' }).asymmetricKeyDetails
        ?.namedCurve,
    ).toBe('prime256v1');
    const keys = await hsm.listKeys();
    expect(keys.map((k) => [k.keyRef, k.label, k.type])).toEqual([
      [1, 'cara-ec-ca', 'ec'],
      [2, 'cara-rsa-ca', 'rsa'],
    ]);
    await hsm.close(); // fails if any recorded APDU was not sent
  });

  it('fails on a divergence: another label changes the bytes', async () => {
    const hsm = await SmartCardHsm.open(new ReplayTransport(transcript));
    await expect(
      hsm.initialize({ soPin: '0011223344556677', userPin: '111111', label: 'OTHER-LABEL!', dkekShares: 1 }),
    ).rejects.toMatchObject({ code: 'REPLAY_MISMATCH' });
  });
});

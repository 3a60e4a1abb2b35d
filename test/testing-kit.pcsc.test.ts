/**
 * `startPcscCard` of `sc-hsm-ts/testing` through pcscd, as an application's test file uses it: the
 * reader name and OpenSC's PKCS#11 module path it gives work with OpenSC and with openPcsc, and
 * close() takes the card out.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SmartCardHsm } from '../src/index.js';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { type PcscTestCard, startPcscCard, TEST_LABEL, TEST_PIN } from '../src/testing.js';
import { describePcsc, waitForCard } from './helpers/pcsc-env.js';

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((r, j) =>
    execFile(cmd, args, { timeout: 30_000 }, (e, out, err) =>
      e ? j(new Error(`${e.message}\n${err}`)) : r(out),
    ),
  );
}

describePcsc('startPcscCard (sc-hsm-ts/testing) through pcscd', () => {
  let dev: PcscTestCard;
  beforeAll(async () => {
    dev = await startPcscCard({ slot: 1 });
  });
  afterAll(() => dev?.close());

  it('gives the reader and the PKCS#11 module; OpenSC sees the initialized token and its key', async () => {
    expect(dev.reader).toBe('Virtual PCD 00 01');
    expect(dev.pkcs11Module).toMatch(/opensc-pkcs11\.so$/);
    const slots = await run('pkcs11-tool', ['--module', dev.pkcs11Module!, '-L']);
    expect(slots).toContain(TEST_LABEL);
    const objs = await run('pkcs11-tool', [
      '--module',
      dev.pkcs11Module!,
      '--token-label',
      TEST_LABEL,
      '-O',
      '--login',
      '--pin',
      TEST_PIN,
    ]);
    expect(objs).toContain('test-ec');
  });

  it('openPcsc with the reader name opens a session on it', async () => {
    const hsm = await SmartCardHsm.open(await openPcsc({ reader: dev.reader }));
    try {
      expect((await hsm.status()).label).toBe(TEST_LABEL);
    } finally {
      await hsm.close();
    }
  });

  it('close() takes the card out of the reader', async () => {
    await dev.close();
    await waitForCard(dev.reader, false);
  });
});

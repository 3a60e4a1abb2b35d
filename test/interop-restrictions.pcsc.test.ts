/**
 * Keys with restrictions fixed at generation (algorithm list, key-use counter; spec §3.11) and a
 * derived EC key (`80 76`, spec §3.15) through pcscd and vpcd: our session over PC/SC, and OpenSC
 * 0.23 (`pkcs15-tool --dump`, `pkcs11-tool --sign`) on the same card.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decodeWrapFile, inspectKeyBlob } from '../src/dkek/index.js';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { algorithmBytes, algorithmNames, SmartCardHsm } from '../src/sc-hsm/session.js';
import type { VpcdConnection } from '../src/sim/vpcd.js';
import { fromHex } from '../src/util/bytes.js';
import { rejection } from './helpers/fixtures.js';
import { argv, ok, pkcs11Tool, pkcs15Tool, scHsmTool, show, waitForReader } from './helpers/opensc.js';
import { describePcsc, initializedCard, insertCard, removeCard, vpcdSlot } from './helpers/pcsc-env.js';

const PIN = '648219';
const SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');
const { host, port, reader: READER } = vpcdSlot();
const INDEX = String(port - 35963);

describePcsc('restricted and derived keys through pcscd', () => {
  let link: VpcdConnection | undefined;
  let dir = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sc-hsm-ts-restr-'));
    const { card, hsm } = await initializedCard(PIN, { label: 'RESTR-HSM', dkekShare: SHARE });
    await hsm.generateKeyPair({
      type: 'ec',
      curve: 'prime256v1',
      label: 'exportable',
      keyRef: 3,
      algorithms: algorithmBytes(['ECDSA-SHA256', 'WRAP']),
      useCounter: 10,
    });
    // a key of another device with the same DKEK, wrapped by our library, for sc-hsm-tool to unwrap here
    const { hsm: other } = await initializedCard(PIN, { dkekShare: SHARE });
    await other.generateKeyPair({
      type: 'ec',
      curve: 'prime256v1',
      label: 'from-ts',
      keyRef: 1,
      algorithms: algorithmBytes(['ECDSA', 'WRAP']),
    });
    writeFileSync(join(dir, 'ts.bin'), await other.backupKey(1));
    await hsm.generateKeyPair({
      type: 'ec',
      curve: 'prime256v1',
      label: 'limited',
      keyRef: 1,
      algorithms: algorithmBytes(['ECDSA', 'ECDSA-SHA256', 'DERIVE']),
      useCounter: 3,
    });
    await hsm.generateKeyPair({
      type: 'rsa',
      bits: 1024,
      label: 'rsa-pss-only',
      keyRef: 2,
      algorithms: algorithmBytes(['RSA-PSS-SHA256']),
    });
    card.reset();
    link = await insertCard(card, { host, port });
    await waitForReader(Number(INDEX), true);
  }, 30_000);

  afterAll(async () => {
    await removeCard(link, port);
    await rm(dir, { recursive: true, force: true });
  });

  it('our session over PC/SC: lists the restrictions, derives, counts down to "key use counter exhausted"', async () => {
    const transport = await openPcsc({ reader: READER });
    try {
      const hsm = await SmartCardHsm.open(transport);
      const keys = await hsm.listKeys();
      expect(keys.map((k) => [k.keyRef, k.algorithms && algorithmNames(k.algorithms), k.useCounter])).toEqual(
        [
          [1, ['ECDSA', 'ECDSA-SHA256', 'DERIVE'], 3],
          [2, ['RSA-PSS-SHA256'], undefined],
          [3, ['ECDSA-SHA256', 'WRAP'], 10],
        ],
      );
      await hsm.verifyPin(PIN);
      const d = await hsm.deriveEcKey(1, 5, fromHex('2a'), { label: 'derived' });
      expect(d.keyRef).toBe(5);
      expect((await hsm.keyInfo(1)).useCounter).toBe(2);
      await hsm.sign(1, 'ECDSA-SHA256', Uint8Array.of(1));
      await hsm.sign(1, 'ECDSA', new Uint8Array(32));
      const e = await rejection(hsm.sign(1, 'ECDSA', new Uint8Array(32)));
      expect(e.code).toBe('USE_COUNTER_EXHAUSTED');
      expect(e.message).toContain('key use counter exhausted');
      expect((await rejection(hsm.sign(2, 'RSA-PKCS1-SHA256', Uint8Array.of(1)))).code).toBe(
        'ALGORITHM_NOT_ALLOWED',
      );
      // the derived key inherits list and uses left (DERIVE_INHERITS): 2, one spent by its check signature
      const derived = await hsm.keyInfo(5);
      expect([algorithmNames(derived.algorithms!), derived.useCounter]).toEqual([
        ['ECDSA', 'ECDSA-SHA256', 'DERIVE'],
        1,
      ]);
      expect(d.warning).toBeUndefined();
    } finally {
      await transport.close();
    }
  }, 60_000);

  it('pkcs15-tool --dump lists the restricted keys and the derived key without error', async () => {
    const r = ok(await pkcs15Tool(argv`-r ${INDEX} --dump`));
    expect(r.stdout, show(r)).toMatch(/Private EC Key \[limited\]/);
    expect(r.stdout, show(r)).toMatch(/Private RSA Key \[rsa-pss-only\]/);
    expect(r.stdout, show(r)).toMatch(/Private EC Key \[derived\]/);
    expect(r.stderr, show(r)).not.toMatch(/error|failed/i);
  });

  it('pkcs11-tool signs with the derived key (its last inherited use) and is refused by the exhausted one', async () => {
    const data = join(dir, 'data.txt');
    writeFileSync(data, 'signed through OpenSC\n');
    const lines = ok(await pkcs11Tool(argv`--list-slots`));
    const slot = lines.stdout.match(new RegExp(`^Slot (\\d+) \\(0x[0-9a-f]+\\): ${READER}\\s*$`, 'm'))?.[1];
    expect(slot, show(lines)).toBeDefined();
    const sign = (id: string, out: string) =>
      pkcs11Tool(
        argv`--slot-index ${slot!} --login --pin env:SC_PIN --sign --mechanism ECDSA-SHA256 --id ${id} --input-file ${data} --output-file ${join(dir, out)}`,
        { env: { SC_PIN: PIN } },
      );
    const keys = ok(await pkcs15Tool(argv`-r ${INDEX} --list-keys`)).stdout;
    const idOf = (label: string) => {
      const block = keys.split(/\n(?=\S)/).find((b) => b.includes(`[${label}]`));
      return block?.match(/^\s*ID\s*:\s*([0-9a-f]+)/m)?.[1];
    };
    const derivedId = idOf('derived');
    const limitedId = idOf('limited');
    expect(derivedId, keys).toBeDefined();
    ok(await sign(derivedId!, 'derived.sig'));
    const refused = await sign(limitedId!, 'limited.sig');
    expect(refused.code, show(refused)).not.toBe(0);
  }, 60_000);

  it('sc-hsm-tool --wrap-key of a restricted key: the blob carries the list; our .bin unwraps with sc-hsm-tool and keeps it', async () => {
    const out = join(dir, 'exportable.bin');
    ok(
      await scHsmTool(argv`-r ${INDEX} --wrap-key ${out} --key-reference 3 --pin env:SC_PIN`, {
        env: { SC_PIN: PIN },
      }),
    );
    const wrapped = decodeWrapFile(readFileSync(out));
    expect(algorithmNames(inspectKeyBlob(wrapped.blob).algorithms)).toEqual(['ECDSA-SHA256', 'WRAP']);
    // the key without WRAP may not leave: sc-hsm-tool fails
    const refused = await scHsmTool(
      argv`-r ${INDEX} --wrap-key ${join(dir, 'no.bin')} --key-reference 1 --pin env:SC_PIN`,
      {
        env: { SC_PIN: PIN },
      },
    );
    expect(refused.code, show(refused)).not.toBe(0);
    ok(
      await scHsmTool(
        argv`-r ${INDEX} --unwrap-key ${join(dir, 'ts.bin')} --key-reference 9 --pin env:SC_PIN`,
        {
          env: { SC_PIN: PIN },
        },
      ),
    );
    const transport = await openPcsc({ reader: READER });
    try {
      const hsm = await SmartCardHsm.open(transport);
      const k = await hsm.keyInfo(9);
      expect(k.label).toBe('from-ts');
      expect(algorithmNames(k.algorithms!)).toEqual(['ECDSA', 'WRAP']);
      expect(k.useCounter).toBeUndefined();
    } finally {
      await transport.close();
    }
  }, 60_000);
});

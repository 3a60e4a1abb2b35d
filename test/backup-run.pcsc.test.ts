/**
 * Backup and restore hold the card exclusively for the whole run (CardFiles.run): through pcscd
 * the run works end to end, sends 4 APDUs a key each way, and gives the card back shared to other
 * applications afterwards (pkcs15-tool reads the restored device while our session is still open).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { backupDevice, restoreDevice } from '../src/sc-hsm/backup.js';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import type { VirtualSmartCardHsm } from '../src/sim/index.js';
import type { VpcdConnection } from '../src/sim/vpcd.js';
import { fromHex } from '../src/util/bytes.js';
import { argv, ok, pkcs15Tool, show, waitForReader } from './helpers/opensc.js';
import {
  describePcsc,
  initializedCard,
  insertCard,
  removeCard,
  vpcdSlot,
  waitForCard,
} from './helpers/pcsc-env.js';

const PIN = '648219';
const SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');
const KEYS = 5;
const { host, port, reader: READER } = vpcdSlot();
const INDEX = String(port - 35963);

async function device(keys: number): Promise<VirtualSmartCardHsm> {
  const { card, hsm } = await initializedCard(PIN, { label: 'RUN-HSM', dkekShare: SHARE });
  for (let i = 0; i < keys; i++)
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: `run${i}` });
  card.reset();
  return card;
}

describePcsc('backup and restore through pcscd, the card held for the run', () => {
  let link: VpcdConnection | undefined;
  let dir = '';

  afterAll(async () => {
    await removeCard(link, port);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`backs up ${KEYS} keys and restores them onto a blank device; OpenSC reads it while our session is open`, async () => {
    dir = await mkdtemp(join(tmpdir(), 'sc-hsm-ts-run-'));
    const backup = join(dir, 'backup');
    link = await insertCard(await device(KEYS), { host, port });
    await waitForReader(Number(INDEX), true);
    let t = await openPcsc({ reader: READER });
    try {
      const hsm = await SmartCardHsm.open(t);
      const before = hsm.apduCount;
      const r = await backupDevice(hsm, backup, { authenticate: () => hsm.verifyPin(PIN) });
      expect(r.keys).toHaveLength(KEYS);
      // select, PIN status ×2, DKEK and domain status, serial, label, PIN, enumerate ×3, then 4 a
      // key, and one more before the PIN (its algorithm list: keys that may not be wrapped first)
      expect(hsm.apduCount - before).toBeLessThanOrEqual(13 + 5 * KEYS);
    } finally {
      await t.close();
    }
    await removeCard(link, port);
    link = await insertCard(await device(0), { host, port });
    await waitForCard(READER, true);
    t = await openPcsc({ reader: READER });
    try {
      const hsm = await SmartCardHsm.open(t);
      const r = await restoreDevice(hsm, backup, { authenticate: () => hsm.verifyPin(PIN) });
      expect(r.written).toBe(KEYS);
      // the card is shared again after the run: another application gets in at once
      const dump = ok(await pkcs15Tool(argv`-r ${INDEX} --dump`));
      for (let i = 0; i < KEYS; i++) expect(dump.stdout, show(dump)).toContain(`Private EC Key [run${i}]`);
      expect((await hsm.listKeys()).map((k) => k.label)).toEqual(
        Array.from({ length: KEYS }, (_, i) => `run${i}`),
      );
    } finally {
      await t.close();
    }
  }, 120_000);
});

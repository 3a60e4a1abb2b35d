/**
 * Restoring N keys must not read every key description N times (issue #15: on the real device
 * each READ BINARY costs tens of milliseconds; restoring 150 keys read ~11,000 descriptions).
 * checkFreeId reads each description once per session (CardFiles.readRemembered); a description
 * this session writes or deletes is read again, so nothing stale decides a key ID.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RecordingTransport } from '../src/apdu/transcript.js';
import { backupDevice, restoreDevice, SmartCardHsm } from '../src/index.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { dkekCard, PIN, tempDir, withEcKeys } from './cli-helpers.js';
import { rejection } from './helpers/fixtures.js';

const KEYS = 6;
const blankDevice = () => dkekCard('reads');

/** READ BINARY (odd INS B1 with the FID in P1P2) of a key description C4xx, by FID, in `lines`. */
function descriptionReads(lines: readonly string[]): Map<string, number> {
  const n = new Map<string, number>();
  for (const l of lines) {
    const m = /^=> 00 ?B1 ?(C4) ?([0-9A-F]{2})/i.exec(l);
    if (m) n.set(`${m[1]}${m[2]}`.toUpperCase(), (n.get(`${m[1]}${m[2]}`.toUpperCase()) ?? 0) + 1);
  }
  return n;
}

describe('restore reads each key description once', () => {
  it(`restores ${KEYS} keys reading no description more than once`, async () => {
    const root = await tempDir();
    const source = await blankDevice();
    const blank = (await blankDevice()).serialize();
    const src = await withEcKeys(source, KEYS);
    const dir = join(root, 'backup');
    await backupDevice(src, dir, { authenticate: () => src.verifyPin(PIN) });

    const rec = new RecordingTransport(VirtualSmartCardHsm.deserialize(blank));
    const hsm = await SmartCardHsm.open(rec);
    const r = await restoreDevice(hsm, dir, { authenticate: () => hsm.verifyPin(PIN) });
    expect(r.keys.filter((k) => k.written)).toHaveLength(KEYS);
    const reads = descriptionReads(rec.lines);
    // each key's description is read at most once after it was written (the ID check of the next keys)
    expect([...reads.values()].every((n) => n <= 1)).toBe(true);
    expect(reads.size).toBeLessThanOrEqual(KEYS);
    // the restored keys are all there, with their own IDs
    const listed = await hsm.listKeys();
    expect(listed.map((k) => k.label).sort()).toEqual(Array.from({ length: KEYS }, (_, i) => `k${i}`));
  });

  it('a description rewritten in the session is read again: a duplicate ID is still refused', async () => {
    const card = await blankDevice();
    const hsm = await SmartCardHsm.open(card);
    await hsm.verifyPin(PIN);
    const a = await hsm.generateKeyPair({
      type: 'ec',
      curve: 'prime256v1',
      label: 'a',
      id: Uint8Array.of(0x0a),
    });
    // reads (and remembers) a's description in the ID check
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'b', id: Uint8Array.of(0x0b) });
    // the session deletes a: the remembered description is dropped, and the ID is free again
    await hsm.deleteKey(a.keyRef);
    const c = await hsm.generateKeyPair({
      type: 'ec',
      curve: 'prime256v1',
      label: 'c',
      id: Uint8Array.of(0x0a),
    });
    expect(c.keyRef).toBeGreaterThan(0);
    const e = await rejection(
      hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'd', id: Uint8Array.of(0x0a) }),
    );
    expect(e.code).toBe('KEY_ID_IN_USE');
  });
});

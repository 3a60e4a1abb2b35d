/**
 * Backup and restore cost a bounded number of APDUs per key (issue #15: on the real device every
 * APDU costs 20–30 ms). Per key, a backup sends READ BINARY of the key's description and
 * certificate (once), SELECT of the key (its domain and restrictions) and WRAP KEY; a restore sends
 * ENUMERATE OBJECTS (the reference's files, fresh in the same exclusive section), UNWRAP KEY and
 * the two UPDATE BINARY. Once per run: the DKEK status, the key list. Counts, not times: the slope
 * between two device sizes, so the per-run part does not hide a per-key one.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RecordingTransport } from '../src/apdu/transcript.js';
import { backupDevice, restoreDevice, SmartCardHsm } from '../src/index.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { dkekCard, PIN, tempDir, withEcKeys } from './cli-helpers.js';
import { rejection } from './helpers/fixtures.js';

const blankDevice = () => dkekCard('apdus');

/** The command APDUs of `lines`, by INS (hex, uppercase). */
function byIns(lines: readonly string[]): Map<string, number> {
  const n = new Map<string, number>();
  for (const l of lines) {
    if (!l.startsWith('=> ')) continue;
    const ins = l.slice(3).replace(/ /g, '').slice(2, 4).toUpperCase();
    n.set(ins, (n.get(ins) ?? 0) + 1);
  }
  return n;
}

const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

/** Backs up a device with `keys` EC keys and restores it onto a blank one; both transcripts. */
async function run(keys: number) {
  const root = await tempDir();
  const source = await blankDevice();
  const blank = (await blankDevice()).serialize();
  await withEcKeys(source, keys);
  const backupRec = new RecordingTransport(VirtualSmartCardHsm.deserialize(source.serialize()));
  const b = await SmartCardHsm.open(backupRec);
  const dir = join(root, 'backup');
  const backed = await backupDevice(b, dir, { authenticate: () => b.verifyPin(PIN) });
  expect(backed.keys).toHaveLength(keys);
  const restoreRec = new RecordingTransport(VirtualSmartCardHsm.deserialize(blank));
  const r = await SmartCardHsm.open(restoreRec);
  const restored = await restoreDevice(r, dir, { authenticate: () => r.verifyPin(PIN) });
  expect(restored.written).toBe(keys);
  return { backup: byIns(backupRec.lines), restore: byIns(restoreRec.lines), hsm: r };
}

describe('backup and restore: APDUs per key', () => {
  it('a backup sends at most 5 APDUs per added key, a restore at most 4', async () => {
    const small = await run(4);
    const large = await run(12);
    const slope = (a: Map<string, number>, b: Map<string, number>) => (total(b) - total(a)) / 8;
    // READ BINARY ×2, SELECT, WRAP KEY (was 6: the description and certificate read twice), and
    // before the PIN one SELECT for the key's algorithm list (a key that may not be wrapped is
    // named before the PIN is sent or anything written)
    expect(slope(small.backup, large.backup)).toBeLessThanOrEqual(5);
    // + the device's 2F02 and 2F03 (serial, label), once
    expect(large.backup.get('B1')).toBe(2 * 12 + 2);
    expect(large.backup.get('72')).toBe(12);
    // ENUMERATE, UNWRAP KEY, UPDATE BINARY ×2 (was 8: DKEK status, DELETE ×2, a description re-read)
    expect(slope(small.restore, large.restore)).toBeLessThanOrEqual(4);
    expect(large.restore.get('74')).toBe(12);
    // the DKEK status once per run whatever the size; nothing deleted on a blank device
    expect(large.restore.get('52')).toBe(small.restore.get('52'));
    expect(large.restore.get('E4') ?? 0).toBe(0);
    // no key description read back: the session wrote them
    expect(large.restore.get('B1')).toBe(small.restore.get('B1'));
  });

  it('after a restore the IDs it wrote are still refused to a new key (what the session wrote counts)', async () => {
    const { hsm } = await run(2);
    const keys = await hsm.listKeys();
    const e = await rejection(
      hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'dup', id: keys[0]!.id }),
    );
    expect(e.code).toBe('KEY_ID_IN_USE');
  });

  it('nothing read in a run outlives it: a description changed by another application afterwards is read afresh', async () => {
    const card = await blankDevice();
    const a = await SmartCardHsm.open(card);
    await a.verifyPin(PIN);
    await a.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'first' });
    const root = await tempDir();
    await backupDevice(a, join(root, 'b'), { authenticate: () => a.verifyPin(PIN) });
    // another application (its own session on the card) relabels the key after the backup
    const other = await SmartCardHsm.open(card);
    await other.verifyPin(PIN);
    const c401 = await other.readFile(0xc401);
    const relabelled = c401.slice();
    const at = Buffer.from(relabelled).indexOf('first');
    relabelled.set(new TextEncoder().encode('later'), at);
    await other.writeFile(0xc401, relabelled);
    expect((await a.listKeys()).map((k) => k.label)).toEqual(['later']);
    // and inside a run of its own, a concurrent call of the same session waits for the run
    const order: string[] = [];
    await Promise.all([
      a.files.run(async () => {
        await a.files.read(0xc401);
        order.push('run');
      }),
      a.readFile(0xc401).then(() => order.push('other')),
    ]);
    expect(order).toEqual(['run', 'other']);
  });
});

/**
 * Cancelling a whole-device backup or restore (issue #11): `signal` is checked before each key;
 * ABORTED, what was written stays, and a run without the signal completes the job.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupDevice, restoreDevice } from '../src/sc-hsm/backup.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { fromHex } from '../src/util/bytes.js';

const SO_PIN = '3537363231383830';
const PIN = '648219';
const SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');

let root: string;
let source = '';
let blank = '';

async function open(state: string): Promise<SmartCardHsm> {
  return SmartCardHsm.open(VirtualSmartCardHsm.deserialize(state));
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sc-hsm-abort-'));
  const card = new VirtualSmartCardHsm();
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, label: 'abort', dkekShares: 1 });
  await hsm.importDkekShare(SHARE);
  blank = card.serialize();
  await hsm.verifyPin(PIN);
  for (let i = 0; i < 3; i++) await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: `k${i}` });
  source = card.serialize();
});

afterAll(() => rm(root, { recursive: true, force: true }));

describe('AbortSignal on backup and restore', () => {
  it('a backup cancelled after the first key keeps that key, and a rerun completes it', async () => {
    const dir = join(root, 'backup');
    const c = new AbortController();
    const hsm = await open(source);
    const err = await backupDevice(hsm, dir, {
      authenticate: () => hsm.verifyPin(PIN),
      signal: c.signal,
      onProgress: (done) => {
        if (done === 1) c.abort(new Error('shutting down'));
      },
    }).catch((e) => e);
    expect(err).toMatchObject({ code: 'ABORTED' });
    expect(err.message).toMatch(/after 1 of 3 keys/);
    expect(err.cause).toEqual(new Error('shutting down'));
    expect((await readdir(dir)).filter((f) => f.endsWith('.bin'))).toHaveLength(1);
    const h = await open(source);
    const again = await backupDevice(h, dir, { authenticate: () => h.verifyPin(PIN), force: true });
    expect(again.manifest.keys).toHaveLength(3);
  });

  it('a restore cancelled before any key writes nothing; after one key, that key is there', async () => {
    const dir = join(root, 'backup');
    const before = new AbortController();
    before.abort();
    const target = await open(blank);
    await target.verifyPin(PIN);
    await expect(restoreDevice(target, dir, { signal: before.signal })).rejects.toMatchObject({
      code: 'ABORTED',
    });
    expect(await target.listKeys()).toHaveLength(0);
    const c = new AbortController();
    const err = await restoreDevice(target, dir, {
      signal: c.signal,
      onProgress: (done) => {
        if (done === 1) c.abort();
      },
    }).catch((e) => e);
    expect(err).toMatchObject({ code: 'ABORTED' });
    expect(await target.listKeys()).toHaveLength(1);
    const r = await restoreDevice(target, dir);
    expect(r.keys.filter((k) => k.action === 'restore')).toHaveLength(2);
    expect(await target.listKeys()).toHaveLength(3);
  });
});

/**
 * A forced replace that is interrupted, a damaged wrap file, leftover files and duplicate key IDs
 * (issue #10, follow-up of item 2):
 *
 * 1. `unwrap --force` / `restore --force` killed after any change of the card: the old key's
 *    wrapped copy is on disk (0600) before anything of it is deleted, the command named it before,
 *    the card never holds a key under another key's description, and a rerun completes.
 * 2. A wrap file whose public part (description, CV request, certificate) is damaged is refused on
 *    the host before anything is sent (`unwrap`, `restore`, `restoreKey`), and `wrapped inspect`
 *    says so; OpenSC's wrap files pass.
 * 3. A description or certificate left at a reference without a key is shown by `keys` and `dump`,
 *    removed by `delete-key`, and a forced unwrap or restore onto it completes.
 * 4. `unwrap` / `restore` / `restoreKey` refuse a key ID that another key has, unless that key is
 *    the one replaced.
 *
 * "Killed" is exact, not timed: the virtual card saves its state before it answers (as the state
 * file is renamed with --sim); right after its n-th change nothing reaches the card or the host
 * any more — the command waits forever for an answer, as a dead process would.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { testCertificate } from '../harness/certificate.js';
import type { Transport } from '../src/apdu/transport.js';
import { runCli } from '../src/cli/main.js';
import { decodeWrapFile, decryptKeyBlob, encodeWrapFile } from '../src/dkek/index.js';
import { decodeCvRequest } from '../src/pkcs15/index.js';
import { backupDevice, restoreDevice } from '../src/sc-hsm/backup.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { wrapFileDamage, wrapFileInfo } from '../src/sc-hsm/wrap-info.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { fromHex, toHex } from '../src/util/bytes.js';
import { PIN, SO_PIN, tempDir } from './cli-helpers.js';
import { rejection } from './helpers/fixtures.js';

const SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');

interface CardJson {
  userPinTries: number;
  files: Record<string, string>;
  keys: Record<string, { pkcs8: string | null }>;
}
const json = (state: string) => JSON.parse(state) as CardJson;

function spkiOf(pkcs8: Uint8Array | string): string {
  const der = typeof pkcs8 === 'string' ? fromHex(pkcs8) : pkcs8;
  const k = createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
  return toHex(new Uint8Array(createPublicKey(k).export({ format: 'der', type: 'spki' })));
}

interface Slot {
  key?: string;
  c4?: string;
  ce?: string;
}

/** What a card state holds at key reference `ref`: key (as its public key), description, certificate. */
function slot(state: string, ref = 1): Slot {
  const s = json(state);
  const h = ref.toString(16).toUpperCase().padStart(2, '0');
  const pk = s.keys[String(ref)]?.pkcs8;
  return { key: pk ? spkiOf(pk) : undefined, c4: s.files[`C4${h}`], ce: s.files[`CE${h}`] };
}

let ready = ''; // DKEK imported, no keys
let withOld = ''; // key 1 "old ec" with a certificate, key 2 "rsa"
let oldSlot: Slot;
let newBin: Uint8Array; // another EC key under the same DKEK, with description and certificate
let newBackup = ''; // a backup directory with that key at reference 1
let newSlot: Slot; // key reference 1 after the new key was unwrapped there, complete
let cvBin: Uint8Array; // a key with the CV request of key generation (no certificate)
let rsaBin: Uint8Array; // key 2 of withOld, wrapped

async function open(state: string): Promise<{ card: VirtualSmartCardHsm; hsm: SmartCardHsm }> {
  const card = VirtualSmartCardHsm.deserialize(state);
  const hsm = await SmartCardHsm.open(card);
  await hsm.verifyPin(PIN);
  return { card, hsm };
}

beforeAll(async () => {
  const card = new VirtualSmartCardHsm({ deviceId: '5550002' });
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1, label: 'interrupted' });
  await hsm.importDkekShare(SHARE);
  ready = card.serialize();
  await hsm.verifyPin(PIN);
  const old = await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'old ec' });
  await hsm.storeCertificate(old.keyRef, testCertificate(old.publicKey, 'old ec'));
  await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'rsa' });
  rsaBin = await hsm.backupKey(2);
  withOld = card.serialize();
  oldSlot = slot(withOld);

  const other = VirtualSmartCardHsm.deserialize(ready);
  const h2 = await SmartCardHsm.open(other);
  await h2.verifyPin(PIN);
  const k = await h2.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'new ec' });
  await h2.storeCertificate(k.keyRef, testCertificate(k.publicKey, 'new ec'));
  newBin = await h2.backupKey(k.keyRef);
  newSlot = slot(other.serialize());
  newBackup = join(await tempDir(), 'new-backup');
  await backupDevice(h2, newBackup, {});
  const g = await h2.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'cv only' });
  cvBin = await h2.backupKey(g.keyRef);
});

// ---------------------------------------------------------------- running the command

interface Run {
  /** Exit code; undefined when killed. */
  code?: number;
  killed: boolean;
  /** The card's state at the end (or at the kill). */
  state: string;
  stdout: string;
  stderr: string;
  /** Changes of the card's persistent state (state file saves) the run made. */
  changes: number;
}

afterEach(() => {
  vi.restoreAllMocks();
});

/**
 * Runs `sc-hsm-ts ARGV --sim … --json --yes` in-process on a card in `state`; with `killAt` the
 * command is "killed" right after the card's `killAt`-th change of persistent state.
 */
async function run(state: string, argv: string[], dir: string, killAt?: number): Promise<Run> {
  const card = VirtualSmartCardHsm.deserialize(state);
  let changes = 0;
  let dead = false;
  let died: () => void = () => undefined;
  const killed = new Promise<void>((r) => {
    died = r;
  });
  card.onChange = () => {
    changes++;
    if (changes === killAt) dead = true;
  };
  const hang = new Promise<Uint8Array>(() => undefined);
  card.transmit = async (apdu) => {
    if (dead) return hang;
    const answer = card.process(apdu);
    if (dead) {
      died();
      return hang;
    }
    return answer;
  };
  const sim = join(dir, 'sim.json');
  writeFileSync(sim, '{}');
  vi.spyOn(VirtualSmartCardHsm, 'open').mockResolvedValue(card);
  let stdout = '';
  let stderr = '';
  // written synchronously: what the command printed before it died is all there
  const sink = (add: (s: string) => void) =>
    new Writable({
      write(chunk, _enc, cb) {
        add(chunk.toString());
        cb();
      },
    });
  const stdin = new PassThrough();
  stdin.end();
  const done = runCli([...argv, '--sim', sim, '--json', '--yes'], {
    stdout: sink((s) => {
      stdout += s;
    }),
    stderr: sink((s) => {
      stderr += s;
    }),
    stdin,
    env: { PIN },
    isTTY: false,
  });
  const outcome = await Promise.race([
    done.then((code) => ({ code })),
    killed.then(() => ({ code: undefined })),
  ]);
  vi.restoreAllMocks();
  const r: Run = { killed: outcome.code === undefined, state: card.serialize(), stdout, stderr, changes };
  if (outcome.code !== undefined) r.code = outcome.code;
  return r;
}

/** Never a key under another key's description: the old key, nothing, or the new key, each with (some of) its own files. */
function mixed(s: Slot, a: Slot, b: Slot): string | undefined {
  if (s.key === undefined)
    return s.c4 !== undefined || s.ce !== undefined ? 'files of a key without the key' : undefined;
  const own = [a, b].find((x) => x.key === s.key);
  if (!own) return 'an unknown key';
  if (s.c4 !== undefined && s.c4 !== own.c4) return 'the key under another description';
  if (s.ce !== undefined && s.ce !== own.ce) return 'the key with another certificate';
  return undefined;
}

/** The replaced-key copies in `dir`. */
function copies(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.startsWith('replaced-key-001-'))
    .map((n) => join(dir, n));
}

// ---------------------------------------------------------------- 1. killed in the middle

describe('a forced replace killed after any change of the card', () => {
  const COMMANDS = [
    {
      name: 'unwrap FILE --key-ref 1 --force',
      setup: (dir: string) => {
        const f = join(dir, 'new.bin');
        writeFileSync(f, newBin);
        return { argv: ['unwrap', f, '--key-ref', '1', '--force', '--pin', 'env:PIN'], copyDir: dir };
      },
    },
    {
      name: 'restore DIR --force',
      setup: (dir: string) => {
        const b = join(dir, 'b');
        cpSync(newBackup, b, { recursive: true });
        return { argv: ['restore', b, '--force', '--pin', 'env:PIN'], copyDir: b };
      },
    },
  ];

  for (const c of COMMANDS) {
    it(`${c.name}: copy on disk first, never a mix, and a rerun completes`, async () => {
      const dir0 = await tempDir();
      const full = await run(withOld, c.setup(dir0).argv, dir0);
      expect(full.code, full.stdout + full.stderr).toBe(0);
      expect(slot(full.state)).toEqual(newSlot);
      expect(full.changes).toBeGreaterThan(3);
      const problems: string[] = [];
      for (let n = 1; n <= full.changes; n++) {
        const dir = await tempDir();
        const { argv, copyDir } = c.setup(dir);
        const r = await run(withOld, argv, dir, n);
        const at = `killed at change ${n}/${full.changes}`;
        if (!r.killed) {
          problems.push(`${at}: not killed`);
          continue;
        }
        const s = slot(r.state);
        const mix = mixed(s, oldSlot, newSlot);
        if (mix) problems.push(`${at}: key reference 1 holds ${mix}`);
        if (json(r.state).keys['2']?.pkcs8 === undefined) problems.push(`${at}: key 2 is gone`);
        if (JSON.stringify(s) !== JSON.stringify(oldSlot)) {
          // something of the old key is gone: its copy is on disk, and the command said where
          const found = copies(copyDir);
          if (found.length !== 1) problems.push(`${at}: ${found.length} copies of the old key in ${copyDir}`);
          else {
            const path = found[0]!;
            if ((statSync(path).mode & 0o777) !== 0o600) problems.push(`${at}: the copy is not 0600`);
            const w = decodeWrapFile(readFileSync(path));
            if (spkiOf(decryptKeyBlob(w.blob, SHARE).pkcs8!) !== oldSlot.key)
              problems.push(`${at}: the copy is not the old key`);
            if (toHex(w.certificate ?? new Uint8Array()) !== oldSlot.ce?.toLowerCase())
              problems.push(`${at}: the copy lacks the old certificate`);
            if (!r.stderr.includes(path)) problems.push(`${at}: the command did not name ${path} before`);
          }
        }
        // the same command again completes
        const again = await run(r.state, argv, dir);
        if (again.code !== 0) problems.push(`${at}: the rerun failed: ${again.stdout}`);
        else if (JSON.stringify(slot(again.state)) !== JSON.stringify(newSlot))
          problems.push(`${at}: the rerun left ${JSON.stringify(slot(again.state))}`);
      }
      expect(problems).toEqual([]);
    });
  }

  it('the copy, made without --save-replaced, is named by the success output too', async () => {
    const dir = await tempDir();
    const f = join(dir, 'new.bin');
    writeFileSync(f, newBin);
    const r = await run(withOld, ['unwrap', f, '--key-ref', '1', '--force', '--pin', 'env:PIN'], dir);
    expect(r.code, r.stdout).toBe(0);
    const savedTo = JSON.parse(r.stdout).replaced.savedTo as string;
    expect(copies(dir)).toEqual([savedTo]);
    const b = join(dir, 'b');
    cpSync(newBackup, b, { recursive: true });
    const rr = await run(withOld, ['restore', b, '--force', '--pin', 'env:PIN'], dir);
    expect(rr.code, rr.stdout).toBe(0);
    expect(JSON.parse(rr.stdout).keys[0].replacedSavedTo).toBe(copies(b)[0]);
  });

  // /proc takes no new files, not even from root
  it.skipIf(process.platform !== 'linux')(
    'a copy that cannot be written stops the replace before anything changes',
    async () => {
      const dir = await tempDir();
      const f = join(dir, 'new.bin');
      writeFileSync(f, newBin);
      const r = await run(
        withOld,
        ['unwrap', f, '--key-ref', '1', '--force', '--pin', 'env:PIN', '--save-replaced', '/proc'],
        dir,
      );
      expect(r.code).not.toBe(0);
      expect(JSON.parse(r.stdout).error.code).toBe('IO_ERROR');
      expect(slot(r.state)).toEqual(oldSlot);
    },
  );

  it('delete-key killed after any change never leaves a description without its key', async () => {
    const dir = await tempDir();
    const full = await run(withOld, ['delete-key', '--key-ref', '1', '--pin', 'env:PIN'], dir);
    expect(full.code, full.stdout).toBe(0);
    for (let n = 1; n <= full.changes; n++) {
      const r = await run(withOld, ['delete-key', '--key-ref', '1', '--pin', 'env:PIN'], dir, n);
      expect(mixed(slot(r.state), oldSlot, {}), `killed at change ${n}`).toBeUndefined();
    }
  });
});

// ---------------------------------------------------------------- 2. damaged wrap files

/** `bin` with one bit of the inner signature of its CV request flipped. */
function badSignature(bin: Uint8Array): Uint8Array {
  const w = decodeWrapFile(bin);
  const sig = decodeCvRequest(w.certificate!).certificate.signature;
  const at = Buffer.from(bin).indexOf(Buffer.from(sig));
  expect(at).toBeGreaterThan(0);
  const out = bin.slice();
  out[at + 5]! ^= 0x01;
  return out;
}

/** A counting transport: how many APDUs a call sent. */
function counted(card: VirtualSmartCardHsm): { t: Transport; n: () => number } {
  let n = 0;
  return {
    t: {
      extendedLength: true,
      transmit: async (a) => {
        n++;
        return card.process(a);
      },
      close: async () => undefined,
    },
    n: () => n,
  };
}

describe('a damaged wrap file is refused on the host', () => {
  it('OpenSC’s and our own wrap files are sound', () => {
    for (const f of ['fixtures/opensc/key1.bin', 'fixtures/opensc/key2.bin', 'fixtures/dkek/key1.bin']) {
      expect(wrapFileDamage(wrapFileInfo(new Uint8Array(readFileSync(f)))), f).toBeUndefined();
    }
    for (const b of [newBin, cvBin, rsaBin]) expect(wrapFileDamage(wrapFileInfo(b))).toBeUndefined();
  });

  it('each damaged part is named', () => {
    expect(wrapFileDamage(wrapFileInfo(badSignature(cvBin)))).toMatch(/CV request.*self-signature/);
    const w = decodeWrapFile(cvBin);
    const rsa = decodeWrapFile(rsaBin);
    // an RSA key's CV request beside an EC key
    expect(
      wrapFileDamage(
        wrapFileInfo(encodeWrapFile({ blob: w.blob, prkd: w.prkd!, certificate: rsa.certificate! })),
      ),
    ).toMatch(/RSA public key, but the wrapped key is EC/);
    // a description that does not decode
    expect(
      wrapFileDamage(wrapFileInfo(encodeWrapFile({ blob: w.blob, prkd: Uint8Array.of(0xa0, 0x01, 0x00) }))),
    ).toMatch(/key description.*damaged/);
  });

  it('unwrap --force: refused before the device is touched; wrapped inspect says so (non-zero)', async () => {
    const dir = await tempDir();
    const f = join(dir, 'bad.bin');
    writeFileSync(f, badSignature(cvBin));
    const r = await run(withOld, ['unwrap', f, '--key-ref', '1', '--force', '--pin', 'env:PIN'], dir);
    expect(r.code).toBe(6);
    const e = JSON.parse(r.stdout).error;
    expect(e.code).toBe('INVALID_WRAP_FILE');
    expect(e.message).toMatch(/self-signature/);
    expect(r.state).toBe(withOld);
    expect(r.changes).toBe(0);
    const i = await run(withOld, ['wrapped', 'inspect', f], dir);
    expect(i.code).toBe(6);
    expect(JSON.parse(i.stdout).error.message).toMatch(/damaged.*self-signature/);
  });

  it('restoreKey: INVALID_WRAP_FILE and not one APDU sent', async () => {
    const { card } = await open(withOld);
    const c = counted(card);
    const hsm = await SmartCardHsm.open(c.t);
    const before = c.n();
    const e = await rejection(hsm.restoreKey(badSignature(cvBin), 1, { force: true }));
    expect(e.code).toBe('INVALID_WRAP_FILE');
    expect(c.n()).toBe(before);
  });

  it('restore --force: a damaged key file (hash in the manifest made to match) is refused first', async () => {
    const dir = await tempDir();
    const src = await open(ready);
    const g = await src.hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'cv', keyRef: 1 });
    expect(g.keyRef).toBe(1);
    const b = join(dir, 'b');
    await backupDevice(src.hsm, b, {});
    const file = join(b, 'key-001.bin');
    const bad = badSignature(new Uint8Array(readFileSync(file)));
    writeFileSync(file, bad);
    const m = JSON.parse(readFileSync(join(b, 'manifest.json'), 'utf8'));
    const { createHash } = await import('node:crypto');
    m.keys[0].sha256 = createHash('sha256').update(bad).digest('hex');
    writeFileSync(join(b, 'manifest.json'), JSON.stringify(m));
    const r = await run(withOld, ['restore', b, '--force', '--pin', 'env:PIN'], dir);
    expect(r.code).toBe(6);
    const e = JSON.parse(r.stdout).error;
    expect(e.code).toBe('BACKUP_INVALID');
    expect(e.message).toMatch(/key-001\.bin is damaged.*self-signature/);
    expect(r.state).toBe(withOld);
  });
});

// ---------------------------------------------------------------- 3. leftover files without a key

describe('a description and certificate left without their key', () => {
  let leftover = ''; // withOld with CC01 deleted: C401 and CE01 of "old ec" remain
  beforeAll(async () => {
    const { card, hsm } = await open(withOld);
    await hsm.deleteFile(0xcc01);
    leftover = card.serialize();
    expect(slot(leftover)).toEqual({ key: undefined, c4: oldSlot.c4, ce: oldSlot.ce });
  });

  it('keys and dump show them as an incomplete entry', async () => {
    const dir = await tempDir();
    const k = await run(leftover, ['keys'], dir);
    expect(k.code).toBe(0);
    expect(JSON.parse(k.stdout).incomplete).toEqual([
      { keyRef: 1, files: ['C401', 'CE01'], id: expect.any(String), label: 'old ec' },
    ]);
    const d = await run(leftover, ['dump'], dir);
    expect(d.code).toBe(0);
    expect(JSON.parse(d.stdout).keys.find((x: { keyRef: number }) => x.keyRef === 1)).toMatchObject({
      noKey: true,
      label: 'old ec',
    });
  });

  it('delete-key --key-ref 1 removes them', async () => {
    const dir = await tempDir();
    const r = await run(leftover, ['delete-key', '--key-ref', '1', '--pin', 'env:PIN'], dir);
    expect(r.code, r.stdout).toBe(0);
    expect(slot(r.state)).toEqual({ key: undefined, c4: undefined, ce: undefined });
    expect(slot(r.state, 2).key).toBe(slot(withOld, 2).key);
  });

  it('restore --force and unwrap --force onto the reference remove them and complete', async () => {
    const dir = await tempDir();
    const rr = await run(leftover, ['restore', newBackup, '--force', '--pin', 'env:PIN'], dir);
    expect(rr.code, rr.stdout).toBe(0);
    expect(slot(rr.state)).toEqual(newSlot);
    const f = join(dir, 'new.bin');
    writeFileSync(f, newBin);
    const u = await run(leftover, ['unwrap', f, '--key-ref', '1', '--force', '--pin', 'env:PIN'], dir);
    expect(u.code, u.stdout).toBe(0);
    expect(slot(u.state)).toEqual(newSlot);
  });

  it('without --force they are refused with a fix that names a real step; nothing changes', async () => {
    const dir = await tempDir();
    const f = join(dir, 'new.bin');
    writeFileSync(f, newBin);
    const u = await run(leftover, ['unwrap', f, '--key-ref', '1', '--pin', 'env:PIN'], dir);
    expect(u.code).toBe(7);
    expect(JSON.parse(u.stdout).error.fix).toMatch(/--force.*sc-hsm-ts delete-key --key-ref 1/);
    expect(u.state).toBe(leftover);
    const rr = await run(leftover, ['restore', newBackup, '--pin', 'env:PIN'], dir);
    expect(rr.code).toBe(7);
    expect(JSON.parse(rr.stdout).error.code).toBe('KEY_REF_OCCUPIED');
    expect(rr.state).toBe(leftover);
  });

  it('library: a bare blob is not unwrapped under the leftover description', async () => {
    const { card, hsm } = await open(leftover);
    const e = await rejection(hsm.unwrapKey(1, decodeWrapFile(newBin).blob));
    expect(e.code).toBe('KEY_REF_OCCUPIED');
    expect(card.serialize()).toBe(leftover);
    await hsm.unwrapKey(1, decodeWrapFile(newBin).blob, { force: true });
    expect(slot(card.serialize())).toEqual({ key: newSlot.key, c4: undefined, ce: undefined });
  });
});

// ---------------------------------------------------------------- 4. one ID, one key

describe('unwrap and restore refuse a key ID another key has', () => {
  it('unwrap onto another reference: KEY_ID_IN_USE before the PIN is sent; onto the key itself: replaced', async () => {
    const dir = await tempDir();
    const f = join(dir, 'rsa.bin');
    writeFileSync(f, rsaBin);
    const r = await run(withOld, ['unwrap', f, '--key-ref', '5', '--pin', 'env:PIN'], dir);
    expect(r.code).toBe(7);
    const e = JSON.parse(r.stdout).error;
    expect(e.code).toBe('KEY_ID_IN_USE');
    expect(e.message).toMatch(/key reference 2/);
    expect(e.fix).toContain(`sc-hsm-ts unwrap ${f} --key-ref 2 --force`);
    expect(e.fix).toContain('sc-hsm-ts delete-key --key-ref 2');
    expect(r.state).toBe(withOld);
    expect(r.changes).toBe(0);
    const ok = await run(withOld, ['unwrap', f, '--key-ref', '2', '--force', '--pin', 'env:PIN'], dir);
    expect(ok.code, ok.stdout).toBe(0);
  });

  it('restoreKey: the same, in the library', async () => {
    const { card, hsm } = await open(withOld);
    const e = await rejection(hsm.restoreKey(rsaBin, 5));
    expect(e.code).toBe('KEY_ID_IN_USE');
    expect(e.existingKeyRef).toBe(2);
    expect(card.serialize()).toBe(withOld);
    await hsm.restoreKey(rsaBin, 2, { force: true });
  });

  it('restore: a backup key whose ID another reference holds is refused before anything changes', async () => {
    const dir = await tempDir();
    // the backup's key 1 ("new ec") is also at reference 7 of the target
    const { card, hsm } = await open(withOld);
    await hsm.restoreKey(newBin, 7);
    const target = card.serialize();
    const r = await run(target, ['restore', newBackup, '--force', '--pin', 'env:PIN'], dir);
    expect(r.code).toBe(7);
    const e = JSON.parse(r.stdout).error;
    expect(e.code).toBe('KEY_ID_IN_USE');
    expect(e.fix).toContain('sc-hsm-ts delete-key --key-ref 7');
    expect(r.state).toBe(target);
    // library alike
    const e2 = await rejection(restoreDevice(hsm, newBackup, { force: true }));
    expect(e2.code).toBe('KEY_ID_IN_USE');
    expect(card.serialize()).toBe(target);
  });
});

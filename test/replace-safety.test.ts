/**
 * A forced replace never loses the key it replaces (issue #10, item 2): `restoreKey` / `unwrapKey`
 * with `force`, `restoreDevice` with `force`, and `unwrap --force` / `restore --force`. The old key
 * is wrapped before it is deleted and put back when the new one is refused; a key that cannot be
 * wrapped is not replaced without an explicit acknowledgement; when even the put-back fails, the
 * error says what is lost and where the old key's wrapped copy is. The fault matrix at the end
 * injects a fault at every APDU of a forced replace.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { testCertificate } from '../harness/certificate.js';
import { FaultInjectingTransport, type FaultPlan } from '../src/apdu/fault.js';
import { runCli } from '../src/cli/main.js';
import { decodeWrapFile, decryptKeyBlob, encodeWrapFile } from '../src/dkek/index.js';
import { isScHsmError, ScHsmError } from '../src/errors.js';
import { ALGO } from '../src/protocol/constants.js';
import { backupDevice, restoreDevice } from '../src/sc-hsm/backup.js';
import { KeyReplaceError, SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { fromHex, toHex } from '../src/util/bytes.js';
import { cli, PIN, SO_PIN, tempDir } from './cli-helpers.js';
import { FAULT_COMBOS, rejection } from './helpers/fixtures.js';

const SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');

interface CardJson {
  userPinTries: number;
  userPinMaxTries: number;
  files: Record<string, string>;
  keys: Record<string, { pkcs8: string | null }>;
}
const json = (card: VirtualSmartCardHsm) => JSON.parse(card.serialize()) as CardJson;

/** SPKI of a PKCS#8 private key, hex: which key a card or a blob holds. */
function spkiOf(pkcs8: Uint8Array | string): string {
  const der = typeof pkcs8 === 'string' ? fromHex(pkcs8) : pkcs8;
  const k = createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
  return toHex(new Uint8Array(createPublicKey(k).export({ format: 'der', type: 'spki' })));
}

/** What the card holds at key reference 1: key, description, certificate. */
function slot1(card: VirtualSmartCardHsm): { key?: string; c4?: string; ce?: string } {
  const s = json(card);
  const pk = s.keys['1']?.pkcs8;
  return { key: pk ? spkiOf(pk) : undefined, c4: s.files.C401, ce: s.files.CE01 };
}

let ready = ''; // DKEK imported, no keys
let withOld = ''; // key 1: "old ec" with certificate; key 2: RSA
let unwrappable = ''; // key 1 generated with an algorithm list without WRAP
let oldSlot: ReturnType<typeof slot1>;
let newBin: Uint8Array; // another EC key under the same DKEK, with description and certificate
let badBin: Uint8Array; // newBin with one byte of the encrypted key flipped: the card answers 6A80
let newBackup = ''; // a backup directory holding the key of newBin at reference 1

function flipped(bin: Uint8Array): Uint8Array {
  const w = decodeWrapFile(bin);
  const blob = w.blob.slice();
  blob[blob.length - 20]! ^= 0x01;
  return encodeWrapFile({
    blob,
    ...(w.prkd ? { prkd: w.prkd } : {}),
    ...(w.certificate ? { certificate: w.certificate } : {}),
  });
}

async function open(state: string): Promise<{ card: VirtualSmartCardHsm; hsm: SmartCardHsm }> {
  const card = VirtualSmartCardHsm.deserialize(state);
  const hsm = await SmartCardHsm.open(card);
  await hsm.verifyPin(PIN);
  return { card, hsm };
}

beforeAll(async () => {
  const card = new VirtualSmartCardHsm({ deviceId: '5550001' });
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1, label: 'replace' });
  await hsm.importDkekShare(SHARE);
  ready = card.serialize();
  await hsm.verifyPin(PIN);
  const old = await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'old ec' });
  await hsm.storeCertificate(old.keyRef, testCertificate(old.publicKey, 'old ec'));
  await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'rsa' });
  withOld = card.serialize();
  oldSlot = slot1(card);

  const other = VirtualSmartCardHsm.deserialize(ready);
  const h2 = await SmartCardHsm.open(other);
  await h2.verifyPin(PIN);
  const k = await h2.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'new ec' });
  await h2.storeCertificate(k.keyRef, testCertificate(k.publicKey, 'new ec'));
  newBin = await h2.backupKey(k.keyRef);
  badBin = flipped(newBin);
  newBackup = join(await tempDir(), 'new-backup');
  await backupDevice(h2, newBackup, {});

  const u = VirtualSmartCardHsm.deserialize(ready);
  const h3 = await SmartCardHsm.open(u);
  await h3.verifyPin(PIN);
  await h3.generateKeyPair({
    type: 'ec',
    curve: 'prime256v1',
    label: 'no export',
    algorithms: Uint8Array.of(ALGO.ECDSA_SHA256),
  });
  unwrappable = u.serialize();
});

describe('a forced replace that the card refuses keeps the old key (library)', () => {
  it('restoreKey: the old key, its description and certificate stay; the error says so', async () => {
    const { card, hsm } = await open(withOld);
    const e = await rejection(hsm.restoreKey(badBin, 1, { force: true }));
    expect(e.code).toBe('MAC_INVALID');
    expect(e.message).toMatch(/put back as it was/);
    expect(slot1(card)).toEqual(oldSlot);
    // the restored key works
    const data = new TextEncoder().encode('still here');
    expect((await hsm.sign(1, 'ECDSA-SHA256', data)).length).toBeGreaterThan(60);
  });

  it('unwrapKey (a bare blob): the same', async () => {
    const { card, hsm } = await open(withOld);
    const e = await rejection(hsm.unwrapKey(1, decodeWrapFile(badBin).blob, { force: true }));
    expect(e.code).toBe('MAC_INVALID');
    expect(slot1(card)).toEqual(oldSlot);
  });

  it('a good blob replaces the key, and the description of the old one does not stay behind', async () => {
    const { card, hsm } = await open(withOld);
    await hsm.unwrapKey(1, decodeWrapFile(newBin).blob, { force: true });
    const s = slot1(card);
    expect(s.key).not.toBe(oldSlot.key);
    expect(s.c4).toBeUndefined();
    expect(s.ce).toBeUndefined();
  });

  it('with the DKEK at hand the MAC is checked on the host: nothing is sent that changes the card', async () => {
    const { card, hsm } = await open(withOld);
    const before = card.serialize();
    const e = await rejection(hsm.restoreKey(badBin, 1, { force: true, dkek: SHARE }));
    expect(e.code).toBe('MAC_INVALID');
    expect(e.message).toMatch(/nothing was sent/);
    expect(card.serialize()).toBe(before);
  });

  it('onReplaced gets the old key’s wrapped copy before the key is deleted; a throw there changes nothing', async () => {
    const { card, hsm } = await open(withOld);
    const before = card.serialize();
    const seen: { bin: Uint8Array; stillThere: boolean }[] = [];
    await expect(
      hsm.restoreKey(newBin, 1, {
        force: true,
        onReplaced: (old) => {
          seen.push({ bin: old.bin, stillThere: slot1(card).key === oldSlot.key });
          throw new Error('disk full');
        },
      }),
    ).rejects.toThrow('disk full');
    expect(card.serialize()).toBe(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.stillThere).toBe(true);
    const d = decryptKeyBlob(decodeWrapFile(seen[0]!.bin).blob, SHARE);
    expect(spkiOf(d.pkcs8!)).toBe(oldSlot.key);
    expect(toHex(decodeWrapFile(seen[0]!.bin).certificate!)).toBe(oldSlot.ce!.toLowerCase());
  });

  it('a key that may not be wrapped is not replaced without allowKeyLoss (REPLACE_UNSAFE)', async () => {
    const { card, hsm } = await open(unwrappable);
    const before = card.serialize();
    const e = await rejection(hsm.restoreKey(newBin, 1, { force: true }));
    expect(e.code).toBe('REPLACE_UNSAFE');
    expect(e.fix).toMatch(/free key reference/);
    expect(card.serialize()).toBe(before);
  });

  it('allowKeyLoss and a refused blob: KEY_LOST says so, and no description or certificate is left behind', async () => {
    const { card, hsm } = await open(unwrappable);
    const e = await rejection(hsm.restoreKey(badBin, 1, { force: true, allowKeyLoss: true }));
    expect(e.code).toBe('KEY_LOST');
    expect(e).toBeInstanceOf(KeyReplaceError);
    expect((e as KeyReplaceError).now).toBe('empty');
    expect((e as KeyReplaceError).oldKey).toBeUndefined();
    expect(e.message).toMatch(/no longer on the device/);
    expect(slot1(card)).toEqual({ key: undefined, c4: undefined, ce: undefined });
    // the reference is free again: a plain unwrap is not told it is in use
    await hsm.restoreKey(newBin, 1);
  });

  it('restoreDevice --force with a file whose hash matches but whose MAC fails: the occupant survives', async () => {
    const dir = await tempDir();
    const { hsm: src } = await open(withOld);
    await backupDevice(src, join(dir, 'b'), {});
    // damage key-001.bin's blob and make the manifest agree with the damage
    const file = join(dir, 'b', 'key-001.bin');
    const bad = flipped(new Uint8Array(readFileSync(file)));
    writeFileSync(file, bad);
    const m = JSON.parse(readFileSync(join(dir, 'b', 'manifest.json'), 'utf8'));
    const { createHash } = await import('node:crypto');
    m.keys[0].sha256 = createHash('sha256').update(bad).digest('hex');
    writeFileSync(join(dir, 'b', 'manifest.json'), JSON.stringify(m));
    // the target: another key (the intruder) at reference 1
    const { card, hsm } = await open(ready);
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'intruder', keyRef: 1 });
    const intruder = slot1(card);
    const e = await rejection(restoreDevice(hsm, join(dir, 'b'), { force: true }));
    expect(e.code).toBe('MAC_INVALID');
    expect(e.message).toMatch(/put back as it was/);
    expect(slot1(card)).toEqual(intruder);
  });
});

describe('unwrap --force / restore --force (the command)', () => {
  async function stateFile(state: string, dir: string, name = 'hsm.json'): Promise<string> {
    const f = join(dir, name);
    await writeFile(f, state);
    return f;
  }

  it('a refused blob: exit 6, the old key is listed as before, the output says it was put back', async () => {
    const dir = await tempDir();
    const f = await stateFile(withOld, dir);
    const bin = join(dir, 'bad.bin');
    await writeFile(bin, badBin);
    const before = (await cli(['keys', '--sim', f, '--json'])).json().keys;
    const r = await cli([
      'unwrap',
      bin,
      '--sim',
      f,
      '--key-ref',
      '1',
      '--force',
      '--yes',
      '--pin',
      PIN,
      '--json',
    ]);
    expect(r.code).toBe(6);
    expect(r.json().error.code).toBe('MAC_INVALID');
    expect(r.json().error.message).toMatch(/put back as it was/);
    expect((await cli(['keys', '--sim', f, '--json'])).json().keys).toEqual(before);
  });

  it('a key that may not be wrapped: exit 7 with the option that accepts the loss; with it, replaced', async () => {
    const dir = await tempDir();
    const f = await stateFile(unwrappable, dir);
    const bin = join(dir, 'new.bin');
    await writeFile(bin, newBin);
    const before = await readFile(f, 'utf8');
    const r = await cli([
      'unwrap',
      bin,
      '--sim',
      f,
      '--key-ref',
      '1',
      '--force',
      '--yes',
      '--pin',
      PIN,
      '--json',
    ]);
    expect(r.code).toBe(7);
    expect(r.json().error.code).toBe('REPLACE_UNSAFE');
    expect(r.json().error.fix).toMatch(/--i-understand-the-old-key-is-lost/);
    expect(await readFile(f, 'utf8')).toBe(before);
    const ok = await cli([
      'unwrap',
      bin,
      '--sim',
      f,
      '--key-ref',
      '1',
      '--force',
      '--i-understand-the-old-key-is-lost',
      '--yes',
      '--pin',
      PIN,
      '--json',
    ]);
    expect(ok.code, ok.stdout).toBe(0);
    expect(ok.json()).toMatchObject({ keyRef: 1, label: 'new ec', replaced: { label: 'no export' } });
  });

  it('restore --force over a key that may not be wrapped: exit 7 before anything changes', async () => {
    const dir = await tempDir();
    const f = await stateFile(unwrappable, dir);
    const before = await readFile(f, 'utf8');
    const r = await cli(['restore', newBackup, '--sim', f, '--force', '--yes', '--pin', PIN, '--json']);
    expect(r.code).toBe(7);
    expect(r.json().error.code).toBe('REPLACE_UNSAFE');
    expect(r.json().error.fix).toMatch(
      /restore onto a device whose key references are free.*--i-understand-the-old-key-is-lost/,
    );
    expect(await readFile(f, 'utf8')).toBe(before);
  });

  it('--save-replaced keeps the replaced key’s wrapped copy (0600); the options need --force', async () => {
    const dir = await tempDir();
    const f = await stateFile(withOld, dir);
    const bin = join(dir, 'new.bin');
    await writeFile(bin, newBin);
    const keep = join(dir, 'keep');
    await mkdir(keep);
    const usage = await cli([
      'unwrap',
      bin,
      '--sim',
      f,
      '--key-ref',
      '1',
      '--save-replaced',
      keep,
      '--pin',
      PIN,
    ]);
    expect(usage.code).toBe(2);
    const r = await cli([
      'unwrap',
      bin,
      '--sim',
      f,
      '--key-ref',
      '1',
      '--force',
      '--save-replaced',
      keep,
      '--yes',
      '--pin',
      PIN,
      '--json',
    ]);
    expect(r.code, r.stdout).toBe(0);
    const saved = r.json().replaced.savedTo as string;
    expect(saved.startsWith(keep)).toBe(true);
    expect(readdirSync(keep)).toHaveLength(1);
    if (process.platform !== 'win32') expect(statSync(saved).mode & 0o777).toBe(0o600);
    const d = decryptKeyBlob(decodeWrapFile(readFileSync(saved)).blob, SHARE);
    expect(spkiOf(d.pkcs8!)).toBe(oldSlot.key);
  });
});

// ---------------------------------------------------------------- KEY_LOST through the command

/** Runs the command on `card` (the CLI loads it as its --sim state), JSON output. */
async function cliOn(
  card: VirtualSmartCardHsm,
  argv: string[],
  dir: string,
): Promise<{ code: number; out: { error?: { code: string; message: string; fix?: string } } }> {
  const sim = join(dir, 'sim.json');
  writeFileSync(sim, '{}');
  // the command opens its --sim card through one of these (the state lock's open, or load)
  const opener = 'open' in VirtualSmartCardHsm ? 'open' : 'load';
  const spy = vi
    .spyOn(VirtualSmartCardHsm as unknown as Record<string, () => unknown>, opener)
    .mockResolvedValue(card);
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  err.resume();
  const stdin = new PassThrough();
  stdin.end();
  try {
    const code = await runCli([...argv, '--sim', sim, '--json', '--yes'], {
      stdout: out,
      stderr: err,
      stdin,
      env: { PIN },
      isTTY: false,
    });
    return { code, out: JSON.parse(Buffer.concat(chunks).toString() || '{}') };
  } finally {
    spy.mockRestore();
  }
}

/** The card is pulled right after it deleted key 1 (DELETE FILE CC01 answered). */
function pulledAfterDelete(state: string): { card: VirtualSmartCardHsm } {
  const card = VirtualSmartCardHsm.deserialize(state);
  let gone = false;
  card.transmit = async (apdu) => {
    if (gone) throw new ScHsmError('CARD_REMOVED', 'the card was removed (test)');
    const a = card.process(apdu);
    if (apdu[0] === 0x00 && apdu[1] === 0xe4 && toHex(apdu.subarray(5, 7)) === 'cc01') gone = true;
    return a;
  };
  return { card };
}

describe('when even the put-back fails (card pulled after the delete)', () => {
  it('library: KEY_LOST with the old key’s copy, which restoreKey puts back', async () => {
    const { card } = pulledAfterDelete(withOld);
    const hsm = await SmartCardHsm.open(card);
    await hsm.verifyPin(PIN);
    const e = await rejection(hsm.restoreKey(newBin, 1, { force: true }));
    expect(e.code).toBe('KEY_LOST');
    const k = e as KeyReplaceError;
    expect(k.keyRef).toBe(1);
    expect(k.message).toMatch(/"old ec"/);
    expect(k.oldKey).toBeDefined();
    card.transmit = async (a) => card.process(a);
    const again = await SmartCardHsm.open(card);
    await again.verifyPin(PIN);
    await again.restoreKey(k.oldKey!, 1, { force: true });
    expect(slot1(card)).toEqual(oldSlot);
  });

  it('command: the error names the rescue copy written beside the input file, and how to put it back', async () => {
    const dir = await tempDir();
    const bin = join(dir, 'new.bin');
    await writeFile(bin, newBin);
    const { card } = pulledAfterDelete(withOld);
    const r = await cliOn(card, ['unwrap', bin, '--key-ref', '1', '--force', '--pin', 'env:PIN'], dir);
    expect(r.code).toBe(1);
    expect(r.out.error?.code).toBe('KEY_LOST');
    const copies = readdirSync(dir).filter((n) => n.startsWith('replaced-key-001-'));
    expect(copies).toHaveLength(1);
    const path = join(dir, copies[0]!);
    expect(r.out.error?.message).toContain(path);
    expect(r.out.error?.fix).toBe(
      `put it back when the device works again: sc-hsm-ts unwrap ${path} --key-ref 1 --force`,
    );
    if (process.platform !== 'win32') expect(statSync(path).mode & 0o777).toBe(0o600);
    const d = decryptKeyBlob(decodeWrapFile(readFileSync(path)).blob, SHARE);
    expect(spkiOf(d.pkcs8!)).toBe(oldSlot.key);
  });
});

// ---------------------------------------------------------------- the fault matrix

describe('fault injection at every APDU of a forced replace', () => {
  const OPS: { name: string; run: (hsm: SmartCardHsm) => Promise<void> }[] = [
    {
      name: 'restoreKey --force (unwrap FILE.bin)',
      run: (hsm) => hsm.restoreKey(newBin, 1, { force: true, authenticate: () => hsm.verifyPin(PIN) }),
    },
    {
      name: 'unwrapKey --force (bare blob)',
      run: (hsm) =>
        hsm.unwrapKey(1, decodeWrapFile(newBin).blob, {
          force: true,
          authenticate: () => hsm.verifyPin(PIN),
        }),
    },
    {
      name: 'restoreDevice --force (restore DIR)',
      run: async (hsm) => {
        await restoreDevice(hsm, newBackup, { force: true, authenticate: () => hsm.verifyPin(PIN) });
      },
    },
  ];
  const newKey = () => spkiOf(decryptKeyBlob(decodeWrapFile(newBin).blob, SHARE).pkcs8!);

  for (const op of OPS) {
    describe(op.name, () => {
      let n = 0;
      beforeAll(async () => {
        const card = VirtualSmartCardHsm.deserialize(withOld);
        const t = new FaultInjectingTransport(card);
        const hsm = await SmartCardHsm.open(t);
        await hsm.verifyPin(PIN);
        t.arm(undefined);
        await op.run(hsm);
        n = t.count;
      });

      it('counts its APDUs', () => {
        expect(n).toBeGreaterThan(8);
      });

      for (const combo of FAULT_COMBOS) {
        it(`${combo.kind}${combo.delivered ? ' after delivery' : ' before delivery'}: the old key stays usable or the error says what is lost`, async () => {
          const problems: string[] = [];
          for (let k = 1; k <= n; k++) {
            const where = `k=${k}/${n}`;
            const card = VirtualSmartCardHsm.deserialize(withOld);
            const t = new FaultInjectingTransport(card);
            const hsm = await SmartCardHsm.open(t);
            await hsm.verifyPin(PIN);
            const plan: FaultPlan = { at: k, ...combo };
            t.arm(plan);
            let outcome: unknown = 'ok';
            try {
              await op.run(hsm);
            } catch (e) {
              outcome = e;
            }
            if (!t.fired) problems.push(`${where}: the fault never fired`);
            if (outcome !== 'ok' && !isScHsmError(outcome))
              problems.push(`${where}: raw ${(outcome as Error)?.name}: ${(outcome as Error)?.message}`);
            const s = slot1(card);
            const st = json(card);
            if (st.userPinTries !== st.userPinMaxTries) problems.push(`${where}: a PIN try was used`);
            if (outcome === 'ok') {
              if (s.key !== newKey())
                problems.push(`${where}: success reported, but key 1 is not the new key`);
              continue;
            }
            if (isScHsmError(outcome, 'KEY_LOST')) {
              const lost = outcome as KeyReplaceError;
              if (!lost.oldKey) {
                problems.push(`${where}: KEY_LOST without the old key's copy`);
                continue;
              }
              // "unknown": the card could not be read after the fault; otherwise the report is exact
              if (s.key === oldSlot.key && lost.now !== 'unknown')
                problems.push(`${where}: KEY_LOST (${lost.now}) reported, but the old key is there`);
              // the copy puts it back on the working card
              try {
                const again = await SmartCardHsm.open(card);
                await again.verifyPin(PIN);
                await again.restoreKey(lost.oldKey, 1, { force: true });
                if (JSON.stringify(slot1(card)) !== JSON.stringify(oldSlot))
                  problems.push(`${where}: the copy did not put the old key back`);
              } catch (e) {
                problems.push(`${where}: the copy could not be restored: ${(e as Error).message}`);
              }
              continue;
            }
            if (outcome instanceof KeyReplaceError) {
              if (s.key !== oldSlot.key)
                problems.push(`${where}: ${outcome.now}, but the old key is not there`);
              continue;
            }
            // any other failure: the old key is there, as it was
            if (JSON.stringify(s) !== JSON.stringify(oldSlot))
              problems.push(
                `${where}: failed (${(outcome as ScHsmError).code}: ${(outcome as Error).message}) and key 1 is ${
                  s.key === oldSlot.key
                    ? 'the old key with other files'
                    : s.key === newKey()
                      ? 'the new key'
                      : 'gone'
                }`,
              );
          }
          expect(problems).toEqual([]);
        });
      }
    });
  }
});

import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testCertificate } from '../harness/certificate.js';
import { FaultInjectingTransport } from '../src/apdu/fault.js';
import { decodeWrapFile, decryptKeyBlob } from '../src/dkek/index.js';
import { isScHsmError, ScHsmError } from '../src/errors.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { bytesEqual, fromHex, toHex } from '../src/util/bytes.js';
import { FAULT_COMBOS } from './helpers/fixtures.js';

const SO_PIN = '3537363231383830';
const PIN = '648219';
const SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');

interface CardJson {
  initialized: boolean;
  userPinTries: number;
  userPinMaxTries: number;
  soPinTries: number;
  transportPin: boolean;
  dkek: { shares: number; outstanding: number; value: string } | null;
  files: Record<string, string>;
  keys: Record<string, { kind: string; bits: number }>;
}

const cardState = (card: VirtualSmartCardHsm): CardJson => JSON.parse(card.serialize()) as CardJson;

/** The virtual card's own truth against what a fresh session says about it. */
async function truthProblems(card: VirtualSmartCardHsm): Promise<string[]> {
  const s = cardState(card);
  const out: string[] = [];
  const hsm = await SmartCardHsm.open(card);
  const st = await hsm.status();
  if (st.initialized !== s.initialized)
    out.push(`status.initialized ${st.initialized}, card ${s.initialized}`);
  if (s.userPinTries !== s.userPinMaxTries)
    out.push(`a user PIN try was consumed (${s.userPinTries}/${s.userPinMaxTries})`);
  if (s.soPinTries !== 15) out.push(`an SO-PIN try was consumed (${s.soPinTries}/15)`);
  if (s.initialized) {
    if (st.userPin.triesLeft !== s.userPinTries)
      out.push(`status user tries ${st.userPin.triesLeft}, card ${s.userPinTries}`);
    if (st.soPin.triesLeft !== s.soPinTries)
      out.push(`status SO tries ${st.soPin.triesLeft}, card ${s.soPinTries}`);
    if (s.dkek) {
      if (!st.dkek) out.push('status shows no DKEK, the card has one');
      else {
        if (st.dkek.total !== s.dkek.shares)
          out.push(`status DKEK total ${st.dkek.total}, card ${s.dkek.shares}`);
        if (st.dkek.outstanding !== s.dkek.outstanding)
          out.push(`status DKEK outstanding ${st.dkek.outstanding}, card ${s.dkek.outstanding}`);
      }
    } else if (st.dkek) out.push('status shows a DKEK, the card has none');
    await hsm.verifyPin(PIN);
    const keys = await hsm.listKeys();
    const cardRefs = Object.keys(s.keys)
      .map(Number)
      .filter((r) => r !== 0)
      .sort((a, b) => a - b);
    const listed = keys.map((k) => k.keyRef);
    if (toHex(Uint8Array.from(listed)) !== toHex(Uint8Array.from(cardRefs))) {
      out.push(`listKeys ${listed.join(',')}, card ${cardRefs.join(',')}`);
    }
    for (const k of keys) {
      const ck = s.keys[String(k.keyRef)];
      // A key with neither description (C4xx) nor public key (CExx) cannot be typed by any host:
      // it must be listed as 'unknown' (what an interrupted unwrap or restore leaves behind).
      const fid = (p: number) => ((p << 8) | k.keyRef).toString(16).toUpperCase();
      const described = s.files[fid(0xc4)] !== undefined || s.files[fid(0xce)] !== undefined;
      const want = described ? ck?.kind : 'unknown';
      if (ck && k.type !== want) out.push(`key ${k.keyRef} listed as ${k.type}, expected ${want}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------- backup / restore loops

const TEMP = /\.tmp-/;

/**
 * Whole-device backup into `dir`: each key's .bin is written to a temp file, read back, verified
 * (wrap file decodes, blob decrypts under the DKEK, PRKD and certificate are those on the card)
 * and only then renamed; on any error the temp file is removed.
 */
async function backupAll(hsm: SmartCardHsm, dir: string): Promise<number[]> {
  await hsm.verifyPin(PIN);
  const keys = await hsm.listKeys();
  const done: number[] = [];
  for (const k of keys) {
    const bin = await hsm.backupKey(k.keyRef);
    const final = join(dir, `key-${k.keyRef}.bin`);
    const tmp = `${final}.tmp-${process.pid}`;
    try {
      writeFileSync(tmp, bin, { mode: 0o600 });
      const w = decodeWrapFile(readFileSync(tmp));
      decryptKeyBlob(w.blob, SHARE);
      const prkd = await hsm.files.readOptional(0xc400 | k.keyRef);
      const ce = await hsm.files.readOptional(0xce00 | k.keyRef);
      if (!prkd || !w.prkd || !bytesEqual(prkd, w.prkd))
        throw new ScHsmError('BACKUP_INVALID', `key ${k.keyRef}: PRKD differs`);
      if (!ce || !w.certificate || !bytesEqual(ce, w.certificate))
        throw new ScHsmError('BACKUP_INVALID', `key ${k.keyRef}: certificate differs`);
      renameSync(tmp, final);
    } catch (e) {
      try {
        unlinkSync(tmp);
      } catch {
        // already gone
      }
      throw e;
    }
    done.push(k.keyRef);
  }
  return done;
}

/** Restores every key-N.bin of `dir` onto reference N. */
async function restoreAll(hsm: SmartCardHsm, dir: string, force: boolean): Promise<void> {
  await hsm.verifyPin(PIN);
  for (const f of readdirSync(dir).sort()) {
    const m = /^key-(\d+)\.bin$/.exec(f);
    if (!m) continue;
    await hsm.restoreKey(readFileSync(join(dir, f)), Number(m[1]), { force });
  }
}

function dirProblems(dir: string, reference: Map<string, Uint8Array>): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    if (TEMP.test(f)) {
      out.push(`temp file left: ${f}`);
      continue;
    }
    const ref = reference.get(f);
    if (!ref) {
      out.push(`unexpected file ${f}`);
      continue;
    }
    try {
      const w = decodeWrapFile(readFileSync(join(dir, f)));
      const r = decodeWrapFile(ref);
      const a = decryptKeyBlob(w.blob, SHARE);
      const b = decryptKeyBlob(r.blob, SHARE);
      if (!bytesEqual(a.pkcs8 ?? new Uint8Array(0), b.pkcs8 ?? new Uint8Array(0)))
        out.push(`${f}: another key`);
      if (!bytesEqual(w.prkd ?? new Uint8Array(0), r.prkd ?? new Uint8Array(0)))
        out.push(`${f}: PRKD differs`);
      if (!bytesEqual(w.certificate ?? new Uint8Array(0), r.certificate ?? new Uint8Array(0)))
        out.push(`${f}: certificate differs`);
    } catch (e) {
      out.push(`${f} does not verify: ${(e as Error).message}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------- base cards

let root: string;
const base: Record<string, string> = {};
let blob1: Uint8Array;
const backupRef = new Map<string, Uint8Array>();
let backupDir: string;

async function openFresh(card: VirtualSmartCardHsm): Promise<SmartCardHsm> {
  return SmartCardHsm.open(card);
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'sc-hsm-fault-'));
  const fresh = new VirtualSmartCardHsm({ deviceId: '7654321' });
  base.fresh = fresh.serialize();
  let hsm = await openFresh(fresh);
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1, label: 'fault' });
  base.initialized = fresh.serialize();
  await hsm.importDkekShare(SHARE);
  base.ready = fresh.serialize();
  await hsm.verifyPin(PIN);
  const ec = await hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'ec key' });
  base.oneKey = fresh.serialize();
  blob1 = await hsm.wrapKey(ec.keyRef);
  const rsa = await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'rsa key' });
  await hsm.storeCertificate(ec.keyRef, testCertificate(ec.publicKey, 'ec key'));
  await hsm.storeCertificate(rsa.keyRef, testCertificate(rsa.publicKey, 'rsa key'));
  base.twoKeys = fresh.serialize();
  backupDir = join(root, 'reference');
  mkdirSync(backupDir);
  hsm = await openFresh(fresh);
  await backupAll(hsm, backupDir);
  for (const f of readdirSync(backupDir)) backupRef.set(f, readFileSync(join(backupDir, f)));
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

// ---------------------------------------------------------------- the operations

interface Operation {
  name: string;
  base: () => string;
  /** The operation, through `t` (which may fail), with a scratch directory. */
  run: (t: FaultInjectingTransport, dir: string) => Promise<void>;
  /** Completes the operation on the unfaulted card (an operator re-running it), then checks the result. */
  complete: (card: VirtualSmartCardHsm, dir: string) => Promise<string[]>;
}

const OPERATIONS: Operation[] = [
  {
    name: 'initialize',
    base: () => base.fresh!,
    run: async (t) => {
      const hsm = await SmartCardHsm.open(t);
      await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1, label: 'fault' });
    },
    complete: async (card) => {
      const hsm = await SmartCardHsm.open(card);
      await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1, label: 'fault' });
      const st = await hsm.status();
      return st.initialized && st.label === 'fault' && st.dkek?.outstanding === 1
        ? []
        : ['re-initialize did not complete'];
    },
  },
  {
    name: 'DKEK import',
    base: () => base.initialized!,
    run: async (t) => {
      const hsm = await SmartCardHsm.open(t);
      await hsm.importDkekShare(SHARE);
    },
    complete: async (card) => {
      const hsm = await SmartCardHsm.open(card);
      const d = await hsm.dkekStatus();
      if (d && d.outstanding > 0) await hsm.importDkekShare(SHARE);
      const after = await hsm.dkekStatus();
      return after?.outstanding === 0 && toHex(after.kcv) === '2927c2c6cb63086a'
        ? []
        : ['DKEK import did not complete'];
    },
  },
  {
    name: 'key generation',
    base: () => base.ready!,
    run: async (t) => {
      const hsm = await SmartCardHsm.open(t);
      await hsm.verifyPin(PIN);
      await hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'gen' });
    },
    complete: async (card) => {
      const hsm = await SmartCardHsm.open(card);
      await hsm.verifyPin(PIN);
      const g = await hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'gen' });
      const k = (await hsm.listKeys()).find((x) => x.keyRef === g.keyRef);
      return k?.label === 'gen' && k.type === 'ec'
        ? []
        : ['re-run key generation did not produce a described key'];
    },
  },
  {
    name: 'wrap',
    base: () => base.oneKey!,
    run: async (t) => {
      const hsm = await SmartCardHsm.open(t);
      await hsm.verifyPin(PIN);
      const blob = await hsm.wrapKey(1);
      // a cut answer must not pass as a blob
      decryptKeyBlob(blob, SHARE);
    },
    complete: async (card) => {
      const hsm = await SmartCardHsm.open(card);
      await hsm.verifyPin(PIN);
      const d = decryptKeyBlob(await hsm.wrapKey(1), SHARE);
      return d.keyType === 'ec' ? [] : ['re-run wrap gave no EC key'];
    },
  },
  {
    name: 'unwrap',
    base: () => base.ready!,
    run: async (t) => {
      const hsm = await SmartCardHsm.open(t);
      await hsm.verifyPin(PIN);
      await hsm.unwrapKey(1, blob1);
    },
    complete: async (card) => {
      const hsm = await SmartCardHsm.open(card);
      await hsm.verifyPin(PIN);
      await hsm.unwrapKey(1, blob1, { force: true });
      const d = decryptKeyBlob(await hsm.wrapKey(1), SHARE);
      const want = decryptKeyBlob(blob1, SHARE);
      return bytesEqual(d.pkcs8!, want.pkcs8!) ? [] : ['re-run unwrap gave another key'];
    },
  },
  {
    name: 'whole-device backup',
    base: () => base.twoKeys!,
    run: async (t, dir) => {
      const hsm = await SmartCardHsm.open(t);
      await backupAll(hsm, dir);
    },
    complete: async (card, dir) => {
      const hsm = await SmartCardHsm.open(card);
      await backupAll(hsm, dir);
      const files = readdirSync(dir).sort();
      const want = [...backupRef.keys()].sort();
      return [
        ...(files.join() === want.join() ? [] : [`backup re-run left ${files.join()}`]),
        ...dirProblems(dir, backupRef),
      ];
    },
  },
  {
    name: 'whole-device restore',
    base: () => base.ready!,
    run: async (t) => {
      const hsm = await SmartCardHsm.open(t);
      await restoreAll(hsm, backupDir, false);
    },
    complete: async (card) => {
      const hsm = await SmartCardHsm.open(card);
      await restoreAll(hsm, backupDir, true);
      const keys = await hsm.listKeys();
      const out: string[] = [];
      for (const [f, bin] of backupRef) {
        const ref = Number(/key-(\d+)/.exec(f)![1]);
        const k = keys.find((x) => x.keyRef === ref);
        const w = decodeWrapFile(bin);
        const prkd = await hsm.files.readOptional(0xc400 | ref);
        const ce = await hsm.files.readOptional(0xce00 | ref);
        if (!k) out.push(`key ${ref} missing after restore`);
        if (!prkd || !bytesEqual(prkd, w.prkd!)) out.push(`key ${ref}: PRKD not restored`);
        if (!ce || !bytesEqual(ce, w.certificate!)) out.push(`key ${ref}: certificate not restored`);
      }
      if (keys.length !== backupRef.size)
        out.push(`${keys.length} keys after restore, expected ${backupRef.size}`);
      return out;
    },
  },
];

function scratch(name: string): string {
  return mkdtempSync(join(root, `${name.replace(/\W+/g, '-')}-`));
}

describe('fault injection across every APDU of every state-changing operation', () => {
  for (const op of OPERATIONS) {
    describe(op.name, () => {
      let n = 0;
      beforeAll(async () => {
        const card = VirtualSmartCardHsm.deserialize(op.base());
        const t = new FaultInjectingTransport(card);
        await op.run(t, scratch(op.name));
        n = t.count;
      });

      it('runs fault-free and counts its APDUs', () => {
        expect(n).toBeGreaterThan(1);
      });

      for (const combo of FAULT_COMBOS) {
        it(`${combo.kind}${combo.delivered ? ' after delivery' : ' before delivery'}, at every APDU`, async () => {
          const problems: string[] = [];
          for (let k = 1; k <= n; k++) {
            const where = `k=${k}/${n}`;
            const card = VirtualSmartCardHsm.deserialize(op.base());
            const t = new FaultInjectingTransport(card, { at: k, ...combo });
            const dir = scratch(op.name);
            let outcome: unknown;
            try {
              await op.run(t, dir);
              outcome = 'ok';
            } catch (e) {
              outcome = e;
            }
            if (!t.fired) problems.push(`${where}: the fault never fired`);
            if (outcome !== 'ok' && !isScHsmError(outcome)) {
              problems.push(`${where}: raw ${(outcome as Error)?.name}: ${(outcome as Error)?.message}`);
            }
            if (outcome === 'ok' && combo.kind !== 'truncated-response') {
              problems.push(`${where}: the operation reported success despite a ${combo.kind}`);
            }
            for (const p of dirProblems(dir, backupRef)) problems.push(`${where}: ${p}`);
            try {
              for (const p of await truthProblems(card)) problems.push(`${where}: ${p}`);
              for (const p of await op.complete(card, dir)) problems.push(`${where}: ${p}`);
            } catch (e) {
              problems.push(`${where}: after the fault: ${(e as Error).name} ${(e as Error).message}`);
            }
          }
          expect(problems).toEqual([]);
        });
      }
    });
  }
});

describe('what an interrupted unwrap or restore leaves behind', () => {
  // Regression (found by this file, fixed in src/sc-hsm/session.ts): a key object CCxx without
  // description C4xx and without CExx (what UNWRAP KEY leaves when the answer is lost, or a bare
  // unwrapKey) was listed as { type: 'aes', bits: 0 }; the host cannot know its type.
  it('listKeys does not call an EC key without description an AES key', async () => {
    const card = VirtualSmartCardHsm.deserialize(base.ready!);
    const hsm = await SmartCardHsm.open(card);
    await hsm.verifyPin(PIN);
    await hsm.unwrapKey(1, blob1);
    const [k] = await hsm.listKeys();
    expect(k?.keyRef).toBe(1);
    expect(cardState(card).keys['1']?.kind).toBe('ec');
    expect(k?.type).toBe('unknown');
  });
});

describe('FaultInjectingTransport', () => {
  it('throws the typed error of each kind and resets the inner card on CARD_RESET', async () => {
    const card = VirtualSmartCardHsm.deserialize(base.ready!);
    const t = new FaultInjectingTransport(card);
    const hsm = await SmartCardHsm.open(t);
    await hsm.verifyPin(PIN);
    expect((await hsm.status()).userPin.verified).toBe(true);
    t.arm({ at: 1, kind: 'card-reset', delivered: false });
    await expect(hsm.status()).rejects.toMatchObject({ code: 'CARD_RESET' });
    const again = await SmartCardHsm.open(card);
    expect((await again.status()).userPin.verified).toBe(false);
    t.arm({ at: 1, kind: 'card-removed', delivered: true });
    await expect(hsm.status()).rejects.toMatchObject({ code: 'CARD_REMOVED' });
    await expect(hsm.status()).rejects.toMatchObject({ code: 'CARD_REMOVED' });
    t.arm({ at: 2, kind: 'transport-error', delivered: false });
    await expect(hsm.status()).rejects.toMatchObject({ code: 'TRANSPORT_ERROR' });
    t.arm({ at: 1, kind: 'malformed-response', delivered: false });
    await expect(hsm.status()).rejects.toMatchObject({ code: 'MALFORMED_RESPONSE' });
    t.arm(undefined);
    expect((await hsm.status()).initialized).toBe(true);
  });

  it('cuts the data of a truncated answer and keeps its status word', async () => {
    const card = VirtualSmartCardHsm.deserialize(base.ready!);
    const t = new FaultInjectingTransport(card, { at: 1, kind: 'truncated-response', delivered: true });
    const full = card.process(fromHex('00A404000BE82B0601040181C31F020100'));
    const cut = await t.transmit(fromHex('00A404000BE82B0601040181C31F020100'));
    expect(cut.length).toBe(Math.floor((full.length - 2) / 2) + 2);
    expect(toHex(cut.subarray(-2))).toBe('9000');
    expect(toHex(cut.subarray(0, -2))).toBe(toHex(full.subarray(0, cut.length - 2)));
  });
});

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { testCertificate } from '../harness/certificate.js';
import { FaultInjectingTransport, type FaultPlan } from '../src/apdu/fault.js';
import { runCli } from '../src/cli/main.js';
import { decodeWrapFile, decryptKeyBlob } from '../src/dkek/index.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { bytesEqual, concat, fromHex } from '../src/util/bytes.js';
import { FAULT_COMBOS } from './helpers/fixtures.js';

const SO_PIN = '3537363231383830';
const PIN = '648219';
const SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');

let root: string;
let readyState = '';
let keysState = '';
let backupDir = '';
const reference = new Map<string, Uint8Array>();

/** Routes the card's transport through `fault` (the CLI uses the card object as its transport). */
function faulted(
  state: string,
  plan?: FaultPlan,
): { card: VirtualSmartCardHsm; fault: FaultInjectingTransport } {
  const card = VirtualSmartCardHsm.deserialize(state);
  const fault = new FaultInjectingTransport(
    {
      extendedLength: true,
      transmit: async (a) => card.process(a),
      close: async () => undefined,
      reset: () => card.reset(),
    },
    plan,
  );
  card.transmit = (a) => fault.transmit(a);
  return { card, fault };
}

function unfault(card: VirtualSmartCardHsm): void {
  card.transmit = async (a) => card.process(a);
}

async function cli(argv: string[], card: VirtualSmartCardHsm): Promise<{ code: number; error?: string }> {
  const sim = join(root, 'sim.json');
  writeFileSync(sim, '{}');
  // the command opens its --sim FILE with VirtualSmartCardHsm.open: hand it the faulted card instead
  const spy = vi.spyOn(VirtualSmartCardHsm, 'open').mockResolvedValue(card);
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
    let error: string | undefined;
    if (code !== 0) {
      try {
        error = (JSON.parse(Buffer.concat(chunks).toString()) as { error?: { code?: string } }).error?.code;
      } catch {
        error = 'unreadable JSON error';
      }
    }
    return error === undefined ? { code } : { code, error };
  } finally {
    spy.mockRestore();
  }
}

function dirProblems(dir: string): string[] {
  const out: string[] = [];
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return out;
  }
  for (const f of files) {
    if (f.endsWith('.tmp') || f.startsWith('.')) out.push(`temp file left: ${f}`);
    else if (f.endsWith('.bin')) {
      const ref = reference.get(f);
      try {
        const w = decodeWrapFile(readFileSync(join(dir, f)));
        const d = decryptKeyBlob(w.blob, SHARE);
        const r = decodeWrapFile(ref!);
        if (!bytesEqual(d.pkcs8!, decryptKeyBlob(r.blob, SHARE).pkcs8!)) out.push(`${f}: another key`);
        if (!bytesEqual(w.prkd!, r.prkd!) || !bytesEqual(w.certificate!, r.certificate!))
          out.push(`${f}: PRKD/cert differ`);
      } catch (e) {
        out.push(`${f} does not verify: ${(e as Error).message}`);
      }
    } else if (f === 'manifest.json') {
      const m = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { keys: { file: string }[] };
      for (const k of m.keys)
        if (!files.includes(k.file)) out.push(`manifest lists ${k.file}, which is missing`);
      if (m.keys.length !== reference.size)
        out.push(`manifest lists ${m.keys.length} keys, the device has ${reference.size}`);
    } else out.push(`unexpected file ${f}`);
  }
  return out;
}

async function truthProblems(card: VirtualSmartCardHsm): Promise<string[]> {
  const s = JSON.parse(card.serialize()) as {
    userPinTries: number;
    soPinTries: number;
    keys: Record<string, unknown>;
  };
  const out: string[] = [];
  if (s.userPinTries !== 3 || s.soPinTries !== 15)
    out.push(`a PIN try was used (user ${s.userPinTries}, SO ${s.soPinTries})`);
  const hsm = await SmartCardHsm.open(card);
  const st = await hsm.status();
  if (st.userPin.triesLeft !== s.userPinTries) out.push('status shows other user PIN tries');
  const keys = await hsm.listKeys();
  const refs = Object.keys(s.keys).filter((k) => k !== '0');
  if (keys.length !== refs.length)
    out.push(`listKeys shows ${keys.length} keys, the card holds ${refs.length}`);
  return out;
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'sc-hsm-fault-cli-'));
  const card = new VirtualSmartCardHsm({ deviceId: '7654322' });
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1, label: 'fault-cli' });
  await hsm.importDkekShare(SHARE);
  readyState = card.serialize();
  await hsm.verifyPin(PIN);
  const ec = await hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'ec key' });
  const rsa = await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'rsa key' });
  await hsm.storeCertificate(ec.keyRef, testCertificate(ec.publicKey, 'ec'));
  await hsm.storeCertificate(rsa.keyRef, testCertificate(rsa.publicKey, 'rsa'));
  keysState = card.serialize();
  backupDir = join(root, 'reference');
  const r = await cli(['backup', backupDir, '--pin', 'env:PIN'], VirtualSmartCardHsm.deserialize(keysState));
  expect(r).toEqual({ code: 0 });
  for (const f of readdirSync(backupDir))
    if (f.endsWith('.bin')) reference.set(f, readFileSync(join(backupDir, f)));
  expect(reference.size).toBe(2);
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

interface CliOp {
  name: string;
  state: () => string;
  argv: (dir: string) => string[];
  again: (dir: string) => string[];
  /** Scratch directory for the run (backup target). */
  prepare: () => string;
  done: (card: VirtualSmartCardHsm, dir: string) => Promise<string[]>;
}

const OPS: CliOp[] = [
  {
    name: 'CLI backup',
    state: () => keysState,
    prepare: () => join(mkdtempSync(join(root, 'b-')), 'backup'),
    argv: (dir) => ['backup', dir, '--pin', 'env:PIN'],
    again: (dir) => ['backup', dir, '--pin', 'env:PIN', '--force'],
    done: async (_card, dir) => {
      const files = readdirSync(dir).sort();
      return files.join() === [...reference.keys(), 'manifest.json'].sort().join()
        ? []
        : [`backup holds ${files.join()}`];
    },
  },
  {
    name: 'CLI restore',
    state: () => readyState,
    prepare: () => backupDir,
    argv: (dir) => ['restore', dir, '--pin', 'env:PIN'],
    again: (dir) => ['restore', dir, '--pin', 'env:PIN'],
    done: async (card) => {
      const hsm = await SmartCardHsm.open(card);
      await hsm.verifyPin(PIN);
      const out: string[] = [];
      for (const [f, bin] of reference) {
        const ref = Number(/(\d+)/.exec(f)![1]);
        const w = decodeWrapFile(bin);
        const prkd = await hsm.files.readOptional(0xc400 | ref);
        const ce = await hsm.files.readOptional(0xce00 | ref);
        if (!prkd || !bytesEqual(prkd, w.prkd!)) out.push(`key ${ref}: PRKD not restored`);
        if (!ce || !bytesEqual(ce, w.certificate!)) out.push(`key ${ref}: certificate not restored`);
      }
      return out;
    },
  },
];

describe('fault injection across every APDU of the CLI backup and restore', () => {
  for (const op of OPS) {
    describe(op.name, () => {
      let n = 0;
      beforeAll(async () => {
        const { card, fault } = faulted(op.state());
        const r = await cli(op.argv(op.prepare()), card);
        expect(r).toEqual({ code: 0 });
        n = fault.count;
      });

      it('runs fault-free and counts its APDUs', () => {
        expect(n).toBeGreaterThan(5);
      });

      for (const combo of FAULT_COMBOS) {
        it(`${combo.kind}${combo.delivered ? ' after delivery' : ' before delivery'}, at every APDU`, async () => {
          const problems: string[] = [];
          for (let k = 1; k <= n; k++) {
            const where = `k=${k}/${n}`;
            const { card, fault } = faulted(op.state(), { at: k, ...combo });
            const dir = op.prepare();
            const r = await cli(op.argv(dir), card);
            if (!fault.fired) problems.push(`${where}: the fault never fired`);
            if (r.code === 0 && combo.kind !== 'truncated-response')
              problems.push(`${where}: success reported despite ${combo.kind}`);
            if (r.error === 'INTERNAL_ERROR' || r.error === 'unreadable JSON error')
              problems.push(`${where}: ${r.error}`);
            if (op.name === 'CLI backup') for (const p of dirProblems(dir)) problems.push(`${where}: ${p}`);
            unfault(card);
            try {
              for (const p of await truthProblems(card)) problems.push(`${where}: ${p}`);
              const again = await cli(op.again(dir), card);
              if (again.code !== 0) problems.push(`${where}: re-run exited ${again.code} (${again.error})`);
              else {
                for (const p of await op.done(card, dir)) problems.push(`${where}: ${p}`);
                if (op.name === 'CLI backup')
                  for (const p of dirProblems(dir)) problems.push(`${where}: after re-run: ${p}`);
              }
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

describe('a cut WRAP KEY answer during the CLI backup (precise reproduction)', () => {
  // BUG (src/cli/commands/backup/backup.ts): when the card's WRAP KEY answer for a key arrives cut
  // (data truncated, SW 9000 kept: a reader or card fault), `backup` writes the cut blob into
  // key-001.bin first and checks the files only after all are written; it then fails (exit 6,
  // INVALID_KEY_BLOB) but leaves key-001.bin, which can never be restored (decryptKeyBlob: "after
  // the header … bytes remain; expected encrypted data in 16-byte blocks and a 16-byte MAC"), in
  // the backup directory next to the good files. The directory must hold only complete, verified
  // files: check each blob's structure before writing it, or remove what was written on failure.
  // (The session's backupKey returns the cut blob without a check as well.)
  it('leaves no unusable .bin file behind when it fails', async () => {
    const card = VirtualSmartCardHsm.deserialize(keysState);
    card.transmit = async (apdu) => {
      const a = card.process(apdu);
      // the second key: the first is written, so the directory stays (a failed backup that wrote
      // nothing removes the directory it created)
      if (apdu[0] !== 0x80 || apdu[1] !== 0x72 || apdu[2] !== 2) return a;
      const n = Math.floor((a.length - 2) / 2);
      return concat(a.subarray(0, n), a.subarray(a.length - 2));
    };
    const dir = join(mkdtempSync(join(root, 'cut-')), 'backup');
    const r = await cli(['backup', dir, '--pin', 'env:PIN'], card);
    expect(r.code).not.toBe(0);
    const unusable = readdirSync(dir)
      .filter((f) => f.endsWith('.bin'))
      .filter((f) => {
        try {
          decryptKeyBlob(decodeWrapFile(readFileSync(join(dir, f))).blob, SHARE);
          return false;
        } catch {
          return true;
        }
      });
    expect(unusable).toEqual([]);
  });
});

/**
 * sc-hsm-ts against OpenSC, side by side in one run, on the same virtual card behind the same
 * private pcscd (vpcd slot 1, reader "Virtual PCD 00 01"):
 *
 * The RAW virtual card: it answers in microseconds, so these figures show the host's own costs;
 * what an operator of the real device waits for is measured on the latency model in
 * bench/model.bench.ts. (The wall time of the whole `dump` command with Node's start against
 * pkcs15-tool's is printed here but no longer a target: on the raw card it measures Node's start,
 * which bench/startup.bench.ts measures as "time above Node's floor".)
 *
 *  - `dump` vs `pkcs15-tool --dump` on a card with 8 keys (4 RSA, 4 EC P-256), each with an X.509
 *    certificate: APDUs at the card (counted by the card), and the library's dump data gathering inside a running process
 *    (the PC/SC connection open, as in any long-running program; timed: `SmartCardHsm.open` +
 *    `gatherDump`) against pkcs15-tool's wall time;
 *  - ECDSA P-256 signatures in one long-lived session: ours vs OpenSC's PKCS#11 module driven by a
 *    C harness (bench/c/p11sign.c, compiled here), and our host overhead per signature (our time
 *    minus the card's own processing) against a bare APDU round trip. The virtual card answers from
 *    this process, so the card times every APDU inside its process(); each signature and each bare
 *    round trip (GET CHALLENGE, through the same transport) is timed on its own, the card's time
 *    for it subtracted, and both take the median over all of them: measured the same way.
 *    The per-signature comparison is measured the same way on both sides too: every signature
 *    timed on its own (ours: sign(); the harness: C_SignInit + C_Sign), the median signature of
 *    each run, then the median run (robust to the scheduling spikes of a shared machine).
 *
 * pcscd needs root: run() re-invokes this file through `bash scripts/with-pcscd.sh`, which gives a
 * private pcscd in its own namespaces (so `npm run bench` must run as root, as CI does).
 * Every figure is a median of several runs, the two sides alternating.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testCertificate } from '../harness/certificate.js';
import { RelayCard } from '../harness/relay-card.js';
import type { PcscTransport } from '../src/apdu/pcsc.js';
import { isScHsmError } from '../src/errors.js';
import { gatherDump } from '../src/sc-hsm/dump.js';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { connectToVpcd } from '../src/sim/vpcd.js';
import { fromHex } from '../src/util/bytes.js';
import { inPrivatePcscd, waitForCard } from './pcscd.js';
import { timeProgram } from './run-program.js';
import { ensureBuilt } from './startup.bench.js';
import { type BenchResult, median } from './types.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const READER = 'Virtual PCD 00 01';
const PORT = 35964;
const PIN = '648219';
const P11 = '/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so';
const DUMP_RUNS = 11;
const SIGNATURES = 200;
/** Signature runs, ours and PKCS#11 alternating; each side's figure is the median run. */
const SIGN_RUNS = 7;
const ROUND_TRIPS = 300;

/** The card behind vpcd: counts APDUs and times its own processing of each. */
class MeteredCard extends RelayCard<VirtualSmartCardHsm> {
  apdus = 0;
  /** Time spent inside the card's process(), all APDUs. */
  ns = 0n;
  override process(apdu: Uint8Array): Uint8Array {
    this.apdus++;
    const t0 = process.hrtime.bigint();
    try {
      return super.process(apdu);
    } finally {
      this.ns += process.hrtime.bigint() - t0;
    }
  }
}

/** Runs a program without blocking the event loop (the card answers from this process); killed after 2 minutes. */
const runProgram = (cmd: string, args: string[], env: NodeJS.ProcessEnv) =>
  timeProgram(cmd, args, env, { timeoutMs: 120_000 });

/** The library's dump data gathering on an open PC/SC connection: a fresh session, then gatherDump. */
async function inProcessDump(transport: PcscTransport): Promise<number> {
  const t0 = process.hrtime.bigint();
  const hsm = await SmartCardHsm.open(transport);
  const d = await gatherDump(hsm);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (d.keys.length !== 8 || d.keys.some((k) => !k.certificate))
    throw new Error('in-process dump incomplete');
  return ms;
}

async function measure(): Promise<BenchResult[]> {
  if (process.env.SC_HSM_PCSC !== '1') {
    throw new Error('needs the private pcscd of scripts/with-pcscd.sh (root): run `npm run bench` as root');
  }
  const home = mkdtempSync(join(tmpdir(), 'sc-hsm-bench-home-'));
  const env = { ...process.env, HOME: home, LC_ALL: 'C' };
  const work = mkdtempSync(join(tmpdir(), 'sc-hsm-bench-'));
  let transport: PcscTransport | undefined;
  const card = new VirtualSmartCardHsm({ deviceId: '3330001' });
  const slot = new MeteredCard(card);
  const vpcd = connectToVpcd(slot, { host: process.env.VPCD_HOST ?? '127.0.0.1', port: PORT });
  try {
    // the card: 4 RSA and 4 EC keys, each with a certificate
    const local = await SmartCardHsm.open(card);
    await local.initialize({ soPin: '3537363231383830', userPin: PIN, label: 'bench' });
    await local.verifyPin(PIN);
    const specs = [
      { type: 'ec', curve: 'secp256r1' },
      { type: 'rsa', bits: 2048 },
      { type: 'ec', curve: 'secp256r1' },
      { type: 'rsa', bits: 1024 },
      { type: 'ec', curve: 'secp256r1' },
      { type: 'rsa', bits: 2048 },
      { type: 'ec', curve: 'secp256r1' },
      { type: 'rsa', bits: 1024 },
    ] as const;
    let ecRef = 0;
    for (const [i, s] of specs.entries()) {
      const label = `bench-${s.type}-${i + 1}`;
      const k = await local.generateKeyPair(
        s.type === 'ec' ? { type: 'ec', curve: s.curve, label } : { type: 'rsa', bits: s.bits, label },
      );
      await local.storeCertificate(k.keyRef, testCertificate(k.publicKey, label));
      if (s.type === 'ec' && !ecRef) ecRef = k.keyRef;
    }
    await local.logout();

    // the reader is up when a connection succeeds; it is closed again while the tools run (our
    // command's sequences take the reader exclusively, a connection held here would refuse it)
    await waitForCard(vpcd, READER);

    // ---- dump: APDUs at the card
    const cli = join(ROOT, 'dist', 'cli.js');
    const ours = () => runProgram(process.execPath, [cli, 'dump', '--reader', READER], env);
    const theirs = () => runProgram('pkcs15-tool', ['--dump', '-r', READER], env);
    const ourDump = await ours();
    const theirDump = await theirs();
    if (!/bench-ec-1/.test(ourDump.stdout) || !/bench-ec-1/.test(theirDump.stdout)) {
      throw new Error('a dump does not list the keys');
    }
    let a0 = slot.apdus;
    await ours();
    const ourApdus = slot.apdus - a0;
    a0 = slot.apdus;
    await theirs();
    const theirApdus = slot.apdus - a0;

    // ---- dump: wall time, alternating
    const tOurs: number[] = [];
    const tTheirs: number[] = [];
    const tIn: number[] = [];
    // Node's own floor in the same loop: no Node program can be faster than `node -e 0`
    const tNode: number[] = [];
    const bareNode = () => runProgram(process.execPath, ['-e', '0'], env);
    for (let i = 0; i < DUMP_RUNS; i++) {
      tOurs.push((await ours()).ms);
      tTheirs.push((await theirs()).ms);
      tNode.push((await bareNode()).ms);
    }
    // in a running process: the PC/SC connection open (as in any long-running program)
    transport = await openPcsc({ reader: READER });
    await inProcessDump(transport); // warm-up: modules loaded, JIT
    for (let i = 0; i < DUMP_RUNS; i++) tIn.push(await inProcessDump(transport));

    // ---- signatures in one session, alternating with OpenSC's PKCS#11 module
    const exe = join(work, 'p11sign');
    execFileSync(
      'cc',
      ['-O2', `-I/usr/include/p11-kit-1`, join(ROOT, 'bench', 'c', 'p11sign.c'), '-o', exe, '-ldl'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const hsm = await SmartCardHsm.open(transport!);
    await hsm.verifyPin(PIN);
    const hash = new Uint8Array(32).fill(7);
    // warm-up: key info read and cached, and a long-lived session's steady state (JIT-compiled
    // host and card code); the C harness has no JIT to warm and signs once before its timing
    for (let i = 0; i < SIGNATURES; i++) await hsm.sign(ecRef, 'ECDSA', hash);
    const challenge = fromHex('0084000008');
    const ourRuns: number[] = [];
    const theirRuns: number[] = [];
    const cardRuns: number[] = [];
    const overheads: number[] = [];
    const roundTrips: number[] = [];
    let ourSignApdus = 0;
    let theirRunApdus = 0;
    for (let run = 0; run < SIGN_RUNS; run++) {
      let cardTotal = 0;
      const each: number[] = [];
      const a1 = slot.apdus;
      for (let i = 0; i < SIGNATURES; i++) {
        hash[0] = i & 0xff;
        const c0 = slot.ns;
        const t = process.hrtime.bigint();
        await hsm.sign(ecRef, 'ECDSA', hash);
        const ms = Number(process.hrtime.bigint() - t) / 1e6;
        const card = Number(slot.ns - c0) / 1e6;
        each.push(ms);
        cardTotal += card;
        overheads.push(ms - card);
      }
      ourSignApdus += slot.apdus - a1;
      ourRuns.push(median(each));
      cardRuns.push(cardTotal / SIGNATURES);
      // a bare APDU round trip through the same transport (GET CHALLENGE of 8 bytes), timed the same way
      for (let i = 0; i < ROUND_TRIPS / SIGN_RUNS; i++) {
        const c0 = slot.ns;
        const t = process.hrtime.bigint();
        await transport!.transmit(challenge);
        roundTrips.push(Number(process.hrtime.bigint() - t - (slot.ns - c0)) / 1e6);
      }
      await hsm.logout(); // OpenSC logs in on its own; our session verifies again below
      const a2 = slot.apdus;
      const p11 = await runProgram(exe, [P11, PIN, String(SIGNATURES)], env);
      theirRunApdus += slot.apdus - a2;
      const perSig = Number(p11.stdout.trim().split(/\s+/)[3]);
      if (!Number.isFinite(perSig)) throw new Error(`p11sign printed ${p11.stdout}`);
      theirRuns.push(perSig);
      // should OpenSC have reset the card on its way out, the first command says CARD_RESET (the
      // PIN-state query: no PIN sent, no try spent) and the session has selected the applet again
      await hsm.verifyPin(PIN).catch(async (e: unknown) => {
        if (!isScHsmError(e, 'CARD_RESET')) throw e;
        await hsm.verifyPin(PIN);
      });
    }
    const ourPerSig = median(ourRuns);
    const theirPerSig = median(theirRuns);
    const cardPerSig = median(cardRuns);
    const roundTrip = median(roundTrips);
    await hsm.logout();

    const overhead = median(overheads);
    const dumpOurs = median(tOurs);
    const dumpTheirs = median(tTheirs);
    const dumpIn = median(tIn);
    const nodeFloor = median(tNode);
    process.stderr.write(
      `  dump wall time: ours ${dumpOurs.toFixed(1)} ms, pkcs15-tool ${dumpTheirs.toFixed(1)} ms; ` +
        `Node's floor (node -e 0, same loop) ${nodeFloor.toFixed(1)} ms = ` +
        `${(nodeFloor / dumpTheirs).toFixed(2)}× pkcs15-tool, our dump above that floor ` +
        `${(dumpOurs - nodeFloor).toFixed(1)} ms\n`,
    );
    process.stderr.write(
      `  dump APDUs ours ${ourApdus} / pkcs15-tool ${theirApdus}; signature: ours ${ourPerSig.toFixed(3)} ms ` +
        `(runs ${ourRuns.map((x) => x.toFixed(3)).join(' ')}), card ${cardPerSig.toFixed(3)} ms, PKCS#11 ` +
        `${theirPerSig.toFixed(3)} ms (runs ${theirRuns.map((x) => x.toFixed(3)).join(' ')}); host overhead ` +
        `${overhead.toFixed(3)} ms, bare round trip ${roundTrip.toFixed(3)} ms (card's time subtracted from both); ` +
        `APDUs per signature: ours ${(ourSignApdus / (SIGN_RUNS * SIGNATURES)).toFixed(2)}, PKCS#11 ` +
        `${(theirRunApdus / (SIGN_RUNS * SIGNATURES)).toFixed(2)} (its whole run, login included)\n`,
    );
    return [
      {
        name: '[raw virtual card] dump vs pkcs15-tool --dump: APDUs (8 keys + certs)',
        ours: ourApdus,
        theirs: theirApdus,
        unit: 'APDUs',
        ratio: ourApdus / theirApdus,
        target: 0.5,
      },
      {
        name: '[raw virtual card] dump in a running process vs pkcs15-tool --dump wall',
        ours: dumpIn,
        theirs: dumpTheirs,
        unit: 'ms',
        ratio: dumpIn / dumpTheirs,
        target: 0.25,
      },
      {
        name: '[raw virtual card] ECDSA P-256 per signature, one session, vs OpenSC PKCS#11',
        ours: ourPerSig,
        theirs: theirPerSig,
        unit: 'ms',
        ratio: ourPerSig / theirPerSig,
        target: 1.0,
      },
      {
        name: '[raw virtual card] host overhead per signature vs bare APDU round trip',
        ours: overhead,
        theirs: roundTrip,
        unit: 'ms',
        ratio: overhead / roundTrip,
        target: 2.0,
      },
    ];
  } finally {
    await transport?.close().catch(() => undefined);
    await vpcd.close();
    rmSync(home, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
}

/** Runs the measurement inside a private pcscd (scripts/with-pcscd.sh) and collects its results. */
export default async function run(): Promise<BenchResult[]> {
  if (process.env.SC_HSM_PCSC === '1') return measure();
  ensureBuilt();
  const out = await inPrivatePcscd('bench/opensc.bench.ts', '--opensc-inner');
  const line = out.split('\n').find((l) => l.startsWith('BENCH_RESULTS '));
  if (!line) throw new Error(`no results from the pcscd part:\n${out}`);
  return JSON.parse(line.slice('BENCH_RESULTS '.length)) as BenchResult[];
}

if (process.argv.includes('--opensc-inner')) {
  const results = await measure();
  process.stdout.write(`BENCH_RESULTS ${JSON.stringify(results)}\n`);
  process.exit(0);
}

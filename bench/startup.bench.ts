/**
 * The command's own start (raw virtual card, no latency model: what Node and our modules cost).
 *
 *  - Cold start: `sc-hsm-ts --help` (`node dist/cli.cjs`, the package's bin) and a script that only imports the built package
 *    (dist/index.js), each against a bare `node -e 0`, median of many runs, alternating.
 *  - `dump` and `status` through pcscd: each whole command (`node dist/cli.cjs dump|status`) minus
 *    a bare `node -e 0` timed in the same loop — what we add above Node's floor — against the whole
 *    run of `pkcs15-tool --dump`, on the same virtual card (8 keys, 4 RSA and 4 EC P-256, each with
 *    an X.509 certificate) behind the same private pcscd (vpcd slot 1). The four programs take
 *    turns in every round (the machine's speed drifts by 2× within minutes); each figure is the
 *    median over the rounds of (ours − node -e 0) in that round, and pkcs15-tool's median.
 *
 * pcscd needs root: the second part re-invokes this file through `bash scripts/with-pcscd.sh`
 * (as bench/opensc.bench.ts does). Builds dist/ with `npx tsup` first when it is missing or stale.
 * `SC_HSM_BENCH_RUNS=N` changes the number of rounds (default 31); `SC_HSM_BENCH_OTHER=PATH/cli.cjs`
 * adds another build's `dump` and `status` to the same loop (printed only: before/after a change).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { testCertificate } from '../harness/certificate.js';
import { RelayCard } from '../harness/relay-card.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { connectToVpcd } from '../src/sim/vpcd.js';
import { inPrivatePcscd } from './pcscd.js';
import { timeProgram } from './run-program.js';
import { type BenchResult, median } from './types.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const RUNS = Number(process.env.SC_HSM_BENCH_RUNS) || 31;
const READER = 'Virtual PCD 00 01';
const PORT = 35964;
const PIN = '648219';

function newestMtime(dir: string): number {
  let t = 0;
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, f.name);
    t = Math.max(t, f.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Builds dist/ (npx tsup, as `npm run build`) when it is missing or older than src/. */
export function ensureBuilt(): void {
  const cli = join(ROOT, 'dist', 'cli-main.cjs');
  const fresh = existsSync(cli) && existsSync(join(ROOT, 'dist', 'index.js'));
  if (fresh && statSync(cli).mtimeMs >= newestMtime(join(ROOT, 'src'))) return;
  process.stdout.write('  building dist/ (npx tsup) …\n');
  execFileSync('npx', ['tsup'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
}

function wallMs(args: string[], env: NodeJS.ProcessEnv): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr.toString()}`);
  return ms;
}

/** `--help` and `import 'sc-hsm-ts'` against `node -e 0` (no card). */
function coldStart(): BenchResult[] {
  const dir = mkdtempSync(join(tmpdir(), 'sc-hsm-bench-start-'));
  try {
    const script = join(dir, 'import-only.mjs');
    writeFileSync(script, `import ${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'index.js')).href)};\n`);
    const cases = {
      bare: ['-e', '0'],
      help: [join(ROOT, 'dist', 'cli.cjs'), '--help'],
      importOnly: [script],
    };
    // the command's code cache (src/cli/compile-cache.ts) in a home of the bench's own
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: dir };
    delete env.XDG_CACHE_HOME;
    const t: Record<keyof typeof cases, number[]> = { bare: [], help: [], importOnly: [] };
    for (const k of Object.keys(cases) as (keyof typeof cases)[]) wallMs(cases[k], env); // warm the file cache (and make the code cache)
    for (let i = 0; i < RUNS; i++) {
      for (const k of Object.keys(cases) as (keyof typeof cases)[]) t[k].push(wallMs(cases[k], env));
    }
    const bare = median(t.bare);
    const help = median(t.help);
    const imp = median(t.importOnly);
    return [
      {
        name: 'cold start: sc-hsm-ts --help (dist/cli.cjs) vs node -e 0',
        ours: help,
        theirs: bare,
        unit: 'ms',
        ratio: help / bare,
        target: 1.5,
      },
      {
        name: "cold start: import 'sc-hsm-ts' (dist) vs node -e 0",
        ours: imp,
        theirs: bare,
        unit: 'ms',
        ratio: imp / bare,
        target: 1.3,
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a program in the project's root without blocking the event loop (the card answers from this process); killed after a minute. */
const runProgram = (cmd: string, args: string[], env: NodeJS.ProcessEnv) =>
  timeProgram(cmd, args, env, { cwd: ROOT, timeoutMs: 60_000 });

/** The card behind vpcd: counts the APDUs it answers. */
class CountingCard extends RelayCard<VirtualSmartCardHsm> {
  apdus = 0;
  override process(apdu: Uint8Array): Uint8Array {
    this.apdus++;
    return super.process(apdu);
  }
}

/** `dump` and `status` above Node's floor against `pkcs15-tool --dump` (inside the private pcscd). */
async function commandStart(): Promise<BenchResult[]> {
  if (process.env.SC_HSM_PCSC !== '1') {
    throw new Error('needs the private pcscd of scripts/with-pcscd.sh (root): run `npm run bench` as root');
  }
  const home = mkdtempSync(join(tmpdir(), 'sc-hsm-bench-home-'));
  // a home of the bench's own: the command's code cache (src/cli/compile-cache.ts) is made there by
  // the first runs below, as on an operator's machine after the first command
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, LC_ALL: 'C' };
  delete env.XDG_CACHE_HOME;
  const card = new VirtualSmartCardHsm({ deviceId: '3330002' });
  const slot = new CountingCard(card);
  const vpcd = connectToVpcd(slot, { host: process.env.VPCD_HOST ?? '127.0.0.1', port: PORT });
  try {
    const local = await SmartCardHsm.open(card);
    await local.initialize({ soPin: '3537363231383830', userPin: PIN, label: 'bench' });
    await local.verifyPin(PIN);
    for (let i = 0; i < 8; i++) {
      const label = `start-${i % 2 ? 'rsa' : 'ec'}-${i + 1}`;
      const k = await local.generateKeyPair(
        i % 2
          ? { type: 'rsa', bits: i % 4 === 1 ? 2048 : 1024, label }
          : { type: 'ec', curve: 'secp256r1', label },
      );
      await local.storeCertificate(k.keyRef, testCertificate(k.publicKey, label));
    }
    await local.logout();
    await vpcd.connected;
    await vpcd.adopted;

    const cli = join(ROOT, 'dist', 'cli.cjs');
    type Run = () => Promise<{ ms: number; stdout: string }>;
    const dump: Run = () => runProgram(process.execPath, [cli, 'dump', '--reader', READER], env);
    const status: Run = () => runProgram(process.execPath, [cli, 'status', '--reader', READER], env);
    const pkcs15Dump: Run = () => runProgram('pkcs15-tool', ['--dump', '-r', READER], env);
    const programs: Record<string, Run> = {
      node: () => runProgram(process.execPath, ['-e', '0'], env),
      dump,
      status,
      opensc: pkcs15Dump,
    };
    // another build of the command in the same loop (before/after comparisons): SC_HSM_BENCH_OTHER=its dist/cli.cjs
    const other = process.env.SC_HSM_BENCH_OTHER;
    if (other) {
      programs.otherDump = () => runProgram(process.execPath, [other, 'dump', '--reader', READER], env);
      programs.otherStatus = () => runProgram(process.execPath, [other, 'status', '--reader', READER], env);
    }
    // the reader may list a stale card until vpcd's next presence poll: retry the first run
    for (let i = 0; ; i++) {
      try {
        const d = await dump();
        if (!/start-ec-1/.test(d.stdout)) throw new Error(`our dump does not list the keys:\n${d.stdout}`);
        break;
      } catch (e) {
        if (i === 50) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (!/start-ec-1/.test((await pkcs15Dump()).stdout))
      throw new Error('pkcs15-tool does not list the keys');
    if (!/Label +: bench/.test((await status()).stdout)) throw new Error('status does not show the card');
    const a0 = slot.apdus;
    await dump();
    const dumpApdus = slot.apdus - a0;

    const t: Record<string, number[]> = Object.fromEntries(Object.keys(programs).map((k) => [k, []]));
    for (let i = 0; i < RUNS; i++) {
      for (const k of Object.keys(programs)) t[k]!.push((await programs[k]!()).ms);
    }
    const above = (xs: number[]) => median(xs.map((x, i) => x - t.node![i]!));
    const node = median(t.node!);
    const opensc = median(t.opensc!);
    const dumpAbove = above(t.dump!);
    const statusAbove = above(t.status!);
    if (other) {
      process.stderr.write(
        `  ${other}: dump above node ${above(t.otherDump!).toFixed(1)} ms, status above node ${above(t.otherStatus!).toFixed(1)} ms\n`,
      );
    }
    process.stderr.write(
      `  ${RUNS} rounds, medians: node -e 0 ${node.toFixed(1)} ms, dump ${median(t.dump!).toFixed(1)} ms ` +
        `(${dumpApdus} APDUs; above node ${dumpAbove.toFixed(1)} ms), status ${median(t.status!).toFixed(1)} ms ` +
        `(above node ${statusAbove.toFixed(1)} ms), pkcs15-tool --dump ${opensc.toFixed(1)} ms\n`,
    );
    return [
      {
        name: 'raw card: dump above node -e 0 vs pkcs15-tool --dump (whole run)',
        ours: dumpAbove,
        theirs: opensc,
        unit: 'ms',
        ratio: dumpAbove / opensc,
        target: 1.0,
      },
      {
        name: 'raw card: status above node -e 0 vs pkcs15-tool --dump (whole run)',
        ours: statusAbove,
        theirs: opensc,
        unit: 'ms',
        ratio: statusAbove / opensc,
        target: 1.0,
      },
    ];
  } finally {
    await vpcd.close();
    rmSync(home, { recursive: true, force: true });
  }
}

/** The pcscd part, run through scripts/with-pcscd.sh; its results come back on one stdout line. */
async function inPcscd(): Promise<BenchResult[]> {
  const text = await inPrivatePcscd('bench/startup.bench.ts', '--inner');
  const line = text.split('\n').find((l) => l.startsWith('BENCH_RESULTS '));
  // no results line although it exited 0: reported as a failed pcscd part too
  if (!line) throw new Error(`the pcscd part exited 0 (root needed for pcscd):\n${text}`);
  return JSON.parse(line.slice('BENCH_RESULTS '.length)) as BenchResult[];
}

export default async function run(): Promise<BenchResult[]> {
  ensureBuilt();
  return [...coldStart(), ...(await inPcscd())];
}

if (process.argv.includes('--inner')) {
  const results = await commandStart();
  process.stdout.write(`BENCH_RESULTS ${JSON.stringify(results)}\n`);
  process.exit(0);
}

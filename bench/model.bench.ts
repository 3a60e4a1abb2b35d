/**
 * sc-hsm-ts against OpenSC ON THE LATENCY MODEL of a Nitrokey HSM 2 (src/sim/profile.ts,
 * `nitrokey-hsm2`: every APDU takes the modelled transfer and card time, waited for real, so
 * pcscd and every client wait as for the device). Side by side in one run, through one private
 * pcscd (vpcd slot 1, reader "Virtual PCD 00 01"); the devices are built without the model (key
 * generation would take 6–30 s a key) and the model is switched on before anything is measured.
 *
 *  - `dump` (the whole command, Node's start included) vs `pkcs15-tool --dump` without a file
 *    cache and with OpenSC's `use_file_caching` on and a warm cache (an opensc.conf in a temp
 *    directory, OPENSC_CONF), on devices with 8 keys (4 RSA, 4 EC), 38 RSA-2048 keys and 150 EC
 *    P-256 keys, each with a certificate; the APDUs of each, and per key added (8 → 150).
 *  - key listing: `keys` and the library's listKeys + keyInfo vs `pkcs11-tool --list-objects`
 *    (38 RSA-2048 keys).
 *  - ECDSA P-256 signatures in one session vs OpenSC's PKCS#11 module (bench/c/p11sign.c), and a
 *    batch of 1,000 signatures: wall time against the card's modelled time (host share).
 *  - backup of the full 150-key device and restore onto a spare (`backup`, `restore`, whole
 *    commands) against the sum of the card's modelled times, and against `sc-hsm-tool
 *    --wrap-key` / `--unwrap-key` per key (run on the first WRAP_SAMPLE keys, per key).
 *
 * BENCH_QUICK=1 shrinks the devices and the batches (for trying the harness; not for figures).
 * Repetitions are few (the model is slow on purpose); the figures are medians where repeated.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testCertificate } from '../harness/certificate.js';
import { RelayCard } from '../harness/relay-card.js';
import { isScHsmError } from '../src/errors.js';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { NITROKEY_HSM2, VirtualSmartCardHsm } from '../src/sim/index.js';
import { connectToVpcd } from '../src/sim/vpcd.js';
import { inPrivatePcscd, waitForCard } from './pcscd.js';
import { writeDumpPlot } from './plot.js';
import { timeProgram } from './run-program.js';
import { ensureBuilt } from './startup.bench.js';
import { type BenchResult, median } from './types.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const READER = 'Virtual PCD 00 01';
const PORT = 35964;
const PIN = '648219';
const SO_PIN = '3537363231383830';
const P11 = '/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so';
const QUICK = process.env.BENCH_QUICK === '1';
const EC_KEYS = QUICK ? 20 : 150;
const RSA_KEYS = QUICK ? 6 : 38;
const BATCH = QUICK ? 50 : 1000;
const SIGNATURES = QUICK ? 5 : 20;
const WRAP_SAMPLE = QUICK ? 3 : 10;
const M = '[model] ';

/** The card behind vpcd: counts the APDUs it receives; `card` is swapped to change the device. */
class MeteredCard extends RelayCard<VirtualSmartCardHsm> {
  apdus = 0;
  override process(apdu: Uint8Array): Uint8Array {
    this.apdus++;
    return super.process(apdu);
  }
}

/** Each program is killed after 15 minutes (a whole-device backup on the model); a failure shows its stdout too. */
const runProgram = (cmd: string, args: string[], env: NodeJS.ProcessEnv) =>
  timeProgram(cmd, args, env, { timeoutMs: 900_000, stdoutInError: true });

interface Device {
  card: VirtualSmartCardHsm;
  keys: number;
  ecRef: number;
}

/** A device with `specs` keys, each with a certificate; DKEK from the share when given. Built without the model. */
async function buildDevice(
  id: string,
  specs: ({ type: 'ec' } | { type: 'rsa'; bits: 1024 | 2048 })[],
  share?: Uint8Array,
): Promise<Device> {
  const card = new VirtualSmartCardHsm({ deviceId: id });
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({
    soPin: SO_PIN,
    userPin: PIN,
    label: `bench-${id}`,
    ...(share && { dkekShares: 1 }),
  });
  if (share) await hsm.importDkekShare(share);
  await hsm.verifyPin(PIN);
  let ecRef = 0;
  for (const [i, s] of specs.entries()) {
    // short labels: 150 EC keys with certificates fill the virtual card's memory model almost exactly
    const label = `${s.type}${i + 1}`;
    const k = await hsm.generateKeyPair(
      s.type === 'ec' ? { type: 'ec', curve: 'secp256r1', label } : { type: 'rsa', bits: s.bits, label },
    );
    await hsm.storeCertificate(k.keyRef, testCertificate(k.publicKey, label));
    if (s.type === 'ec' && !ecRef) ecRef = k.keyRef;
  }
  await hsm.logout();
  card.powerOff();
  card.profile = NITROKEY_HSM2;
  return { card, keys: specs.length, ecRef };
}

function result(name: string, ours: number, theirs: number, unit: string, target: number): BenchResult {
  return { name: `${M}${name}`, ours, theirs, unit, ratio: ours / theirs, target };
}

function note(text: string): void {
  process.stderr.write(`  ${text}\n`);
}

async function measure(): Promise<{ results: BenchResult[]; plot: Parameters<typeof writeDumpPlot>[1] }> {
  if (process.env.SC_HSM_PCSC !== '1') {
    throw new Error('needs the private pcscd of scripts/with-pcscd.sh (root): run `npm run bench` as root');
  }
  const work = mkdtempSync(join(tmpdir(), 'sc-hsm-model-bench-'));
  const home = join(work, 'home');
  mkdirSync(home);
  // OpenSC without and with its file cache, each from its own opensc.conf
  const noCacheConf = join(work, 'opensc-nocache.conf');
  writeFileSync(noCacheConf, 'app default {\n  framework pkcs15 {\n    use_file_caching = no;\n  }\n}\n');
  const cacheConf = join(work, 'opensc-cache.conf');
  const cacheDir = join(work, 'opensc-cache');
  mkdirSync(cacheDir);
  writeFileSync(
    cacheConf,
    `app default {\n  framework pkcs15 {\n    use_file_caching = yes;\n    file_cache_dir = ${cacheDir};\n  }\n}\n`,
  );
  const base = { ...process.env, HOME: home, LC_ALL: 'C', SC_PIN: PIN, PIN };
  const env = { ...base, OPENSC_CONF: noCacheConf };
  const cachedEnv = { ...base, OPENSC_CONF: cacheConf };
  const cli = join(ROOT, 'dist', 'cli.js');
  const results: BenchResult[] = [];

  // a DKEK share for the backup devices
  const share = new Uint8Array(32).map((_, i) => (i * 37 + 11) & 0xff);

  note(
    `building devices (without the model): 8 keys, ${RSA_KEYS} RSA-2048, ${EC_KEYS} EC P-256, each with a certificate …`,
  );
  const mixed = [
    { type: 'ec' },
    { type: 'rsa', bits: 2048 },
    { type: 'ec' },
    { type: 'rsa', bits: 1024 },
    { type: 'ec' },
    { type: 'rsa', bits: 2048 },
    { type: 'ec' },
    { type: 'rsa', bits: 1024 },
  ] as const;
  const d8 = await buildDevice('3330008', [...mixed]);
  const d38 = await buildDevice(
    '3330038',
    Array.from({ length: RSA_KEYS }, () => ({ type: 'rsa', bits: 2048 }) as const),
  );
  const d150 = await buildDevice(
    '3330150',
    Array.from({ length: EC_KEYS }, () => ({ type: 'ec' }) as const),
    share,
  );
  const slot = new MeteredCard(d8.card);
  const vpcd = connectToVpcd(slot, { host: process.env.VPCD_HOST ?? '127.0.0.1', port: PORT });
  try {
    // the PC/SC connection of this process is closed while the tools run (our sessions hold the
    // reader exclusively for sequences); each side opens its own
    await waitForCard(vpcd, READER);

    /** Runs `fn` on `d` (swapped in behind vpcd): wall time, APDUs and the card's modelled time. */
    const on = async (d: Device, fn: () => Promise<{ ms: number; stdout: string }>) => {
      slot.card = d.card;
      const a0 = slot.apdus;
      const m0 = d.card.modelledMs;
      const r = await fn();
      return { ...r, apdus: slot.apdus - a0, modelled: d.card.modelledMs - m0 };
    };
    const ourDump = () => runProgram(process.execPath, [cli, 'dump', '--reader', READER], env);
    const theirDump = () => runProgram('pkcs15-tool', ['--dump', '-r', READER], env);
    const cachedDump = () => runProgram('pkcs15-tool', ['--dump', '-r', READER], cachedEnv);

    // ---- dump on three device sizes
    const plot: Parameters<typeof writeDumpPlot>[1] = [];
    const apdusAt: Record<number, { ours: number; theirs: number; cached: number }> = {};
    for (const [d, runs, what] of [
      [d8, 3, '8 keys'],
      [d38, 2, `${RSA_KEYS} RSA-2048 keys`],
      [d150, 1, `${EC_KEYS} EC keys`],
    ] as const) {
      // the warm cache: one run of pkcs15-tool with caching on, before anything is timed
      const warm = await on(d, cachedDump);
      const first = await on(d, ourDump);
      if (!/\b(ec|rsa)1\b/.test(first.stdout) || !/\b(ec|rsa)1\b/.test(warm.stdout))
        throw new Error(`a dump of the ${what} device does not list its keys`);
      const tOurs: number[] = [first.ms];
      const tTheirs: number[] = [];
      const tCached: number[] = [];
      let theirApdus = 0;
      let cachedApdus = 0;
      for (let i = 0; i < runs; i++) {
        if (i > 0) tOurs.push((await on(d, ourDump)).ms);
        const t = await on(d, theirDump);
        tTheirs.push(t.ms);
        theirApdus = t.apdus;
        const c = await on(d, cachedDump);
        tCached.push(c.ms);
        cachedApdus = c.apdus;
      }
      const ours = median(tOurs);
      const theirs = median(tTheirs);
      const cached = median(tCached);
      apdusAt[d.keys] = { ours: first.apdus, theirs: theirApdus, cached: cachedApdus };
      plot.push({ keys: d.keys, label: what, ours, theirs, cached });
      note(
        `dump, ${what}: ours ${ours.toFixed(0)} ms (${first.apdus} APDUs, card model ${first.modelled.toFixed(0)} ms), ` +
          `pkcs15-tool ${theirs.toFixed(0)} ms (${theirApdus} APDUs), with warm file cache ${cached.toFixed(0)} ms (${cachedApdus} APDUs)`,
      );
      results.push(
        result(
          `dump vs pkcs15-tool --dump, no cache: wall time incl. node start (${what})`,
          ours,
          theirs,
          'ms',
          0.3,
        ),
        result(
          `dump vs pkcs15-tool --dump, warm file cache: wall time incl. node start (${what})`,
          ours,
          cached,
          'ms',
          1.0,
        ),
      );
    }
    const lo = apdusAt[d8.keys]!;
    const hi = apdusAt[d150.keys]!;
    const span = d150.keys - d8.keys;
    const slope = (k: 'ours' | 'theirs' | 'cached') => (hi[k] - lo[k]) / span;
    note(
      `APDUs per key added (${d8.keys} → ${d150.keys} keys): ours ${slope('ours').toFixed(2)}, pkcs15-tool ${slope('theirs').toFixed(2)}, ` +
        `pkcs15-tool with warm cache ${slope('cached').toFixed(2)}`,
    );
    results.push(
      result(
        'dump APDUs per key added vs pkcs15-tool --dump (no cache)',
        slope('ours'),
        slope('theirs'),
        'APDUs/key',
        0.5,
      ),
    );

    // ---- key listing (38 RSA-2048 keys)
    {
      const keysCli = await on(d38, () =>
        runProgram(process.execPath, [cli, 'keys', '--reader', READER], env),
      );
      const lib = await on(d38, async () => {
        const t0 = process.hrtime.bigint();
        const t = await openPcsc({ reader: READER });
        try {
          const hsm = await SmartCardHsm.open(t);
          const keys = await hsm.listKeys();
          for (const k of keys) await hsm.keyInfo(k.keyRef);
          if (keys.length !== d38.keys) throw new Error(`listKeys found ${keys.length} keys`);
        } finally {
          await t.close();
        }
        return { ms: Number(process.hrtime.bigint() - t0) / 1e6, stdout: '' };
      });
      const p11 = await on(d38, () => runProgram('pkcs11-tool', ['--module', P11, '--list-objects'], env));
      note(
        `key listing, ${RSA_KEYS} RSA-2048 keys: keys ${keysCli.ms.toFixed(0)} ms (${keysCli.apdus} APDUs), ` +
          `listKeys+keyInfo ${lib.ms.toFixed(0)} ms (${lib.apdus} APDUs), pkcs11-tool --list-objects ${p11.ms.toFixed(0)} ms (${p11.apdus} APDUs)`,
      );
      results.push(
        result(
          `keys vs pkcs11-tool --list-objects: wall time (${RSA_KEYS} RSA-2048 keys)`,
          keysCli.ms,
          p11.ms,
          'ms',
          1.0,
        ),
        result(
          `listKeys+keyInfo vs pkcs11-tool --list-objects: APDUs (${RSA_KEYS} RSA-2048 keys)`,
          lib.apdus,
          p11.apdus,
          'APDUs',
          1.0,
        ),
      );
    }

    // ---- signatures (8-key device, its first EC P-256 key)
    {
      slot.card = d8.card;
      const exe = join(work, 'p11sign');
      execFileSync(
        'cc',
        ['-O2', '-I/usr/include/p11-kit-1', join(ROOT, 'bench', 'c', 'p11sign.c'), '-o', exe, '-ldl'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      const p11 = await runProgram(exe, [P11, PIN, String(SIGNATURES)], env);
      const theirPerSig = Number(p11.stdout.trim().split(/\s+/)[3]);
      if (!Number.isFinite(theirPerSig)) throw new Error(`p11sign printed ${p11.stdout}`);
      const t = await openPcsc({ reader: READER });
      try {
        const hsm = await SmartCardHsm.open(t);
        await hsm.verifyPin(PIN).catch(async (e: unknown) => {
          if (!isScHsmError(e, 'CARD_RESET')) throw e;
          await hsm.verifyPin(PIN);
        });
        const hash = new Uint8Array(32).fill(7);
        await hsm.sign(d8.ecRef, 'ECDSA', hash); // key info read once, as the harness finds its key first
        const each: number[] = [];
        for (let i = 0; i < SIGNATURES; i++) {
          hash[0] = i;
          const t0 = process.hrtime.bigint();
          await hsm.sign(d8.ecRef, 'ECDSA', hash);
          each.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
        const ourPerSig = median(each);
        note(
          `ECDSA P-256 per signature, one session: ours ${ourPerSig.toFixed(1)} ms, OpenSC PKCS#11 ${theirPerSig.toFixed(1)} ms`,
        );
        results.push(
          result(
            'ECDSA P-256 per signature, one session, vs OpenSC PKCS#11',
            ourPerSig,
            theirPerSig,
            'ms',
            1.0,
          ),
        );

        // the batch: wall time against the card's modelled time
        const m0 = d8.card.modelledMs;
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < BATCH; i++) {
          hash[1] = i & 0xff;
          hash[2] = i >> 8;
          await hsm.sign(d8.ecRef, 'ECDSA', hash);
        }
        const wall = Number(process.hrtime.bigint() - t0) / 1e6;
        const card = d8.card.modelledMs - m0;
        note(
          `${BATCH} ECDSA signatures: wall ${(wall / 1000).toFixed(2)} s, the card's modelled time ${(card / 1000).toFixed(2)} s, ` +
            `host share ${(((wall - card) / wall) * 100).toFixed(2)} %`,
        );
        results.push(
          result(
            `host share of ${BATCH} ECDSA signatures (wall - card model) / wall`,
            (wall - card) / wall,
            1,
            'share',
            0.02,
          ),
        );
        await hsm.logout();
      } finally {
        await t.close();
      }
    }

    // ---- backup of the full device and restore onto a spare
    {
      const spare = await buildDevice('3330151', [], share);
      const spare2 = await buildDevice('3330152', [], share);
      const dir = join(work, 'backup');
      const back = await on(d150, () =>
        runProgram(process.execPath, [cli, 'backup', dir, '--reader', READER, '--pin', 'env:PIN'], env),
      );
      const rest = await on(spare, () =>
        runProgram(
          process.execPath,
          [cli, 'restore', dir, '--reader', READER, '--pin', 'env:PIN', '--yes'],
          env,
        ),
      );
      // sc-hsm-tool, key by key, on the first keys (per key figure)
      const wrapDir = join(work, 'wrap');
      mkdirSync(wrapDir);
      let toolWrap = 0;
      let toolUnwrap = 0;
      let toolModel = 0;
      let toolApdus = 0;
      for (let ref = 1; ref <= WRAP_SAMPLE; ref++) {
        const f = join(wrapDir, `key${ref}.bin`);
        const w = await on(d150, () =>
          runProgram(
            'sc-hsm-tool',
            ['-r', READER, '--wrap-key', f, '--key-reference', String(ref), '--pin', 'env:SC_PIN'],
            env,
          ),
        );
        const u = await on(spare2, () =>
          runProgram(
            'sc-hsm-tool',
            [
              '-r',
              READER,
              '--unwrap-key',
              f,
              '--key-reference',
              String(ref),
              '--pin',
              'env:SC_PIN',
              '--force',
            ],
            env,
          ),
        );
        toolWrap += w.ms;
        toolUnwrap += u.ms;
        toolModel += w.modelled + u.modelled;
        toolApdus += w.apdus + u.apdus;
      }
      const ours = back.ms + rest.ms;
      const model = back.modelled + rest.modelled;
      const perKeyOurs = ours / d150.keys;
      const perKeyTool = (toolWrap + toolUnwrap) / WRAP_SAMPLE;
      note(
        `backup of ${d150.keys} keys ${(back.ms / 1000).toFixed(1)} s (${back.apdus} APDUs, card model ${(back.modelled / 1000).toFixed(1)} s), ` +
          `restore ${(rest.ms / 1000).toFixed(1)} s (${rest.apdus} APDUs, card model ${(rest.modelled / 1000).toFixed(1)} s); ` +
          `sc-hsm-tool --wrap-key + --unwrap-key per key ${perKeyTool.toFixed(0)} ms (card model ${(toolModel / WRAP_SAMPLE).toFixed(0)} ms, ${(toolApdus / WRAP_SAMPLE).toFixed(1)} APDUs; ` +
          `measured on ${WRAP_SAMPLE} keys), ours per key ${perKeyOurs.toFixed(0)} ms`,
      );
      results.push(
        result(
          `backup + restore of ${d150.keys} keys: host overhead (wall - card model) / card model`,
          (ours - model) / model,
          1,
          'share',
          0.05,
        ),
        result(
          `backup + restore per key vs sc-hsm-tool --wrap-key + --unwrap-key per key`,
          perKeyOurs,
          perKeyTool,
          'ms',
          1.0,
        ),
      );
    }
    return { results, plot };
  } finally {
    await vpcd.close();
    rmSync(work, { recursive: true, force: true });
  }
}

/** Runs the measurement inside a private pcscd (scripts/with-pcscd.sh), collects its results and writes the plot. */
export default async function run(): Promise<BenchResult[]> {
  ensureBuilt();
  const out = await inPrivatePcscd('bench/model.bench.ts', '--model-inner');
  const line = out.split('\n').find((l) => l.startsWith('BENCH_MODEL '));
  if (!line) throw new Error(`no results from the pcscd part:\n${out}`);
  const { results, plot } = JSON.parse(line.slice('BENCH_MODEL '.length)) as Awaited<
    ReturnType<typeof measure>
  >;
  writeDumpPlot(join(ROOT, 'bench', 'dump-vs-keys.svg'), plot);
  return results;
}

if (process.argv.includes('--model-inner')) {
  const r = await measure();
  process.stdout.write(`BENCH_MODEL ${JSON.stringify(r)}\n`);
  process.exit(0);
}

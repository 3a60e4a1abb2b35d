import { spawn } from 'node:child_process';
import { rmdirSync, unlinkSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { hostname, constants as osConstants, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { ERROR_CODES, ScHsmError, type ScHsmErrorCode } from '../../../errors.js';
import { checkLabel, parseSoPin, parseUserPin } from '../../../sc-hsm/validate.js';
import { canonicalStatePath, readStateFileHolder } from '../../../sim/state-lock.js';
import { wipe } from '../../../util/bytes.js';
import { hostPathKind } from '../../../util/host-files.js';
import type { Command } from '../../command.js';
import { flag, int, list, str } from '../../context.js';
import { openSimCard } from '../../device.js';
import { CliError, type CliErrorCode } from '../../exit-codes.js';
import { readHostFile } from '../../files.js';
import type { CliIo } from '../../io.js';
import { simRunSpec } from '../meta.js';
import { checkSimHost, findPkcs11Module, PCSCD_SOCKET, VPCD_SLOTS, vpcdReaderName } from './host.js';
import {
  cardsAndCommand,
  EXIT_REPORT,
  exitStatus,
  guardRunDir,
  INNER_ENV,
  type InnerPlan,
  RUN_DIR_PREFIX,
  runInNamespace,
  stripInner,
} from './run-cards.js';

type Runner = (argv: string[], io: CliIo) => Promise<number>;
let runner: Runner | undefined;
/** main.ts hands `sim run` its own entry point: `--init` runs the real `init` and `dkek import`. */
export function setSimRunRunner(r: Runner): void {
  runner = r;
}

/** Options that only mean something with --init. */
const INIT_ONLY = ['so-pin', 'pin', 'label', 'dkek-share', 'password'] as const;

/** Names of the in-process environment entries that carry the --init secrets to `init`/`dkek import`. */
const SECRET_VARS = {
  so: 'SC_HSM_TS_SIM_RUN_SO_PIN',
  pin: 'SC_HSM_TS_SIM_RUN_PIN',
  pw: 'SC_HSM_TS_SIM_RUN_PASSWORD',
};

/** The --init values, resolved (secrets once: env:, file:, prompt or a value) and checked. */
interface InitValues {
  label: string;
  soPin: string;
  pin: string;
  share?: string;
  password?: string;
}

/**
 * Resolves and checks every --init value before anything starts (no temporary card, no pcscd):
 * the SO-PIN's and PIN's formats and the label as `init` checks them, the share file readable.
 */
async function initValues(
  ctx: Parameters<Command['run']>[0],
  v: Parameters<Command['run']>[1],
): Promise<InitValues> {
  const label = str(v, 'label');
  if (label === undefined)
    throw new CliError('USAGE_ERROR', 'sim run --init needs --label', 'add --label LABEL (the token label)');
  checkLabel(label, 'token label');
  const share = str(v, 'dkek-share');
  if (share !== undefined && (await hostPathKind(share)) !== 'file')
    throw new CliError(
      'HOST_FILE_NOT_FOUND',
      `--dkek-share ${share} is not a readable file`,
      'check the path (a share file is made by dkek create)',
    );
  const soPin = await ctx.secret(v['so-pin'], { option: 'so-pin', prompt: 'SO-PIN (16 hex characters)' });
  parseSoPin(soPin);
  const pin = await ctx.secret(v.pin, { option: 'pin', prompt: 'User PIN (6-15 ASCII characters)' });
  parseUserPin(pin);
  const out: InitValues = { label, soPin, pin };
  if (share !== undefined) {
    out.share = share;
    out.password = await ctx.secret(v.password, {
      option: 'password',
      prompt: 'Password of the DKEK share file',
    });
    // the key derivation is host-side: a wrong password or a damaged file is found before any card exists
    const { decryptDkekShare } = await import('../../../dkek/index.js');
    const p = ctx.progress(`Checking the password of ${share} (10,000,000 rounds)`);
    try {
      wipe(
        await decryptDkekShare(await readHostFile(share, 'DKEK share file'), out.password, {
          onProgress: p.update,
        }),
      );
    } finally {
      p.done();
    }
  }
  return out;
}

/**
 * Fresh cards made as `--init` says, by the real `init --sim` and `dkek import --sim` run in this
 * process (every check of theirs applies). The secrets are handed over in an environment object
 * of this process only: no child process ever sees them.
 */
async function initCards(
  ctx: Parameters<Command['run']>[0],
  iv: InitValues,
  paths: string[],
  stopped: () => boolean,
): Promise<number> {
  if (!runner) throw new CliError('INTERNAL_ERROR', 'sim run: runner not set');
  // their output goes to our standard error: COMMAND's standard output stays its own. Under
  // --json they write JSON, kept here: a failure becomes sim run's own error document.
  const err = new PassThrough();
  let captured = '';
  err.on('data', (d) => {
    if (ctx.g.json) captured += d.toString();
    else ctx.io.stderr.write(d);
  });
  const json = ctx.g.json ? ['--json'] : [];
  const io: CliIo = {
    ...ctx.io,
    stdout: err,
    env: {
      ...ctx.io.env,
      [SECRET_VARS.so]: iv.soPin,
      [SECRET_VARS.pin]: iv.pin,
      ...(iv.password !== undefined && { [SECRET_VARS.pw]: iv.password }),
    },
  };
  for (const p of paths) {
    if (stopped()) return 0;
    const argv = ['init', '--sim', p, '--so-pin', `env:${SECRET_VARS.so}`, '--pin', `env:${SECRET_VARS.pin}`];
    argv.push('--label', iv.label, '--dkek-shares', iv.share !== undefined ? '1' : '0', '--yes');
    captured = '';
    let rc = await runner([...json, ...argv], io);
    if (rc === 0 && iv.share !== undefined && !stopped()) {
      captured = '';
      rc = await runner(
        [...json, 'dkek', 'import', iv.share, '--sim', p, '--password', `env:${SECRET_VARS.pw}`],
        io,
      );
    }
    if (rc !== 0) {
      const e = ctx.g.json ? passedOnError(captured) : undefined;
      if (e) throw e;
      return rc;
    }
  }
  return 0;
}

/** The error of an `init`/`dkek import --json` run (its `{ error }` document) as an error of ours. */
function passedOnError(text: string): Error | undefined {
  let info: { code?: unknown; message?: unknown; fix?: unknown } | undefined;
  try {
    info = (JSON.parse(text) as { error?: typeof info }).error;
  } catch {
    return undefined;
  }
  if (!info || typeof info.code !== 'string' || typeof info.message !== 'string') return undefined;
  const fix = typeof info.fix === 'string' ? { fix: info.fix } : {};
  const message = `--init failed, nothing was started: ${info.message}`;
  if ((ERROR_CODES as readonly string[]).includes(info.code))
    return new ScHsmError(info.code as ScHsmErrorCode, message, fix);
  return new CliError(info.code as CliErrorCode, message, fix.fix);
}

/**
 * `sim run [--state FILE …] [--cards N] [--init …] -- COMMAND…`: virtual SmartCard-HSMs in pcscd
 * for the life of COMMAND (spec/pcsc-stack.md §6). As root: `unshare` runs this command again
 * inside private mount, network and PID namespaces (runInNamespace: its own pcscd with the
 * quickack route), passing only a plan file and COMMAND; stop requests go over a pipe (fd 3),
 * whose end, when this process is killed, stops COMMAND and the namespace. Without root: the
 * cards go into the system's pcscd. Exit status: COMMAND's (128 + n after signal n).
 */
export const simRun: Command = {
  ...simRunSpec,
  async run(ctx, v, positionals) {
    const innerPlan = ctx.io.env[INNER_ENV];
    if (innerPlan) {
      // only `sim run` itself sets it, for the namespace's first process: never act on the host's /run
      if (process.pid !== 1)
        throw new CliError(
          'USAGE_ERROR',
          `${INNER_ENV} is set: it belongs to sim run's own process inside its namespaces`,
          `unset ${INNER_ENV} and run sim run again`,
        );
      ctx.exitCode = await runInNamespace(innerPlan, positionals, (s) => ctx.out.note(s));
      // PID 1 of the namespaces: its status was reported and pcscd is stopped; nothing may keep it
      // (a native addon's thread, a handle of COMMAND's) from ending, or the outer run waits forever
      const code = ctx.exitCode;
      setTimeout(() => process.exit(code), 2000).unref();
      return { exitCode: ctx.exitCode };
    }
    // --sim, --reader and --trace are refused by the parser (simRunSpec.globals, globalsInstead)
    const states = list(v, 'state');
    // an empty --state is refused by the parser with every empty path option
    const cards = int(v, 'cards', 0, VPCD_SLOTS) ?? Math.max(states.length, 1);
    if (states.length > VPCD_SLOTS)
      throw new CliError('USAGE_ERROR', `vpcd has ${VPCD_SLOTS} slots: at most ${VPCD_SLOTS} --state files`);
    if (states.length > cards)
      throw new CliError(
        'USAGE_ERROR',
        `--cards ${cards} but ${states.length} --state files`,
        'give --cards at least the number of --state files (the others are fresh cards)',
      );
    const init = flag(v, 'init');
    const fresh = cards - states.length;
    if (!init) {
      const given = INIT_ONLY.filter((o) => v[o] !== undefined);
      if (given.length)
        throw new CliError(
          'USAGE_ERROR',
          `${given.map((o) => `--${o}`).join(', ')} initialize fresh cards: they need --init`,
          'add --init (the fresh cards are initialized with them), or leave them out',
        );
    } else if (fresh === 0)
      throw new CliError(
        'USAGE_ERROR',
        '--init initializes the fresh cards, and every card comes from a --state file',
        'add --cards N for more cards than --state files, or leave --init out (init --sim FILE initializes a state file)',
      );
    if (v.password !== undefined && v['dkek-share'] === undefined)
      throw new CliError(
        'USAGE_ERROR',
        '--password is the password of --dkek-share FILE',
        'add --dkek-share FILE',
      );
    const seen = new Set<string>();
    for (const s of states) {
      const real = await realpath(s).catch(() => resolve(s));
      if (seen.has(real))
        throw new CliError('USAGE_ERROR', `--state ${s} is given twice: one card per state file`);
      seen.add(real);
    }
    if (positionals.length === 0) throw new CliError('USAGE_ERROR', 'sim run needs a COMMAND after --');
    // every --init value is checked before anything starts
    const iv = init ? await initValues(ctx, v) : undefined;

    // what the host allows, said before anything starts
    const host = await checkSimHost(ctx.io.env);
    if (host.problems.length)
      throw new CliError(
        'PCSC_UNAVAILABLE',
        `sim run cannot put virtual cards into pcscd here (${host.mode === 'private' ? 'as root' : 'without root'}):\n${host.problems.map((p) => `  - ${p.what}: ${p.fix}`).join('\n')}`,
        host.problems.map((p) => p.fix).join('; '),
      );
    ctx.out.note(`sim run: ${host.gives}`);
    // a bad --profile is refused before anything starts; the inner run gets its absolute path
    let profile: string | undefined;
    if (ctx.g.profile !== undefined) {
      const { BUILTIN_PROFILES, loadProfile } = await import('../../../sim/index.js');
      const p = await loadProfile(ctx.g.profile);
      profile = ctx.g.profile in BUILTIN_PROFILES ? ctx.g.profile : resolve(ctx.g.profile);
      ctx.out.note(
        `sim run: timing profile ${p.name}: every answer takes the modelled time of the real device`,
      );
    }
    // each state file is opened (and so checked: exists, readable, not held) before anything starts
    for (const s of states) await (await openSimCard(ctx, s).catch((e) => busyForSimRun(e, s))).close();

    // Stop requests are taken before anything is made, so that whatever exists is removed (by
    // ctx.finish) when one comes: SIGTERM and SIGHUP always, SIGINT until COMMAND runs (from then
    // on Ctrl-C reaches COMMAND from the terminal itself, and sim run waits for it).
    const stop = stopRequests();
    ctx.onFinish(async () => stop.dispose());
    const stoppedExit = () => {
      const s = stop.signal!;
      ctx.out.note(`sim run: ${s} before COMMAND started; everything made so far is removed`);
      ctx.exitCode = 128 + (osConstants.signals[s] ?? 0);
      return { exitCode: ctx.exitCode, started: false };
    };
    const dir = await mkdtemp(join(tmpdir(), RUN_DIR_PREFIX));
    // removed when sim run ends, and by the guardian when it is killed (SIGKILL included)
    const unguard = guardRunDir(dir);
    ctx.onFinish(async () => {
      try {
        await rm(dir, { recursive: true, force: true });
      } finally {
        unguard();
      }
    });
    if (stop.signal) return stoppedExit();
    const freshPaths = Array.from({ length: fresh }, (_, i) => join(dir, `card-${states.length + i}.json`));
    if (iv) {
      const rc = await initCards(ctx, iv, freshPaths, () => stop.signal !== undefined);
      if (stop.signal) return stoppedExit();
      if (rc !== 0) {
        ctx.out.warn('sim run: --init failed (above); nothing was started');
        ctx.exitCode = rc;
        return { exitCode: rc, started: false };
      }
    } else {
      const { VirtualSmartCardHsm } = await import('../../../sim/index.js');
      for (const p of freshPaths) {
        const c = await VirtualSmartCardHsm.open(p, { create: true });
        await c.save(p);
        await c.close();
      }
    }
    if (stop.signal) return stoppedExit();
    const all = [...states.map((s) => resolve(s)), ...freshPaths];
    const readers = all.map((_, i) => vpcdReaderName(i));
    // an outer SC_HSM_PKCS11_MODULE is one of the kit's variables: dropped, like the others
    const module = await findPkcs11Module({ ...ctx.io.env, SC_HSM_PKCS11_MODULE: undefined });
    const env: Record<string, string> = {
      PCSCLITE_CSOCK_NAME: PCSCD_SOCKET,
      SC_HSM_READERS: readers.join('\n'),
      ...(readers[0] !== undefined && { SC_HSM_READER: readers[0] }),
      SC_HSM_SIM_RUN: host.mode,
      // where a test plugs in a card of its own (sc-hsm-ts/testing startPcscCard; with-pcscd.sh's name)
      VPCD_HOST: host.mode === 'private' ? '127.0.0.2' : '127.0.0.1',
      ...Object.fromEntries(readers.map((r, i) => [`SC_HSM_READER_${i}`, r])),
      ...(module !== undefined && { SC_HSM_PKCS11_MODULE: module }),
    };
    if (readers.length)
      ctx.out.note(
        `sim run: ${readers.map((r, i) => `${r} = ${i < states.length ? states[i] : 'fresh card'}`).join(', ')}`,
      );
    let rc: number;
    if (host.mode === 'private')
      rc = await runPrivate(
        ctx.io,
        {
          states: all,
          dir,
          env,
          hostPid: process.pid,
          stdoutToStderr: ctx.g.json,
          ...(profile !== undefined && { profile }),
        },
        positionals,
        stop,
        childEnv(ctx.io.env, v),
      );
    else
      rc = await cardsAndCommand({
        states: all,
        host: '127.0.0.1',
        command: positionals,
        profile,
        env: { ...childEnv(ctx.io.env, v), ...env },
        note: (s) => ctx.out.note(s),
        stdoutToStderr: ctx.g.json,
        onStop: (fn) => stop.forwardTo(fn),
      });
    ctx.exitCode = rc;
    return { exitCode: rc, mode: host.mode, readers, ...(module !== undefined && { pkcs11Module: module }) };
  },
};

/**
 * Runs this command again under `unshare` (the inner run, see runInNamespace) and waits for it.
 * SIGTERM and SIGHUP are passed on over fd 3; SIGINT reaches everything from the terminal.
 */
async function runPrivate(
  io: CliIo,
  plan: InnerPlan,
  command: string[],
  stop: StopRequests,
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const planPath = join(plan.dir, 'plan.json');
  await writeFile(planPath, JSON.stringify(plan), { mode: 0o600, flag: 'wx' });
  // the mount point of the private tmpfs (spec §6); pcscd makes it on the host anyway
  await mkdir('/run/pcscd', { recursive: true });
  const self = process.argv[1];
  if (!self)
    throw new CliError('INTERNAL_ERROR', 'sim run: cannot tell which program to run inside the namespaces');
  const child = spawn(
    'unshare',
    [
      '--mount',
      '--net',
      '--pid',
      '--fork',
      '--mount-proc',
      '--kill-child',
      '--',
      process.execPath,
      ...process.execArgv,
      self,
      'sim',
      'run',
      '--',
      ...command,
    ],
    {
      stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
      env: { ...env, [INNER_ENV]: planPath },
    },
  );
  const ctl = child.stdio[3] as import('node:stream').Duplex;
  ctl.on('error', () => undefined);
  // the inner run's report of COMMAND's exit status; none: it was killed (SIGKILL is the only
  // signal that kills a namespace's PID 1 without a handler) and unshare's own status means nothing
  let report = '';
  ctl.setEncoding('utf8');
  ctl.on('data', (d: string) => {
    report += d;
  });
  stop.forwardTo((s) => ctl.write(`${s}\n`));
  return await new Promise<number>((resolvePromise, reject) => {
    child.once('error', (e) =>
      reject(
        new CliError('PCSC_UNAVAILABLE', `cannot start unshare: ${e.message}`, 'apt-get install util-linux'),
      ),
    );
    child.once('close', (code, signal) => {
      const m = new RegExp(`^${EXIT_REPORT}(\\d+)$`, 'm').exec(report);
      if (m) return resolvePromise(Number(m[1]));
      // the inner run held the state files in this process's name: released here, not left stale
      releaseLocksOfDeadInner(plan.states);
      io.stderr.write(
        `sc-hsm-ts: sim run's process inside the namespaces ended without COMMAND's status (unshare: ${signal ?? `exit ${code}`}); it was killed: COMMAND, pcscd and the cards went with it\n`,
      );
      resolvePromise(signal ? exitStatus(null, signal) : 137);
    });
  });
}

/**
 * A --state file another live process holds (READER_BUSY): the fix names what works for sim run
 * (which takes the file itself and refuses --reader). A stale lock keeps its own fix.
 */
function busyForSimRun(e: unknown, state: string): never {
  if (e instanceof CliError && e.code === 'READER_BUSY' && /--reader/.test(e.fix ?? ''))
    throw new CliError(
      'READER_BUSY',
      e.message,
      `stop the process that holds ${state} (a sim serve holds its file until it is stopped) and run sim run again, or give sim run a copy of the file (--state COPY) or a fresh card (--cards N)`,
    );
  throw e;
}

/**
 * Removes the locks of `states` whose holder record names this process (the inner run holds them
 * in the host pid's name, see InnerPlan.hostPid): called once the inner run was killed, whose
 * locks would otherwise stay held by this live pid, then stale for STATE_LOCK_STALE_MS.
 */
function releaseLocksOfDeadInner(states: string[]): void {
  for (const s of states) {
    try {
      const c = canonicalStatePath(s);
      const h = readStateFileHolder(c);
      if (h?.pid !== process.pid || h.host !== hostname()) continue;
      unlinkSync(`${c}.lock.holder`);
      rmdirSync(`${c}.lock`);
    } catch {
      // no lock, or not ours
    }
  }
}

/** The variables `sim run` sets for COMMAND; any from outside are dropped first (a stale reader name). */
const KIT_VARS = /^(SC_HSM_(READERS?|READER_\d+|SIM_RUN|PKCS11_MODULE)|VPCD_HOST|PCSCLITE_CSOCK_NAME)$/;

/**
 * The environment a child of `sim run` starts from: this one without the inner run's marker, the
 * kit's own variables, and every variable an `env:NAME` secret of --so-pin, --pin or --password
 * named (a secret never reaches a child's environment).
 */
function childEnv(env: NodeJS.ProcessEnv, v: Parameters<Command['run']>[1]): NodeJS.ProcessEnv {
  const e = stripInner(env);
  for (const k of Object.keys(e)) if (KIT_VARS.test(k)) delete e[k];
  for (const o of ['so-pin', 'pin', 'password'] as const) {
    const spec = v[o];
    if (typeof spec === 'string' && spec.startsWith('env:')) delete e[spec.slice(4)];
  }
  return e;
}

/** Stop requests (signals) to this process while `sim run` runs: recorded, then passed on. */
interface StopRequests {
  /** The first stop request, once one came. */
  readonly signal: NodeJS.Signals | undefined;
  /** From now on stop requests go to `fn` (COMMAND runs; one that came before is passed at once). */
  forwardTo(fn: (s: NodeJS.Signals) => void): void;
  dispose(): void;
}

function stopRequests(): StopRequests {
  let signal: NodeJS.Signals | undefined;
  let forward: ((s: NodeJS.Signals) => void) | undefined;
  const onSignal = (s: NodeJS.Signals) => {
    signal ??= s;
    forward?.(s);
  };
  // once COMMAND runs, Ctrl-C reaches it from the terminal: sim run waits for it
  const onInt = () => {
    if (!forward) onSignal('SIGINT');
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  process.on('SIGINT', onInt);
  return {
    get signal() {
      return signal;
    },
    forwardTo(fn) {
      forward = fn;
      if (signal) fn(signal);
    },
    dispose() {
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onSignal);
      process.off('SIGINT', onInt);
    },
  };
}

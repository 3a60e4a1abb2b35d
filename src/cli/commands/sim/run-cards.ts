/**
 * The part of `sim run` that holds the virtual cards and COMMAND: each card opened from its
 * state file (held, saved before every answer that changed it) and plugged into vpcd slot i,
 * COMMAND started once pcscd has every card, stop requests passed on to COMMAND, and everything
 * closed whatever COMMAND does. Used inside the private namespaces and, without root, beside
 * the system's pcscd. `runInNamespace` is the inside of the namespaces: a tmpfs on /run/pcscd,
 * loopback with the quickack route, pcscd (spec/pcsc-stack.md §1, §5, §6; scripts/with-pcscd.sh).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { openSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { constants } from 'node:os';
import { basename, dirname, resolve as resolvePath } from 'node:path';
import type { VirtualSmartCardHsm } from '../../../sim/index.js';
import { connectToVpcd, type VpcdCard, type VpcdConnection } from '../../../sim/vpcd.js';
import { CliError } from '../../exit-codes.js';
import { PCSCD_SOCKET, VPCD_PORT, VPCD_SLOTS, vpcdReaderName } from './host.js';

/** Environment variable naming the inner run's plan file (set only by `sim run` for its own child). */
export const INNER_ENV = 'SC_HSM_TS_SIM_RUN_INNER';

/** What the inner run gets from the outer one (a 0600 file in the run's 0700 directory). */
export interface InnerPlan {
  states: string[];
  /** Directory of the run (fresh cards' states, pcscd's log), removed by the outer run. */
  dir: string;
  /** Environment for COMMAND, beyond the inherited one. */
  env: Record<string, string>;
  /** `--profile NAME|FILE` (checked by the outer run), for every card. */
  profile?: string;
  /** The outer run's pid: the holder of the state files' locks as the host sees it. */
  hostPid?: number;
  /** `--json`: COMMAND's standard output goes to standard error (stdout holds sim run's document). */
  stdoutToStderr?: boolean;
}

/** How long pcscd may take to adopt a card (its presence poll is ~0.4 s; spec §6). */
const ADOPT_MS = 30_000;
/** How long the slot's previous card may stay listed after its link closed (a few presence polls). */
const EMPTY_MS = 5_000;
/** How long COMMAND has after a stop request before it is killed. */
const KILL_AFTER_MS = 10_000;

/** COMMAND's end as a shell reports it: its code, or 128 + the signal's number. */
export function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal ? constants.signals[signal] : undefined;
  return 128 + (n ?? 0);
}

/**
 * `card` as vpcd sees it, plus `ready`: resolves when pcscd has powered the card on and read its
 * ATR after that (the card is in). Everything else is the card's own, its timing profile's
 * waiting (`answerReady`, `--profile` or `card.profile` set later) included.
 */
export function watched(card: VpcdCard): { card: VpcdCard; ready: Promise<void> } {
  let powered = false;
  let settle!: () => void;
  const ready = new Promise<void>((r) => {
    settle = r;
  });
  return {
    ready,
    card: {
      get atr() {
        if (powered) settle();
        return card.atr;
      },
      process: (apdu) => card.process(apdu),
      powerOn() {
        powered = true;
        card.powerOn();
      },
      powerOff: () => card.powerOff(),
      reset: () => card.reset(),
      // read at each answer: a profile set after plugging in (startPcscCard's card) counts too
      answerReady: () => card.answerReady?.(),
    },
  };
}

/** Whether vpcd at `host` is this machine's: only then do the local pcscd's readers tell about it. */
export function localVpcd(host: string): boolean {
  return /^127\./.test(host) || host === 'localhost';
}

/**
 * The vpcd slots whose reader the local pcscd lists with a card now; undefined when pcscd cannot
 * be asked here.
 */
export async function slotsShowingCards(): Promise<Set<number> | undefined> {
  const { listReaders } = await import('../../../sc-hsm/open-pcsc.js');
  let readers: { name: string; cardPresent?: boolean }[];
  try {
    readers = await listReaders({ probe: false });
  } catch {
    return undefined;
  }
  const shown = new Set<number>();
  for (let slot = 0; slot < VPCD_SLOTS; slot++)
    if (readers.find((r) => r.name === vpcdReaderName(slot))?.cardPresent === true) shown.add(slot);
  return shown;
}

/**
 * Resolves once pcscd lists the slot's reader without a card (or cannot be asked, or vpcd is on
 * another host). vpcd checks presence by asking its connection for the ATR; when the previous
 * card's link has just closed and ours is already waiting, one poll drops the old link and takes
 * ours, so pcscd never sees the slot empty: it keeps the old card's state, never powers ours on,
 * and the next client talks to a card it believes is the old one (measured: a test card closed and
 * another plugged in at once on slot 0 was never powered on). Waiting for "empty" first makes
 * every card a fresh insertion. A card still listed after EMPTY_MS is a live one:
 * PCSC_UNAVAILABLE naming the reader.
 */
async function slotEmpty(host: string, port: number): Promise<void> {
  if (!localVpcd(host)) return;
  const slot = port - VPCD_PORT;
  const end = Date.now() + EMPTY_MS;
  for (;;) {
    // no PC/SC to ask here: the adoption wait after this says what is wrong
    const shown = await slotsShowingCards();
    if (!shown?.has(slot)) return;
    if (Date.now() > end)
      throw new CliError(
        'PCSC_UNAVAILABLE',
        `${vpcdReaderName(slot)} has shown a card for ${EMPTY_MS / 1000} s before ours was plugged in: another virtual card holds vpcd port ${port}`,
        'stop the other card (sim serve, another sim run or test card), or run under sim run as root (a private pcscd)',
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Connects `card` to vpcd at `host:port` and resolves once pcscd has it (powered on and its ATR
 * read); PCSC_UNAVAILABLE naming the likely cause when that does not happen within 30 s (another
 * card on the slot: a second card waits silently, spec §2). The link is closed on failure.
 */
export async function plugIn(
  card: VpcdCard,
  host: string,
  port: number,
  o: { keepAlive?: boolean; freshPcscd?: boolean } = {},
): Promise<VpcdConnection> {
  // a pcscd started for this run has never held a card: nothing to wait for, and no PC/SC context
  // (pcsclite's threads) in a process whose pcscd is stopped before it exits
  if (!o.freshPcscd) await slotEmpty(host, port);
  const w = watched(card);
  const link = connectToVpcd(w.card, {
    host,
    port,
    ...(o.keepAlive !== undefined && { keepAlive: o.keepAlive }),
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      w.ready,

      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new CliError(
                'PCSC_UNAVAILABLE',
                `pcscd did not take the virtual card on vpcd ${host}:${port} within ${ADOPT_MS / 1000} s`,
                'another virtual card probably holds that vpcd slot (sim serve, another sim run without root), or no pcscd with vpcd runs there: stop the other card, or run under sim run as root',
              ),
            ),
          ADOPT_MS,
        );
      }),
    ]);
    return link;
  } catch (e) {
    await link.close();
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

export interface CardsAndCommand {
  states: string[];
  /** vpcd's address: 127.0.0.2 inside the namespaces (quickack route), else 127.0.0.1. */
  host: string;
  command: string[];
  env: NodeJS.ProcessEnv;
  note: (s: string) => void;
  /** `--profile NAME|FILE`: every card answers as slowly as the modelled device. */
  profile?: string | undefined;
  /** Called with the function that passes a stop request (a signal) on to COMMAND. */
  onStop: (stop: (signal: NodeJS.Signals) => void) => void;
  /** The pid named in the state files' lock records (inside the namespaces: the outer run's). */
  holderPid?: number | undefined;
  /** The pcscd was started for this run (inside the namespaces): its slots were never used. */
  freshPcscd?: boolean | undefined;
  /** COMMAND's standard output to standard error (`--json`: stdout holds sim run's one document). */
  stdoutToStderr?: boolean | undefined;
}

/**
 * Plugs the cards in, runs COMMAND to its end, unplugs and closes the cards; COMMAND's exit
 * status (see {@link exitStatus}). A card pcscd does not take, COMMAND that cannot start: errors
 * after the cards were closed.
 */
export async function cardsAndCommand(o: CardsAndCommand): Promise<number> {
  const { VirtualSmartCardHsm, loadProfile } = await import('../../../sim/index.js');
  const profile = o.profile === undefined ? undefined : await loadProfile(o.profile);
  const cards: VirtualSmartCardHsm[] = [];
  const links: VpcdConnection[] = [];
  let child: ChildProcess | undefined;
  let stopped: NodeJS.Signals | undefined;
  o.onStop((sig) => {
    stopped ??= sig;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill(sig);
      setTimeout(() => child?.kill('SIGKILL'), KILL_AFTER_MS).unref();
    }
  });
  try {
    for (const [i, state] of o.states.entries()) {
      const card = await VirtualSmartCardHsm.open(state, {
        command: 'sc-hsm-ts sim run',
        waitMs: 0,
        ...(o.holderPid !== undefined && { holderPid: o.holderPid }),
      });
      cards.push(card);
      if (profile) card.profile = profile;
      links.push(await plugIn(card, o.host, VPCD_PORT + i, { freshPcscd: o.freshPcscd === true }));
    }
    if (stopped) return 128 + (constants.signals[stopped] ?? 0);
    const [file, ...args] = o.command;
    const c = spawn(file!, args, {
      stdio: ['inherit', o.stdoutToStderr ? 2 : 'inherit', 'inherit'],
      env: o.env,
    });
    child = c;
    return await new Promise<number>((resolve) => {
      // as a shell says it: 127 not found, 126 not executable
      c.once('error', (e: NodeJS.ErrnoException) => {
        o.note(`sim run: cannot start COMMAND '${file}': ${e.code ?? e.message}`);
        resolve(e.code === 'ENOENT' ? 127 : 126);
      });
      c.once('exit', (code, signal) => resolve(exitStatus(code, signal)));
    });
  } finally {
    for (const l of links) await l.close().catch(() => undefined);
    for (const c of cards) await c.close().catch(() => undefined);
  }
}

function must(cmd: string, args: string[], what: string): void {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0)
    throw new CliError(
      'PCSC_UNAVAILABLE',
      `cannot ${what}: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`,
      'sim run needs root and the host tools (sc-hsm-ts doctor checks them)',
    );
}

/**
 * Inside `unshare --mount --net --pid --fork --mount-proc` (this process is the namespace's
 * PID 1: when it ends, every process left in it ends): a private /run/pcscd, loopback with the
 * quickack route for 127.0.0.2, pcscd in the foreground (never --auto-exit), the cards and
 * COMMAND, then pcscd stopped. Stop requests come from the outer `sim run` over fd 3, one signal
 * name a line; its end (the outer run killed) stops COMMAND too.
 */
export async function runInNamespace(
  planPath: string,
  command: string[],
  note: (s: string) => void,
): Promise<number> {
  const plan = JSON.parse(await readFile(planPath, 'utf8')) as InnerPlan;
  const { Socket } = await import('node:net');
  // both ways: stop requests in, COMMAND's exit status out (a socketpair, as Node makes 'pipe')
  const ctl = new Socket({ fd: 3, readable: true, writable: true });
  let stop: (sig: NodeJS.Signals) => void = () => undefined;
  let pending: NodeJS.Signals | undefined;
  const request = (sig: NodeJS.Signals) => {
    pending ??= sig;
    stop(sig);
  };
  ctl.setEncoding('utf8');
  ctl.on('data', (d: string) => {
    for (const s of d.split('\n')) if (/^SIG[A-Z]+$/.test(s)) request(s as NodeJS.Signals);
  });
  ctl.on('error', () => undefined);
  ctl.on('close', () => request('SIGTERM'));
  // a terminal's Ctrl-C reaches COMMAND itself; as PID 1 this process must not die of it
  const onSignal = (sig: NodeJS.Signals) => request(sig);
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal);
  let pcscd: ChildProcess | undefined;
  let rc: number | undefined;
  try {
    must('mount', ['-t', 'tmpfs', '-o', 'mode=0755', 'tmpfs', '/run/pcscd'], 'mount a tmpfs on /run/pcscd');
    must('ip', ['link', 'set', 'lo', 'up'], 'bring up lo in the private network namespace');
    // spec §5: the card side ACKs at once, so vpcd's Nagle-held payload leaves at once (44 ms → 0.2 ms)
    must(
      'ip',
      ['route', 'add', 'local', '127.0.0.2/32', 'dev', 'lo', 'table', 'local', 'quickack', '1'],
      'add the quickack route',
    );
    const log = `${plan.dir}/pcscd.log`;
    const fd = openSync(log, 'a', 0o600);
    // a minimal environment: pcscd needs nothing of COMMAND's
    pcscd = spawn('pcscd', ['--foreground'], {
      stdio: ['ignore', fd, fd],
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    const p = pcscd;
    let ended = false;
    p.once('exit', () => {
      ended = true;
    });
    for (let i = 0; i < 100 && !ended; i++) {
      if ((await stat(PCSCD_SOCKET).catch(() => undefined))?.isSocket()) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (ended || !(await stat(PCSCD_SOCKET).catch(() => undefined))) {
      const text = await readFile(log, 'utf8').catch(() => '');
      throw new CliError(
        'PCSC_UNAVAILABLE',
        `the private pcscd did not start within 5 s; its log:\n${text.trim()}`,
        'sc-hsm-ts doctor checks the host',
      );
    }
    note(
      `private pcscd ready (pid ${p.pid} in the namespace); plugging in ${plan.states.length} virtual card(s)`,
    );
    rc = await cardsAndCommand({
      states: plan.states,
      host: '127.0.0.2',
      command,
      profile: plan.profile,
      holderPid: plan.hostPid,
      freshPcscd: true,
      stdoutToStderr: plan.stdoutToStderr,
      env: { ...stripInner(process.env), ...plan.env },
      note,
      onStop: (fn) => {
        stop = fn;
        if (pending) fn(pending);
      },
    });
    return rc;
  } finally {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, onSignal);
    if (pcscd && pcscd.exitCode === null && pcscd.signalCode === null) {
      const p = pcscd;
      await new Promise<void>((r) => {
        p.once('exit', () => r());
        p.kill('SIGTERM');
      });
    }
    // The run's directory (fresh cards with their PINs, the plan, pcscd's log) goes with this
    // process too: the outer run removes it as well, but may have been killed (SIGKILL).
    await removeRunDir(planPath, plan.dir);
    // the outer run tells "COMMAND ended with rc" from "this process was killed" (unshare cannot)
    if (rc !== undefined && !ctl.destroyed)
      await new Promise<void>((r) => ctl.end(`${EXIT_REPORT}${rc}\n`, r));
    ctl.destroy();
  }
}

/** The inner run's last line on fd 3: COMMAND's exit status follows. */
export const EXIT_REPORT = 'EXIT ';

/** The prefix of every `sim run` directory (made by mkdtemp in the temporary directory). */
export const RUN_DIR_PREFIX = 'sc-hsm-ts-sim-run-';

/** Removes `dir` when it is a `sim run` directory holding `planPath`; never anything else. */
async function removeRunDir(planPath: string, dir: string): Promise<void> {
  if (!basename(dir).startsWith(RUN_DIR_PREFIX) || dirname(resolvePath(planPath)) !== resolvePath(dir))
    return;
  await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}

/**
 * Starts a guardian of the run directory `dir` (fresh cards with their PINs, DKEK and private
 * keys): a detached `/bin/sh` that waits on a pipe only this process holds and removes `dir` once
 * the pipe closes, however this process ends (SIGKILL before or during --init included: the
 * directory is made before the namespaces, and only a living process can remove it). Returns the
 * release: closes the pipe (the guardian then removes whatever is left, normally nothing).
 */
export function guardRunDir(dir: string): () => void {
  if (!basename(dir).startsWith(RUN_DIR_PREFIX)) throw new Error(`not a sim run directory: ${dir}`);
  // forked off once more: no child of ours (a test's process tree, a kill of our children leaves
  // it), with the pipe as fd 3 (an asynchronous list's stdin is /dev/null)
  const script = '{ while read -r _ <&3; do :; done; rm -rf -- "$1"; } 3<&3 & exit 0';
  const g = spawn('/bin/sh', ['-c', script, 'sh', dir], {
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    detached: true, // its own session: a terminal's Ctrl-C or a kill of our group leaves it to clean up
    cwd: '/',
    // nothing of this process's environment (the --init secrets' variables are in it)
    env: { PATH: '/usr/bin:/bin' },
  });
  g.on('error', () => undefined);
  g.unref();
  const pipe = g.stdio[3] as import('node:net').Socket;
  pipe.on('error', () => undefined);
  // the pipe must not keep this process alive
  pipe.unref();
  return () => pipe.destroy();
}

/** The environment without the inner run's marker (COMMAND may run `sim run` itself). */
export function stripInner(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const e = { ...env };
  delete e[INNER_ENV];
  return e;
}

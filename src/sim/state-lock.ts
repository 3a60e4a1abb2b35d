/**
 * One holder at a time for a virtual card's state file: the file is a device, and two processes
 * working on one copy each lose keys and un-count PIN tries. The lock is proper-lockfile's (an
 * atomic `mkdir` of `FILE.lock`, its mtime refreshed every {@link STATE_LOCK_UPDATE_MS} while held,
 * removed on release and on any exit that runs JavaScript); a lock whose holder was killed
 * (SIGKILL, power loss) is taken over once it has not been refreshed for {@link STATE_LOCK_STALE_MS}.
 * Beside it, `FILE.lock.holder` names the holder (pid, host, command, since) for the error a
 * second process gets. proper-lockfile is loaded on first use (cold-start benchmark).
 */
import { readFileSync, realpathSync, statSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { ScHsmError } from '../errors.js';
import { writeAtomicSync } from '../util/host-files.js';

/**
 * A lock not refreshed for this long belongs to a dead process and is taken over. Longer than the
 * longest synchronous step a holder makes (an RSA-4096 key generation in the virtual card takes
 * 0.5–5 s on a busy machine), during which it cannot refresh.
 */
export const STATE_LOCK_STALE_MS = 30_000;
/** How often a holder refreshes its lock. */
export const STATE_LOCK_UPDATE_MS = 5_000;
/** How long {@link lockStateFile} waits for another holder by default. */
export const DEFAULT_STATE_LOCK_WAIT_MS = 10_000;
const POLL_MS = 100;

/** Who holds a state file, as its holder recorded it. */
export interface StateFileHolder {
  pid: number;
  host: string;
  /** What the holder is, e.g. `sc-hsm-ts keygen` (never its arguments: they may hold secrets). */
  command: string;
  /** ISO 8601 time the lock was taken. */
  since: string;
}

export interface StateLockOptions {
  /** How long to wait for another holder, in ms (default {@link DEFAULT_STATE_LOCK_WAIT_MS}; 0 = not at all). */
  waitMs?: number;
  /** Recorded for others to see (default `node` and the script name). */
  command?: string;
  /**
   * The pid recorded for others to see and to tell a dead holder by (default this process's). A
   * process in its own PID namespace (`sim run` as root) gives the host pid that stands for it.
   */
  holderPid?: number;
  /** Called once when the file is held by another process and the wait begins. */
  onWait?: (holder: StateFileHolder | undefined) => void;
  /** Called when the lock was lost while held (its refresh failed, or another process took it over). */
  onCompromised?: (e: Error) => void;
}

/** A held lock on a state file. */
export interface StateFileLock {
  /** The canonical path of the state file (symbolic links of the file and its directory resolved). */
  readonly path: string;
  /** Releases the lock (idempotent). */
  release(): Promise<void>;
}

function errnoOf(e: unknown): string {
  return (e as NodeJS.ErrnoException)?.code ?? 'error';
}

/**
 * The canonical path of a state file that may not exist yet: realpath of the file, or of its
 * directory plus the name. HOST_FILE_NOT_FOUND when the directory does not exist,
 * INVALID_STATE_FILE when `path` is a directory or a device.
 */
export function canonicalStatePath(path: string): string {
  try {
    const real = realpathSync(path);
    // a directory or a device is no state file (and FILE.lock must not appear beside /dev/null)
    if (!statSync(real).isFile())
      throw new ScHsmError(
        'INVALID_STATE_FILE',
        `${path} is not a virtual card state file (not a regular file)`,
      );
    return real;
  } catch (e) {
    if (e instanceof ScHsmError) throw e;
    if (errnoOf(e) !== 'ENOENT') {
      throw new ScHsmError('IO_ERROR', `cannot resolve the virtual card state path ${path} (${errnoOf(e)})`, {
        cause: e,
      });
    }
  }
  const dir = dirname(resolve(path));
  let real: string;
  try {
    real = realpathSync(dir);
  } catch (e) {
    throw new ScHsmError(
      'HOST_FILE_NOT_FOUND',
      `the directory ${dir} of the virtual card state ${path} does not exist`,
      { cause: e },
    );
  }
  if (!statSync(real).isDirectory())
    throw new ScHsmError(
      'HOST_FILE_NOT_FOUND',
      `${dir} (for the virtual card state ${path}) is not a directory`,
    );
  return join(real, basename(path));
}

const holderFile = (canonical: string) => `${canonical}.lock.holder`;

/** The holder record beside a lock, when there is a readable one. */
export function readStateFileHolder(canonical: string): StateFileHolder | undefined {
  try {
    const o = JSON.parse(readFileSync(holderFile(canonical), 'utf8')) as Partial<StateFileHolder>;
    if (typeof o.pid !== 'number' || typeof o.host !== 'string' || typeof o.command !== 'string')
      return undefined;
    return {
      pid: o.pid,
      host: o.host,
      command: o.command,
      since: typeof o.since === 'string' ? o.since : '?',
    };
  } catch {
    return undefined;
  }
}

/** False only when the holder is on this host and its process is gone. */
function holderAlive(h: StateFileHolder): boolean {
  if (h.host !== hostname()) return true;
  try {
    process.kill(h.pid, 0);
    return true;
  } catch (e) {
    return errnoOf(e) !== 'ESRCH';
  }
}

/** "pid 123 (sc-hsm-ts keygen) on host, since …" */
export function describeHolder(h: StateFileHolder | undefined): string {
  if (!h) return 'another process';
  const host = h.host === hostname() ? '' : ` on ${h.host}`;
  return `pid ${h.pid} (${h.command})${host} since ${h.since}`;
}

/**
 * True when this process runs inside `sim run` (its COMMAND, which gets SC_HSM_SIM_RUN, or sim
 * run's own inner process) and `h` is sim run: its pid is a host pid, not visible in sim run's PID
 * namespace, so "no longer running" would be false and removing the lock would give the file two
 * holders.
 */
function heldBySimRunAroundUs(h: StateFileHolder, env: NodeJS.ProcessEnv): boolean {
  return (
    /\bsim run$/.test(h.command) &&
    (env.SC_HSM_SIM_RUN !== undefined || env.SC_HSM_TS_SIM_RUN_INNER !== undefined)
  );
}

function lockedError(
  path: string,
  canonical: string,
  waitedMs: number,
  env: NodeJS.ProcessEnv = process.env,
): ScHsmError {
  const h = readStateFileHolder(canonical);
  const waited = `waited ${Math.round(waitedMs / 100) / 10} s`;
  if (h && heldBySimRunAroundUs(h, env))
    return new ScHsmError(
      'READER_BUSY',
      `the virtual card ${path} is held by \`sim run\` (pid ${h.pid} on the host, since ${h.since}; this process runs inside a sim run, whose PID namespace hides that pid): a sim run plugs its card into its reader, and --sim cannot open the file a second time; ${waited}`,
      {
        fix: `when it is this sim run's card, give it to the command through the reader: --reader "$SC_HSM_READER" instead of --sim ${path}; otherwise wait for that sim run to end (never remove ${canonical}.lock: sim run holds it)`,
      },
    );
  let why = `the virtual card ${path} is in use by ${describeHolder(h)}`;
  // a dead holder: waiting for "that command to end" is no advice, the lock's expiry is
  let fix: string | undefined;
  if (h && !holderAlive(h)) {
    let expires = '';
    let inS: number | undefined;
    try {
      const at = statSync(`${canonical}.lock`).mtimeMs + STATE_LOCK_STALE_MS;
      expires = ` at ${new Date(at).toISOString()}`;
      inS = Math.max(1, Math.ceil((at - Date.now()) / 1000));
    } catch {
      // released meanwhile
    }
    why += `, which is no longer running: its lock expires${expires} (${STATE_LOCK_STALE_MS / 1000} s after it stopped)`;
    fix = `run the command again once the stale lock has expired${inS === undefined ? '' : ` (in about ${inS} s)`}; or, only when you are sure no process uses ${path}, remove its lock directory: rmdir ${canonical}.lock`;
  }
  return new ScHsmError('READER_BUSY', `${why}; ${waited}`, fix ? { fix } : {});
}

/**
 * Takes the lock on the state file `path` (which need not exist; its directory must), waiting up
 * to `waitMs` for another holder. READER_BUSY naming the holder when it stays held,
 * HOST_FILE_NOT_FOUND when the directory is missing, IO_ERROR when the lock cannot be made (e.g. a
 * read-only directory).
 */
export async function lockStateFile(path: string, o: StateLockOptions = {}): Promise<StateFileLock> {
  const canonical = canonicalStatePath(path);
  const { lock } = await import('proper-lockfile');
  const waitMs = o.waitMs ?? DEFAULT_STATE_LOCK_WAIT_MS;
  const start = Date.now();
  let waiting = false;
  for (;;) {
    let release: () => Promise<void>;
    let compromised = false;
    try {
      release = await lock(canonical, {
        realpath: false,
        stale: STATE_LOCK_STALE_MS,
        update: STATE_LOCK_UPDATE_MS,
        retries: 0,
        onCompromised: (e) => {
          compromised = true;
          o.onCompromised?.(e);
        },
      });
    } catch (e) {
      if (errnoOf(e) !== 'ELOCKED') {
        throw new ScHsmError(
          'IO_ERROR',
          `cannot lock the virtual card state ${path} (${errnoOf(e)}): its directory must be writable`,
          { cause: e },
        );
      }
      const waited = Date.now() - start;
      if (waited >= waitMs) throw lockedError(path, canonical, waited);
      if (!waiting) {
        waiting = true;
        o.onWait?.(readStateFileHolder(canonical));
      }
      await new Promise((r) => setTimeout(r, Math.min(POLL_MS, waitMs - waited)));
      continue;
    }
    const holder: StateFileHolder = {
      pid: o.holderPid ?? process.pid,
      host: hostname(),
      command: o.command ?? `node ${basename(process.argv[1] ?? '')}`.trim(),
      since: new Date().toISOString(),
    };
    try {
      writeAtomicSync(holderFile(canonical), `${JSON.stringify(holder)}\n`, 0o644);
    } catch {
      // the record only serves error messages
    }
    let released = false;
    return {
      path: canonical,
      async release() {
        if (released) return;
        released = true;
        try {
          // a lock taken over by another process has that process's record beside it
          if (!compromised) unlinkSync(holderFile(canonical));
        } catch {
          // not written, or removed already
        }
        await release().catch(() => undefined);
      },
    };
  }
}

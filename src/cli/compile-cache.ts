/**
 * V8's code cache for the command's bundle (dist/cli-main.cjs): Node 20 has no compile cache of
 * its own (`module.enableCompileCache` came in 22.1), so dist/cli.cjs compiles the bundle through
 * `vm.Script` with the bytes V8 produced after an earlier run — the parse and the compilation of
 * every function that run used are skipped (cold start: bench/startup.bench.ts; README, Design,
 * "Start-up").
 *
 * The cache cannot go stale and cannot be planted:
 *  - its name spells out everything it depends on: the bundle's device, inode, size and change
 *    time in nanoseconds (any rewrite or replacement of the file changes the ctime, which no
 *    program can set back; a bundle changed within a second of a run makes no cache, so that two
 *    writes in one tick of the file system's clock cannot share a name), Node's version, its
 *    architecture and its flags. V8 checks the
 *    source length, its version and its flags again and rejects what does not fit
 *    (`cachedDataRejected`), and then the bundle is compiled from its source as without a cache;
 *  - it lives in `$XDG_CACHE_HOME/sc-hsm-ts` (default `~/.cache/sc-hsm-ts`), a directory of the
 *    user's own: it and the file are used only when they are not symbolic links, belong to the
 *    user running the command and are writable by nobody else. The file is written whole under a
 *    temporary name and renamed (mode 0600); the caches of 8 bundles are kept (older go).
 *  - `SC_HSM_TS_COMPILE_CACHE=0` turns it off; so does a system without user ids (Windows).
 * Every failure of the cache (no home, a read-only disk, a foreign directory) only means the
 * bundle is compiled from its source.
 */
import * as nodeBuffer from 'node:buffer';
import {
  closeSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

/** `buffer.isAscii` (Node 20.6+). */
const isAscii = (nodeBuffer as { isAscii?: (b: Uint8Array) => boolean }).isAscii;

/** Environment variable: `0` turns the code cache off. */
export const COMPILE_CACHE_ENV = 'SC_HSM_TS_COMPILE_CACHE';

const PREFIX = 'cli-';
const SUFFIX = '.v8cache';

/** What {@link runBundle} did, for the tests. */
export interface BundleRun {
  /** The cache file of this bundle (undefined: no usable cache directory). */
  cacheFile?: string;
  /** The bundle was compiled from a cache that V8 accepted. */
  fromCache: boolean;
  /** Writes the cache after the run (dist/cli.cjs calls it at exit); true when it wrote one. */
  save(): boolean;
}

/** The cache directory when the cache is on and the directory can be trusted (or made). */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env[COMPILE_CACHE_ENV] === '0' || typeof process.getuid !== 'function') return undefined;
  const xdg = env.XDG_CACHE_HOME;
  let base: string;
  if (xdg?.startsWith('/')) base = xdg;
  else {
    const home = env.HOME || safeHomedir();
    if (!home?.startsWith('/')) return undefined;
    base = join(home, '.cache');
  }
  return join(base, 'sc-hsm-ts');
}

function safeHomedir(): string | undefined {
  try {
    return homedir();
  } catch {
    return undefined;
  }
}

/** A directory or file of this user's, writable by nobody else, and not a symbolic link. */
function ownedPrivately(path: string, kind: 'dir' | 'file'): boolean {
  try {
    const st = lstatSync(path);
    if (kind === 'dir' ? !st.isDirectory() : !st.isFile()) return false;
    return st.uid === process.getuid?.() && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/** FNV-1a, 32 bits: names Node's flags in the file name (they are checked by V8 too). */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** The cache file's name: the bundle's identity and the Node that compiles it, spelled out. */
export function cacheName(bundle: string): string {
  return nameOf(statSync(bundle, { bigint: true }));
}

function nameOf(st: { dev: bigint; ino: bigint; size: bigint; ctimeNs: bigint }): string {
  const node = `${process.version}-${process.arch}-${fnv1a(process.execArgv.join('\0'))}`;
  return `${PREFIX}${st.dev}-${st.ino}-${st.size}-${st.ctimeNs}-${node}${SUFFIX}`;
}

/**
 * A bundle changed less than this long before a run makes no cache: a file system's clock ticks
 * coarsely (a few ms), so a second write in the same tick as the first, of the same size, would
 * keep the name. A run that starts over a second after the last change, and sees the same file at
 * its end, has compiled what that name stands for.
 */
const SETTLED_MS = 1000n;

/** How many bundles' caches are kept (several installed copies of the package each have one). */
const KEEP = 8;

/**
 * Compiles the CommonJS bundle at `bundle` (with the cache when there is a good one) and runs it
 * as a module of its own: `require`, `module`, `__filename` and `__dirname` are the bundle's.
 */
export function runBundle(bundle: string, env: NodeJS.ProcessEnv = process.env): BundleRun {
  const startNs = BigInt(Date.now()) * 1_000_000n;
  const st = statSync(bundle, { bigint: true });
  const bytes = readFileSync(bundle);
  // the build writes ASCII (tsup.config.ts, charset): a one-byte string is read and compiled faster
  const source =
    typeof isAscii === 'function' && isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
  // the shebang line stays a line of the same length (V8 checks the source length)
  const body = source.startsWith('#!') ? `//${source.slice(2)}` : source;
  const wrapped = `(function (exports, require, module, __filename, __dirname) {${body}\n})`;
  const dir = cacheDir(env);
  let cacheFile: string | undefined;
  let cachedData: Buffer | undefined;
  if (dir) {
    try {
      cacheFile = join(dir, nameOf(st));
      if (ownedPrivately(dir, 'dir') && ownedPrivately(cacheFile, 'file'))
        cachedData = readFileSync(cacheFile);
    } catch {
      cachedData = undefined;
    }
  }
  const script = new Script(wrapped, cachedData ? { filename: bundle, cachedData } : { filename: bundle });
  const fromCache = cachedData !== undefined && !script.cachedDataRejected;
  const mod = { exports: {} as unknown, filename: bundle, id: bundle, loaded: false };
  const fn = script.runInThisContext() as (...args: unknown[]) => void;
  fn.call(mod.exports, mod.exports, createRequire(bundle), mod, bundle, dirname(bundle));
  mod.loaded = true;
  return {
    ...(cacheFile !== undefined ? { cacheFile } : {}),
    fromCache,
    save: () => {
      if (fromCache || cacheFile === undefined) return false;
      if (startNs - st.ctimeNs < SETTLED_MS * 1_000_000n) return false;
      try {
        if (join(dirname(cacheFile), cacheName(bundle)) !== cacheFile) return false;
      } catch {
        return false;
      }
      return writeCache(cacheFile, script);
    },
  };
}

/**
 * Writes the cache whole under a temporary name and renames it; of more than {@link KEEP} caches,
 * the least recently written go.
 */
function writeCache(file: string, script: Script): boolean {
  const dir = dirname(file);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!ownedPrivately(dir, 'dir')) return false;
    const data = script.createCachedData();
    const tmp = `${file}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, data);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch {
    return false;
  }
  try {
    const old = readdirSync(dir)
      .filter((f) => f.startsWith(PREFIX) && f.endsWith(SUFFIX))
      .map((f) => ({ path: join(dir, f), t: lstatSync(join(dir, f)).mtimeMs }))
      .sort((a, b) => b.t - a.t)
      .slice(KEEP);
    for (const f of old) if (f.path !== file) unlinkSync(f.path);
  } catch {
    // another run removed one meanwhile: the next write tidies up
  }
  return true;
}

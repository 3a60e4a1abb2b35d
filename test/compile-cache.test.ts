/**
 * The command's code cache (src/cli/compile-cache.ts): made once, used after, never stale, never
 * taken from a directory or file that another user could have written, and never in the way (a
 * broken cache or an unusable directory only means a compile from the source).
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { COMPILE_CACHE_ENV, cacheDir, cacheName, runBundle } from '../src/cli/compile-cache.js';

let dir: string;
let env: NodeJS.ProcessEnv;
let bundle: string;
const g = globalThis as { ccRuns?: string[] };

/** A bundle that records its runs: the value `v` is what the code says, whatever the cache says. */
function writeBundle(v: string): void {
  writeFileSync(
    bundle,
    `#!/usr/bin/env node\n"use strict";\nconst f = (x) => x + 1;\n(globalThis.ccRuns ??= []).push(${JSON.stringify(v)} + f(0));\nmodule.exports = { dir: __dirname, req: typeof require };\n`,
  );
  // older than a second: a bundle just written makes no cache (compile-cache.ts, SETTLED_MS)
  const past = new Date(Date.now() - 5000);
  utimesSync(bundle, past, past);
}

/** Ages the bundle's change time: ctime follows the clock, so the test waits the second out. */
async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 1100));
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sc-hsm-cc-'));
  env = { HOME: join(dir, 'home') };
  mkdirSync(env.HOME!, { mode: 0o700 });
  bundle = join(dir, 'cli-main.cjs');
  g.ccRuns = [];
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('compile cache', () => {
  it('the first run writes the cache (0600 in a 0700 directory), the next compiles from it', async () => {
    writeBundle('a');
    await settle();
    const r1 = runBundle(bundle, env);
    expect(r1.fromCache).toBe(false);
    expect(r1.cacheFile).toBe(join(env.HOME!, '.cache', 'sc-hsm-ts', cacheName(bundle)));
    expect(r1.save()).toBe(true);
    expect(statSync(r1.cacheFile!).mode & 0o777).toBe(0o600);
    expect(statSync(join(env.HOME!, '.cache', 'sc-hsm-ts')).mode & 0o777).toBe(0o700);
    const r2 = runBundle(bundle, env);
    expect(r2.fromCache).toBe(true);
    expect(r2.save()).toBe(false);
    expect(g.ccRuns).toEqual(['a1', 'a1']);
  });

  it('a changed bundle of the same length gets a new name: the old cache is never used for it', async () => {
    writeBundle('a');
    await settle();
    const r1 = runBundle(bundle, env);
    expect(r1.save()).toBe(true);
    const size = statSync(bundle).size;
    writeBundle('b');
    expect(statSync(bundle).size).toBe(size);
    await settle();
    const r2 = runBundle(bundle, env);
    expect(r2.cacheFile).not.toBe(r1.cacheFile);
    expect(r2.fromCache).toBe(false);
    expect(g.ccRuns).toEqual(['a1', 'b1']);
    expect(r2.save()).toBe(true);
    expect(runBundle(bundle, env).fromCache).toBe(true);
    expect(g.ccRuns).toEqual(['a1', 'b1', 'b1']);
  });

  it('a bundle changed within the last second makes no cache', () => {
    writeFileSync(bundle, '(globalThis.ccRuns ??= []).push("fresh");\n');
    const r = runBundle(bundle, env);
    expect(g.ccRuns).toEqual(['fresh']);
    expect(r.save()).toBe(false);
    expect(existsSync(r.cacheFile!)).toBe(false);
  });

  it('a corrupt cache is rejected by V8: the bundle runs from its source and the cache is rewritten', async () => {
    writeBundle('a');
    await settle();
    const file = join(cacheDir(env)!, cacheName(bundle));
    mkdirSync(cacheDir(env)!, { recursive: true, mode: 0o700 });
    writeFileSync(file, Buffer.alloc(4096, 0x41), { mode: 0o600 });
    const r = runBundle(bundle, env);
    expect(r.fromCache).toBe(false);
    expect(g.ccRuns).toEqual(['a1']);
    expect(r.save()).toBe(true);
    expect(runBundle(bundle, env).fromCache).toBe(true);
  });

  it('a cache directory or file that others may write, or a symbolic link, is neither read nor written', async () => {
    writeBundle('a');
    await settle();
    const r1 = runBundle(bundle, env);
    expect(r1.save()).toBe(true);
    const cdir = cacheDir(env)!;
    chmodSync(cdir, 0o777);
    expect(runBundle(bundle, env).fromCache).toBe(false);
    expect(runBundle(bundle, env).save()).toBe(false);
    chmodSync(cdir, 0o700);
    chmodSync(r1.cacheFile!, 0o666);
    expect(runBundle(bundle, env).fromCache).toBe(false);
    // a symbolic link in place of the file
    const real = join(dir, 'elsewhere.v8cache');
    writeFileSync(real, 'x', { mode: 0o600 });
    rmSync(r1.cacheFile!);
    symlinkSync(real, r1.cacheFile!);
    expect(runBundle(bundle, env).fromCache).toBe(false);
    expect(g.ccRuns).toEqual(['a1', 'a1', 'a1', 'a1', 'a1']);
  });

  it('an unusable cache place only means a compile from the source', async () => {
    writeBundle('a');
    await settle();
    // HOME is a file: no directory can be made under it
    const fileHome = join(dir, 'not-a-dir');
    writeFileSync(fileHome, '');
    const r = runBundle(bundle, { HOME: fileHome });
    expect(r.fromCache).toBe(false);
    expect(r.save()).toBe(false);
    // no home at all, a relative one, the switch off
    expect(cacheDir({ HOME: 'relative/home' })).toBeUndefined();
    expect(cacheDir({ ...env, [COMPILE_CACHE_ENV]: '0' })).toBeUndefined();
    expect(runBundle(bundle, { ...env, [COMPILE_CACHE_ENV]: '0' }).cacheFile).toBeUndefined();
    expect(cacheDir({ ...env, XDG_CACHE_HOME: '/var/cache/x' })).toBe('/var/cache/x/sc-hsm-ts');
    expect(g.ccRuns).toEqual(['a1', 'a1']);
  });

  it('keeps the caches of 8 bundles: a ninth removes the oldest', async () => {
    const bundles = Array.from({ length: 9 }, (_, i) => join(dir, `b${i}.cjs`));
    for (const b of bundles) writeFileSync(b, '(globalThis.ccRuns ??= []).push(1);\n');
    await settle();
    const files = bundles.map((b) => {
      const r = runBundle(b, env);
      expect(r.save()).toBe(true);
      // distinct write times for the order of removal
      utimesSync(r.cacheFile!, new Date(), new Date(Date.now() - 60_000 + bundles.indexOf(b) * 1000));
      return r.cacheFile!;
    });
    const left = readdirSync(cacheDir(env)!).filter((f) => f.endsWith('.v8cache'));
    expect(left).toHaveLength(8);
    expect(left.map((f) => join(cacheDir(env)!, f))).not.toContain(files[0]);
  });
});

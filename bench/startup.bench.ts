/**
 * Cold start: `node dist/cli.js --help` and a script that only imports the built package
 * (dist/index.js), each against a bare `node -e 0`, median of many runs, alternating. Builds
 * dist/ with `npx tsup` first when it is missing.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type BenchResult, median } from './types.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const RUNS = 31;

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
  const cli = join(ROOT, 'dist', 'cli.js');
  const fresh = existsSync(cli) && existsSync(join(ROOT, 'dist', 'index.js'));
  if (fresh && statSync(cli).mtimeMs >= newestMtime(join(ROOT, 'src'))) return;
  process.stdout.write('  building dist/ (npx tsup) …\n');
  execFileSync('npx', ['tsup'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
}

function wallMs(args: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr.toString()}`);
  return ms;
}

export default async function run(): Promise<BenchResult[]> {
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'sc-hsm-bench-start-'));
  try {
    const script = join(dir, 'import-only.mjs');
    writeFileSync(script, `import ${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'index.js')).href)};\n`);
    const cases = {
      bare: ['-e', '0'],
      help: [join(ROOT, 'dist', 'cli.js'), '--help'],
      importOnly: [script],
    };
    const t: Record<keyof typeof cases, number[]> = { bare: [], help: [], importOnly: [] };
    for (const k of Object.keys(cases) as (keyof typeof cases)[]) wallMs(cases[k]); // warm the file cache
    for (let i = 0; i < RUNS; i++) {
      for (const k of Object.keys(cases) as (keyof typeof cases)[]) t[k].push(wallMs(cases[k]));
    }
    const bare = median(t.bare);
    const help = median(t.help);
    const imp = median(t.importOnly);
    return [
      {
        name: 'cold start: node dist/cli.js --help vs node -e 0',
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

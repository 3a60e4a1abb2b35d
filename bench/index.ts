/**
 * Benchmark harness: runs every `bench/*.bench.ts` (each default-exports
 * `async function run(): Promise<BenchResult[]>`), prints a table and writes `bench/results.json`
 * (an array of all results). A benchmark that throws is reported and makes the exit code 1; the
 * others still run. Run with `npx tsx bench/index.ts [filter]`.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BenchResult, BenchRun } from './types.js';

const here = dirname(fileURLToPath(import.meta.url));
const filter = process.argv[2];
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts') && (!filter || f.includes(filter)))
  .sort();

const results: BenchResult[] = [];
let failed = false;
for (const f of files) {
  process.stdout.write(`running ${f} …\n`);
  try {
    const mod = (await import(pathToFileURL(join(here, f)).href)) as { default?: BenchRun };
    if (typeof mod.default !== 'function') throw new Error('it has no default-exported run() function');
    results.push(...(await mod.default()));
  } catch (e) {
    failed = true;
    process.stderr.write(`${f} FAILED: ${e instanceof Error ? e.message : String(e)}\n`);
  }
}

const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toPrecision(4));
const rows = results.map((r) => [
  r.name,
  `${fmt(r.ours)} ${r.unit}`,
  `${fmt(r.theirs)} ${r.unit}`,
  r.ratio.toFixed(3),
  `≤ ${r.target}`,
  r.ratio <= r.target ? 'ok' : 'MISSED',
]);
const head = ['benchmark', 'ours', 'theirs', 'ratio', 'target', ''];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
console.log(`\n${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
for (const r of rows) console.log(line(r));
writeFileSync(join(here, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
console.log(`\nwrote ${join(here, 'results.json')}`);
if (failed) process.exitCode = 1;

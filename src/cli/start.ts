/**
 * The command (package.json `bin`: dist/cli.cjs). It runs dist/cli-main.cjs, the CommonJS bundle
 * of src/cli/main.ts, compiled with V8's code cache of an earlier run (src/cli/compile-cache.ts;
 * README, Design, "Start-up"). It loads nothing but Node's fs, path, vm and module.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runBundle } from './compile-cache.js';

const bundle = join(dirname(fileURLToPath(import.meta.url)), 'cli-main.cjs');
// the bundle runs its command line when it is the program Node was started with (main.ts, isMain)
process.argv[1] = bundle;
const run = runBundle(bundle);
if (run.cacheFile !== undefined && !run.fromCache) process.once('exit', () => run.save());

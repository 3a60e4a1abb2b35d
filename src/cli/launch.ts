/**
 * `node dist/cli.js`: the command is dist/cli.cjs (package.json `bin`; src/cli/start.ts), CommonJS
 * (why: README, Design, "Start-up"). This small ES module runs it for whoever starts the command by
 * its former name.
 */
import { createRequire } from 'node:module';

createRequire(import.meta.url)('./cli.cjs');

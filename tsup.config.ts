import { defineConfig } from 'tsup';

/**
 * The package's entries (package.json `exports`): the core at the root and one path per part a
 * consumer may not want (README, Library). Each is built as ESM and CommonJS with its own
 * declarations.
 */
const ENTRIES = {
  index: 'src/index.ts',
  sim: 'src/sim/index.ts',
  webcrypto: 'src/webcrypto/index.ts',
  x509: 'src/x509/index.ts',
  testing: 'src/testing.ts',
};

export default defineConfig([
  {
    entry: ENTRIES,
    format: ['esm', 'cjs'],
    dts: true,
    // Sourcemaps are not published (README, Design: "The package").
    sourcemap: false,
    // Classes keep their names in bundles (esbuild would otherwise rename a clashing ScHsmError to
    // _ScHsmError): what `e.constructor.name`, util.inspect and stack traces show
    keepNames: true,
    clean: true,
    target: 'node20',
    external: ['pcsclite'],
    // import.meta.url in the CommonJS build: the lazy loaders (src/webcrypto/core.ts, src/x509/lib.ts) use it
    shims: true,
    // Code shared by the entries lives in one chunk for each format, also for CommonJS: an
    // ScHsmError thrown by the virtual card is `instanceof` the root's ScHsmError.
    splitting: true,
    esbuildOptions(options) {
      options.chunkNames = 'chunks/[name]-[hash]';
    },
  },
  {
    entry: { cli: 'src/cli/main.ts' },
    format: ['esm'],
    sourcemap: false,
    keepNames: true,
    target: 'node20',
    external: ['pcsclite'],
    banner: { js: '#!/usr/bin/env node' },
    // Code splitting (tsup's default for ESM): each command is a chunk that cli.js imports only to
    // run it (src/cli/registry.ts); `--help` loads cli.js and the command metadata alone.
    splitting: true,
    esbuildOptions(options) {
      options.chunkNames = 'cli-chunks/[name]-[hash]';
    },
  },
]);

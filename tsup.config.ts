import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: { index: 'src/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    external: ['pcsclite'],
    // import.meta.url in the CommonJS build: the lazy loaders (src/webcrypto/core.ts, src/x509/lib.ts) use it
    shims: true,
  },
  {
    entry: { cli: 'src/cli/main.ts' },
    format: ['esm'],
    sourcemap: true,
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

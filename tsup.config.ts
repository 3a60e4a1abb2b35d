import { readFileSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { defineConfig } from 'tsup';

type EsbuildPlugin = NonNullable<
  Parameters<typeof defineConfig>[0] extends infer C
    ? C extends { esbuildPlugins?: infer P }
      ? P
      : never
    : never
>[number];

const BUILTIN = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
/** CommonJS dependencies that the sources import() when first needed. */
const LAZY_PACKAGES = ['proper-lockfile'];

/**
 * `await import('node:fs/promises')` (a builtin or package loaded only when used) stays lazy in the
 * CommonJS command but becomes a `require` inside the bundle: an `import()` would start Node's ESM
 * loader, and a script compiled with a code cache has none (src/cli/compile-cache.ts). The packages
 * stay outside the bundle.
 */
const requireLazily: EsbuildPlugin = {
  name: 'require-lazily',
  setup(build) {
    const lazy = (path: string) => BUILTIN.has(path) || LAZY_PACKAGES.includes(path);
    build.onResolve({ filter: /^[@a-z]/ }, (args) => {
      if (!lazy(args.path)) return undefined;
      if (args.kind === 'dynamic-import') return { path: args.path, namespace: 'require-lazily' };
      return { path: args.path, external: true };
    });
    build.onLoad({ filter: /.*/, namespace: 'require-lazily' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

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
    // the command's files are the other configs' (built at the same time; each build rewrites them)
    clean: ['!cli.js', '!cli.cjs', '!cli-main.cjs'],
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
    // The command (package.json `bin`): dist/cli.cjs (src/cli/start.ts) runs dist/cli-main.cjs,
    // ONE CommonJS file of src/cli/main.ts, through V8's code cache (src/cli/compile-cache.ts). A
    // module of it costs its parse until it is used; esbuild initializes it (and requires its
    // node: builtins) at its first import, so `--help` runs the metadata alone and `dump` its own
    // command's code (registry.ts). As ES modules the same code was 13 files for `dump` (Node's
    // ESM loader pays per file, hoists every builtin import to load time, and keeps no code cache
    // in Node 20): README, Design, "Start-up"; bench/startup.bench.ts.
    entry: { cli: 'src/cli/start.ts', 'cli-main': 'src/cli/main.ts' },
    format: ['cjs'],
    sourcemap: false,
    keepNames: true,
    target: 'node20',
    external: ['pcsclite'],
    banner: { js: '#!/usr/bin/env node' },
    // import.meta.url (main.ts's isMain, the lazy loaders' createRequire)
    shims: true,
    esbuildPlugins: [requireLazily],
    // ASCII only (\u escapes): read as a one-byte string, compiled faster (compile-cache.ts)
    esbuildOptions(options) {
      options.charset = 'ascii';
    },
    // let builtins and these packages reach that plugin: tsup's own plugins mark them external first
    removeNodeProtocol: false,
    noExternal: [...BUILTIN, ...LAZY_PACKAGES],
    // a script compiled with a code cache has no dynamic import() (Node 20 gives it no loader)
    async onSuccess() {
      const code = readFileSync('dist/cli-main.cjs', 'utf8');
      const m = /(?<![.\w$])import\(\s*(?:["'`]|[\w$.]+\s*\))/.exec(code);
      if (m)
        throw new Error(`dist/cli-main.cjs has a dynamic import(): ${code.slice(m.index, m.index + 80)}`);
      // esbuild escapes non-ASCII in code (charset) but not in the doc comments it keeps: there it
      // becomes '?', so that the whole file is ASCII (read and compiled as a one-byte string)
      const ascii = code.replace(/^(\s*(?:\/\*\*|\*|\/\/).*)$/gm, (line) =>
        line.replace(/[^\x00-\x7f]/gu, '?'),
      );
      if (ascii !== code) writeFileSync('dist/cli-main.cjs', ascii);
    },
  },
  {
    // dist/cli.js: runs dist/cli.cjs for whoever starts the command by that name
    entry: { cli: 'src/cli/launch.ts' },
    format: ['esm'],
    sourcemap: false,
    target: 'node20',
    banner: { js: '#!/usr/bin/env node' },
  },
]);
